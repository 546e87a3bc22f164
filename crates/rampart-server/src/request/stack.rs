//! THE request path, in order. Each step is a plain function call rather than a tower
//! layer: the order is visible in one place, nothing is boxed per layer, and each step can
//! answer early. (DESIGN.md sketched tower layers; this is measured cheaper and reads the same.)
//!
//! ```text
//! request id → host check (allowed_hosts → 421/close) → HTTPS redirect (plain listener)
//!   → path normalisation (400) → route (404)
//!   → handler: upstream | static | redirect | respond
//!   → response policy: security headers, banners removed, HSTS (HTTPS), Server, X-Request-ID
//! ```
//! Every answer, including refusals, leaves through the response policy, so 4xx/5xx carry
//! the same security headers as 200s.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rampart_config::runtime::{Action, HeaderPolicy, Misdirected};

use crate::edge::router::{normalize_path, strip};
use crate::edge::Edge;
use crate::handler::files::{self, FileRequest};
use crate::handler::proxy::{self, ClientInfo, ProxyError};
use crate::handler::{csp_report, transform};
use crate::observe::audit;
use crate::policy::{self, headers, Before};
use crate::request::status;
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;
use crate::wire::request_id::{self, X_REQUEST_ID};

/// The authenticated subject, as the auth policy forwards it.
const SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");

/// What the request path knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's IP as a header value, formatted once per connection.
    pub peer_value: HeaderValue,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// When set, this is a plain listener that redirects to HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// The response is written by the HTTP/1.1 fast path, which understands
    /// [`Body::Head`](crate::wire::body::Body::Head).
    pub raw_head: bool,
    /// The negotiated TLS version (`"1.3"`, `"1.2"`), for the access log.
    pub tls_version: Option<&'static str>,
}

/// What the request path learns for metrics and the access log.
#[derive(Debug, Default)]
struct Trace {
    route: Option<usize>,
    client_ip: Option<std::net::IpAddr>,
    /// Upstream server and seconds to its response head.
    upstream: Option<(Arc<str>, std::time::Duration)>,
    user: Option<HeaderValue>,
    tenant: Option<HeaderValue>,
}

