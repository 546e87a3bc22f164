//! TLS to upstreams: a real nginx with certificates from a test CA behind the edge. The
//! certificate is verified (CA file, the server's name or `server_name`), a wrong name or
//! an unknown issuer is a 502 with an audit event and a metric (never a silent downgrade),
//! mutual TLS presents the pool's client certificate, sessions are resumed, the minimum
//! version holds, and `insecure_skip_verify` is a preflight error in production.

use std::path::Path;
use std::time::Duration;

use rampart_server::Running;
use rampart_test_support::pki::Pki;
use rampart_test_support::{client, TempDir};

use crate::harness::{admin_get, audit_count, edge_at, start_edge, wait_audited, Nginx};

/// nginx serving TLS with `leaf` on `{port}`, answering every request with what it saw of
/// the TLS session; `extra` goes into its `server { }`.
fn origin(dir: &TempDir, leaf: &rampart_test_support::pki::Leaf, extra: &str) -> Nginx {
    Nginx::start(
        dir,
        &format!(
            r#"  access_log off;
  server {{
    listen 127.0.0.1:{{port}} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:up:1m;
    {extra}
    location / {{
      default_type text/plain;
      return 200 "origin proto=$ssl_protocol reused=$ssl_session_reused sni=$ssl_server_name client=$ssl_client_s_dn method=$request_method host=$host conn=$connection\n";
    }}
  }}"#,
            cert = leaf.cert.display(),
            key = leaf.key.display(),
        ),
    )
}

fn toml(servers: &str, tls: &str) -> String {
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [logging]\naccess = \"off\"\naudit = \"audit.log\"\n\
         [upstreams.api]\nservers = [{servers}]\nmax_fails = 0\n{tls}\n\
         [[routes]]\npath = \"/\"\nupstream = \"api\"\n"
    )
}

