//! HTTP/2 clients (ALPN h2, and h2c with prior knowledge) served by rampart's own
//! HTTP/2 layer: frames (RFC 9113) and HPACK (`wire::hpack`) handled here, each
//! connection in one task, its streams' answers polled in that task.
//!
//! Why not the h2 crate: callgrind, h2load `-c4 -m10`, a fixed answer of 12 headers and
//! 100 bytes cost 29.2k instructions per request on the h2 crate alone (its HPACK encoder
//! hashing and Huffman-coding every field, a mutex-guarded stream store, a task per
//! stream); HAProxy proxies the whole request in ~33.5k. Here the fields an answer
//! repeats cost one byte and a lookup each, a stream is a slot in a small vector, and an
//! answer's head and body go straight from the answering future into the write buffer.
//!
//! What the edge guarantees on this path, as hyper's and the h2 crate's servers did:
//! the configured stream limit (REFUSED_STREAM over it), a 1 MiB window per stream and
//! per connection given back as the body is read, malformed requests refused
//! (RFC 9113 §8.1.1: uppercase or connection-specific fields, pseudo-headers out of
//! place, a body that disagrees with its `Content-Length`) with a stream reset, the
//! header list limit (431), a cap on a header block and its CONTINUATION frames, a
//! rapid-reset guard (streams reset before they are answered), a cap on stream errors a
//! client causes, and GOAWAY on a graceful close (idle, reload, shutdown) with the streams
//! under way finished. Nothing is read while 64 KiB wait to be written, so a client that
//! floods PINGs or SETTINGS without reading its answers only stalls itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::request::stack::CloseConnection;
use crate::wire::activity::{Activity, SIGNAL_NONE, SIGNAL_PARK};
use crate::wire::body::Body;
use crate::wire::h2body::{content_length, InBody, InShared};
use crate::wire::h2frame::{
    self, close_head, forbidden, frame, frame_head, grow_conn_window, move_window, next_frame,
    set_initial_window, unpad, window_increment, ConnError, Outbox, Reason, ACK, CONTINUATION,
    DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM, GOAWAY, HEADERS, HEADER_TABLE_SIZE,
    INITIAL_WINDOW_SIZE, MAX_FRAME, PADDED, PING, PREFACE, PRIORITY, PRIORITY_FLAG, PUSH_PROMISE,
    RST_STREAM, SETTINGS, WINDOW_UPDATE,
};
use crate::wire::hpack::{self, Field, Pseudo};

/// The window given per stream and per connection (an upload is not throttled to 64 KiB
/// per round trip).
const WINDOW: i64 = 1024 * 1024;
/// Bytes waiting to be written past which nothing more is read or produced.
const OUT_HIGH: usize = 64 * 1024;
/// Body bytes one stream sends in a turn before the others get theirs.
const TURN: usize = 64 * 1024;
/// How long the rest of a request body is read and dropped after its stream's answer
/// (see `Conn::settle`).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);
/// Stream errors a client may cause (malformed requests, window violations) before the
/// connection is closed.
const MAX_STREAM_ERRORS: u32 = 1024;

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
    let mut c = Conn::new(io, s, activity, handle);
    std::future::poll_fn(|cx| c.poll(cx)).await;
}

/// The connection's side of its streams' wakers: which streams asked to be polled.
#[derive(Default)]
struct Shared {
    ready: Mutex<Vec<u32>>,
    conn: AtomicWaker,
}

/// One stream's waker: queues the stream on its connection and wakes the connection.
struct StreamWake {
    id: u32,
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for StreamWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.shared
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(self.id);
            self.shared.conn.wake();
        }
    }
}

struct Stream<F> {
    id: u32,
    wake: Arc<StreamWake>,
    waker: Waker,
    /// The answer being made.
    answer: Option<Pin<Box<F>>>,
    head_only: bool,
    /// The answer's body being sent, and a chunk of it waiting for window (and whether
    /// it is the last).
    body: Option<Body>,
    chunk: Option<(Bytes, bool)>,
    send_window: i64,
    send_done: bool,
    /// The request body's state shared with its reader (for the stream's life: the
    /// reader's progress gives window back even after the client's last DATA).
    inbody: Option<Arc<InShared>>,
    recv_open: bool,
    recv_window: i64,
    /// Window read by the reader and not yet given back to the client.
    recv_unacked: i64,
    /// Bytes delivered to the reader and not yet read (given back when the stream ends).
    held: usize,
    /// `Content-Length` still to come.
    remaining: Option<u64>,
    /// Answered in full while the client still sends the rest of its body: until when
    /// that is read and dropped before the stream is reset.
    drain: Option<std::time::Instant>,
}

/// A header block whose CONTINUATION frames are still coming.
struct Continuation {
    id: u32,
    end_stream: bool,
    self_dependent: bool,
    block: Vec<u8>,
}

struct Limits {
    max_streams: usize,
    max_header_list: usize,
    max_block: usize,
    reset_burst: f64,
    reset_rate: f64,
}

