//! The one body type of the request path, in both directions: no boxing for the common
//! cases (empty, a fixed buffer, a streamed hyper body, the wrappers the edge puts around a
//! body), one box for what the layers above stream (upstream responses, files, transforms).
//! Those arrive as [`Body::Stream`], so this bottom layer names none of their types; the
//! upstream response was boxed already before (rampart's own origin client), and the
//! virtual call per frame is not measurable against a frame's copy.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

/// Error type of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body.
#[derive(Debug, Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// A complete body in memory (taken on first poll).
    Full(Option<Bytes>),
    /// A body streamed from a client or an upstream, never buffered whole.
    Incoming(Incoming),
    /// A client's request body on rampart's own HTTP/2 server.
    H2In(super::h2body::InBody),
    /// Anything else that streams: an upstream response (its connection returns to the
    /// pool at the end), a static file, a body being compressed or rewritten (not `Sync`:
    /// the HTML rewriter).
    Stream(UnsyncBoxBody<Bytes, BoxError>),
    /// Header lines already serialized (`name: value\r\n`…) that the HTTP/1.1 fast path
    /// writes after the response's header map, and the body in memory. Static files send
    /// their fixed headers this way: no header map per response. Only ever made for the
    /// fast path (other writers would not see the lines).
    Head(Bytes, Option<Bytes>),
    /// A body that keeps its connection counted as busy until it ends, so an idle check
    /// never mistakes a client that stopped reading for an idle connection.
    Held(Box<Body>, crate::wire::activity::InflightGuard),
    /// A request body being forwarded, its end or failure recorded for the proxy (which
    /// then blames the client, not the upstream, for a failed exchange).
    Watched(Box<Body>, std::sync::Arc<BodyWatch>),
    /// A request body of unknown length with bytes still allowed; over the limit it
    /// fails (the upstream sees the request aborted, never a truncated body) and raises
    /// the flag so the client gets a 413.
    Limited(
        Box<Body>,
        u64,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ),
}

impl Body {
    /// A body holding `b`.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(b))
        }
    }
}

impl Body {
    /// A streamed body of any kind, boxed once.
    pub fn stream<B>(b: B) -> Self
    where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        Body::Stream(b.boxed_unsync())
    }
}

impl From<Incoming> for Body {
    fn from(b: Incoming) -> Self {
        Body::Incoming(b)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) | Body::Head(_, b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Body::H2In(b) => Pin::new(b).poll_frame(cx),
            Body::Stream(b) => Pin::new(b).poll_frame(cx),
            Body::Held(b, _) => Pin::new(b.as_mut()).poll_frame(cx),
            Body::Watched(b, watch) => {
                let r = Pin::new(b.as_mut()).poll_frame(cx);
                match &r {
                    Poll::Ready(None) => watch.set_done(),
                    Poll::Ready(Some(Err(_))) => watch.set_failed(),
                    Poll::Ready(Some(Ok(_))) if b.is_end_stream() => watch.set_done(),
                    _ => {}
                }
                r
            }
            Body::Limited(b, left, flag) => {
                let r = Pin::new(b.as_mut()).poll_frame(cx);
                if let Poll::Ready(Some(Ok(f))) = &r {
                    let n = f.data_ref().map_or(0, |d| d.len() as u64);
                    if n > *left {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Poll::Ready(Some(
                            Err("request body over the route's limit".into()),
                        ));
                    }
                    *left -= n;
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) | Body::Head(_, b) => b.is_none(),
            Body::Incoming(b) => b.is_end_stream(),
            Body::H2In(b) => b.is_end_stream(),
            Body::Stream(b) => b.is_end_stream(),
            Body::Held(b, _) | Body::Limited(b, _, _) | Body::Watched(b, _) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) | Body::Head(_, b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::Incoming(b) => b.size_hint(),
            Body::H2In(b) => b.size_hint(),
            Body::Stream(b) => b.size_hint(),
            Body::Held(b, _) | Body::Limited(b, _, _) | Body::Watched(b, _) => b.size_hint(),
        }
    }
}

/// What became of a request body being forwarded: whether it ended, or failed on the
/// client's side (malformed framing, over the route's limit, the client gone).
#[derive(Debug, Default)]
pub struct BodyWatch(std::sync::atomic::AtomicU8);

impl BodyWatch {
    const DONE: u8 = 1;
    const FAILED: u8 = 2;

    /// Records the body's end.
    pub fn set_done(&self) {
        self.0
            .store(Self::DONE, std::sync::atomic::Ordering::Relaxed);
    }
    /// Records the body's failure.
    pub fn set_failed(&self) {
        self.0
            .store(Self::FAILED, std::sync::atomic::Ordering::Relaxed);
    }
    /// Whether the body ended.
    pub fn done(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) == Self::DONE
    }
    /// Whether the body failed on the client's side.
    pub fn failed(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) == Self::FAILED
    }
}