async fn start(dir: &Path, toml: &str) -> Running {
    start_edge(edge_at(dir, toml, |_| {}))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn get(r: &Running, path: &str) -> client::Resp {
    client::plain(r.http_addr.unwrap(), client::get("app.test", path)).await
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An HTTPS upstream whose certificate chains to the pool's `ca` and names the server is
/// used; a POST with a body goes through too; a name the certificate lacks and a CA the
/// pool does not trust are each a 502 with `upstream.tls_failed` audited and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_upstream_and_refused_wrong_name_and_unknown_issuer() {
    let pki = Pki::new();
    let good_dir = TempDir::new("tls-origin-good");
    let good = origin(&good_dir, &pki.leaf("good", &["127.0.0.1"]), "");
    let wrong_dir = TempDir::new("tls-origin-wrong");
    let wrong = origin(&wrong_dir, &pki.leaf("wrong", &["other.example"]), "");
    let stranger = Pki::new();
    let unknown_dir = TempDir::new("tls-origin-unknown");
    let unknown = origin(&unknown_dir, &stranger.leaf("self", &["127.0.0.1"]), "");

    let tmp = TempDir::new("edge-upstream-tls");
    let ca = pki.ca_path().display().to_string();
    let r = start(
        tmp.path(),
        &toml(
            &format!("\"https://127.0.0.1:{}\"", good.port),
            &format!("tls = {{ ca = \"{ca}\" }}"),
        ),
    )
    .await;
    let resp = get(&r, "/x").await;
    let body = resp.text();
    assert_eq!(resp.status, 200, "{body}");
    assert!(body.starts_with("origin proto=TLSv1.3"), "{body}");
    assert!(body.contains("host=app.test"), "{body}");
    let post = client::plain(
        r.http_addr.unwrap(),
        http::Request::post("/submit")
            .header("host", "app.test")
            .body(client::full("a=1"))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 200);
    assert!(post.text().contains("method=POST"), "{}", post.text());
    // `/upstreams` (what `check --live` prints): the last handshake and the certificate.
    let ups: serde_json::Value =
        serde_json::from_str(&admin_get(&r, "/upstreams").await.text()).unwrap();
    let state = &ups["upstreams"][0]["servers"][0]["tls_state"];
    assert_eq!(state["version"], "1.3", "{state}");
    assert_eq!(state["alpn"], "http/1.1", "{state}");
    assert!(
        state["certificate"]["issuer"]
            .as_str()
            .unwrap()
            .contains("rampart test CA"),
        "{state}"
    );
    let days = state["certificate"]["days_left"].as_i64().unwrap();
    assert!(days > 0, "{state}");
    assert!(state["last_failure"].is_null(), "{state}");
    drop(r);

    for (port, why) in [
        (wrong.port, "not valid for the server's name"),
        (unknown.port, "not issued by a trusted CA"),
    ] {
        let tmp = TempDir::new("edge-upstream-tls-bad");
        let r = start(
            tmp.path(),
            &toml(
                &format!("\"https://127.0.0.1:{port}\""),
                &format!("tls = {{ ca = \"{ca}\" }}"),
            ),
        )
        .await;
        let resp = get(&r, "/").await;
        assert_eq!(resp.status, 502, "{}", resp.text());
        assert!(resp.text().contains("bad_gateway"), "{}", resp.text());
        wait_audited(tmp.path(), "upstream.tls_failed", 1).await;
        let audit = std::fs::read_to_string(tmp.path().join("audit.log")).unwrap();
        let line = audit
            .lines()
            .find(|l| l.contains("upstream.tls_failed"))
            .unwrap();
        assert!(line.contains(why), "{line}");
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        // A second request within the second is refused too, and counted, but audited
        // once (a broken server does not flood the audit log).
        assert_eq!(get(&r, "/").await.status, 502);
        let metrics = admin_get(&r, "/metrics").await.text();
        assert!(
            metric_sum(&metrics, "rampart_upstream_tls_verify_failures_total") >= 2.0,
            "{metrics}"
        );
        assert_eq!(audit_count(tmp.path(), "upstream.tls_failed"), 1);
        let ups = admin_get(&r, "/upstreams").await.text();
        assert!(ups.contains("\"tls_verify_failures\":2"), "{ups}");
        let ups: serde_json::Value = serde_json::from_str(&ups).unwrap();
        let state = &ups["upstreams"][0]["servers"][0]["tls_state"];
        assert!(
            state["last_failure"]["reason"]
                .as_str()
                .unwrap()
                .contains(why),
            "{state}"
        );
        assert!(state["last_ok"].is_null(), "{state}");
    }
}

/// `server_name` is what is sent as SNI and verified (servers addressed by IP); without
/// it, a certificate for that name does not verify for the IP. A server that requires a
/// client certificate refuses the pool without `cert`/`key` and sees the pool's
/// certificate with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_and_mutual_tls_to_the_upstream() {
    let pki = Pki::new();
    let dir = TempDir::new("tls-origin-mtls");
    let ca = pki.ca_path().display().to_string();
    let origin = origin(
        &dir,
        &pki.leaf("api", &["api.internal"]),
        &format!("ssl_verify_client on; ssl_client_certificate {ca};"),
    );
    let client_leaf = pki.leaf("edge-client", &["edge.internal"]);
    let servers = format!("\"https://127.0.0.1:{}\"", origin.port);

    // No server_name: the IP is verified and the certificate does not name it.
    let tmp = TempDir::new("edge-sni-missing");
    let r = start(
        tmp.path(),
        &toml(&servers, &format!("tls = {{ ca = \"{ca}\" }}")),
    )
    .await;
    assert_eq!(get(&r, "/").await.status, 502);
    drop(r);

    // server_name, no client certificate: nginx answers 400 itself.
    let tmp = TempDir::new("edge-sni");
    let r = start(
        tmp.path(),
        &toml(
            &servers,
            &format!("tls = {{ ca = \"{ca}\", server_name = \"api.internal\" }}"),
        ),
    )
    .await;
    let resp = get(&r, "/").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("No required SSL certificate"),
        "{}",
        resp.text()
    );
    drop(r);

    // With the client certificate: through, and nginx saw it and the SNI.
    let tmp = TempDir::new("edge-mtls");
    let r = start(
        tmp.path(),
        &toml(
            &servers,
            &format!(
                "tls = {{ ca = \"{ca}\", server_name = \"api.internal\", cert = \"{}\", key = \"{}\" }}",
                client_leaf.cert.display(),
                client_leaf.key.display()
            ),
        ),
    )
    .await;
    let resp = get(&r, "/").await;
    let body = resp.text();
    assert_eq!(resp.status, 200, "{body}");
    assert!(body.contains("sni=api.internal"), "{body}");
    assert!(
        body.contains("client=CN=rcgen self signed cert") || body.contains("client=CN="),
        "{body}"
    );
    assert_eq!(audit_count(tmp.path(), "upstream.tls_failed"), 0);
}

