//! Static files: index, SPA fallback for navigations only, no escape from the root.

use http::Request;
use rampart_test_support::client::{self, get};
use rampart_test_support::TempDir;

use crate::harness::start_in;

async fn site() -> crate::harness::TestEdge {
    let dir = TempDir::new("static");
    dir.write("www/index.html", "<h1>home</h1>");
    dir.write("www/app.js", "console.log(1)");
    dir.write("www/docs/index.html", "docs");
    dir.write("www/.env", "SECRET=1");
    dir.write("www/.well-known/security.txt", "Contact: x");
    dir.write("secret.txt", "outside the root");
    std::os::unix::fs::symlink(
        dir.path().join("secret.txt"),
        dir.path().join("www/link.txt"),
    )
    .unwrap();
    let toml = "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\npath = \"/\"\nstatic = \"www\"\nspa_fallback = \"index.html\"\n";
    start_in(dir, toml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_index_and_types() {
    let edge = site().await;
    let r = client::plain(edge.http(), get("h", "/")).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "<h1>home</h1>")
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = client::plain(edge.http(), get("h", "/app.js")).await;
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("content-length"), Some("14"));
    let r = client::plain(edge.http(), get("h", "/docs")).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (301, Some("/docs/"))
    );
    let r = client::plain(edge.http(), get("h", "/docs/")).await;
    assert_eq!(r.text(), "docs");
    let r = client::plain(
        edge.http(),
        Request::head("/app.js")
            .header("host", "h")
            .body(client::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    let r = client::plain(
        edge.http(),
        Request::post("/app.js")
            .header("host", "h")
            .body(client::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_fallback_only_for_navigations() {
    let edge = site().await;
    let nav = Request::get("/dashboard/settings")
        .header("host", "h")
        .header("accept", "text/html,*/*")
        .body(client::empty())
        .unwrap();
    let r = client::plain(edge.http(), nav).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "<h1>home</h1>")
    );
    let script = Request::get("/assets/missing.js")
        .header("host", "h")
        .header("accept", "*/*")
        .header("sec-fetch-mode", "no-cors")
        .body(client::empty())
        .unwrap();
    let r = client::plain(edge.http(), script).await;
    assert_eq!(r.status, 404, "a missing asset is a real 404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root_or_hidden_is_served() {
    let edge = site().await;
    for path in [
        "/.env",
        "/link.txt",
        "/%2e%2e/secret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/.%65nv",
    ] {
        let r = client::plain(edge.http(), get("h", path)).await;
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("outside"),
            "{path} leaked"
        );
    }
    let raw = client::raw(
        edge.http(),
        b"GET /../secret.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    let r = client::plain(edge.http(), get("h", "/.well-known/security.txt")).await;
    assert_eq!(r.text(), "Contact: x", ".well-known is served");
}
