//! Request policies through the real edge, in front of a real upstream that records what
//! it saw: every refusal is checked for its status, headers and JSON body, and for the
//! upstream having seen nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rampart_test_support::client::{self, get, Conn, ReqBody};
use rampart_test_support::upstream::Upstream;
use serde_json::json;

use crate::harness::{start, TestEdge};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
const CI_KEY: &str = "ci-key-0123456789abcdef";
const OLD_KEY: &str = "old-key-0123456789abcdef";

fn config(up: &Upstream, server_extra: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
{server_extra}

[upstreams.app]
servers = ["{up}"]

[api_keys]
keys = [{{ name = "ci", key = "{CI_KEY}" }}, {{ name = "old", key = "{OLD_KEY}" }}]

[jwt]
alg = "HS256"
secret = "{SECRET}"
issuer = "https://auth.test"
audience = ["api"]
revoke_before = "2020-01-01T00:00:00Z"
forward = {{ tenant = "X-Auth-Tenant" }}

[limits.tight]
rate = "1/m"
burst = 2

[limits.reads]
rate = "100/m"
burst = 100
methods = ["GET", "HEAD"]

[limits.writes]
rate = "1/m"
methods = ["POST"]

[limits.per_user]
rate = "1/m"
key = "user_or_ip"

[limits.login]
rate = "1000/m"
burst = 1000
lockout = {{ failures = 3, for = "15m" }}

[cors.web]
origins = ["https://app.test"]
methods = ["GET", "POST", "PUT"]
headers = ["Content-Type", "X-CSRF-Token"]
credentials = true
max_age = "10m"
expose = ["X-Request-ID"]

[[routes]]
path = "/api/"
upstream = "app"
auth = ["jwt", "api_key"]

[[routes]]
path = "/stripped/"
upstream = "app"
auth = ["jwt", "api_key"]
strip_credentials = true

[[routes]]
path = "/opt/"
upstream = "app"
auth = ["jwt"]
auth_optional = true

[[routes]]
path = "/limited/"
upstream = "app"
limit = "tight"

[[routes]]
path = "/classes/"
upstream = "app"
limit = ["reads", "writes"]

[[routes]]
path = "/user-limited/"
upstream = "app"
auth = ["api_key"]
auth_optional = true
limit = "per_user"

[[routes]]
path = "/status/"
upstream = "app"
limit = "login"

[[routes]]
path = "/cors/"
upstream = "app"
cors = "web"

[[routes]]
path = "/form/"
upstream = "app"
csrf = true
auth = ["api_key"]
auth_optional = true

[[routes]]
path = "/upload/"
upstream = "app"
strip_prefix = true
body_limit = "1KB"

[[routes]]
path = "/internal/"
upstream = "app"
allow = ["127.0.0.1"]

[[routes]]
path = "/blocked/"
upstream = "app"
deny = ["127.0.0.0/8"]

[[routes]]
path = "/tenant/"
upstream = "app"
auth = ["jwt"]
tenant = {{ claim = "tenant" }}

[[routes]]
path = "/t2/"
upstream = "app"
tenant = {{ pattern = "[a-z]{{3,8}}" }}

[[routes]]
path = "/ro/"
upstream = "app"
methods = ["GET"]

[[routes]]
path = "/"
upstream = "app"
"#,
        up = up.authority()
    )
}

async fn setup() -> (Upstream, TestEdge) {
    let up = Upstream::start("app").await;
    let edge = start(&config(&up, "")).await;
    (up, edge)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn good_claims() -> serde_json::Value {
    json!({"sub": "alice", "iss": "https://auth.test", "aud": "api", "exp": now() + 600, "iat": now(), "tenant": "acme"})
}

fn req(method: &str, path: &str, headers: &[(&str, &str)], body: ReqBody) -> Request<ReqBody> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "h");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

async fn send(edge: &TestEdge, r: Request<ReqBody>) -> client::Resp {
    client::plain(edge.http(), r).await
}

