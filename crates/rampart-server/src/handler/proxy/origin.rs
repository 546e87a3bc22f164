//! rampart's own HTTP/1.1 client for upstream GET and HEAD requests (no body, no upgrade):
//! the request head is written in one buffer, the response head parsed with httparse into a
//! header map with room for the headers the edge adds, and the body read inline by the
//! request's own task. hyper's client runs each connection in a task of its own and hands
//! requests and responses over channels: per proxied request that was a third of rampart's
//! instructions (callgrind). Requests with bodies and upgrades still go through hyper.
//!
//! Pooled connections: a request on a reused connection that gets no byte back (the
//! upstream closed it while idle) is retried on a fresh one; GET and HEAD are idempotent,
//! and nothing else takes this path.
//!
//! Plain and TLS pools alike (HTTP/1.1 pools, `https://` servers too): the TLS handshake is
//! the pool's ([`Pool::handshake`]: verification, SNI, client certificate, resumption, the
//! failure audited and counted), then the same exchange runs over the TLS stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Frame;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::{Forwarding, Inflight, Picked, Pool, ProxyError, Server};
use crate::wire::body::{Body, BoxError};

/// Largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers.
const MAX_HEADERS: usize = 100;

/// Read buffer size for a response head (and the body bytes that come with it).
const READ_BUF: usize = 8192;
/// An idle connection kept for reuse. It holds no buffer: the next exchange takes a spare
/// of the worker's ([`crate::wire::spares`]), so a pool of hundreds of idle connections
/// holds no read buffers (8 KiB each).
#[derive(Debug)]
pub(super) struct RawConn {
    stream: OriginStream,
    since: Instant,
    /// How long the upstream said it keeps the connection (`Keep-Alive: timeout=`), less
    /// a margin: the connection is dropped before the upstream closes it.
    keep: Option<std::time::Duration>,
}

impl RawConn {
    pub(super) fn fresh(&self, idle_timeout: std::time::Duration) -> bool {
        self.since.elapsed() < self.keep.map_or(idle_timeout, |k| k.min(idle_timeout))
    }
}

/// A connection to an upstream server: TCP, or TLS over it (boxed: rustls' state is
/// kilobytes, and a pool of plain connections should not hold room for it).
#[derive(Debug)]
pub(super) enum OriginStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for OriginStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            OriginStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            OriginStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for OriginStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            OriginStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            OriginStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            OriginStream::Plain(s) => Pin::new(s).poll_flush(cx),
            OriginStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            OriginStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            OriginStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Whether an idle connection is still open: the upstream has not closed it (its FIN
/// would have made the socket readable) nor sent anything unasked. A plain connection
/// costs no system call while its socket is not readable. A TLS one is read without
/// waiting: records that carry no data (a TLS 1.3 session ticket) are taken in, while a
/// `close_notify`, the end of the stream or any data means it is not to be used.
fn is_open(stream: &mut OriginStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match stream {
        OriginStream::Plain(stream) => match stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            ),
        },
        OriginStream::Tls(tls) => {
            let mut byte = [0u8; 1];
            let mut buf = ReadBuf::new(&mut byte);
            Pin::new(tls.as_mut())
                .poll_read(&mut cx, &mut buf)
                .is_pending()
        }
    }
}

