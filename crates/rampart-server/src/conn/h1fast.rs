//! The HTTP/1.1 fast path: simple requests (GET or HEAD, no body, no upgrade, no `Expect`)
//! are parsed with httparse and answered here, writing the response head in one buffer;
//! anything else is handed to hyper with the bytes already read, and hyper serves the
//! connection from there (until it parks and comes back here).
//!
//! Why: on a keep-alive connection hyper's per-request machinery (dispatcher, header-map
//! growth, response encoding) measured ~20k instructions per static file answer against
//! nginx's 11.8k (callgrind). The slow and rare cases (bodies, chunked uploads, `Expect`,
//! upgrades, malformed requests and their error answers) stay with hyper, whose handling
//! of them is well tested; this path only ever sees requests it can frame trivially.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use http_body::Body as _;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite};

use super::serving::Serving;
use crate::policy::rate_limit::RateHeaders;
use crate::request::connection::ConnInfo;
use crate::request::stack;
use crate::wire::activity::{Activity, InflightGuard, SIGNAL_NONE, SIGNAL_PARK};
use crate::wire::body::Body;
use crate::wire::spares;

/// Most headers parsed on the stack; requests with more go to hyper (which applies
/// `max_headers`).
const STACK_HEADERS: usize = 64;

/// How the fast path left a connection.
pub(crate) enum Left {
    /// Closed (by either side, an error, or a close/shutdown signal).
    Closed,
    /// Idle at a request boundary and asked to park: nothing is buffered.
    Park,
    /// A request this path does not serve: these bytes (from its first byte on) go to hyper.
    Handoff(Bytes),
}

#[allow(clippy::large_enum_variant)] // built and consumed at once, never stored
enum Parsed {
    /// A request this path serves (its head taken out of the buffer), and keep-alive.
    Simple(Request<Body>, bool),
    /// Not complete yet.
    Partial,
    /// A complete head over `max_header_size`.
    TooLarge,
    /// Anything else.
    Other,
}

/// hyper's own answer to an oversized head, with the connection closed after it.
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Serves simple requests on `io` until one is not simple, the connection ends, or it is
/// asked to park.
pub(crate) async fn serve<T>(
    io: &mut T,
    serving: &Arc<Serving>,
    info: &ConnInfo,
    activity: &Arc<Activity>,
) -> Left
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let edge = serving.edge();
    let s = &edge.config.server;
    let info = &ConnInfo {
        raw_head: true,
        ..info.clone()
    };
    let mut buf = BytesMut::new();
    let mut out: Vec<u8> = Vec::new();
    let mut head_started: Option<tokio::time::Instant> = None;
    loop {
        // Parse what is there first: pipelined requests need no read.
        if !buf.is_empty() {
            match parse(
                &mut buf,
                s.max_headers.min(STACK_HEADERS),
                s.max_header_size,
            ) {
                Parsed::Simple(req, keep_alive) => {
                    head_started = None;
                    // Boxed, and built in the box (`Box::pin` of it memcpy'd its ~7 KiB):
                    // a request's whole state lives only while it is answered, and a
                    // connection waiting for its next request holds ~700 bytes here, not
                    // room for it.
                    let answering = Box::write(
                        Box::new_uninit(),
                        answer(io, serving, info, activity, req, keep_alive, &mut out),
                    );
                    match Box::into_pin(answering).await {
                        Ok(true) => continue,
                        Ok(false) => {
                            // A clean end: TLS sends its close_notify, TCP its FIN.
                            let shut = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx));
                            let _ =
                                tokio::time::timeout(std::time::Duration::from_secs(1), shut).await;
                            return Left::Closed;
                        }
                        Err(_) => return Left::Closed,
                    }
                }
                Parsed::Other => return Left::Handoff(buf.freeze()),
                Parsed::TooLarge => return too_large(io).await,
                Parsed::Partial => {
                    // Everything buffered belongs to the head: more than the limit and no
                    // end yet is over it, byte-exact.
                    if buf.len() > s.max_header_size {
                        return too_large(io).await;
                    }
                    head_started.get_or_insert_with(tokio::time::Instant::now);
                }
            }
        }
        match read(
            io,
            &mut buf,
            &mut out,
            activity,
            head_started.map(|t| t + s.header_read_timeout),
        )
        .await
        {
            Ev::Data => {}
            Ev::Park => return Left::Park,
            Ev::Closed => return Left::Closed,
        }
    }
}

