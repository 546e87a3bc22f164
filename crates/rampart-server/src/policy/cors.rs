//! CORS per route (`cors = "NAME"`, `[cors.NAME]`): a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered here, 204 with the allowed methods and
//! headers, or 403 `cors_denied` for an origin, method or header not allowed; other
//! requests go on, and their response carries `Access-Control-Allow-Origin` only for an
//! allowed origin (`Vary: Origin` always).

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rampart_config::policy::Cors;

use super::refused::{refuse, Refused};
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// What a CORS check decides.
#[derive(Debug)]
pub enum Outcome {
    /// A preflight, answered.
    Preflight(Response<Body>),
    /// Go on; the origin to allow in the response, when it is allowed.
    Continue(Option<HeaderValue>),
}

/// Checks `req` against `cors`.
///
/// # Errors
/// 403 `cors_denied` for a preflight that is not allowed (audit `cors.refused`).
pub fn check(cors: &Cors, values: &CorsValues, req: &Request<Body>) -> Result<Outcome, Refused> {
    let origin = req.headers().get(header::ORIGIN);
    let allowed = origin.filter(|o| {
        cors.any_origin
            || o.to_str()
                .is_ok_and(|o| cors.origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
    });
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(cors, values, req, allowed.cloned()).map(Outcome::Preflight);
    }
    Ok(Outcome::Continue(allowed.cloned()))
}

/// The CORS headers of a response to an actual (not preflight) request.
pub fn after(
    h: &mut http::HeaderMap,
    cors: &Cors,
    values: &CorsValues,
    origin: Option<HeaderValue>,
) {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        allow_origin(h, cors, origin);
        if let Some(v) = &values.expose {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}

/// A CORS policy's list-valued headers, joined at build time rather than per request.
#[derive(Debug)]
pub struct CorsValues {
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
}

impl CorsValues {
    /// Joins the list headers of `c`.
    pub fn new(c: &Cors) -> Self {
        fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
            let v: Vec<&str> = items.collect();
            if v.is_empty() {
                return None;
            }
            HeaderValue::from_str(&v.join(", ")).ok()
        }
        Self {
            methods: join(c.methods.iter().map(Method::as_str)),
            headers: join(c.headers.iter().map(HeaderName::as_str)),
            expose: join(c.expose.iter().map(HeaderName::as_str)),
        }
    }
}

/// `Access-Control-Allow-Origin` (the origin, or `*` for an any-origin policy without
/// credentials) and `Access-Control-Allow-Credentials`.
fn allow_origin(h: &mut http::HeaderMap, cors: &Cors, origin: HeaderValue) {
    let any = cors.any_origin && !cors.credentials;
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        if any {
            HeaderValue::from_static("*")
        } else {
            origin
        },
    );
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn preflight(
    cors: &Cors,
    values: &CorsValues,
    req: &Request<Body>,
    origin: Option<HeaderValue>,
) -> Result<Response<Body>, Refused> {
    let denied = |why: String| refuse(Refusal::Forbidden("cors_denied"), "cors.refused", why);
    let Some(origin) = origin else {
        return Err(denied("preflight from an origin not allowed".into()));
    };
    let method = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    if !method.is_some_and(|m| cors.methods.contains(&m)) {
        return Err(denied("preflight for a method not allowed".into()));
    }
    let mut asked = Vec::new();
    for v in req
        .headers()
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        for h in v.to_str().unwrap_or("\u{0}").split(',') {
            let h = h.trim();
            if h.is_empty() {
                continue;
            }
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) if cors.headers.contains(&n) => asked.push(n),
                _ => return Err(denied(format!("preflight asks for header {h:?}"))),
            }
        }
    }
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    allow_origin(h, cors, origin);
    if let Some(v) = &values.methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    if let Some(v) = &values.headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> (Cors, CorsValues) {
        let c = Cors {
            name: "web".into(),
            origins: vec!["https://app.test".into()],
            any_origin: false,
            methods: vec![Method::GET, Method::POST],
            headers: vec![HeaderName::from_static("content-type")],
            credentials: true,
            max_age: Duration::from_secs(600),
            expose: vec![HeaderName::from_static("x-total")],
        };
        let v = CorsValues::new(&c);
        (c, v)
    }

    fn preflight_req(origin: &str, method: &str, headers: Option<&str>) -> Request<Body> {
        let mut b = Request::builder()
            .method(Method::OPTIONS)
            .uri("/api")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method);
        if let Some(h) = headers {
            b = b.header(header::ACCESS_CONTROL_REQUEST_HEADERS, h);
        }
        b.body(Body::Empty).unwrap()
    }

    #[test]
    fn an_allowed_preflight_is_answered_and_an_allowed_origin_echoed() {
        let (c, v) = policy();
        let Outcome::Preflight(r) = check(
            &c,
            &v,
            &preflight_req("https://APP.test", "POST", Some("Content-Type")),
        )
        .unwrap() else {
            panic!("not answered")
        };
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://APP.test");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        let get = Request::get("/api")
            .header(header::ORIGIN, "https://app.test")
            .body(Body::Empty)
            .unwrap();
        let Ok(Outcome::Continue(Some(origin))) = check(&c, &v, &get) else {
            panic!("origin not allowed")
        };
        let mut h = http::HeaderMap::new();
        after(&mut h, &c, &v, Some(origin));
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        assert_eq!(h[header::VARY], "Origin");
    }

    #[test]
    fn refused_for_another_origin_method_or_header() {
        let (c, v) = policy();
        for req in [
            preflight_req("https://evil.test", "GET", None),
            preflight_req("https://app.test", "DELETE", None),
            preflight_req("https://app.test", "GET", Some("x-secret")),
        ] {
            let r = check(&c, &v, &req).unwrap_err();
            assert_eq!(r.refusal, Refusal::Forbidden("cors_denied"));
            assert_eq!(r.event, "cors.refused");
        }
        // An actual request from another origin goes on, without CORS headers.
        let get = Request::get("/")
            .header(header::ORIGIN, "https://evil.test")
            .body(Body::Empty)
            .unwrap();
        assert!(matches!(check(&c, &v, &get), Ok(Outcome::Continue(None))));
        let mut h = http::HeaderMap::new();
        after(&mut h, &c, &v, None);
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn bad_input_is_refused_not_crashed() {
        let (c, v) = policy();
        // A method token that is not a method, a header list that is not text.
        let r = check(&c, &v, &preflight_req("https://app.test", "G E T", None));
        assert!(r.is_err());
        let mut req = preflight_req("https://app.test", "GET", None);
        req.headers_mut().insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_bytes(b"x-\xff").unwrap(),
        );
        assert!(check(&c, &v, &req).is_err());
        // An empty entry in the list is skipped.
        let ok = preflight_req("https://app.test", "GET", Some("content-type, ,"));
        assert!(check(&c, &v, &ok).is_ok());
    }
}
