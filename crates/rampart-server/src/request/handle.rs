//! The route's handler, once the policies have let a request through: the upstream pool
//! (through the proxy), static files, a redirect or a fixed answer.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderValue, Request, Response};
use rampart_config::runtime::Action;

use super::connection::ConnInfo;
use super::trace::Trace;
use crate::edge::router::strip;
use crate::edge::Edge;
use crate::handler::files::{self, FileRequest};
use crate::handler::proxy::{self, ClientInfo};
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
}

/// Calls the handler of the route `r` matched.
///
/// # Errors
/// The refusal to answer with (the handler's, or the proxy's error mapped).
pub async fn run(
    edge: &Edge,
    conn: &ConnInfo,
    r: &Routed<'_>,
    req: Request<Body>,
    trace: &mut Trace,
) -> Result<Response<Body>, Refusal> {
    let route = &edge.config.routes[r.idx];
    let rest = || strip(&route.path, r.path);
    match &route.action {
        Action::Upstream(configured) => upstream(edge, conn, r, *configured, req, trace).await,
        Action::Static(site) => {
            let file_req = FileRequest {
                method: req.method(),
                headers: req.headers(),
                rel: rest(),
                query: req.uri().query(),
                compress: route.compress,
                identity_only: route.csp_nonce.is_some(),
                policy: &route.headers,
                tls: conn.tls,
                raw_head: conn.raw_head && route.csp_nonce.is_none(),
            };
            files::serve(site, &edge.files[r.idx], &file_req).await
        }
        Action::Redirect {
            to,
            status,
            keep_path,
        } => respond::redirect(to, *status, *keep_path, rest(), req.uri().query()),
        Action::Respond {
            status,
            body,
            content_type,
        } => Ok(respond::fixed(*status, body, content_type, req.method())),
    }
}

/// Forwards to the route's pool (the one it is switched to now, else its configured one).
async fn upstream(
    edge: &Edge,
    conn: &ConnInfo,
    r: &Routed<'_>,
    configured: usize,
    req: Request<Body>,
    trace: &mut Trace,
) -> Result<Response<Body>, Refusal> {
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
    let (mut parts, body) = req.into_parts();
    let fwd = proxy::prepare_request(&mut parts, pq.as_deref(), &info, r.request_id);
    let sent = std::time::Instant::now();
    match pool.forward(Request::from_parts(parts, body), fwd).await {
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
            Err(e.refusal())
        }
    }
}
