//! Observability and control: the admin API (token, metrics, health, readiness, upstream
//! state), server drain and weights, blue-green route switches, active health checks,
//! dependency readiness, the access and audit logs (files, masking, SIGUSR1 reopen).

use std::net::SocketAddr;
use std::time::Duration;

use rampart_test_support::client::{self, get};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::{eventually, TempDir};

use crate::harness::{bin, futures_block, serve, start, start_in};

const TOKEN: &str = "admin-token-0123456789abcdef";

async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> client::Resp {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(client::full(body.to_owned()))
        .unwrap();
    client::plain(addr, req).await
}

fn admin_addr(edge: &crate::harness::TestEdge) -> SocketAddr {
    edge.running.as_ref().unwrap().live.admin_addr().unwrap()
}

/// How many of the last requests each upstream answered (health checks excluded).
fn served(up: &Upstream, path: &str) -> usize {
    up.seen().iter().filter(|s| s.uri.starts_with(path)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_its_token_and_reports_metrics_health_and_upstreams() {
    let app = Upstream::start("app").await;
    let dead = rampart_test_support::dead_addr();
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[upstreams.app]
servers = ["{app}"]
health_check = {{ path = "/status/200", interval = "200ms", timeout = "100ms", fall = 1 }}
[upstreams.spare]
servers = ["{dead}"]
required = false
health_check = {{ path = "/status/200", interval = "200ms", timeout = "100ms", fall = 1 }}
[[routes]]
name = "api"
path = "/api"
upstream = "app"
[[routes]]
name = "spare"
path = "/spare"
upstream = "spare"
"#,
        app = app.authority()
    );
    let edge = start(&toml).await;
    let a = admin_addr(&edge);
    for p in ["/metrics", "/health", "/ready", "/upstreams"] {
        let r = client::plain(a, get("admin", p)).await;
        assert_eq!(r.status, 401, "{p} without a token");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let wrong = http::Request::get("/metrics")
        .header("host", "admin")
        .header("authorization", "Bearer admin-token-0123456789abcdeX")
        .body(client::empty())
        .unwrap();
    assert_eq!(client::plain(a, wrong).await.status, 401);

    for path in [
        "/api/a",
        "/api/b?email=x@y.z",
        "/nothing-routes-here/123",
        "/api/c",
    ] {
        client::plain(edge.http(), get("h", path)).await;
    }
    // The spare's only server fails its check: the pool is down, but not required.
    let down = eventually(Duration::from_secs(5), || {
        let v = futures_block(admin(a, "GET", "/upstreams", ""));
        (v.json()["upstreams"][1]["state"] == "down").then_some(v)
    })
    .await;
    assert!(down.is_some(), "spare never went down");

    let m = admin(a, "GET", "/metrics", "").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = m.text();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{text}"))
            .to_owned()
    };
    assert!(line(r#"http_requests_total{method="GET",route="api",status="200""#).ends_with(" 3"));
    assert!(line(r#"http_requests_total{method="GET",route="none",status="404""#).ends_with(" 1"));
    assert!(
        !text.contains("nothing-routes-here"),
        "a raw path became a label"
    );
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(line(r#"rampart_upstream_server_up{upstream="spare""#).ends_with(" 0"));
    assert!(line(r#"rampart_upstream_server_up{upstream="app""#).ends_with(" 1"));
    assert!(text.contains("rampart_upstream_request_duration_seconds_count{"));
    assert!(text.contains("rampart_build_info{version=\""));
    assert!(text.contains("rampart_config_reloads_total{result=\"ok\"} 0"));
    assert!(text.contains("rampart_active_connections"));
    assert!(text.trim_end().ends_with("# EOF"));

    let h = admin(a, "GET", "/health", "").await;
    assert_eq!(h.status, 200);
    let v = h.json();
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["services"]["upstream:app"], "operational");
    assert_eq!(v["services"]["upstream:spare"], "down");
    assert_eq!(v["security"]["https_enforced"], false);
    assert_eq!(v["security"]["pii_masking_enabled"], true);
    assert_eq!(v["security"]["admin_token_required"], true);
    assert!(v["version"].as_str().unwrap().starts_with("0."));

    let r = admin(a, "GET", "/ready", "").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The required pool's only server goes away: its health check fails and readiness
    // follows.
    app.stop();
    let r = eventually(Duration::from_secs(5), || {
        let r = futures_block(admin(a, "GET", "/ready", ""));
        (r.status == 503).then_some(r)
    })
    .await
    .expect("still ready with the required pool down");
    assert!(r.json()["reasons"][0]
        .as_str()
        .unwrap()
        .contains("upstream app"));
    let h = admin(a, "GET", "/health", "").await;
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "unhealthy");

    assert_eq!(admin(a, "GET", "/nope", "").await.status, 404);
    assert_eq!(admin(a, "DELETE", "/metrics", "").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_weights_and_blue_green_switch_without_a_file_edit_and_surviving_reload() {
    let (b1, b2, g) = (
        Upstream::start("b1").await,
        Upstream::start("b2").await,
        Upstream::start("g").await,
    );
    let dir = TempDir::new("bluegreen");
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[logging]
access = "off"
audit = "audit.log"
[upstreams.blue]
servers = ["{}", "{}"]
[upstreams.green]
servers = ["{}"]
[[routes]]
name = "app"
upstream = "blue"
"#,
        b1.authority(),
        b2.authority(),
        g.authority()
    );
    let edge = start_in(dir, &toml).await;
    let (a, h) = (admin_addr(&edge), edge.http());
    let send = |n: usize, tag: &'static str| async move {
        for i in 0..n {
            let r = client::plain(h, get("h", &format!("/{tag}/{i}"))).await;
            assert_eq!(r.status, 200);
        }
    };
    send(10, "even").await;
    assert_eq!((served(&b1, "/even"), served(&b2, "/even")), (5, 5));

    // Drain b1: no new requests.
    let r = admin(
        a,
        "POST",
        &format!("/upstreams/blue/{}", b1.authority()),
        r#"{"drain": true}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    send(6, "drained").await;
    assert_eq!((served(&b1, "/drained"), served(&b2, "/drained")), (0, 6));
    let st = admin(a, "GET", "/upstreams", "").await.json();
    assert_eq!(st["upstreams"][0]["servers"][0]["draining"], true);

    // Weights 3:1.
    admin(
        a,
        "POST",
        &format!("/upstreams/blue/{}", b1.authority()),
        r#"{"weight": 3}"#,
    )
    .await;
    send(8, "weighted").await;
    assert_eq!((served(&b1, "/weighted"), served(&b2, "/weighted")), (6, 2));

    // Switch the route to green.
    let r = admin(a, "POST", "/routes/app", r#"{"upstream": "green"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    send(4, "green").await;
    assert_eq!(served(&g, "/green"), 4);

    // A reload from the same config keeps the runtime changes.
    let live = edge.running.as_ref().unwrap().live.clone();
    let cfg_dir = edge.dir.path().to_path_buf();
    let toml2 = toml.clone();
    live.set_loader(Box::new(move || {
        let mut c = rampart_config::load_str(
            &toml2,
            &rampart_config::Source {
                name: "t".into(),
                base_dir: cfg_dir.clone(),
                env: &rampart_config::process_env,
            },
        )?;
        c.server.state_dir = cfg_dir.join("state");
        Ok(c)
    }));
    let r = admin(a, "POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["pools_kept"], serde_json::json!(["blue", "green"]));
    send(3, "after").await;
    assert_eq!(served(&g, "/after"), 3);

    // Bad control requests: clear errors, nothing changes.
    for (path, body, status) in [
        ("/upstreams/blue/10.9.9.9:1", r#"{"drain": true}"#, 404),
        ("/upstreams/nope/x:1", r#"{"drain": true}"#, 404),
        (
            &*format!("/upstreams/blue/{}", b2.authority()),
            r#"{"weight": -1}"#,
            400,
        ),
        (
            &*format!("/upstreams/blue/{}", b2.authority()),
            "not json",
            400,
        ),
        ("/routes/app", r#"{"upstream": "purple"}"#, 404),
        ("/routes/nope", r#"{"upstream": "green"}"#, 404),
        ("/routes/app", r#"{}"#, 400),
    ] {
        let r = admin(a, "POST", path, body).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    send(2, "still").await;
    assert_eq!(served(&g, "/still"), 2);

    let audit = edge.dir.path().join("audit.log");
    let text = eventually(Duration::from_secs(3), || {
        let t = std::fs::read_to_string(&audit).ok()?;
        (t.matches("admin.change").count() >= 3 && t.contains("config.reload")).then_some(t)
    })
    .await
    .expect("admin changes not audited");
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["ts"].is_string() && v["event"].is_string(), "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_check_takes_a_server_out_within_an_interval_and_back_after_rise() {
    let (a1, a2) = (Upstream::start("a1").await, Upstream::start("a2").await);
    let a2_addr = a2.addr;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[upstreams.app]
servers = ["{}", "{}"]
max_fails = 0
health_check = {{ path = "/status/204", status = 204, interval = "150ms", timeout = "100ms", rise = 2, fall = 2 }}
[[routes]]
upstream = "app"
"#,
        a1.authority(),
        a2.authority()
    );
    let edge = start(&toml).await;
    let live = edge.running.as_ref().unwrap().live.clone();
    let up = |i: usize| {
        let e = live.edge();
        let p = &e.pools()[0];
        p.is_up(&p.servers()[i])
    };
    assert!(up(0) && up(1));
    drop(a2);
    let t = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || (!up(1)).then_some(()))
            .await
            .is_some(),
        "a2 never marked down"
    );
    // fall = 2 checks 150ms apart.
    assert!(
        t.elapsed() < Duration::from_millis(1200),
        "{:?}",
        t.elapsed()
    );
    for i in 0..6 {
        let r = client::plain(edge.http(), get("h", &format!("/while-down/{i}"))).await;
        assert_eq!(r.status, 200, "a request reached the dead server");
    }
    let a2 = Upstream::start_at("a2", a2_addr).await;
    assert!(
        eventually(Duration::from_secs(3), || up(1).then_some(()))
            .await
            .is_some(),
        "a2 never came back"
    );
    for i in 0..4 {
        client::plain(edge.http(), get("h", &format!("/back/{i}"))).await;
    }
    assert_eq!(served(&a2, "/back"), 2);
    assert!(
        served(&a2, "/status/204") >= 2,
        "health checks reach the server"
    );
}

/// A process speaking just enough of a protocol's greeting for a readiness probe: the
/// server's first bytes after accept (MySQL) or its answer to the first packet (PostgreSQL).
async fn greeter(first: &'static [u8], answer_after_read: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if answer_after_read {
                    let mut b = [0u8; 8];
                    let _ = s.read_exact(&mut b).await;
                }
                let _ = s.write_all(first).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    addr
}

fn redis_server() -> Option<(std::process::Child, SocketAddr)> {
    let port = rampart_test_support::free_port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    Some((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_each_declared_dependency_at_protocol_level() {
    let (mut redis, redis_addr) = redis_server().expect("redis-server is installed by .ci/run");
    let web = Upstream::start("web").await;
    let pg = greeter(b"N", true).await;
    let mysql = greeter(b"\x4a\x00\x00\x00\x0a8.0.36\x00", false).await;
    let mysql_full = greeter(b"\x17\x00\x00\x00\xff\x10\x04Too many connections", false).await;
    let not_pg = greeter(b"HTTP/1.1 400 Bad Request\r\n\r\n", true).await;
    let dead = rampart_test_support::dead_addr();
    let web = web.authority();
    let toml = |redis: SocketAddr, pg: SocketAddr, mysql: SocketAddr| {
        format!(
            r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[[dependencies]]
name = "redis"
kind = "redis"
address = "{redis}"
[[dependencies]]
name = "web"
kind = "http"
address = "http://{web}/status/200"
[[dependencies]]
name = "pg"
kind = "postgres"
address = "{pg}"
[[dependencies]]
name = "mysql"
kind = "mysql"
address = "{mysql}"
[[dependencies]]
name = "search"
kind = "tcp"
address = "{dead}"
required = false
[[routes]]
respond = {{ body = "ok" }}
"#
        )
    };
    let edge = start(&toml(redis_addr, pg, mysql)).await;
    let a = admin_addr(&edge);
    let ready = eventually(Duration::from_secs(5), || {
        let r = futures_block(client::plain(a, get("admin", "/ready")));
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(ready.is_some(), "never ready (redis may still be starting)");
    let h = client::plain(a, get("admin", "/health")).await.json();
    assert_eq!(
        h["status"], "degraded",
        "an optional dependency is down: {h}"
    );
    assert_eq!(h["services"]["redis"], "operational");
    assert_eq!(h["services"]["web"], "operational");
    assert_eq!(h["services"]["pg"], "operational");
    assert_eq!(h["services"]["mysql"], "operational");
    assert_eq!(h["services"]["search"], "down");

    // Each failure names its dependency and why.
    let _ = redis.kill();
    let _ = redis.wait();
    let (mut other_redis, other) = redis_server().unwrap();
    eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(other).ok()
    })
    .await
    .expect("second redis-server did not start");
    let cases = [
        ("redis", toml(redis_addr, pg, mysql), "connect"),
        ("pg", toml(other, not_pg, mysql), "not PostgreSQL"),
        ("mysql", toml(other, pg, mysql_full), "Too many connections"),
    ];
    for (name, t, why) in cases {
        let e = start(&t).await;
        let r = client::plain(admin_addr(&e), get("admin", "/ready")).await;
        assert_eq!(r.status, 503, "{name}: {}", r.text());
        let reasons = r.json()["reasons"].to_string();
        assert!(
            reasons.contains(&format!("{name}: ")) && reasons.contains(why),
            "{name}: {reasons}"
        );
        assert!(
            !reasons.contains("search"),
            "optional dependency blocked readiness"
        );
        assert_eq!(
            r.json()["reasons"].as_array().unwrap().len(),
            1,
            "{reasons}"
        );
    }
    let _ = other_redis.kill();
    let _ = other_redis.wait();
}

#[test]
fn ops_config_errors_name_their_keys() {
    let dir = TempDir::new("ops-bad");
    let cfg = dir.write(
        "rampart.toml",
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "0.0.0.0:9901"
public_path = "metrics/"
[logging]
audit = "off"
queue = 1
mask = [{ pattern = "(unclosed" }]
[upstreams.app]
servers = ["127.0.0.1:9"]
health_check = { interval = "50ms", timeout = "1s", rise = 0 }
[[dependencies]]
name = "db"
kind = "oracle"
address = "db:1521"
[[dependencies]]
name = "web"
kind = "http"
address = "web:80"
[[routes]]
upstream = "app"
"#,
    );
    let out = bin().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "admin.token",
        "admin.public_path",
        "admin.public_allow",
        "logging.audit",
        "logging.queue",
        "logging.mask[0].pattern",
        "upstreams.app.health_check.interval",
        "upstreams.app.health_check.timeout",
        "upstreams.app.health_check.rise",
        "dependencies[0].kind",
        "dependencies[1].address",
    ] {
        assert!(
            text.contains(&format!("{key}:")),
            "{key} missing from:\n{text}"
        );
    }
}

/// The binary: access and audit logs to files, personal data masked, each line one JSON
/// object with the documented fields; SIGUSR1 reopens a rotated file; `rampart reload`
/// and `rampart check --live` speak to the admin API.
#[test]
fn access_and_audit_files_are_masked_rotate_on_sigusr1_and_cli_talks_to_admin() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start("app"));
    let dir = TempDir::new("logs");
    let cfg = dir.write(
        "rampart.toml",
        format!(
            r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"
[logging]
access = "access.log"
audit = "audit.log"
mask_ip = true
mask = [{{ pattern = "emp-[0-9]{{6}}", replace = "[employee]" }}]
[api_keys]
keys = [{{ name = "ci", key = "ci-key-0123456789abcdefghij" }}]
[[routes]]
name = "private"
path = "/private"
upstream = "app"
auth = ["api_key"]
[[routes]]
name = "app"
path = "/"
upstream = "app"
[upstreams.app]
servers = ["{up}"]
"#,
            admin = rampart_test_support::free_port(),
            up = up.authority()
        ),
    );
    let p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let h = p.http.unwrap();
    let req = |path: &str, ua: &str| {
        http::Request::get(path)
            .header("host", "shop.example")
            .header("user-agent", ua)
            .body(client::empty())
            .unwrap()
    };
    rt.block_on(async {
        client::plain(
            h,
            req(
                "/users/jane.doe@example.com/orders?card=4111111111111111",
                "curl/8 emp-123456",
            ),
        )
        .await;
        client::plain(
            h,
            req("/pay/4111-1111-1111-1111", "Bearer abcdef0123456789xyz"),
        )
        .await;
        client::plain(h, req("/call/+1-415-555-2671", "ok")).await;
        let r = client::plain(h, req("/private/x", "ok")).await;
        assert_eq!(r.status, 401);
        let authed = http::Request::get("/private/ok")
            .header("host", "shop.example")
            .header("x-api-key", "ci-key-0123456789abcdefghij")
            .header("x-auth-subject", "mallory")
            .body(client::empty())
            .unwrap();
        assert_eq!(client::plain(h, authed).await.status, 200);
    });
    let access = dir.path().join("access.log");
    let lines = |p: &std::path::Path, n: usize| {
        rt.block_on(eventually(Duration::from_secs(5), || {
            let t = std::fs::read_to_string(p).ok()?;
            (t.lines().count() >= n).then_some(t)
        }))
        .unwrap_or_else(|| panic!("{} has fewer than {n} lines", p.display()))
    };
    let text = lines(&access, 5);
    let authed: serde_json::Value = serde_json::from_str(
        text.lines()
            .find(|l| l.contains("/private/ok"))
            .expect("no line for /private/ok"),
    )
    .unwrap();
    let user = authed["user"]
        .as_str()
        .expect("authenticated subject logged");
    assert!(user.contains("ci") && !user.contains("mallory"), "{authed}");
    assert!(
        !text.contains("ci-key-0123456789abcdefghij"),
        "an API key reached the log"
    );
    for secret in [
        "jane.doe@example.com",
        "4111",
        "415-555",
        "emp-123456",
        "abcdef0123456789xyz",
        "card=",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} reached the access log:\n{text}"
        );
    }
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["path"], "/users/[email]/orders",
        "query removed, e-mail masked"
    );
    assert_eq!(first["ua"], "curl/8 [employee]");
    assert_eq!(first["ip"], "127.0.0.0", "mask_ip zeroes the tail");
    assert_eq!(first["route"], "app");
    assert_eq!(first["status"], 200);
    assert_eq!(first["method"], "GET");
    assert_eq!(first["host"], "shop.example");
    assert_eq!(first["upstream"], up.authority());
    assert!(first["duration_ms"].as_f64().unwrap() >= first["upstream_ms"].as_f64().unwrap());
    assert_eq!(first["request_id"].as_str().unwrap().len(), 32);
    for k in [
        "ts",
        "bytes_in",
        "bytes_out",
        "tenant",
        "user",
        "tls",
        "protocol",
    ] {
        assert!(first.get(k).is_some(), "no {k}: {first}");
    }
    let audit = lines(&dir.path().join("audit.log"), 1);
    assert!(
        audit.contains("auth.failure") && audit.contains("127.0.0.0"),
        "{audit}"
    );

    // logrotate: move the file, SIGUSR1, the next line lands in a new file.
    std::fs::rename(&access, dir.path().join("access.log.1")).unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-USR1", &p.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(200));
    rt.block_on(client::plain(h, req("/after-rotate", "ok")));
    let fresh = lines(&access, 1);
    assert!(fresh.contains("/after-rotate"), "{fresh}");

    // The CLI through the admin API.
    let out = bin().args(["reload", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reloaded"));
    let out = bin()
        .args(["check", "--live", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("upstream app (operational), routes: private, app"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("  {} up=true weight=1", up.authority())),
        "{shown}"
    );
}

/// `public_path`: metrics, health and readiness on the public listener for the allowed
/// networks only; everything else under the prefix is routed as usual.
#[tokio::test]
async fn public_mount_answers_allowed_networks_only() {
    let toml = |allow: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\npublic_path = \"/_rampart\"\npublic_allow = [\"{allow}\"]\n[[routes]]\nrespond = {{ body = \"site\" }}\n"
        )
    };
    let edge = start(&toml("127.0.0.0/8")).await;
    let h = edge.http();
    let m = client::plain(h, get("h", "/_rampart/metrics")).await;
    assert_eq!(m.status, 200);
    assert!(m.text().contains("rampart_build_info"));
    assert!(
        m.header("x-content-type-options").is_some(),
        "security headers apply"
    );
    assert_eq!(
        client::plain(h, get("h", "/_rampart/ready")).await.status,
        200
    );
    assert_eq!(
        client::plain(h, get("h", "/_rampart/health")).await.json()["status"],
        "healthy"
    );
    let post = http::Request::post("/_rampart/metrics")
        .header("host", "h")
        .body(client::empty())
        .unwrap();
    assert_eq!(client::plain(h, post).await.status, 404);
    // Not one of the three: the site answers.
    assert_eq!(
        client::plain(h, get("h", "/_rampart/upstreams"))
            .await
            .text(),
        "site"
    );

    let other = start(&toml("10.0.0.0/8")).await;
    let r = client::plain(other.http(), get("h", "/_rampart/metrics")).await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("rampart_build_info"));
}

/// `public_path = ""` mounts health and readiness at the root (guide 002 checks
/// `curl https://yourdomain.com/health`); `public_endpoints` keeps `/metrics` off the
/// public listener; a client outside `public_allow` reaches the application's own routes.
#[tokio::test]
async fn health_and_ready_at_the_sites_own_root_paths() {
    let toml = |allow: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\npublic_path = \"\"\npublic_endpoints = [\"health\", \"ready\"]\npublic_allow = [{allow}]\n[[routes]]\nrespond = {{ body = \"site\" }}\n"
        )
    };
    let edge = start(&toml("\"0.0.0.0/0\", \"::/0\"")).await;
    let h = edge.http();
    let health = client::plain(h, get("h", "/health")).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "healthy");
    assert_eq!(client::plain(h, get("h", "/ready")).await.status, 200);
    let metrics = client::plain(h, get("h", "/metrics")).await;
    assert_eq!(
        metrics.text(),
        "site",
        "metrics not mounted: the site answers"
    );
    // Outside the allowed networks the site's own /health answers.
    let other = start(&toml("\"10.0.0.0/8\"")).await;
    assert_eq!(
        client::plain(other.http(), get("h", "/health"))
            .await
            .text(),
        "site"
    );
    // Bad values are named.
    let dir = TempDir::new("public-bad");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\npublic_path = \"/\"\npublic_endpoints = [\"health\", \"upstreams\"]\npublic_allow = [\"10.0.0.0/8\"]\n[[routes]]\nrespond = { body = \"x\" }\n",
    );
    let out = bin().arg("check").arg("-c").arg(&cfg).output().unwrap();
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        err.contains("admin.public_path") && err.contains("admin.public_endpoints[1]"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_answers_500_and_every_other_connection_goes_on() {
    let app = Upstream::start("app").await;
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        app.authority()
    ))
    .await;
    let mut other = client::Conn::plain(edge.http()).await;
    assert_eq!(other.send(get("h", "/before")).await.unwrap().status, 200);
    let panicking = |method: &str| {
        http::Request::builder()
            .method(method)
            .uri("/boom")
            .header("host", "h")
            .header("x-rampart-test-panic", "1")
            .body(client::full(if method == "POST" { "body" } else { "" }))
            .unwrap()
    };
    // The fast path (GET) and hyper's (POST): 500 with a request id, JSON like every
    // refusal, and the connection that panicked goes on too.
    let mut conn = client::Conn::plain(edge.http()).await;
    for method in ["GET", "POST"] {
        let r = conn.send(panicking(method)).await.unwrap();
        assert_eq!(r.status, 500, "{method}");
        assert_eq!(r.json()["error"], "internal_error");
        let id = r.json()["request_id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    }
    assert_eq!(conn.send(get("h", "/after")).await.unwrap().status, 200);
    assert_eq!(other.send(get("h", "/after")).await.unwrap().status, 200);
    assert!(app.seen().iter().all(|s| s.uri != "/boom"));
    let m = admin(admin_addr(&edge), "GET", "/metrics", "").await.text();
    let panics: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("rampart_panics_total "))
        .expect("rampart_panics_total")
        .parse()
        .unwrap();
    assert!(panics >= 2, "{panics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_with_known_labels_start_at_zero() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n[[routes]]\nrespond = {{ body = \"ok\" }}\n"
    ))
    .await;
    let m = admin(admin_addr(&edge), "GET", "/metrics", "").await.text();
    for series in [
        "rampart_log_lines_dropped_total{log=\"access\"} 0",
        "rampart_log_lines_dropped_total{log=\"audit\"} 0",
        "rampart_tls_handshakes_total{result=\"failed\"} 0",
        "rampart_config_reloads_total{result=\"failed\"} 0",
    ] {
        assert!(m.lines().any(|l| l == series), "{series} missing:\n{m}");
    }
    assert!(
        m.lines().any(|l| l.starts_with("rampart_panics_total ")),
        "{m}"
    );
}

/// `rediss://` and `https://` dependencies (guides 000 and 001) are probed over TLS and
/// their certificates verified: against the `ca` file they name, or the system roots,
/// which do not know a private CA, so that dependency is not ready and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_dependencies_are_probed_over_verified_tls() {
    let pki = rampart_test_support::pki::Pki::new();
    let leaf = pki.leaf("dep", &["localhost", "127.0.0.1"]);
    // A TLS Redis (Debian's redis-server is built with TLS).
    let port = rampart_test_support::free_port();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", leaf.cert.to_str().unwrap()])
        .args(["--tls-key-file", leaf.key.to_str().unwrap()])
        .args(["--tls-ca-cert-file", pki.ca_path().to_str().unwrap()])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed by .ci/run");
    // An HTTPS service: a rampart edge with the same CA's certificate.
    let web = start(&format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[routes]]\nrespond = {{ body = \"ok\" }}\n",
        leaf.cert.display(),
        leaf.key.display()
    ))
    .await;
    let ca = pki.ca_path();
    let toml = |ca_line: &str| {
        format!(
            r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[[dependencies]]
name = "cache"
kind = "redis"
address = "rediss://default:secret@localhost:{port}/0"
{ca_line}
[[dependencies]]
name = "api"
kind = "http"
address = "https://localhost:{web}/health"
{ca_line}
[[routes]]
respond = {{ body = "ok" }}
"#,
            web = web.https().port()
        )
    };
    let edge = start(&toml(&format!("ca = \"{}\"", ca.display()))).await;
    let a = admin_addr(&edge);
    let ready = eventually(Duration::from_secs(10), || {
        let r = futures_block(client::plain(a, get("admin", "/ready")));
        (r.status == 200).then_some(r)
    })
    .await;
    let h = client::plain(a, get("admin", "/health")).await.json();
    assert!(ready.is_some(), "never ready over verified TLS: {h}");
    assert_eq!(h["services"]["cache"], "operational", "{h}");
    assert_eq!(h["services"]["api"], "operational", "{h}");
    // Without the CA file the system roots are used: neither verifies, both are named.
    let edge = start(&toml("")).await;
    let r = client::plain(admin_addr(&edge), get("admin", "/ready")).await;
    assert_eq!(r.status, 503);
    let reasons = r.json()["reasons"].to_string();
    assert!(
        reasons.contains("cache: TLS") && reasons.contains("api: TLS"),
        "{reasons}"
    );
    assert!(reasons.contains("certificate"), "{reasons}");
    let _ = redis.kill();
    let _ = redis.wait();
}

/// An error logged while serving a request carries that request's id (and path), so the
/// log line and the client's 502 can be put together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_lines_carry_the_request_id() {
    let dead = rampart_test_support::dead_addr();
    let dir = TempDir::new("errctx");
    let cfg = dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{dead}\"]\n[[routes]]\nupstream = \"app\"\n"
        ),
    );
    let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let addr = p.http.unwrap();
    // Both upstream clients: rampart's own (GET) and hyper's (POST with a body).
    let post = http::Request::post("/orders/7")
        .header("host", "h")
        .body(client::full("x"))
        .unwrap();
    for (req, path) in [(get("h", "/reports/1"), "/reports/1"), (post, "/orders/7")] {
        let r = client::plain(addr, req).await;
        assert_eq!(r.status, 502);
        let id = r.header("x-request-id").unwrap().to_owned();
        let line = p
            .wait_for_line(&id, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no line with {id}: {:?}", p.seen));
        let line = if line.contains("upstream connect failed") {
            line
        } else {
            p.seen
                .iter()
                .find(|l| l.contains("upstream connect failed") && l.contains(&id))
                .cloned()
                .or_else(|| p.wait_for_line("upstream connect failed", Duration::from_secs(5)))
                .unwrap()
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], id.as_str(), "{line}");
        assert_eq!(v["path"], path, "{line}");
    }
}

/// The guide's blue-green cut-over through the admin API: every route on blue moves to
/// green in one call (all or none), unnamed routes are addressable, and once blue is
/// stopped, `/ready` and `/health` do not wait for a pool no route uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_cut_over_in_one_call_and_the_unused_pool_decides_nothing() {
    let blue = Upstream::start("blue").await;
    let green = Upstream::start("green").await;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[upstreams.blue]
servers = ["{}"]
[upstreams.blue.health_check]
path = "/status/200"
interval = "200ms"
timeout = "100ms"
[upstreams.green]
servers = ["{}"]
[[routes]]
path = "/api/"
upstream = "blue"
[[routes]]
path = "/"
upstream = "blue"
"#,
        blue.authority(),
        green.authority()
    );
    let edge = start(&toml).await;
    let (a, h) = (admin_addr(&edge), edge.http());
    // A bad set changes nothing.
    let r = admin(
        a,
        "POST",
        "/routes",
        r#"{"routes": {"/api/": "green", "nope": "green"}}"#,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        client::plain(h, get("h", "/api/x"))
            .await
            .header("x-upstream"),
        Some("blue")
    );
    // One call moves both unnamed routes.
    let r = admin(a, "POST", "/routes", r#"{"from": "blue", "to": "green"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["switched"].as_array().unwrap().len(),
        2,
        "{}",
        r.text()
    );
    for p in ["/api/x", "/page"] {
        assert_eq!(
            client::plain(h, get("h", p)).await.header("x-upstream"),
            Some("green"),
            "{p}"
        );
    }
    // Unnamed routes one by one: by generated name (as written, or percent-encoded) or index.
    for (path, body) in [
        ("/routes//api/", r#"{"upstream": "blue"}"#),
        ("/routes/%2Fapi%2F", r#"{"upstream": "green"}"#),
        ("/routes/1", r#"{"upstream": "green"}"#),
    ] {
        let r = admin(a, "POST", path, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // Blue stops (the guide's last step): nothing uses it, so the edge stays ready.
    drop(blue);
    let down = eventually(Duration::from_secs(5), || {
        let up = futures_block(admin(a, "GET", "/upstreams", "")).json();
        (up["upstreams"][0]["state"] == "down").then_some(())
    })
    .await;
    assert!(down.is_some(), "the health check never took blue out");
    assert_eq!(admin(a, "GET", "/ready", "").await.status, 200);
    let health = admin(a, "GET", "/health", "").await.json();
    assert_eq!(health["status"], "healthy", "{health}");
    // Moving a route back onto the dead pool makes it count again.
    admin(a, "POST", "/routes/0", r#"{"upstream": "blue"}"#).await;
    assert_eq!(admin(a, "GET", "/ready", "").await.status, 503);
}

/// W3C trace context through the edge, over both upstream clients (rampart's own for a GET,
/// hyper's for a POST): a valid `traceparent` is continued (same trace, rampart's span,
/// the client's flags), a missing or invalid one starts a trace whose id is the request
/// ID; the access log and the audit lines of the request carry `trace_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_is_continued_or_started_and_logged() {
    let up = Upstream::start("app").await;
    let dir = TempDir::new("tracectx");
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[logging]\naccess = \"access.log\"\naudit = \"audit.log\"\n\
         [upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/private\"\ndeny = [\"127.0.0.0/8\"]\nupstream = \"app\"\n",
        up.authority()
    );
    let edge = crate::harness::start_in(dir, &toml).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let send = |method: &str, path: &str, tp: Option<&str>| {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "h");
        if let Some(tp) = tp {
            b = b.header("traceparent", tp).header("tracestate", "vendor=1");
        }
        let body = if method == "POST" { "x" } else { "" };
        b.body(client::full(body)).unwrap()
    };
    let mut i = 0;
    for method in ["GET", "POST"] {
        // Continued.
        let r = client::plain(edge.http(), send(method, "/a", Some(parent))).await;
        assert_eq!(r.status, 200);
        let seen = &up.seen()[i];
        i += 1;
        let tp = seen.headers["traceparent"].to_str().unwrap().to_owned();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(tp.ends_with("-01"), "{tp}");
        assert_ne!(&tp[36..52], "00f067aa0ba902b7", "rampart's own span");
        assert_eq!(
            seen.headers["tracestate"], "vendor=1",
            "kept with its trace"
        );
        // Started: the trace id is the request id; invalid ones are replaced, and their
        // tracestate dropped.
        for bad in [None, Some("00-zz-00f067aa0ba902b7-01")] {
            let r = client::plain(edge.http(), send(method, "/b", bad)).await;
            let id = r.header("x-request-id").unwrap().to_owned();
            let seen = &up.seen()[i];
            i += 1;
            if bad.is_some() {
                assert!(
                    !seen.headers.contains_key("tracestate"),
                    "{:?}",
                    seen.headers
                );
            }
            let tp = seen.headers["traceparent"].to_str().unwrap().to_owned();
            assert_eq!(&tp[3..35], id, "{tp}");
            assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
        }
    }
    // A refusal's audit line and the access log carry the trace.
    let r = client::plain(edge.http(), send("GET", "/private", Some(parent))).await;
    assert_eq!(r.status, 403);
    crate::harness::wait_audited(edge.dir.path(), "acl.refused", 1).await;
    let audit = std::fs::read_to_string(edge.dir.path().join("audit.log")).unwrap();
    let line = audit.lines().find(|l| l.contains("acl.refused")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");
    let access = rampart_test_support::eventually(Duration::from_secs(3), || {
        let a = std::fs::read_to_string(edge.dir.path().join("access.log")).ok()?;
        (a.lines().count() >= 7).then_some(a)
    })
    .await
    .unwrap();
    let lines: Vec<serde_json::Value> = access
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[1]["trace_id"], lines[1]["request_id"]);
    assert_eq!(lines[6]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

/// Trace context through two rampart hops to a recording upstream: the trace id the client
/// started reaches the application, each hop adds its own span, and both hops log it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_crosses_two_hops() {
    let up = Upstream::start("app").await;
    let inner = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\n",
        up.authority()
    ))
    .await;
    let outer = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.inner]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"inner\"\n",
        inner.http()
    ))
    .await;
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let req = http::Request::get("/x")
        .header("host", "h")
        .header("traceparent", parent)
        .body(client::empty())
        .unwrap();
    let r = client::plain(outer.http(), req).await;
    assert_eq!(r.status, 200);
    let seen = up.seen();
    let tp = seen[0].headers["traceparent"].to_str().unwrap();
    assert_eq!(&tp[..36], "00-0af7651916cd43dd8448eb211c80319c-", "{tp}");
    assert!(tp.ends_with("-01"), "{tp}");
    assert_ne!(
        &tp[36..52],
        "b7ad6b7169203331",
        "the inner hop's span, not the client's"
    );
}