/// Answers 431 and closes: the rest of an oversized head is never read.
async fn too_large<T: AsyncWrite + Unpin>(io: &mut T) -> Left {
    if write_all(io, &mut [IoSlice::new(TOO_LARGE)]).await.is_ok() {
        let _ = poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await;
        let shut = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), shut).await;
    }
    Left::Closed
}

enum Ev {
    Data,
    Park,
    Closed,
}

/// Reads more bytes, or reports a park (only with nothing buffered), a close signal, EOF,
/// an error, or an expired head deadline.
///
/// A connection waiting for its next request holds no buffer: when nothing is buffered and
/// nothing can be read, the read buffer and the response-head buffer (`out`) go back to
/// the worker's spares ([`spares`]) and are taken again when bytes arrive, as nginx frees
/// its per-request buffers. Keeping them until the connection parked cost ~9 KiB per
/// connection between requests (the 10,000-connection ramp peaked 8 MiB higher, and
/// mimalloc kept most of it after the connections parked).
async fn read<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    activity: &Activity,
    deadline: Option<tokio::time::Instant>,
) -> Ev {
    let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
    poll_fn(|cx| {
        if buf.capacity() == 0 {
            *buf = spares::buf();
        }
        buf.reserve(spares::READ_SIZE);
        match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
            Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Ev::Closed),
            Poll::Ready(Ok(_)) => return Poll::Ready(Ev::Data),
            Poll::Pending if buf.is_empty() => {
                spares::give_buf(std::mem::take(buf));
                spares::give_out(std::mem::take(out));
            }
            Poll::Pending => {}
        }
        if let Some(s) = &mut sleep {
            if s.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ev::Closed);
            }
        }
        match activity.signal.load(Ordering::Acquire) {
            SIGNAL_NONE => Poll::Pending,
            SIGNAL_PARK => {
                activity.take_park();
                if buf.is_empty() {
                    Poll::Ready(Ev::Park)
                } else {
                    Poll::Pending
                }
            }
            _ => Poll::Ready(Ev::Closed),
        }
    })
    .await
}

/// Parses one request head; `Simple` only for a request with no body that needs nothing
/// hyper does beyond framing. A simple request's head is split off `buf` and shared by the
/// request (target and header values are slices of it, not copies); the buffer's memory is
/// reused for the next read once the request is gone. Any head over `max_head` bytes
/// (request line, header lines and the blank line) is `TooLarge`, whatever its method:
/// the first request of a connection handed to hyper is held to the limit here, exactly.
fn parse(buf: &mut BytesMut, max_headers: usize, max_head: usize) -> Parsed {
    let mut storage = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut r = httparse::Request::new(&mut storage[..max_headers.max(1)]);
    let len = match r.parse(&buf[..]) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Parsed::TooLarge,
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let method = match r.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::Other,
    };
    let version = match r.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Parsed::Other,
    };
    let Some(path) = r.path else {
        return Parsed::Other;
    };
    let base = buf.as_ptr() as usize;
    let offsets = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    let target = offsets(path.as_bytes());
    let mut fields: SmallVec<[(HeaderName, u32, u32); 12]> = SmallVec::new();
    let mut keep_alive = version == Version::HTTP_11;
    for h in r.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Parsed::Other;
        };
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return Parsed::Other;
        }
        if name == header::CONNECTION {
            for t in h.value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
                    keep_alive = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Other;
                }
            }
        }
        let (start, end) = offsets(h.value);
        // Offsets fit: the buffer holds at most `max_header_size` (≤ 1 MiB) plus one read.
        fields.push((name, start as u32, end as u32));
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = http::Uri::from_maybe_shared(head.slice(target.0..target.1)) else {
        // Not a target `http` takes: hyper answers it, from the same bytes (put back).
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return Parsed::Other;
    };
    // Room for the five forwarding headers a proxied request gets: the map never grows.
    let mut headers = spares::headers(fields.len() + 5);
    for (name, start, end) in fields.drain(..) {
        let (start, end) = (start as usize, end as usize);
        // INVARIANT: httparse accepts only bytes a `HeaderValue` takes (HTAB, SP-~, obs-text).
        if let Ok(v) = HeaderValue::from_maybe_shared(head.slice(start..end)) {
            headers.append(name, v);
        }
    }
    let mut req = Request::new(Body::Empty);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    Parsed::Simple(req, keep_alive)
}

