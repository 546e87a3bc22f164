//! The route's handler, once the policies have let a request through: what the spine
//! needs to call the upstream pool (through the proxy) or static files, and the answers a
//! route gives itself (a redirect or a fixed answer).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use rampart_config::runtime::{Action, Route};

use super::connection::ConnInfo;
use super::trace::Trace;
use crate::edge::router::strip;
use crate::edge::Edge;
use crate::handler::files::FileRequest;
use crate::handler::proxy::{self, ClientInfo, Forwarding, Pool};
use crate::handler::respond;
use crate::observe::audit;
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// A request matched to a route.
#[derive(Debug)]
pub struct Routed<'a> {
    /// The route's index.
    pub idx: usize,
    /// The path, normalised (owned when normalisation changed it).
    pub path: &'a Cow<'a, str>,
    /// The client (after `trusted_proxies`), and whether the TCP peer is trusted.
    pub client_ip: IpAddr,
    /// Whether the TCP peer is one of `trusted_proxies`.
    pub peer_trusted: bool,
    /// The request's id.
    pub request_id: &'a HeaderValue,
    /// Its trace.
    pub context: &'a crate::wire::trace_context::TraceContext,
}

impl<'a> Routed<'a> {
    /// A request matched to route `idx`.
    pub fn new(
        idx: usize,
        path: &'a Cow<'a, str>,
        (client_ip, peer_trusted): (IpAddr, bool),
        (request_id, context): (
            &'a HeaderValue,
            &'a crate::wire::trace_context::TraceContext,
        ),
    ) -> Self {
        Self {
            idx,
            path,
            client_ip,
            peer_trusted,
            request_id,
            context,
        }
    }
}

/// What a static route's handler is asked.
pub fn file_request<'r>(
    conn: &ConnInfo,
    route: &'r Route,
    r: &'r Routed<'_>,
    req: &'r Request<Body>,
) -> FileRequest<'r> {
    FileRequest {
        method: req.method(),
        headers: req.headers(),
        rel: strip(&route.path, r.path),
        query: req.uri().query(),
        compress: route.compress,
        identity_only: route.csp_nonce.is_some(),
        policy: &route.headers,
        tls: conn.tls,
        raw_head: conn.raw_head && route.csp_nonce.is_none(),
    }
}

/// The answers a route gives itself (redirect, fixed response). The spine awaits the
/// proxy and static files itself: each async level between it and those (large) futures
/// would move them once more per request (measured: ~700 instructions).
pub fn itself(
    route: &Route,
    r: &Routed<'_>,
    req: &Request<Body>,
) -> Result<Response<Body>, Refusal> {
    match &route.action {
        Action::Redirect {
            to,
            status,
            keep_path,
        } => respond::redirect(
            to,
            *status,
            *keep_path,
            strip(&route.path, r.path),
            req.uri().query(),
        ),
        Action::Respond {
            status,
            body,
            content_type,
        } => Ok(respond::fixed(*status, body, content_type, req.method())),
        Action::Upstream(_) | Action::Static(_) => Err(Refusal::Internal),
    }
}

/// The route's pool (the one it is switched to now, else its configured one), with the
/// request rewritten for it in place and its forwarding headers.
pub fn upstream<'e>(
    edge: &'e Edge,
    conn: &ConnInfo,
    r: &Routed<'_>,
    configured: usize,
    req: &mut Request<Body>,
) -> (&'e Arc<Pool>, Forwarding, std::time::Instant) {
    let route = &edge.config.routes[r.idx];
    let pool = &edge.pools[edge.route_pool(r.idx).unwrap_or(configured)];
    // The client's path and query are forwarded as they came unless normalisation or
    // prefix stripping changed the path.
    let pq = if route.strip_prefix || matches!(r.path, Cow::Owned(_)) {
        let forward_path = if route.strip_prefix {
            strip(&route.path, r.path)
        } else {
            r.path
        };
        Some(match req.uri().query() {
            Some(q) => format!("{forward_path}?{q}"),
            None => forward_path.to_owned(),
        })
    } else {
        None
    };
    let info = ClientInfo {
        peer: conn.peer.ip(),
        peer_value: conn.peer_value.clone(),
        peer_trusted: r.peer_trusted,
        client_ip: r.client_ip,
        tls: conn.tls,
    };
    let fwd = proxy::prepare_request(req, pq.as_deref(), &info, (r.request_id, r.context));
    for (name, value) in &route.request_headers {
        match value {
            Some(v) => {
                req.headers_mut().insert(name.clone(), v.clone());
            }
            None => {
                req.headers_mut().remove(name);
            }
        }
    }
    (pool, fwd, std::time::Instant::now())
}

/// What a forward came to: the response (timed for metrics and the access log), or the
/// refusal its error maps to, after auditing servers passive health took out.
pub fn forwarded(
    edge: &Edge,
    pool: &Pool,
    forwarded: Result<(Response<Body>, Arc<proxy::Server>), proxy::ProxyError>,
    sent: std::time::Instant,
    trace: &mut Trace,
) -> Result<Response<Body>, Refusal> {
    match forwarded {
        Ok((resp, server)) => {
            let t = sent.elapsed();
            edge.metrics
                .upstream(&pool.label, &server.label, &server.latency, t.as_secs_f64());
            trace.upstream = Some((server.label.clone(), t));
            Ok(resp)
        }
        Err(e) => {
            for reason in pool.take_downs() {
                audit::system(edge, "upstream.down", "warning", &reason);
            }
            for reason in pool.take_tls_failures() {
                audit::system(edge, "upstream.tls_failed", "critical", &reason);
            }
            Err(e.refusal())
        }
    }
}
