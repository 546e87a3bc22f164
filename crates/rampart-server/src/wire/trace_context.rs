//! W3C Trace Context: a request's trace is the client's when it sends a valid
//! `traceparent` (<https://www.w3.org/TR/trace-context/>), else rampart starts one (the
//! request ID when it is 32 lowercase hex digits, as rampart's own are, else a new one).
//! rampart is a span of it: the upstream receives `traceparent` with the same trace id, a
//! span id of rampart's own and the client's flags; `tracestate` passes unchanged. The
//! trace id is in the access log and in every audit line the request causes.
//!
//! Cost, per request (callgrind): a header lookup for `traceparent` and the 55 bytes of
//! the upstream's line on proxied requests; the request ID is reused as the trace id
//! without a second look at its bytes when rampart generated it.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A request's trace: its id and flags (lowercase hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 32],
    flags: [u8; 2],
    /// The client's span (its `traceparent`'s parent id), all `0` when rampart started it.
    parent: [u8; 16],
    /// rampart's span id, fixed for the request when spans are exported
    /// ([`TraceContext::with_span`]); otherwise each [`TraceContext::child`] makes one.
    span: Option<[u8; 16]>,
    /// Whether the client sent it (a continued trace), or rampart started it.
    pub continued: bool,
    /// The client sent a `traceparent` that does not parse: its `tracestate` belongs to
    /// nothing and is not forwarded (W3C: restart the trace, drop the state).
    pub drop_state: bool,
}

/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

fn is_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn not_zero(b: &[u8]) -> bool {
    b.iter().any(|c| *c != b'0')
}

impl TraceContext {
    /// A valid `traceparent`'s trace id and flags (version 00, or a later version read as
    /// 00 allows: its first 55 characters, then a `-`).
    pub fn parse(v: &[u8]) -> Option<Self> {
        if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let (version, trace, parent, flags) = (&v[..2], &v[3..35], &v[36..52], &v[53..55]);
        let version_ok = is_hex(version)
            && version != b"ff"
            && if version == b"00" {
                v.len() == 55
            } else {
                v.len() == 55 || v[55] == b'-'
            };
        (version_ok
            && is_hex(trace)
            && not_zero(trace)
            && is_hex(parent)
            && not_zero(parent)
            && is_hex(flags))
        .then(|| Self {
            trace_id: trace.try_into().unwrap_or([b'0'; 32]),
            flags: [flags[0], flags[1]],
            parent: parent.try_into().unwrap_or([b'0'; 16]),
            span: None,
            continued: true,
            drop_state: false,
        })
    }

    /// The trace of a request with these headers and this request ID (`generated`: made
    /// by rampart, so 32 lowercase hex digits, not all zero).
    pub fn of(headers: &HeaderMap, request_id: &HeaderValue, generated: bool) -> Self {
        let sent = headers.get(TRACEPARENT);
        if let Some(c) = sent.and_then(|v| Self::parse(v.as_bytes())) {
            return c;
        }
        let id = request_id.as_bytes();
        let trace_id = if id.len() == 32 && (generated || (is_hex(id) && not_zero(id))) {
            id.try_into().unwrap_or([b'0'; 32])
        } else {
            let fresh = super::request_id::generate();
            fresh.as_bytes().try_into().unwrap_or([b'1'; 32])
        };
        Self {
            trace_id,
            flags: *b"00",
            parent: [b'0'; 16],
            span: None,
            continued: false,
            drop_state: sent.is_some(),
        }
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        // INVARIANT: only hex digits are stored.
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    /// The same trace with rampart's span id fixed for the request, so an exported span
    /// and the upstream's parent id agree (only when spans are exported: it costs a span
    /// id per request).
    #[must_use]
    pub fn with_span(mut self) -> Self {
        self.span = Some(super::request_id::span_id());
        self
    }

    /// The trace id as 16 bytes.
    pub fn trace_bytes(&self) -> [u8; 16] {
        unhex(&self.trace_id)
    }

    /// rampart's span id as 8 bytes, when fixed ([`TraceContext::with_span`]).
    pub fn span_bytes(&self) -> Option<[u8; 8]> {
        self.span.as_ref().map(|s| unhex(s))
    }

    /// The client's span id as 8 bytes, when it sent a `traceparent`.
    pub fn parent_bytes(&self) -> Option<[u8; 8]> {
        self.continued.then(|| unhex(&self.parent))
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        unhex::<1>(&self.flags)[0]
    }

    /// The `traceparent` the upstream gets: this trace, rampart's span id (a new one unless
    /// fixed by [`TraceContext::with_span`]), the client's flags.
    pub fn child(&self) -> [u8; 55] {
        let mut b = [b'-'; 55];
        b[..2].copy_from_slice(b"00");
        b[3..35].copy_from_slice(&self.trace_id);
        b[36..52].copy_from_slice(&self.span.unwrap_or_else(super::request_id::span_id));
        b[53..55].copy_from_slice(&self.flags);
        b
    }
}

/// Lowercase hex digits (checked on the way in) to bytes.
fn unhex<const N: usize>(hex: &[u8]) -> [u8; N] {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        _ => c.wrapping_sub(b'a').wrapping_add(10) & 0xf,
    };
    std::array::from_fn(|i| (digit(hex[2 * i]) << 4) | digit(hex[2 * i + 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_parents_are_kept_and_bad_ones_start_a_trace() {
        let c = TraceContext::parse(VALID.as_bytes()).unwrap();
        assert_eq!(c.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(c.continued);
        // A later version with more fields: read as 00.
        assert!(TraceContext::parse(format!("01{}-extra", &VALID[2..]).as_bytes()).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert!(TraceContext::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        let mut h = HeaderMap::new();
        let rid = HeaderValue::from_static("0123456789abcdef0123456789abcdef");
        let started = TraceContext::of(&h, &rid, false);
        assert_eq!(started.trace_id(), rid.to_str().unwrap());
        assert!(!started.continued);
        // A client's request id that is not 32 hex digits: a new trace id.
        let other = TraceContext::of(&h, &HeaderValue::from_static("order-42"), false);
        assert_eq!(other.trace_id().len(), 32);
        h.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceContext::of(&h, &rid, false), c);
        // The child keeps the trace and flags, with a span id of its own.
        let child = c.child();
        let s = std::str::from_utf8(&child).unwrap();
        assert!(s.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{s}");
        assert!(s.ends_with("-01"));
        assert_ne!(&s[36..52], "00f067aa0ba902b7");
        assert!(TraceContext::parse(&child).is_some());
        assert_ne!(c.child()[36..52], child[36..52]);
        // Exported spans: one span id per request, the one the upstream is told.
        let fixed = c.with_span();
        assert_eq!(fixed.child(), fixed.child());
        let told = TraceContext::parse(&fixed.child()).unwrap();
        assert_eq!(Some(told.parent_bytes().unwrap()), fixed.span_bytes());
        assert_eq!(
            c.parent_bytes(),
            Some(0x00f0_67aa_0ba9_02b7_u64.to_be_bytes())
        );
        assert_eq!(c.trace_bytes()[..2], [0x4b, 0xf9]);
        assert_eq!((c.flags(), started.parent_bytes()), (1, None));
    }
}
