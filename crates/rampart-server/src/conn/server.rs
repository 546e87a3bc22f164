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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::lot::Held;
use super::serving::Serving;
use crate::edge::Edge;
use crate::request::connection::ConnInfo;
use crate::request::stack;
use crate::wire::activity::{
    Activity, InflightGuard, Registry, PARKED_MOVABLE, PARKED_NO, PARKED_TASK, SIGNAL_CLOSE,
    SIGNAL_NONE, SIGNAL_PARK, SIGNAL_SHUTDOWN,
};

/// A listening socket on `addr` (`SO_REUSEADDR`, backlog 4096).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Plain,
    Tls,
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    serving: Arc<Serving>,
    stop: CancellationToken,
) {
    loop {
        // Past max_connections, further clients wait in the kernel's accept queue.
        let permit = tokio::select! {
            p = serving.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            () = stop.cancelled() => return,
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
            () = stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let serving2 = serving.clone();
        serving.tracker.spawn(async move {
            let activity = Arc::new(Activity::default());
            let entry = serving2.conns.insert(&activity);
            let held = Held {
                stream,
                peer,
                activity,
                entry,
                permit,
            };
            connection(held, kind, serving2, true).await;
        });
    }
}

/// A connection's task, from accept (or the lot) until it closes or moves to the lot.
async fn connection(held: Held<TcpStream>, kind: Kind, serving: Arc<Serving>, wait_first: bool) {
    held.activity.register().await;
    // Shutdown may have swept the registry just before this connection joined it.
    if serving.token.is_cancelled() {
        return;
    }
    let (stream, rest) = held.split();
    let activity = rest.activity.clone();
    let quiet = serve_conn(
        stream,
        rest.peer,
        kind,
        serving.clone(),
        activity,
        wait_first,
    )
    .await;
    if let Some(stream) = quiet {
        let held = rest.with(stream);
        // Refused by the lot: a task of its own again, waiting for the first byte.
        if let Some(held) = serving.lot.park(held) {
            respawn(&serving, held);
        }
    }
}

/// A plain connection the lot refused gets a task of its own again (a plain function: an
/// async function spawning itself could not be shown `Send`).
fn respawn(serving: &Arc<Serving>, held: Held<TcpStream>) {
    serving
        .tracker
        .spawn(connection(held, Kind::Plain, serving.clone(), true));
}

/// Runs the lot ([`super::lot`]) until shutdown: a connection leaving it gets a task on
/// this runtime again.
pub(crate) async fn run_lot(serving: Arc<Serving>) {
    let weak = Arc::downgrade(&serving);
    let handle = tokio::runtime::Handle::current();
    let resume = move |held| {
        let Some(serving) = weak.upgrade() else {
            return;
        };
        let s = serving.clone();
        let task = async move {
            if let Some(held) = super::lot::back(held) {
                connection(held, Kind::Plain, s, false).await;
            }
        };
        serving.tracker.spawn_on(task, &handle);
    };
    let (lot, stop) = (serving.lot.clone(), serving.token.clone());
    drop(serving);
    super::lot::run(lot, stop, resume).await;
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

/// A connection's whole life, boxed: the task of a connection parked for minutes holds
/// a pointer, not room for the largest state any branch (TLS handshake, HTTP/2, h2c
/// sniffing) might need. Connection settings come from the edge current when it was
/// accepted (or left the lot); each request uses the edge current when it starts. Ends
/// with the socket of a plain connection quiet long enough for the lot.
fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    serving: Arc<Serving>,
    activity: Arc<Activity>,
    wait_first: bool,
) -> Pin<Box<dyn Future<Output = Option<TcpStream>> + Send>> {
    let edge = serving.edge();
    match kind {
        Kind::Plain => {
            let info = ConnInfo {
                peer,
                peer_value: crate::handler::proxy::ip_value(peer.ip()),
                tls: false,
                redirect_to_https: serving.redirect_port(),
                raw_head: false,
                tls_version: None,
                client_cert: None,
            };
            if edge.config.server.h2c {
                // HTTP/2 with prior knowledge when the client's first bytes are the HTTP/2
                // preface, else HTTP/1.1 on its usual path (fast path, parking).
                Box::pin(async move {
                    let s = &edge.config.server;
                    match super::h2serve::sniff(&stream, &activity, s.header_read_timeout).await {
                        Some(true) => {
                            let io = Tracked::new(stream, &activity);
                            let answer = |req| answer(&serving, &info, &activity, req);
                            super::h2serve::serve(io, s, &activity, answer).await;
                            None
                        }
                        Some(false) => serve_h1(stream, &serving, &info, s, &activity, false).await,
                        None => None,
                    }
                })
            } else {
                // HTTP/1.1 only: no protocol sniffing on the common path.
                Box::pin(async move {
                    serve_h1(
                        stream,
                        &serving,
                        &info,
                        &edge.config.server,
                        &activity,
                        wait_first,
                    )
                    .await
                })
            }
        }
        Kind::Tls => match edge.tls.clone() {
            Some(cfg) => Box::pin(serve_tls(
                stream,
                peer,
                TlsAcceptor::from(cfg),
                serving,
                edge,
                activity,
            )),
            // The HTTPS listener outlived its [tls] section by a moment during a reload.
            None => Box::pin(async { None }),
        },
    }
}

async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    serving: Arc<Serving>,
    edge: Arc<Edge>,
    activity: Arc<Activity>,
) -> Option<TcpStream> {
    let s = &edge.config.server;
    let handshake = async {
        match &edge.client_auth {
            None => acceptor.accept(stream).await,
            // Mutual TLS for some hosts: the ClientHello's SNI chooses the config that
            // asks for a client certificate, or the one that does not.
            Some(auth) => {
                let start = tokio_rustls::LazyConfigAcceptor::new(
                    rustls::server::Acceptor::default(),
                    stream,
                )
                .await?;
                let cfg = if auth.wants(start.client_hello().server_name()) {
                    auth.config.clone()
                } else {
                    acceptor.config().clone()
                };
                start.into_stream(cfg).await
            }
        }
    };
    let tls = match Box::pin(tokio::time::timeout(s.tls_handshake_timeout, handshake)).await {
        Ok(Ok(tls)) => {
            edge.metrics.tls_handshake("ok");
            tls
        }
        Ok(Err(e)) => {
            edge.metrics.tls_handshake("failed");
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            edge.metrics.tls_handshake("timeout");
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    drop(acceptor);
    if tls.get_ref().1.alpn_protocol() == Some(crate::edge::acme::ACME_TLS_ALPN) {
        // A TLS-ALPN-01 validation: the handshake was the answer (RFC 8737 §3).
        let mut tls = tls;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        return None;
    }
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let info = ConnInfo {
        peer,
        peer_value: crate::handler::proxy::ip_value(peer.ip()),
        tls: true,
        redirect_to_https: None,
        raw_head: false,
        tls_version: match tls.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some("1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some("1.2"),
            _ => None,
        },
        client_cert: tls.get_ref().1.peer_certificates().and_then(|chain| {
            let mut c = crate::request::connection::ClientCert::of(chain.first()?)?;
            if let Some(auth) = &edge.client_auth {
                c.trusted_by = auth.trusted_by(chain);
            }
            Some(Arc::new(c))
        }),
    };
    if h2 {
        let io = Tracked::new(tls, &activity);
        let answer = |req| answer(&serving, &info, &activity, req);
        Box::pin(super::h2serve::serve(io, s, &activity, answer)).await;
        None
    } else {
        // Not waiting for readability first: the client's request may have come with its
        // last handshake flight and already sit decrypted in rustls.
        Box::pin(serve_h1(tls, &serving, &info, s, &activity, false)).await
    }
}

/// Serves HTTP/1.1 on `stream`, parking it while idle.
///
/// hyper keeps its read and write buffers (8 KiB each) for a connection's whole life; with
/// thousands of idle keep-alive clients that was ~28 KiB per connection against nginx's
/// ~3 KiB. Like nginx, rampart frees an idle connection's request state: once nothing has
/// moved for `server.park_after`, nothing is in flight and every written byte is flushed,
/// the socket is taken back from hyper (`into_parts`), everything else is freed, and the
/// bare socket waits for readability; then a fresh hyper connection resumes it. Bytes hyper
/// had read but not used are kept and replayed first, so nothing the client sent is lost.
/// A plain connection also waits for its first byte before any buffer exists, and, parked
/// and quiet for another `park_after`, is handed back (the `Some`) to go to the lot
/// ([`super::lot`]), which holds it without a task.
///
/// Parking at once after every response (as nginx does) measured +20% instructions per
/// request under keep-alive load (a new hyper connection per request); parking after a
/// short quiet spell costs a busy connection nothing.
async fn serve_h1<T>(
    stream: T,
    serving: &Arc<Serving>,
    info: &ConnInfo,
    s: &rampart_config::runtime::Server,
    activity: &Arc<Activity>,
    wait_first: bool,
) -> Option<TcpStream>
where
    T: AsyncRead + AsyncWrite + HasSocket + Unpin + Send + 'static,
{
    activity.parkable.store(true, Ordering::Relaxed);
    let fast = s.h1_fast_path;
    let mut io = TokioIo::new(Tracked::new(stream, activity));
    let mut wait = wait_first;
    // A partial request carried across a park: when it started and how many requests had
    // begun by then, so a client trickling a request head cannot reset hyper's
    // header_read_timeout by pausing.
    let mut partial: Option<(tokio::time::Instant, u64)> = None;
    loop {
        if wait {
            // Only a plain connection with nothing of a request read may go to the lot.
            let movable = T::PLAIN && partial.is_none() && io.inner().prefix.is_empty();
            let state = if movable && serving.lot.is_open() {
                PARKED_MOVABLE
            } else {
                PARKED_TASK
            };
            activity.parked.store(state, Ordering::Relaxed);
            let woke = parked(
                io.inner().inner.socket(),
                activity,
                partial.map(|(t, _)| t + s.header_read_timeout),
                state == PARKED_MOVABLE,
            )
            .await;
            activity.parked.store(PARKED_NO, Ordering::Relaxed);
            match woke {
                Woke::Readable => {}
                Woke::Stop => return None,
                Woke::Quiet => return io.into_inner().inner.into_plain(),
            }
        }
        if fast {
            // Simple requests are answered without hyper; the first other one (and the
            // rest of the connection until it parks) goes to hyper.
            match Box::pin(crate::conn::h1fast::serve(
                io.inner_mut(),
                serving,
                info,
                activity,
            ))
            .await
            {
                crate::conn::h1fast::Left::Closed => return None,
                crate::conn::h1fast::Left::Park => {
                    // Quiet for park_after already (the sweep's signal): straight to the
                    // lot when it may go there.
                    if T::PLAIN && io.inner().prefix.is_empty() && serving.lot.is_open() {
                        return io.into_inner().inner.into_plain();
                    }
                    wait = true;
                    partial = None;
                    continue;
                }
                crate::conn::h1fast::Left::Handoff(bytes) => {
                    let mut joined = bytes::BytesMut::from(&bytes[..]);
                    joined.extend_from_slice(&io.inner().prefix);
                    io.inner_mut().prefix = joined.freeze();
                }
            }
        }
        // Boxed, so a parked connection's task does not keep room for hyper's state.
        let mut conn = Box::pin(
            h1_limits!(http1::Builder::new(), s)
                .serve_connection(io, service(serving.clone(), info.clone(), activity.clone()))
                .with_upgrades(),
        );
        match (Steer {
            conn: conn.as_mut(),
            activity,
        })
        .await
        {
            Outcome::Done => return None,
            Outcome::Park => {}
            Outcome::Stop => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return None;
            }
        }
        let parts = Pin::into_inner(conn).into_parts()?;
        io = parts.io;
        wait = true;
        if parts.read_buf.is_empty() {
            // Quiet for park_after already: straight to the lot when it may go there.
            if T::PLAIN && io.inner().prefix.is_empty() && serving.lot.is_open() {
                return io.into_inner().inner.into_plain();
            }
            partial = None;
        } else {
            // Part of a request is waiting: keep it and replay it first.
            let started = activity.started.load(Ordering::Relaxed);
            match partial {
                Some((_, n)) if n == started => {}
                _ => partial = Some((tokio::time::Instant::now(), started)),
            }
            io.inner_mut().prefix = parts.read_buf;
        }
    }
}

/// What ended a wait in [`parked`].
enum Woke {
    /// The socket is readable (bytes, or the client closed).
    Readable,
    /// Close or shutdown was signalled, the partial head's deadline passed, or the socket
    /// failed: close.
    Stop,
    /// Quiet for `park_after` and `movable`: off to the lot.
    Quiet,
}

/// Waits, parked, until `socket` is readable, or close or shutdown is signalled or the
/// `deadline` of a partial request head passes, or (when `movable`) the sweep finds it
/// quiet. Small on purpose: this is most of what a parked connection's task holds (the
/// socket's own read-readiness slot, no waiter node; the timer boxed, and only for a
/// partial head).
async fn parked(
    socket: &TcpStream,
    activity: &Activity,
    deadline: Option<tokio::time::Instant>,
    movable: bool,
) -> Woke {
    let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
    std::future::poll_fn(|cx| {
        match socket.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Woke::Readable),
            Poll::Ready(Err(_)) => return Poll::Ready(Woke::Stop),
            Poll::Pending => {}
        }
        match activity.signal.load(Ordering::Acquire) {
            SIGNAL_NONE => {}
            SIGNAL_PARK => {
                activity.take_park();
                if movable {
                    return Poll::Ready(Woke::Quiet);
                }
            }
            _ => return Poll::Ready(Woke::Stop),
        }
        if let Some(s) = &mut sleep {
            if s.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woke::Stop);
            }
        }
        Poll::Pending
    })
    .await
}