/// A small OTLP/HTTP collector: every `POST` it receives (headers and the decoded export).
struct Collector {
    addr: SocketAddr,
    got: std::sync::Arc<std::sync::Mutex<Vec<(http::HeaderMap, String, ExportReq)>>>,
}

type ExportReq = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

impl Collector {
    async fn start() -> Self {
        use http_body_util::BodyExt;
        use prost::Message;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let g = g.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let g = g.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body.collect().await.unwrap().to_bytes();
                                let export = ExportReq::decode(&bytes[..]).unwrap();
                                g.lock().unwrap().push((
                                    parts.headers,
                                    parts.uri.path().to_owned(),
                                    export,
                                ));
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::new()),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Self { addr, got }
    }

    /// Every span received so far, with its service's name.
    fn spans(&self) -> Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)> {
        let mut out = Vec::new();
        for (_, _, e) in self.got.lock().unwrap().iter() {
            for rs in &e.resource_spans {
                let service = rs
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .map(|a| format!("{:?}", a.value))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    out.extend(ss.spans.iter().map(|s| (service.clone(), s.clone())));
                }
            }
        }
        out
    }
}

fn attr(s: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match s
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
    {
        Some(Value::StringValue(v)) => v.clone(),
        Some(Value::IntValue(v)) => v.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `[tracing] otlp`: each of two hops sends one span per request to a real OTLP/HTTP
/// receiver: the same trace as the client's `traceparent`, the outer span's parent the
/// client's span, the inner's the outer's, the upstream told the inner span; method,
/// route, status and a PII-masked path as attributes; the collector's header sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_two_hops_reach_an_otlp_collector() {
    let collector = Collector::start().await;
    let up = Upstream::start("app").await;
    let tracing = |name: &str| {
        format!(
            "[tracing]\notlp = \"http://{}\"\nservice_name = \"{name}\"\nheaders = {{ \"x-api-key\" = \"k-123\" }}\n",
            collector.addr
        )
    };
    let inner = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nname = \"app\"\nupstream = \"app\"\n{}",
        up.authority(),
        tracing("inner")
    ))
    .await;
    let outer = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.inner]\nservers = [\"{}\"]\n[[routes]]\nname = \"front\"\nupstream = \"inner\"\n{}",
        inner.http(),
        tracing("outer")
    ))
    .await;
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let req = http::Request::get("/users/ana@example.com/orders")
        .header("host", "h")
        .header("traceparent", parent)
        .body(client::empty())
        .unwrap();
    assert_eq!(client::plain(outer.http(), req).await.status, 200);
    let spans = eventually(Duration::from_secs(10), || {
        let s = collector.spans();
        (s.len() >= 2).then_some(s)
    })
    .await
    .expect("two spans exported within the batch interval");
    assert_eq!(spans.len(), 2, "one span per hop");
    let by = |svc: &str| {
        spans
            .iter()
            .find(|(s, _)| s.contains(svc))
            .unwrap()
            .1
            .clone()
    };
    let (o, i) = (by("outer"), by("inner"));
    for s in [&o, &i] {
        assert_eq!(hex(&s.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.kind, 2, "SERVER");
        assert_eq!(
            (
                attr(s, "http.request.method"),
                attr(s, "http.response.status_code")
            ),
            ("GET".into(), "200".into())
        );
        let path = attr(s, "url.path");
        assert!(
            path.starts_with("/users/") && !path.contains("ana@example.com"),
            "{path}"
        );
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
    }
    assert_eq!(
        hex(&o.parent_span_id),
        "b7ad6b7169203331",
        "the client's span"
    );
    assert_eq!(o.parent_span_id.len(), 8);
    assert_eq!(
        i.parent_span_id, o.span_id,
        "the inner hop's parent is the outer span"
    );
    assert_eq!(
        (attr(&o, "http.route"), attr(&i, "http.route")),
        ("front".into(), "app".into())
    );
    let tp = up.seen()[0].headers["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        &tp[36..52],
        hex(&i.span_id),
        "the upstream is told the inner span"
    );
    let got = collector.got.lock().unwrap();
    let (headers, path, _) = &got[0];
    assert_eq!(path, "/v1/traces");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-api-key"], "k-123");
}

/// A collector that is down costs spans, never requests: they are answered, the drops
/// counted in `rampart_otlp_spans_total{result="dropped"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_drops_spans_not_requests() {
    let up = Upstream::start("app").await;
    let dead = rampart_test_support::dead_addr();
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\n[tracing]\notlp = \"http://{dead}\"\n",
        up.authority()
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(client::plain(edge.http(), get("h", "/")).await.status, 200);
    }
    let a = admin_addr(&edge);
    let mut dropped = String::new();
    for _ in 0..100 {
        let m = admin(a, "GET", "/metrics", "").await;
        dropped = String::from_utf8_lossy(&m.body)
            .lines()
            .find(|l| l.starts_with("rampart_otlp_spans_total{result=\"dropped\"}"))
            .unwrap_or_default()
            .to_owned();
        if dropped.ends_with(" 5") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped.ends_with(" 5"), "{dropped:?}");
}
