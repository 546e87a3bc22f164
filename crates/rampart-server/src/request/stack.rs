//! THE request path, in order: [`answer`] is the spine, one commented step per line, each
//! a plain function call into the module that owns it rather than a tower layer: the
//! order is visible in one place, nothing is boxed per layer, and each step can answer
//! early (DESIGN.md sketched tower layers; this is measured cheaper and reads the same).
//! [`respond`] wraps it: the request id, the response's security headers (every answer,
//! refusals included, leaves through them, so 4xx/5xx carry the same headers as 200s),
//! metrics and the access log.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use rampart_config::runtime::{Action, HeaderPolicy};

use super::answer::Answer;
use super::connection::ConnInfo;
use super::front::{self, Builtin};
use super::handle::{self, Routed};
use super::trace::{self, Auditor, Seen, Trace};
use crate::edge::router::normalize_path;
use crate::edge::Edge;
use crate::handler::{files, proxy, transform};
use crate::policy::rate_limit::RateHeaders;
use crate::policy::{self, headers, Before, Refused};
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;
use crate::wire::request_id::{self, X_REQUEST_ID};
use crate::wire::trace_context::TraceContext;

/// The connection is closed without an answer (`misdirected = "close"`).
#[derive(Debug, thiserror::Error)]
#[error("connection closed by policy")]
pub struct CloseConnection;

/// Handles one request.
///
/// # Errors
/// [`CloseConnection`] when policy says to drop the connection instead of answering.
pub async fn handle(
    edge: Arc<Edge>,
    conn: ConnInfo,
    req: Request<Body>,
) -> Result<Response<Body>, CloseConnection> {
    respond(&edge, &conn, req, false).await.map(|(r, _)| r)
}

/// Handles one request. With `defer`, the header policy is not applied to the response's
/// map but returned, for a writer that serializes the response itself (the HTTP/1.1 fast
/// path): it leaves out the upstream headers the policy [overrides](HeaderPolicy::overrides)
/// and writes the policy's [lines](HeaderPolicy::lines), and `Server: rampart` when no
/// `Server` header is left, and the `RateLimit-*` lines of [`Deferred::rate`] in place of
/// the upstream's. Without `defer` nothing is deferred (always `None`).
///
/// # Errors
/// [`CloseConnection`] when policy says to drop the connection instead of answering.
pub async fn respond<'e>(
    edge: &'e Edge,
    conn: &ConnInfo,
    mut req: Request<Body>,
    defer: bool,
) -> Result<(Response<Body>, Option<Deferred<'e>>), CloseConnection> {
    if let Some(c) = &conn.client_cert {
        req.extensions_mut().insert(c.clone());
    }
    #[cfg(feature = "test-panic")]
    crate::request::rescue::test_trigger(req.headers());
    let started = std::time::Instant::now();
    let (request_id, generated) = match req.headers().get(X_REQUEST_ID) {
        Some(v) if request_id::is_acceptable(v) => (v.clone(), false),
        _ => (request_id::generate(), true),
    };
    let method = req.method().clone();
    let spans = edge.spans.is_some();
    let seen = (edge.logs.access.is_some() || spans).then(|| Seen::of(&req));
    let mut context = TraceContext::of(req.headers(), &request_id, generated);
    if spans {
        context = context.with_span();
    }
    let mut trace = Trace {
        grpc: is_grpc(req.headers()),
        ..Trace::default()
    };
    let ids = (&request_id, &context);
    let (mut resp, policy) = match answer(edge, conn, req, ids, &mut trace).await {
        Ok(r) => r,
        Err(Answer::Refuse(r, route)) => {
            trace.route = trace.route.or(route);
            let policy = route.map_or(&edge.default_headers, |i| &edge.config.routes[i].headers);
            (refusal(&r, trace.grpc, &request_id), Some(policy))
        }
        Err(Answer::Close) => return Err(CloseConnection),
    };
    let mut deferred = None;
    let rate = trace.rate.take();
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let nonced = resp.extensions_mut().remove::<transform::CspHeader>();
        if let Some(policy) = policy {
            // A per-response CSP replaces the policy's own: that one is applied to the map.
            if defer && nonced.is_none() {
                deferred = Some(Deferred { policy, rate });
            } else if trace.grpc {
                headers::apply_grpc(resp.headers_mut(), policy, conn.tls);
            } else {
                headers::apply(resp.headers_mut(), policy, conn.tls);
            }
        }
        if let Some(transform::CspHeader(name, mut value)) = nonced {
            // A per-response nonce: never worth a slot in the HTTP/2 header table.
            value.set_sensitive(true);
            resp.headers_mut().insert(name, value);
        }
    }
    if let (None, Some(rate)) = (&deferred, rate) {
        rate.apply(resp.headers_mut());
    }
    trace::record(
        edge,
        conn,
        &method,
        &resp,
        &trace,
        seen,
        (&request_id, &context),
        started,
    );
    // Unique per response: HPACK sends it as a never-indexed literal instead of inserting
    // it into the connection's dynamic table, where each new id would evict the constant
    // security headers and force them to be re-encoded.
    let mut request_id = request_id;
    request_id.set_sensitive(true);
    resp.headers_mut().insert(X_REQUEST_ID, request_id);
    Ok((resp, deferred))
}