/// The request's facts the access log needs, taken before the request is consumed.
struct Seen {
    path: String,
    ua: Option<HeaderValue>,
    host: Option<HeaderValue>,
    bytes_in: u64,
    version: http::Version,
}

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
/// `Server` header is left. Without `defer` the returned policy is always `None`.
///
/// # Errors
/// [`CloseConnection`] when policy says to drop the connection instead of answering.
pub async fn respond<'e>(
    edge: &'e Edge,
    conn: &ConnInfo,
    req: Request<Body>,
    defer: bool,
) -> Result<(Response<Body>, Option<&'e HeaderPolicy>), CloseConnection> {
    #[cfg(feature = "test-panic")]
    crate::request::rescue::test_trigger(req.headers());
    let started = std::time::Instant::now();
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(v) if request_id::is_acceptable(v) => v.clone(),
        _ => request_id::generate(),
    };
    let method = req.method().clone();
    let seen = edge.logs.access.as_ref().map(|_| Seen {
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
    });
    let mut trace = Trace::default();
    let (mut resp, policy) = match answer(edge, conn, req, &request_id, &mut trace).await {
        Ok(r) => r,
        Err(Answer::Refuse(r, route)) => {
            trace.route = trace.route.or(route);
            let policy = route.map_or(&edge.default_headers, |i| &edge.config.routes[i].headers);
            (r.response(&request_id), Some(policy))
        }
        Err(Answer::Close) => return Err(CloseConnection),
    };
    let mut deferred = None;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let nonced = resp.extensions_mut().remove::<transform::CspHeader>();
        if let Some(policy) = policy {
            // A per-response CSP replaces the policy's own: that one is applied to the map.
            if defer && nonced.is_none() {
                deferred = Some(policy);
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
    record(
        edge,
        conn,
        &method,
        &resp,
        &trace,
        seen,
        &request_id,
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

/// A header value as log text (`None` when absent or not visible ASCII).
fn hv(v: &Option<HeaderValue>) -> Option<&str> {
    v.as_ref().and_then(|v| v.to_str().ok())
}

/// Counts the answer and writes its access log line (queued; never waits for the disk).
#[allow(clippy::too_many_arguments)]
fn record(
    edge: &Edge,
    conn: &ConnInfo,
    method: &Method,
    resp: &Response<Body>,
    trace: &Trace,
    seen: Option<Seen>,
    request_id: &HeaderValue,
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
    let (Some(sink), Some(seen)) = (&edge.logs.access, seen) else {
        return;
    };
    let mut l = edge.logs.line();
    l.own("ts", &crate::observe::logs::timestamp());
    l.own("request_id", request_id.to_str().unwrap_or_default());
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
    l.opt("ua", hv(&seen.ua));
    if !sink.send(l) {
        edge.metrics.log_dropped("access");
    }
}

enum Answer {
    /// Refused, with the route when one matched (its header policy applies).
    Refuse(Refusal, Option<usize>),
    Close,
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Self {
        Answer::Refuse(r, None)
    }
}

async fn answer<'e>(
    edge: &'e Edge,
    conn: &ConnInfo,
    req: Request<Body>,
    request_id: &HeaderValue,
    trace: &mut Trace,
) -> Result<(Response<Body>, Option<&'e HeaderPolicy>), Answer> {
    let server = &edge.config.server;
    if !conn.raw_head
        && req.version() <= http::Version::HTTP_11
        && head_len(&req) > server.max_header_size
    {
        return Err(Refusal::HeadersTooLarge.into());
    }
    if !server.deny.is_empty() {
        global_deny(edge, conn, &req, request_id)?;
    }
    let host = host_of(&req).ok_or(Refusal::BadRequest("bad_request"))?;
    if !server.allowed_hosts.is_empty() && !server.allowed_hosts.iter().any(|p| p.matches(&host)) {
        return match server.misdirected {
            Misdirected::Status421 => Err(Refusal::Misdirected.into()),
            Misdirected::Close => Err(Answer::Close),
        };
    }
    // A cheap clone (reference-counted): the path borrows it while policies change `req`.
    let uri = req.uri().clone();
    let raw_path = uri.path();
    if let Some(port) = conn.redirect_to_https {
        if !server
            .redirect_exempt
            .iter()
            .any(|p| raw_path.starts_with(p.as_str()))
        {
            return Ok((
                https_redirect(&req, &host, port)?,
                Some(&edge.default_headers),
            ));
        }
    }
    let path = normalize_path(raw_path).map_err(|_| Refusal::BadRequest("bad_request"))?;
    if let Some(rep) = &edge.config.csp_report {
        if *path == *rep.path {
            let (ip, _) = proxy::client_ip(req.headers(), conn.peer.ip(), |ip| edge.is_trusted(ip));
            let resp = csp_report::handle(&edge.policy_env(), rep, req, ip, request_id).await?;
            return Ok((resp, Some(&edge.default_headers)));
        }
    }
    if let Some(public) = edge.config.admin.as_ref().and_then(|a| a.public.as_ref()) {
        if let Some(rest) = path.strip_prefix(public.path.as_str()) {
            let (ip, _) = proxy::client_ip(req.headers(), conn.peer.ip(), |ip| edge.is_trusted(ip));
            let read_only = req.method() == Method::GET || req.method() == Method::HEAD;
            if let Some(resp) = public_admin(edge, ip, read_only, rest, public).await {
                return resp.map(|r| (r, Some(&edge.default_headers)));
            }
        }
    }
    let idx = edge.router.find(&host, &path).ok_or(Refusal::NotFound)?;
    trace.route = Some(idx);
    let route = &edge.config.routes[idx];
    let in_route = |r: Refusal| Answer::Refuse(r, Some(idx));
    let (client_ip, peer_trusted) =
        proxy::client_ip(req.headers(), conn.peer.ip(), |ip| edge.is_trusted(ip));
    trace.client_ip = Some(client_ip);
    let mut req = req;
    let method = req.method().clone();
    let audit = |r: &policy::Refused| {
        audit::emit(
            edge,
            &audit::Event {
                event: r.event,
                severity: "warning",
                ip: client_ip,
                code: r.refusal.code(),
                reason: &r.reason,
                route: &route.name,
                request_id: request_id.to_str().unwrap_or_default(),
                method: method.as_str(),
                path: &path,
            },
        );
    };
    // Only routes that transform bodies look at these.
    let accept = if route.compress.is_some() || route.csp_nonce.is_some() {
        req.headers().get(header::ACCEPT_ENCODING).cloned()
    } else {
        None
    };
    let nonce = route.csp_nonce.as_ref().map(|_| transform::new_nonce());
    if let Some(n) = &nonce {
        if let Ok(v) = HeaderValue::from_str(n) {
            req.headers_mut().insert(transform::X_CSP_NONCE, v);
        }
    }
    let ctx = match policy::before(&edge.policy_env(), idx, &mut req, client_ip).await {
        Ok(Before::Continue(ctx)) => ctx,
        Ok(Before::Answer(resp)) => return Ok((resp, Some(&route.headers))),
        Err(refused) => {
            audit(&refused);
            if req.version() == http::Version::HTTP_2
                && !matches!(refused.refusal, Refusal::PayloadTooLarge)
            {
                drain_small(req.body_mut()).await;
            }
            return Err(in_route(refused.refusal));
        }
    };
    let exceeded = ctx.exceeded.clone();
    // Set by the auth policy (which first removes a client's own); on a route without auth
    // a client could have sent it, so it is not believed there.
    if !route.policy.auth.is_empty() {
        trace.user = req.headers().get(SUBJECT).cloned();
    }
    if let Some(t) = &route.policy.tenant {
        trace.tenant = req.headers().get(&t.header).cloned();
    }
    let handled: Result<Response<Body>, Answer> = async {
        let resp = match &route.action {
            Action::Upstream(configured) => {
                let pool = &edge.pools[edge.route_pool(idx).unwrap_or(*configured)];
                // The client's path and query are forwarded as they came unless normalisation
                // or prefix stripping changed the path.
                let pq = if route.strip_prefix || matches!(path, std::borrow::Cow::Owned(_)) {
                    let forward_path = if route.strip_prefix {
                        strip(&route.path, &path)
                    } else {
                        &path
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
                    peer_trusted,
                    client_ip,
                    tls: conn.tls,
                };
                let (mut parts, body) = req.into_parts();
                let fwd = proxy::prepare_request(&mut parts, pq.as_deref(), &info, request_id);
                let upstream_req = Request::from_parts(parts, body);
                let sent = std::time::Instant::now();
                let forwarded = pool.forward(upstream_req, fwd).await;
                if forwarded.is_err() {
                    for reason in pool.take_downs() {
                        audit::system(edge, "upstream.down", "warning", &reason);
                    }
                }
                match forwarded {
                    Ok((resp, server)) => {
                        let t = sent.elapsed();
                        edge.metrics.upstream(
                            &pool.label,
                            &server.label,
                            &server.latency,
                            t.as_secs_f64(),
                        );
                        trace.upstream = Some((server.label.clone(), t));
                        resp
                    }
                    Err(ProxyError::Timeout) => return Err(in_route(Refusal::GatewayTimeout)),
                    // The exceeded-limit flag, checked below, turns this into a 413.
                    Err(ProxyError::ClientBody) => {
                        return Err(in_route(Refusal::BadRequest("bad_body")))
                    }
                    Err(ProxyError::ClientTimeout) => {
                        return Err(in_route(Refusal::RequestTimeout))
                    }
                    Err(
                        ProxyError::Connect
                        | ProxyError::Upstream(_)
                        | ProxyError::Io(_)
                        | ProxyError::Protocol,
                    ) => return Err(in_route(Refusal::BadGateway)),
                }
            }
            Action::Static(site) => {
                let file_req = FileRequest {
                    method: req.method(),
                    headers: req.headers(),
                    rel: strip(&route.path, &path),
                    query: req.uri().query(),
                    compress: route.compress,
                    identity_only: route.csp_nonce.is_some(),
                    policy: &route.headers,
                    tls: conn.tls,
                    raw_head: conn.raw_head && route.csp_nonce.is_none(),
                };
                files::serve(site, &edge.files[idx], &file_req)
                    .await
                    .map_err(in_route)?
            }
            Action::Redirect {
                to,
                status,
                keep_path,
            } => {
                let mut location = to.clone();
                if *keep_path {
                    location.push_str(
                        strip(&route.path, &path).trim_start_matches(if to.ends_with('/') {
                            "/"
                        } else {
                            ""
                        }),
                    );
                    if let Some(q) = req.uri().query() {
                        location.push('?');
                        location.push_str(q);
                    }
                }
                let mut resp = Response::new(Body::Empty);
                *resp.status_mut() =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
                resp.headers_mut().insert(
                    header::LOCATION,
                    HeaderValue::from_str(&location)
                        .map_err(|_| in_route(Refusal::BadRequest("bad_request")))?,
                );
                resp
            }
            Action::Respond {
                status,
                body,
                content_type,
            } => {
                let mut resp = Response::new(if req.method() == Method::HEAD {
                    Body::Empty
                } else {
                    Body::full(body.clone())
                });
                *resp.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, content_type.clone());
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                resp
            }
        };
        Ok(resp)
    }
    .await;
    let mut resp = match handled {
        Ok(r) => r,
        Err(Answer::Refuse(r, _)) => {
            if exceeded.is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
                let refused = policy::Refused {
                    refusal: Refusal::PayloadTooLarge,
                    event: "request.too_large",
                    reason: "streamed body over the route's limit".into(),
                };
                audit(&refused);
                refused.refusal.response(request_id)
            } else {
                r.response(request_id)
            }
        }
        Err(Answer::Close) => return Err(Answer::Close),
    };
    if route.compress.is_some() || nonce.is_some() {
        transform::shape(
            route,
            &mut resp,
            accept.as_ref(),
            nonce,
            method == Method::HEAD,
        );
    }
    policy::after(&edge.policy_env(), route, ctx, &mut resp);
    // Static answers carry the route's headers already (from their file's template).
    let policy = (!matches!(route.action, Action::Static(_))
        || resp.status().is_client_error()
        || resp.status().is_server_error())
    .then_some(&route.headers);
    Ok((resp, policy))
}

/// The size of an HTTP/1.x request head as parsed by hyper, counted as it is written with
/// one space after each colon: request line, header lines, blank line. hyper holds heads
/// only loosely to `max_buf_size` (a head that arrives whole in one read passes), and it
/// serves a connection's later requests without the fast path's exact count, so this
/// check keeps `max_header_size` on every path (exact for heads written that way; optional
/// whitespace a client adds is not counted).
fn head_len<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    req.headers()
        .iter()
        .fold(line + 2, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// HTTP/2: a refusal answered before the request body was read is followed by
/// RST_STREAM (the unread stream is reset), and some clients (curl 7.88) then report a
/// framing error instead of the response. A small body is read first, at most 64 KiB
/// within one second, so the stream ends cleanly; a larger or slower one is still reset.
/// Refusals only: an accepted request's body goes to the upstream.
async fn drain_small(body: &mut Body) {
    use http_body_util::BodyExt as _;
    const MAX: u64 = 64 * 1024;
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

/// `server.deny`: refused before anything else (routes, redirects, public mounts).
fn global_deny(
    edge: &Edge,
    conn: &ConnInfo,
    req: &Request<Body>,
    request_id: &HeaderValue,
) -> Result<(), Answer> {
    let (ip, _) = proxy::client_ip(req.headers(), conn.peer.ip(), |ip| edge.is_trusted(ip));
    let ip = ip.to_canonical();
    if !edge.config.server.deny.iter().any(|n| n.contains(&ip)) {
        return Ok(());
    }
    let refusal = Refusal::Forbidden("ip_denied");
    audit::emit(
        edge,
        &audit::Event {
            event: "acl.refused",
            severity: "warning",
            ip,
            code: refusal.code(),
            reason: &format!("client {ip} is in server.deny"),
            route: "",
            request_id: request_id.to_str().unwrap_or_default(),
            method: req.method().as_str(),
            path: req.uri().path(),
        },
    );
    Err(refusal.into())
}

/// `/metrics`, `/health` and `/ready` under `admin.public_path`, for `public_allow` only.
/// Others get 404 under a prefix, as if nothing were there; at the root (`""`) their
/// request goes to the routes (the application's own `/health`). `None` when `rest` is
/// not a mounted endpoint.
async fn public_admin(
    edge: &Edge,
    ip: std::net::IpAddr,
    read_only: bool,
    rest: &str,
    public: &rampart_config::ops::PublicAdmin,
) -> Option<Result<Response<Body>, Answer>> {
    if !public.mounts(rest) {
        return None;
    }
    if !read_only || !public.allow.iter().any(|n| n.contains(&ip)) {
        return (!public.path.is_empty()).then(|| Err(Refusal::NotFound.into()));
    }
    Some(Ok(match rest {
        "/metrics" => status::metrics(edge),
        "/health" => status::health(edge).await,
        _ => status::ready(edge).await,
    }))
}

/// The request's host, lowercase, without port: from the URI authority (HTTP/2, absolute
/// form) or the `Host` header. `None` when it is malformed. An absent host is `""`, which
/// only host-less routes match.
fn host_of<B>(req: &Request<B>) -> Option<std::borrow::Cow<'_, str>> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => match req.headers().get(header::HOST) {
            Some(h) => h.to_str().ok()?,
            None => return Some(std::borrow::Cow::Borrowed("")),
        },
    };
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        let end = rest.find(']')?;
        &raw[..end + 2]
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    if !ok {
        return None;
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    })
}

/// `https://host[:port]/path?query`; 301 for GET/HEAD, 308 (method and body kept) otherwise.
fn https_redirect<B>(req: &Request<B>, host: &str, port: u16) -> Result<Response<Body>, Answer> {
    if host.is_empty() {
        return Err(Refusal::BadRequest("bad_request").into());
    }
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{port}{pq}")
    };
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|_| Answer::from(Refusal::BadRequest("bad_request")))?,
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn host_is_lowercased_and_port_stripped() {
        assert_eq!(
            host_of(&req(Some("Example.COM:8443"), "/")).unwrap(),
            "example.com"
        );
        assert_eq!(host_of(&req(Some("[::1]:8443"), "/")).unwrap(), "[::1]");
        assert_eq!(
            host_of(&req(None, "https://a.example.com/x")).unwrap(),
            "a.example.com"
        );
        assert_eq!(host_of(&req(None, "/")).unwrap(), "");
        assert!(host_of(&req(Some("evil.com/x"), "/")).is_none());
        assert!(host_of(&req(Some("a b"), "/")).is_none());
    }
}
