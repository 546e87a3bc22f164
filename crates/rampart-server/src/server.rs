//! Listeners and connections: accept with a connection cap, TLS handshake with a deadline,
//! HTTP/1.1 or HTTP/2 by ALPN (plain listeners also take HTTP/2 prior knowledge), limits on
//! header time, size and count, HTTP/2 stream and reset limits, an idle timeout, and a
//! graceful drain on shutdown.
//!
//! # Timeouts
//! - `tls_handshake_timeout` bounds the handshake.
//! - `header_read_timeout` bounds receiving a request head (hyper's timer). hyper also runs
//!   it while an HTTP/1.1 keep-alive connection waits for its next request, so an idle
//!   HTTP/1.1 connection closes after the shorter of it and `idle_timeout`.
//! - `idle_timeout` closes (gracefully) any connection with no bytes in either direction
//!   and no request in flight: HTTP/2 connections, and plain connections that never sent
//!   a byte. The close comes between 1 and 1.5 idle periods after the last byte.
//!
//! The plain listener speaks HTTP/1.1 only unless `server.h2c` is set (HTTP/2 with prior
//! knowledge, detected from the connection preface).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::edge::Edge;
use crate::stack::{self, ConnInfo};

/// A started edge.
#[derive(Debug)]
pub struct Running {
    /// Bound plain HTTP address.
    pub http_addr: Option<SocketAddr>,
    /// Bound HTTPS address.
    pub https_addr: Option<SocketAddr>,
    token: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

impl Running {
    /// Stops accepting and asks every connection to finish its in-flight requests.
    pub fn shutdown(&self) {
        self.token.cancel();
    }

    /// How long [`Running::drain`] waits.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Shuts down and waits up to the grace period for connections to drain. Returns
    /// whether every connection finished in time.
    pub async fn drain(self) -> bool {
        self.shutdown();
        self.tracker.close();
        tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Binds the configured listeners and starts serving.
///
/// # Errors
/// A listener address that cannot be bound (in use, no permission), naming the key.
pub async fn start(edge: Edge) -> anyhow::Result<Running> {
    use anyhow::Context as _;
    let server = &edge.config.server;
    let http = match server.http {
        Some(a) => Some(bind(a).with_context(|| format!("server.http: cannot listen on {a}"))?),
        None => None,
    };
    let https = match server.https {
        Some(a) => Some(bind(a).with_context(|| format!("server.https: cannot listen on {a}"))?),
        None => None,
    };
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    let https_addr = https.as_ref().map(TcpListener::local_addr).transpose()?;
    let redirect_port = match (&edge.tls, https_addr) {
        (Some(_), Some(a)) => Some(server.https_port.unwrap_or(a.port())),
        _ => None,
    };
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(server.max_connections));
    let grace = server.shutdown_grace;
    let acceptor = edge.tls.clone().map(TlsAcceptor::from);
    let edge = Arc::new(edge);
    spawn_pool_reaper(&edge, &token);
    if let Some(l) = http {
        let kind = Kind::Plain {
            redirect_to_https: redirect_port,
        };
        tracker.spawn(accept_loop(
            l,
            kind,
            edge.clone(),
            limit.clone(),
            token.clone(),
            tracker.clone(),
        ));
    }
    if let (Some(l), Some(acceptor)) = (https, acceptor) {
        let kind = Kind::Tls(acceptor);
        tracker.spawn(accept_loop(
            l,
            kind,
            edge.clone(),
            limit,
            token.clone(),
            tracker.clone(),
        ));
    }
    Ok(Running {
        http_addr,
        https_addr,
        token,
        tracker,
        grace,
    })
}

fn spawn_pool_reaper(edge: &Arc<Edge>, token: &CancellationToken) {
    let weak = Arc::downgrade(edge);
    let token = token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = token.cancelled() => return,
            }
            let Some(edge) = weak.upgrade() else { return };
            for p in edge.pools() {
                p.reap_idle();
            }
        }
    });
}

#[derive(Clone)]
enum Kind {
    Plain { redirect_to_https: Option<u16> },
    Tls(TlsAcceptor),
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    edge: Arc<Edge>,
    limit: Arc<Semaphore>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        // Past max_connections, further clients wait in the kernel's accept queue.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            () = token.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = token.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        let kind = kind.clone();
        let token = token.clone();
        tracker.spawn(async move {
            serve_conn(stream, peer, kind, edge, token).await;
            drop(permit);
        });
    }
}

/// Applies the HTTP/1.1 limits to a hyper (or hyper-util auto) HTTP/1 builder.
macro_rules! h1_limits {
    ($b:expr, $s:expr) => {
        $b.timer(TokioTimer::new())
            .header_read_timeout($s.header_read_timeout)
            .max_buf_size($s.max_header_size.max(8192))
            .max_headers($s.max_headers)
    };
}