/// A step before the policies answers early: on HTTP/2 a small unread body is drained
/// first, as for a policy's refusal.
macro_rules! early {
    ($req:ident, $step:expr) => {
        match $step {
            Ok(v) => v,
            Err(a) => return Err(Box::pin(refuse_early(a.into(), &mut $req)).await),
        }
    };
}

/// What the HTTP/1.1 fast path writes itself (see [`respond`]).
#[derive(Debug, Clone, Copy)]
pub struct Deferred<'e> {
    /// The response's header policy.
    pub policy: &'e HeaderPolicy,
    /// The `RateLimit-*` values, when a limit applied.
    pub rate: Option<RateHeaders>,
}

/// THE SPINE: one request through every step, in order. Each step answers early (a
/// refusal, a redirect, a built-in endpoint) or lets the request go on; what a step does is
/// in the module it calls.
async fn answer<'e>(
    edge: &'e Edge,
    conn: &ConnInfo,
    mut req: Request<Body>,
    (request_id, context): (&HeaderValue, &TraceContext),
    trace: &mut Trace,
) -> Result<(Response<Body>, Option<&'e HeaderPolicy>), Answer> {
    let (server, fallback) = (&edge.config.server, Some(&edge.default_headers));
    // 1. The head's size, on every path (431).
    early!(req, front::head_size(conn, &req, server.max_header_size));
    // 2. `server.deny`, before anything else (403).
    early!(
        req,
        front::global_deny(edge, conn, &req, (request_id, context))
    );
    // 3. The host: well formed (400) and allowed (421, or the connection closed).
    let host = early!(req, front::host(&req, server));
    // 4. An ACME HTTP-01 validation is answered; a plain listener that redirects does so
    //    (301/308), but for exempt paths.
    if front::is_acme_challenge(edge, &req) {
        if let Some(resp) = Box::pin(front::acme_challenge(edge, req.uri().path())).await {
            return Ok((resp, fallback));
        }
    }
    if let Some(resp) = front::to_https(&req, &host, conn, server)? {
        return Ok((resp, fallback));
    }
    // 5. The path, normalised (400); the URI clone is reference-counted.
    let uri = req.uri().clone();
    let path = normalize_path(uri.path());
    // 6. The route by host and longest path prefix (a miss is a 404 after step 7).
    let found = path.as_ref().ok().and_then(|p| edge.router.find(&host, p));
    let path = early!(req, path.map_err(|_| Refusal::BadRequest("bad_request")));
    // 7. Built-in endpoints: CSP reports, the public status mount.
    if front::is_builtin(edge, &path) {
        match Box::pin(front::builtin(edge, conn, req, &path, request_id)).await? {
            Builtin::Answered(resp) => return Ok((resp, fallback)),
            Builtin::Pass(r) => req = r,
        }
    }
    // 7b. An expired, invalid or tampered license: the notice, to everything else.
    if edge.process.license_blocked.load(Ordering::Relaxed) {
        return Ok((front::license_notice(edge, &req), fallback));
    }
    let idx = early!(req, found.ok_or(Refusal::NotFound));
    let route = &edge.config.routes[idx];
    // 7c. A route for a feature the license does not grant (403 or 402).
    if let Some(feature) = &route.requires_feature {
        early!(req, front::licensed(edge, feature));
    }
    trace.route = Some(idx);
    // 8. The client: `X-Forwarded-For` is believed from `trusted_proxies` only.
    let client = proxy::client_ip(req.headers(), conn.peer.ip(), |ip| edge.is_trusted(ip));
    let client_ip = client.0;
    trace.client_ip = Some(client_ip);
    let method = req.method().clone();
    let audit = Auditor::new(
        edge,
        client_ip,
        &route.name,
        (request_id, context),
        &method,
        &path,
    );
    // 9. What the response transforms need, before the policies change the request.
    let shaping = transform::Shaping::take(route, &mut req);
    // 10. The request policies, in their documented order (a CORS preflight ends here).
    let ctx = match policy::before(&edge.policy_env(), idx, &mut req, client_ip).await {
        Ok(Before::Continue(ctx)) => ctx,
        Ok(Before::Answer(resp)) => return Ok((resp, Some(&route.headers))),
        Err(refused) => return Err(Box::pin(refuse(refused, &mut req, &audit, idx)).await),
    };
    trace.identify(route, &req);
    // 11. The route's handler: upstream, static files, redirect or fixed answer.
    let routed = Routed::new(idx, &path, client, (request_id, context));
    let handled = match &route.action {
        Action::Upstream(p) => {
            let (pool, fwd, sent) = handle::upstream(edge, conn, &routed, *p, &mut req);
            handle::forwarded(edge, pool, pool.forward(req, fwd).await, sent, trace)
        }
        Action::Static(site) => {
            let file = handle::file_request(conn, route, &routed, &req);
            files::serve(site, &edge.files[idx], &file).await
        }
        _ => handle::itself(route, &routed, &req),
    };
    let mut resp = match handled {
        Ok(resp) => resp,
        // 12. A streamed body over the route's limit is a 413, whatever the handler saw.
        Err(r) => refusal(
            &over_limit(r, ctx.exceeded.as_deref(), &audit),
            trace.grpc,
            request_id,
        ),
    };
    // 13. Response transforms (compression, CSP nonce), then the response policies.
    shaping.apply(route, &mut resp, method == Method::HEAD);
    if policy::is_login(&ctx) {
        Box::pin(policy::record_login(
            &edge.policy_env(),
            route,
            &ctx,
            resp.status().as_u16(),
        ))
        .await;
    }
    trace.rate = policy::after(&edge.policy_env(), route, ctx, &mut resp);
    // 14. The route's header policy (a static answer carries it from its template).
    let templated = matches!(route.action, Action::Static(_))
        && !resp.status().is_client_error()
        && !resp.status().is_server_error();
    Ok((resp, (!templated).then_some(&route.headers)))
}

