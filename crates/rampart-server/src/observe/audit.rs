//! Audit events: every policy refusal, lockout, CSP violation, reload and admin change,
//! one JSON line each in the audit log (`[logging] audit`: stdout or a file of its own),
//! masked like every log line, and counted (`rampart_refusals_total{policy,reason}`).
//! Never carries a secret: API keys appear by name, tokens not at all.

use std::net::IpAddr;

use super::logs::{self, Line, Logs};
use super::metrics::Metrics;

/// Where audit events go: the log writers and the metric families of the edge serving.
pub trait Sinks {
    /// The metric families.
    fn metrics(&self) -> &Metrics;
    /// The log writers.
    fn logs(&self) -> &Logs;
}

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
    /// The W3C trace id of the request.
    pub trace_id: &'a str,
    /// Method and path (no query: it may carry personal data).
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
}

/// Emits an audit event to the edge's audit log and counts it.
pub fn emit(edge: &impl Sinks, e: &Event<'_>) {
    edge.metrics().refusal(e.event, e.code);
    let mut m = line(edge, e.event, e.severity);
    m.insert("ip", edge.logs().ip(e.ip).into());
    m.insert("code", e.code.into());
    m.insert("reason", e.reason.into());
    m.insert("route", e.route.into());
    m.insert("request_id", e.request_id.into());
    m.insert("trace_id", e.trace_id.into());
    m.insert("method", e.method.into());
    m.insert("path", e.path.into());
    send(edge, m);
}

/// An audit line with its common head: time, `target`, event and severity.
pub fn line(edge: &impl Sinks, event: &'static str, severity: &'static str) -> Line {
    let mut m = edge.logs().line();
    m.own("ts", &logs::timestamp());
    m.own("target", "rampart::audit");
    m.own("event", event);
    m.own("severity", severity);
    m
}

/// Sends a prepared audit line (other modules' events: `csp.violation`, lockouts).
pub fn send(edge: &impl Sinks, m: Line) {
    edge.logs().remember(&m);
    match &edge.logs().audit {
        Some(sink) => {
            if !sink.send(m) {
                edge.metrics().log_dropped("audit");
            }
        }
        None => {
            tracing::warn!(target: "rampart::audit", line = ?m, "audit")
        }
    }
}

/// Emits an audit event about the edge itself (`config.reload`, `config.rejected`, admin
/// changes): no client, no request.
pub fn system(edge: &impl Sinks, event: &'static str, severity: &'static str, reason: &str) {
    let mut m = line(edge, event, severity);
    m.insert("reason", reason.into());
    send(edge, m);
}
