//! Request IDs: a client's `X-Request-ID` is kept when it is well formed (so a trace that
//! started upstream of us continues), otherwise one is generated.
//!
//! Generated IDs are 32 hex digits: a random per-process prefix and a permuted counter, so
//! they are unique within a process without locking, and across processes with high
//! probability. They are not secrets and not guessable-safe tokens.

/// `X-Request-ID`.
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::HeaderValue;

static SEED: OnceLock<(u64, u64)> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn seed() -> (u64, u64) {
    *SEED.get_or_init(|| {
        let mut b = [0u8; 16];
        // aws-lc-rs's SystemRandom reads the OS CSPRNG; a failure there leaves a time-based seed.
        if aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b)
            .is_err()
        {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b[..8].copy_from_slice(&t.to_le_bytes());
            b[8..].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        }
        let (a, c) = b.split_at(8);
        (
            u64::from_le_bytes(a.try_into().unwrap_or_default()),
            u64::from_le_bytes(c.try_into().unwrap_or_default()),
        )
    })
}

/// A bijective mix (splitmix64 finaliser): distinct inputs give distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A new request ID.
pub fn generate() -> HeaderValue {
    let (prefix, key) = seed();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 32];
    hex(prefix, &mut buf[..16]);
    hex(mix(n ^ key), &mut buf[16..]);
    // INVARIANT: hex digits are valid header bytes.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A new span id: 16 hex digits, never all zero (the same counter as the request IDs,
/// mixed with another key).
pub fn span_id() -> [u8; 16] {
    let (prefix, key) = seed();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let v = mix(n ^ key.rotate_left(17) ^ prefix).max(1);
    let mut out = [0u8; 16];
    hex(v, &mut out);
    out
}

fn hex(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// Whether a client-sent ID may be propagated: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn is_acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_and_well_formed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_acceptable(&a));
    }

    #[test]
    fn hostile_client_ids_are_not_propagated() {
        for bad in ["", "a b", "x\"y", &"a".repeat(129), "{json}"] {
            assert!(
                !is_acceptable(&HeaderValue::from_str(bad).unwrap()),
                "{bad:?}"
            );
        }
        assert!(is_acceptable(&HeaderValue::from_static("trace-1234.abc:9")));
    }
}
