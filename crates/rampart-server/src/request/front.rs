//! The steps of the spine before a route is known: the head's size, `server.deny`, the
//! host, the HTTPS redirect of a plain listener, and the built-in endpoints (CSP reports,
//! the public status mount). Each answers early or lets the request go on.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rampart_config::runtime::{Misdirected, Server};

use super::answer::Answer;
use super::connection::ConnInfo;
use super::status;
use crate::edge::Edge;
use crate::handler::{csp_report, proxy};
use crate::observe::audit;
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// What a built-in endpoint made of a request.
pub enum Builtin {
    /// Answered.
    Answered(Response<Body>),
    /// Not one of them: the request goes on to the routes.
    Pass(Request<Body>),
}

/// `max_header_size` on every path: the fast path counts the head exactly as it reads it;
/// hyper's heads are counted here.
pub fn head_size(conn: &ConnInfo, req: &Request<Body>, max: usize) -> Result<(), Answer> {
    if !conn.raw_head && req.version() <= http::Version::HTTP_11 && head_len(req) > max {
        return Err(Refusal::HeadersTooLarge.into());
    }
    Ok(())
}

/// The request's host, when well formed (400) and allowed (`allowed_hosts`: 421, or the
/// connection closed with `misdirected = "close"`).
pub fn host<'r>(req: &'r Request<Body>, server: &Server) -> Result<Cow<'r, str>, Answer> {
    let host = host_of(req).ok_or(Refusal::BadRequest("bad_request"))?;
    if !server.allowed_hosts.is_empty() && !server.allowed_hosts.iter().any(|p| p.matches(&host)) {
        return match server.misdirected {
            Misdirected::Status421 => Err(Refusal::Misdirected.into()),
            Misdirected::Close => Err(Answer::Close),
        };
    }
    Ok(host)
}

/// Whether the request may be an ACME HTTP-01 validation (checked before
/// [`acme_challenge`] is awaited).
pub fn is_acme_challenge(edge: &Edge, req: &Request<Body>) -> bool {
    edge.acme.is_some()
        && req
            .uri()
            .path()
            .starts_with(crate::edge::acme::CHALLENGE_PATH)
}

/// An ACME HTTP-01 validation (`/.well-known/acme-challenge/TOKEN` for a token the renewal
/// task, or in a fleet any instance's, is waiting on): the key authorization, on any
/// listener, before the redirect. Any other path (or an unknown token) goes on as usual.
pub async fn acme_challenge(edge: &Edge, path: &str) -> Option<Response<Body>> {
    let acme = edge.acme.as_ref()?;
    let token = path.strip_prefix(crate::edge::acme::CHALLENGE_PATH)?;
    let key_auth = match acme.token(token) {
        Some(k) => k,
        None => {
            let fleet = edge.policies.shared()?;
            fleet
                .get(&fleet.key(&format!("acme:token:{token}")))
                .await
                .ok()
                .flatten()?
        }
    };
    let mut r = Response::new(Body::full(key_auth));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    Some(r)
}

/// On a plain listener that redirects (`redirect_to_https`), the redirect, unless the path
/// is in `redirect_exempt`.
pub fn to_https(
    req: &Request<Body>,
    host: &str,
    conn: &ConnInfo,
    server: &Server,
) -> Result<Option<Response<Body>>, Answer> {
    let Some(port) = conn.redirect_to_https else {
        return Ok(None);
    };
    let path = req.uri().path();
    if server
        .redirect_exempt
        .iter()
        .any(|p| path.starts_with(p.as_str()))
    {
        return Ok(None);
    }
    https_redirect(req, host, port).map(Some)
}

/// Whether normalised `path` names a built-in endpoint (checked before [`builtin`] is
/// awaited: its future is large, and most requests never need it).
pub fn is_builtin(edge: &Edge, path: &str) -> bool {
    edge.config
        .csp_report
        .as_ref()
        .is_some_and(|r| path == r.path)
        || edge
            .config
            .admin
            .as_ref()
            .and_then(|a| a.public.as_ref())
            .is_some_and(|p| {
                path.strip_prefix(p.path.as_str())
                    .is_some_and(|rest| p.mounts(rest))
            })
}

/// The CSP report endpoint and the public status mount, by normalised `path`.
pub async fn builtin(
    edge: &Edge,
    conn: &ConnInfo,
    req: Request<Body>,
    path: &str,
    request_id: &HeaderValue,
) -> Result<Builtin, Answer> {
    let client = |req: &Request<Body>| {
        proxy::client_ip(req.headers(), conn.peer.ip(), |ip| edge.is_trusted(ip)).0
    };
    if let Some(rep) = &edge.config.csp_report {
        if path == rep.path {
            let ip = client(&req);
            let resp = csp_report::handle(&edge.policy_env(), rep, req, ip, request_id).await?;
            return Ok(Builtin::Answered(resp));
        }
    }
    if let Some(public) = edge.config.admin.as_ref().and_then(|a| a.public.as_ref()) {
        if let Some(rest) = path.strip_prefix(public.path.as_str()) {
            let read_only = req.method() == Method::GET || req.method() == Method::HEAD;
            let ip = client(&req);
            if let Some(resp) = public_admin(edge, ip, read_only, rest, public).await {
                return resp.map(Builtin::Answered);
            }
        }
    }
    Ok(Builtin::Pass(req))
}

/// A route's feature: granted by the current license, else refused (`feature_status`).
pub fn licensed(edge: &Edge, feature: &str) -> Result<(), Answer> {
    let granted = edge
        .process
        .license
        .load()
        .as_deref()
        .is_some_and(|st| st.grants(feature));
    if granted {
        return Ok(());
    }
    let status = edge
        .config
        .license
        .as_ref()
        .map_or(403, |l| l.feature_status);
    Err(Refusal::NotLicensed(status).into())
}

/// What every request but the health endpoints and ACME gets while the license is
/// expired, invalid or tampered with: 503, the configured notice, as HTML to a browser
/// and JSON to everything else.
pub fn license_notice(edge: &Edge, req: &Request<Body>) -> Response<Body> {
    let notice = edge
        .config
        .license
        .as_ref()
        .map_or(rampart_config::license::DEFAULT_NOTICE, |l| {
            l.notice.as_str()
        });
    let state = edge
        .process
        .license
        .load()
        .as_deref()
        .map_or("invalid", |s| s.state.name());
    let html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let (body, kind) = if html {
        let text = html_escape(notice);
        (
            format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>License required</title></head>\n<body><h1>License required</h1>\n<p>{text}</p></body></html>\n"
            ),
            "text/html; charset=utf-8",
        )
    } else {
        (
            format!(
                "{}\n",
                serde_json::json!({"error": "license_required", "license": state, "message": notice})
            ),
            "application/json",
        )
    };
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html_escape(s: &str) -> String {
    s.chars().fold(String::with_capacity(s.len()), |mut o, c| {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
        o
    })
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

/// `server.deny`: refused before anything else (routes, redirects, public mounts).
pub fn global_deny(
    edge: &Edge,
    conn: &ConnInfo,
    req: &Request<Body>,
    (request_id, context): (&HeaderValue, &crate::wire::trace_context::TraceContext),
) -> Result<(), Answer> {
    if edge.config.server.deny.is_empty() {
        return Ok(());
    }
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
            trace_id: context.trace_id(),
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
    ip: IpAddr,
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
fn host_of<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => match req.headers().get(header::HOST) {
            Some(h) => h.to_str().ok()?,
            None => return Some(Cow::Borrowed("")),
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
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
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
