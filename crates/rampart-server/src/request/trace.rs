//! What the request path learns as it goes (route, client, upstream, user, tenant), the
//! request facts the access log needs, and the one place an answer is counted and logged.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};

use super::connection::ConnInfo;
use crate::edge::Edge;
use crate::wire::body::Body;

/// What the request path learns for metrics and the access log.
#[derive(Debug, Default)]
pub struct Trace {
    pub(crate) route: Option<usize>,
    pub(crate) client_ip: Option<std::net::IpAddr>,
    /// Upstream server and seconds to its response head.
    pub(crate) upstream: Option<(Arc<str>, std::time::Duration)>,
    pub(crate) user: Option<HeaderValue>,
    pub(crate) tenant: Option<HeaderValue>,
    /// The `RateLimit-*` values of the tightest limit passed.
    pub(crate) rate: Option<crate::policy::rate_limit::RateHeaders>,
    /// A gRPC call: the edge's own refusals and errors are answered in gRPC's terms.
    pub(crate) grpc: bool,
}

/// The request's facts the access log needs, taken before the request is consumed.
pub struct Seen {
    pub(crate) path: String,
    pub(crate) ua: Option<HeaderValue>,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) bytes_in: u64,
    pub(crate) version: http::Version,
}

impl Seen {
    /// The facts of `req` the access log needs (taken before the request is consumed).
    pub fn of(req: &Request<Body>) -> Self {
        Seen {
            path: req.uri().path().to_owned(),
            ua: req.headers().get(header::USER_AGENT).cloned(),
            host: req.headers().get(header::HOST).cloned().or_else(|| {
                req.uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            }),
            bytes_in: req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0),
            version: req.version(),
        }
    }
}

impl Trace {
    /// Notes the user and tenant the policies vouched for. The subject header is set by
    /// the auth policy (which first removes a client's own); on a route without auth a
    /// client could have sent it, so it is not believed there.
    pub fn identify(&mut self, route: &rampart_config::runtime::Route, req: &Request<Body>) {
        if !route.policy.auth.is_empty() {
            self.user = req
                .headers()
                .get(crate::policy::auth::X_AUTH_SUBJECT)
                .cloned();
        }
        if let Some(t) = &route.policy.tenant {
            self.tenant = req.headers().get(&t.header).cloned();
        }
    }
}

/// A header value as log text (`None` when absent or not visible ASCII).
fn hv(v: &Option<HeaderValue>) -> Option<&str> {
    v.as_ref().and_then(|v| v.to_str().ok())
}

/// Counts the answer and writes its access log line (queued; never waits for the disk).
#[allow(clippy::too_many_arguments)]
pub fn record(
    edge: &Edge,
    conn: &ConnInfo,
    method: &Method,
    resp: &Response<Body>,
    trace: &Trace,
    seen: Option<Seen>,
    (request_id, context): (&HeaderValue, &crate::wire::trace_context::TraceContext),
    started: std::time::Instant,
) {
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    let status = resp.status().as_u16();
    let ri = trace.route.unwrap_or(edge.route_labels.len() - 1);
    let route_label = &edge.route_labels[ri];
    let m = crate::observe::metrics::method_label(method);
    match trace.tenant.as_ref().and_then(|t| t.to_str().ok()) {
        Some(tenant) => edge
            .metrics
            .request(m, route_label, status, Some(tenant), secs),
        None => edge
            .metrics
            .request_cached(&edge.route_series[ri], m, route_label, status, secs),
    }
    if let Some(spans) = &edge.spans {
        let ip = trace.client_ip.unwrap_or(conn.peer.ip());
        spans.record(crate::observe::otlp::Span {
            ids: (
                context.trace_bytes(),
                context.span_bytes().unwrap_or_default(),
                context.parent_bytes(),
            ),
            flags: context.flags(),
            route: route_label.clone(),
            method: method.clone(),
            path: seen.as_ref().map(|s| s.path.clone()),
            status,
            client: edge.logs.ip(ip),
            upstream: trace.upstream.as_ref().map(|(s, _)| s.clone()),
            times: crate::observe::otlp::times(started),
        });
    }
    let (Some(sink), Some(seen)) = (&edge.logs.access, seen) else {
        return;
    };
    let mut l = edge.logs.line();
    l.own("ts", &crate::observe::logs::timestamp());
    l.own("request_id", request_id.to_str().unwrap_or_default());
    l.own("trace_id", context.trace_id());
    let ip = trace.client_ip.unwrap_or(conn.peer.ip());
    match conn.peer_value.to_str() {
        // Formatted once per connection already.
        Ok(v) if !edge.logs.mask_ip && ip == conn.peer.ip() => l.own("ip", v),
        _ => l.own("ip", &edge.logs.ip(ip)),
    }
    l.own("method", method.as_str());
    l.opt("host", hv(&seen.host));
    l.own("route", route_label);
    l.str("path", &seen.path);
    l.uint("status", status.into());
    l.uint("bytes_in", seen.bytes_in);
    match http_body::Body::size_hint(resp.body()).exact() {
        Some(n) => l.uint("bytes_out", n),
        None => l.opt("bytes_out", None),
    }
    l.millis("duration_ms", elapsed);
    match &trace.upstream {
        Some((server, t)) => {
            l.own("upstream", server);
            l.millis("upstream_ms", *t);
        }
        None => {
            l.opt("upstream", None);
            l.opt("upstream_ms", None);
        }
    }
    l.opt("tenant", hv(&trace.tenant));
    l.opt("user", hv(&trace.user));
    l.own(
        "protocol",
        match seen.version {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        },
    );
    l.opt("tls", conn.tls_version);
    if let Some(c) = &conn.client_cert {
        // A subject may hold an e-mail address: masked like the path.
        l.str("client_cert", c.subject.to_str().unwrap_or_default());
    }
    l.opt("ua", hv(&seen.ua));
    if !sink.send(l) {
        edge.metrics.log_dropped("access");
    }
}

/// Audits a policy's refusal of a routed request.
#[derive(Debug, Clone, Copy)]
pub struct Auditor<'a> {
    /// The edge (its audit log and refusal counts).
    pub edge: &'a Edge,
    /// The client.
    pub ip: std::net::IpAddr,
    /// The route's name.
    pub route: &'a str,
    /// The request's id.
    pub request_id: &'a HeaderValue,
    /// The request's trace.
    pub context: &'a crate::wire::trace_context::TraceContext,
    /// The request's method.
    pub method: &'a Method,
    /// The normalised path.
    pub path: &'a str,
}

impl<'a> Auditor<'a> {
    /// An auditor for one routed request.
    pub fn new(
        edge: &'a Edge,
        ip: std::net::IpAddr,
        route: &'a str,
        (request_id, context): (
            &'a HeaderValue,
            &'a crate::wire::trace_context::TraceContext,
        ),
        method: &'a Method,
        path: &'a str,
    ) -> Self {
        Self {
            edge,
            ip,
            route,
            request_id,
            context,
            method,
            path,
        }
    }

    /// One audit event for `r`.
    pub fn refused(&self, r: &crate::policy::Refused) {
        crate::observe::audit::emit(
            self.edge,
            &crate::observe::audit::Event {
                event: r.event,
                severity: "warning",
                ip: self.ip,
                code: r.refusal.code(),
                reason: &r.reason,
                route: self.route,
                request_id: self.request_id.to_str().unwrap_or_default(),
                trace_id: self.context.trace_id(),
                method: self.method.as_str(),
                path: self.path,
            },
        );
    }
}
