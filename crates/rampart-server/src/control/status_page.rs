//! The status page on the admin listener: `GET /status` is a page of rampart's own (no
//! external asset, its own strict CSP, works offline) that follows `GET /status/events`,
//! a Server-Sent Events stream of one snapshot a second; `GET /status/snapshot` is one
//! snapshot as JSON (the page's API, documented in the README).
//!
//! A snapshot: `{"ts", "version", "health": /health's body, "requests": [{"route",
//! "count"}], "refusals": [{"policy", "reason", "count"}], "upstreams": /upstreams' body,
//! "certificates": /certificates' body, "recent": [the last audit lines]}`. Counts are
//! totals since start; the page turns them into rates. The page and its two assets carry
//! no data and are served without the admin token (a browser navigation cannot send one);
//! the snapshot and the stream need it (the page sends it from the address's `#token=`
//! fragment, which never leaves the browser).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};

use super::live::Live;
use crate::wire::body::Body;

const PAGE: &str = include_str!("status_page/status.html");
const SCRIPT: &str = include_str!("status_page/status.js");
const STYLE: &str = include_str!("status_page/status.css");

/// The page's policy: its own script and style only, talking to its own origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the page's files (served without the admin token).
pub(crate) fn is_asset(path: &str) -> bool {
    matches!(path, "/status" | "/status/" | "/status.js" | "/status.css")
}

/// The page or one of its assets.
pub(crate) fn asset(path: &str) -> Response<Body> {
    let (body, kind) = match path {
        "/status.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/status.css" => (STYLE, "text/css; charset=utf-8"),
        _ => (PAGE, "text/html; charset=utf-8"),
    };
    let mut r = Response::new(Body::full(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `name{labels} value` lines of `family` in OpenMetrics text: (labels, value).
fn samples<'t>(text: &'t str, family: &str) -> Vec<(Vec<(&'t str, &'t str)>, f64)> {
    let prefix = format!("{family}{{");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let pairs = labels
                .split("\",")
                .filter_map(|kv| {
                    let (k, v) = kv.split_once("=\"")?;
                    Some((k, v.trim_end_matches('"')))
                })
                .collect();
            Some((pairs, value.trim().parse().ok()?))
        })
        .collect()
}

fn label<'a>(pairs: &[(&'a str, &'a str)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| *n == k).map_or("", |(_, v)| v)
}

/// One snapshot of the edge.
pub(crate) async fn snapshot(live: &Live) -> Value {
    let edge = live.edge();
    let text = crate::request::status::metrics_text(&edge);
    let mut routes: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for (l, v) in samples(&text, "http_requests_total") {
        *routes.entry(label(&l, "route").to_owned()).or_default() += v;
    }
    let requests: Vec<Value> = routes
        .into_iter()
        .map(|(route, count)| json!({"route": route, "count": count as u64}))
        .collect();
    let refusals: Vec<Value> = samples(&text, "rampart_refusals_total")
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(l, v)| {
            json!({"policy": label(&l, "policy"), "reason": label(&l, "reason"), "count": v as u64})
        })
        .collect();
    let health = match crate::request::status::health(&edge)
        .await
        .into_body()
        .collect()
        .await
    {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let recent: Vec<Value> = edge
        .logs
        .recent()
        .into_iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    json!({
        "ts": crate::state::persist::unix_ms(),
        "version": env!("CARGO_PKG_VERSION"),
        "health": health,
        "requests": requests,
        "refusals": refusals,
        "upstreams": crate::request::status::upstreams(&edge),
        "certificates": crate::request::status::certificates(&edge),
        "recent": recent,
    })
}

/// The SSE stream: a snapshot now and every second, until the client goes.
pub(crate) fn events(live: &Arc<Live>) -> Response<Body> {
    let live = Arc::downgrade(live);
    let stream = futures_util::stream::unfold(true, move |first| {
        let live = live.clone();
        async move {
            if !first {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let live = live.upgrade()?;
            let snap = snapshot(&live).await;
            let frame = http_body::Frame::data(Bytes::from(format!("data: {snap}\n\n")));
            Some((Ok::<_, crate::wire::body::BoxError>(frame), false))
        }
    });
    let mut r = Response::new(Body::stream(http_body_util::StreamBody::new(stream)));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_read_openmetrics_lines() {
        let text = "# TYPE http_requests counter\nhttp_requests_total{method=\"GET\",route=\"/api/\",status=\"200\"} 5\nhttp_requests_total{method=\"POST\",route=\"/api/\",status=\"429\"} 2\nother_total{route=\"/\"} 9\n";
        let s = samples(text, "http_requests_total");
        assert_eq!(s.len(), 2);
        assert_eq!(label(&s[0].0, "route"), "/api/");
        assert_eq!(label(&s[1].0, "status"), "429");
        assert_eq!(s[1].1, 2.0);
    }
}
