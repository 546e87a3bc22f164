//! gRPC through the edge: a real grpcio server behind rampart (HTTP/2 to the upstream, h2c
//! and TLS), called by a real grpcio client over TLS: unary, server-streaming,
//! client-streaming and bidirectional calls, trailers both ways, a deadline, an upstream
//! error status, a refusal by rampart itself in gRPC's terms, and the gRPC health check.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rampart_server::Running;
use rampart_test_support::pki::Pki;
use rampart_test_support::TempDir;
use serde_json::Value;

use crate::harness::{admin_get, edge_at, python, start_edge, AppServer};

const SERVER: &str = include_str!("grpc/grpc_echo.py");
const CLIENT: &str = include_str!("grpc/grpc_calls.py");

fn toml(pki: &Pki, upstream: &str) -> String {
    let leaf = pki.leaf("edge", &["localhost"]);
    format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [logging]\naccess = \"off\"\naudit = \"audit.log\"\n\
         [api_keys]\nkeys = [{{ name = \"ci\", key = \"0123456789abcdef0123\" }}]\n\
         [upstreams.grpc]\n{upstream}\n\
         [upstreams.slow]\n{slow}\nresponse_timeout = \"300ms\"\n\
         [[routes]]\npath = \"/test.Locked/\"\nupstream = \"grpc\"\nauth = [\"api_key\"]\n\
         [[routes]]\npath = \"/test.Echo/Slower\"\nupstream = \"slow\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"grpc\"\n",
        leaf.cert.display(),
        leaf.key.display(),
        // The same server in a pool of its own, without the health check.
        slow = upstream
            .lines()
            .filter(|l| !l.starts_with("health_check"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

async fn start(dir: &Path, toml: &str) -> Running {
    start_edge(edge_at(dir, toml, |_| {}))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The echo server over h2c, in a directory of its own with `files` beside it.
fn echo_app(tag: &str, files: &[(&str, &str)]) -> (TempDir, AppServer) {
    let dir = TempDir::new(tag);
    dir.write("grpc_echo.py", SERVER);
    for (name, text) in files {
        dir.write(name, text);
    }
    let app = AppServer::start(dir.path(), "grpc_echo", &[]);
    (dir, app)
}

/// An edge in `tmp` whose pools go to `app` over h2c.
async fn h2c_edge(pki: &Pki, tmp: &TempDir, app: &AppServer) -> Running {
    start(
        tmp.path(),
        &toml(
            pki,
            &format!("servers = [\"{}\"]\nprotocol = \"h2\"", app.addr),
        ),
    )
    .await
}

/// Runs the client against the edge; its JSON.
async fn calls(r: &Running, pki: &Pki, dir: &Path) -> Value {
    run_client(r, pki, dir, &[]).await
}

async fn run_client(r: &Running, pki: &Pki, dir: &Path, extra: &[&str]) -> Value {
    let client = dir.join("grpc_calls.py");
    std::fs::write(&client, CLIENT).unwrap();
    let target = format!("localhost:{}", r.https_addr.unwrap().port());
    let ca = pki.ca_path();
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(client)
            .arg(target)
            .arg(ca)
            .args(extra)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check(v: &Value) {
    let unary = v["unary"].as_str().unwrap();
    assert!(unary.starts_with("unary:hello xff=127.0.0.1"), "{v:#}");
    // The client's deadline reached the server (grpc-timeout forwarded).
    assert!(unary.ends_with("timeout=yes"), "{v:#}");
    assert_eq!(v["unary_trailer"], "t-1", "{v:#}");
    // A gRPC answer carries the transport's security headers, not a document's.
    let headers = v["unary_headers"].to_string();
    for present in [
        "strict-transport-security",
        "x-content-type-options",
        "x-request-id",
    ] {
        assert!(headers.contains(present), "{present}: {headers}");
    }
    for absent in [
        "content-security-policy",
        "x-frame-options",
        "permissions-policy",
        "cross-origin-opener-policy",
        "referrer-policy",
    ] {
        assert!(!headers.contains(absent), "{absent}: {headers}");
    }
    assert_eq!(
        v["server_stream"],
        serde_json::json!(["item-0", "item-1", "item-2"])
    );
    assert_eq!(v["client_stream"], "a+b+c");
    assert_eq!(
        v["bidi"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2"])
    );
    assert_eq!(v["large"], true, "{v:#}");
    assert_eq!(v["deadline"], "DEADLINE_EXCEEDED", "{v:#}");
    assert!(v["deadline_ms"].as_u64().unwrap() < 2000, "{v:#}");
    let edge = v["edge_timeout"].as_array().unwrap();
    assert_eq!(edge[0], "DEADLINE_EXCEEDED", "{v:#}");
    assert!(
        edge[1]
            .as_str()
            .unwrap()
            .starts_with("gateway_timeout (request "),
        "{v:#}"
    );
    assert_eq!(v["fail"], serde_json::json!(["NOT_FOUND", "no such thing"]));
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused[0], "UNAUTHENTICATED", "{v:#}");
    assert!(
        refused[1]
            .as_str()
            .unwrap()
            .starts_with("unauthorized (request "),
        "{v:#}"
    );
}

/// Every kind of call through the edge to an h2c upstream and to a TLS upstream (ALPN
/// h2), with the gRPC health check passing; the deadline the client set does not count
/// against the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_streaming_trailers_deadlines_and_refusals() {
    let pki = Pki::new();
    let app_dir = TempDir::new("grpc-app");
    app_dir.write("grpc_echo.py", SERVER);
    let plain = AppServer::start(app_dir.path(), "grpc_echo", &[]);
    let leaf = pki.leaf("grpc-up", &["127.0.0.1"]);
    let tls_dir = TempDir::new("grpc-app-tls");
    tls_dir.write("grpc_echo.py", SERVER);
    let tls = AppServer::start(
        tls_dir.path(),
        "grpc_echo",
        &[leaf.cert.to_str().unwrap(), leaf.key.to_str().unwrap()],
    );
    let ca = pki.ca_path().display().to_string();
    for upstream in [
        format!(
            "servers = [\"{}\"]\nprotocol = \"h2\"\nmax_fails = 1\n\
             health_check = {{ kind = \"grpc\", interval = \"200ms\", timeout = \"200ms\" }}",
            plain.addr
        ),
        format!(
            "servers = [\"https://{}\"]\nprotocol = \"auto\"\ntls = {{ ca = \"{ca}\" }}\n\
             max_fails = 1\nhealth_check = {{ kind = \"grpc\", interval = \"200ms\", timeout = \"200ms\" }}",
            tls.addr
        ),
    ] {
        let tmp = TempDir::new("edge-grpc");
        let r = start(tmp.path(), &toml(&pki, &upstream)).await;
        let v = calls(&r, &pki, tmp.path()).await;
        check(&v);
        let ups = admin_get(&r, "/upstreams").await.json();
        let server = &ups["upstreams"][0]["servers"][0];
        assert_eq!(server["health_check"], "passing", "{ups:#}");
        assert_eq!(server["errors"], 0, "the client's deadline counted: {ups:#}");
        assert_eq!(server["up"], true, "{ups:#}");
    }
}

/// A server whose gRPC health service says NOT_SERVING is taken out (503/UNAVAILABLE for
/// calls) and comes back when it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_health_check_takes_a_not_serving_server_out() {
    let pki = Pki::new();
    let (app_dir, app) = echo_app("grpc-health-app", &[]);
    let tmp = TempDir::new("edge-grpc-health");
    let r = start(
        tmp.path(),
        &toml(
            &pki,
            &format!(
                "servers = [\"{}\"]\nprotocol = \"h2\"\n\
                 health_check = {{ kind = \"grpc\", interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }}",
                app.addr
            ),
        ),
    )
    .await;
    wait_for(&r, "passing").await;
    app_dir.write("not_serving", "");
    wait_for(&r, "failing").await;
    crate::harness::wait_audited(tmp.path(), "upstream.down", 1).await;
    let audit = std::fs::read_to_string(tmp.path().join("audit.log")).unwrap();
    assert!(audit.contains("NOT_SERVING"), "{audit}");
    std::fs::remove_file(app_dir.path().join("not_serving")).unwrap();
    wait_for(&r, "passing").await;
}

async fn wait_for(r: &Running, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ups = admin_get(r, "/upstreams").await.json();
        let got = ups["upstreams"][0]["servers"][0]["health_check"].clone();
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health check {got}, never {want}: {ups:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// More calls at once than one upstream connection carries (100 streams) open another
/// connection to the server: 120 concurrent calls reach it on at least two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_spread_over_more_connections() {
    let pki = Pki::new();
    let (_app_dir, app) = echo_app("grpc-spread-app", &[]);
    let tmp = TempDir::new("edge-grpc-spread");
    let r = h2c_edge(&pki, &tmp, &app).await;
    let v = run_client(&r, &pki, tmp.path(), &["peers"]).await;
    assert_eq!(v["calls"], 120, "{v}");
    let n = v["connections"].as_u64().unwrap();
    assert!((2..=8).contains(&n), "{v}");
}

/// A server that ends its connections (GOAWAY at a maximum age, as grpc servers and load
/// balancers rotate them) costs no call: rampart stops using a connection that is going
/// away or gone and opens another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_the_server_ending_its_connections() {
    let pki = Pki::new();
    let (_app_dir, app) = echo_app("grpc-age-app", &[("max_age_ms", "300")]);
    let tmp = TempDir::new("edge-grpc-age");
    let r = h2c_edge(&pki, &tmp, &app).await;
    let v = run_client(&r, &pki, tmp.path(), &["sequential"]).await;
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    assert_eq!(v["calls"], 40, "{v}");
    // Over 2 s with connections ending at 300 ms (and a 300 ms grace): several of them.
    assert!(v["connections"].as_u64().unwrap() >= 3, "{v}");
}
