//! A body arriving on an HTTP/2 stream: a client's request ([`crate::conn`] serves HTTP/2
//! on the h2 crate directly) or an upstream's answer (the proxy's HTTP/2 client).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body::{Frame, SizeHint};

/// As [`super::body::BoxError`] (not imported: `body` names this module's type).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request's `Content-Length` when it is one valid number (the h2 crate has already
/// refused a stream whose data disagrees with it).
pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut all = h.get_all(header::CONTENT_LENGTH).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    std::str::from_utf8(v.as_bytes()).ok()?.parse().ok()
}

/// A body arriving on an HTTP/2 stream (a client's request, an upstream's answer): data
/// (the window given back as it is read) then trailers; its size the `Content-Length`
/// still to come, when known.
#[derive(Debug)]
pub struct H2Body {
    recv: h2::RecvStream,
    /// Bytes still to come, when the head said how many.
    remaining: Option<u64>,
    /// A reset with `NO_ERROR` ends the body early but whole (RFC 9113 §8.1: a server
    /// that answered before reading the whole request); only a server may send one.
    early_end_ok: bool,
    data_done: bool,
    done: bool,
}

impl H2Body {
    /// A client's request body.
    pub(crate) fn new(recv: h2::RecvStream, length: Option<u64>) -> Self {
        Self {
            recv,
            remaining: length,
            early_end_ok: false,
            data_done: false,
            done: false,
        }
    }

    /// An upstream server's answer body.
    pub(crate) fn answer(recv: h2::RecvStream) -> Self {
        Self {
            early_end_ok: true,
            ..Self::new(recv, None)
        }
    }

    fn ended_early(&self, e: &h2::Error) -> bool {
        self.early_end_ok && e.reason() == Some(h2::Reason::NO_ERROR)
    }
}

impl http_body::Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        if me.done {
            return Poll::Ready(None);
        }
        if !me.data_done {
            match ready!(me.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = me.recv.flow_control().release_capacity(data.len());
                    if let Some(r) = &mut me.remaining {
                        *r = r.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    me.done = true;
                    return Poll::Ready((!me.ended_early(&e)).then(|| Err(e.into())));
                }
                None => me.data_done = true,
            }
        }
        me.done = true;
        match ready!(me.recv.poll_trailers(cx)) {
            Ok(t) => Poll::Ready(t.map(|t| Ok(Frame::trailers(t)))),
            Err(e) if me.ended_early(&e) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
