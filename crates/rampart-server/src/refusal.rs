//! Answers the edge gives itself (errors and refusals): a short JSON body naming the
//! error and the request ID, never the cause. The cause is logged once, where it happened.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::Body;

/// What went wrong, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No route matches (404).
    NotFound,
    /// Host not in `allowed_hosts` (421).
    Misdirected,
    /// Malformed request (400).
    BadRequest,
    /// Method not allowed for this handler (405).
    MethodNotAllowed,
    /// Upstream unreachable or failed (502).
    BadGateway,
    /// Upstream did not answer in time (504).
    GatewayTimeout,
}

impl Refusal {
    /// The status code.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BadGateway => StatusCode::BAD_GATEWAY,
            Refusal::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The machine-readable error name.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::Misdirected => "misdirected_request",
            Refusal::BadRequest => "bad_request",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::BadGateway => "bad_gateway",
            Refusal::GatewayTimeout => "gateway_timeout",
        }
    }

    /// The response: status, JSON body, no caching.
    pub fn response(self, request_id: &HeaderValue) -> Response<Body> {
        // Request IDs are restricted to [A-Za-z0-9._:-], so they need no JSON escaping.
        let id = request_id.to_str().unwrap_or_default();
        let body = format!(
            "{{\"error\":\"{}\",\"request_id\":\"{id}\"}}\n",
            self.code()
        );
        let mut resp = Response::new(Body::full(body));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self == Refusal::MethodNotAllowed {
            h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        resp
    }
}