/// Answers one request; `Ok(true)` when the connection stays open.
async fn answer<T>(
    io: &mut T,
    serving: &Arc<Serving>,
    info: &ConnInfo,
    activity: &Arc<Activity>,
    req: Request<Body>,
    mut keep_alive: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool>
where
    T: AsyncWrite + Unpin,
{
    activity.started.fetch_add(1, Ordering::Relaxed);
    let _busy = InflightGuard::new(activity.clone());
    let head_only = req.method() == Method::HEAD;
    let version = req.version();
    let edge = serving.edge();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    // Inline: this whole future is boxed by `serve`.
    let responding = std::pin::pin!(stack::respond(&edge, info, req, true));
    let answered = crate::request::rescue::Caught(responding)
        .await
        .unwrap_or_else(|()| {
            Ok((
                crate::request::rescue::internal_error(&method, uri.path()),
                None,
            ))
        });
    let Ok((resp, deferred)) = answered else {
        return Ok(false);
    };
    if activity.signal.load(Ordering::Acquire) > SIGNAL_PARK {
        keep_alive = false;
    }
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        keep_alive = false;
    }
    out.clear();
    if out.capacity() == 0 {
        *out = spares::out();
    }
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // An upstream's `Date` is kept (as hyper's server does), never sent twice.
    let (mut server, mut date) = (false, false);
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || deferred.is_some_and(|d| {
                d.policy.overrides(name) || (d.rate.is_some() && RateHeaders::overrides(name))
            })
        {
            continue;
        }
        server |= name == header::SERVER;
        date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // The header policy, as `headers::apply` would have set it.
    if let Some(d) = deferred {
        out.extend_from_slice(d.policy.lines(info.tls));
        if let Some(rate) = d.rate {
            rate.write(out);
        }
        if !server {
            out.extend_from_slice(b"server: rampart\r\n");
        }
    }
    if let Body::Head(raw, _) = &body {
        out.extend_from_slice(raw);
    }
    let mut chunked = false;
    if !bodiless && !head_only && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        match body.size_hint().exact() {
            Some(n) => {
                out.extend_from_slice(b"content-length: ");
                crate::wire::decimal::push(out, n);
                out.extend_from_slice(b"\r\n");
            }
            None if version == Version::HTTP_11 => {
                chunked = true;
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
            // HTTP/1.0 has no chunks: the end of the body is the end of the connection.
            None => keep_alive = false,
        }
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !date {
        out.extend_from_slice(b"date: ");
        with_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    spares::give_headers(parts.headers);
    if bodiless || head_only {
        write_all(io, &mut [IoSlice::new(out)]).await?;
    } else if let Body::Full(Some(b)) | Body::Head(_, Some(b)) = &body {
        write_all(io, &mut [IoSlice::new(out), IoSlice::new(b)]).await?;
    } else {
        // The head goes out with the first piece of body when that is ready at once (an
        // upstream's answer usually is): one write, not two.
        let mut body = Pin::new(&mut body);
        let mut head = Some(&out[..]);
        loop {
            let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    if let Some(h) = head.take() {
                        write_all(io, &mut [IoSlice::new(h)]).await?;
                    }
                    poll_fn(|cx| body.as_mut().poll_frame(cx)).await
                }
            };
            let data = match frame {
                None => Bytes::new(),
                // The body failed midway: the client must not take it for complete.
                Some(Err(_)) => return Ok(false),
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) if !d.is_empty() => d,
                    _ => continue,
                },
            };
            let last = data.is_empty() || body.is_end_stream();
            let mut size = [0u8; 18];
            let size = if chunked && !data.is_empty() {
                hex_size(data.len(), &mut size)
            } else {
                &[][..]
            };
            let trailer: &[u8] = match (chunked, data.is_empty(), last) {
                (false, _, _) => b"",
                (true, true, _) => b"0\r\n\r\n",
                (true, false, true) => b"\r\n0\r\n\r\n",
                (true, false, false) => b"\r\n",
            };
            let h = head.take().unwrap_or_default();
            write_all(
                io,
                &mut [
                    IoSlice::new(h),
                    IoSlice::new(size),
                    IoSlice::new(&data),
                    IoSlice::new(trailer),
                ],
            )
            .await?;
            if last {
                break;
            }
        }
    }
    poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await?;
    Ok(keep_alive)
}