struct Conn<'a, T, H, F> {
    io: T,
    activity: &'a Arc<Activity>,
    handle: H,
    limits: Limits,
    inbuf: BytesMut,
    out: Outbox,
    scratch: Vec<u8>,
    preface: bool,
    settings: bool,
    dec: hpack::Decoder,
    enc: hpack::Encoder,
    streams: Vec<Stream<F>>,
    shared: Arc<Shared>,
    ready: Vec<u32>,
    window_blocked: Vec<u32>,
    write_blocked: Vec<u32>,
    continuation: Option<Continuation>,
    /// The highest stream the client opened.
    last_id: u32,
    conn_send: i64,
    conn_recv: i64,
    conn_unacked: i64,
    peer_window: i64,
    /// A GOAWAY was sent (gracefully: streams under way finish).
    goaway: bool,
    /// The client sent GOAWAY: it opens no more streams.
    peer_gone: bool,
    read_closed: bool,
    /// A connection error was sent: the rest is only flushing.
    failed: bool,
    /// The rapid-reset guard: tokens and when they were last counted.
    reset_tokens: f64,
    reset_at: Option<std::time::Instant>,
    stream_errors: u32,
    /// When the first stream being drained is reset.
    drain_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<'a, T, H, F> Conn<'a, T, H, F>
