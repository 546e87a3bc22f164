//! HTTP/2 framing (RFC 9113 §4, §6) shared by rampart's own HTTP/2 server for clients
//! (`conn::h2serve`) and its HTTP/2 client to upstreams (`handler::proxy::h2conn`): frame
//! types and flags, error codes, frame heads, padding, SETTINGS and WINDOW_UPDATE
//! checks, the buffer of frames going out, and the fields HTTP/2 forbids.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::header::{self, HeaderName, HeaderValue};
use tokio::io::AsyncWrite;

/// The frames each side sends (the protocol's default size, which every peer accepts).
pub(crate) const MAX_FRAME: usize = 16 * 1024;
/// The protocol's initial window, before the SETTINGS of either side.
pub(crate) const DEFAULT_WINDOW: i64 = 65_535;
/// The largest window flow control allows.
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The client's connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) const DATA: u8 = 0;
pub(crate) const HEADERS: u8 = 1;
pub(crate) const PRIORITY: u8 = 2;
pub(crate) const RST_STREAM: u8 = 3;
pub(crate) const SETTINGS: u8 = 4;
pub(crate) const PUSH_PROMISE: u8 = 5;
pub(crate) const PING: u8 = 6;
pub(crate) const GOAWAY: u8 = 7;
pub(crate) const WINDOW_UPDATE: u8 = 8;
pub(crate) const CONTINUATION: u8 = 9;

/// SETTINGS parameters (RFC 9113 §6.5.2) either side acts on.
pub(crate) const HEADER_TABLE_SIZE: u16 = 1;
pub(crate) const ENABLE_PUSH: u16 = 2;
pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 3;
pub(crate) const INITIAL_WINDOW_SIZE: u16 = 4;
pub(crate) const MAX_FRAME_SIZE: u16 = 5;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reason(pub(crate) u32);

impl Reason {
    pub(crate) const NO_ERROR: Self = Self(0);
    pub(crate) const PROTOCOL_ERROR: Self = Self(1);
    pub(crate) const INTERNAL_ERROR: Self = Self(2);
    pub(crate) const FLOW_CONTROL_ERROR: Self = Self(3);
    pub(crate) const STREAM_CLOSED: Self = Self(5);
    pub(crate) const FRAME_SIZE_ERROR: Self = Self(6);
    pub(crate) const REFUSED_STREAM: Self = Self(7);
    pub(crate) const CANCEL: Self = Self(8);
    pub(crate) const COMPRESSION_ERROR: Self = Self(9);
    pub(crate) const ENHANCE_YOUR_CALM: Self = Self(11);

    /// The code's name, for logs and errors.
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            0 => "NO_ERROR",
            1 => "PROTOCOL_ERROR",
            2 => "INTERNAL_ERROR",
            3 => "FLOW_CONTROL_ERROR",
            4 => "SETTINGS_TIMEOUT",
            5 => "STREAM_CLOSED",
            6 => "FRAME_SIZE_ERROR",
            7 => "REFUSED_STREAM",
            8 => "CANCEL",
            9 => "COMPRESSION_ERROR",
            10 => "CONNECT_ERROR",
            11 => "ENHANCE_YOUR_CALM",
            12 => "INADEQUATE_SECURITY",
            13 => "HTTP_1_1_REQUIRED",
            _ => "unknown error code",
        }
    }
}

