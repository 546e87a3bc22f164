//! Response header policy: security headers set (replacing any upstream value), banner
//! headers removed, HSTS on HTTPS responses only, and rampart's own versionless `Server`.

use http::header::{self, HeaderMap, HeaderValue};
use rampart_config::runtime::HeaderPolicy;

/// Applies `policy` to a response's headers.
pub fn apply(h: &mut HeaderMap, policy: &HeaderPolicy, https: bool) {
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
        h.insert(name.clone(), value.clone());
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
