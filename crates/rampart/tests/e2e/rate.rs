//! Rate limits as the guides mean them (`N/period` admits N at once), and the policy order:
//! limits that need no identity, and the lockout, run before credentials are checked, so
//! guessing keys or tokens is throttled.

use http::Request;
use rampart_test_support::client::{self, Conn};
use rampart_test_support::upstream::Upstream;

use crate::harness::start;

async fn statuses(
    conn: &mut Conn,
    n: usize,
    make: impl Fn() -> Request<client::ReqBody>,
) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(conn.send(make()).await.unwrap().status.as_u16());
    }
    out
}

fn get(path: &str) -> Request<client::ReqBody> {
    client::get("h", path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_rate_classes_admit_exactly_n_at_once() {
    let edge = start(
        r#"
[server]
http = "127.0.0.1:0"
[limits.login]
rate = "5/minute"
[limits.reads]
rate = "100/m"
[limits.writes]
rate = "30/min"
[limits.hourly]
rate = "500/h"
[limits.strict]
rate = "2/m"
burst = 0
[[routes]]
path = "/login"
limit = "login"
respond = { body = "ok" }
[[routes]]
path = "/reads"
limit = "reads"
respond = { body = "ok" }
[[routes]]
path = "/writes"
limit = "writes"
respond = { body = "ok" }
[[routes]]
path = "/hourly"
limit = "hourly"
respond = { body = "ok" }
[[routes]]
path = "/strict"
limit = "strict"
respond = { body = "ok" }
"#,
    )
    .await;
    let mut conn = Conn::plain(edge.http()).await;
    for (path, n) in [
        ("/login", 5),
        ("/reads", 100),
        ("/writes", 30),
        ("/hourly", 500),
    ] {
        let got = statuses(&mut conn, n + 1, || get(path)).await;
        let ok = got.iter().filter(|s| **s == 200).count();
        assert_eq!(ok, n, "{path}: {got:?}");
        assert_eq!(*got.last().unwrap(), 429, "{path}: request N+1");
    }
    // `burst = 0` keeps nginx's strict spacing: one, then wait an interval (30 s).
    assert_eq!(statuses(&mut conn, 2, || get("/strict")).await, [200, 429]);
    let r = conn.send(get("/login")).await.unwrap();
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

const KEY: &str = "good-key-0123456789abcdef";

async fn order_edge(up: &Upstream) -> crate::harness::TestEdge {
    start(&format!(
        r#"
[server]
http = "127.0.0.1:0"
[upstreams.app]
servers = ["{up}"]
[api_keys]
keys = [{{ name = "ci", key = "{KEY}" }}]
[limits.guard]
rate = "3/m"
[limits.per_user]
rate = "2/m"
key = "user_or_ip"
[limits.login]
rate = "3/m"
lockout = {{ failures = 100, for = "1m" }}
[[routes]]
path = "/ip-limited"
upstream = "app"
auth = ["api_key"]
limit = "guard"
[[routes]]
path = "/user-limited"
upstream = "app"
auth = ["api_key"]
limit = "per_user"
[[routes]]
path = "/login"
upstream = "app"
csrf = true
limit = "login"
[[routes]]
path = "/denied"
upstream = "app"
deny = ["127.0.0.0/8"]
body_limit = "10"
"#,
        up = up.authority()
    ))
    .await
}

fn with_key(path: &str, key: &str) -> Request<client::ReqBody> {
    Request::get(path)
        .header("host", "h")
        .header("x-api-key", key)
        .body(client::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_credentials_is_rate_limited_before_they_are_checked() {
    let up = Upstream::start("a").await;
    let edge = order_edge(&up).await;
    let mut conn = Conn::plain(edge.http()).await;
    // An IP-keyed limit counts bad keys: 403, 403, 403, then 429 without a key check.
    let bad = statuses(&mut conn, 5, || {
        with_key("/ip-limited", "wrong-key-0123456789abcdef")
    })
    .await;
    assert_eq!(bad, [403, 403, 403, 429, 429]);
    // A user-keyed limit counts a refused attempt by its anonymous key (the IP).
    let bad = statuses(&mut conn, 4, || {
        with_key("/user-limited", "wrong-key-0123456789abcdef")
    })
    .await;
    assert_eq!(bad, [403, 403, 429, 429]);
    // ... while a good key has its own bucket.
    let good = statuses(&mut conn, 3, || with_key("/user-limited", KEY)).await;
    assert_eq!(good, [200, 200, 429]);
    // A login route with CSRF: cross-site posts are throttled too (`verify --active`).
    let post = || {
        Request::post("/login")
            .header("host", "h")
            .header("content-type", "application/json")
            .body(client::full(r#"{"username":"a"}"#))
            .unwrap()
    };
    assert_eq!(statuses(&mut conn, 4, post).await, [403, 403, 403, 429]);
    assert_eq!(
        up.count(),
        2,
        "only the good key's requests reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_client_gets_403_before_its_body_is_judged() {
    let up = Upstream::start("a").await;
    let edge = order_edge(&up).await;
    let req = Request::post("/denied")
        .header("host", "h")
        .body(client::full(vec![b'x'; 100]))
        .unwrap();
    let r = client::plain(edge.http(), req).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "ip_denied");
    assert_eq!(up.count(), 0);
}