/// Whether `req` can take this path.
pub(super) fn eligible(req: &Request<Body>) -> bool {
    (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
        && matches!(req.body(), Body::Empty)
        && !req.headers().contains_key(header::UPGRADE)
}

enum Fail {
    /// Nothing came back on a reused connection: retry on a fresh one.
    Stale,
    /// The upstream broke the exchange.
    Broken(std::io::Error),
}

impl Pool {
    fn checkout_raw(&self, s: &Server) -> Option<OriginStream> {
        let mut idle = s.raw_idle.lock().ok()?;
        while let Some(mut c) = idle.pop() {
            if c.fresh(self.idle_timeout) && is_open(&mut c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// A fresh connection to `s` for this client: TCP, and the pool's TLS handshake
    /// (offering HTTP/1.1 alone) when it has TLS.
    async fn connect_raw(&self, s: &Server) -> std::io::Result<OriginStream> {
        let tcp = self.tcp(s).await?;
        match &self.tls {
            None => Ok(OriginStream::Plain(tcp)),
            Some(tls) => Ok(OriginStream::Tls(Box::new(
                self.handshake(tls, tcp, s, true).await?,
            ))),
        }
    }

    /// Sends a GET or HEAD (already rewritten by `prepare_request`) with the forwarding
    /// headers `fwd` on a connection of rampart's own.
    pub(super) async fn forward_raw(
        self: &Arc<Self>,
        mut req: Request<Body>,
        fwd: &Forwarding,
    ) -> Result<(Response<Body>, Arc<Server>), ProxyError> {
        let head_only = req.method() == http::Method::HEAD;
        let rid = fwd.request_id.to_str().unwrap_or_default();
        let head = serialize(&req, fwd);
        let mut attempts = self.attempts();
        loop {
            let (idx, server, stream, reused) =
                match self.idle(&attempts, |s| self.checkout_raw(s))? {
                    Picked::Idle(found) => found,
                    Picked::Miss(idx, server) => {
                        // Boxed: a TLS handshake's state is kilobytes, and would otherwise
                        // widen every request's state (connecting or not).
                        let connect =
                            |s: Arc<Server>| async move { Box::pin(self.connect_raw(&s)).await };
                        let path = req.uri().path();
                        self.fresh(
                            &mut attempts,
                            (idx, server),
                            |s| self.checkout_raw(s),
                            connect,
                            rid,
                            path,
                        )
                        .await?
                    }
                };
            let inflight = Inflight::new(&server);
            let exchanged =
                tokio::time::timeout(self.response_timeout, exchange(stream, &head, head_only))
                    .await;
            let (parts, body) = match exchanged {
                Ok(Ok(r)) => r,
                // The upstream closed a pooled connection as its keep-alive ended (the
                // close crossed our request): not a failure. The next idle connection, or
                // a fresh one, is tried; each pooled connection at most once.
                Ok(Err(Fail::Stale)) if reused => continue,
                Ok(Err(Fail::Stale)) => {
                    self.next_server(&server, idx, &mut attempts)?;
                    continue;
                }
                Ok(Err(Fail::Broken(e))) => {
                    tracing::warn!(upstream = %self.name, server = %server.authority, request_id = rid, path = req.uri().path(), error = %e, "upstream request failed");
                    self.record_failure(&server);
                    return Err(ProxyError::Io(e));
                }
                Err(_) => return Err(self.timed_out(&server, rid)),
            };
            let mut body = body;
            body.back = Some(Back {
                server: server.clone(),
                max_idle: self.max_idle,
                _inflight: inflight,
            });
            if body.done() {
                body.finish();
            }
            let mut resp = Response::new(Body::stream(body));
            *resp.status_mut() = parts.0;
            *resp.headers_mut() = parts.1;
            // The request's head is sent: its map and buffer serve the next request.
            crate::wire::spares::give_headers(std::mem::take(req.headers_mut()));
            crate::wire::spares::give_out(head);
            return Ok((resp, server));
        }
    }
}

/// The request head in one buffer: origin-form target, HTTP/1.1, the client's headers but
/// those `fwd` replaces, then `fwd`'s.
fn serialize(req: &Request<Body>, fwd: &Forwarding) -> Vec<u8> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut b = crate::wire::spares::out();
    b.reserve(256 + req.headers().len() * 48);
    b.extend_from_slice(req.method().as_str().as_bytes());
    b.push(b' ');
    b.extend_from_slice(pq.as_bytes());
    b.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in req.headers() {
        if fwd.replaces(k) {
            continue;
        }
        b.extend_from_slice(k.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(v.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    fwd.write_lines(&mut b);
    b.extend_from_slice(b"\r\n");
    b
}

type Head = (StatusCode, HeaderMap);

/// Writes the request and reads the response head (into a spare buffer: its head's header
/// values are slices of it, so nothing is copied); the body is left to [`OriginBody`].
async fn exchange(
    mut stream: OriginStream,
    head: &[u8],
    head_only: bool,
) -> Result<(Head, OriginBody), Fail> {
    if stream.write_all(head).await.is_err() {
        return Err(Fail::Stale);
    }
    // TLS may keep part of the records it made when the socket would block.
    if matches!(stream, OriginStream::Tls(_)) && stream.flush().await.is_err() {
        return Err(Fail::Stale);
    }
    let mut buf = crate::wire::spares::buf();
    loop {
        buf.reserve(READ_BUF);
        let n = match tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() => {
                // Reset before any answer: the upstream had closed the pooled connection.
                let _ = e;
                return Err(Fail::Stale);
            }
            Err(e) => return Err(Fail::Broken(e)),
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                Fail::Stale
            } else {
                Fail::Broken(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection inside a response head",
                ))
            });
        }
        loop {
            match parse(&buf, head_only).map_err(Fail::Broken)? {
                None if buf.len() > MAX_HEAD => {
                    return Err(Fail::Broken(std::io::Error::other(
                        "upstream response head too large",
                    )))
                }
                None => break,
                // 1xx (100 Continue, 103 Early Hints): not forwarded; the answer follows.
                Some((len, None)) => {
                    buf.advance(len);
                    if buf.is_empty() {
                        break;
                    }
                }
                Some((len, Some(mut parsed))) => {
                    // The head's bytes become shared: header values are slices of them.
                    let raw = buf.split_to(len).freeze();
                    let keep = parsed.keep;
                    let (status, headers, framing, reusable) = parsed.build(&raw);
                    let body = OriginBody {
                        stream: Some(stream),
                        buf,
                        state: framing,
                        reusable,
                        keep,
                        back: None,
                    };
                    return Ok(((status, headers), body));
                }
            }
        }
    }
}

/// A response head parsed, its header values as offsets into the head's bytes.
struct Parsed {
    status: StatusCode,
    /// Every header but the hop-by-hop ones (all of them when `named_other`), in order.
    fields: SmallVec<[(HeaderName, u32, u32); 10]>,
    state: State,
    reusable: bool,
    /// The upstream's `Keep-Alive: timeout=`, less a margin.
    keep: Option<std::time::Duration>,
    /// Coded body: any `Content-Length` is dropped.
    coded: bool,
    /// `Connection` names another header, which is hop-by-hop too.
    named_other: bool,
}

impl Parsed {
    /// The header map, values sharing `raw` (the head's bytes) rather than copied.
    fn build(&mut self, raw: &Bytes) -> (StatusCode, HeaderMap, State, bool) {
        // Room for what the edge adds to the map: on HTTP/1.1 the request id and three
        // rate-limit headers (the security headers are written while serializing); on
        // HTTP/2 the security headers too. A map that grows is rehashed (~650 instructions
        // per HTTP/2 answer, whose maps never come back as spares), and the extra room
        // costs an HTTP/1.1 answer nothing (its map is a spare with the room of its last use).
        let mut headers = crate::wire::spares::headers(self.fields.len() + 16);
        for (name, start, end) in self.fields.drain(..) {
            let value = raw.slice(start as usize..end as usize);
            // INVARIANT: httparse accepts only bytes a `HeaderValue` takes (HTAB, SP-~, obs-text).
            if let Ok(v) = HeaderValue::from_maybe_shared(value) {
                headers.append(name, v);
            }
        }
        if self.coded {
            // The edge frames the body itself; a length next to a coding is never trusted.
            headers.remove(header::CONTENT_LENGTH);
        }
        if self.named_other {
            // `Connection: x-foo` makes `x-foo` hop-by-hop too; rare, so found the slow way.
            super::strip_hop_by_hop(&mut headers, false);
        }
        (self.status, headers, self.state, self.reusable)
    }
}

/// Parses a response head: `None` when incomplete, `Some((len, None))` for an interim 1xx.
fn parse(buf: &[u8], head_only: bool) -> std::io::Result<Option<(usize, Option<Parsed>)>> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut storage);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(std::io::Error::other(format!("bad upstream response: {e}"))),
    };
    let code = r.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| std::io::Error::other("bad upstream status"))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(std::io::Error::other("upstream switched protocols unasked"));
        }
        return Ok(Some((len, None)));
    }
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr() as usize;
    let mut fields = SmallVec::new();
    let mut chunked = false;
    let mut other_coding = false;
    let mut length: Option<u64> = None;
    let mut close = version == Version::HTTP_10;
    let mut named_other = false;
    let mut keep = None;
    for h in r.headers.iter() {
        let mut names_other = false;
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| std::io::Error::other("bad upstream header name"))?;
        if name == header::TRANSFER_ENCODING {
            // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            if version == Version::HTTP_10 {
                return Err(std::io::Error::other(
                    "HTTP/1.0 upstream response with Transfer-Encoding (faulty framing)",
                ));
            }
            // Codings are tokens: a value with other bytes cannot be read as a list (hyper
            // then frames by the connection's end); refused rather than guessed at.
            if !h
                .value
                .iter()
                .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t')
            {
                return Err(std::io::Error::other("bad upstream transfer-encoding"));
            }
            let last = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            chunked = last.eq_ignore_ascii_case(b"chunked");
            other_coding = !chunked;
        } else if name == header::CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| std::io::Error::other("bad upstream content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(std::io::Error::other("conflicting upstream content-length"));
            }
            length = Some(n);
        } else if name == header::CONNECTION {
            for t in h.value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    if version == Version::HTTP_10 {
                        close = false;
                    }
                } else if !t.is_empty() {
                    // Names another hop-by-hop header: the general strip below removes it.
                    names_other = true;
                }
            }
        }
        named_other |= names_other;
        // Hop-by-hop headers are dropped here rather than removed after (a hash each);
        // a `Connection` naming others is kept for the strip in `build`.
        if !super::is_hop_by_hop(&name) || (name == header::CONNECTION && names_other) {
            let start = h.value.as_ptr() as usize - base;
            fields.push((name, start as u32, (start + h.value.len()) as u32));
        } else if name == super::KEEP_ALIVE {
            keep = super::keep_alive_timeout(h.value);
        }
    }
    let state =
        if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            State::Length(0)
        } else if chunked {
            State::Chunk(Chunk::Size)
        } else if other_coding {
            // Framed by the connection's end (RFC 9112 6.3): never reused.
            close = true;
            State::UntilClose
        } else if let Some(n) = length {
            State::Length(n)
        } else {
            close = true;
            State::UntilClose
        };
    Ok(Some((
        len,
        Some(Parsed {
            status,
            fields,
            state,
            reusable: !close,
            keep,
            coded: chunked || other_coding,
            named_other,
        }),
    )))
}

