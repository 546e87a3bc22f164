//! The one body type of the request path, in both directions: no boxing for the common
//! cases (empty, a fixed buffer, a streamed hyper body), a box only for file streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
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
    /// An upstream response body; its connection returns to the pool at the end.
    Upstream(crate::proxy::UpstreamBody),
    /// The same, from rampart's own upstream client.
    Origin(Box<crate::proxy::OriginBody>),
    /// Anything else that streams (static files).
    Boxed(BoxBody<Bytes, BoxError>),
    /// Header lines already serialized (`name: value\r\n`…) that the HTTP/1.1 fast path
    /// writes after the response's header map, and the body in memory. Static files send
    /// their fixed headers this way: no header map per response. Only ever made for the
    /// fast path (other writers would not see the lines).
    Head(Bytes, Option<Bytes>),
    /// A body being compressed, decompressed or rewritten (not `Sync`: the HTML rewriter).
    Transformed(Box<crate::transform::Transform>),
    /// A body that keeps its connection counted as busy until it ends, so an idle check
    /// never mistakes a client that stopped reading for an idle connection.
    Held(Box<Body>, crate::server::InflightGuard),
    /// A request body being forwarded, its end or failure recorded for the proxy (which
    /// then blames the client, not the upstream, for a failed exchange).
    Watched(Box<Body>, std::sync::Arc<crate::proxy::BodyWatch>),
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
            Body::Upstream(b) => Pin::new(b).poll_frame(cx),
            Body::Origin(b) => Pin::new(b.as_mut()).poll_frame(cx),
            Body::Boxed(b) => Pin::new(b).poll_frame(cx),
            Body::Transformed(b) => Pin::new(b.as_mut()).poll_frame(cx),
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
            Body::Upstream(b) => b.is_end_stream(),
            Body::Origin(b) => http_body::Body::is_end_stream(b.as_ref()),
            Body::Boxed(b) => b.is_end_stream(),
            Body::Transformed(b) => http_body::Body::is_end_stream(b.as_ref()),
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
            Body::Upstream(b) => b.size_hint(),
            Body::Origin(b) => http_body::Body::size_hint(b.as_ref()),
            Body::Boxed(b) => b.size_hint(),
            Body::Transformed(_) => SizeHint::default(),
            Body::Held(b, _) | Body::Limited(b, _, _) | Body::Watched(b, _) => b.size_hint(),
        }
    }
}
