//! rampart's own HTTP/2 client for upstreams: one connection's frames, flow control and
//! streams (RFC 9113), with HPACK from `wire::hpack` and framing from `wire::h2frame`.
//!
//! Why not the h2 crate: callgrind, a gRPC-shaped unary call proxied HTTP/2 to HTTP/2,
//! cost 69.6k instructions per call of which the h2 crate's client took ~24k itself
//! (HPACK encoding with Huffman and a hash per field, the stream store's state machine,
//! its frame queue) and most of the header-map work and copies around it. Here a request
//! head is encoded straight into the connection's write buffer by the task that sends it
//! (fields repeated call after call, a gRPC method's path among them, cost a byte each),
//! and an answer's frames are put in its stream's slot by the connection's task, which
//! wakes the request's task.
//!
//! Shape: a [`Client`] is a handle on one connection, shared by every request to that
//! server; its state sits behind one mutex (a request takes it to open a stream and send
//! its body, the connection's task to apply what it read). The task reads and writes the
//! socket, answers PINGs and SETTINGS, and pings the server every [`PING_EVERY`]: a server
//! gone without a FIN is noticed within [`PING_TIMEOUT`]. The connection ends when the
//! server closes it or sends GOAWAY and its last streams end, on a protocol error (GOAWAY
//! sent, every stream failed), or when every handle is dropped and no stream is left.
//!
//! Limits kept as the h2 crate's client had them: the server's stream limit (a request
//! over it waits for a stream to end), 2 MiB windows per stream and 5 MiB for the
//! connection, given back as answers are read; answers' header lists up to 16 KiB (a
//! header block and its CONTINUATION frames up to 64 KiB, else the connection is closed);
//! a malformed answer (no `:status`, request pseudo-headers, connection-specific fields,
//! a body that disagrees with its `Content-Length`) resets its stream; server push is
//! refused.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Response, StatusCode};
use http_body::{Body as _, Frame};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::wire::body::{Body, BoxError};
use crate::wire::h2frame::{
    self, close_head, forbidden, frame, frame_head, grow_conn_window, move_window, next_frame,
    set_initial_window, unpad, window_increment, ConnError, Outbox, Reason, ACK, CONTINUATION,
    DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM, GOAWAY, HEADERS, HEADER_TABLE_SIZE,
    INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_FRAME, MAX_WINDOW, PING, PREFACE,
    PRIORITY_FLAG, PUSH_PROMISE, RST_STREAM, SETTINGS, WINDOW_UPDATE,
};
use crate::wire::hpack::{self, Field, Pseudo};

/// The window given per stream and for the connection (hyper's client's settings, which
/// the h2 crate's client here had too).
const STREAM_WINDOW: i64 = 2 << 20;
const CONN_WINDOW: i64 = 5 << 20;
/// An answer's header list at most (our `SETTINGS_MAX_HEADER_LIST_SIZE`), and a header
/// block with its CONTINUATION frames.
const MAX_HEADER_LIST: usize = 16 << 10;
const MAX_BLOCK: usize = 64 << 10;
/// Streams opened before the server's SETTINGS say how many it allows.
const INITIAL_MAX_STREAMS: usize = 100;
/// Request body bytes waiting to be written past which bodies wait.
const OUT_HIGH: usize = 1 << 20;
/// A connection is pinged this often, and closed when the answer takes longer than
/// [`PING_TIMEOUT`].
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a stream (or its connection) failed.
#[derive(Debug, Clone)]
pub(crate) enum Error {
    /// The server reset the stream.
    Reset(Reason),
    /// The server's GOAWAY came before it took the stream: it was never processed.
    Refused,
    /// The server ended the connection with an error.
    GoAway(Reason),
    /// The server broke the protocol (the connection, or only the stream, is ended).
    Protocol(&'static str),
    /// The connection failed or was closed (reading, writing, a ping unanswered).
    Closed(&'static str),
    /// The stream was ended on our side (its request body failed).
    Cancelled,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Reset(r) => write!(f, "stream reset by the upstream: {}", r.name()),
            Error::Refused => f.write_str("the upstream went away before taking the stream"),
            Error::GoAway(r) => write!(f, "connection ended by the upstream: {}", r.name()),
            Error::Protocol(why) => write!(f, "HTTP/2 protocol error from the upstream: {why}"),
            Error::Closed(why) => write!(f, "connection closed: {why}"),
            Error::Cancelled => f.write_str("stream cancelled"),
        }
    }
}

impl std::error::Error for Error {}

// === state ===

/// What requests and the connection's task share.
struct Shared {
    inner: Mutex<Inner>,
    /// The connection's task: woken when there is something to write or to end.
    task: AtomicWaker,
    /// No stream may be opened any more (GOAWAY, failure, end).
    closed: AtomicBool,
    /// Every [`Client`] handle is gone: the task ends once no stream is left.
    orphaned: AtomicBool,
}