/// A refusal before routing or the policies (bad head or host, no route, global deny).
async fn refuse_early(answer: Answer, req: &mut Request<Body>) -> Answer {
    if matches!(answer, Answer::Refuse(..)) {
        drain_small(req).await;
    }
    answer
}

/// A policy's refusal: audited, and on HTTP/2 a small unread body is drained first.
async fn refuse(
    refused: Refused,
    req: &mut Request<Body>,
    audit: &Auditor<'_>,
    idx: usize,
) -> Answer {
    audit.refused(&refused);
    if !matches!(refused.refusal, Refusal::PayloadTooLarge) {
        drain_small(req).await;
    }
    Answer::Refuse(refused.refusal, Some(idx))
}

/// The handler's refusal, unless the request body went over the route's limit while it
/// streamed: then 413 (audited), whatever became of the exchange.
fn over_limit(
    r: Refusal,
    exceeded: Option<&std::sync::atomic::AtomicBool>,
    audit: &Auditor<'_>,
) -> Refusal {
    if !exceeded.is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
        return r;
    }
    let refused = Refused {
        refusal: Refusal::PayloadTooLarge,
        event: "request.too_large",
        reason: "streamed body over the route's limit".into(),
    };
    audit.refused(&refused);
    refused.refusal
}

/// HTTP/2: a refusal answered before the request body was read is followed by
/// RST_STREAM (the unread stream is reset), and some clients (curl 7.88) then report a
/// framing error instead of the response. A small body is read first, at most 64 KiB
/// within one second, so the stream ends cleanly; a larger or slower one is still reset.
/// Refusals only: an accepted request's body goes to the upstream. HTTP/1.x: nothing.
async fn drain_small(req: &mut Request<Body>) {
    use http_body_util::BodyExt as _;
    const MAX: u64 = 64 * 1024;
    if req.version() != http::Version::HTTP_2 {
        return;
    }
    let body = req.body_mut();
    if http_body::Body::is_end_stream(body) || http_body::Body::size_hint(body).lower() > MAX {
        return;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > MAX {
                return;
            }
        }
    })
    .await;
}

/// The answer to a refusal or an error, in gRPC's terms for a gRPC call.
fn refusal(r: &Refusal, grpc: bool, request_id: &HeaderValue) -> Response<Body> {
    if grpc {
        r.grpc_response(request_id)
    } else {
        r.response(request_id)
    }
}

/// Whether a request is a gRPC call (`Content-Type: application/grpc`, `…+proto`,
/// `…+json`): refusals are then answered the way gRPC clients read them.
fn is_grpc(h: &http::HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}
