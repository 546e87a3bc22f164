//! HTTP/2 framing (RFC 9113 §4, §6) shared by rampart's own HTTP/2 server for clients
//! (`conn::h2serve`) and its HTTP/2 client to upstreams (`handler::proxy::h2conn`): frame
//! types and flags, error codes, frame heads, padding, and the fields HTTP/2 forbids.

use http::header::{self, HeaderName, HeaderValue};

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
