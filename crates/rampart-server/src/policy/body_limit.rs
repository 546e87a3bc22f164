//! Request body limit per route (`body_limit`, 10 MB by default): a `Content-Length` over
//! it is refused before a byte is read; a body of unknown length is counted as it streams
//! and fails past the limit (the upstream sees the request aborted, never a truncated
//! body), raising a flag so the client gets 413.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::{header, Request};

use super::refused::{refuse, Refused};
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// Applies `limit` to `req`'s body. Returns the flag a streamed body raises when it goes
/// over (`None` when the length was known, or there is no body).
///
/// # Errors
/// 413 for a `Content-Length` over the limit (audit `request.too_large`).
pub fn check(limit: u64, req: &mut Request<Body>) -> Result<Option<Arc<AtomicBool>>, Refused> {
    if http_body::Body::is_end_stream(req.body()) {
        return Ok(None);
    }
    match req.headers().get(header::CONTENT_LENGTH) {
        Some(cl) => {
            // hyper has checked the value; a body cannot exceed its Content-Length.
            let n: u64 = cl.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            if n > limit {
                return Err(refuse(
                    Refusal::PayloadTooLarge,
                    "request.too_large",
                    format!("Content-Length {n} over the route's limit of {limit}"),
                ));
            }
            Ok(None)
        }
        None => {
            let flag = Arc::new(AtomicBool::new(false));
            let inner = std::mem::take(req.body_mut());
            *req.body_mut() = Body::Limited(Box::new(inner), limit, flag.clone());
            Ok(Some(flag))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use http_body_util::BodyExt as _;

    use super::*;

    fn post(body: &'static str, length: Option<&str>) -> Request<Body> {
        let mut b = Request::post("/").body(Body::full(body)).unwrap();
        if let Some(l) = length {
            b.headers_mut()
                .insert(header::CONTENT_LENGTH, l.parse().unwrap());
        }
        b
    }

    #[tokio::test]
    async fn allowed_at_the_limit_known_or_streamed() {
        let mut req = post("12345", Some("5"));
        assert!(check(5, &mut req).unwrap().is_none());
        let mut req = post("12345", None);
        let flag = check(5, &mut req).unwrap().unwrap();
        let got = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"12345");
        assert!(!flag.load(Ordering::Relaxed));
        // No body: nothing to limit.
        let mut req = Request::get("/").body(Body::Empty).unwrap();
        assert!(check(0, &mut req).unwrap().is_none());
    }

    #[tokio::test]
    async fn refused_over_the_limit_known_or_streamed() {
        let mut req = post("123456", Some("6"));
        let r = check(5, &mut req).unwrap_err();
        assert_eq!(r.refusal, Refusal::PayloadTooLarge);
        assert_eq!(r.event, "request.too_large");
        let mut req = post("123456", None);
        let flag = check(5, &mut req).unwrap().unwrap();
        assert!(req.into_body().collect().await.is_err());
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn an_unparsable_length_is_left_to_the_codec() {
        // hyper refuses a bad Content-Length before any policy; here it counts as 0.
        let mut req = post("x", Some("abc"));
        assert!(check(0, &mut req).unwrap().is_none());
    }
}
