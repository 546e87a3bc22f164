//! Response header policy: security headers set (replacing any upstream value), banner
//! headers removed, HSTS on HTTPS responses only, and rampart's own versionless `Server`.

use http::header::{self, HeaderMap, HeaderValue};
use rampart_config::runtime::HeaderPolicy;

/// Applies `policy` to a response's headers.
pub fn apply(h: &mut HeaderMap, policy: &HeaderPolicy, https: bool) {
    for name in &policy.remove {
        h.remove(name);
    }
    for (name, value) in &policy.set {
        h.insert(name.clone(), value.clone());
    }
    if https {
        if let Some(v) = &policy.hsts {
            h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
    if !h.contains_key(header::SERVER) {
        h.insert(header::SERVER, HeaderValue::from_static("rampart"));
    }
}
