//! A client's request body on rampart's own HTTP/2 server (`conn::h2serve`): [`InBody`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body::{Frame, SizeHint};

/// As [`super::body::BoxError`] (not imported: `body` names this module's type).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A message's `Content-Length` when it is one valid number.
pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut all = h.get_all(header::CONTENT_LENGTH).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    std::str::from_utf8(v.as_bytes()).ok()?.parse().ok()
}

/// A client's request body on rampart's own HTTP/2 server (`conn::h2serve`): the
/// connection puts the stream's DATA here as it arrives; what is read is given back to
/// the client as window by the connection, told through `stream` once enough is read.
#[derive(Debug)]
pub struct InBody {
    shared: std::sync::Arc<InShared>,
    /// Bytes still to come, when the head said how many.
    remaining: Option<u64>,
    done: bool,
}

/// What the connection and the reader of an [`InBody`] share.
#[derive(Debug)]
pub struct InShared {
    state: std::sync::Mutex<InState>,
    /// Wakes the stream on its connection (to give window back).
    stream: std::task::Waker,
}

/// The state behind an [`InShared`].
#[derive(Debug, Default)]
pub struct InState {
    /// Data arrived and not yet read.
    pub chunks: std::collections::VecDeque<Bytes>,
    /// The request's trailers, when they came.
    pub trailers: Option<HeaderMap>,
    /// The client ended the stream.
    pub end: bool,
    /// The stream failed (reset by the client, or malformed): why.
    pub failed: Option<&'static str>,
    /// Bytes read and not yet given back as window.
    pub released: usize,
    /// The reader is gone: what arrives from now on is given back at once.
    pub dropped: bool,
    waker: Option<std::task::Waker>,
}

/// Read bytes worth telling the connection about (half its stream window would be too
/// late for a client waiting on the window; every chunk would wake it too often).
const RELEASE_AT: usize = 32 * 1024;

impl InShared {
    /// A body's shared state, `stream` waking its stream on the connection.
    pub fn new(stream: std::task::Waker) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            state: std::sync::Mutex::new(InState::default()),
            stream,
        })
    }

    /// Changes the state (the connection's side) and wakes the reader.
    pub fn update<R>(&self, f: impl FnOnce(&mut InState) -> R) -> R {
        let mut s = self.lock();
        let r = f(&mut s);
        let w = s.waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        r
    }

    /// Bytes read since the last call, and whether the reader is gone (the connection's
    /// side; the reader is not woken).
    pub fn take_released(&self) -> (usize, bool) {
        let mut s = self.lock();
        (std::mem::take(&mut s.released), s.dropped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl InBody {
    /// The body reading `shared`, of `length` bytes when the head said so.
    pub fn new(shared: std::sync::Arc<InShared>, length: Option<u64>) -> Self {
        Self {
            shared,
            remaining: length,
            done: false,
        }
    }
}

impl http_body::Body for InBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut s = self.shared.lock();
        if let Some(c) = s.chunks.pop_front() {
            s.released += c.len();
            let tell = s.released >= RELEASE_AT;
            drop(s);
            if tell {
                self.shared.stream.wake_by_ref();
            }
            if let Some(r) = &mut self.remaining {
                *r = r.saturating_sub(c.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        if let Some(why) = s.failed {
            drop(s);
            self.done = true;
            return Poll::Ready(Some(Err(why.into())));
        }
        if s.end {
            let t = s.trailers.take();
            drop(s);
            self.done = true;
            return Poll::Ready(t.map(|t| Ok(Frame::trailers(t))));
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        let s = self.shared.lock();
        s.end && s.chunks.is_empty() && s.trailers.is_none() && s.failed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for InBody {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.dropped = true;
        let buffered: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        s.released += buffered;
        let tell = s.released > 0 || !s.end;
        drop(s);
        if tell {
            self.shared.stream.wake_by_ref();
        }
    }
}
