//! A fleet: several instances sharing rate limits, lockouts and operator changes through a
//! real `redis-server` (started here on a free port), and what happens when it is killed,
//! made slow or flushed. Also the single instance's own persistence under `state_dir`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::Request;
use rampart_test_support::client::{self, ReqBody};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::{eventually, TempDir};
use serde_json::json;

use crate::harness::{futures_block, start, start_in, TestEdge};

/// A `redis-server` on a free port, killed on drop.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
    dir: TempDir,
}

impl Redis {
    pub(crate) fn start() -> Self {
        Self::start_on(rampart_test_support::free_port(), TempDir::new("redis"))
    }

    fn start_on(port: u16, dir: TempDir) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by .ci/run");
        let r = Self { child, port, dir };
        let end = Instant::now() + Duration::from_secs(10);
        while r.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed with redis-server");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn kill(mut self) -> (u16, TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let dir = std::mem::replace(&mut self.dir, TempDir::new("redis-gone"));
        (port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state_toml(port: u16, prefix: &str) -> String {
    format!(
        r#"
[state]
backend = "redis"
redis = "redis://127.0.0.1:{port}"
prefix = "{prefix}"
fleet_size = 3
timeout = "100ms"
breaker_failures = 2
breaker_open = "300ms"
"#
    )
}

fn fleet_toml(up: &Upstream, port: u16, prefix: &str, extra: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[logging]
access = "off"
audit = "audit.log"
{state}
[upstreams.app]
servers = ["{up}"]

[limits.ten]
rate = "10/m"

[limits.login]
rate = "1000/m"
lockout = {{ failures = 3, for = "15m" }}

{extra}

[[routes]]
path = "/limited/"
upstream = "app"
limit = "ten"

[[routes]]
path = "/status/"
upstream = "app"
limit = "login"

[[routes]]
path = "/"
upstream = "app"
"#,
        state = state_toml(port, prefix),
        up = up.authority()
    )
}

fn admin(edge: &TestEdge) -> SocketAddr {
    edge.running.as_ref().unwrap().live.admin_addr().unwrap()
}

async fn admin_json(edge: &TestEdge, path: &str) -> serde_json::Value {
    client::plain(admin(edge), client::get("admin", path))
        .await
        .json()
}

/// Waits until the instance decides with the shared state.
async fn shared(edge: &TestEdge) {
    let a = admin(edge);
    let ok = eventually(Duration::from_secs(10), || {
        let r = futures_block(client::plain(a, client::get("admin", "/health")));
        (r.json()["state"]["mode"] == "shared").then_some(())
    })
    .await;
    assert!(ok.is_some(), "never reached shared mode");
}

fn get(path: &str) -> Request<ReqBody> {
    client::get("app.test", path)
}

fn login(path: &str, user: &str) -> Request<ReqBody> {
    Request::post(path)
        .header("host", "app.test")
        .header("content-type", "application/json")
        .body(client::full(
            json!({"username": user, "password": "x"}).to_string(),
        ))
        .unwrap()
}

fn audit_lines(edge: &TestEdge) -> String {
    std::fs::read_to_string(edge.dir.path().join("audit.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_admit_a_shared_limit_exactly_once() {
    let redis = Redis::start();
    let up = Upstream::start("app").await;
    let toml = fleet_toml(&up, redis.port, "exact:", "");
    let edges = [start(&toml).await, start(&toml).await, start(&toml).await];
    for e in &edges {
        shared(e).await;
    }
    // 90 concurrent requests, 30 through each instance, from one client address: a
    // `10/m` limit admits 10 in all (not 10 per instance).
    let calls_before = evalsha_calls(&redis);
    let mut tasks = Vec::new();
    for e in &edges {
        for _ in 0..30 {
            let addr = e.http();
            tasks.push(tokio::spawn(async move {
                client::plain(addr, get("/limited/x")).await.status.as_u16()
            }));
        }
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => refused += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(
        (ok, refused),
        (10, 80),
        "the fleet admits the limit exactly"
    );
    // Requests that arrive together share a script call (batched per instance).
    let calls = evalsha_calls(&redis) - calls_before;
    eprintln!("90 concurrent decisions: {calls} script calls");
    assert!(
        calls < 90,
        "{calls} calls for 90 requests: nothing was batched"
    );
    // One key, expiring by itself when its theoretical arrival time passes (≤ 60 s).
    let keys = redis.cli(&["--scan", "--pattern", "exact:rl:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let ttl: i64 = redis.cli(&["PTTL", keys.trim()]).parse().unwrap();
    assert!(ttl > 50_000 && ttl <= 60_000, "ttl {ttl}");
    // A refused answer says when to retry; an allowed one carries the shared quota.
    let r = client::plain(edges[1].http(), get("/limited/x")).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Flushed scripts (a restarted or failed-over server) are loaded again: still exact.
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    let r = client::plain(edges[2].http(), get("/limited/x")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let r = client::plain(edges[2].http(), get("/other")).await;
    assert_eq!(r.status, 200);
    let h = admin_json(&edges[0], "/health").await;
    assert_eq!(h["state"]["backend"], "redis");
    assert_eq!(h["status"], "healthy", "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_through_one_instance_is_honoured_by_the_others() {
    let redis = Redis::start();
    let up = Upstream::start("app").await;
    let toml = fleet_toml(&up, redis.port, "lock:", "");
    let edges = [start(&toml).await, start(&toml).await, start(&toml).await];
    for e in &edges {
        shared(e).await;
    }
    // Failures spread over the fleet count together.
    for e in &edges {
        let r = client::plain(e.http(), login("/status/401", "Mallory")).await;
        assert_eq!(r.status, 401);
    }
    let n = up.count();
    for e in &edges {
        let r = client::plain(e.http(), login("/status/200", "mallory")).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.json()["error"], "account_locked");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry > 800 && retry <= 900, "{retry}");
    }
    assert_eq!(up.count(), n, "a locked login never reaches the upstream");
    // Another account is free, and a success clears a count on every instance.
    let r = client::plain(edges[0].http(), login("/status/401", "bob")).await;
    assert_eq!(r.status, 401);
    let r = client::plain(edges[1].http(), login("/status/200", "bob")).await;
    assert_eq!(r.status, 200);
    for e in &edges[..2] {
        let r = client::plain(e.http(), login("/status/401", "bob")).await;
        assert_eq!(r.status, 401);
    }
    let r = client::plain(edges[2].http(), login("/status/200", "bob")).await;
    assert_eq!(r.status, 200, "two failures after a success do not lock");
    // The lock is one key with the lock's lifetime; the failure count is gone.
    let lock = redis.cli(&["--scan", "--pattern", "lock:lk:*"]);
    assert_eq!(lock, "lock:lk:login:{account:mallory}");
    let ttl: i64 = redis.cli(&["PTTL", &lock]).parse().unwrap();
    assert!(ttl > 890_000, "{ttl}");
    assert!(
        audit_lines(&edges[2]).contains("auth.lockout"),
        "the locking instance audits it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_and_a_drain_through_one_admin_api_reach_every_instance() {
    let redis = Redis::start();
    let blue = Upstream::start("blue").await;
    let green = Upstream::start("green").await;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[logging]
access = "off"
audit = "audit.log"
{state}
[upstreams.blue]
servers = ["{blue}"]
[upstreams.green]
servers = ["{green}"]
[[routes]]
name = "app"
path = "/"
upstream = "blue"
"#,
        state = state_toml(redis.port, "bg:"),
        blue = blue.authority(),
        green = green.authority()
    );
    let edges = [start(&toml).await, start(&toml).await, start(&toml).await];
    for e in &edges {
        shared(e).await;
        let r = client::plain(e.http(), get("/")).await;
        assert_eq!(r.header("x-upstream"), Some("blue"));
    }
    let switch = Request::post("/routes")
        .header("host", "admin")
        .body(client::full(
            json!({"from": "blue", "to": "green"}).to_string(),
        ))
        .unwrap();
    let r = client::plain(admin(&edges[0]), switch).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t0 = Instant::now();
    for e in &edges {
        let addr = e.http();
        let on_green = eventually(Duration::from_secs(1), || {
            let r = futures_block(client::plain(addr, get("/")));
            (r.header("x-upstream") == Some("green")).then_some(())
        })
        .await;
        assert!(on_green.is_some(), "an instance did not switch within 1 s");
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // A drain made through another instance.
    let drain = Request::post(format!("/upstreams/green/{}", green.authority()))
        .header("host", "admin")
        .body(client::full(json!({"drain": true}).to_string()))
        .unwrap();
    assert_eq!(client::plain(admin(&edges[1]), drain).await.status, 200);
    for e in &edges {
        let a = admin(e);
        let drained = eventually(Duration::from_secs(1), || {
            let u = futures_block(client::plain(a, client::get("admin", "/upstreams"))).json();
            let green = u["upstreams"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "green")?
                .clone();
            (green["servers"][0]["draining"] == true).then_some(())
        })
        .await;
        assert!(drained.is_some(), "drain did not reach every instance");
    }
    // Each instance audits the change it received.
    let audited = eventually(Duration::from_secs(2), || {
        audit_lines(&edges[2])
            .contains("now to upstream green (from the fleet)")
            .then_some(())
    })
    .await;
    assert!(audited.is_some(), "{}", audit_lines(&edges[2]));
    // A new instance (a restart) reads the stored changes.
    let late = start(&toml).await;
    shared(&late).await;
    let addr = late.http();
    let picked_up = eventually(Duration::from_secs(2), || {
        let r = futures_block(client::plain(addr, get("/")));
        (r.status == 502 || r.header("x-upstream") == Some("green")).then_some(())
    })
    .await;
    assert!(picked_up.is_some(), "a new instance still routes to blue");
    let u = admin_json(&late, "/upstreams").await;
    let routes = u["upstreams"][1]["routes"].clone();
    assert_eq!(routes, json!(["app"]), "{u}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_falls_back_without_a_5xx_and_shared_mode_resumes() {
    let redis = Redis::start();
    let up = Upstream::start("app").await;
    let toml = fleet_toml(
        &up,
        redis.port,
        "kill:",
        r#"
[limits.open]
rate = "100000/s"
[limits.strict]
rate = "3/m"
on_state_error = "deny"
[[routes]]
path = "/open/"
upstream = "app"
limit = "open"
[[routes]]
path = "/strict/"
upstream = "app"
limit = "strict"
"#,
    );
    let edge = start(&toml).await;
    shared(&edge).await;
    // Load while the server dies.
    let addr = edge.http();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
            let mut slowest = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = client::plain(addr, get("/open/x")).await;
                slowest = slowest.max(t.elapsed());
                *statuses.entry(r.status.as_u16()).or_default() += 1;
            }
            (statuses, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (port, dir) = redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = admin_json(&edge, "/health").await;
    assert_eq!(h["state"]["mode"], "fallback", "{h}");
    assert_eq!(h["status"], "degraded");
    let ready = client::plain(admin(&edge), client::get("admin", "/ready")).await;
    assert_eq!(ready.status, 200, "the fallback still serves correctly");
    // The fallback enforces the limit divided by the fleet size: 10/m over 3 is 3 here.
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(client::plain(addr, get("/limited/y")).await.status.as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // A `deny` limit refuses with 503 while the state is gone.
    let r = client::plain(addr, get("/strict/z")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "state_unavailable");
    let metrics = client::plain(admin(&edge), client::get("admin", "/metrics"))
        .await
        .text();
    assert!(metrics.contains("rampart_state_shared 0"), "{metrics}");
    assert!(audit_lines(&edge).contains("state.degraded"));
    // Back: shared mode resumes by itself.
    let redis = Redis::start_on(port, dir);
    let back = eventually(Duration::from_secs(10), || {
        let h = futures_block(client::plain(admin(&edge), client::get("admin", "/health")));
        (h.json()["state"]["mode"] == "shared").then_some(())
    })
    .await;
    assert!(back.is_some(), "shared mode did not resume");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        let (statuses, slowest) = t.await.unwrap();
        assert!(
            statuses.keys().all(|s| *s < 500),
            "a 5xx during the outage: {statuses:?}"
        );
        assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    }
    assert!(audit_lines(&edge).contains("state.restored"));
    let metrics = client::plain(admin(&edge), client::get("admin", "/metrics"))
        .await
        .text();
    assert!(metrics.contains("rampart_state_shared 1"), "{metrics}");
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: {metrics}"))
    };
    // It opened (at least once: a reconnect may fail again while Redis comes back), and
    // it closed once more than it opened (the first connect counts): it ends shared.
    let (opened, closed) = (
        count("rampart_state_breaker_opened_total "),
        count("rampart_state_breaker_closed_total "),
    );
    assert!(opened >= 1 && closed == opened + 1, "{opened} {closed}");
    let r = client::plain(addr, get("/strict/z")).await;
    assert_eq!(r.status, 200);
    assert!(!redis
        .cli(&["--scan", "--pattern", "kill:rl:strict:*"])
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_opens_the_breaker_and_requests_keep_flowing() {
    let redis = Redis::start();
    let up = Upstream::start("app").await;
    let toml = fleet_toml(&up, redis.port, "slow:", "");
    let edge = start(&toml).await;
    shared(&edge).await;
    // The server stalls for 3 s; each request waits at most the 100 ms timeout, and once
    // the breaker is open none waits at all.
    let port = redis.port.to_string();
    let sleeper = std::thread::spawn(move || {
        Command::new("redis-cli")
            .args(["-p", &port, "DEBUG", "SLEEP", "3"])
            .output()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = client::plain(edge.http(), login("/status/200", "sam")).await;
        times.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        times.iter().all(|t| *t < Duration::from_millis(400)),
        "{times:?}"
    );
    assert!(
        times[5..].iter().all(|t| *t < Duration::from_millis(50)),
        "the open breaker does not wait: {times:?}"
    );
    let h = admin_json(&edge, "/health").await;
    assert_eq!(h["state"]["mode"], "fallback", "{h}");
    let _ = sleeper.join();
    shared(&edge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_instance_keeps_switches_and_lockouts_across_a_restart() {
    let blue = Upstream::start("blue").await;
    let green = Upstream::start("green").await;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[upstreams.blue]
servers = ["{blue}"]
[upstreams.green]
servers = ["{green}"]
[limits.login]
rate = "1000/m"
lockout = {{ failures = 2, for = "10m" }}
[[routes]]
path = "/status/"
upstream = "green"
limit = "login"
[[routes]]
name = "app"
path = "/"
upstream = "blue"
"#,
        blue = blue.authority(),
        green = green.authority()
    );
    let dir = TempDir::new("restart");
    let keep = dir.path().to_path_buf();
    let edge = start_in(dir, &toml).await;
    let switch = Request::post("/routes/app")
        .header("host", "admin")
        .body(client::full(json!({"upstream": "green"}).to_string()))
        .unwrap();
    assert_eq!(client::plain(admin(&edge), switch).await.status, 200);
    for _ in 0..2 {
        let r = client::plain(edge.http(), login("/status/401", "eve")).await;
        assert_eq!(r.status, 401);
    }
    let r = client::plain(edge.http(), login("/status/200", "eve")).await;
    assert_eq!(r.status, 429);
    // Saved off the request path: wait for the files.
    let state = keep.join("state");
    let saved = eventually(Duration::from_secs(2), || {
        (state.join("control.json").is_file() && state.join("lockouts.json").is_file())
            .then_some(())
    })
    .await;
    assert!(saved.is_some(), "nothing saved under state_dir");
    // Restart on the same directory.
    let mut edge = edge;
    let old_dir = std::mem::replace(&mut edge.dir, TempDir::new("unused"));
    edge.running.take().unwrap().drain().await;
    let again = start_in(old_dir, &toml).await;
    let r = client::plain(again.http(), get("/")).await;
    assert_eq!(
        r.header("x-upstream"),
        Some("green"),
        "a restart after a blue-green switch must not go back to blue"
    );
    let r = client::plain(again.http(), login("/status/200", "eve")).await;
    assert_eq!(r.status, 429, "a restart must not unlock an account");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 500 && retry <= 600, "{retry}");
    let r = client::plain(again.http(), login("/status/200", "frank")).await;
    assert_eq!(r.status, 200);
}

/// Limits shared by two instances through `rediss://` with a private CA and an ACL
/// password read from `password_file`: TLS verified, credentials used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_redis_with_a_password_from_a_file_is_shared() {
    let pki = rampart_test_support::pki::Pki::new();
    let leaf = pki.leaf("redis", &["localhost", "127.0.0.1"]);
    let port = rampart_test_support::free_port();
    let dir = TempDir::new("redis-tls");
    let mut child = Command::new("redis-server")
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
            "--requirepass",
            "fleet-secret-9f3a",
        ])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--dir", dir.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed by .ci/run");
    let up = Upstream::start("app").await;
    let secret = dir.write("redis-password", "fleet-secret-9f3a\n");
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[state]
redis = "rediss://localhost:{port}"
ca = "{ca}"
password_file = "{secret}"
prefix = "tls:"
[upstreams.app]
servers = ["{up}"]
[limits.ten]
rate = "10/m"
[[routes]]
path = "/"
upstream = "app"
limit = "ten"
"#,
        ca = pki.ca_path().display(),
        secret = secret.display(),
        up = up.authority()
    );
    let a = start(&toml).await;
    let b = start(&toml).await;
    shared(&a).await;
    shared(&b).await;
    let mut ok = 0;
    for i in 0..16 {
        let e = if i % 2 == 0 { &a } else { &b };
        if client::plain(e.http(), get("/x")).await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
    // A wrong password never reaches shared mode, and still serves (fallback).
    let wrong = toml.replace(
        &secret.display().to_string(),
        &dir.write("bad", "nope").display().to_string(),
    );
    let c = start(&wrong).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let h = admin_json(&c, "/health").await;
    assert_eq!(h["state"]["mode"], "fallback", "{h}");
    let err = h["state"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        err.contains("auth") || err.contains("password") || err.contains("noauth"),
        "{err}"
    );
    assert_eq!(client::plain(c.http(), get("/x")).await.status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// Sentinel names the master; the fleet shares a limit through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_finds_the_master() {
    let master = Redis::start();
    let sport = rampart_test_support::free_port();
    let sdir = TempDir::new("sentinel");
    let conf = sdir.write(
        "sentinel.conf",
        format!(
            "port {sport}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 1\nsentinel down-after-milliseconds mymaster 5000\n",
            master.port
        ),
    );
    let mut sentinel = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs as a sentinel");
    let up = Upstream::start("app").await;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[state]
redis = "redis+sentinel://127.0.0.1:{sport}/mymaster"
prefix = "sen:"
[upstreams.app]
servers = ["{up}"]
[limits.five]
rate = "5/m"
[[routes]]
path = "/"
upstream = "app"
limit = "five"
"#,
        up = up.authority()
    );
    let a = start(&toml).await;
    let b = start(&toml).await;
    shared(&a).await;
    shared(&b).await;
    let mut ok = 0;
    for i in 0..10 {
        let e = if i % 2 == 0 { &a } else { &b };
        if client::plain(e.http(), get("/x")).await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 5);
    assert!(!master.cli(&["--scan", "--pattern", "sen:rl:*"]).is_empty());
    let _ = sentinel.kill();
    let _ = sentinel.wait();
}

/// A three-node Redis Cluster: limits keyed on different nodes are each exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_shares_limits_across_its_nodes() {
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let port = rampart_test_support::free_port();
        let dir = TempDir::new("cluster");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by .ci/run");
        nodes.push(Redis { child, port, dir });
        ports.push(port);
    }
    for n in &nodes {
        let end = Instant::now() + Duration::from_secs(10);
        while n.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < end, "cluster node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let end = Instant::now() + Duration::from_secs(15);
    while !nodes
        .iter()
        .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < end, "cluster never became ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    let up = Upstream::start("app").await;
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[state]
redis = "redis+cluster://{}"
prefix = "cl:"
[upstreams.app]
servers = ["{up}"]
[limits.per_ip]
rate = "4/m"
[limits.per_client]
rate = "6/m"
key = "header:X-Client"
[[routes]]
path = "/"
upstream = "app"
limit = ["per_ip", "per_client"]
"#,
        addrs.join(","),
        up = up.authority()
    );
    let a = start(&toml).await;
    let b = start(&toml).await;
    shared(&a).await;
    shared(&b).await;
    // Different clients (their own header keys) through both instances: the per-IP
    // limit (all of them share one address) admits 4 in all.
    let mut ok = 0;
    for i in 0..12 {
        let e = if i % 2 == 0 { &a } else { &b };
        let r = Request::get("/x")
            .header("host", "app.test")
            .header("x-client", format!("c{i}"))
            .body(client::empty())
            .unwrap();
        if client::plain(e.http(), r).await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 4);
    // The keys live on more than one node.
    let holding = nodes
        .iter()
        .filter(|n| !n.cli(&["--scan", "--pattern", "cl:rl:*"]).is_empty())
        .count();
    assert!(holding >= 2, "every key on one node");
}

const JWT_SECRET: &str = "fleet-test-secret-0123456789abcdef0123456789";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bearer(jti: &str, iat: u64) -> Request<ReqBody> {
    let claims = json!({"sub": "u1", "jti": jti, "iat": iat, "exp": unix_now() + 600});
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    Request::get("/api/x")
        .header("host", "app.test")
        .header("authorization", format!("Bearer {t}"))
        .body(client::empty())
        .unwrap()
}

fn post_json(path: &str, body: serde_json::Value) -> Request<ReqBody> {
    Request::post(path)
        .header("host", "admin")
        .body(client::full(body.to_string()))
        .unwrap()
}

fn jwt_toml(up: &Upstream, state: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[logging]
access = "off"
audit = "audit.log"
{state}
[jwt]
alg = "HS256"
secret = "{JWT_SECRET}"
[upstreams.app]
servers = ["{up}"]
[[routes]]
path = "/api/"
upstream = "app"
auth = ["jwt"]
"#,
        up = up.authority()
    )
}

/// A token revoked through one instance's admin API is refused by every instance, and a
/// cut-off refuses every older token; bad revocations are refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_instance_is_refused_by_all() {
    let redis = Redis::start();
    let up = Upstream::start("app").await;
    let toml = jwt_toml(&up, &state_toml(redis.port, "rev:"));
    let edges = [start(&toml).await, start(&toml).await];
    for e in &edges {
        shared(e).await;
        assert_eq!(
            client::plain(e.http(), bearer("t-1", unix_now()))
                .await
                .status,
            200
        );
    }
    let r = client::plain(
        admin(&edges[0]),
        post_json(
            "/revocations",
            json!({"jti": "t-1", "expires": unix_now() + 600}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for e in &edges {
        let addr = e.http();
        let refused = eventually(Duration::from_secs(1), || {
            let r = futures_block(client::plain(addr, bearer("t-1", unix_now())));
            (r.status == 403).then_some(r)
        })
        .await;
        assert!(
            refused.is_some(),
            "a revoked token still passes an instance"
        );
        assert_eq!(
            client::plain(addr, bearer("t-2", unix_now())).await.status,
            200
        );
    }
    // A cut-off: tokens issued before it are refused everywhere.
    let cut = unix_now() - 5;
    let r = client::plain(
        admin(&edges[1]),
        post_json("/revocations", json!({"before": cut})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let addr = edges[0].http();
    let old_refused = eventually(Duration::from_secs(1), || {
        let r = futures_block(client::plain(addr, bearer("t-3", cut - 60)));
        (r.status == 403).then_some(())
    })
    .await;
    assert!(old_refused.is_some());
    assert_eq!(
        client::plain(addr, bearer("t-4", unix_now())).await.status,
        200
    );
    let list = admin_json(&edges[0], "/revocations").await;
    assert_eq!(list["before"], cut);
    assert_eq!(list["ids"][0]["jti"], "t-1");
    // Bad requests.
    for body in [
        json!({"jti": ""}),
        json!({"jti": "x", "expires": 5}),
        json!({"before": unix_now() + 3600}),
        json!({"before": "yesterday"}),
        json!({"nothing": true}),
    ] {
        let r = client::plain(admin(&edges[0]), post_json("/revocations", body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    assert!(audit_lines(&edges[0]).contains("auth.revoke"));
}

/// One instance keeps its revocations across a restart (under `state_dir`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_instance_keeps_revocations_across_a_restart() {
    let up = Upstream::start("app").await;
    let toml = jwt_toml(&up, "");
    let dir = TempDir::new("revoke");
    let state = dir.path().join("state");
    let mut edge = start_in(dir, &toml).await;
    let r = client::plain(
        admin(&edge),
        post_json("/revocations", json!({"jti": "gone"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        client::plain(edge.http(), bearer("gone", unix_now()))
            .await
            .status,
        403
    );
    let saved = eventually(Duration::from_secs(2), || {
        std::fs::read_to_string(state.join("control.json"))
            .ok()
            .filter(|t| t.contains("gone"))
    })
    .await;
    assert!(saved.is_some());
    let old_dir = std::mem::replace(&mut edge.dir, TempDir::new("unused"));
    edge.running.take().unwrap().drain().await;
    let again = start_in(old_dir, &toml).await;
    assert_eq!(
        client::plain(again.http(), bearer("gone", unix_now()))
            .await
            .status,
        403
    );
    assert_eq!(
        client::plain(again.http(), bearer("kept", unix_now()))
            .await
            .status,
        200
    );
}

fn evalsha_calls(redis: &Redis) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `lease = 5`: each round trip takes five tokens for a hot key and the instance spends
/// the rest itself. The fleet still never admits more than its limit; it asks Redis about a
/// fifth as often.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasing_cuts_round_trips_and_never_admits_more_than_the_limit() {
    let redis = Redis::start();
    let up = Upstream::start("app").await;
    let toml = fleet_toml(
        &up,
        redis.port,
        "lease:",
        "[limits.hot]\nrate = \"30/m\"\nlease = 5\n[[routes]]\npath = \"/hot/\"\nupstream = \"app\"\nlimit = \"hot\"\n",
    );
    let edges = [start(&toml).await, start(&toml).await, start(&toml).await];
    for e in &edges {
        shared(e).await;
    }
    let before = evalsha_calls(&redis);
    let mut ok = 0;
    for i in 0..30 {
        let r = client::plain(edges[i % 3].http(), get("/hot/x")).await;
        if r.status == 200 {
            ok += 1;
        }
    }
    let asked = evalsha_calls(&redis) - before;
    eprintln!("lease = 5: {ok} of 30 admitted with {asked} round trips");
    assert!((30 - 4 * 3..=30).contains(&ok), "admitted {ok}");
    assert!(asked <= 12, "{asked} round trips for 30 requests");
    // The quota is spent: what follows is refused (a token refills every 2 s).
    let mut more = 0;
    for i in 0..30 {
        if client::plain(edges[i % 3].http(), get("/hot/x"))
            .await
            .status
            == 200
        {
            more += 1;
        }
    }
    assert!(
        ok + more <= 31,
        "the fleet admitted {} of a 30/m limit",
        ok + more
    );
    let m = client::plain(admin(&edges[0]), client::get("admin", "/metrics"))
        .await
        .text();
    let leased: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("rampart_state_lease_decisions_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(leased >= 4, "{m}");
}

/// The batched script in a real Redis: a key shared by the batch's requests (one busy
/// client) is read and written once, and decides exactly as one call per request would:
/// with a 1 s interval and a 3 s tolerance, 4 of 10 pass; a second key interleaved keeps
/// its own count; a request refused at its first key leaves its second key untouched.
#[test]
fn a_batch_decides_a_shared_key_as_requests_one_by_one() {
    let redis = Redis::start();
    let script = rampart_server::state::fleet::GCRA_BATCH;
    let (t, tol) = ("1000000", "3000000");
    // 10 requests on `hot`, every other one also on `cold` (after `hot`).
    let mut keys: Vec<&str> = Vec::new();
    let mut args: Vec<String> = vec!["10".into()];
    for i in 0..10 {
        if i % 2 == 0 {
            keys.extend(["b:hot", "b:cold"]);
            args.extend(["2", t, tol, "1", t, tol, "1"].map(str::to_owned));
        } else {
            keys.push("b:hot");
            args.extend(["1", t, tol, "1"].map(str::to_owned));
        }
    }
    let mut cmd: Vec<String> = vec!["EVAL".into(), script.into(), keys.len().to_string()];
    cmd.extend(keys.iter().map(|k| (*k).to_owned()));
    cmd.extend(args);
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = redis.cli(&refs);
    let v: Vec<u64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    // Pairs (ahead, granted) in key order.
    let granted: Vec<u64> = v.chunks(2).map(|p| p[1]).collect();
    // In key order (r0 hot, r0 cold, r1 hot, r2 hot, r2 cold, r3 hot, r4 hot, r4 cold, …):
    // requests 0..4 pass `hot` (0 s, 1 s, 2 s, 3 s ahead) and 0 and 2 then `cold`; from
    // request 4 `hot` refuses, and request 4's `cold` is not looked at.
    assert_eq!(
        granted,
        [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "{out}"
    );
    let aheads: Vec<u64> = v.chunks(2).map(|p| p[0]).collect();
    assert_eq!(&aheads[..4], [0, 0, 1_000_000, 2_000_000], "{out}");
    // `hot` moved 4 intervals, `cold` 2 (its third request was stopped at `hot`).
    let ttl = |k: &str| redis.cli(&["PTTL", k]).parse::<i64>().unwrap();
    assert!((3_900..=4_000).contains(&ttl("b:hot")), "{}", ttl("b:hot"));
    assert!(
        (1_900..=2_000).contains(&ttl("b:cold")),
        "{}",
        ttl("b:cold")
    );
}