where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<Body>) -> F,
    F: Future<Output = Result<Response<Body>, CloseConnection>> + Send + 'static,
{
    fn new(
        io: T,
        s: &rampart_config::runtime::Server,
        activity: &'a Arc<Activity>,
        handle: H,
    ) -> Self {
        let max_streams = s.h2_max_concurrent_streams as usize;
        let mut c = Self {
            io,
            activity,
            handle,
            limits: Limits {
                max_streams,
                max_header_list: s.max_header_size,
                // The whole block of a head at the limit, Huffman-coded or not, and room.
                max_block: s.max_header_size.saturating_mul(2).max(64 * 1024),
                reset_burst: (max_streams + s.h2_max_pending_reset_streams) as f64,
                reset_rate: s.h2_max_pending_reset_streams as f64,
            },
            inbuf: BytesMut::new(),
            out: Outbox::default(),
            scratch: Vec::new(),
            preface: false,
            settings: false,
            dec: hpack::Decoder::default(),
            enc: hpack::Encoder::default(),
            streams: Vec::new(),
            shared: Arc::new(Shared::default()),
            ready: Vec::new(),
            window_blocked: Vec::new(),
            write_blocked: Vec::new(),
            continuation: None,
            last_id: 0,
            conn_send: DEFAULT_WINDOW,
            conn_recv: WINDOW,
            conn_unacked: 0,
            peer_window: DEFAULT_WINDOW,
            goaway: false,
            peer_gone: false,
            read_closed: false,
            failed: false,
            reset_tokens: 0.0,
            reset_at: None,
            stream_errors: 0,
            drain_timer: None,
        };
        c.reset_tokens = c.limits.reset_burst;
        // Our SETTINGS: the stream limit, the stream window, the header list limit; then
        // the connection's window raised to match.
        let mut p = Vec::with_capacity(18);
        for (k, v) in [
            (3u16, s.h2_max_concurrent_streams),
            (4, WINDOW as u32),
            (6, u32::try_from(s.max_header_size).unwrap_or(u32::MAX)),
        ] {
            p.extend_from_slice(&k.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        c.frame_out(SETTINGS, 0, 0, &p);
        c.frame_out(
            WINDOW_UPDATE,
            0,
            0,
            &((WINDOW - DEFAULT_WINDOW) as u32).to_be_bytes(),
        );
        c
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.conn.register(cx.waker());
        // Rounds are bounded: a future that wakes itself on every poll cannot hold the
        // thread; after them the task yields and is polled again.
        for _ in 0..32 {
            let mut progress = false;
            if !self.goaway && !self.failed {
                match self.activity.signal.load(Ordering::Acquire) {
                    SIGNAL_NONE => {}
                    SIGNAL_PARK => {
                        self.activity.take_park();
                        self.shrink();
                    }
                    _ => {
                        self.go_away(Reason::NO_ERROR, "");
                        progress = true;
                    }
                }
            }
            if !self.read_closed && !self.failed && self.out.pending() < OUT_HIGH {
                if self.inbuf.capacity() - self.inbuf.len() < 4096 {
                    self.inbuf.reserve(MAX_FRAME + 9);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.inbuf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        // The client is gone: what it asked for is dropped unanswered.
                        self.read_closed = true;
                        self.streams.clear();
                        self.out.discard();
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        if let Err(e) = self.frames() {
                            tracing::debug!(error = e.1, "HTTP/2 connection error");
                            self.go_away(e.0, e.1);
                        }
                    }
                    Poll::Pending => {}
                }
            }
            progress |= self.run_ready();
            if self
                .drain_timer
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready())
            {
                self.drain_expired();
                progress = true;
            }
            match self.write(cx) {
                Ok(wrote) => progress |= wrote,
                Err(_) => return Poll::Ready(()),
            }
            if self.out.is_done() && self.finished() {
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

    /// Resets the streams drained for [`DRAIN_TIME`] (a client that stops sending once
    /// answered, as curl does, is not left waiting), and sets the timer for the next.
    fn drain_expired(&mut self) {
        let now = std::time::Instant::now();
        let mut next: Option<std::time::Instant> = None;
        let mut i = 0;
        while i < self.streams.len() {
            match self.streams[i].drain {
                Some(until) if until <= now => {
                    let id = self.streams[i].id;
                    self.frame_out(RST_STREAM, 0, id, &Reason::NO_ERROR.0.to_be_bytes());
                    self.remove(i);
                    continue;
                }
                Some(until) => next = Some(next.map_or(until, |n| n.min(until))),
                None => {}
            }
            i += 1;
        }
        self.drain_timer = next.map(|t| Box::pin(tokio::time::sleep_until(t.into())));
    }

    fn finished(&self) -> bool {
        self.failed || ((self.goaway || self.peer_gone) && self.streams.is_empty())
    }

    /// Quiet: buffers go back to the allocator (an idle HTTP/2 connection keeps only its
    /// tables and stream state).
    fn shrink(&mut self) {
        if self.inbuf.is_empty() {
            self.inbuf = BytesMut::new();
        }
        self.out.shrink();
        self.scratch = Vec::new();
    }

    /// Writes what is buffered; `Ok(true)` when something moved.
    fn write(&mut self, cx: &mut Context<'_>) -> std::io::Result<bool> {
        let moved = self.out.write(&mut self.io, cx)?;
        if moved && self.out.pending() == 0 {
            self.ready.append(&mut self.write_blocked);
        }
        Ok(moved)
    }

    fn frame_out(&mut self, ty: u8, flags: u8, id: u32, payload: &[u8]) {
        frame(&mut self.out.buf, ty, flags, id, payload);
    }

    fn go_away(&mut self, reason: Reason, debug: &str) {
        if self.goaway && reason == Reason::NO_ERROR {
            return;
        }
        let mut p = Vec::with_capacity(8 + debug.len());
        p.extend_from_slice(&self.last_id.to_be_bytes());
        p.extend_from_slice(&reason.0.to_be_bytes());
        p.extend_from_slice(debug.as_bytes());
        self.frame_out(GOAWAY, 0, 0, &p);
        self.goaway = true;
        if reason != Reason::NO_ERROR {
            self.failed = true;
            self.streams.clear();
        }
    }

    /// Parses the complete frames read.
    fn frames(&mut self) -> Result<(), ConnError> {
        if !self.preface {
            let n = self.inbuf.len().min(PREFACE.len());
            if self.inbuf[..n] != PREFACE[..n] {
                return Err(ConnError(Reason::PROTOCOL_ERROR, "no HTTP/2 preface"));
            }
            if n < PREFACE.len() {
                return Ok(());
            }
            self.inbuf.advance(PREFACE.len());
            self.preface = true;
        }
        while !self.failed {
            let cont = self.continuation.as_ref().map(|c| c.id);
            let Some((len, ty, flags, id)) = next_frame(&mut self.inbuf, self.settings, cont)?
            else {
                return Ok(());
            };
            if ty == DATA {
                // Data is kept as it was read, not copied.
                let f = self.inbuf.split_to(9 + len).freeze();
                self.on_data(flags, id, f.slice(9..))?;
            } else {
                let mut p = std::mem::take(&mut self.scratch);
                p.clear();
                p.extend_from_slice(&self.inbuf[9..9 + len]);
                self.inbuf.advance(9 + len);
                let r = self.control(ty, flags, id, &p);
                self.scratch = p;
                r?;
            }
        }
        Ok(())
    }

    fn control(&mut self, ty: u8, flags: u8, id: u32, p: &[u8]) -> Result<(), ConnError> {
        match ty {
            HEADERS => self.on_headers(flags, id, p),
            CONTINUATION => self.on_continuation(flags, id, p),
            PRIORITY => {
                if id == 0 {
                    return Err(ConnError(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0"));
                }
                if p.len() != 5 {
                    self.stream_error(id, Reason::FRAME_SIZE_ERROR)?;
                } else if u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff == id {
                    self.stream_error(id, Reason::PROTOCOL_ERROR)?;
                }
                Ok(())
            }
            RST_STREAM => self.on_reset(id, p),
            SETTINGS => self.on_settings(flags, id, p),
            PUSH_PROMISE => Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            PING => {
                if id != 0 {
                    return Err(ConnError(Reason::PROTOCOL_ERROR, "PING on a stream"));
                }
                if p.len() != 8 {
                    return Err(ConnError(Reason::FRAME_SIZE_ERROR, "PING not 8 bytes"));
                }
                if flags & ACK == 0 {
                    self.frame_out(PING, ACK, 0, p);
                }
                Ok(())
            }
            GOAWAY => {
                if id != 0 {
                    return Err(ConnError(Reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                if p.len() < 8 {
                    return Err(ConnError(Reason::FRAME_SIZE_ERROR, "GOAWAY too short"));
                }
                self.peer_gone = true;
                Ok(())
            }
            WINDOW_UPDATE => self.on_window_update(id, p),
            // Unknown frame types are ignored (RFC 9113 §5.5).
            _ => Ok(()),
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// A stream error the client caused: RST_STREAM, the stream dropped; too many of them
    /// end the connection.
    fn stream_error(&mut self, id: u32, reason: Reason) -> Result<(), ConnError> {
        self.stream_errors += 1;
        if self.stream_errors > MAX_STREAM_ERRORS {
            return Err(ConnError(
                Reason::ENHANCE_YOUR_CALM,
                "too many stream errors",
            ));
        }
        self.reset(id, reason, "malformed or flow-control violation");
        Ok(())
    }

    /// Resets stream `id` (ours to end: a refusal, an error, an answer that failed).
    fn reset(&mut self, id: u32, reason: Reason, why: &'static str) {
        self.frame_out(RST_STREAM, 0, id, &reason.0.to_be_bytes());
        if let Some(i) = self.find(id) {
            let st = self.remove(i);
            if let Some(sh) = &st.inbody {
                sh.update(|s| s.failed = Some(why));
            }
        }
    }

    fn remove(&mut self, i: usize) -> Stream<F> {
        let st = self.streams.swap_remove(i);
        // What the reader never read goes back to the connection's window.
        let back = st.held as i64 + st.recv_unacked;
        self.give_back_conn(back);
        st
    }

    fn give_back_conn(&mut self, n: i64) {
        self.conn_unacked += n;
        if self.conn_unacked >= WINDOW / 2 {
            let inc = self.conn_unacked;
            self.conn_unacked = 0;
            self.conn_recv += inc;
            self.frame_out(WINDOW_UPDATE, 0, 0, &(inc as u32).to_be_bytes());
        }
    }

    fn on_headers(&mut self, flags: u8, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "HEADERS on stream 0"));
        }
        let mut p = unpad(flags, p)?;
        let mut self_dependent = false;
        if flags & PRIORITY_FLAG != 0 {
            if p.len() < 5 {
                return Err(ConnError(
                    Reason::FRAME_SIZE_ERROR,
                    "HEADERS priority too short",
                ));
            }
            self_dependent = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff == id;
            p = &p[5..];
        }
        let end_stream = flags & END_STREAM != 0;
        if flags & END_HEADERS == 0 {
            if p.len() > self.limits.max_block {
                return Err(ConnError(
                    Reason::ENHANCE_YOUR_CALM,
                    "header block too large",
                ));
            }
            self.continuation = Some(Continuation {
                id,
                end_stream,
                self_dependent,
                block: p.to_vec(),
            });
            return Ok(());
        }
        self.head(id, end_stream, self_dependent, Bytes::copy_from_slice(p))
    }

    fn on_continuation(&mut self, flags: u8, id: u32, p: &[u8]) -> Result<(), ConnError> {
        let Some(mut c) = self.continuation.take() else {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS",
            ));
        };
        if c.id != id {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION on another stream",
            ));
        }
        if c.block.len() + p.len() > self.limits.max_block {
            return Err(ConnError(
                Reason::ENHANCE_YOUR_CALM,
                "header block too large",
            ));
        }
        c.block.extend_from_slice(p);
        if flags & END_HEADERS == 0 {
            self.continuation = Some(c);
            return Ok(());
        }
        self.head(c.id, c.end_stream, c.self_dependent, c.block.into())
    }

    /// A whole header block: a request, or a request's trailers.
    fn head(
        &mut self,
        id: u32,
        end_stream: bool,
        self_dependent: bool,
        block: Bytes,
    ) -> Result<(), ConnError> {
        // Decoded whatever becomes of the stream: the table must stay in step.
        let mut head = Head::default();
        let max = self.limits.max_header_list;
        self.dec
            .decode(&block, |f, size| head.add(f, size, max))
            .map_err(|e| ConnError(Reason::COMPRESSION_ERROR, e.0))?;
        if id.is_multiple_of(2) {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "even stream id from a client",
            ));
        }
        if let Some(i) = self.find(id) {
            return self.trailers(i, end_stream, head);
        }
        if id <= self.last_id {
            // A stream already closed (reset, or trailers of one reset): nothing to do.
            return Ok(());
        }
        self.last_id = id;
        if self.goaway || self.peer_gone {
            return Ok(());
        }
        if self_dependent {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        if self.streams.len() >= self.limits.max_streams {
            self.reset(id, Reason::REFUSED_STREAM, "over the stream limit");
            return Ok(());
        }
        if head.too_large {
            self.refuse_431(id, end_stream);
            return Ok(());
        }
        let mut req = match head.request() {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(stream = id, why, "malformed HTTP/2 request");
                return self.stream_error(id, Reason::PROTOCOL_ERROR);
            }
        };
        let length = match req.headers().contains_key(header::CONTENT_LENGTH) {
            false => None,
            true => match content_length(req.headers()) {
                Some(n) => Some(n),
                None => return self.stream_error(id, Reason::PROTOCOL_ERROR),
            },
        };
        if end_stream && length.is_some_and(|n| n != 0) {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        let wake = Arc::new(StreamWake {
            id,
            queued: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        let waker = Waker::from(wake.clone());
        // CONNECT opens no tunnel here: whatever follows its head is not a body.
        let connect = req.method() == http::Method::CONNECT;
        let inbody = (!end_stream && !connect).then(|| InShared::new(waker.clone()));
        if let Some(sh) = &inbody {
            *req.body_mut() = Body::H2In(InBody::new(sh.clone(), length));
        }
        let head_only = req.method() == http::Method::HEAD;
        let answer = Box::pin((self.handle)(req));
        self.streams.push(Stream {
            id,
            wake,
            waker,
            answer: Some(answer),
            head_only,
            body: None,
            chunk: None,
            send_window: self.peer_window,
            send_done: false,
            inbody,
            recv_open: !end_stream,
            recv_window: WINDOW,
            recv_unacked: 0,
            held: 0,
            remaining: length,
            drain: None,
        });
        self.ready.push(id);
        Ok(())
    }

    fn trailers(&mut self, i: usize, end_stream: bool, head: Head) -> Result<(), ConnError> {
        let id = self.streams[i].id;
        if !self.streams[i].recv_open {
            return self.stream_error(id, Reason::STREAM_CLOSED);
        }
        if !end_stream || head.pseudo || head.malformed.is_some() || head.too_large {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        if self.streams[i].remaining.is_some_and(|r| r != 0) {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        let st = &mut self.streams[i];
        st.recv_open = false;
        if let Some(sh) = &st.inbody {
            sh.update(|s| {
                s.trailers = Some(head.headers);
                s.end = true;
            });
        }
        self.settle(id);
        Ok(())
    }

    /// 431 for a head over the header list limit (its fields were decoded and dropped).
    fn refuse_431(&mut self, id: u32, end_stream: bool) {
        let start = self.out.buf.len();
        self.out.buf.extend_from_slice(&[0; 9]);
        self.enc.begin(&mut self.out.buf);
        self.enc.status(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &mut self.out.buf,
        );
        self.enc.field(
            &header::CONTENT_LENGTH,
            &HeaderValue::from_static("0"),
            &mut self.out.buf,
        );
        close_head(&mut self.out.buf, start, id, END_STREAM);
        if !end_stream {
            self.frame_out(RST_STREAM, 0, id, &Reason::NO_ERROR.0.to_be_bytes());
        }
    }

    fn on_data(&mut self, flags: u8, id: u32, frame: Bytes) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        let len = frame.len() as i64;
        self.conn_recv -= len;
        if self.conn_recv < 0 {
            return Err(ConnError(
                Reason::FLOW_CONTROL_ERROR,
                "connection window exceeded",
            ));
        }
        let data = if flags & PADDED != 0 {
            let pad = usize::from(*frame.first().unwrap_or(&0));
            if frame.is_empty() || pad >= frame.len() {
                return Err(ConnError(Reason::PROTOCOL_ERROR, "padding past the frame"));
            }
            frame.slice(1..frame.len() - pad)
        } else {
            frame
        };
        let Some(i) = self.find(id) else {
            if id > self.last_id {
                return Err(ConnError(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
            }
            // A stream already closed: its data is dropped, its window given back.
            self.give_back_conn(len);
            return Ok(());
        };
        let st = &mut self.streams[i];
        if !st.recv_open {
            self.give_back_conn(len);
            return self.stream_error(id, Reason::STREAM_CLOSED);
        }
        st.recv_window -= len;
        if st.recv_window < 0 {
            return self.stream_error(id, Reason::FLOW_CONTROL_ERROR);
        }
        if st.drain.is_some() {
            // Answered already: the rest of the body (within the stream's window) is
            // dropped as it comes, still held to its length.
            let n = data.len() as u64;
            let end = flags & END_STREAM != 0;
            let r = st.remaining.unwrap_or(0);
            st.remaining = Some(r.saturating_sub(n));
            if n > r || (end && n != r) {
                self.give_back_conn(len);
                return self.stream_error(id, Reason::PROTOCOL_ERROR);
            }
            if end {
                self.remove(i);
            }
            self.give_back_conn(len);
            return Ok(());
        }
        let n = data.len() as u64;
        if let Some(r) = &mut st.remaining {
            if n > *r {
                return self.stream_error(id, Reason::PROTOCOL_ERROR);
            }
            *r -= n;
        }
        let end = flags & END_STREAM != 0;
        if end && st.remaining.is_some_and(|r| r != 0) {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        if end {
            st.recv_open = false;
        }
        // Padding is never read: given back now.
        let mut back = len - n as i64;
        let taken = match &st.inbody {
            Some(sh) => sh.update(|s| {
                if s.dropped {
                    return false;
                }
                if !data.is_empty() {
                    s.chunks.push_back(data);
                }
                s.end |= end;
                true
            }),
            None => false,
        };
        if taken {
            st.held += n as usize;
        } else {
            back += n as i64;
        }
        if back > 0 {
            self.give_back(i, back);
        }
        if end {
            self.settle(id);
        }
        Ok(())
    }

    /// Window read (or never to be read) on stream `i`, given back to the client once
    /// half a window has gathered.
    fn give_back(&mut self, i: usize, n: i64) {
        let st = &mut self.streams[i];
        let id = st.id;
        let mut update = None;
        if st.recv_open {
            st.recv_unacked += n;
            if st.recv_unacked >= WINDOW / 2 {
                update = Some(st.recv_unacked);
                st.recv_window += st.recv_unacked;
                st.recv_unacked = 0;
            }
        }
        if let Some(inc) = update {
            self.frame_out(WINDOW_UPDATE, 0, id, &(inc as u32).to_be_bytes());
        }
        self.give_back_conn(n);
    }

    fn on_reset(&mut self, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
        }
        if p.len() != 4 {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "RST_STREAM not 4 bytes",
            ));
        }
        let Some(i) = self.find(id) else {
            if id > self.last_id {
                return Err(ConnError(
                    Reason::PROTOCOL_ERROR,
                    "RST_STREAM on an idle stream",
                ));
            }
            return Ok(());
        };
        let st = self.remove(i);
        if let Some(sh) = &st.inbody {
            sh.update(|s| s.failed = Some("the client reset the stream"));
        }
        if st.answer.is_some() {
            // Reset before it was answered: the rapid-reset guard counts it.
            let now = std::time::Instant::now();
            let at = *self.reset_at.get_or_insert(now);
            self.reset_tokens = (self.reset_tokens
                + now.duration_since(at).as_secs_f64() * self.limits.reset_rate)
                .min(self.limits.reset_burst);
            self.reset_at = Some(now);
            self.reset_tokens -= 1.0;
            if self.reset_tokens < 0.0 {
                return Err(ConnError(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many streams reset",
                ));
            }
        }
        Ok(())
    }

    fn on_settings(&mut self, flags: u8, id: u32, p: &[u8]) -> Result<(), ConnError> {
        let Some(entries) = h2frame::settings(flags, id, p)? else {
            return Ok(());
        };
        for (k, v) in entries {
            match k {
                HEADER_TABLE_SIZE => self.enc.set_max(v as usize),
                INITIAL_WINDOW_SIZE => {
                    let windows = self.streams.iter_mut().map(|st| &mut st.send_window);
                    if set_initial_window(&mut self.peer_window, v, windows)? > 0 {
                        self.ready.append(&mut self.window_blocked);
                    }
                }
                // Frames sent stay at 16 KiB, which every peer accepts; the rest are
                // advisory or for servers.
                _ => {}
            }
        }
        self.settings = true;
        self.frame_out(SETTINGS, ACK, 0, &[]);
        Ok(())
    }

    fn on_window_update(&mut self, id: u32, p: &[u8]) -> Result<(), ConnError> {
        let inc = window_increment(p)?;
        if id == 0 {
            grow_conn_window(&mut self.conn_send, inc)?;
            self.ready.append(&mut self.window_blocked);
            return Ok(());
        }
        let Some(i) = self.find(id) else {
            if id > self.last_id {
                return Err(ConnError(
                    Reason::PROTOCOL_ERROR,
                    "WINDOW_UPDATE on an idle stream",
                ));
            }
            return Ok(());
        };
        if inc == 0 {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        if !move_window(&mut self.streams[i].send_window, inc) {
            return self.stream_error(id, Reason::FLOW_CONTROL_ERROR);
        }
        if let Some(at) = self.window_blocked.iter().position(|b| *b == id) {
            self.window_blocked.swap_remove(at);
            self.ready.push(id);
        }
        Ok(())
    }

    /// Polls the streams that asked for it; `true` when there were any.
    fn run_ready(&mut self) -> bool {
        let mut ids = std::mem::take(&mut self.ready);
        ids.append(
            &mut self
                .shared
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if ids.is_empty() {
            self.ready = ids;
            return false;
        }
        for &id in &ids {
            if let Some(i) = self.find(id) {
                self.streams[i].wake.queued.store(false, Ordering::Release);
                self.run(i);
            }
        }
        ids.clear();
        // Streams queued while these ran stay queued; the allocation is kept.
        if self.ready.is_empty() {
            self.ready = ids;
        }
        true
    }

    /// One stream's turn: window its reader gave back, its answer, its body.
    fn run(&mut self, i: usize) {
        let id = self.streams[i].id;
        if let Some(sh) = &self.streams[i].inbody {
            let (read, dropped) = sh.take_released();
            if read > 0 {
                let st = &mut self.streams[i];
                st.held = st.held.saturating_sub(read);
                self.give_back(i, read as i64);
            }
            if dropped && self.streams[i].recv_open {
                // Nobody reads the rest: the client is told to stop once answered.
                self.settle(id);
                if self.find(id).is_none() {
                    return;
                }
            }
        }
        let st = &mut self.streams[i];
        if let Some(answer) = st.answer.as_mut() {
            let mut cx = Context::from_waker(&st.waker);
            match answer.as_mut().poll(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Ok(resp)) => {
                    st.answer = None;
                    self.send_head(i, resp);
                }
                Poll::Ready(Err(CloseConnection)) => {
                    self.reset(id, Reason::INTERNAL_ERROR, "answer failed");
                    return;
                }
            }
        }
        self.pump(i);
        self.settle(id);
    }

    /// The answer's head: one HEADERS frame (and CONTINUATION past 16 KiB).
    fn send_head(&mut self, i: usize, resp: Response<Body>) {
        let (parts, body) = resp.into_parts();
        let st = &self.streams[i];
        let id = st.id;
        let eos = st.head_only || body.is_end_stream();
        let start = self.out.buf.len();
        self.out.buf.extend_from_slice(&[0; 9]);
        self.enc.begin(&mut self.out.buf);
        self.enc.status(parts.status, &mut self.out.buf);
        let (mut date, mut length) = (false, false);
        for (n, v) in &parts.headers {
            if forbidden(n, v) {
                continue;
            }
            date |= *n == header::DATE;
            length |= *n == header::CONTENT_LENGTH;
            self.enc.field(n, v, &mut self.out.buf);
        }
        if !date {
            self.enc
                .field(&header::DATE, &date_value(), &mut self.out.buf);
        }
        if !eos && !length {
            if let Some(n) = body.size_hint().exact() {
                self.enc.field(
                    &header::CONTENT_LENGTH,
                    &HeaderValue::from(n),
                    &mut self.out.buf,
                );
            }
        }
        close_head(
            &mut self.out.buf,
            start,
            id,
            if eos { END_STREAM } else { 0 },
        );
        let st = &mut self.streams[i];
        if eos {
            st.send_done = true;
        } else {
            st.body = Some(body);
        }
    }

    /// Sends stream `i`'s body as far as its windows and the write buffer allow.
    fn pump(&mut self, i: usize) {
        let mut sent = 0;
        loop {
            let st = &mut self.streams[i];
            let id = st.id;
            if st.send_done {
                return;
            }
            if let Some((chunk, last)) = st.chunk.take() {
                if self.out.pending() >= OUT_HIGH {
                    st.chunk = Some((chunk, last));
                    self.write_blocked.push(id);
                    return;
                }
                let can = st.send_window.min(self.conn_send).max(0) as usize;
                if can == 0 && !chunk.is_empty() {
                    st.chunk = Some((chunk, last));
                    if !self.window_blocked.contains(&id) {
                        self.window_blocked.push(id);
                    }
                    return;
                }
                let n = chunk.len().min(can).min(MAX_FRAME);
                let end = last && n == chunk.len();
                st.send_window -= n as i64;
                if n < chunk.len() {
                    st.chunk = Some((chunk.slice(n..), last));
                } else if end {
                    st.send_done = true;
                    st.body = None;
                }
                self.conn_send -= n as i64;
                frame_head(
                    &mut self.out.buf,
                    n,
                    DATA,
                    if end { END_STREAM } else { 0 },
                    id,
                );
                self.out.buf.extend_from_slice(&chunk[..n]);
                sent += n;
                if end {
                    return;
                }
                if sent >= TURN {
                    // The others' turn; this one comes back after them.
                    self.ready.push(id);
                    return;
                }
                continue;
            }
            let Some(body) = st.body.as_mut() else {
                return;
            };
            let mut cx = Context::from_waker(&st.waker);
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(None) => {
                    st.send_done = true;
                    st.body = None;
                    self.frame_out(DATA, END_STREAM, id, &[]);
                    return;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let last = body.is_end_stream();
                        if !data.is_empty() || last {
                            st.chunk = Some((data, last));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            st.send_done = true;
                            st.body = None;
                            let start = self.out.buf.len();
                            self.out.buf.extend_from_slice(&[0; 9]);
                            self.enc.begin(&mut self.out.buf);
                            for (n, v) in &t {
                                if !forbidden(n, v) {
                                    self.enc.field(n, v, &mut self.out.buf);
                                }
                            }
                            close_head(&mut self.out.buf, start, id, END_STREAM);
                            return;
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    // The upstream broke off: the client must not take a truncated body
                    // for a whole one.
                    tracing::debug!(stream = id, error = %e, "HTTP/2 answer body failed");
                    self.reset(id, Reason::CANCEL, "answer body failed");
                    return;
                }
            }
        }
    }

    /// Ends stream `id` when both sides are done. An answer sent in full while the
    /// client still sends is followed by RST_STREAM(NO_ERROR) (RFC 9113 §8.1), except
    /// when the rest of a body of known length fits in the window the client already
    /// has: that is read and dropped (for up to [`DRAIN_TIME`]) so that the stream ends
    /// cleanly. curl 7.88 reports an error for a reset stream even after a whole
    /// answer, and once answered reads nothing more (not even window updates), so a
    /// reset failed its small uploads to routes answering without reading them, and
    /// waiting for more than its window would hang it.
    fn settle(&mut self, id: u32) {
        let Some(i) = self.find(id) else {
            return;
        };
        let st = &mut self.streams[i];
        if !st.send_done {
            return;
        }
        if st.recv_open {
            if st.drain.is_some() {
                return;
            }
            let fits = st
                .remaining
                .is_some_and(|r| r <= st.recv_window.min(self.conn_recv).max(0) as u64);
            if !fits {
                self.frame_out(RST_STREAM, 0, id, &Reason::NO_ERROR.0.to_be_bytes());
                let st = self.remove(i);
                if let Some(sh) = &st.inbody {
                    sh.update(|s| s.failed = Some("the answer was sent before the body ended"));
                }
                return;
            }
            let until = std::time::Instant::now() + DRAIN_TIME;
            st.drain = Some(until);
            if self.drain_timer.is_none() {
                self.drain_timer = Some(Box::pin(tokio::time::sleep_until(until.into())));
            }
            // What is buffered for a reader goes back; the reader (if any) sees the end.
            if let Some(sh) = st.inbody.take() {
                sh.update(|s| {
                    s.failed = Some("the answer was sent before the body ended");
                    s.dropped = true;
                });
                let back = st.held as i64 + st.recv_unacked;
                st.held = 0;
                st.recv_unacked = 0;
                self.give_back_conn(back);
            }
            return;
        }
        self.remove(i);
    }
}

/// The request head being decoded.
#[derive(Default)]
struct Head {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    size: usize,
    too_large: bool,
    /// A pseudo-header was seen (trailers may have none).
    pseudo: bool,
    regular: bool,
    malformed: Option<&'static str>,
}

impl Head {
    fn add(&mut self, f: Field, size: usize, max: usize) {
        self.size += size;
        if self.size > max {
            self.too_large = true;
            return;
        }
        match f {
            Field::Pseudo(p, v) => {
                self.pseudo = true;
                if self.regular {
                    self.malformed = Some("pseudo-header after a field");
                    return;
                }
                let slot = match p {
                    Pseudo::Method => &mut self.method,
                    Pseudo::Scheme => &mut self.scheme,
                    Pseudo::Authority => &mut self.authority,
                    Pseudo::Path => &mut self.path,
                    Pseudo::Status | Pseudo::Protocol => {
                        self.malformed = Some("pseudo-header not for requests");
                        return;
                    }
                };
                if slot.is_some() {
                    self.malformed = Some("repeated pseudo-header");
                }
                *slot = Some(v);
            }
            Field::Header(n, v) => {
                self.regular = true;
                if forbidden(&n, &v) {
                    self.malformed = Some("connection-specific field");
                    return;
                }
                self.headers.append(n, v);
            }
            Field::Malformed(why) => self.malformed = Some(why),
        }
    }

    /// The request (RFC 9113 §8.3.1), its body still to be set.
    fn request(self) -> Result<Request<Body>, &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        let method = http::Method::from_bytes(&self.method.ok_or("no :method")?)
            .map_err(|_| "invalid :method")?;
        let connect = method == http::Method::CONNECT;
        let mut parts = http::uri::Parts::default();
        if let Some(a) = self.authority {
            parts.authority =
                Some(http::uri::Authority::from_maybe_shared(a).map_err(|_| "invalid :authority")?);
        } else if connect {
            return Err("CONNECT without :authority");
        }
        match (self.scheme, connect) {
            (Some(_), true) => return Err(":scheme in CONNECT"),
            (None, false) => return Err("no :scheme"),
            (Some(s), false) => {
                let s = http::uri::Scheme::try_from(&s[..]).map_err(|_| "invalid :scheme")?;
                // A URI cannot hold a scheme without an authority: the scheme is checked
                // and dropped then (the Host field names the site).
                if parts.authority.is_some() {
                    parts.scheme = Some(s);
                }
            }
            (None, true) => {}
        }
        match (self.path, connect) {
            (Some(_), true) => return Err(":path in CONNECT"),
            (None, false) => return Err("no :path"),
            (Some(p), false) => {
                if p.is_empty() {
                    return Err("empty :path");
                }
                parts.path_and_query = Some(
                    http::uri::PathAndQuery::from_maybe_shared(p).map_err(|_| "invalid :path")?,
                );
            }
            (None, true) => {}
        }
        let uri = http::Uri::from_parts(parts).map_err(|_| "invalid request target")?;
        let mut req = Request::new(Body::Empty);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_2;
        *req.headers_mut() = self.headers;
        Ok(req)
    }
}

/// Whether a plain connection (`server.h2c`) opens with the HTTP/2 preface, looking at its
/// first bytes without taking them: `Some(false)` as soon as they differ from it, `None`
/// when the connection ends, or the sweep closes it (idle, shutdown), before that shows,
/// or the rest of a partial preface takes longer than `head_timeout` after its first byte
/// (as a partial HTTP/1.1 head would).
pub(super) async fn sniff(
    stream: &tokio::net::TcpStream,
    activity: &Activity,
    head_timeout: std::time::Duration,
) -> Option<bool> {
    let mut buf = [0u8; PREFACE.len()];
    let mut deadline = None;
    loop {
        let peek = std::future::poll_fn(|cx| {
            match activity.signal.load(Ordering::Acquire) {
                SIGNAL_NONE => {}
                SIGNAL_PARK => activity.take_park(),
                _ => return Poll::Ready(None),
            }
            let mut rb = tokio::io::ReadBuf::new(&mut buf);
            stream.poll_peek(cx, &mut rb).map(|r| r.ok())
        });
        let n = match deadline {
            None => peek.await?,
            Some(d) => tokio::time::timeout_at(d, peek).await.ok()??,
        };
        if n == 0 {
            return None;
        }
        if buf[..n] != PREFACE[..n] {
            return Some(false);
        }
        if n == PREFACE.len() {
            return Some(true);
        }
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + head_timeout);
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

thread_local! {
    /// The `Date` value, made once per second per thread.
    static DATE: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

fn date_value() -> HeaderValue {
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