/// Asserts a JSON refusal and that the upstream saw no new request.
fn refused(r: &client::Resp, status: u16, code: &str, up: &Upstream, before: usize) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let j = r.json();
    assert_eq!(j["error"], code, "{j}");
    assert_eq!(
        j["request_id"].as_str(),
        r.header("x-request-id"),
        "the body names the request ID"
    );
    assert_eq!(up.count(), before, "a refused request reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_several_valid_at_once_constant_and_never_forwarded() {
    let (up, edge) = setup().await;
    for key in [CI_KEY, OLD_KEY] {
        let r = send(
            &edge,
            req("GET", "/api/x", &[("x-api-key", key)], client::empty()),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let seen = up.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.headers["x-auth-subject"], "old");
    assert_eq!(last.headers["x-auth-method"], "api_key");
    let n = up.count();
    // Missing and empty: 401 with a challenge.
    for h in [vec![], vec![("x-api-key", "")]] {
        let r = send(&edge, req("GET", "/api/x", &h, client::empty())).await;
        refused(&r, 401, "unauthorized", &up, n);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    // Wrong, or right with whitespace around it: 403.
    // (Whitespace around a header value is not part of it in HTTP; inside it is.)
    for bad in [
        "nope",
        "ci-key-0123456789abcdef x",
        "ci-key-0123456789abcdeF",
    ] {
        let r = send(
            &edge,
            req("GET", "/api/x", &[("x-api-key", bad)], client::empty()),
        )
        .await;
        refused(&r, 403, "invalid_credentials", &up, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_is_verified_claims_forwarded_and_spoofed_identity_stripped() {
    let (up, edge) = setup().await;
    let t = token(good_claims());
    let r = send(
        &edge,
        req(
            "GET",
            "/api/x",
            &[
                ("authorization", &format!("Bearer {t}")),
                ("x-auth-subject", "mallory"),
                ("x-auth-tenant", "evil"),
            ],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = up.seen().pop().unwrap();
    assert_eq!(last.headers["x-auth-subject"], "alice");
    assert_eq!(last.headers["x-auth-tenant"], "acme");
    assert_eq!(last.headers.get_all("x-auth-subject").iter().count(), 1);
    // A client-sent identity never reaches the upstream, even on public routes.
    send(
        &edge,
        req(
            "GET",
            "/",
            &[("x-auth-subject", "mallory")],
            client::empty(),
        ),
    )
    .await;
    assert!(up
        .seen()
        .pop()
        .unwrap()
        .headers
        .get("x-auth-subject")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused() {
    let (up, edge) = setup().await;
    let n = up.count();
    let mut c = good_claims();
    let mut cases: Vec<(String, &str)> = vec![];
    c["exp"] = json!(now() - 3600);
    cases.push((token(c.clone()), "expired"));
    let mut c = good_claims();
    c["nbf"] = json!(now() + 3600);
    cases.push((token(c), "not yet valid"));
    let mut c = good_claims();
    c["iss"] = json!("https://evil.test");
    cases.push((token(c), "issuer"));
    let mut c = good_claims();
    c["aud"] = json!("other");
    cases.push((token(c), "audience"));
    let mut c = good_claims();
    c["iat"] = json!(1_500_000_000);
    cases.push((token(c), "issued before revoke_before"));
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(b"another-secret-another-secret-xx").unwrap(),
    )
    .unwrap();
    cases.push((wrong_key, "bad signature"));
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &good_claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    cases.push((hs512, "another algorithm"));
    // alg: none, with the signature stripped.
    let body = token(good_claims());
    let payload = body.split('.').nth(1).unwrap();
    cases.push((
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
        "alg none",
    ));
    cases.push(("not.a.jwt".into(), "malformed"));
    cases.push(("a".repeat(5000), "garbage"));
    for (t, what) in cases {
        let r = send(
            &edge,
            req(
                "GET",
                "/api/x",
                &[("authorization", &format!("Bearer {t}"))],
                client::empty(),
            ),
        )
        .await;
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        refused(&r, 403, "invalid_credentials", &up, n);
    }
    // Optional auth: no token passes, a bad one does not.
    assert_eq!(send(&edge, get("h", "/opt/x")).await.status, 200);
    let r = send(
        &edge,
        req(
            "GET",
            "/opt/x",
            &[("authorization", "Bearer x.y.z")],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_verify_against_a_pem_key_and_hs256_cannot_impersonate() {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let up = Upstream::start("app").await;
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[jwt]\nalg = \"ES256\"\npublic_key = \"\"\"\n{}\"\"\"\n[[routes]]\nupstream = \"app\"\nauth = [\"jwt\"]\n",
        up.authority(),
        kp.public_key_pem()
    );
    let edge = start(&toml).await;
    let claims = json!({"sub": "bob", "exp": now() + 600});
    let t = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let r = send(
        &edge,
        req(
            "GET",
            "/",
            &[("authorization", &format!("Bearer {t}"))],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The classic confusion: an HMAC token keyed with the public key text.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(kp.public_key_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let r = send(
        &edge,
        req(
            "GET",
            "/",
            &[("authorization", &format!("Bearer {forged}"))],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_exact_with_headers_and_method_classes() {
    let (up, edge) = setup().await;
    // 1/m with burst 2: exactly three pass at once, whatever the timing (the next slot is
    // 20 s away).
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(send(&edge, get("h", "/limited/x")).await);
    }
    let ok = statuses.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 3);
    assert_eq!(statuses[0].header("ratelimit-limit"), Some("3"));
    assert_eq!(statuses[0].header("ratelimit-remaining"), Some("2"));
    assert_eq!(statuses[2].header("ratelimit-remaining"), Some("0"));
    let n = up.count();
    let r = send(&edge, get("h", "/limited/x")).await;
    refused(&r, 429, "rate_limited", &up, n);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    // Reads and writes on one path count separately.
    for _ in 0..20 {
        assert_eq!(send(&edge, get("h", "/classes/x")).await.status, 200);
    }
    let post = || req("POST", "/classes/x", &[], client::full("x"));
    assert_eq!(send(&edge, post()).await.status, 200);
    assert_eq!(send(&edge, post()).await.status, 429);
    assert_eq!(send(&edge, get("h", "/classes/x")).await.status, 200);
    // user_or_ip: each API key has its own bucket; anonymous requests share the IP's.
    let with = |k: &'static str| {
        req(
            "GET",
            "/user-limited/x",
            &[("x-api-key", k)],
            client::empty(),
        )
    };
    assert_eq!(send(&edge, with(CI_KEY)).await.status, 200);
    assert_eq!(send(&edge, with(CI_KEY)).await.status, 429);
    assert_eq!(send(&edge, with(OLD_KEY)).await.status, 200);
    assert_eq!(send(&edge, get("h", "/user-limited/x")).await.status, 200);
    assert_eq!(send(&edge, get("h", "/user-limited/x")).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_for_does_not_escape_a_limit_or_an_ip_list() {
    let (up, edge) = setup().await;
    for i in 0..3 {
        let xff = format!("10.0.0.{i}");
        let r = send(
            &edge,
            req(
                "GET",
                "/limited/x",
                &[("x-forwarded-for", &xff)],
                client::empty(),
            ),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let r = send(
        &edge,
        req(
            "GET",
            "/limited/x",
            &[("x-forwarded-for", "10.9.9.9")],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(
        r.status, 429,
        "a new X-Forwarded-For from an untrusted peer escaped the limit"
    );
    // Allow-list: the peer is 127.0.0.1 whatever the header says.
    let r = send(
        &edge,
        req(
            "GET",
            "/internal/x",
            &[("x-forwarded-for", "8.8.8.8")],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let n = up.count();
    let r = send(
        &edge,
        req(
            "GET",
            "/blocked/x",
            &[("x-forwarded-for", "8.8.8.8")],
            client::empty(),
        ),
    )
    .await;
    refused(&r, 403, "ip_denied", &up, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_lists_follow_trusted_proxies_and_ipv6_does_not_match_ipv4() {
    let up = Upstream::start("app").await;
    let edge = start(&config(&up, "trusted_proxies = [\"127.0.0.1\"]")).await;
    let at = |ip: &str| {
        req(
            "GET",
            "/internal/x",
            &[("x-forwarded-for", ip)],
            client::empty(),
        )
    };
    assert_eq!(send(&edge, at("127.0.0.1")).await.status, 200);
    let n = up.count();
    for ip in ["::1", "10.0.0.1", "2001:db8::1"] {
        let r = send(&edge, at(ip)).await;
        refused(&r, 403, "ip_denied", &up, n);
    }
    // An IPv4-mapped IPv6 address is the IPv4 address.
    assert_eq!(send(&edge, at("::ffff:127.0.0.1")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_locks_the_account_and_a_success_resets() {
    let (up, edge) = setup().await;
    let login = |path: &str, user: &str| {
        req(
            "POST",
            path,
            &[("content-type", "application/json")],
            client::full(json!({"username": user, "password": "x"}).to_string()),
        )
    };
    // Two failures, a success (reset), then three failures lock.
    for _ in 0..2 {
        assert_eq!(send(&edge, login("/status/401", "Alice")).await.status, 401);
    }
    assert_eq!(send(&edge, login("/status/200", "alice")).await.status, 200);
    for _ in 0..3 {
        assert_eq!(send(&edge, login("/status/401", "alice")).await.status, 401);
    }
    let n = up.count();
    let r = send(&edge, login("/status/200", "alice")).await;
    refused(&r, 429, "account_locked", &up, n);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 800);
    // Another account is not locked, and the body reaches the upstream intact.
    let r = send(&edge, login("/status/200", "bob")).await;
    assert_eq!(r.status, 200);
    // Form bodies name the account too.
    let form = |u: &str| {
        req(
            "POST",
            "/status/401",
            &[("content-type", "application/x-www-form-urlencoded")],
            client::full(format!("username={u}&password=x")),
        )
    };
    for _ in 0..3 {
        send(&edge, form("carol%40example.com")).await;
    }
    assert_eq!(send(&edge, form("carol%40example.com")).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_actual_requests() {
    let (up, edge) = setup().await;
    let pre = |origin: &str, method: &str, headers: &str| {
        req(
            "OPTIONS",
            "/cors/x",
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", headers),
            ],
            client::empty(),
        )
    };
    let n = up.count();
    let r = send(
        &edge,
        pre("https://app.test", "PUT", "content-type, x-csrf-token"),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    assert_eq!(up.count(), n, "a preflight is answered at the edge");
    for (o, m, h) in [
        ("https://evil.test", "GET", ""),
        ("https://app.test", "DELETE", ""),
        ("https://app.test", "GET", "x-secret"),
        ("null", "GET", ""),
    ] {
        let r = send(&edge, pre(o, m, h)).await;
        refused(&r, 403, "cors_denied", &up, n);
        assert!(r.header("access-control-allow-origin").is_none());
    }
    let r = send(
        &edge,
        req(
            "GET",
            "/cors/x",
            &[("origin", "https://app.test")],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    let r = send(
        &edge,
        req(
            "GET",
            "/cors/x",
            &[("origin", "https://evil.test")],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_double_submit() {
    let (up, edge) = setup().await;
    // A first GET sets the cookie (readable by scripts: no HttpOnly).
    let r = send(&edge, get("h", "/form/x")).await;
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(set.starts_with("csrf_token="), "{set}");
    assert!(set.contains("Secure") && set.contains("SameSite=Lax") && !set.contains("HttpOnly"));
    let token = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert_eq!(token.len(), 64);
    let cookie = format!("csrf_token={token}");
    let post = |h: Vec<(&str, &str)>| req("POST", "/form/x", &h, client::full("a=1"));
    let ok = send(
        &edge,
        post(vec![("cookie", &cookie), ("x-csrf-token", &token)]),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.header("set-cookie").is_none(),
        "the cookie is not reset when present"
    );
    let n = up.count();
    let other = "f".repeat(64);
    for (h, code) in [
        (vec![("cookie", cookie.as_str())], "csrf_failed"),
        (vec![("x-csrf-token", token.as_str())], "csrf_failed"),
        (
            vec![
                ("cookie", cookie.as_str()),
                ("x-csrf-token", other.as_str()),
            ],
            "csrf_failed",
        ),
        (
            vec![
                ("cookie", cookie.as_str()),
                ("x-csrf-token", token.as_str()),
                ("origin", "https://evil.test"),
            ],
            "csrf_origin",
        ),
    ] {
        let r = send(&edge, post(h)).await;
        refused(&r, 403, code, &up, n);
    }
    // Same-origin Origin passes; API-key requests are exempt.
    let r = send(
        &edge,
        post(vec![
            ("cookie", &cookie),
            ("x-csrf-token", &token),
            ("origin", "http://h"),
        ]),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(&edge, post(vec![("x-api-key", CI_KEY)])).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_up_front_and_while_streaming() {
    let (up, edge) = setup().await;
    let r = send(
        &edge,
        req(
            "POST",
            "/upload/echo-body",
            &[],
            client::full(vec![1u8; 1000]),
        ),
    )
    .await;
    assert_eq!(r.text(), "len=1000");
    let n = up.count();
    let r = send(
        &edge,
        req(
            "POST",
            "/upload/echo-body",
            &[],
            client::full(vec![1u8; 1001]),
        ),
    )
    .await;
    refused(&r, 413, "payload_too_large", &up, n);
    // Chunked, no length: refused once the limit is passed; the upstream never gets a
    // complete (truncated) body.
    let mut conn = Conn::plain(edge.http()).await;
    let (tx, body) = client::channel();
    let request = req("POST", "/upload/echo-body", &[], body);
    let send_body = tokio::spawn(async move {
        for _ in 0..8 {
            if tx.send(Bytes::from(vec![2u8; 500])).await.is_err() {
                break;
            }
        }
    });
    let r = conn.send_streaming(request).await.unwrap();
    assert_eq!(r.status(), 413);
    let _ = send_body.await;
    assert!(
        !up.seen()
            .iter()
            .skip(n)
            .any(|s| s.uri.contains("echo-body") && s.headers.get("content-length").is_some()),
        "the upstream saw a complete body"
    );
    // The edge still serves.
    assert_eq!(send(&edge, get("h", "/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_header_pattern_and_claim() {
    let (up, edge) = setup().await;
    let n = up.count();
    let r = send(&edge, get("h", "/t2/x")).await;
    refused(&r, 400, "tenant_required", &up, n);
    for bad in ["AB", "ab", "toolongvalue", "a b c"] {
        let r = send(
            &edge,
            req("GET", "/t2/x", &[("x-tenant-id", bad)], client::empty()),
        )
        .await;
        refused(&r, 400, "tenant_invalid", &up, n);
    }
    assert_eq!(
        send(
            &edge,
            req("GET", "/t2/x", &[("x-tenant-id", "acme")], client::empty())
        )
        .await
        .status,
        200
    );
    let auth = format!("Bearer {}", token(good_claims()));
    let r = send(
        &edge,
        req(
            "GET",
            "/tenant/x",
            &[("authorization", &auth), ("x-tenant-id", "acme")],
            client::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let n = up.count();
    let r = send(
        &edge,
        req(
            "GET",
            "/tenant/x",
            &[("authorization", &auth), ("x-tenant-id", "other")],
            client::empty(),
        ),
    )
    .await;
    refused(&r, 403, "tenant_mismatch", &up, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_allow_list_and_cookie_hardening() {
    let (up, edge) = setup().await;
    assert_eq!(send(&edge, get("h", "/ro/x")).await.status, 200);
    let n = up.count();
    let r = send(&edge, req("DELETE", "/ro/x", &[], client::empty())).await;
    refused(&r, 405, "method_not_allowed", &up, n);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = send(&edge, get("h", "/set-cookie")).await;
    let cookies: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        [
            "sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Lax",
            "theme=dark; Secure; HttpOnly; SameSite=Strict"
        ]
    );
}

/// The errors of a config that must not load.
fn config_error(toml: &str) -> String {
    rampart_config::load_str(
        toml,
        &rampart_config::Source {
            name: "t.toml".into(),
            base_dir: std::env::temp_dir(),
            env: &|_| None,
        },
    )
    .expect_err(toml)
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policy_configs_name_their_keys() {
    let cases = [
        ("[limits.a]\nrate = \"10/fortnight\"\n", "limits.a.rate"),
        (
            "[limits.a]\nrate = \"1/s\"\nkey = \"usr\"\n",
            "did you mean \"user\"",
        ),
        (
            "[cors.w]\norigins = [\"*\"]\ncredentials = true\n",
            "cors.w.origins[0]",
        ),
        (
            "[cors.w]\norigins = [\"https://a.test/\"]\n",
            "cors.w.origins[0]",
        ),
        ("[jwt]\nalg = \"none\"\nsecret = \"x\"\n", "jwt.alg"),
        (
            "[jwt]\nalg = \"RS256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
            "jwt.secret",
        ),
        ("[jwt]\nalg = \"HS256\"\nsecret = \"short\"\n", "jwt.secret"),
        (
            "[api_keys]\nkeys = [{ name = \"a\", key = \"with space 0123456789\" }]\n",
            "api_keys.keys[0].key",
        ),
        (
            "[api_keys]\nkeys = [{ name = \"a\", key = \"\" }]\n",
            "api_keys.keys[0].key",
        ),
    ];
    for (extra, expect) in cases {
        let toml = format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n{extra}[[routes]]\nrespond = {{ body = \"x\" }}\n"
        );
        let text = config_error(&toml);
        assert!(text.contains(expect), "{extra}: {text}");
    }
    let route_cases = [
        ("limit = \"nope\"", "routes[0].limit"),
        ("auth = [\"jwt\"]", "needs a [jwt] section"),
        ("cors = \"web\"", "routes[0].cors"),
        ("tenant = { pattern = \"(\" }", "routes[0].tenant.pattern"),
        ("methods = [\"GE T\"]", "routes[0].methods[0]"),
        ("allow = [\"10.0.0.1/8\"]", "host bits"),
    ];
    for (extra, expect) in route_cases {
        let toml = format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\nrespond = {{ body = \"x\" }}\n{extra}\n"
        );
        let text = config_error(&toml);
        assert!(text.contains(expect), "{extra}: {text}");
    }
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn single_jwt_route(up: &Upstream, jwt: &str) -> TestEdge {
    start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[jwt]\n{jwt}\n[[routes]]\nupstream = \"app\"\nauth = [\"jwt\"]\n",
        up.authority()
    ))
    .await
}

async fn status_with(edge: &TestEdge, token: &str) -> u16 {
    send(
        edge,
        req(
            "GET",
            "/",
            &[("authorization", &format!("Bearer {token}"))],
            client::empty(),
        ),
    )
    .await
    .status
    .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_eddsa_and_jwks_keys() {
    let up = Upstream::start("app").await;
    let claims = json!({"sub": "carol", "exp": now() + 600});
    let dir = rampart_test_support::TempDir::new("jwt");
    // RS256 with a key pair from openssl.
    let key = dir.path().join("rsa.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    let pubfile = dir.path().join("rsa.pub.pem");
    std::fs::write(&pubfile, &public).unwrap();
    let edge = single_jwt_route(
        &up,
        &format!(
            "alg = \"RS256\"\npublic_key_file = \"{}\"",
            pubfile.display()
        ),
    )
    .await;
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap();
    let t = encode(&Header::new(Algorithm::RS256), &claims, &rsa).unwrap();
    assert_eq!(status_with(&edge, &t).await, 200);
    let t512 = encode(&Header::new(Algorithm::RS512), &claims, &rsa).unwrap();
    assert_eq!(
        status_with(&edge, &t512).await,
        403,
        "the algorithm is pinned"
    );
    // EdDSA.
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let edge = single_jwt_route(
        &up,
        &format!(
            "alg = \"EdDSA\"\npublic_key = \"\"\"\n{}\"\"\"",
            ed.public_key_pem()
        ),
    )
    .await;
    let t = encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(status_with(&edge, &t).await, 200);
    // JWKS with two EC keys: the token's kid picks one.
    let k1 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let k2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let jwk = |kp: &rcgen::KeyPair, kid: &str| {
        let raw = kp.public_key_raw();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
               "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65])})
    };
    let jwks = json!({"keys": [jwk(&k1, "k1"), jwk(&k2, "k2")]});
    let file = dir.write("jwks.json", jwks.to_string());
    let edge = single_jwt_route(
        &up,
        &format!("alg = \"ES256\"\njwks_file = \"{}\"", file.display()),
    )
    .await;
    let sign = |kp: &rcgen::KeyPair, kid: Option<&str>| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_owned);
        encode(
            &h,
            &claims,
            &EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(status_with(&edge, &sign(&k2, Some("k2"))).await, 200);
    assert_eq!(status_with(&edge, &sign(&k1, Some("k1"))).await, 200);
    assert_eq!(
        status_with(&edge, &sign(&k1, Some("k2"))).await,
        403,
        "wrong key for the kid"
    );
    assert_eq!(
        status_with(&edge, &sign(&k1, Some("k9"))).await,
        403,
        "unknown kid"
    );
    assert_eq!(
        status_with(&edge, &sign(&k1, None)).await,
        403,
        "no kid with several keys"
    );
}

/// `server.deny` (guide 002's "block suspicious IPs") refuses a client on every route,
/// the plain redirect and the public mounts alike, before anything reaches an upstream;
/// behind a trusted proxy the forwarded client is judged.
#[tokio::test]
async fn a_global_denylist_covers_every_route_and_mount() {
    let up = Upstream::start("app").await;
    let toml = |deny: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\ndeny = [{deny}]\n[admin]\nlisten = \"127.0.0.1:0\"\npublic_path = \"/_rampart\"\npublic_allow = [\"0.0.0.0/0\"]\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/api/\"\nupstream = \"app\"\n[[routes]]\npath = \"/\"\nrespond = {{ body = \"home\" }}\n",
            up.authority()
        )
    };
    let edge = start(&toml("\"203.0.113.0/24\", \"2001:db8::/32\"")).await;
    let from = |ip: &'static str, path: &'static str| {
        Request::get(path)
            .header("host", "h")
            .header("x-forwarded-for", ip)
            .body(client::empty())
            .unwrap()
    };
    for path in ["/api/x", "/", "/_rampart/health", "/nothing/here"] {
        for ip in ["203.0.113.9", "2001:db8::1"] {
            let r = send(&edge, from(ip, path)).await;
            assert_eq!(r.status, 403, "{ip} {path}");
            assert_eq!(r.json()["error"], "ip_denied", "{ip} {path}");
        }
    }
    assert_eq!(up.count(), 0, "a denied client never reaches the upstream");
    assert_eq!(
        send(&edge, from("198.51.100.1", "/api/x")).await.status,
        200
    );
    assert_eq!(send(&edge, from("198.51.100.1", "/")).await.text(), "home");
    // The peer itself (no forwarded header) is judged when it is listed.
    let edge = start(&toml("\"127.0.0.0/8\"")).await;
    assert_eq!(send(&edge, get("h", "/")).await.status, 403);
    assert_eq!(up.count(), 1);
}

/// Credentials reach the upstream unless the route says `strip_credentials = true`; then
/// only the identity the edge established (`X-Auth-*`) goes on.
#[tokio::test]
async fn strip_credentials_keeps_keys_and_tokens_from_the_upstream() {
    let (up, edge) = setup().await;
    let bearer = format!("Bearer {}", token(good_claims()));
    for (path, stripped) in [("/api/x", false), ("/stripped/x", true)] {
        for (h, v) in [("x-api-key", CI_KEY), ("authorization", bearer.as_str())] {
            let r = send(&edge, req("GET", path, &[(h, v)], client::empty())).await;
            assert_eq!(r.status, 200, "{path} {h}");
            let seen = up.seen();
            let last = seen.last().unwrap();
            assert_eq!(last.headers.get(h).is_none(), stripped, "{path} {h}");
            assert!(last.headers.contains_key("x-auth-subject"), "{path} {h}");
        }
    }
}

/// `jwt.max_lifetime` (guide 002: tokens of at most 30 minutes) refuses a token whose
/// `exp - iat` is longer, one without `iat`/`exp`, and one issued in the future.
#[tokio::test]
async fn jwt_max_lifetime_refuses_long_lived_tokens() {
    let up = Upstream::start("app").await;
    let edge = start(&config(&up, "").replace(
        "revoke_before = \"2020-01-01T00:00:00Z\"",
        "revoke_before = \"2020-01-01T00:00:00Z\"\nmax_lifetime = \"30m\"",
    ))
    .await;
    let call = |claims: serde_json::Value| {
        let bearer = format!("Bearer {}", token(claims));
        let edge = &edge;
        async move {
            send(
                edge,
                req(
                    "GET",
                    "/api/x",
                    &[("authorization", &bearer)],
                    client::empty(),
                ),
            )
            .await
        }
    };
    let mut ok = good_claims();
    ok["exp"] = json!(now() + 1800);
    assert_eq!(call(ok).await.status, 200, "exactly 30 minutes");
    let n = up.count();
    let mut long = good_claims();
    long["exp"] = json!(now() + 1801);
    let mut no_iat = good_claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    let mut future = good_claims();
    future["iat"] = json!(now() + 3600);
    future["exp"] = json!(now() + 3600 + 600);
    for claims in [long.clone(), no_iat, future.clone()] {
        refused(&call(claims).await, 403, "invalid_credentials", &up, n);
    }
    // Without max_lifetime the same long and future-issued tokens pass: the limit refused them.
    let plain = start(&config(&up, "")).await;
    for claims in [long, future] {
        let bearer = format!("Bearer {}", token(claims));
        let r = send(
            &plain,
            req(
                "GET",
                "/api/x",
                &[("authorization", &bearer)],
                client::empty(),
            ),
        )
        .await;
        assert_eq!(r.status, 200);
    }
}