/// Where a body is in its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes left.
    Length(u64),
    /// Chunked, at this point.
    Chunk(Chunk),
    /// Until the upstream closes.
    UntilClose,
    /// Read whole.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a size line.
    Size,
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines until an empty one (this many so far).
    Trailers(u16),
}

/// Hands a connection back to its server's pool once its response is read whole.
#[derive(Debug)]
struct Back {
    server: Arc<Server>,
    max_idle: usize,
    _inflight: Inflight,
}

/// A response body read from an upstream connection by the task that answers the client.
#[derive(Debug)]
pub struct OriginBody {
    stream: Option<OriginStream>,
    buf: BytesMut,
    state: State,
    reusable: bool,
    keep: Option<std::time::Duration>,
    back: Option<Back>,
}

impl OriginBody {
    fn done(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    /// The body is read whole: the connection goes back to the pool when it can be reused.
    fn finish(&mut self) {
        self.state = State::Done;
        let Some(back) = self.back.take() else {
            return;
        };
        let Some(stream) = self.stream.take() else {
            return;
        };
        if !self.reusable || !self.buf.is_empty() {
            return;
        }
        // A pooled connection holds no buffer: the next exchange takes a spare.
        crate::wire::spares::give_buf(std::mem::take(&mut self.buf));
        let server = back.server.clone();
        if let Ok(mut idle) = server.raw_idle.lock() {
            if idle.len() < back.max_idle {
                idle.push(RawConn {
                    stream,
                    since: Instant::now(),
                    keep: self.keep,
                });
            }
        };
    }

    /// Reads more into `buf`; `Ok(0)` at the upstream's end.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<std::io::Result<usize>> {
        let Some(s) = self.stream.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        self.buf.reserve(want.clamp(8192, 256 * 1024));
        tokio_util::io::poll_read_buf(Pin::new(s), cx, &mut self.buf)
    }