/// What became of a driven connection.
enum Outcome {
    /// It finished.
    Done,
    /// It is idle at a request boundary: take the socket back.
    Park,
    /// Close or shutdown was signalled: finish gracefully.
    Stop,
}

/// Polls a connection and, after each poll, the sweeper's signal: no timer or cancellation
/// future is polled per wake.
struct Steer<'a, C> {
    conn: Pin<&'a mut C>,
    activity: &'a Activity,
}

impl<C: Future> Future for Steer<'_, C> {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let a = self.activity;
        if self.conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Outcome::Done);
        }
        match a.signal.load(Ordering::Acquire) {
            SIGNAL_NONE => Poll::Pending,
            SIGNAL_PARK => {
                a.take_park();
                // Checked again here: a request may have begun since the sweep.
                if a.inflight.load(Ordering::Relaxed) == 0 && !a.unflushed.load(Ordering::Relaxed) {
                    Poll::Ready(Outcome::Park)
                } else {
                    Poll::Pending
                }
            }
            _ => Poll::Ready(Outcome::Stop),
        }
    }
}

/// Streams whose TCP socket can be waited on while parked.
trait HasSocket {
    /// A bare TCP stream (no state above the socket): it may go to the lot.
    const PLAIN: bool;
    fn socket(&self) -> &TcpStream;
    fn into_plain(self) -> Option<TcpStream>;
}

