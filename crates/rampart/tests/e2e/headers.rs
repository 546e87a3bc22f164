//! Security headers: strict defaults, replacing upstream values, banners removed, HSTS
//! only over HTTPS, per-route overrides.

use rampart_test_support::client::{self, get};
use rampart_test_support::upstream::Upstream;

use crate::harness::{proxy_toml, start};

const DEFAULTS: [(&str, &str); 8] = [
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'; report-uri /csp-report; report-to csp-endpoint",
    ),
    ("reporting-endpoints", "csp-endpoint=\"/csp-report\""),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_replace_upstream_values_and_banners_are_removed() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let r = client::plain(edge.http(), get("h", "/banner")).await;
    for (name, value) in DEFAULTS {
        assert_eq!(r.header(name), Some(value), "{name}");
        assert_eq!(r.header_count(name), 1, "{name} duplicated");
    }
    assert_eq!(
        r.header("server"),
        Some("rampart"),
        "no version, no upstream banner"
    );
    assert!(r.header("x-powered-by").is_none());
    assert!(r.header("x-aspnet-version").is_none());
    assert!(
        r.header("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
    assert_eq!(r.header("x-app-header"), Some("kept"));
    assert_eq!(r.header_count("date"), 1, "the upstream's Date, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_same_headers() {
    let edge = start(&proxy_toml(
        &[rampart_test_support::dead_addr().to_string()],
        "",
        "",
    ))
    .await;
    let r = client::plain(edge.http(), get("h", "/")).await;
    assert_eq!(r.status, 502);
    for (name, value) in DEFAULTS {
        assert_eq!(r.header(name), Some(value), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_per_route_and_globally() {
    let up = Upstream::start("a").await;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[headers]
csp = "default-src 'self'; img-src https:"
coep = "require-corp"
set = {{ "X-Team" = "web" }}
remove = ["X-App-Header"]
[upstreams.app]
servers = ["{0}"]
[[routes]]
path = "/embed/"
upstream = "app"
strip_prefix = true
headers = {{ frame_options = false, csp = false, hide_banners = false }}
[[routes]]
path = "/"
upstream = "app"
"#,
        up.authority()
    );
    let edge = start(&toml).await;
    let r = client::plain(edge.http(), get("h", "/banner")).await;
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'self'; img-src https:; report-uri /csp-report; report-to csp-endpoint")
    );
    assert_eq!(
        r.header("cross-origin-embedder-policy"),
        Some("require-corp")
    );
    assert_eq!(r.header("x-team"), Some("web"));
    assert!(r.header("x-app-header").is_none());
    let r = client::plain(edge.http(), get("h", "/embed/banner")).await;
    assert_eq!(
        r.header("x-frame-options"),
        Some("SAMEORIGIN"),
        "the upstream's own value passes when ours is off"
    );
    assert_eq!(r.header("content-security-policy"), Some("default-src *"));
    assert_eq!(
        r.header("x-powered-by"),
        Some("PHP/8.1.2"),
        "banners kept when hide_banners = false"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "other defaults stay on"
    );
}