    /// Reads more of a framed body: the upstream closing first is an error (the body would
    /// be cut short), and after any error the connection is dropped, never pooled.
    fn poll_more(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<(), BoxError>> {
        let r = match ready!(self.poll_fill(cx, want)) {
            Ok(0) => Err(truncated()),
            Ok(_) => return Poll::Ready(Ok(())),
            Err(e) => Err(e.into()),
        };
        self.stream = None;
        Poll::Ready(r)
    }

    /// One line (without CRLF) from `buf`, when complete.
    fn line(&mut self) -> Result<Option<Bytes>, BoxError> {
        match self.buf.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                let l = self.buf.split_to(i).freeze();
                self.buf.advance(2);
                Ok(Some(l))
            }
            None if self.buf.len() > 4096 => Err("upstream chunk line too long".into()),
            None => Ok(None),
        }
    }
}

/// A chunk-size line (RFC 9112 7.1): hex digits, then optional whitespace and an
/// extension; leading whitespace, a bare CR or LF, or an overflow is faulty framing
/// (read as hyper reads it: a lenient size line is where request smuggling starts).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()..];
    if !(rest.is_empty() || rest[0] == b';') || rest.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return None;
    }
    let hex = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// `name: value`, as a header (or trailer) field line is written.
fn is_field_line(line: &[u8]) -> bool {
    if line.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return false;
    }
    let mut one = [httparse::EMPTY_HEADER; 1];
    let mut framed = Vec::with_capacity(line.len() + 4);
    framed.extend_from_slice(line);
    framed.extend_from_slice(b"\r\n\r\n");
    matches!(
        httparse::parse_headers(&framed, &mut one),
        Ok(httparse::Status::Complete((_, [_])))
    )
}