/// Applies the HTTP/2 limits to a hyper (or hyper-util auto) HTTP/2 builder.
macro_rules! h2_limits {
    ($b:expr, $s:expr) => {
        $b.timer(TokioTimer::new())
            .max_concurrent_streams($s.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams($s.h2_max_pending_reset_streams)
            .max_local_error_reset_streams(1024)
            .max_header_list_size(u32::try_from($s.max_header_size).unwrap_or(u32::MAX))
    };
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    edge: Arc<Edge>,
    token: CancellationToken,
) {
    let s = &edge.config.server;
    let activity = Arc::new(Activity::default());
    activity.touch();
    match kind {
        Kind::Plain { redirect_to_https } => {
            let info = ConnInfo {
                peer,
                peer_value: crate::proxy::ip_value(peer.ip()),
                tls: false,
                redirect_to_https,
            };
            let svc = service(edge.clone(), info, activity.clone());
            if s.h2c {
                let io = TokioIo::new(Tracked::new(stream, &activity));
                let mut b = auto::Builder::new(TokioExecutor::new());
                h1_limits!(b.http1(), s);
                h2_limits!(b.http2(), s);
                let conn = b.serve_connection_with_upgrades(io, svc);
                Box::pin(drive(conn, &activity, s.idle_timeout, &token)).await;
            } else {
                // HTTP/1.1 only: no protocol sniffing on the common path.
                Box::pin(serve_h1(stream, svc, s, &activity, &token)).await;
            }
        }
        Kind::Tls(acceptor) => {
            let tls = match Box::pin(tokio::time::timeout(
                s.tls_handshake_timeout,
                acceptor.accept(stream),
            ))
            .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let info = ConnInfo {
                peer,
                peer_value: crate::proxy::ip_value(peer.ip()),
                tls: true,
                redirect_to_https: None,
            };
            let svc = service(edge.clone(), info, activity.clone());
            if h2 {
                let io = TokioIo::new(Tracked::new(tls, &activity));
                let conn = h2_limits!(http2::Builder::new(TokioExecutor::new()), s)
                    .serve_connection(io, svc);
                Box::pin(drive(conn, &activity, s.idle_timeout, &token)).await;
            } else {
                Box::pin(serve_h1(tls, svc, s, &activity, &token)).await;
            }
        }
    }
}

/// Serves HTTP/1.1 on `stream`, parking it while idle.
///
/// hyper keeps its read and write buffers (8 KiB or more each) for a connection's whole
/// life; with thousands of idle keep-alive clients that was ~24 KiB per connection against
/// nginx's ~3 KiB. After `server.park_after` of quiet the socket is taken back from hyper
/// (`into_parts`), everything else is freed, and the bare socket waits for readability;
/// then a fresh hyper connection resumes it. Bytes hyper had read but not used are kept
/// and replayed first, so nothing the client sent is lost.
async fn serve_h1<T, S>(
    stream: T,
    svc: S,
    s: &rampart_config::runtime::Server,
    activity: &Arc<Activity>,
    token: &CancellationToken,
) where
    T: AsyncRead + AsyncWrite + HasSocket + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<Incoming>,
            Response = http::Response<crate::body::Body>,
            Error = stack::CloseConnection,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let park_after = s.park_after.min(s.idle_timeout);
    let mut io = TokioIo::new(Tracked::new(stream, activity));
    loop {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn(watch(
            activity.clone(),
            s.idle_timeout,
            Some(park_after),
            token.clone(),
            tx,
        ));
        // Boxed, so a parked connection's task does not keep room for hyper's state.
        let mut conn = Box::pin(
            h1_limits!(http1::Builder::new(), s)
                .serve_connection(io, svc.clone())
                .with_upgrades(),
        );
        let signal = tokio::select! {
            biased;
            _ = conn.as_mut() => {
                watcher.abort();
                return;
            }
            sig = rx => sig.unwrap_or(Signal::Close),
        };
        if signal != Signal::Park || activity.inflight.load(Ordering::Relaxed) != 0 {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
            return;
        }
        let Some(parts) = Pin::into_inner(conn).into_parts() else {
            return;
        };
        io = parts.io;
        if !parts.read_buf.is_empty() {
            // A partial request is waiting: resume at once with those bytes first.
            io.inner_mut().prefix = parts.read_buf;
            continue;
        }
        tokio::select! {
            r = io.inner().inner.socket().readable() => if r.is_err() { return },
            () = tokio::time::sleep(s.idle_timeout.saturating_sub(park_after)) => return,
            () = token.cancelled() => return,
        }
    }
}

/// Streams whose TCP socket can be waited on while parked.
trait HasSocket {
    fn socket(&self) -> &TcpStream;
}