async fn write_all<T: AsyncWrite + Unpin>(io: &mut T, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut bufs = bufs;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, bufs)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// `{len:x}\r\n`, a chunk's size line.
fn hex_size(n: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 16;
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[i..]
}

thread_local! {
    /// The `Date` value, formatted once per second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs());
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            let n = text.len().min(29);
            d.1[..n].copy_from_slice(&text.as_bytes()[..n]);
            d.0 = secs;
        }
        f(&d.1);
    });
}

/// Fuzzing entry point (the cargo-fuzz target `request_head` and the corpus replay test):
/// whatever the fast path takes as a simple request, hyper's own server reads as the same
/// request, the head limit holds to the byte, and a head left to hyper keeps its bytes.
#[cfg(any(test, feature = "fuzzing"))]
#[allow(clippy::unwrap_used, clippy::panic)] // a fuzz harness: a panic is its finding
pub fn fuzz_head(bytes: &[u8]) {
    const LIMIT: usize = 64 * 1024;
    let mut buf = BytesMut::from(bytes);
    let Parsed::Simple(req, _) = parse(&mut buf, STACK_HEADERS, LIMIT) else {
        assert_eq!(&buf[..], bytes, "a head left to hyper keeps its bytes");
        return;
    };
    let taken = bytes.len() - buf.len();
    assert!(taken <= LIMIT);
    assert_eq!(
        &buf[..],
        &bytes[taken..],
        "what follows the head stays buffered"
    );
    let exact = parse(&mut BytesMut::from(bytes), STACK_HEADERS, taken);
    assert!(
        matches!(exact, Parsed::Simple(..)),
        "a head of the limit is taken"
    );
    let over = parse(&mut BytesMut::from(bytes), STACK_HEADERS, taken - 1);
    assert!(
        matches!(over, Parsed::TooLarge),
        "a head one byte over is refused"
    );
    let Some((m, t, v, h)) = hyper_reading(&bytes[..taken]) else {
        panic!(
            "fast path accepted what hyper refuses: {:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    assert_eq!(
        (req.method().as_str(), req.uri().to_string(), req.version()),
        (m.as_str(), t, v)
    );
    let ours: Vec<(String, Vec<u8>)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(ours, h, "{:?}", String::from_utf8_lossy(bytes));
}

#[cfg(any(test, feature = "fuzzing"))]
/// Method, target, version and headers of a request as read.
pub(crate) type Reading = (String, String, Version, Vec<(String, Vec<u8>)>);

#[cfg(any(test, feature = "fuzzing"))]
/// What hyper's own HTTP/1 server makes of `bytes`: the request it hands the service
/// (method, target, version, headers), or `None` when it refuses them.
#[allow(clippy::unwrap_used, clippy::panic)] // a fuzz harness: a panic is its finding
pub(crate) fn hyper_reading(bytes: &[u8]) -> Option<Reading> {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            *s2.lock().unwrap() = Some((
                req.method().as_str().to_owned(),
                req.uri().to_string(),
                req.version(),
                headers,
            ));
            async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
        });
        let conn = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(server), svc),
        );
        let (mut r, mut w) = tokio::io::split(client);
        w.write_all(bytes).await.unwrap();
        w.shutdown().await.unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), r.read_to_end(&mut out)).await;
        conn.abort();
        let reading = seen.lock().unwrap().take();
        reading
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Parsed {
        parse(&mut BytesMut::from(s.as_bytes()), 64, 1024)
    }

    #[test]
    fn only_bodiless_requests_are_simple() {
        assert!(matches!(
            p("GET / HTTP/1.1\r\nhost: a\r\n\r\n"),
            Parsed::Simple(_, true)
        ));
        assert!(matches!(
            p("HEAD /x HTTP/1.0\r\n\r\n"),
            Parsed::Simple(_, false)
        ));
        assert!(matches!(
            p("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"),
            Parsed::Simple(_, true)
        ));
        assert!(matches!(
            p("GET / HTTP/1.1\r\nconnection: close\r\n\r\n"),
            Parsed::Simple(_, false)
        ));
        assert!(matches!(
            p("GET / HTTP/1.1\r\nhost: a\r\n"),
            Parsed::Partial
        ));
        for other in [
            "POST / HTTP/1.1\r\ncontent-length: 1\r\n\r\nx",
            "GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nbad header\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(p(other), Parsed::Other), "{other:?}");
        }
    }

    #[test]
    fn a_simple_head_is_split_off_and_shared() {
        let mut buf = BytesMut::from(
            &b"GET /a?b=1 HTTP/1.1\r\nhost: h\r\nx-v: \tv \xff\r\n\r\nGET /next"[..],
        );
        let Parsed::Simple(req, true) = parse(&mut buf, 64, 1024) else {
            panic!("not simple");
        };
        assert_eq!(&buf[..], b"GET /next", "a pipelined request stays buffered");
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.headers()["host"], "h");
        assert_eq!(req.headers()["x-v"].as_bytes(), b"v \xff");
        // A target `http` refuses goes to hyper whole, bytes in place.
        let raw = &b"GET http://[x/ HTTP/1.1\r\nhost: h\r\n\r\nGET / HTTP/1.1\r\n"[..];
        let mut buf = BytesMut::from(raw);
        assert!(matches!(parse(&mut buf, 64, 1024), Parsed::Other));
        assert_eq!(&buf[..], raw);
    }

    /// Pieces request heads are built from: valid, odd and hostile.
    fn head_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let method = prop::sample::select(vec!["GET", "HEAD", "get", "GET ", "G\x00T", "POST"]);
        let target = prop::sample::select(vec![
            "/",
            "/a?b=1",
            "/%2e%2e/x",
            "//x",
            "*",
            "http://h/x",
            "/a b",
            "/\x7f",
            "/\u{ff}",
            "/a#f",
            "",
        ]);
        let version = prop::sample::select(vec![
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/1.2",
            "HTTP/2.0",
            "http/1.1",
            "HTTP/1.1 ",
        ]);
        let name = prop::sample::select(vec![
            "host",
            "Host",
            "x-a",
            "content-length",
            "transfer-encoding",
            "connection",
            "upgrade",
            "x a",
            "x:a",
            "",
            " x",
            "x\t",
            "\u{80}x",
            "te",
            "expect",
        ]);
        let value = prop::sample::select(vec![
            "a",
            "",
            " a ",
            "close",
            "keep-alive",
            "upgrade",
            "0",
            "1",
            "chunked",
            "a\x00b",
            "a\rb",
            "\u{ff}\u{fe}",
            "a\tb",
            "1, 2",
            "gzip, chunked",
        ]);
        let eol = prop::sample::select(vec!["\r\n", "\n", "\r", "\r\n ", "\n\t"]);
        let header = (
            name,
            prop::sample::select(vec![":", ": ", " :", ":\t"]),
            value,
            eol.clone(),
        )
            .prop_map(|(n, c, v, e)| format!("{n}{c}{v}{e}"));
        (
            method,
            target,
            version,
            eol.clone(),
            prop::collection::vec(header, 0..6),
            eol,
        )
            .prop_map(|(m, t, v, e1, hs, e2)| {
                format!("{m} {t} {v}{e1}{}{e2}", hs.concat()).into_bytes()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// Differential: whatever the fast path takes as a simple request, hyper's own
        /// server takes too, as the same request (method, target, version, headers). A
        /// head the fast path reads differently from hyper would be a smuggling path.
        #[test]
        fn the_fast_path_never_reads_a_head_differently_from_hyper(bytes in head_strategy()) {
            fuzz_head(&bytes);
        }
    }

    /// The classic request-smuggling and parser-confusion heads (PortSwigger's and
    /// RFC 9112's list), run every time: each is either left to hyper or read exactly as
    /// hyper reads it.
    #[test]
    fn smuggling_classics_are_left_to_hyper_or_read_as_hyper_reads_them() {
        let corpus: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ncontent-length: 5\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding : chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding:\tchunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nx: y\r\n transfer-encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\nhost: a\ncontent-length: 4\n\nabcd",
            b"GET / HTTP/1.1\r\nhost: a\r\nContent-Length: +4\r\n\r\nabcd",
            b"GET / HTTP/1.1\r\nhost: a\r\nx\x00y: z\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nx: y\rz\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            b"GET http://evil/ HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ];
        for bytes in corpus {
            fuzz_head(bytes);
        }
    }

    #[test]
    fn numbers_and_dates() {
        assert_eq!(hex_size(0x1f40, &mut [0; 18]), b"1f40\r\n");
        assert_eq!(hex_size(0, &mut [0; 18]), b"0\r\n");
        with_date(|d| assert!(d.ends_with(b" GMT"), "{d:?}"));
    }
}
