//! Method allow-list per route (`methods`): another method gets 405 with `Allow`.

use http::{HeaderValue, Method};

use super::refused::{refuse, Refused};
use crate::wire::refusal::Refusal;

/// Checks `method` against the route's list (empty: every method).
///
/// # Errors
/// 405 `method_not_allowed` with `allow` as the `Allow` header (audit `method.denied`).
pub fn check(
    methods: &[Method],
    allow: Option<&HeaderValue>,
    method: &Method,
) -> Result<(), Refused> {
    if methods.is_empty() || methods.contains(method) {
        return Ok(());
    }
    let allow = allow
        .cloned()
        .unwrap_or(HeaderValue::from_static("GET, HEAD"));
    Err(refuse(
        Refusal::MethodNotAllowed(allow),
        "method.denied",
        format!("method {method} not allowed"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_when_listed_or_no_list() {
        assert!(check(&[], None, &Method::DELETE).is_ok());
        assert!(check(&[Method::GET, Method::POST], None, &Method::POST).is_ok());
    }

    #[test]
    fn refused_with_the_allow_header() {
        let allow = HeaderValue::from_static("GET, POST");
        let r = check(&[Method::GET, Method::POST], Some(&allow), &Method::PUT).unwrap_err();
        assert_eq!(r.refusal, Refusal::MethodNotAllowed(allow));
        assert_eq!(r.event, "method.denied");
        // An extension method the list does not name is refused like any other.
        let odd = Method::from_bytes(b"PURGE").unwrap();
        let r = check(&[Method::GET], None, &odd).unwrap_err();
        assert_eq!(
            r.refusal,
            Refusal::MethodNotAllowed(HeaderValue::from_static("GET, HEAD"))
        );
    }
}
