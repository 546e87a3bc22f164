//! A policy's refusal: the answer the client gets, and what the audit log records.

use crate::wire::refusal::Refusal;

/// A refusal with what the audit log needs.
#[derive(Debug)]
pub struct Refused {
    /// The answer.
    pub refusal: Refusal,
    /// Audit event name.
    pub event: &'static str,
    /// Why, for operators.
    pub reason: String,
}

/// A refusal answered `refusal`, audited as `event` with `reason`.
pub fn refuse(refusal: Refusal, event: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        refusal,
        event,
        reason: reason.into(),
    }
}

/// Nanoseconds to whole seconds, rounded up (for `Retry-After`).
pub(crate) fn nanos_to_secs_ceil(n: u64) -> u64 {
    n.div_ceil(1_000_000_000)
}