/// An error that ends the connection (GOAWAY with its reason and text).
#[derive(Debug)]
pub(crate) struct ConnError(pub(crate) Reason, pub(crate) &'static str);

/// A frame's head: payload length, type, flags, stream id.
pub(crate) fn parse_head(h: &[u8]) -> (usize, u8, u8, u32) {
    let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
    let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    (len, h[3], h[4], id)
}

/// The head of the next whole frame in `inbuf` (length, type, flags, stream), checked
/// against what every frame must be: within the size, SETTINGS first (`settings` says the
/// first came), a CONTINUATION of stream `cont` while a header block is open. `Ok(None)`
/// until the whole frame is buffered (room for it is reserved).
pub(crate) fn next_frame(
    inbuf: &mut BytesMut,
    settings: bool,
    cont: Option<u32>,
) -> Result<Option<(usize, u8, u8, u32)>, ConnError> {
    if inbuf.len() < 9 {
        return Ok(None);
    }
    let (len, ty, flags, id) = parse_head(&inbuf[..9]);
    if len > MAX_FRAME {
        return Err(ConnError(
            Reason::FRAME_SIZE_ERROR,
            "frame over the size limit",
        ));
    }
    if inbuf.len() < 9 + len {
        inbuf.reserve(9 + len - inbuf.len());
        return Ok(None);
    }
    if !settings && ty != SETTINGS {
        return Err(ConnError(
            Reason::PROTOCOL_ERROR,
            "first frame not SETTINGS",
        ));
    }
    if cont.is_some_and(|c| ty != CONTINUATION || id != c) {
        return Err(ConnError(Reason::PROTOCOL_ERROR, "expected CONTINUATION"));
    }
    Ok(Some((len, ty, flags, id)))
}

/// Appends a frame head.
pub(crate) fn frame_head(out: &mut Vec<u8>, len: usize, ty: u8, flags: u8, id: u32) {
    let l = (len as u32).to_be_bytes();
    let i = id.to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], ty, flags, i[0], i[1], i[2], i[3]]);
}

/// Appends a whole frame.
pub(crate) fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, id: u32, payload: &[u8]) {
    frame_head(out, payload.len(), ty, flags, id);
    out.extend_from_slice(payload);
}

/// Writes the frame head of the header block encoded in `out` after `start` (where 9
/// bytes were left for it), splitting the block into CONTINUATION frames when it is
/// larger than a frame.
pub(crate) fn close_head(out: &mut Vec<u8>, start: usize, id: u32, flags: u8) {
    let len = out.len() - start - 9;
    if len <= MAX_FRAME {
        let mut h = Vec::with_capacity(9);
        frame_head(&mut h, len, HEADERS, flags | END_HEADERS, id);
        out[start..start + 9].copy_from_slice(&h);
        return;
    }
    let block = out.split_off(start + 9);
    out.truncate(start);
    let mut parts = block.chunks(MAX_FRAME).peekable();
    let mut ty = HEADERS;
    let mut fl = flags;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        frame_head(
            out,
            part.len(),
            ty,
            fl | if last { END_HEADERS } else { 0 },
            id,
        );
        out.extend_from_slice(part);
        ty = CONTINUATION;
        fl = 0;
    }
}

/// The payload of a frame that may be padded, without its padding.
pub(crate) fn unpad(flags: u8, p: &[u8]) -> Result<&[u8], ConnError> {
    if flags & PADDED == 0 {
        return Ok(p);
    }
    let pad = usize::from(
        *p.first()
            .ok_or(ConnError(Reason::FRAME_SIZE_ERROR, "no pad length"))?,
    );
    if pad >= p.len() {
        return Err(ConnError(Reason::PROTOCOL_ERROR, "padding past the frame"));
    }
    Ok(&p[1..p.len() - pad])
}