/// New connections to a server seen before resume the TLS session (nginx closes each
/// connection after one answer here, so every request is a new handshake); `min_version
/// = "1.3"` refuses a server that offers only TLS 1.2 (a 502, not a certificate failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_and_the_minimum_version_holds() {
    let pki = Pki::new();
    let ca = pki.ca_path().display().to_string();
    let dir = TempDir::new("tls-origin-resume");
    let origin = origin(
        &dir,
        &pki.leaf("api", &["127.0.0.1"]),
        "keepalive_timeout 0;",
    );
    let tmp = TempDir::new("edge-resume");
    let r = start(
        tmp.path(),
        &toml(
            &format!("\"https://127.0.0.1:{}\"", origin.port),
            &format!("tls = {{ ca = \"{ca}\" }}"),
        ),
    )
    .await;
    let first = get(&r, "/").await.text();
    assert!(first.contains("reused=."), "{first}");
    let mut reused = 0;
    for _ in 0..3 {
        // A TLS 1.3 ticket arrives after the handshake; give it a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if get(&r, "/").await.text().contains("reused=r") {
            reused += 1;
        }
    }
    assert!(reused >= 2, "sessions were not resumed");
    drop(r);

    let dir12 = TempDir::new("tls-origin-12");
    let leaf = pki.leaf("old", &["127.0.0.1"]);
    let old = Nginx::start(
        &dir12,
        &format!(
            "  access_log off;\n  server {{ listen 127.0.0.1:{{port}} ssl; ssl_certificate {}; ssl_certificate_key {}; ssl_protocols TLSv1.2; location / {{ return 200 \"old\"; }} }}",
            leaf.cert.display(),
            leaf.key.display()
        ),
    );
    let servers = format!("\"https://127.0.0.1:{}\"", old.port);
    let tmp = TempDir::new("edge-min13");
    let r = start(
        tmp.path(),
        &toml(
            &servers,
            &format!("tls = {{ ca = \"{ca}\", min_version = \"1.3\" }}"),
        ),
    )
    .await;
    assert_eq!(get(&r, "/").await.status, 502);
    assert_eq!(audit_count(tmp.path(), "upstream.tls_failed"), 0);
    drop(r);
    let tmp = TempDir::new("edge-min12");
    let r = start(
        tmp.path(),
        &toml(&servers, &format!("tls = {{ ca = \"{ca}\" }}")),
    )
    .await;
    assert_eq!(get(&r, "/").await.text(), "old");
}

/// The connection number nginx saw (`conn=N` in the origin's answer).
fn conn_of(body: &str) -> &str {
    body.split("conn=").nth(1).map_or("", str::trim)
}

/// Keep-alive over TLS: sequential requests share one upstream connection; one the server
/// ends (`Connection: close` after its last request, or its idle timeout with a
/// `close_notify`) is never reused, and the next request gets a new connection that
/// resumes the session, with no error on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_reused_and_ended_ones_replaced() {
    let pki = Pki::new();
    let ca = pki.ca_path().display().to_string();
    let dir = TempDir::new("tls-origin-keepalive");
    let origin = origin(
        &dir,
        &pki.leaf("api", &["127.0.0.1"]),
        "keepalive_requests 3; keepalive_timeout 1s;",
    );
    let tmp = TempDir::new("edge-keepalive");
    let r = start(
        tmp.path(),
        &toml(
            &format!("\"https://127.0.0.1:{}\"", origin.port),
            &format!("tls = {{ ca = \"{ca}\" }}"),
        ),
    )
    .await;
    let mut bodies = Vec::new();
    for i in 0..4 {
        let resp = get(&r, &format!("/{i}")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        bodies.push(resp.text());
    }
    let conns: Vec<&str> = bodies.iter().map(|b| conn_of(b)).collect();
    // Three requests on the first connection (the third answered with `Connection:
    // close`), the fourth on a new one.
    assert_eq!(conns[0], conns[1], "{bodies:?}");
    assert_eq!(conns[1], conns[2], "{bodies:?}");
    assert_ne!(conns[2], conns[3], "{bodies:?}");
    assert!(bodies[3].contains("reused=r"), "{bodies:?}");
    // Idle past the server's keep-alive timeout: it closes the pooled connection.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let resp = get(&r, "/after-idle").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let after = resp.text();
    assert_ne!(conn_of(&after), conns[3], "{after}");
    assert!(after.contains("reused=r"), "{after}");
    let metrics = admin_get(&r, "/metrics").await.text();
    assert!(!metrics.contains("status=\"502\""), "{metrics}");
}

