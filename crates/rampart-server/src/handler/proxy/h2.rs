//! HTTP/2 to upstreams (`protocol = "h2"`: ALPN `h2` over TLS, prior knowledge (h2c) in
//! plain; `"auto"`: TLS, and HTTP/2 when the server's ALPN picks it). Requests to a server
//! share multiplexed connections: the least busy one takes the next stream, and when every
//! connection carries [`STREAMS_PER_CONN`] streams another is opened (up to [`MAX_CONNS`];
//! beyond, streams queue inside h2 for the server's `SETTINGS_MAX_CONCURRENT_STREAMS`). A
//! connection that closes or fails is dropped and replaced by the next request. This is what
//! gRPC needs: trailers (`grpc-status`, `grpc-message`) pass in both
//! directions as HTTP/2 trailers, `TE: trailers` is forwarded, and bodies stream frame by
//! frame both ways (client, server and bidirectional streaming).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body::{Body as _, Frame};

use crate::wire::h2body::H2Body;

use super::{strip_hop_by_hop, Forwarding, Inflight, Picked, Pool, ProxyError, Server};
use crate::wire::body::{Body, BoxError};

/// A server's shared HTTP/2 connection: the `h2` crate's client, used directly. (hyper's
/// client on top of it spawned two tasks per request, one for the answer and one for the
/// request body, each with a 1.4 KiB future, and passed every request through a channel to
/// the connection's task: ~20 % of a proxied gRPC call's instructions.)
pub(super) type Sender = ::h2::client::SendRequest<Bytes>;

/// Streams one connection carries before the next request opens another: below the 100
/// to 128 concurrent streams servers commonly allow, so a request seldom waits for one.
const STREAMS_PER_CONN: usize = 100;
/// Connections per server at most.
const MAX_CONNS: usize = 8;
/// A connection is pinged this often, and closed when the answer takes longer than
/// [`PING_TIMEOUT`]: a server gone without a FIN (a host down, a middlebox's table
/// flushed) is noticed instead of holding requests until their timeout.
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// What a connection's users share: its streams in flight, and whether it has ended.
#[derive(Debug, Default)]
pub(super) struct Shared {
    streams: AtomicUsize,
    closed: AtomicBool,
}

/// One HTTP/2 connection to a server, and its streams in flight.
#[derive(Debug)]
pub(super) struct Conn {
    sender: Sender,
    shared: Arc<Shared>,
}

/// A stream in flight on a connection: counted until the response body ends or is dropped.
#[derive(Debug)]
pub(super) struct Stream(Arc<Shared>);

impl Stream {
    fn on(shared: &Arc<Shared>) -> Self {
        shared.streams.fetch_add(1, Ordering::Relaxed);
        Self(shared.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The one connect under way to a server; when it ends (or its request is dropped), the
/// requests waiting for it are woken.
struct Connecting<'a>(&'a Server);

impl<'a> Connecting<'a> {
    fn begin(s: &'a Server) -> Option<Self> {
        s.h2_connecting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self(s))
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.h2_connecting.store(false, Ordering::Release);
        self.0.h2_connected.notify_waiters();
    }
}

/// What a fresh connection to a server of an `auto` pool turned out to speak.
pub(super) enum Fresh {
    H2(Sender, Arc<Shared>),
    /// The server chose HTTP/1.1: the connection is in its idle pool for the HTTP/1.1
    /// path, and the pool now knows.
    H1,
}

impl Pool {
    /// The least busy open HTTP/2 connection to `s`; `None` when there is none, or when
    /// every one carries [`STREAMS_PER_CONN`] streams and another may be opened.
    fn checkout_h2(&self, s: &Server) -> Option<(Sender, Arc<Shared>)> {
        let mut conns = s.h2.lock().ok()?;
        conns.retain(|c| !c.shared.closed.load(Ordering::Relaxed));
        let best = conns
            .iter()
            .min_by_key(|c| c.shared.streams.load(Ordering::Relaxed))?;
        if best.shared.streams.load(Ordering::Relaxed) >= STREAMS_PER_CONN
            && conns.len() < MAX_CONNS
        {
            return None;
        }
        Some((best.sender.clone(), best.shared.clone()))
    }