impl HasSocket for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl HasSocket for tokio_rustls::server::TlsStream<TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }
}

fn service(
    edge: Arc<Edge>,
    info: ConnInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<crate::body::Body>,
    Error = stack::CloseConnection,
    Future = impl Future<Output = Result<http::Response<crate::body::Body>, stack::CloseConnection>>
                 + Send,
> + Clone {
    service_fn(move |req| {
        let edge = edge.clone();
        let guard = InflightGuard::new(activity.clone());
        let info = info.clone();
        async move {
            match stack::handle(edge, info, req).await {
                // The connection stays busy until the body has been sent, however slowly
                // the client reads it.
                Ok(resp) if !http_body::Body::is_end_stream(resp.body()) => {
                    Ok(resp.map(|b| crate::body::Body::Held(Box::new(b), guard)))
                }
                other => other,
            }
        }
    })
}

/// Connection futures that can be asked to finish gracefully.
trait Graceful: Future {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S, E> Graceful for http2::Connection<I, S, E>
where
    Self: Future,
    S: hyper::service::HttpService<Incoming>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Graceful for auto::UpgradeableConnection<'_, I, S, E>
where
    Self: Future,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// What the watcher asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Quiet long enough to drop hyper's state and keep only the socket.
    Park,
    /// Idle for `idle_timeout`: close.
    Close,
    /// The server is shutting down: finish in-flight requests and close.
    Shutdown,
}

/// Runs a (non-parkable: HTTP/2 or h2c-sniffing) connection to its end. A watcher task
/// (one per connection, not per request) owns the idle timer and the shutdown signal and
/// asks the connection to finish gracefully through a oneshot, so a wake of the connection
/// polls nothing else. Polling a timer and a cancellation future on every wake measured
/// ~5% of plain-HTTP throughput.
async fn drive<C: Graceful>(
    conn: C,
    activity: &Arc<Activity>,
    idle: Duration,
    token: &CancellationToken,
) {
    let (tx, mut stop) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(watch(activity.clone(), idle, None, token.clone(), tx));
    tokio::pin!(conn);
    tokio::select! {
        biased;
        _ = conn.as_mut() => {
            watcher.abort();
            return;
        }
        _ = &mut stop => conn.as_mut().graceful(),
    }
    let _ = conn.await;
}

/// Signals `stop`: [`Signal::Shutdown`] on shutdown; [`Signal::Park`] when the connection's
/// activity counter has not moved (and nothing is in flight) for `park_after`;
/// [`Signal::Close`] after a whole idle period. Checked every half of the shorter period, so
/// an idle connection closes between 1 and 1.5 idle periods after its last byte.
async fn watch(
    activity: Arc<Activity>,
    idle: Duration,
    park_after: Option<Duration>,
    token: CancellationToken,
    stop: tokio::sync::oneshot::Sender<Signal>,
) {
    let first = park_after.unwrap_or(idle).min(idle);
    let period = (first / 2).max(Duration::from_millis(25));
    let mut last = activity.ticks();
    let mut quiet = Duration::ZERO;
    let signal = loop {
        tokio::select! {
            () = token.cancelled() => break Signal::Shutdown,
            () = tokio::time::sleep(period) => {
                let now = activity.ticks();
                if now == last && activity.inflight.load(Ordering::Relaxed) == 0 {
                    quiet += period;
                    if park_after.is_some_and(|p| quiet >= p) {
                        break Signal::Park;
                    }
                    if quiet >= idle {
                        break Signal::Close;
                    }
                } else {
                    quiet = Duration::ZERO;
                    last = now;
                }
            }
        }
    };
    let _ = stop.send(signal);
}

// === activity tracking ===

/// How much a connection has moved (a counter, not a clock: cheaper on every read and
/// write), and how many requests it has in flight.
#[derive(Debug, Default)]
pub struct Activity {
    ticks: AtomicU64,
    inflight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        // A plain load/store, not a locked add: HTTP/2 stream tasks may race and lose an
        // increment, which is harmless since any change marks the connection as active.
        self.ticks.store(
            self.ticks.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
    fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// Counts a request as in flight on its connection until dropped.
#[derive(Debug)]
pub struct InflightGuard(Arc<Activity>);

impl InflightGuard {
    fn new(a: Arc<Activity>) -> Self {
        a.inflight.fetch_add(1, Ordering::Relaxed);
        Self(a)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An IO stream that records activity on every byte read or written, and replays bytes
/// read earlier (`prefix`, after a park) before reading more.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    prefix: bytes::Bytes,
}

impl<T> Tracked<T> {
    fn new(inner: T, activity: &Arc<Activity>) -> Self {
        Self {
            inner,
            activity: activity.clone(),
            prefix: bytes::Bytes::new(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
