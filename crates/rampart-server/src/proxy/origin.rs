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

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Frame;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Inflight, Pool, ProxyError, Server};
use crate::body::{Body, BoxError};

/// Largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers.
const MAX_HEADERS: usize = 100;

/// An idle connection kept for reuse.
#[derive(Debug)]
pub(super) struct RawConn {
    stream: TcpStream,
    since: Instant,
}

impl RawConn {
    pub(super) fn fresh(&self, idle_timeout: std::time::Duration) -> bool {
        self.since.elapsed() < idle_timeout
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
    fn checkout_raw(&self, s: &Server) -> Option<TcpStream> {
        let mut idle = s.raw_idle.lock().ok()?;
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < self.idle_timeout {
                return Some(c.stream);
            }
        }
        None
    }

    async fn connect_raw(&self, s: &Server) -> std::io::Result<TcpStream> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&s.authority))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Sends a GET or HEAD (already rewritten by `prepare_request`) on a connection of
    /// rampart's own.
    pub(super) async fn forward_raw(
        self: &Arc<Self>,
        req: Request<Body>,
    ) -> Result<(Response<Body>, Arc<Server>), ProxyError> {
        let head_only = req.method() == http::Method::HEAD;
        let head = serialize(&req);
        let n = self.servers.len();
        let max_servers = if self.retry { n.min(2) } else { 1 };
        let mut tried: Vec<usize> = Vec::new();
        let mut stale = 0;
        loop {
            let idx = self.pick(&tried).ok_or(ProxyError::Connect)?;
            let server = self.servers[idx].clone();
            let (stream, reused) = match self.checkout_raw(&server) {
                Some(s) => (s, true),
                None => match self.connect_raw(&server).await {
                    Ok(s) => (s, false),
                    Err(e) => {
                        tracing::warn!(upstream = %self.name, server = %server.authority, error = %e, "upstream connect failed");
                        self.next_server(&server, idx, &mut tried, max_servers)?;
                        continue;
                    }
                },
            };
            let inflight = Inflight::new(&server);
            let exchanged =
                tokio::time::timeout(self.response_timeout, exchange(stream, &head, head_only))
                    .await;
            let (parts, body) = match exchanged {
                Ok(Ok(r)) => r,
                Ok(Err(Fail::Stale)) if reused && stale < 4 => {
                    stale += 1;
                    continue;
                }
                Ok(Err(Fail::Stale)) => {
                    self.next_server(&server, idx, &mut tried, max_servers)?;
                    continue;
                }
                Ok(Err(Fail::Broken(e))) => {
                    tracing::warn!(upstream = %self.name, server = %server.authority, error = %e, "upstream request failed");
                    self.record_failure(&server);
                    return Err(ProxyError::Io(e));
                }
                Err(_) => return Err(self.timed_out(&server)),
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
            let mut resp = Response::new(Body::Origin(Box::new(body)));
            *resp.status_mut() = parts.0;
            *resp.headers_mut() = parts.1;
            return Ok((resp, server));
        }
    }
}

/// The request head in one buffer: origin-form target, HTTP/1.1, the headers as they are.
fn serialize(req: &Request<Body>) -> Vec<u8> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut b = Vec::with_capacity(256 + req.headers().len() * 48);
    b.extend_from_slice(req.method().as_str().as_bytes());
    b.push(b' ');
    b.extend_from_slice(pq.as_bytes());
    b.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in req.headers() {
        b.extend_from_slice(k.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(v.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"\r\n");
    b
}

type Head = (StatusCode, HeaderMap);

/// Writes the request and reads the response head; the body is left to [`OriginBody`].
async fn exchange(
    mut stream: TcpStream,
    head: &[u8],
    head_only: bool,
) -> Result<(Head, OriginBody), Fail> {
    if stream.write_all(head).await.is_err() {
        return Err(Fail::Stale);
    }
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        buf.reserve(8192);
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
                Some((len, Some((status, headers, framing, reusable)))) => {
                    buf.advance(len);
                    let body = OriginBody {
                        stream: Some(stream),
                        buf,
                        state: framing,
                        reusable,
                        back: None,
                    };
                    return Ok(((status, headers), body));
                }
            }
        }
    }
}

type Parsed = (StatusCode, HeaderMap, State, bool);

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
    // Room for what the edge adds (security headers, request id, rate-limit headers).
    let mut headers = HeaderMap::with_capacity(r.headers.len() + 24);
    let mut chunked = false;
    let mut other_coding = false;
    let mut length: Option<u64> = None;
    let mut close = version == Version::HTTP_10;
    let mut named_other = false;
    for h in r.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| std::io::Error::other("bad upstream header name"))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| std::io::Error::other("bad upstream header value"))?;
        if name == header::TRANSFER_ENCODING {
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
                    named_other = true;
                }
            }
        }
        // Hop-by-hop headers are dropped here rather than removed after (a hash each).
        if !super::HOP_BY_HOP.contains(&name) {
            headers.append(name, value);
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
    if chunked || other_coding {
        // The edge frames the body itself; a length next to a coding is never trusted.
        headers.remove(header::CONTENT_LENGTH);
    }
    if named_other {
        // `Connection: x-foo` makes `x-foo` hop-by-hop too; rare, so found the slow way.
        let mut with_connection = headers.clone();
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                if let Ok(v) = HeaderValue::from_bytes(h.value) {
                    with_connection.append(header::CONNECTION, v);
                }
            }
        }
        super::strip_hop_by_hop(&mut with_connection, false);
        headers = with_connection;
    }
    Ok(Some((len, Some((status, headers, state, !close)))))
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
    /// Trailer lines until an empty one.
    Trailers,
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
    stream: Option<TcpStream>,
    buf: BytesMut,
    state: State,
    reusable: bool,
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
        let server = back.server.clone();
        if let Ok(mut idle) = server.raw_idle.lock() {
            if idle.len() < back.max_idle {
                idle.push(RawConn {
                    stream,
                    since: Instant::now(),
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
                                let hex = l.split(|b| *b == b';').next().unwrap_or_default();
                                let hex = std::str::from_utf8(hex).unwrap_or("").trim();
                                let size = u64::from_str_radix(hex, 16)
                                    .map_err(|_| BoxError::from("bad upstream chunk size"))?;
                                this.state = State::Chunk(if size == 0 {
                                    Chunk::Trailers
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
                        Chunk::Trailers => match this.line()? {
                            Some(l) if l.is_empty() => {
                                this.finish();
                                return Poll::Ready(None);
                            }
                            // Trailers are not forwarded.
                            Some(_) => true,
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
        let stream = TcpStream::connect(addr).await.unwrap();
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