struct Inner {
    /// Frames to write; the task takes them.
    out: Vec<u8>,
    enc: hpack::Encoder,
    next_id: u32,
    streams: Vec<St>,
    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS`.
    max_streams: usize,
    /// Requests waiting for a stream under that limit.
    waiting: Vec<Waker>,
    /// A request body waits for room in `out` (its stream's `send_waker`).
    full_waiting: bool,
    /// The server's initial stream window.
    peer_window: i64,
    conn_send: i64,
    conn_recv: i64,
    /// Connection window read and not yet given back.
    conn_unacked: i64,
    /// The connection failed: every stream fails with this.
    failed: Option<Error>,
    /// The server's GOAWAY: the last stream it takes.
    goaway: Option<u32>,
}

/// One stream's state.
struct St {
    id: u32,
    /// Handles on it ([`StreamRef`]); it is removed when the last goes.
    refs: u8,
    head_request: bool,
    /// The answer's head, until taken.
    head: Option<Response<()>>,
    got_head: bool,
    data: VecDeque<Bytes>,
    /// Bytes in `data`, given back to the connection if never read.
    held: usize,
    trailers: Option<HeaderMap>,
    recv_end: bool,
    /// `Content-Length` of the answer still to come.
    remaining: Option<u64>,
    recv_window: i64,
    recv_unacked: i64,
    error: Option<Error>,
    recv_waker: Option<Waker>,
    send_window: i64,
    send_end: bool,
    send_waker: Option<Waker>,
}

impl Inner {
    fn find(&mut self, id: u32) -> Option<&mut St> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// Window read by a stream's reader (or never to be read), given back to the server
    /// once half a window has gathered; `true` when a frame was queued.
    fn give_back(&mut self, id: u32, n: usize) -> bool {
        let mut queued = false;
        if let Some(st) = self.streams.iter_mut().find(|s| s.id == id) {
            if !st.recv_end && st.error.is_none() {
                st.recv_unacked += n as i64;
                if st.recv_unacked >= STREAM_WINDOW / 2 {
                    let inc = st.recv_unacked;
                    st.recv_unacked = 0;
                    st.recv_window += inc;
                    frame(
                        &mut self.out,
                        WINDOW_UPDATE,
                        0,
                        id,
                        &(inc as u32).to_be_bytes(),
                    );
                    queued = true;
                }
            }
        }
        queued | self.give_back_conn(n as i64)
    }

    fn give_back_conn(&mut self, n: i64) -> bool {
        self.conn_unacked += n;
        if self.conn_unacked < CONN_WINDOW / 2 {
            return false;
        }
        let inc = self.conn_unacked;
        self.conn_unacked = 0;
        self.conn_recv += inc;
        frame(
            &mut self.out,
            WINDOW_UPDATE,
            0,
            0,
            &(inc as u32).to_be_bytes(),
        );
        true
    }

    /// Fails every stream with `e`, collecting their wakers.
    fn fail(&mut self, e: Error, wake: &mut Vec<Waker>) {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
        }
        for st in &mut self.streams {
            if st.error.is_none() && !(st.recv_end && st.send_end) {
                st.error = Some(e.clone());
            }
            wake.extend(st.recv_waker.take());
            wake.extend(st.send_waker.take());
        }
        wake.append(&mut self.waiting);
    }
}

fn lock(sh: &Shared) -> MutexGuard<'_, Inner> {
    sh.inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the task's waker in `slot` (not cloned again when the same task polls).
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

// === the handle ===

/// A handle on one HTTP/2 connection to an upstream server.
#[derive(Clone)]
pub(crate) struct Client(Arc<Handle>);

struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.orphaned.store(true, Ordering::Release);
        self.0.task.wake();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h2conn::Client")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Client {
    /// An HTTP/2 connection on `io` (TLS with ALPN `h2` done, or plain for prior
    /// knowledge): the preface and our SETTINGS go out at once, and a task of its own
    /// drives the connection.
    pub(crate) fn handshake<T>(io: T) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(PREFACE);
        let mut p = Vec::with_capacity(24);
        for (k, v) in [
            (2u16, 0u32),
            (4, STREAM_WINDOW as u32),
            (6, MAX_HEADER_LIST as u32),
        ] {
            p.extend_from_slice(&k.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        frame(&mut out, SETTINGS, 0, 0, &p);
        let inc = (CONN_WINDOW - DEFAULT_WINDOW) as u32;
        frame(&mut out, WINDOW_UPDATE, 0, 0, &inc.to_be_bytes());
        let sh = Arc::new(Shared {
            inner: Mutex::new(Inner {
                out,
                enc: hpack::Encoder::default(),
                next_id: 1,
                streams: Vec::new(),
                max_streams: INITIAL_MAX_STREAMS,
                waiting: Vec::new(),
                full_waiting: false,
                peer_window: DEFAULT_WINDOW,
                conn_send: DEFAULT_WINDOW,
                conn_recv: CONN_WINDOW,
                conn_unacked: 0,
                failed: None,
                goaway: None,
            }),
            task: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            orphaned: AtomicBool::new(false),
        });
        let mut driver = Driver {
            io,
            sh: sh.clone(),
            inbuf: BytesMut::new(),
            out: Outbox::default(),
            dec: hpack::Decoder::with_literal_cache(),
            cont: None,
            settings: false,
            ping: Box::pin(tokio::time::sleep(PING_EVERY)),
            ping_out: false,
            ending: false,
        };
        tokio::spawn(std::future::poll_fn(move |cx| driver.poll(cx)));
        Self(Arc::new(Handle(sh)))
    }

    /// No stream can be opened on it any more (the server's GOAWAY, a failure).
    pub(crate) fn is_closed(&self) -> bool {
        self.0 .0.closed.load(Ordering::Relaxed)
    }

    /// Sends `req` (its URI absolute: scheme and authority become `:scheme` and
    /// `:authority`) and waits for the answer's head. The request body is sent by this
    /// future meanwhile; if it has not ended when the answer's head arrives (a streaming
    /// call), a task of its own finishes it.
    pub(crate) fn send(&self, req: Request<Body>) -> Exchange {
        self.send_with(req, ())
    }

    /// [`Client::send`], with fields added to the request's own in place of its fields
    /// of the same names (encoded straight into the header block: no map insertions).
    pub(crate) fn send_with<E: Extra>(&self, req: Request<Body>, extra: E) -> Exchange<E> {
        Exchange {
            sh: self.0 .0.clone(),
            req: Some(req),
            extra,
            stream: None,
            pump: None,
        }
    }
}

/// Fields a request is sent with besides its own (the proxy's forwarding headers).
pub(crate) trait Extra: Unpin {
    /// Whether the request's own field named `n` is left out (replaced or removed).
    fn replaces(&self, n: &HeaderName) -> bool;
    /// Each field to add: name, value, and whether it is sensitive (never indexed).
    fn fields(&self, add: &mut dyn FnMut(&HeaderName, &[u8], bool));
}

impl Extra for () {
    fn replaces(&self, _: &HeaderName) -> bool {
        false
    }

    fn fields(&self, _: &mut dyn FnMut(&HeaderName, &[u8], bool)) {}
}

// === a stream's handles ===

/// A handle on a stream; the last one dropped removes it (and resets it when it has not
/// ended both ways).
struct StreamRef {
    sh: Arc<Shared>,
    id: u32,
}

impl Drop for StreamRef {
    fn drop(&mut self) {
        let mut inner = lock(&self.sh);
        let Some(at) = inner.streams.iter().position(|s| s.id == self.id) else {
            return;
        };
        let st = &mut inner.streams[at];
        st.refs -= 1;
        if st.refs > 0 {
            return;
        }
        let st = inner.streams.swap_remove(at);
        let mut write = false;
        if st.error.is_none() && !(st.recv_end && st.send_end) && inner.failed.is_none() {
            frame(
                &mut inner.out,
                RST_STREAM,
                0,
                st.id,
                &Reason::CANCEL.0.to_be_bytes(),
            );
            write = true;
        }
        // What the reader never read goes back to the connection's window.
        let back = st.held as i64 + st.recv_unacked;
        write |= back > 0 && inner.give_back_conn(back);
        let waiting = std::mem::take(&mut inner.waiting);
        drop(inner);
        wake_all(waiting);
        if write || self.sh.orphaned.load(Ordering::Acquire) {
            self.sh.task.wake();
        }
    }
}

// === sending a request ===

/// A request being sent: its stream opened when the server's limit allows, its body
/// pumped, until the answer's head arrives.
pub(crate) struct Exchange<E = ()> {
    sh: Arc<Shared>,
    req: Option<Request<Body>>,
    extra: E,
    stream: Option<StreamRef>,
    pump: Option<Pump>,
}

impl<E: Extra> Exchange<E> {
    /// Opens the stream: its head encoded into the connection's write buffer.
    fn open(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut inner = lock(&self.sh);
        if let Some(e) = &inner.failed {
            return Poll::Ready(Err(e.clone()));
        }
        if inner.goaway.is_some() || inner.next_id > MAX_WINDOW as u32 {
            self.sh.closed.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(Error::Refused));
        }
        if inner.streams.len() >= inner.max_streams {
            inner.waiting.push(cx.waker().clone());
            return Poll::Pending;
        }
        let Some(req) = self.req.take() else {
            return Poll::Ready(Err(Error::Cancelled));
        };
        let (head, body) = req.into_parts();
        let id = inner.next_id;
        inner.next_id += 2;
        let eos = body.is_end_stream();
        let inner = &mut *inner;
        let out = &mut inner.out;
        let start = out.len();
        out.extend_from_slice(&[0; 9]);
        let enc = &mut inner.enc;
        enc.begin(out);
        enc.pseudo(Pseudo::Method, head.method.as_str().as_bytes(), out);
        let scheme = head.uri.scheme_str().unwrap_or("http");
        enc.pseudo(Pseudo::Scheme, scheme.as_bytes(), out);
        if let Some(a) = head.uri.authority() {
            enc.pseudo(Pseudo::Authority, a.as_str().as_bytes(), out);
        }
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
        enc.pseudo(Pseudo::Path, path.as_bytes(), out);
        for (n, v) in &head.headers {
            if !forbidden(n, v) && *n != header::HOST && !self.extra.replaces(n) {
                enc.field(n, v, out);
            }
        }
        self.extra
            .fields(&mut |n, v, sensitive| enc.field_as(n, v, sensitive, out));
        close_head(out, start, id, if eos { END_STREAM } else { 0 });
        let peer_window = inner.peer_window;
        inner.streams.push(St {
            id,
            refs: if eos { 1 } else { 2 },
            head_request: head.method == http::Method::HEAD,
            head: None,
            got_head: false,
            data: VecDeque::new(),
            held: 0,
            trailers: None,
            recv_end: false,
            remaining: None,
            recv_window: STREAM_WINDOW,
            recv_unacked: 0,
            error: None,
            recv_waker: None,
            send_window: peer_window,
            send_end: eos,
            send_waker: None,
        });
        self.stream = Some(StreamRef {
            sh: self.sh.clone(),
            id,
        });
        if !eos {
            self.pump = Some(Pump {
                stream: StreamRef {
                    sh: self.sh.clone(),
                    id,
                },
                body,
                chunk: None,
            });
        }
        self.sh.task.wake();
        Poll::Ready(Ok(()))
    }
}

impl<E: Extra> Future for Exchange<E> {
    type Output = Result<Response<AnswerBody>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = &mut *self;
        if me.stream.is_none() {
            ready!(me.open(cx))?;
        }
        if let Some(p) = me.pump.as_mut() {
            if Pin::new(p).poll(cx).is_ready() {
                me.pump = None;
            }
        }
        let Some(stream) = me.stream.as_ref() else {
            return Poll::Ready(Err(Error::Cancelled));
        };
        let mut inner = lock(&me.sh);
        let Some(st) = inner.find(stream.id) else {
            return Poll::Ready(Err(Error::Cancelled));
        };
        // An answer found broken before its head went on (a body longer than its
        // `Content-Length` in the same read) is a failed exchange, not a 200 cut short;
        // a reset with NO_ERROR after a whole answer is no failure.
        let failed = st
            .error
            .as_ref()
            .filter(|e| st.head.is_none() || !matches!(e, Error::Reset(Reason::NO_ERROR)));
        if let Some(e) = failed {
            return Poll::Ready(Err(e.clone()));
        }
        if let Some(head) = st.head.take() {
            let done = st.recv_end && st.data.is_empty() && st.trailers.is_none();
            drop(inner);
            if let Some(p) = me.pump.take() {
                tokio::spawn(p);
            }
            let body = AnswerBody {
                stream: me.stream.take(),
                done,
            };
            return Poll::Ready(Ok(head.map(|()| body)));
        }
        park(&mut st.recv_waker, cx);
        Poll::Pending
    }
}

/// A request body on its way to its stream, frame by frame within the stream's and the
/// connection's windows. A body that fails resets the stream (the upstream never takes
/// a truncated body for a whole one).
struct Pump {
    stream: StreamRef,
    body: Body,
    /// A chunk read from the body, waiting for window (and whether it was the last).
    chunk: Option<(Bytes, bool)>,
}

impl Pump {
    /// Sends what the windows allow of the waiting chunk: `Ready(true)` when the stream's
    /// sending side is over (ended, reset, failed), `Ready(false)` to read more.
    fn send_chunk(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Some((mut data, last)) = self.chunk.take() else {
            return Poll::Ready(false);
        };
        let mut inner = lock(&self.stream.sh);
        let inner = &mut *inner;
        if inner.failed.is_some() {
            return Poll::Ready(true);
        }
        let conn_send = inner.conn_send;
        let full = inner.out.len() >= OUT_HIGH;
        let Some(st) = inner.streams.iter_mut().find(|s| s.id == self.stream.id) else {
            return Poll::Ready(true);
        };
        if st.error.is_some() || st.send_end {
            return Poll::Ready(true);
        }
        let can = st.send_window.min(conn_send).max(0) as usize;
        if full || (can == 0 && !data.is_empty()) {
            park(&mut st.send_waker, cx);
            inner.full_waiting |= full;
            self.chunk = Some((data, last));
            return Poll::Pending;
        }
        let n = data.len().min(can);
        st.send_window -= n as i64;
        let end = last && n == data.len();
        st.send_end = end;
        inner.conn_send -= n as i64;
        let mut sent = data.split_to(n);
        loop {
            let part = sent.split_to(sent.len().min(MAX_FRAME));
            let fin = end && sent.is_empty();
            frame_head(
                &mut inner.out,
                part.len(),
                DATA,
                if fin { END_STREAM } else { 0 },
                self.stream.id,
            );
            inner.out.extend_from_slice(&part);
            if sent.is_empty() {
                break;
            }
        }
        self.stream.sh.task.wake();
        if end {
            return Poll::Ready(true);
        }
        if !data.is_empty() {
            self.chunk = Some((data, last));
        }
        Poll::Ready(false)
    }

    /// Ends the stream's sending side: with trailers, with an empty DATA frame, or with a
    /// reset when the body failed.
    fn finish(&mut self, how: Option<Option<HeaderMap>>) {
        let mut inner = lock(&self.stream.sh);
        let inner = &mut *inner;
        let id = self.stream.id;
        let Some(st) = inner.streams.iter_mut().find(|s| s.id == id) else {
            return;
        };
        if st.error.is_some() || st.send_end || inner.failed.is_some() {
            return;
        }
        st.send_end = true;
        match how {
            Some(Some(trailers)) => {
                let start = inner.out.len();
                inner.out.extend_from_slice(&[0; 9]);
                inner.enc.begin(&mut inner.out);
                for (n, v) in &trailers {
                    if !forbidden(n, v) {
                        inner.enc.field(n, v, &mut inner.out);
                    }
                }
                close_head(&mut inner.out, start, id, END_STREAM);
            }
            Some(None) => frame(&mut inner.out, DATA, END_STREAM, id, &[]),
            None => {
                st.error = Some(Error::Cancelled);
                let w = st.recv_waker.take();
                frame(
                    &mut inner.out,
                    RST_STREAM,
                    0,
                    id,
                    &Reason::CANCEL.0.to_be_bytes(),
                );
                if let Some(w) = w {
                    w.wake();
                }
            }
        }
        self.stream.sh.task.wake();
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.get_mut();
        loop {
            if ready!(me.send_chunk(cx)) {
                return Poll::Ready(());
            }
            if me.chunk.is_some() {
                continue;
            }
            match ready!(Pin::new(&mut me.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let last = me.body.is_end_stream();
                        if !data.is_empty() || last {
                            me.chunk = Some((data, last));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            me.finish(Some(Some(t)));
                            return Poll::Ready(());
                        }
                    }
                },
                Some(Err(_)) => {
                    me.finish(None);
                    return Poll::Ready(());
                }
                None => {
                    me.finish(Some(None));
                    return Poll::Ready(());
                }
            }
        }
    }
}

// === the answer's body ===

/// An upstream's answer body: data as it arrives (its window given back as it is read),
/// then trailers.
pub(crate) struct AnswerBody {
    stream: Option<StreamRef>,
    done: bool,
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(stream) = self.stream.as_ref() else {
            return Poll::Ready(None);
        };
        let sh = stream.sh.clone();
        let id = stream.id;
        let mut inner = lock(&sh);
        let failed = inner.failed.clone();
        let Some(st) = inner.find(id) else {
            self.done = true;
            return Poll::Ready(None);
        };
        if let Some(d) = st.data.pop_front() {
            st.held -= d.len();
            let last = st.recv_end && st.data.is_empty() && st.trailers.is_none();
            let write = inner.give_back(id, d.len());
            drop(inner);
            if write {
                sh.task.wake();
            }
            if last {
                self.done = true;
                self.stream = None;
            }
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if st.recv_end {
            let t = st.trailers.take();
            drop(inner);
            self.done = true;
            self.stream = None;
            return Poll::Ready(t.map(|t| Ok(Frame::trailers(t))));
        }
        let err = st.error.clone().or(failed);
        if let Some(e) = err {
            drop(inner);
            self.done = true;
            self.stream = None;
            // A reset with NO_ERROR ends the answer early but whole (RFC 9113 §8.1: a
            // server that answered before reading the whole request).
            if matches!(e, Error::Reset(Reason::NO_ERROR)) {
                return Poll::Ready(None);
            }
            return Poll::Ready(Some(Err(Box::new(e))));
        }
        park(&mut st.recv_waker, cx);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

// === the connection's task ===

/// A header block whose CONTINUATION frames are still coming: stream, END_STREAM, block.
type Continuation = (u32, bool, Vec<u8>);

struct Driver<T> {
    io: T,
    sh: Arc<Shared>,
    inbuf: BytesMut,
    /// Frames being written, taken from `Inner::out`.
    out: Outbox,
    dec: hpack::Decoder,
    cont: Option<Continuation>,
    /// The server's first SETTINGS arrived.
    settings: bool,
    ping: Pin<Box<tokio::time::Sleep>>,
    /// A PING is out, unanswered.
    ping_out: bool,
    /// GOAWAY sent or the connection failed: only writing what is left.
    ending: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.sh.task.register(cx.waker());
        for _ in 0..32 {
            let mut progress = false;
            if !self.ending {
                if self.inbuf.capacity() - self.inbuf.len() < 4096 {
                    self.inbuf.reserve(MAX_FRAME + 9);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.inbuf) {
                    Poll::Ready(Ok(0)) => {
                        self.end(Error::Closed("the upstream closed the connection"));
                        return Poll::Ready(());
                    }
                    Poll::Ready(Err(_)) => {
                        self.end(Error::Closed("reading from the upstream failed"));
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        self.frames();
                    }
                    Poll::Pending => {}
                }
            }
            if !self.ending && self.ping.as_mut().poll(cx).is_ready() {
                if self.ping_out {
                    tracing::debug!("an upstream HTTP/2 connection did not answer a ping; closed");
                    self.end(Error::Closed("the upstream did not answer a ping"));
                    return Poll::Ready(());
                }
                self.ping_out = true;
                frame(&mut lock(&self.sh).out, PING, 0, 0, &[0; 8]);
                let next = tokio::time::Instant::now() + PING_TIMEOUT;
                self.ping.as_mut().reset(next);
                progress = true;
            }
            if !self.ending {
                let inner = lock(&self.sh);
                let done = inner.streams.is_empty()
                    && (inner.goaway.is_some() || self.sh.orphaned.load(Ordering::Acquire));
                drop(inner);
                if done {
                    // Nothing left to do on it: the server's GOAWAY came and its last
                    // streams ended, or nobody can open one any more.
                    self.go_away(Reason::NO_ERROR, "");
                }
            }
            match self.write(cx) {
                Ok(moved) => progress |= moved,
                Err(_) => {
                    self.end(Error::Closed("writing to the upstream failed"));
                    return Poll::Ready(());
                }
            }
            if self.ending && self.out.pending() == 0 {
                let _ = Pin::new(&mut self.io).poll_shutdown(cx);
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes what is queued; `Ok(true)` when something moved.
    fn write(&mut self, cx: &mut Context<'_>) -> std::io::Result<bool> {
        if self.out.pending() == 0 {
            let mut inner = lock(&self.sh);
            if !inner.out.is_empty() {
                std::mem::swap(&mut self.out.buf, &mut inner.out);
                let waiting = std::mem::take(&mut inner.waiting);
                let mut blocked = Vec::new();
                if std::mem::take(&mut inner.full_waiting) {
                    for st in &mut inner.streams {
                        blocked.extend(st.send_waker.take());
                    }
                }
                drop(inner);
                wake_all(waiting);
                wake_all(blocked);
            }
        }
        self.out.write(&mut self.io, cx)
    }

    /// The connection is over: every stream fails with `e`.
    fn end(&mut self, e: Error) {
        self.ending = true;
        self.sh.closed.store(true, Ordering::Relaxed);
        let mut wake = Vec::new();
        lock(&self.sh).fail(e, &mut wake);
        wake_all(wake);
    }

    /// Sends GOAWAY; with an error, every stream fails.
    fn go_away(&mut self, reason: Reason, why: &'static str) {
        self.ending = true;
        self.sh.closed.store(true, Ordering::Relaxed);
        let mut wake = Vec::new();
        let mut inner = lock(&self.sh);
        let mut p = Vec::with_capacity(8 + why.len());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&reason.0.to_be_bytes());
        p.extend_from_slice(why.as_bytes());
        frame(&mut inner.out, GOAWAY, 0, 0, &p);
        if reason != Reason::NO_ERROR {
            inner.fail(Error::Protocol(why), &mut wake);
        }
        drop(inner);
        wake_all(wake);
    }

    /// Applies the complete frames read.
    fn frames(&mut self) {
        let mut wake = Vec::new();
        let sh = self.sh.clone();
        let mut inner = lock(&sh);
        let r = self.frames_locked(&mut inner, &mut wake);
        drop(inner);
        wake_all(wake);
        if let Err(e) = r {
            tracing::debug!(error = e.1, "HTTP/2 upstream connection error");
            self.go_away(e.0, e.1);
        }
    }

    fn frames_locked(&mut self, inner: &mut Inner, wake: &mut Vec<Waker>) -> Result<(), ConnError> {
        while let Some((len, ty, flags, id)) = next_frame(
            &mut self.inbuf,
            self.settings,
            self.cont.as_ref().map(|c| c.0),
        )? {
            let f = self.inbuf.split_to(9 + len).freeze().slice(9..);
            match ty {
                DATA => on_data(inner, flags, id, f, wake)?,
                HEADERS => {
                    if id == 0 {
                        return Err(ConnError(Reason::PROTOCOL_ERROR, "HEADERS on stream 0"));
                    }
                    let mut p = unpad(flags, &f)?;
                    if flags & PRIORITY_FLAG != 0 {
                        p = p.get(5..).ok_or(ConnError(
                            Reason::FRAME_SIZE_ERROR,
                            "HEADERS priority too short",
                        ))?;
                    }
                    let end = flags & END_STREAM != 0;
                    if flags & END_HEADERS == 0 {
                        if p.len() > MAX_BLOCK {
                            return Err(ConnError(
                                Reason::ENHANCE_YOUR_CALM,
                                "header block too large",
                            ));
                        }
                        self.cont = Some((id, end, p.to_vec()));
                    } else {
                        let block = f.slice_ref(p);
                        self.head(inner, id, end, &block, wake)?;
                    }
                }
                CONTINUATION => {
                    let Some((cid, end, mut block)) = self.cont.take() else {
                        return Err(ConnError(
                            Reason::PROTOCOL_ERROR,
                            "CONTINUATION without HEADERS",
                        ));
                    };
                    if block.len() + f.len() > MAX_BLOCK {
                        return Err(ConnError(
                            Reason::ENHANCE_YOUR_CALM,
                            "header block too large",
                        ));
                    }
                    block.extend_from_slice(&f);
                    if flags & END_HEADERS == 0 {
                        self.cont = Some((cid, end, block));
                    } else {
                        self.head(inner, cid, end, &block.into(), wake)?;
                    }
                }
                RST_STREAM => {
                    if id == 0 || f.len() != 4 {
                        return Err(ConnError(Reason::PROTOCOL_ERROR, "malformed RST_STREAM"));
                    }
                    let reason = Reason(u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
                    if let Some(st) = inner.find(id) {
                        if st.error.is_none() {
                            st.error = Some(Error::Reset(reason));
                        }
                        wake.extend(st.recv_waker.take());
                        wake.extend(st.send_waker.take());
                    }
                }
                SETTINGS => self.on_settings(inner, flags, id, &f, wake)?,
                PUSH_PROMISE => {
                    return Err(ConnError(
                        Reason::PROTOCOL_ERROR,
                        "PUSH_PROMISE with push disabled",
                    ));
                }
                PING => {
                    if id != 0 || f.len() != 8 {
                        return Err(ConnError(Reason::PROTOCOL_ERROR, "malformed PING"));
                    }
                    if flags & ACK == 0 {
                        frame(&mut inner.out, PING, ACK, 0, &f);
                    } else if self.ping_out {
                        self.ping_out = false;
                        let next = tokio::time::Instant::now() + PING_EVERY;
                        self.ping.as_mut().reset(next);
                    }
                }
                GOAWAY => {
                    if id != 0 || f.len() < 8 {
                        return Err(ConnError(Reason::PROTOCOL_ERROR, "malformed GOAWAY"));
                    }
                    let last = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) & 0x7fff_ffff;
                    let reason = Reason(u32::from_be_bytes([f[4], f[5], f[6], f[7]]));
                    self.sh.closed.store(true, Ordering::Relaxed);
                    inner.goaway = Some(last);
                    for st in &mut inner.streams {
                        if st.id > last && st.error.is_none() {
                            st.error = Some(Error::Refused);
                        } else if reason != Reason::NO_ERROR && st.error.is_none() && !st.recv_end {
                            st.error = Some(Error::GoAway(reason));
                        }
                        wake.extend(st.recv_waker.take());
                        wake.extend(st.send_waker.take());
                    }
                    wake.append(&mut inner.waiting);
                    if reason != Reason::NO_ERROR {
                        inner.failed = Some(Error::GoAway(reason));
                    }
                }
                WINDOW_UPDATE => {
                    let inc = window_increment(&f)?;
                    if id == 0 {
                        grow_conn_window(&mut inner.conn_send, inc)?;
                        for st in &mut inner.streams {
                            wake.extend(st.send_waker.take());
                        }
                    } else if let Some(st) = inner.find(id) {
                        if inc == 0 || !move_window(&mut st.send_window, inc) {
                            reject_answer(inner, id, "bad WINDOW_UPDATE", wake);
                        } else {
                            wake.extend(st.send_waker.take());
                        }
                    }
                }
                // PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).
                _ => {}
            }
        }
        Ok(())
    }

    fn on_settings(
        &mut self,
        inner: &mut Inner,
        flags: u8,
        id: u32,
        p: &[u8],
        wake: &mut Vec<Waker>,
    ) -> Result<(), ConnError> {
        let Some(entries) = h2frame::settings(flags, id, p)? else {
            return Ok(());
        };
        for (k, v) in entries {
            match k {
                HEADER_TABLE_SIZE => inner.enc.set_max(v as usize),
                MAX_CONCURRENT_STREAMS => {
                    inner.max_streams = v as usize;
                    wake.append(&mut inner.waiting);
                }
                INITIAL_WINDOW_SIZE => {
                    let windows = inner.streams.iter_mut().map(|st| &mut st.send_window);
                    if set_initial_window(&mut inner.peer_window, v, windows)? > 0 {
                        for st in &mut inner.streams {
                            wake.extend(st.send_waker.take());
                        }
                    }
                }
                // Frames sent stay at 16 KiB, which every peer accepts.
                _ => {}
            }
        }
        self.settings = true;
        frame(&mut inner.out, SETTINGS, ACK, 0, &[]);
        Ok(())
    }

    /// A whole header block: an answer's head (or an informational one), or its trailers.
    fn head(
        &mut self,
        inner: &mut Inner,
        id: u32,
        end: bool,
        block: &Bytes,
        wake: &mut Vec<Waker>,
    ) -> Result<(), ConnError> {
        // Decoded whatever becomes of the stream: the table must stay in step.
        let mut status = None;
        let mut headers = HeaderMap::new();
        let mut size = 0;
        let mut malformed = None;
        let mut pseudo = false;
        self.dec
            .decode(block, |f, n| {
                size += n;
                match f {
                    Field::Pseudo(Pseudo::Status, v) if !pseudo && headers.is_empty() => {
                        pseudo = true;
                        status = StatusCode::from_bytes(&v).ok();
                        if status.is_none() {
                            malformed = Some("invalid :status");
                        }
                    }
                    Field::Pseudo(..) => malformed = Some("pseudo-header out of place"),
                    Field::Header(n, v) => {
                        if forbidden(&n, &v) {
                            malformed = Some("connection-specific field");
                        }
                        headers.append(n, v);
                    }
                    Field::Malformed(why) => malformed = Some(why),
                }
            })
            .map_err(|e| ConnError(Reason::COMPRESSION_ERROR, e.0))?;
        if id.is_multiple_of(2) || id >= inner.next_id {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "HEADERS on a stream never opened",
            ));
        }
        let Some(st) = inner.find(id) else {
            // A stream we reset: nothing to do.
            return Ok(());
        };
        if st.recv_end || st.error.is_some() {
            return Ok(());
        }
        if size > MAX_HEADER_LIST {
            malformed = Some("answer's header list over 16 KiB");
        }
        if let Some(why) = malformed {
            reject_answer(inner, id, why, wake);
            return Ok(());
        }
        if st.got_head {
            // Trailers: they end the stream, and carry no pseudo-header.
            if !end || pseudo {
                reject_answer(inner, id, "malformed trailers", wake);
                return Ok(());
            }
            if st.remaining.is_some_and(|r| r != 0) {
                reject_answer(inner, id, "answer shorter than its Content-Length", wake);
                return Ok(());
            }
            st.trailers = Some(headers);
            st.recv_end = true;
            wake.extend(st.recv_waker.take());
            return Ok(());
        }
        let Some(status) = status else {
            reject_answer(inner, id, "answer without :status", wake);
            return Ok(());
        };
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: the final answer follows.
            if end {
                reject_answer(inner, id, "informational answer ends the stream", wake);
            }
            return Ok(());
        }
        let bodiless = st.head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if !bodiless && headers.contains_key(header::CONTENT_LENGTH) {
            match crate::wire::h2body::content_length(&headers) {
                Some(n) => st.remaining = Some(n),
                None => {
                    reject_answer(inner, id, "invalid Content-Length", wake);
                    return Ok(());
                }
            }
        }
        if end && st.remaining.is_some_and(|r| r != 0) {
            reject_answer(inner, id, "answer shorter than its Content-Length", wake);
            return Ok(());
        }
        let mut resp = Response::new(());
        *resp.status_mut() = status;
        *resp.version_mut() = http::Version::HTTP_2;
        *resp.headers_mut() = headers;
        st.head = Some(resp);
        st.got_head = true;
        st.recv_end = end;
        wake.extend(st.recv_waker.take());
        Ok(())
    }
}

/// A stream the server got wrong: reset, its request failed.
fn reject_answer(inner: &mut Inner, id: u32, why: &'static str, wake: &mut Vec<Waker>) {
    tracing::debug!(stream = id, why, "malformed HTTP/2 answer from an upstream");
    if let Some(st) = inner.find(id) {
        st.error = Some(Error::Protocol(why));
        wake.extend(st.recv_waker.take());
        wake.extend(st.send_waker.take());
    }
    frame(
        &mut inner.out,
        RST_STREAM,
        0,
        id,
        &Reason::PROTOCOL_ERROR.0.to_be_bytes(),
    );
}

fn on_data(
    inner: &mut Inner,
    flags: u8,
    id: u32,
    f: Bytes,
    wake: &mut Vec<Waker>,
) -> Result<(), ConnError> {
    if id == 0 {
        return Err(ConnError(Reason::PROTOCOL_ERROR, "DATA on stream 0"));
    }
    let len = f.len() as i64;
    inner.conn_recv -= len;
    if inner.conn_recv < 0 {
        return Err(ConnError(
            Reason::FLOW_CONTROL_ERROR,
            "connection window exceeded",
        ));
    }
    let data = if flags & crate::wire::h2frame::PADDED != 0 {
        let p = unpad(flags, &f)?;
        f.slice_ref(p)
    } else {
        f
    };
    let Some(st) = inner.find(id) else {
        if id >= inner.next_id {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "DATA on a stream never opened",
            ));
        }
        // A stream already gone: its data is dropped, its window given back.
        inner.give_back_conn(len);
        return Ok(());
    };
    if st.error.is_some() {
        inner.give_back_conn(len);
        return Ok(());
    }
    st.recv_window -= len;
    let n = data.len() as u64;
    let bad = if !st.got_head {
        Some("DATA before the answer's head")
    } else if st.recv_end {
        Some("DATA after the end of the stream")
    } else if st.recv_window < 0 {
        Some("stream window exceeded")
    } else if st.remaining.is_some_and(|r| n > r) {
        Some("answer longer than its Content-Length")
    } else {
        None
    };
    if let Some(why) = bad {
        reject_answer(inner, id, why, wake);
        inner.give_back_conn(len);
        return Ok(());
    }
    if let Some(r) = &mut st.remaining {
        *r -= n;
    }
    let end = flags & END_STREAM != 0;
    if end && st.remaining.is_some_and(|r| r != 0) {
        reject_answer(inner, id, "answer shorter than its Content-Length", wake);
        inner.give_back_conn(len);
        return Ok(());
    }
    if !data.is_empty() {
        st.held += data.len();
        st.data.push_back(data);
    }
    st.recv_end = end;
    wake.extend(st.recv_waker.take());
    // Padding is never read: given back now.
    let pad = len - n as i64;
    if pad > 0 {
        inner.give_back_conn(pad);
    }
    Ok(())
}