/// `insecure_skip_verify` talks to a self-signed server (still TLS), and is a preflight
/// error in production (PF-UPS-01) that `check` reports and `serve` refuses; a missing CA
/// file is a config error naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_works_and_is_a_production_error() {
    let stranger = Pki::new();
    let dir = TempDir::new("tls-origin-selfsigned");
    let origin = origin(&dir, &stranger.leaf("self", &["127.0.0.1"]), "");
    let servers = format!("\"https://127.0.0.1:{}\"", origin.port);
    let tmp = TempDir::new("edge-insecure");
    let r = start(
        tmp.path(),
        &toml(&servers, "tls = { insecure_skip_verify = true }"),
    )
    .await;
    let resp = get(&r, "/").await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().starts_with("origin proto=TLSv1.3"),
        "{}",
        resp.text()
    );
    drop(r);

    let prod = TempDir::new("edge-insecure-prod");
    prod.write(
        "rampart.toml",
        toml(&servers, "tls = { insecure_skip_verify = true }")
            .replace("[server]\n", "[server]\nenvironment = \"production\"\n"),
    );
    let out = crate::harness::bin()
        .current_dir(prod.path())
        .args(["preflight", "-c", "rampart.toml", "--format", "json"])
        .output()
        .unwrap();
    let (_, report) = crate::harness::json_report(&out);
    let text = report.to_string();
    assert!(text.contains("PF-UPS-01"), "{text}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "PF-UPS-01")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["severity"], "error", "{finding}");
    assert!(
        finding["subject"]
            .as_str()
            .unwrap()
            .contains("upstreams.api"),
        "{finding}"
    );

    let missing = TempDir::new("edge-missing-ca");
    let err = edge_at(
        missing.path(),
        &toml(&servers, "tls = { ca = \"nope.pem\" }"),
        |_| {},
    )
    .err()
    .unwrap();
    assert!(err.contains("upstreams.api.tls.ca"), "{err}");
}

/// A WebSocket through an `auto` pool whose server speaks HTTP/2: ordinary requests go
/// over HTTP/2 (ALPN chose h2), the upgrade over a TLS connection offering only
/// `http/1.1` (WebSockets over HTTP/2 are another protocol), both to the same nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_an_auto_pool_uses_http1() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let pki = Pki::new();
    let ca = pki.ca_path().display().to_string();
    let ws = rampart_test_support::upstream::Upstream::start("ws").await;
    let leaf = pki.leaf("api", &["127.0.0.1"]);
    let dir = TempDir::new("tls-origin-ws");
    let origin = Nginx::start(
        &dir,
        &format!(
            r#"  access_log off;
  server {{
    listen 127.0.0.1:{{port}} ssl http2;
    ssl_certificate {cert}; ssl_certificate_key {key};
    location /ws {{
      proxy_pass http://{ws};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }}
    location / {{ default_type text/plain; return 200 "origin $server_protocol\n"; }}
  }}"#,
            cert = leaf.cert.display(),
            key = leaf.key.display(),
            ws = ws.authority(),
        ),
    );
    let tmp = TempDir::new("edge-ws-auto");
    let r = start(
        tmp.path(),
        &toml(
            &format!("\"https://127.0.0.1:{}\"", origin.port),
            &format!("protocol = \"auto\"\ntls = {{ ca = \"{ca}\" }}"),
        ),
    )
    .await;
    let resp = get(&r, "/").await;
    assert_eq!(resp.text(), "origin HTTP/2.0\n");
    let tcp = tokio::net::TcpStream::connect(r.http_addr.unwrap())
        .await
        .unwrap();
    let url = format!("ws://{}/ws", r.http_addr.unwrap());
    let (mut sock, resp) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["through", "auto"] {
        sock.send(Message::text(msg)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), sock.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap(), msg);
    }
    sock.close(None).await.unwrap();
    // The pool still speaks HTTP/2 for everything else, and `/upstreams` (what `check
    // --live` prints) says so: the upgrade's HTTP/1.1-only handshake is not the pool's.
    assert_eq!(get(&r, "/").await.text(), "origin HTTP/2.0\n");
    let ups: serde_json::Value =
        serde_json::from_str(&admin_get(&r, "/upstreams").await.text()).unwrap();
    let state = &ups["upstreams"][0]["servers"][0]["tls_state"];
    assert_eq!(state["alpn"], "h2", "{state}");
}
