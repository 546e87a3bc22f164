//! Routing by host and path, redirects, fixed responses, allowed hosts, HTTPS redirect.

use http::{Request, StatusCode};
use rampart_test_support::client::{self, get};
use rampart_test_support::upstream::Upstream;

use crate::harness::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_then_longest_prefix_wins() {
    let (api, login, site, tenant) = (
        Upstream::start("api").await,
        Upstream::start("login").await,
        Upstream::start("site").await,
        Upstream::start("tenant").await,
    );
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[upstreams.api]
servers = ["{}"]
[upstreams.login]
servers = ["{}"]
[upstreams.site]
servers = ["{}"]
[upstreams.tenant]
servers = ["{}"]
[[routes]]
path = "/"
upstream = "site"
[[routes]]
path = "/api"
upstream = "api"
[[routes]]
path = "/api/auth/login"
exact = true
upstream = "login"
[[routes]]
host = "*.tenants.example"
path = "/"
upstream = "tenant"
[[routes]]
host = "status.example"
path = "/health"
respond = {{ status = 200, body = "fine", content_type = "text/plain" }}
"#,
        api.authority(),
        login.authority(),
        site.authority(),
        tenant.authority()
    );
    let edge = start(&toml).await;
    let who = |host: &'static str, path: &'static str| {
        let addr = edge.http();
        async move { client::plain(addr, get(host, path)).await }
    };
    assert_eq!(who("x", "/").await.header("x-upstream"), Some("site"));
    assert_eq!(who("x", "/api").await.header("x-upstream"), Some("api"));
    assert_eq!(
        who("x", "/api/users").await.header("x-upstream"),
        Some("api")
    );
    assert_eq!(
        who("x", "/apix").await.header("x-upstream"),
        Some("site"),
        "prefixes match whole segments"
    );
    assert_eq!(
        who("x", "/api/auth/login").await.header("x-upstream"),
        Some("login")
    );
    assert_eq!(
        who("x", "/api/auth/login/more").await.header("x-upstream"),
        Some("api"),
        "exact route only matches exactly"
    );
    assert_eq!(
        who("acme.tenants.example", "/api/users")
            .await
            .header("x-upstream"),
        Some("tenant"),
        "host beats path"
    );
    assert_eq!(
        who("ACME.Tenants.Example:8080", "/")
            .await
            .header("x-upstream"),
        Some("tenant"),
        "host match ignores case and port"
    );
    let r = who("status.example", "/health").await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "fine".to_owned()));
    assert_eq!(
        who("status.example", "/other").await.header("x-upstream"),
        Some("site"),
        "falls through to host-less routes"
    );
    // Normalised before matching: the encoded and dotted forms reach the same route, and the
    // upstream sees the normalised path.
    assert_eq!(who("x", "/%61pi/x").await.header("x-upstream"), Some("api"));
    assert_eq!(
        who("x", "/static/../api/y").await.header("x-upstream"),
        Some("api")
    );
    assert!(api.seen().iter().any(|s| s.uri == "/api/x"));
    assert!(api.seen().iter().any(|s| s.uri == "/api/y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_and_malformed_requests_get_json_refusals() {
    let toml = r#"
[server]
http = "127.0.0.1:0"
[[routes]]
host = "only.example"
path = "/"
respond = { body = "x" }
"#;
    let edge = start(toml).await;
    let r = client::plain(edge.http(), get("other.example", "/")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    let raw = rampart_test_support::client::raw(
        edge.http(),
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: only.example\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("\"error\":\"bad_request\""), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_routes() {
    let toml = r#"
[server]
http = "127.0.0.1:0"
[[routes]]
path = "/old"
redirect = "https://new.example/"
redirect_status = 308
redirect_keep_path = true
[[routes]]
path = "/"
redirect = "/elsewhere"
"#;
    let edge = start(toml).await;
    let r = client::plain(edge.http(), get("h", "/old/page?a=1")).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://new.example/page?a=1"));
    let r = client::plain(edge.http(), get("h", "/x")).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/elsewhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_hosts_get_421_and_never_reach_the_upstream() {
    let up = Upstream::start("a").await;
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nallowed_hosts = [\"app.example\", \"*.app.example\"]\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\n",
        up.authority()
    );
    let edge = start(&toml).await;
    assert_eq!(
        client::plain(edge.http(), get("app.example", "/"))
            .await
            .status,
        200
    );
    assert_eq!(
        client::plain(edge.http(), get("eu.app.example", "/"))
            .await
            .status,
        200
    );
    let r = client::plain(edge.http(), get("evil.example", "/")).await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(r.json()["error"], "misdirected_request");
    let r = client::plain(
        edge.http(),
        Request::get("/").body(client::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::MISDIRECTED_REQUEST,
        "a request without Host is refused too"
    );
    assert_eq!(up.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misdirected_close_drops_the_connection() {
    let toml = "[server]\nhttp = \"127.0.0.1:0\"\nallowed_hosts = [\"app.example\"]\nmisdirected = \"close\"\n[[routes]]\nrespond = { body = \"x\" }\n";
    let edge = start(toml).await;
    // Closed at once, not left hanging (a hanging server would time out here).
    let out = client::raw_until_closed(
        edge.http(),
        b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        std::time::Duration::from_secs(2),
    )
    .await;
    assert_eq!(out.as_deref(), Some(""), "closed with no answer at all");
    let out = client::raw(
        edge.http(),
        b"GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// `path_regex` routes (nginx's `location ~`) through the real edge: after the longest
/// prefix, in config order; `exact` and `prefix_priority` (`^~`) prefixes win over them; a
/// static regex route serves `root + path`, as nginx's `root` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_routes_match_as_nginx_does() {
    let (app, media) = (Upstream::start("app").await, Upstream::start("media").await);
    let root = rampart_test_support::TempDir::new("regex-root");
    root.write("img/logo.png", "PNG");
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[upstreams.app]
servers = ["{}"]
[upstreams.media]
servers = ["{}"]
[[routes]]
path = "/"
upstream = "app"
[[routes]]
path_regex = '(?i)\.(png|jpe?g)$'
static = "{}"
[[routes]]
path_regex = '^/api/v[0-9]+/media/'
upstream = "media"
[[routes]]
path = "/raw/"
prefix_priority = true
upstream = "app"
"#,
        app.authority(),
        media.authority(),
        root.path().display()
    );
    let edge = start(&toml).await;
    let go = |path: &'static str| {
        let addr = edge.http();
        async move { client::plain(addr, get("x", path)).await }
    };
    let r = go("/img/logo.png").await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "PNG".to_owned()));
    assert_eq!(go("/img/LOGO.PNG").await.status, StatusCode::NOT_FOUND);
    assert_eq!(go("/img/other.JPG").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        go("/api/v2/media/x").await.header("x-upstream"),
        Some("media")
    );
    assert_eq!(
        go("/api/vx/media/x").await.header("x-upstream"),
        Some("app")
    );
    assert_eq!(
        go("/raw/logo.png").await.header("x-upstream"),
        Some("app"),
        "prefix_priority beats the regex"
    );
    assert!(media.seen().iter().any(|s| s.uri == "/api/v2/media/x"));
}
