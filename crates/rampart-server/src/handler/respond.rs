//! The answers a route gives itself: a redirect (`redirect = { to, status, keep_path }`)
//! and a fixed response (`respond = { status, body, content_type }`).

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// A redirect to `to`; with `keep_path`, the request's path below the route (`rest`) and
/// its query are appended.
///
/// # Errors
/// 400 when the location is not a valid header value (a control byte in the path).
pub fn redirect(
    to: &str,
    status: u16,
    keep_path: bool,
    rest: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Refusal> {
    let mut location = to.to_owned();
    if keep_path {
        location.push_str(rest.trim_start_matches(if to.ends_with('/') { "/" } else { "" }));
        if let Some(q) = query {
            location.push('?');
            location.push_str(q);
        }
    }
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|_| Refusal::BadRequest("bad_request"))?,
    );
    Ok(resp)
}

/// A fixed answer (no body for HEAD, its length either way).
pub fn fixed(
    status: u16,
    body: &str,
    content_type: &HeaderValue,
    method: &Method,
) -> Response<Body> {
    let mut resp = Response::new(if method == Method::HEAD {
        Body::Empty
    } else {
        Body::full(body.to_owned())
    });
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type.clone());
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_path_and_query_when_asked() {
        let r = redirect("https://new.test/", 308, true, "/a/b", Some("x=1")).unwrap();
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()[header::LOCATION], "https://new.test/a/b?x=1");
        let r = redirect("https://new.test/base", 301, false, "/a", Some("x=1")).unwrap();
        assert_eq!(r.headers()[header::LOCATION], "https://new.test/base");
        // A status that is not one becomes 301; a control byte in the location is a 400.
        assert_eq!(redirect("/x", 9999, false, "", None).unwrap().status(), 301);
        assert_eq!(
            redirect("/x", 302, true, "/a\nb", None).unwrap_err(),
            Refusal::BadRequest("bad_request")
        );
    }

    #[test]
    fn fixed_answers_have_no_body_for_head() {
        let body = "ok";
        let ct = HeaderValue::from_static("text/plain");
        let r = fixed(201, body, &ct, &Method::GET);
        assert_eq!(
            (r.status().as_u16(), &r.headers()[header::CONTENT_LENGTH]),
            (201, &HeaderValue::from(2))
        );
        let r = fixed(200, body, &ct, &Method::HEAD);
        assert!(matches!(r.body(), Body::Empty));
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "2");
    }
}
