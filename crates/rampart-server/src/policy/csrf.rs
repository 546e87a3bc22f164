//! CSRF, double-submit cookie (`csrf = true` on a route, `[csrf]` for names): an unsafe
//! request (POST, PUT, PATCH, DELETE) without a bearer token or API key must come from the
//! request's own origin (or `allowed_origins`) and echo the cookie's value in the header
//! (403 `csrf_origin` / `csrf_failed`). A response to a request without the cookie sets one
//! (32 random bytes, hex).

use http::header::{self, HeaderValue};
use http::{Method, Request};
use rampart_config::policy::Csrf;

use super::auth::{self, Identity};
use super::refused::{refuse, Refused};
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

fn same_origin(origin: &str, req: &Request<Body>, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = req
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        });
    let Some(host) = host else { return false };
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    rest.eq_ignore_ascii_case(host)
}

/// Whether the request carries `Authorization: Bearer <something>`.
fn bearer(h: &http::HeaderMap) -> bool {
    h.get(header::AUTHORIZATION).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() > 7
            && v[..7].eq_ignore_ascii_case(b"bearer ")
            && v[7..].iter().any(|b| !b.is_ascii_whitespace())
    })
}

/// Checks `req`, authenticated as `identity`. Returns whether the response must set the
/// cookie (the request had none).
///
/// # Errors
/// 403 `csrf_origin` (cross-origin or opaque origin) or `csrf_failed` (cookie or header
/// missing, or not equal).
pub fn check(c: &Csrf, req: &Request<Body>, identity: Option<&Identity>) -> Result<bool, Refused> {
    let cookie_value = cookie(req.headers(), &c.cookie);
    let set_cookie = cookie_value.is_none_or(str::is_empty);
    let unsafe_method = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    // Requests authenticated by a bearer token or an API key carry no ambient credential
    // a third-party page could borrow.
    if !unsafe_method || identity.is_some() || (c.exempt_bearer && bearer(req.headers())) {
        return Ok(set_cookie);
    }
    let denied = |code: &'static str, why: &str| {
        refuse(Refusal::Forbidden(code), "csrf.refused", why.to_owned())
    };
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let r = req.headers().get(header::REFERER)?.to_str().ok()?;
            let u: http::Uri = r.parse().ok()?;
            Some(format!("{}://{}", u.scheme_str()?, u.authority()?))
        });
    if let Some(o) = origin {
        if o == "null" {
            return Err(denied("csrf_origin", "opaque origin"));
        }
        if !same_origin(&o, req, &c.allowed_origins) {
            return Err(denied("csrf_origin", "cross-origin unsafe request"));
        }
    }
    let Some(cookie_value) = cookie_value.filter(|v| !v.is_empty()) else {
        return Err(denied("csrf_failed", "no CSRF cookie"));
    };
    let Some(sent) = req.headers().get(&c.header) else {
        return Err(denied("csrf_failed", "no CSRF header"));
    };
    if !auth::ct_eq(sent.as_bytes(), cookie_value.as_bytes()) {
        return Err(denied(
            "csrf_failed",
            "CSRF header does not match the cookie",
        ));
    }
    Ok(set_cookie)
}