    /// A new HTTP/2 connection to `s`, kept as its shared one. Over TLS the server must
    /// choose `h2` by ALPN; in an `auto` pool, a server that chooses HTTP/1.1 makes the
    /// pool speak HTTP/1.1 (its connection goes to the idle pool).
    async fn connect_h2(&self, s: &Arc<Server>) -> std::io::Result<Fresh> {
        let tcp = self.tcp(s).await?;
        let (sender, shared) = match &self.tls {
            Some(tls) => {
                let stream = self.handshake(tls, tcp, s, false).await?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                if !h2 {
                    if self.config.protocol == rampart_config::runtime::UpstreamProtocol::Auto {
                        self.learn_h1();
                        let sender = super::handshake_h1(stream).await?;
                        if let Ok(mut idle) = s.idle.lock() {
                            idle.push(super::IdleConn {
                                sender,
                                since: std::time::Instant::now(),
                                keep: None,
                            });
                        }
                        return Ok(Fresh::H1);
                    }
                    return Err(std::io::Error::other(
                        "the server did not choose HTTP/2 by ALPN (it offers only HTTP/1.1)",
                    ));
                }
                handshake(stream).await?
            }
            None => handshake(tcp).await?,
        };
        if let Ok(mut conns) = s.h2.lock() {
            if conns.len() < MAX_CONNS {
                conns.push(Conn {
                    sender: sender.clone(),
                    shared: shared.clone(),
                });
            }
        }
        Ok(Fresh::H2(sender, shared))
    }

