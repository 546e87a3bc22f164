//! Audit events: one function every policy refusal (and lockout) goes through, emitted as a
//! structured `tracing` event with target `rampart::audit`, so routing them to their own
//! log (issue 6) is a subscriber filter, not a change here. Counted per error code for
//! metrics. Never carries a secret: API keys appear by name, tokens not at all.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// What an audit event is about.
#[derive(Debug)]
pub struct Event<'a> {
    /// `auth.failure`, `rate_limit.exceeded`, `csrf.failure`, …
    pub event: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// The client IP (after `trusted_proxies`).
    pub ip: IpAddr,
    /// The error code sent to the client.
    pub code: &'static str,
    /// Why, for operators (never a secret).
    pub reason: &'a str,
    /// The route's name.
    pub route: &'a str,
    /// The request ID.
    pub request_id: &'a str,
    /// Method and path (no query: it may carry personal data).
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
}

/// Refusal counters by code (refusals are not the hot path: a mutex is fine).
#[derive(Debug, Default)]
pub struct Counters {
    by_code: Mutex<BTreeMap<&'static str, u64>>,
    csp: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    /// Counts a refusal.
    pub fn count(&self, code: &'static str) {
        *self
            .by_code
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(code)
            .or_default() += 1;
    }

    /// Counts a CSP violation report by directive (a bounded set of names).
    pub fn count_csp(&self, directive: &'static str) {
        *self
            .csp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(directive)
            .or_default() += 1;
    }

    /// (directive, count) pairs of CSP violation reports.
    pub fn csp_snapshot(&self) -> Vec<(&'static str, u64)> {
        self.csp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// (code, count) pairs, sorted by code.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.by_code
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// Emits an audit event and counts it.
pub fn emit(counters: &Counters, e: &Event<'_>) {
    counters.count(e.code);
    tracing::warn!(
        target: "rampart::audit",
        event = e.event,
        severity = e.severity,
        ip = %e.ip,
        code = e.code,
        reason = e.reason,
        route = e.route,
        request_id = e.request_id,
        method = e.method,
        path = e.path,
        "refused"
    );
}

/// Emits an audit event about the edge itself (`config.reload`, `config.rejected`, admin
/// changes): no client, no request.
pub fn system(event: &'static str, severity: &'static str, reason: &str) {
    tracing::warn!(
        target: "rampart::audit",
        event,
        severity,
        reason,
        "edge"
    );
}