/// A SETTINGS frame's entries (parameter, value), every one checked first (RFC 9113
/// §6.5): `None` for an acknowledgement. Values past their range are connection errors;
/// an initial window may be taken as an `i64` within [`MAX_WINDOW`].
pub(crate) fn settings(
    flags: u8,
    id: u32,
    p: &[u8],
) -> Result<Option<impl Iterator<Item = (u16, u32)> + '_>, ConnError> {
    if id != 0 {
        return Err(ConnError(Reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
    }
    if flags & ACK != 0 {
        if !p.is_empty() {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS ack with a payload",
            ));
        }
        return Ok(None);
    }
    if !p.len().is_multiple_of(6) {
        return Err(ConnError(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS not in 6-byte entries",
        ));
    }
    let entries = p.chunks_exact(6).map(|e| {
        (
            u16::from_be_bytes([e[0], e[1]]),
            u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
        )
    });
    for (k, v) in entries.clone() {
        match k {
            ENABLE_PUSH if v > 1 => {
                return Err(ConnError(Reason::PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1"));
            }
            INITIAL_WINDOW_SIZE if i64::from(v) > MAX_WINDOW => {
                return Err(ConnError(Reason::FLOW_CONTROL_ERROR, "window over 2^31-1"));
            }
            MAX_FRAME_SIZE if !(16_384..=16_777_215).contains(&v) => {
                return Err(ConnError(
                    Reason::PROTOCOL_ERROR,
                    "MAX_FRAME_SIZE out of range",
                ));
            }
            _ => {}
        }
    }
    Ok(Some(entries))
}

/// A WINDOW_UPDATE frame's increment; 0 is for the caller to refuse (a connection error
/// on stream 0, a stream error on a stream: RFC 9113 §6.9).
pub(crate) fn window_increment(p: &[u8]) -> Result<i64, ConnError> {
    match p {
        [a, b, c, d] => Ok(i64::from(
            u32::from_be_bytes([*a, *b, *c, *d]) & 0x7fff_ffff,
        )),
        _ => Err(ConnError(
            Reason::FRAME_SIZE_ERROR,
            "WINDOW_UPDATE not 4 bytes",
        )),
    }
}

/// Grows the connection's send window by a WINDOW_UPDATE on stream 0.
pub(crate) fn grow_conn_window(window: &mut i64, inc: i64) -> Result<(), ConnError> {
    if inc == 0 {
        return Err(ConnError(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
    }
    *window += inc;
    if *window > MAX_WINDOW {
        return Err(ConnError(Reason::FLOW_CONTROL_ERROR, "window over 2^31-1"));
    }
    Ok(())
}

/// Moves a stream's send window by `delta` (a WINDOW_UPDATE's increment, or the change
/// of the initial window by SETTINGS); `false` when it passes 2^31-1.
pub(crate) fn move_window(window: &mut i64, delta: i64) -> bool {
    *window += delta;
    *window <= MAX_WINDOW
}

/// Applies a new initial window from SETTINGS: every open stream's send window moves by
/// the change, which is returned (above 0, waiting streams may send).
pub(crate) fn set_initial_window<'a>(
    initial: &mut i64,
    v: u32,
    windows: impl Iterator<Item = &'a mut i64>,
) -> Result<i64, ConnError> {
    let delta = i64::from(v) - *initial;
    *initial = i64::from(v);
    for w in windows {
        if !move_window(w, delta) {
            return Err(ConnError(Reason::FLOW_CONTROL_ERROR, "window over 2^31-1"));
        }
    }
    Ok(delta)
}

/// Frames going out on a connection: written as far as the socket takes them, cleared
/// and flushed once all are out.
#[derive(Default)]
pub(crate) struct Outbox {
    /// The frames; new ones are appended.
    pub(crate) buf: Vec<u8>,
    written: usize,
    unflushed: bool,
}

impl Outbox {
    /// Bytes not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Everything is written and flushed.
    pub(crate) fn is_done(&self) -> bool {
        self.pending() == 0 && !self.unflushed
    }

    /// Drops what is not yet written (the peer is gone).
    pub(crate) fn discard(&mut self) {
        self.written = self.buf.len();
    }

    /// Gives the buffer back to the allocator when nothing is waiting in it.
    pub(crate) fn shrink(&mut self) {
        if self.pending() == 0 {
            self.buf = Vec::new();
            self.written = 0;
        }
    }

    /// Writes what is queued; `Ok(true)` when something moved.
    pub(crate) fn write<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> std::io::Result<bool> {
        let mut moved = false;
        while self.written < self.buf.len() {
            match Pin::new(&mut *io).poll_write(cx, &self.buf[self.written..]) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.unflushed = true;
                    moved = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.written == self.buf.len() {
            self.buf.clear();
            self.written = 0;
            if self.unflushed {
                match Pin::new(&mut *io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => {}
                }
            }
        }
        Ok(moved)
    }
}

/// Connection-specific fields, which HTTP/2 forbids (RFC 9113 §8.2.2): a message
/// carrying one is malformed; one being sent leaves them out.
pub(crate) fn forbidden(n: &HeaderName, v: &HeaderValue) -> bool {
    // By length first: every field of every message passes here, and only these five
    // lengths can be one of them.
    match n.as_str().len() {
        2 => *n == header::TE && v != "trailers",
        7 => *n == header::UPGRADE,
        10 => *n == header::CONNECTION || *n == "keep-alive",
        16 => *n == "proxy-connection",
        17 => *n == header::TRANSFER_ENCODING,
        _ => false,
    }
}
