//! Answers the edge gives itself (errors and refusals): a short JSON body naming the
//! error and the request ID, never the cause. The cause is logged once, where it happened;
//! policy refusals also emit an audit event (see [`crate::audit`]).

use http::{header, HeaderValue, Response, StatusCode};

use crate::wire::body::Body;

/// What went wrong, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No route matches (404).
    NotFound,
    /// Host not in `allowed_hosts` (421).
    Misdirected,
    /// Malformed request (400), with a code naming what was malformed.
    BadRequest(&'static str),
    /// Method not allowed (405), with the `Allow` value.
    MethodNotAllowed(HeaderValue),
    /// Upstream unreachable or failed (502).
    BadGateway,
    /// Upstream did not answer in time (504).
    GatewayTimeout,
    /// No credentials (401), with the `WWW-Authenticate` challenge.
    Unauthorized(HeaderValue),
    /// Refused by policy (403), with a code naming the policy.
    Forbidden(&'static str),
    /// Request body over the route's limit (413).
    PayloadTooLarge,
    /// Rate limited (429).
    RateLimited {
        /// Seconds until a request would be allowed.
        retry_after: u64,
        /// The quota (burst + 1).
        limit: u32,
        /// Seconds until the quota is whole again.
        reset: u64,
    },
    /// Account locked after failed logins (429 or 423).
    Locked {
        /// 429 or 423.
        status: u16,
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// A `Range` outside the file (416), with the file's length.
    RangeNotSatisfiable(u64),
    /// An unsupported media type (415), e.g. a CSP report that is not a report.
    UnsupportedMediaType,
    /// The request head is over `max_header_size` (431).
    HeadersTooLarge,
    /// The client's request body stalled (408); the connection is closed after.
    RequestTimeout,
    /// A limit with `on_state_error = "deny"` while the shared state is unreachable (503).
    StateUnavailable,
    /// A bug: the request path panicked (500).
    Internal,
    /// The route's feature is not in the license (`license.feature_status`: 403 or 402).
    NotLicensed(u16),
}

impl Refusal {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BadGateway => StatusCode::BAD_GATEWAY,
            Refusal::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Locked { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::TOO_MANY_REQUESTS)
            }
            Refusal::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Refusal::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::NotLicensed(s) => StatusCode::from_u16(*s).unwrap_or(StatusCode::FORBIDDEN),
        }
    }

    /// The machine-readable error name.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::Misdirected => "misdirected_request",
            Refusal::BadRequest(c) | Refusal::Forbidden(c) => c,
            Refusal::MethodNotAllowed(_) => "method_not_allowed",
            Refusal::BadGateway => "bad_gateway",
            Refusal::GatewayTimeout => "gateway_timeout",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::PayloadTooLarge => "payload_too_large",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Locked { .. } => "account_locked",
            Refusal::RangeNotSatisfiable(_) => "range_not_satisfiable",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::HeadersTooLarge => "headers_too_large",
            Refusal::RequestTimeout => "request_timeout",
            Refusal::StateUnavailable => "state_unavailable",
            Refusal::Internal => "internal_error",
            Refusal::NotLicensed(_) => "feature_not_licensed",
        }
    }

    /// Whether a policy refused (audited and counted), as opposed to a plain error.
    pub fn is_policy(&self) -> bool {
        !matches!(
            self,
            Refusal::NotFound
                | Refusal::Misdirected
                | Refusal::BadGateway
                | Refusal::GatewayTimeout
                | Refusal::BadRequest("bad_request" | "bad_body")
                | Refusal::RangeNotSatisfiable(_)
                | Refusal::RequestTimeout
                | Refusal::Internal
        )
    }

    /// The gRPC status code a gRPC client is told instead of the HTTP status.
    pub fn grpc_status(&self) -> u8 {
        // https://grpc.github.io/grpc/core/md_doc_statuscodes.html
        match self {
            Refusal::NotFound | Refusal::MethodNotAllowed(_) => 12, // UNIMPLEMENTED
            Refusal::BadRequest(_) | Refusal::UnsupportedMediaType => 3, // INVALID_ARGUMENT
            Refusal::Misdirected | Refusal::BadGateway | Refusal::StateUnavailable => 14, // UNAVAILABLE
            Refusal::GatewayTimeout | Refusal::RequestTimeout => 4, // DEADLINE_EXCEEDED
            Refusal::Unauthorized(_) => 16,                         // UNAUTHENTICATED
            Refusal::Forbidden(_) | Refusal::NotLicensed(_) => 7,   // PERMISSION_DENIED
            Refusal::PayloadTooLarge
            | Refusal::RateLimited { .. }
            | Refusal::Locked { .. }
            | Refusal::HeadersTooLarge => 8, // RESOURCE_EXHAUSTED
            Refusal::RangeNotSatisfiable(_) => 11,                  // OUT_OF_RANGE
            Refusal::Internal => 13,                                // INTERNAL
        }
    }

    /// The answer to a gRPC call (`Content-Type: application/grpc…`): HTTP 200 with no
    /// body and the refusal in `grpc-status` and `grpc-message` (a "trailers-only"
    /// response, what gRPC clients read), plus the headers the status calls for
    /// (`Retry-After`, `WWW-Authenticate`).
    pub fn grpc_response(&self, request_id: &HeaderValue) -> Response<Body> {
        let mut resp = self.response(request_id);
        *resp.body_mut() = Body::default();
        *resp.status_mut() = StatusCode::OK;
        let id = request_id.to_str().unwrap_or_default();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(
            "grpc-status",
            HeaderValue::from(u16::from(self.grpc_status())),
        );
        // Codes and request ids are printable ASCII without '%': no percent-encoding.
        if let Ok(v) = HeaderValue::from_str(&format!("{} (request {id})", self.code())) {
            h.insert("grpc-message", v);
        }
        h.remove(header::CONNECTION);
        resp
    }

    /// The response: status, JSON body, no caching, and the headers the status calls for.
    pub fn response(&self, request_id: &HeaderValue) -> Response<Body> {
        // Request IDs are restricted to [A-Za-z0-9._:-] and codes are fixed identifiers,
        // so neither needs JSON escaping.
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
        match self {
            Refusal::MethodNotAllowed(allow) => {
                h.insert(header::ALLOW, allow.clone());
            }
            Refusal::Unauthorized(challenge) => {
                h.insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            Refusal::RateLimited {
                retry_after,
                limit,
                reset,
            } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                h.insert("ratelimit-limit", HeaderValue::from(*limit));
                h.insert("ratelimit-remaining", HeaderValue::from(0u32));
                h.insert("ratelimit-reset", HeaderValue::from(*reset));
            }
            Refusal::Locked { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Refusal::StateUnavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            }
            Refusal::RequestTimeout | Refusal::BadRequest("bad_body") => {
                // The request's body is unread or broken: nothing after it can be framed.
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Refusal::RangeNotSatisfiable(len) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        resp
    }
}
