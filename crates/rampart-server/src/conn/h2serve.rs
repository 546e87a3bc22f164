//! HTTP/2 client connections served on the h2 crate directly, not through hyper's server.
//!
//! callgrind, h2load `-c4 -m10`, a fixed answer of 12 headers and 100 bytes: the h2
//! crate alone 29.2k instructions per request, the same through hyper's HTTP/2 server
//! 34.3k (its stream future, body wrappers, header passes). What hyper's layer did that
//! an edge needs is here: the connection's limits and windows, one task per stream whose
//! work is dropped when the client resets the stream, connection-specific headers
//! stripped from answers, `Date` added when missing, `Content-Length` from a body of known
//! size, and the request body's `Content-Length` kept as its size (the proxy forwards it
//! with a length, not chunked). A graceful close (idle, reload, shutdown) sends GOAWAY
//! and lets the streams under way finish.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::request::stack::CloseConnection;
use crate::wire::activity::{Activity, SIGNAL_NONE, SIGNAL_PARK};
use crate::wire::body::Body;
use crate::wire::h2body::{content_length, H2Body};

/// hyper's server defaults, kept: a 1 MiB window per stream and per connection (an
/// upload is not throttled to 64 KiB per round trip), 16 KiB frames, 400 KiB buffered
/// per stream before a slow reader holds the sender back.
const WINDOW: u32 = 1024 * 1024;
const MAX_FRAME: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 400 * 1024;

/// Serves HTTP/2 on `io` (the client preface not yet read) until the client closes,
/// the connection fails, or `activity` is signalled to close (then gracefully).
/// `handle` answers one request.
pub(super) async fn serve<T, H, F>(
    io: T,
    s: &rampart_config::runtime::Server,
    activity: &Arc<Activity>,
    handle: H,
) where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<Body>) -> F,
    F: Future<Output = Result<Response<Body>, CloseConnection>> + Send + 'static,
{
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(s.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(s.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(Some(1024))
        .max_header_list_size(u32::try_from(s.max_header_size).unwrap_or(u32::MAX))
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_send_buffer_size(MAX_SEND_BUFFER);
    let mut conn = match b.handshake::<_, Bytes>(io).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/2 handshake failed");
            return;
        }
    };
    let mut closing = false;
    loop {
        let next = std::future::poll_fn(|cx| {
            if !closing {
                match activity.signal.load(Ordering::Acquire) {
                    SIGNAL_NONE => {}
                    // Never parked: an HTTP/2 connection keeps its state.
                    SIGNAL_PARK => activity.take_park(),
                    _ => return Poll::Ready(None),
                }
            }
            conn.poll_accept(cx).map(Some)
        })
        .await;
        match next {
            None => {
                conn.graceful_shutdown();
                closing = true;
            }
            Some(Some(Ok((req, respond)))) => {
                let length = content_length(req.headers());
                // CONNECT opens no tunnel here (as with hyper's server without upgrades):
                // whatever follows its head is not a body.
                let connect = req.method() == http::Method::CONNECT;
                let req = req.map(|recv| {
                    if connect {
                        Body::Empty
                    } else {
                        Body::H2(H2Body::new(recv, length))
                    }
                });
                // Built in its box: the task holds a pointer, not the stream's state
                // moved through the spawn.
                let task = Box::write(Box::new_uninit(), stream(handle(req), respond));
                tokio::spawn(Box::into_pin(task));
            }
            Some(Some(Err(e))) => {
                tracing::debug!(error = %e, "HTTP/2 connection ended");
                break;
            }
            Some(None) => break,
        }
    }
}

/// The client preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain connection (`server.h2c`) opens with the HTTP/2 preface, looking at its
/// first bytes without taking them: `Some(false)` as soon as they differ from it, `None`
/// when the connection ends, or the sweep closes it (idle, shutdown), before that shows.
pub(super) async fn sniff(stream: &tokio::net::TcpStream, activity: &Activity) -> Option<bool> {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = std::future::poll_fn(|cx| {
            match activity.signal.load(Ordering::Acquire) {
                SIGNAL_NONE => {}
                SIGNAL_PARK => activity.take_park(),
                _ => return Poll::Ready(None),
            }
            let mut rb = tokio::io::ReadBuf::new(&mut buf);
            stream.poll_peek(cx, &mut rb).map(|r| r.ok())
        })
        .await?;
        if n == 0 {
            return None;
        }
        if buf[..n] != PREFACE[..n] {
            return Some(false);
        }
        if n == PREFACE.len() {
            return Some(true);
        }
        // A prefix of the preface so far: wait for more bytes (peek sees them all again).
        // A peek that finds bytes leaves the socket marked readable, so the next one would
        // return at once and a client sending one byte (`P`) would keep a core spinning
        // until the idle timeout. The mark is cleared only through `try_io`, and only
        // when a peek inside it finds nothing new: bytes arriving meanwhile renew it.
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); PREFACE.len()];
        let grown = stream.try_io(
            tokio::io::Interest::READABLE,
            || match socket2::SockRef::from(stream).peek(&mut probe)? {
                m if m > n => Ok(()),
                _ => Err(std::io::ErrorKind::WouldBlock.into()),
            },
        );
        if let Err(e) = grown {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                return None;
            }
        }
    }
}

/// One stream: its answer (dropped unanswered when the client resets the stream), then
/// the answer's head and body.
async fn stream<F>(answer: F, mut respond: h2::server::SendResponse<Bytes>)
where
    F: Future<Output = Result<Response<Body>, CloseConnection>>,
{
    let mut answer = std::pin::pin!(answer);
    let answered = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = answer.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        respond.poll_reset(cx).map(|_| None)
    })
    .await;
    let resp = match answered {
        Some(Ok(r)) => r,
        Some(Err(CloseConnection)) => {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
        None => return,
    };
    let (parts, body) = resp.into_parts();
    let mut head = Response::from_parts(parts, ());
    let h = head.headers_mut();
    strip_connection_headers(h);
    if !h.contains_key(header::DATE) {
        h.insert(header::DATE, date());
    }
    let eos = body.is_end_stream();
    if !eos && !h.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = body.size_hint().exact() {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    match respond.send_response(head, eos) {
        Ok(send) if !eos => crate::handler::proxy::Pump::new(body, send).await,
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "HTTP/2 answer not sent"),
    }
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2): the h2 crate refuses an answer with any of
/// them, so they go, as hyper's server removed them.
fn strip_connection_headers(h: &mut HeaderMap) {
    const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: http::HeaderName = http::HeaderName::from_static("proxy-connection");
    // One pass over the few names of an answer, not a hash lookup per forbidden name.
    let forbidden = |n: &http::HeaderName| {
        *n == header::CONNECTION
            || *n == header::TRANSFER_ENCODING
            || *n == header::UPGRADE
            || *n == header::TE
            || *n == KEEP_ALIVE
            || *n == PROXY_CONNECTION
    };
    if !h.keys().any(forbidden) {
        return;
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ] {
        h.remove(name);
    }
    if h.get(header::TE).is_some_and(|v| v != "trailers") {
        h.remove(header::TE);
    }
}

thread_local! {
    /// The `Date` value, made once per second per thread.
    static DATE: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

fn date() -> HeaderValue {
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        let now = std::time::SystemTime::now();
        let secs = now
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs());
        if d.0 != secs {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                *d = (secs, v);
            }
        }
        d.1.clone()
    })
}
