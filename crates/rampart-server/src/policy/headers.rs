//! Response header policy: security headers set (replacing any upstream value), banner
//! headers removed, HSTS on HTTPS responses only, and rampart's own versionless `Server`.

use http::header::{self, HeaderMap, HeaderValue};
use rampart_config::runtime::HeaderPolicy;

/// Applies `policy` to a response's headers.
pub fn apply(h: &mut HeaderMap, policy: &HeaderPolicy, https: bool) {
    apply_some(h, policy, https, true);
}

/// Applies `policy` to the answer of a gRPC call (`application/grpc`): the headers that
/// only a browser rendering a document reads (CSP, framing, Permissions-Policy, COOP/COEP,
/// CORP, Referrer-Policy) are left out, since a browser can neither make such a call from
/// a page (it needs HTTP/2 trailers; gRPC-Web is another content type) nor load it as a
/// document or a no-cors resource (a POST). `X-Content-Type-Options`, HSTS, the removals
/// and `Server` stay. Each header left out is one less HPACK encoding per call.
pub fn apply_grpc(h: &mut HeaderMap, policy: &HeaderPolicy, https: bool) {
    apply_some(h, policy, https, false);
}

fn apply_some(h: &mut HeaderMap, policy: &HeaderPolicy, https: bool, documents: bool) {
    // Remove only what is there: comparing names against the few response headers is
    // cheaper than a hash lookup per configured name.
    for name in &policy.remove {
        if h.keys().any(|k| k == name) {
            h.remove(name);
        }
    }
    // Room for every header set below, so the map grows at most once.
    h.reserve(policy.set.len() + 3);
    for (name, value) in &policy.set {
        if documents || name == header::X_CONTENT_TYPE_OPTIONS {
            h.insert(name.clone(), value.clone());
        }
    }
    // HSTS is the policy's: over plain HTTP (where browsers ignore it) an upstream's goes.
    if let Some(v) = &policy.hsts {
        if https {
            h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        } else {
            h.remove(header::STRICT_TRANSPORT_SECURITY);
        }
    }
    if !h.contains_key(header::SERVER) {
        h.insert(header::SERVER, HeaderValue::from_static("rampart"));
    }
}
