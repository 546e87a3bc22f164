//! The range of every numeric key, as named constants: validation enforces them (a value
//! outside is an error naming the key and the range) and the reference lists them.
//! A config that `check` accepts can always be started: no value here can overflow a
//! clock, a semaphore or an allocation. Durations of every key are at most
//! [`MAX_DURATION`](crate::units::MAX_DURATION) (ten years), checked when parsed.

use std::ops::RangeInclusive;

/// `server.max_connections`: open client connections (a process rarely has more fds).
pub const MAX_CONNECTIONS: RangeInclusive<u64> = 1..=1_000_000;
/// `server.max_headers`.
pub const MAX_HEADERS: RangeInclusive<u64> = 8..=1000;
/// `server.max_header_size`, bytes.
pub const MAX_HEADER_SIZE: RangeInclusive<u64> = 8192..=(1 << 20);
/// `server.workers`.
pub const WORKERS: RangeInclusive<u64> = 1..=1024;
/// `server.https_port`.
pub const PORT: RangeInclusive<u64> = 1..=65_535;
/// `server.h2_max_concurrent_streams`.
pub const H2_STREAMS: RangeInclusive<u64> = 1..=10_000;
/// `server.h2_max_pending_reset_streams`.
pub const H2_PENDING_RESETS: RangeInclusive<u64> = 0..=10_000;
/// `upstreams.*.max_fails` (0 turns passive health off).
pub const MAX_FAILS: RangeInclusive<u64> = 0..=1_000_000;
/// `upstreams.*.max_idle`: idle connections kept per server.
pub const MAX_IDLE: RangeInclusive<u64> = 0..=100_000;
/// `health_check.rise` and `fall`.
pub const RISE_FALL: RangeInclusive<u64> = 1..=100;
/// `limits.*.rate`: the count of `N/period`.
pub const RATE_COUNT: RangeInclusive<u64> = 1..=1_000_000_000;
/// `limits.*.burst`.
pub const BURST: RangeInclusive<u64> = 0..=1_000_000_000;
/// `limits.*.max_keys`: keys tracked per limit.
pub const MAX_KEYS: RangeInclusive<u64> = 1..=10_000_000;
/// `limits.*.lockout.failures`.
pub const LOCKOUT_FAILURES: RangeInclusive<u64> = 1..=1_000_000;
/// `logging.queue`: lines queued per log writer.
pub const LOG_QUEUE: RangeInclusive<u64> = 16..=1_000_000;

/// Checks `value` against `range`: `Err` with the message naming the range.
///
/// # Errors
/// The message, when the value is outside.
pub fn check(value: u64, range: &RangeInclusive<u64>) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "must be between {} and {}, got {value}",
            range.start(),
            range.end()
        ))
    }
}