    /// Sends `req` over HTTP/2 to a server of this pool. `Ok(Err(…))` hands the request
    /// back when an `auto` pool's server chose HTTP/1.1 (the caller sends it that way).
    ///
    /// # Errors
    /// As [`Pool::forward`]; a gRPC deadline (`grpc-timeout`) that passes before the
    /// answer is [`ProxyError::Deadline`], not held against the server (the client chose
    /// it).
    pub(super) async fn forward_h2(
        self: &Arc<Self>,
        req: Request<Body>,
        fwd: Forwarding,
    ) -> Result<Result<(Response<Body>, Arc<Server>), (Request<Body>, Forwarding)>, ProxyError>
    {
        let rid = fwd.request_id.clone();
        let rid = rid.to_str().unwrap_or_default();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        // `:authority` is the client's host, as `Host` is on HTTP/1.1.
        let authority = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let fwd_te = fwd.te_trailers;
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(scheme.parse().map_err(|_| ProxyError::Protocol)?);
        parts.authority = authority.and_then(|a| a.parse().ok());
        let mut attempts = self.attempts();
        loop {
            let (idx, server, (sender, shared), reused) = match self
                .idle(&attempts, |s| self.checkout_h2(s))?
            {
                Picked::Idle((idx, server, c, _)) => (idx, server, c, true),
                Picked::Miss(idx, server) => {
                    // One connect at a time per server: the requests that arrive meanwhile
                    // wait, are woken all at once when it ends, and look again (they take
                    // the new connection's streams instead of each opening their own).
                    // Behind a mutex they were let through one by one, each after a trip
                    // through the scheduler: a cold start's first burst of ~320 streams
                    // waited up to ~140 ms.
                    let connecting = server.clone();
                    let Some(_one) = Connecting::begin(&connecting) else {
                        let woken = server.h2_connected.notified();
                        tokio::pin!(woken);
                        woken.as_mut().enable();
                        if server.h2_connecting.load(Ordering::Acquire) {
                            woken.await;
                        }
                        continue;
                    };
                    match self.checkout_h2(&server) {
                        Some(c) => (idx, server, c, true),
                        // Boxed: see `Pool::forward`.
                        None => match Box::pin(self.connect_h2(&server)).await {
                            Ok(Fresh::H2(c, shared)) => (idx, server, (c, shared), false),
                            Ok(Fresh::H1) => return Ok(Err((req, fwd))),
                            Err(e) => {
                                tracing::warn!(upstream = %self.name, server = %server.authority, request_id = rid, error = %e, "upstream connect failed");
                                self.next_server(&server, idx, &mut attempts)?;
                                continue;
                            }
                        },
                    }
                }
            };
            if parts.authority.is_none() {
                parts.authority = server.authority.parse().ok();
            }
            let stream = Stream::on(&shared);
            let Ok(mut sender) = sender.ready().await else {
                // The connection ended (the server's GOAWAY, a reset): forget it; the next
                // turn takes another or opens a new one.
                shared.closed.store(true, Ordering::Relaxed);
                if !reused {
                    self.next_server(&server, idx, &mut attempts)?;
                }
                continue;
            };
            let inflight = Inflight::new(&server);
            let (mut head, body) = req.into_parts();
            head.uri = Uri::from_parts(parts).map_err(|_| ProxyError::Protocol)?;
            head.version = Version::HTTP_2;
            fwd.apply(&mut head.headers);
            head.headers.remove(header::HOST);
            if fwd_te {
                head.headers
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
            // A request body is watched: when it fails or stalls, the client is to blame.
            let watch =
                (!body.is_end_stream()).then(|| Arc::new(crate::wire::body::BodyWatch::default()));
            let body = match &watch {
                Some(w) => Body::Watched(Box::new(body), w.clone()),
                None => body,
            };
            let out = Request::from_parts(head, body);
            let grpc_deadline = deadline(out.headers()).filter(|d| *d < self.response_timeout);
            let timeout = grpc_deadline.unwrap_or(self.response_timeout);
            let sent = tokio::time::timeout(timeout, exchange(&mut sender, out)).await;
            let mut resp = match sent {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => {
                    if watch.as_ref().is_some_and(|w| w.failed()) || e.is_user() {
                        return Err(ProxyError::ClientBody);
                    }
                    tracing::warn!(upstream = %self.name, server = %server.authority, request_id = rid, error = %e, "upstream request failed");
                    self.record_failure(&server);
                    return Err(ProxyError::H2(e.0));
                }
                Err(_) if grpc_deadline.is_some() => return Err(ProxyError::Deadline),
                Err(_) if watch.as_ref().is_some_and(|w| !w.done()) => {
                    return Err(ProxyError::ClientTimeout);
                }
                Err(_) => return Err(self.timed_out(&server, rid)),
            };
            strip_hop_by_hop(resp.headers_mut(), false);
            let resp = resp.map(|recv| {
                Body::stream(RecvBody {
                    body: H2Body::answer(recv),
                    _inflight: Some(inflight),
                    _stream: Some(stream),
                })
            });
            return Ok(Ok((resp, server)));
        }
    }
}

/// An HTTP/2 client connection on `io`, driven by a task of its own (which also pings
/// it, see [`PING_EVERY`]) until it ends or every handle to it is gone.
pub(super) async fn handshake<T>(io: T) -> std::io::Result<(Sender, Arc<Shared>)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // hyper's client settings, which this replaced.
    let (sender, mut conn) = ::h2::client::Builder::new()
        .initial_max_send_streams(100)
        .initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .max_frame_size(16 << 10)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(1 << 20)
        .max_local_error_reset_streams(Some(1024))
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(std::io::Error::other)?;
    let shared = Arc::new(Shared::default());
    let ended = shared.clone();
    let pings = conn.ping_pong();
    tokio::spawn(async move {
        let alive = async move {
            let Some(mut pings) = pings else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(PING_EVERY).await;
                let pong = tokio::time::timeout(PING_TIMEOUT, pings.ping(::h2::Ping::opaque()));
                if !matches!(pong.await, Ok(Ok(_))) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = &mut conn => {}
            () = alive => tracing::debug!("an upstream HTTP/2 connection did not answer a ping; closed"),
        }
        ended.closed.store(true, Ordering::Relaxed);
    });
    Ok((sender, shared))
}

/// Why an exchange failed.
#[derive(Debug)]
pub(super) struct ExchangeError(::h2::Error);

impl ExchangeError {
    /// The request was refused before it went out (its head malformed for HTTP/2).
    fn is_user(&self) -> bool {
        // Resets and GOAWAYs carry a reason; an I/O error is the connection's.
        self.0.reason().is_none() && !self.0.is_io()
    }
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Sends `req` on `sender` and waits for the answer's head. The request body is sent by
/// this future meanwhile; if it has not ended when the answer arrives (a streaming call),
/// a task of its own finishes it.
pub(super) async fn exchange(
    sender: &mut Sender,
    req: Request<Body>,
) -> Result<Response<::h2::RecvStream>, ExchangeError> {
    let (head, body) = req.into_parts();
    let eos = body.is_end_stream();
    let (mut answer, send) = sender
        .send_request(Request::from_parts(head, ()), eos)
        .map_err(ExchangeError)?;
    let mut pump = (!eos).then(|| Pump::new(body, send));
    let got = std::future::poll_fn(|cx| {
        if let Some(p) = pump.as_mut() {
            if Pin::new(p).poll(cx).is_ready() {
                pump = None;
            }
        }
        Pin::new(&mut answer).poll(cx)
    })
    .await;
    if let (Ok(_), Some(p)) = (&got, pump) {
        tokio::spawn(p);
    }
    got.map_err(ExchangeError)
}

/// A request body on its way to an HTTP/2 stream, frame by frame within the stream's
/// flow-control window. A body that fails resets the stream (the upstream never takes a
/// truncated body for a whole one).
struct Pump {
    body: Body,
    send: ::h2::SendStream<Bytes>,
    /// A chunk read from the body, waiting for window (and whether it was the last).
    chunk: Option<(Bytes, bool)>,
}

impl Pump {
    /// `body` to go out on `send` (its head already sent, not ending the stream).
    fn new(body: Body, send: ::h2::SendStream<Bytes>) -> Self {
        Self {
            body,
            send,
            chunk: None,
        }
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.get_mut();
        loop {
            // The upstream reset the stream: nothing more to send (its answer says why).
            if me.send.poll_reset(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some((_, eos)) = &me.chunk {
                let eos = *eos;
                while me.send.capacity() == 0 {
                    match ready!(me.send.poll_capacity(cx)) {
                        Some(Ok(_)) => {}
                        // The stream is over (reset or closed).
                        Some(Err(_)) | None => return Poll::Ready(()),
                    }
                }
                let Some((data, _)) = me.chunk.take() else {
                    return Poll::Ready(());
                };
                if me.send.send_data(data, eos).is_err() || eos {
                    return Poll::Ready(());
                }
                continue;
            }
            match ready!(Pin::new(&mut me.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let eos = me.body.is_end_stream();
                        if data.is_empty() {
                            if me.send.send_data(data, eos).is_err() || eos {
                                return Poll::Ready(());
                            }
                            continue;
                        }
                        // A small claim on the window (h2 raises it to what is buffered
                        // when the chunk is sent): claiming the whole chunk up front can
                        // starve other streams of a peer that updates windows late.
                        me.send.reserve_capacity(1);
                        me.chunk = Some((data, eos));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            me.send.reserve_capacity(0);
                            let _ = me.send.send_trailers(trailers);
                            return Poll::Ready(());
                        }
                    }
                },
                Some(Err(_)) => {
                    me.send.send_reset(::h2::Reason::CANCEL);
                    return Poll::Ready(());
                }
                None => {
                    let _ = me.send.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// An upstream's HTTP/2 response body ([`H2Body::answer`]). It holds the server's
/// in-flight count and its stream's place on the connection until it ends or is dropped.
pub(super) struct RecvBody {
    body: H2Body,
    _inflight: Option<Inflight>,
    _stream: Option<Stream>,
}

impl RecvBody {
    /// A body for an exchange outside a request (a health check).
    pub(super) fn bare(recv: ::h2::RecvStream) -> Self {
        Self {
            body: H2Body::answer(recv),
            _inflight: None,
            _stream: None,
        }
    }
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// A gRPC call's deadline (`grpc-timeout`: up to 8 digits and a unit, H M S m u n).
pub(crate) fn deadline(h: &http::HeaderMap) -> Option<std::time::Duration> {
    let v = h.get("grpc-timeout")?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    use std::time::Duration;
    Some(match unit {
        b"H" => Duration::from_secs(n.saturating_mul(3600)),
        b"M" => Duration::from_secs(n.saturating_mul(60)),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}
