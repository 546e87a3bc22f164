//! HTTP/2 to upstreams (`protocol = "h2"`: ALPN `h2` over TLS, prior knowledge (h2c) in
//! plain; `"auto"`: TLS, and HTTP/2 when the server's ALPN picks it). Requests to a server
//! share multiplexed connections: the least busy one takes the next stream, and when every
//! connection carries [`STREAMS_PER_CONN`] streams another is opened (up to [`MAX_CONNS`];
//! beyond, a request waits for a stream under the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`). A connection that closes or fails is dropped and
//! replaced by the next request. The connections are rampart's own HTTP/2 client
//! ([`super::h2conn`]). This is what
//! gRPC needs: trailers (`grpc-status`, `grpc-message`) pass in both
//! directions as HTTP/2 trailers, `TE: trailers` is forwarded, and bodies stream frame by
//! frame both ways (client, server and bidirectional streaming).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header;
use http::{Request, Response, Uri, Version};
use http_body::{Body as _, Frame};

use super::h2conn::{AnswerBody, Client};
use super::{strip_hop_by_hop, Forwarding, Inflight, Picked, Pool, ProxyError, Server};
use crate::wire::body::{Body, BoxError};

/// Streams one connection carries before the next request opens another: below the 100
/// to 128 concurrent streams servers commonly allow, so a request seldom waits for one.
const STREAMS_PER_CONN: usize = 100;
/// Connections per server at most.
const MAX_CONNS: usize = 8;
/// What a connection's users share: its streams in flight.
#[derive(Debug, Default)]
pub(super) struct Shared {
    streams: AtomicUsize,
}

/// One HTTP/2 connection to a server, and its streams in flight.
#[derive(Debug)]
pub(super) struct Conn {
    client: Client,
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
    H2(Client, Arc<Shared>),
    /// The server chose HTTP/1.1: the connection is in its idle pool for the HTTP/1.1
    /// path, and the pool now knows.
    H1,
}

impl Pool {
    /// The least busy open HTTP/2 connection to `s`; `None` when there is none, or when
    /// every one carries [`STREAMS_PER_CONN`] streams and another may be opened.
    fn checkout_h2(&self, s: &Server) -> Option<(Client, Arc<Shared>)> {
        let mut conns = s.h2.lock().ok()?;
        conns.retain(|c| !c.client.is_closed());
        let best = conns
            .iter()
            .min_by_key(|c| c.shared.streams.load(Ordering::Relaxed))?;
        if best.shared.streams.load(Ordering::Relaxed) >= STREAMS_PER_CONN
            && conns.len() < MAX_CONNS
        {
            return None;
        }
        Some((best.client.clone(), best.shared.clone()))
    }

    /// A new HTTP/2 connection to `s`, kept as its shared one. Over TLS the server must
    /// choose `h2` by ALPN; in an `auto` pool, a server that chooses HTTP/1.1 makes the
    /// pool speak HTTP/1.1 (its connection goes to the idle pool).
    async fn connect_h2(&self, s: &Arc<Server>) -> std::io::Result<Fresh> {
        let tcp = self.tcp(s).await?;
        let client = match &self.tls {
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
                Client::handshake(stream)
            }
            None => Client::handshake(tcp),
        };
        let shared = Arc::new(Shared::default());
        if let Ok(mut conns) = s.h2.lock() {
            if conns.len() < MAX_CONNS {
                conns.push(Conn {
                    client: client.clone(),
                    shared: shared.clone(),
                });
            }
        }
        Ok(Fresh::H2(client, shared))
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
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(scheme.parse().map_err(|_| ProxyError::Protocol)?);
        parts.authority = authority.and_then(|a| a.parse().ok());
        let mut attempts = self.attempts();
        loop {
            let (idx, server, (client, shared), reused) = match self
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
            if client.is_closed() {
                // The connection ended (the server's GOAWAY, a failure): the next turn
                // takes another or opens a new one.
                if !reused {
                    self.next_server(&server, idx, &mut attempts)?;
                }
                continue;
            }
            let stream = Stream::on(&shared);
            let inflight = Inflight::new(&server);
            let (mut head, body) = req.into_parts();
            head.uri = Uri::from_parts(parts).map_err(|_| ProxyError::Protocol)?;
            head.version = Version::HTTP_2;
            // The forwarding headers (and `TE: trailers`) are encoded after the client's
            // own, which skip them: no map insertions (~3.5k instructions per call).
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
            let sent = tokio::time::timeout(timeout, client.send_with(out, fwd)).await;
            let mut resp = match sent {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => {
                    if watch.as_ref().is_some_and(|w| w.failed()) {
                        return Err(ProxyError::ClientBody);
                    }
                    tracing::warn!(upstream = %self.name, server = %server.authority, request_id = rid, error = %e, "upstream request failed");
                    self.record_failure(&server);
                    return Err(ProxyError::Io(std::io::Error::other(e)));
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
                    body: recv,
                    _inflight: inflight,
                    _stream: stream,
                })
            });
            return Ok(Ok((resp, server)));
        }
    }
}

/// An upstream's HTTP/2 response body. It holds the server's in-flight count and its
/// stream's place on the connection until it ends or is dropped.
pub(super) struct RecvBody {
    body: AnswerBody,
    _inflight: Inflight,
    _stream: Stream,
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