impl HasSocket for TcpStream {
    const PLAIN: bool = true;
    fn socket(&self) -> &TcpStream {
        self
    }
    fn into_plain(self) -> Option<TcpStream> {
        Some(self)
    }
}

impl HasSocket for tokio_rustls::server::TlsStream<TcpStream> {
    const PLAIN: bool = false;
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn into_plain(self) -> Option<TcpStream> {
        None
    }
}

fn service(
    serving: Arc<Serving>,
    info: ConnInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<crate::wire::body::Body>,
    Error = stack::CloseConnection,
    Future = impl Future<
        Output = Result<http::Response<crate::wire::body::Body>, stack::CloseConnection>,
    > + Send,
> + Clone {
    service_fn(move |req: http::Request<Incoming>| {
        answer(
            &serving,
            &info,
            &activity,
            req.map(crate::wire::body::Body::Incoming),
        )
    })
}

/// Answers one request of a connection (for hyper's services and the HTTP/2 server
/// alike): counted in flight while under way, panics caught, handled by the stack.
fn answer(
    serving: &Arc<Serving>,
    info: &ConnInfo,
    activity: &Arc<Activity>,
    req: http::Request<crate::wire::body::Body>,
) -> impl Future<Output = Result<http::Response<crate::wire::body::Body>, stack::CloseConnection>>
       + Send
       + 'static {
    let edge = serving.edge();
    let guard = InflightGuard::new(activity.clone());
    activity.started.fetch_add(1, Ordering::Relaxed);
    let info = info.clone();
    // A request body still arriving keeps the connection busy too: its bytes must never be
    // read as the next request after a park. One already ended is no body at all.
    let req = req.map(|b| {
        if http_body::Body::is_end_stream(&b) {
            crate::wire::body::Body::Empty
        } else {
            crate::wire::body::Body::Held(Box::new(b), InflightGuard::new(activity.clone()))
        }
    });
    let (method, uri) = (req.method().clone(), req.uri().clone());
    async move {
        // Boxed: HTTP/2 spawns each stream as a task, and moving the whole request state
        // machine into it cost more than one allocation. Built in the box (`Box::pin` of
        // it memcpy'd its kilobytes: ~650 instructions per request).
        let handling = Box::write(Box::new_uninit(), stack::handle(edge, info, req));
        let answered = crate::request::rescue::Caught(Box::into_pin(handling))
            .await
            .unwrap_or_else(|()| Ok(crate::request::rescue::internal_error(&method, uri.path())));
        match answered {
            // The connection stays busy until the body has been sent, however slowly the
            // client reads it.
            Ok(resp) if !http_body::Body::is_end_stream(resp.body()) => {
                Ok(resp.map(|b| crate::wire::body::Body::Held(Box::new(b), guard)))
            }
            other => other,
        }
    }
}

