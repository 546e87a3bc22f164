//! The circuit breaker in front of the shared state: after `failures` consecutive failed
//! commands (errors and timeouts alike) it opens, and requests stop waiting on a server
//! that is down or slow: each limit falls back at once (`on_state_error`). While open, a
//! background probe tries the server every `open` period; its first success closes the
//! breaker. Lock-free: one atomic word of state, read on every shared decision.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A transition, reported once each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open: fallback engaged.
    Opened,
    /// Open → closed: shared mode resumed.
    Closed,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    failures: AtomicU32,
    open: AtomicBool,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures. It starts open:
    /// nothing is known of the server until the first probe answers.
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            failures: AtomicU32::new(0),
            open: AtomicBool::new(true),
        }
    }

    /// Whether requests may use the server now.
    pub fn is_closed(&self) -> bool {
        !self.open.load(Ordering::Relaxed)
    }

    /// A command succeeded. Reads before it writes: on every shared decision, and the
    /// common case (closed, no failures) leaves the cache line shared between cores.
    pub fn success(&self) -> Option<Transition> {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if !self.open.load(Ordering::Acquire) {
            return None;
        }
        self.open
            .swap(false, Ordering::AcqRel)
            .then_some(Transition::Closed)
    }

    /// A command failed or timed out; returns `Opened` when this failure opens it.
    pub fn failure(&self) -> Option<Transition> {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.threshold && !self.open.swap(true, Ordering::AcqRel) {
            return Some(Transition::Opened);
        }
        None
    }

    /// Opens it at once (the connection is gone).
    pub fn trip(&self) -> Option<Transition> {
        (!self.open.swap(true, Ordering::AcqRel)).then_some(Transition::Opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let b = Breaker::new(3);
        assert!(!b.is_closed(), "open until the first probe answers");
        assert_eq!(b.success(), Some(Transition::Closed));
        assert_eq!(b.success(), None, "each transition is reported once");
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
        assert!(b.is_closed());
        assert_eq!(b.failure(), Some(Transition::Opened));
        assert_eq!(b.failure(), None);
        assert!(!b.is_closed());
        assert_eq!(b.success(), Some(Transition::Closed));
        // A success resets the count: two more failures do not open it.
        b.failure();
        b.failure();
        assert!(b.is_closed());
        b.success();
        assert_eq!(b.trip(), Some(Transition::Opened));
        assert_eq!(b.trip(), None);
    }
}