fn truncated() -> BoxError {
    "upstream closed the connection inside a response body".into()
}

impl http_body::Body for OriginBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(left) => {
                    if this.buf.is_empty() {
                        let want = usize::try_from(left).unwrap_or(usize::MAX);
                        if let Err(e) = ready!(this.poll_more(cx, want)) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    let n = this
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = this.buf.split_to(n).freeze();
                    this.state = State::Length(left - n as u64);
                    if this.state == State::Length(0) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::UntilClose => {
                    if !this.buf.is_empty() {
                        let data = this.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match this.poll_fill(cx, 65536) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(0)) => {
                            this.reusable = false;
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Err(e)) => {
                            this.stream = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        Poll::Ready(Ok(_)) => {}
                    }
                }
                State::Chunk(c) => {
                    // Decode what is buffered; read more only when stuck.
                    let progressed = match c {
                        Chunk::Size => match this.line()? {
                            Some(l) => {
                                let size = chunk_size(&l)
                                    .ok_or_else(|| BoxError::from("bad upstream chunk size"))?;
                                this.state = State::Chunk(if size == 0 {
                                    Chunk::Trailers(0)
                                } else {
                                    Chunk::Data(size)
                                });
                                true
                            }
                            None => false,
                        },
                        Chunk::Data(left) => {
                            if this.buf.is_empty() {
                                false
                            } else {
                                let n = this
                                    .buf
                                    .len()
                                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                                let data = this.buf.split_to(n).freeze();
                                let rest = left - n as u64;
                                this.state = State::Chunk(if rest == 0 {
                                    Chunk::DataEnd
                                } else {
                                    Chunk::Data(rest)
                                });
                                return Poll::Ready(Some(Ok(Frame::data(data))));
                            }
                        }
                        Chunk::DataEnd => match this.line()? {
                            Some(l) if l.is_empty() => {
                                this.state = State::Chunk(Chunk::Size);
                                true
                            }
                            Some(_) => {
                                return Poll::Ready(Some(Err("bad upstream chunk end".into())))
                            }
                            None => false,
                        },
                        Chunk::Trailers(n) => match this.line()? {
                            Some(l) if l.is_empty() => {
                                this.finish();
                                return Poll::Ready(None);
                            }
                            // Trailers are not forwarded, but must be field lines, at most
                            // MAX_HEADERS: anything else is faulty framing, as hyper reads it.
                            Some(l) if usize::from(n) < MAX_HEADERS && is_field_line(&l) => {
                                this.state = State::Chunk(Chunk::Trailers(n + 1));
                                true
                            }
                            Some(_) => {
                                return Poll::Ready(Some(Err("bad upstream trailer".into())))
                            }
                            None => false,
                        },
                    };
                    if !progressed {
                        if let Err(e) = ready!(this.poll_more(cx, 16384)) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.state {
            State::Length(n) => http_body::SizeHint::with_exact(n),
            State::Done => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

impl Drop for OriginBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304) may never be polled.
        if matches!(self.state, State::Length(0)) {
            self.finish();
        }
    }
}

/// Fuzzing entry point (the cargo-fuzz target `response` and the corpus replay test): an
/// upstream answer this client reads whole, hyper's client reads as the same status and
/// the same body bytes, and a body framed by length is never cut short or overrun.
#[cfg(any(test, feature = "fuzzing"))]
#[allow(clippy::unwrap_used, clippy::panic)] // a fuzz harness: a panic is its finding
pub fn fuzz_response(wire: &[u8]) {
    use futures_util::FutureExt;
    use http_body_util::BodyExt;
    let mut buf = BytesMut::from(wire);
    let (status, mut body) = loop {
        match parse(&buf, false) {
            Ok(Some((len, None))) => buf.advance(len),
            Ok(Some((len, Some(mut parsed)))) => {
                let raw = buf.split_to(len).freeze();
                let keep = parsed.keep;
                let (status, _, state, reusable) = parsed.build(&raw);
                let body = OriginBody {
                    stream: None,
                    buf,
                    state,
                    reusable,
                    keep,
                    back: None,
                };
                break (status, body);
            }
            Ok(None) | Err(_) => return,
        }
    };
    let framed = http_body::Body::size_hint(&body).exact();
    let mut read = Vec::new();
    loop {
        // With no socket behind it the body never waits: the upstream has closed.
        let Some(frame) = body.frame().now_or_never() else {
            panic!("a body with nothing more to read waited");
        };
        match frame {
            None => break,
            Some(Ok(f)) => read.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
            Some(Err(_)) => return,
        }
    }
    assert!(read.len() <= wire.len());
    if let Some(n) = framed {
        assert_eq!(
            read.len() as u64,
            n,
            "a length-framed body is read to its length"
        );
    }
    // Bytes after a whole answer are not part of it (and the connection is not reused):
    // hyper is shown the answer as framed here, and must read it the same.
    let answer = &wire[..wire.len() - body.buf.len()];
    let theirs = hyper_read(answer);
    let shown = String::from_utf8_lossy(answer);
    assert_eq!(Some((status.as_u16(), read)), theirs, "{shown}");
}

/// Status and body as hyper's HTTP/1 client reads `wire` (then the upstream's end).
#[cfg(any(test, feature = "fuzzing"))]
#[allow(clippy::unwrap_used, clippy::panic)] // a fuzz harness: a panic is its finding
fn hyper_read(wire: &[u8]) -> Option<(u16, Vec<u8>)> {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let (client, mut upstream) = tokio::io::duplex(wire.len() + 4096);
        let wire = wire.to_vec();
        // The upstream answers after the request (hyper refuses an answer sent before it).
        tokio::spawn(async move {
            let mut req = Vec::new();
            while !req.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 256];
                match tokio::io::AsyncReadExt::read(&mut upstream, &mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let _ = upstream.write_all(&wire).await;
            let _ = upstream.shutdown().await;
            // Held open until the client is done, as a socket's peer would be.
            let _ = tokio::io::AsyncReadExt::read(&mut upstream, &mut [0u8; 1]).await;
        });
        let io = hyper_util::rt::TokioIo::new(client);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
        tokio::spawn(conn);
        let req = Request::get("/")
            .header("host", "x")
            .body(http_body_util::Empty::<Bytes>::new())
            .ok()?;
        let timeout = std::time::Duration::from_secs(2);
        let read = async {
            let resp = send.send_request(req).await.ok()?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, bytes.to_vec()))
        };
        tokio::time::timeout(timeout, read).await.ok()?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn decode(
        wire: &'static [u8],
        head_only: bool,
    ) -> (StatusCode, HeaderMap, Result<Bytes, BoxError>) {
        // A real socket pair: the upstream writes `wire` and closes.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut req).await;
            s.write_all(wire).await.unwrap();
        });
        let stream = OriginStream::Plain(TcpStream::connect(addr).await.unwrap());
        let r = exchange(stream, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head_only).await;
        let Ok(((status, headers), body)) = r else {
            panic!("exchange failed");
        };
        let bytes = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes);
        server.await.unwrap();
        (status, headers, bytes)
    }

    /// Serves `wire` once on a fresh loopback port (after reading the request).
    async fn serve_once(wire: Vec<u8>) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut req).await;
            let _ = s.write_all(&wire).await;
        });
        addr
    }

    /// Status and body as this client reads `wire`; `None` when it refuses the answer.
    async fn ours(wire: Vec<u8>) -> Option<(u16, Vec<u8>)> {
        let stream = OriginStream::Plain(TcpStream::connect(serve_once(wire).await).await.unwrap());
        let ((status, _), body) = exchange(stream, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", false)
            .await
            .ok()?;
        let bytes = body.collect().await.ok()?.to_bytes();
        Some((status.as_u16(), bytes.to_vec()))
    }

    /// Status and body as hyper's HTTP/1 client reads `wire`.
    async fn hypers(wire: Vec<u8>) -> Option<(u16, Vec<u8>)> {
        let stream = TcpStream::connect(serve_once(wire).await).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = Request::get("/")
            .header("host", "x")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, bytes.to_vec()))
    }

    /// Upstream answers built from valid, odd and hostile pieces.
    fn answer_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let status = prop::sample::select(vec![
            "HTTP/1.1 200 OK",
            "HTTP/1.0 200 OK",
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 404 x",
            "HTTP/1.1 999 x",
            "HTTP/1.1 20 x",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
        ]);
        let framing = prop::sample::select(vec![
            "content-length: 5\r\n",
            "content-length: 5\r\ncontent-length: 5\r\n",
            "content-length: 5\r\ncontent-length: 6\r\n",
            "content-length: +5\r\n",
            "content-length: 5 \r\n",
            "transfer-encoding: chunked\r\n",
            "transfer-encoding: chunked\r\ncontent-length: 3\r\n",
            "transfer-encoding: gzip, chunked\r\n",
            "transfer-encoding: chunked, gzip\r\n",
            "transfer-encoding: Chunked\r\n",
            "",
            "connection: close\r\n",
        ]);
        let body = prop::sample::select(vec![
            "hello",
            "5\r\nhello\r\n0\r\n\r\n",
            "5;a=b\r\nhello\r\n0\r\nx: y\r\n\r\n",
            "zz\r\nhello\r\n0\r\n\r\n",
            "-1\r\nhello\r\n0\r\n\r\n",
            "5\r\nhelloXX0\r\n\r\n",
            "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            "5\nhello\n0\n\n",
            "hel",
            "",
            "2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        ]);
        (status, framing, body).prop_map(|(s, f, b)| format!("{s}\r\n{f}\r\n{b}").into_bytes())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Differential against hyper's client: an answer this client reads whole, hyper
        /// reads as the same status and the same body bytes. Reading a body's framing
        /// differently from hyper would desynchronise a pooled upstream connection.
        #[test]
        fn responses_are_framed_as_hyper_frames_them(wire in answer_strategy()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (a, b) = rt.block_on(async {
                (ours(wire.clone()).await, hypers(wire.clone()).await)
            });
            if let Some(a) = a {
                let shown = String::from_utf8_lossy(&wire).into_owned();
                proptest::prop_assert_eq!(Some(a), b, "{}", shown);
            }
        }
    }

    #[tokio::test]
    async fn framings() {
        let (s, h, b) = decode(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false).await;
        assert_eq!(
            (s, h["content-length"].as_bytes(), &b.unwrap()[..]),
            (StatusCode::OK, &b"5"[..], &b"hello"[..])
        );
        let (_, h, b) = decode(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(&b.unwrap()[..], b"hello world");
        assert!(h.get("content-length").is_none() && h.get("transfer-encoding").is_none());
        let (_, h, _) = decode(
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-kept: 2\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .await;
        assert!(
            h.get("x-hop").is_none()
                && h.get("keep-alive").is_none()
                && h.get("connection").is_none()
        );
        assert_eq!(h["x-kept"], "2");
        let (_, _, b) = decode(b"HTTP/1.0 200 OK\r\n\r\nuntil close", false).await;
        assert_eq!(&b.unwrap()[..], b"until close");
        let (s, _, b) = decode(
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            false,
        )
        .await;
        assert_eq!((s, b.unwrap().len()), (StatusCode::NO_CONTENT, 0));
        let (_, _, b) = decode(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", false).await;
        assert!(
            b.is_err(),
            "a truncated body is an error, not a short answer"
        );
        let (_, _, b) = decode(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            false,
        )
        .await;
        assert!(b.is_err());
        let (_, h, b) = decode(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).await;
        assert_eq!(
            (h["content-length"].as_bytes(), b.unwrap().len()),
            (&b"5"[..], 0)
        );
    }
}