/// One task for all connections (per-connection timer tasks cost ~1 KiB each and a wake per
/// tick): every `tick` it looks at each connection's activity counter and raises
/// [`SIGNAL_PARK`] on a parkable connection quiet for `park_after` (nothing in flight),
/// [`SIGNAL_CLOSE`] on one quiet for `idle`, and [`SIGNAL_SHUTDOWN`] on all at shutdown.
/// Quiet time is counted in whole ticks, so an idle connection closes between `idle` and
/// `idle + tick` after its last byte. 10,000 connections cost about 50 µs a sweep.
pub(crate) async fn sweep(
    conns: Arc<Registry>,
    park_after: Duration,
    idle: Duration,
    token: CancellationToken,
) {
    let park_after = park_after.min(idle);
    let tick = (park_after / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let park_ticks = park_after.as_nanos().div_ceil(tick.as_nanos()).max(1);
    let idle_ticks = idle.as_nanos().div_ceil(tick.as_nanos()).max(1);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = interval.tick() => {}
        }
        for (_, a) in conns.lock().iter() {
            // `seen` holds ticks + 1, so 0 is "never looked at": a connection accepted just
            // before this tick starts its quiet time here, not one tick in the past.
            let now = a.ticks().wrapping_add(1);
            if now != a.seen.load(Ordering::Relaxed) || a.inflight.load(Ordering::Relaxed) != 0 {
                a.seen.store(now, Ordering::Relaxed);
                a.quiet.store(0, Ordering::Relaxed);
                continue;
            }
            let quiet = u128::from(a.quiet.load(Ordering::Relaxed)) + 1;
            a.quiet
                .store(u32::try_from(quiet).unwrap_or(u32::MAX), Ordering::Relaxed);
            if quiet >= idle_ticks {
                a.raise(SIGNAL_CLOSE);
            } else if quiet >= park_ticks {
                // A busy HTTP/1.1 connection parks in its task; one parked there that could
                // go to the lot goes (a plain one between requests parks in its task at
                // once, so it reaches the lot park_after after its last byte).
                let parked = a.parked.load(Ordering::Relaxed);
                if (parked == PARKED_NO && a.parkable.load(Ordering::Relaxed))
                    || parked == PARKED_MOVABLE
                {
                    a.raise(SIGNAL_PARK);
                }
            }
        }
    }
    for (_, a) in conns.lock().iter() {
        a.raise(SIGNAL_SHUTDOWN);
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
    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.activity.touch();
                self.activity.unflushed.store(true, Ordering::Relaxed);
            }
            Poll::Pending => self.activity.unflushed.store(true, Ordering::Relaxed),
            _ => {}
        }
    }
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
        self.wrote(&r);
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.activity.unflushed.store(false, Ordering::Relaxed);
        }
        r
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