/// Sets a fresh CSRF cookie on a response.
pub fn issue(h: &mut http::HeaderMap, c: &Csrf, rng: &aws_lc_rs::rand::SystemRandom) {
    let mut token = [0u8; 32];
    if aws_lc_rs::rand::SecureRandom::fill(rng, &mut token).is_ok() {
        let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let v = format!("{}={hex}; Path=/; Secure; SameSite=Lax", c.cookie);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::post("/form").header(header::HOST, "app.test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::Empty).unwrap()
    }

    fn code(r: Result<bool, Refused>) -> Refusal {
        r.unwrap_err().refusal
    }

    #[test]
    fn allowed_with_matching_cookie_and_header_or_a_token() {
        let c = Csrf::default();
        let req = post(&[
            ("cookie", "a=1; csrf_token=abc"),
            ("x-csrf-token", "abc"),
            ("origin", "https://app.test"),
        ]);
        assert!(!check(&c, &req, None).unwrap(), "the cookie is there");
        // Safe methods pass and get the cookie when they have none.
        let get = Request::get("/").body(Body::Empty).unwrap();
        assert!(check(&c, &get, None).unwrap(), "no cookie yet: set one");
        // A bearer-authenticated request carries no ambient credential.
        let id = Identity {
            method: "jwt",
            subject: "u".into(),
            claims: serde_json::Map::new(),
        };
        assert!(check(&c, &post(&[]), Some(&id)).is_ok());
        // An unverified bearer header passes only with exempt_bearer.
        let bearer = post(&[("authorization", "Bearer abc.def")]);
        assert!(check(&c, &bearer, None).is_err());
        let exempt = Csrf {
            exempt_bearer: true,
            ..Csrf::default()
        };
        assert!(check(&exempt, &bearer, None).is_ok());
        assert!(check(&exempt, &post(&[("authorization", "Bearer ")]), None).is_err());
        assert!(check(&exempt, &post(&[("authorization", "Basic dTpw")]), None).is_err());
        // An origin in allowed_origins counts as the request's own.
        let c = Csrf {
            allowed_origins: vec!["https://admin.test".into()],
            ..Csrf::default()
        };
        let req = post(&[
            ("cookie", "csrf_token=abc"),
            ("x-csrf-token", "abc"),
            ("origin", "https://admin.test"),
        ]);
        assert!(check(&c, &req, None).is_ok());
    }

    #[test]
    fn refused_without_cookie_header_or_from_another_origin() {
        let c = Csrf::default();
        let failed = Refusal::Forbidden("csrf_failed");
        assert_eq!(code(check(&c, &post(&[]), None)), failed);
        assert_eq!(
            code(check(&c, &post(&[("cookie", "csrf_token=abc")]), None)),
            failed
        );
        let wrong = post(&[("cookie", "csrf_token=abc"), ("x-csrf-token", "abd")]);
        assert_eq!(code(check(&c, &wrong, None)), failed);
        let cross = post(&[
            ("cookie", "csrf_token=abc"),
            ("x-csrf-token", "abc"),
            ("origin", "https://evil.test"),
        ]);
        assert_eq!(
            code(check(&c, &cross, None)),
            Refusal::Forbidden("csrf_origin")
        );
        // Without Origin, the Referer's origin is judged.
        let referred = post(&[
            ("cookie", "csrf_token=abc"),
            ("x-csrf-token", "abc"),
            ("referer", "https://evil.test/page"),
        ]);
        assert_eq!(
            code(check(&c, &referred, None)),
            Refusal::Forbidden("csrf_origin")
        );
        let opaque = post(&[("origin", "null")]);
        assert_eq!(
            code(check(&c, &opaque, None)),
            Refusal::Forbidden("csrf_origin")
        );
    }

    #[test]
    fn bad_input_is_refused_not_crashed() {
        let c = Csrf::default();
        // An empty cookie, a quoted one, a Referer that is no URL.
        assert_eq!(
            code(check(
                &c,
                &post(&[("cookie", "csrf_token="), ("x-csrf-token", "")]),
                None
            )),
            Refusal::Forbidden("csrf_failed")
        );
        let quoted = post(&[("cookie", "csrf_token=\"abc\""), ("x-csrf-token", "abc")]);
        assert!(check(&c, &quoted, None).is_ok());
        let junk = post(&[
            ("referer", "::::"),
            ("cookie", "csrf_token=a"),
            ("x-csrf-token", "a"),
        ]);
        assert!(check(&c, &junk, None).is_ok());
    }

    #[test]
    fn issued_cookies_are_fresh_and_flagged() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut h = http::HeaderMap::new();
        issue(&mut h, &Csrf::default(), &rng);
        issue(&mut h, &Csrf::default(), &rng);
        let v: Vec<&str> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(v.len(), 2);
        assert_ne!(v[0], v[1]);
        assert!(
            v[0].starts_with("csrf_token=") && v[0].ends_with("; Path=/; Secure; SameSite=Lax")
        );
        assert_eq!(
            v[0].len(),
            "csrf_token=".len() + 64 + "; Path=/; Secure; SameSite=Lax".len()
        );
    }
}
