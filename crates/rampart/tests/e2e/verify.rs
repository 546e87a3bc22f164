//! `rampart verify URL` against real servers on loopback: rampart in several configs, a
//! plain TLS server (no rampart) sending the same headers, and nginx offering TLS 1.0/1.1
//! with CBC suites; testssl.sh (installed by .ci/run) must agree on protocols and suites.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rampart_test_support::pki::Pki;
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{bin, start};

/// Runs `rampart verify` with JSON output: exit code and report.
async fn verify(args: Vec<String>) -> (i32, Value) {
    tokio::task::spawn_blocking(move || {
        let out = bin()
            .arg("verify")
            .args(&args)
            .args(["--format", "json", "--timeout", "3"])
            .output()
            .unwrap();
        crate::harness::json_report(&out)
    })
    .await
    .unwrap()
}

/// `(id, severity)` of every finding.
fn found(v: &Value) -> BTreeSet<(String, String)> {
    crate::harness::finding_ids(v, |_| true)
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    crate::harness::id_set(items)
}

fn why(v: &Value, id: &str) -> String {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .map(|f| f["why"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn tests_of(v: &Value) -> Vec<(String, i64)> {
    v["http"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["result"].as_str().unwrap().to_owned(),
                t["modifier"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// A rampart edge with HTTP and HTTPS listeners, a 90-day certificate for 127.0.0.1 from a
/// test CA, in front of `up`; `extra` is appended to the config.
async fn rampart(pki: &Pki, up: &str, extra: &str) -> crate::harness::TestEdge {
    let leaf = pki.leaf_valid("edge", &["127.0.0.1", "localhost"], -3600, 90 * 86_400);
    start(&format!(
        r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
[tls]
cert = "{}"
key = "{}"
[upstreams.app]
servers = ["{up}"]
[[routes]]
path = "/"
upstream = "app"
{extra}
"#,
        leaf.cert.display(),
        leaf.key.display(),
    ))
    .await
}

fn args(https: SocketAddr, http: SocketAddr, pki: &Pki, more: &[&str]) -> Vec<String> {
    let mut a = vec![
        format!("https://127.0.0.1:{}", https.port()),
        "--http-port".into(),
        http.port().to_string(),
        "--ca-file".into(),
        pki.ca_path().display().to_string(),
    ];
    a.extend(more.iter().map(|s| (*s).to_owned()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_defaults_grade_a_plus_on_both() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let edge = rampart(&pki, &up.authority(), "").await;
    let (code, v) = verify(args(edge.https(), edge.http(), &pki, &[])).await;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "passed");
    // csp +5, referrer +5, frame-ancestors +5, CORP +10, COOP +10: 135.
    assert_eq!(v["http"]["grade"], "A+");
    assert_eq!(v["http"]["score"], 135);
    // protocol (100+100)/2, key exchange P-256 / x25519 100, cipher (256: 100, 128: 80)/2:
    // 30 + 30 + 36 = 96, no caps, HSTS two years and TLS 1.3: A+.
    assert_eq!(v["tls"]["grade"], "A+", "{v:#}");
    assert_eq!(v["tls"]["score"], 96);
    assert_eq!(
        v["tls"]["protocols"],
        serde_json::json!(["TLSv1.2", "TLSv1.3"])
    );
    // Only the missing OCSP staple (the test CA's leaf names no responder); the hybrid
    // post-quantum group is offered and is what a modern client gets.
    assert_eq!(found(&v), set(&[("VF-CRT-02", "info")]), "{v:#}");
    assert_eq!(v["tls"]["post_quantum"], true, "{v:#}");
    assert_eq!(v["tls"]["negotiated"]["group"], "X25519MLKEM768", "{v:#}");
    assert_eq!(
        v["health"]["statuses"],
        serde_json::json!([200, 200, 200, 200, 200])
    );
    // Every check ran except the ones that need a path or --active.
    let skipped: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "skipped")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["VF-AUTH-01", "VF-MTLS-01"]);
    // Without the CA the chain is untrusted: TLS grade T, an error, exit 1.
    let mut no_ca = args(edge.https(), edge.http(), &pki, &[]);
    no_ca.truncate(3);
    let (code, v) = verify(no_ca.clone()).await;
    assert_eq!(code, 1);
    assert_eq!(v["tls"]["grade"], "T");
    assert!(why(&v, "VF-CRT-01").contains("does not verify to a trusted root"));
    // --insecure grades it anyway and says so.
    no_ca.push("--insecure".into());
    let (code, v) = verify(no_ca).await;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["tls"]["grade"], "A+");
    assert!(why(&v, "VF-CRT-01").contains("graded anyway (--insecure)"));
    // `post_quantum = false`: verify sees a hello offering only X25519MLKEM768 refused or
    // retried, says so (info), and the modern client gets X25519.
    let leaf = pki.leaf("classic", &["127.0.0.1", "localhost"]);
    let classic = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\npost_quantum = false\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        leaf.cert.display(),
        leaf.key.display(),
        up.authority()
    ))
    .await;
    let (code, v) = verify(args(classic.https(), classic.http(), &pki, &[])).await;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["tls"]["post_quantum"], false, "{v:#}");
    assert_eq!(v["tls"]["negotiated"]["group"], "X25519", "{v:#}");
    assert!(why(&v, "VF-TLS-03").contains("no post-quantum key exchange"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliberately_weak_rampart_config() {
    let pki = Pki::new();
    let site = HeaderSite::start(
        &pki,
        vec![
            ("Set-Cookie", "sessionid=abc; Path=/"),
            ("Content-Type", "text/html"),
        ],
        true,
        "<html><script src=\"http://cdn.example/lib.js\"></script></html>",
    )
    .await;
    let edge = rampart(
        &pki,
        &site.plain.to_string(),
        r#"cookies = { secure = false, httponly = false, samesite = "off" }
[headers]
hsts = false
csp = "default-src 'self'; script-src 'self' 'unsafe-inline'"
"#,
    )
    .await;
    let (code, v) = verify(args(edge.https(), edge.http(), &pki, &[])).await;
    assert_eq!(code, 1);
    assert_eq!(v["status"], "failed");
    assert_eq!(
        found(&v),
        set(&[
            ("VF-HSTS-01", "error"),
            ("VF-CSP-01", "error"),
            ("VF-CSP-01", "warn"),
            ("VF-CK-01", "error"),
            ("VF-CORS-01", "error"),
            ("VF-SRI-01", "error"),
            ("VF-GRADE", "error"),
            ("VF-CRT-02", "info"),
        ]),
        "{v:#}"
    );
    assert!(why(&v, "VF-CSP-01").contains("script-src allows 'unsafe-inline'"));
    assert!(why(&v, "VF-CK-01")
        .contains("cookie sessionid: no Secure, a session cookie without HttpOnly"));
    assert!(why(&v, "VF-CORS-01").contains("echoes it, with credentials"));
    assert!(why(&v, "VF-SRI-01").contains("http://cdn.example/lib.js"));
    // By hand: csp unsafe-inline -20, cookies session without Secure and no HSTS -40,
    // CORS echo with credentials -50, hsts absent -20, SRI http script without integrity
    // -50; 100 - 180 < 0 -> 0, F.
    assert_eq!(
        tests_of(&v)
            .into_iter()
            .filter(|(_, m)| *m < 0)
            .collect::<Vec<_>>(),
        [
            ("csp-implemented-with-unsafe-inline".to_owned(), -20),
            ("cookies-session-without-secure-flag".to_owned(), -40),
            (
                "cross-origin-resource-sharing-implemented-with-universal-access".to_owned(),
                -50
            ),
            ("hsts-not-implemented".to_owned(), -20),
            (
                "sri-not-implemented-and-external-scripts-not-loaded-securely".to_owned(),
                -50
            ),
        ]
    );
    assert_eq!(v["http"]["score"], 0);
    assert_eq!(v["http"]["grade"], "F");
    // TLS is rampart's: still A- (no HSTS is a grade warning).
    assert_eq!(v["tls"]["grade"], "A-");
    assert_eq!(v["tls"]["warnings"], serde_json::json!(["no HSTS"]));
    // Wildcard CORS with credentials (rampart refuses it in its own [cors]; an upstream
    // can still send it): an error, though Observatory scores `*` as 0.
    let wild = HeaderSite::start(
        &pki,
        vec![
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Credentials", "true"),
        ],
        false,
        "a",
    )
    .await;
    let edge = rampart(&pki, &wild.plain.to_string(), "").await;
    let (code, v) = verify(args(edge.https(), edge.http(), &pki, &[])).await;
    assert_eq!(code, 1);
    assert_eq!(
        found(&v),
        set(&[("VF-CORS-01", "error"), ("VF-CRT-02", "info")]),
        "{v:#}"
    );
    assert!(why(&v, "VF-CORS-01")
        .contains("Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true"));
    assert!(tests_of(&v).contains(&(
        "cross-origin-resource-sharing-implemented-with-public-access".to_owned(),
        0
    )));
    assert_eq!(v["http"]["grade"], "A+");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_headers_without_rampart_grade_the_same() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let edge = rampart(&pki, &up.authority(), "").await;
    let (_, through_rampart) = verify(args(edge.https(), edge.http(), &pki, &[])).await;
    // The exact headers rampart sent, served by a TLS server that is not rampart.
    let roots = [pki.ca_der.clone()];
    let r = rampart_test_support::client::tls(
        edge.https(),
        rampart_test_support::client::tls_config(&roots, &[b"http/1.1"]),
        "127.0.0.1",
        rampart_test_support::client::get("127.0.0.1", "/"),
    )
    .await;
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "content-length" | "x-request-id"))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    assert!(headers
        .iter()
        .any(|(k, _)| k == "strict-transport-security"));
    let borrowed: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let site = HeaderSite::start(&pki, borrowed, false, "a").await;
    let (code, plain) = verify(args(site.tls, site.plain, &pki, &[])).await;
    assert_eq!(code, 0, "{plain:#}");
    assert_eq!(tests_of(&plain), tests_of(&through_rampart));
    assert_eq!(plain["http"]["score"], through_rampart["http"]["score"]);
    assert_eq!(plain["http"]["grade"], "A+");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_protected_paths_metrics_health_and_active_limits() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let edge = rampart(
        &pki,
        &up.authority(),
        r#"
[[routes]]
path = "/api/"
upstream = "app"
auth = ["api_key"]
[[routes]]
path = "/open/"
upstream = "app"
[[routes]]
path = "/login"
upstream = "app"
limit = "login"
body_limit = "1MB"
[limits.login]
rate = "3/min"
burst = 3
key = "ip"
[api_keys]
header = "x-api-key"
keys = [{ name = "ci", key = "rk_ci_0123456789abcdef0123456789abcdef" }]
"#,
    )
    .await;
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &[
            "--protected",
            "/api/orders",
            "--protected",
            "/open/orders",
            "--login",
            "/login",
            "--active",
            "--login-attempts",
            "5",
            "--health",
            "/healthz",
        ],
    ))
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        found(&v),
        set(&[("VF-AUTH-01", "error"), ("VF-CRT-02", "info")]),
        "{v:#}"
    );
    assert!(
        why(&v, "VF-AUTH-01").contains("answered 200 to a request without credentials"),
        "{v:#}"
    );
    let subjects: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "VF-AUTH-01")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 1);
    assert!(subjects[0].ends_with("/open/orders"));
    for id in ["VF-ACT-01", "VF-ACT-02", "VF-AUTH-01", "VF-HLTH-01"] {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_ne!(c["status"], "skipped", "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_config_names_each_mismatch() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let edge = rampart(&pki, &up.authority(), "").await;
    let dir = TempDir::new("expect");
    // The reviewed config promises a stricter CSP and an authenticated /api/ route.
    let promised = dir.write(
        "rampart.toml",
        format!(
            r#"
[server]
https = "127.0.0.1:8443"
[tls]
cert = "{cert}"
key = "{key}"
[headers]
csp = "default-src 'none'; frame-ancestors 'none'"
[upstreams.app]
servers = ["127.0.0.1:9"]
[[routes]]
path = "/api/"
upstream = "app"
auth = ["api_key"]
[[routes]]
path = "/"
upstream = "app"
[api_keys]
header = "x-api-key"
keys = [{{ name = "ci", key = "rk_ci_0123456789abcdef0123456789abcdef" }}]
"#,
            cert = pki.dir.path().join("edge.crt").display(),
            key = pki.dir.path().join("edge.key").display(),
        ),
    );
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", promised.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 1);
    let w = why(&v, "VF-CFG-01");
    assert!(
        w.contains("content-security-policy: default-src 'self'"),
        "{w}"
    );
    assert!(
        w.contains("(config: default-src 'none'; frame-ancestors 'none'"),
        "{w}"
    );
    assert!(w.contains("answered 200 without credentials"), "{w}");
    // The deployed config itself matches.
    let same = dir.write(
        "same.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:8080\"\nhttps = \"127.0.0.1:8443\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[upstreams.app]\nservers = [\"127.0.0.1:9\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            pki.dir.path().join("edge.crt").display(),
            pki.dir.path().join("edge.key").display(),
        ),
    );
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", same.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{v:#}");
    assert!(why(&v, "VF-CFG-01").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_and_unreachable_hosts() {
    // Bad arguments: a clear error, exit 1 or 2, no report.
    for (a, says) in [
        (vec!["ftp://x"], "give an https://"),
        (vec!["https://127.0.0.1:99999"], "bad port"),
        (vec!["https://127.0.0.1", "--min-grade", "Z"], "--min-grade"),
        (
            vec!["https://127.0.0.1", "--path", "nope"],
            "a path starts with /",
        ),
    ] {
        let out =
            tokio::task::spawn_blocking(move || bin().arg("verify").args(&a).output().unwrap())
                .await
                .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    // Nothing listens: findings, not a crash.
    let dead = rampart_test_support::dead_addr();
    let (code, v) = verify(vec![format!("https://127.0.0.1:{}", dead.port())]).await;
    assert_eq!(code, 1);
    let ids: BTreeSet<(String, String)> = found(&v);
    assert!(ids.contains(&("VF-TLS-01".into(), "error".into())), "{v:#}");
    assert!(
        ids.contains(&("VF-CONN-01".into(), "error".into())),
        "{v:#}"
    );
    assert_eq!(v["http"]["grade"], "F");
    assert_eq!(v["tls"]["grade"], Value::Null);
    // A port that speaks plain HTTP, given as https://.
    let up = Upstream::start("a").await;
    let (code, v) = verify(vec![format!("https://{}", up.authority())]).await;
    assert_eq!(code, 1);
    assert!(why(&v, "VF-TLS-01").contains("no TLS handshake"), "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_tls_1_0_and_cbc_is_capped_at_b() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let dir = TempDir::new("weak-nginx");
    let weak = weak_nginx(&dir, &pki, &up.authority());
    let url = format!("https://127.0.0.1:{}", weak.port);
    let (code, v) = verify(vec![
        url.clone(),
        "--ca-file".into(),
        pki.ca_path().display().to_string(),
    ])
    .await;
    assert_eq!(code, 1);
    // protocol (100 + 90) / 2 = 95; key exchange P-256 certificate and X25519 / P-256
    // ECDHE = 100; cipher: every suite is 128-bit (80 + 80) / 2 = 80.
    // 28 + 30 + 32 = 90 -> A, capped at B by TLS 1.0/1.1.
    assert_eq!(v["tls"]["grade"], "B", "{v:#}");
    assert_eq!(
        (
            v["tls"]["protocol"].as_u64(),
            v["tls"]["key_exchange"].as_u64(),
            v["tls"]["cipher"].as_u64(),
            v["tls"]["score"].as_u64()
        ),
        (Some(95), Some(100), Some(80), Some(90))
    );
    assert_eq!(
        v["tls"]["caps"],
        serde_json::json!([{"cap": "B", "reason": "TLS 1.0 and TLS 1.1 offered"}])
    );
    assert_eq!(
        v["tls"]["protocols"],
        serde_json::json!(["TLSv1.0", "TLSv1.1", "TLSv1.2"])
    );
    let suites: BTreeSet<String> = v["tls"]["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["protocol"].as_str().unwrap(),
                s["name"].as_str().unwrap()
            )
        })
        .collect();
    let want: BTreeSet<String> = [
        "TLSv1.0 ECDHE-ECDSA-AES128-SHA",
        "TLSv1.1 ECDHE-ECDSA-AES128-SHA",
        "TLSv1.2 ECDHE-ECDSA-AES128-SHA",
        "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(suites, want);
    let tls01 = why(&v, "VF-TLS-01");
    assert!(
        tls01.contains("TLSv1.0 offered") && tls01.contains("TLSv1.1 offered"),
        "{tls01}"
    );
    assert!(tls01.contains("TLS 1.3 not offered"), "{tls01}");
    assert!(why(&v, "VF-TLS-02").contains("CBC or non-forward-secret suites accepted"));
    // testssl.sh agrees on protocols and suites (.ci/run installs it; a machine without
    // it fails here rather than skipping in silence).
    let testssl = which("testssl")
        .or_else(|| which("testssl.sh"))
        .expect("testssl.sh is needed (apt-get install testssl.sh)");
    {
        let json = dir.path().join("testssl.json");
        let port = weak.port;
        let json2 = json.clone();
        let status = tokio::task::spawn_blocking(move || {
            Command::new(testssl)
                .args([
                    "--quiet",
                    "--color",
                    "0",
                    "--warnings",
                    "off",
                    "-p",
                    "-E",
                    "--jsonfile",
                ])
                .arg(&json2)
                .arg(format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(status.success());
        let items: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let finding = |id: &str| {
            items
                .iter()
                .find(|i| i["id"] == id)
                .map(|i| i["finding"].as_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        for (id, name) in [
            ("SSLv3", "SSLv3"),
            ("TLS1", "TLSv1.0"),
            ("TLS1_1", "TLSv1.1"),
            ("TLS1_2", "TLSv1.2"),
            ("TLS1_3", "TLSv1.3"),
        ] {
            let theirs = finding(id).starts_with("offered");
            let ours = v["tls"]["protocols"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == name);
            assert_eq!(theirs, ours, "{name}: testssl says {:?}", finding(id));
        }
        // testssl ids: cipher-tls1_xc009 (protocol, hex code); its third column is the
        // OpenSSL name.
        let theirs: BTreeSet<String> = items
            .iter()
            .filter(|i| i["id"].as_str().is_some_and(|s| s.starts_with("cipher-")))
            .map(|i| {
                let f = i["finding"].as_str().unwrap();
                let cols: Vec<&str> = f.split_whitespace().collect();
                let proto = match cols[1] {
                    "1" => "TLSv1.0",
                    "1.1" => "TLSv1.1",
                    "1.2" => "TLSv1.2",
                    "1.3" => "TLSv1.3",
                    other => panic!("{other}"),
                };
                format!("{proto} {}", cols[3])
            })
            .collect();
        assert_eq!(theirs, want, "testssl.sh and rampart disagree");
    }
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// nginx offering TLS 1.0, 1.1 and 1.2 with an AES-CBC suite next to AES-GCM (what
/// Mozilla's "old" profile allowed), in front of `upstream`.
fn weak_nginx(dir: &TempDir, pki: &Pki, upstream: &str) -> crate::harness::Nginx {
    let leaf = pki.leaf_valid("weak", &["127.0.0.1"], -3600, 90 * 86_400);
    crate::harness::Nginx::start(
        dir,
        &format!(
            r#"  access_log off;
  server {{
    listen 127.0.0.1:{{port}} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    ssl_ciphers "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0";
    location / {{ proxy_pass http://{upstream}; }}
  }}"#,
            cert = leaf.cert.display(),
            key = leaf.key.display(),
        ),
    )
}

/// A TLS server that is not rampart: it answers every request with fixed headers and
/// body, and (with `cors_echo`) echoes any `Origin` with credentials allowed. Its plain
/// port redirects to HTTPS, and also serves the same answer to a proxy (a `Host` that is
/// not its own).
struct HeaderSite {
    tls: SocketAddr,
    plain: SocketAddr,
}

impl HeaderSite {
    async fn start(pki: &Pki, headers: Vec<(&str, &str)>, cors_echo: bool, body: &str) -> Self {
        let leaf = pki.leaf_valid("site", &["127.0.0.1"], -3600, 90 * 86_400);
        let certs: Vec<_> = rustls_pki_types::pem::PemObject::pem_file_iter(&leaf.cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls_pki_types::pem::PemObject::from_pem_file(&leaf.key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tls_addr, plain_addr) = (tls.local_addr().unwrap(), plain.local_addr().unwrap());
        let headers: Arc<Vec<(String, String)>> = Arc::new(
            headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        let body: Arc<str> = body.into();
        let (h, b) = (headers.clone(), body.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = tls.accept().await {
                let (acceptor, h, b) = (acceptor.clone(), h.clone(), b.clone());
                tokio::spawn(async move {
                    if let Ok(s) = acceptor.accept(s).await {
                        answer(s, &h, cors_echo, &b, None).await;
                    }
                });
            }
        });
        tokio::spawn(async move {
            while let Ok((s, _)) = plain.accept().await {
                let (h, b) = (headers.clone(), body.clone());
                tokio::spawn(async move {
                    answer(s, &h, cors_echo, &b, Some(tls_addr.port())).await;
                });
            }
        });
        Self {
            tls: tls_addr,
            plain: plain_addr,
        }
    }
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    headers: &[(String, String)],
    cors_echo: bool,
    body: &str,
    redirect_to: Option<u16>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let method = head.split(' ').next().unwrap_or("").to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let host = header("host").unwrap_or_default();
    let mut out = String::new();
    // The plain port redirects a browser (Host is this site), and answers a proxy.
    let own_plain = redirect_to.is_some()
        && host.starts_with("127.0.0.1")
        && header("x-forwarded-for").is_none();
    if let (Some(port), true) = (redirect_to, own_plain) {
        out.push_str(&format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://127.0.0.1:{port}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
    } else {
        out.push_str("HTTP/1.1 200 OK\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if let (true, Some(origin)) = (cors_echo, header("origin")) {
            out.push_str(&format!(
                "Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: true\r\n"
            ));
        }
        let body = if method == "HEAD" { "" } else { body };
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
    }
    let _ = s.write_all(out.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// `--expect-config` on a `csp_nonce` route: the live policy carries a fresh nonce in
/// `script-src` and `style-src` (wherever they are), and it matches the config once the
/// nonce is taken out; a real difference is still named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_config_matches_a_nonced_csp() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let csp = "default-src 'self'; script-src 'self' https://cdn.example; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";
    let extra = format!(
        "[[routes]]\npath = \"/html\"\nupstream = \"app\"\ncsp_nonce = true\n[headers]\ncsp = \"{csp}\"\n"
    );
    let edge = rampart(&pki, &up.authority(), &extra).await;
    let live = rampart_test_support::client::tls(
        edge.https(),
        rampart_test_support::client::tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]),
        "localhost",
        rampart_test_support::client::get("localhost", "/html"),
    )
    .await;
    let served = live.header("content-security-policy").unwrap().to_owned();
    assert!(
        served.contains("'nonce-") && !served.starts_with(csp),
        "{served}"
    );
    let dir = TempDir::new("expect-nonce");
    let toml = |csp: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:8080\"\nhttps = \"127.0.0.1:8443\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[upstreams.app]\nservers = [\"127.0.0.1:9\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n[[routes]]\npath = \"/html\"\nupstream = \"app\"\ncsp_nonce = true\n[headers]\ncsp = \"{csp}\"\n",
            pki.dir.path().join("edge.crt").display(),
            pki.dir.path().join("edge.key").display(),
        )
    };
    let same = dir.write("same.toml", toml(csp));
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", same.to_str().unwrap()],
    ))
    .await;
    assert!(why(&v, "VF-CFG-01").is_empty(), "{}", why(&v, "VF-CFG-01"));
    assert_eq!(code, 0, "{v:#}");
    let stricter = dir.write(
        "stricter.toml",
        toml(&csp.replace(" https://cdn.example", "")),
    );
    let (_, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", stricter.to_str().unwrap()],
    ))
    .await;
    let nonced = v["findings"].as_array().unwrap().iter().any(|f| {
        f["id"] == "VF-CFG-01"
            && f["subject"]
                .as_str()
                .unwrap_or("")
                .ends_with("(route /html)")
    });
    assert!(
        nonced,
        "a real difference on the nonced route is named: {v:#}"
    );
}

/// VF-MET-01 with `--expect-config`: `/metrics` allowed only to the scraper's host answers
/// verify (run from that host) and is no error when the config shows the allow list;
/// without the config it is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_allowed_to_this_host_by_the_config_is_no_error() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let admin =
        "[admin]\nlisten = \"127.0.0.1:0\"\npublic_path = \"\"\npublic_allow = [\"127.0.0.0/8\"]\n";
    let edge = rampart(&pki, &up.authority(), admin).await;
    let (_, v) = verify(args(edge.https(), edge.http(), &pki, &[])).await;
    assert!(
        found(&v).contains(&("VF-MET-01".into(), "error".into())),
        "{v:#}"
    );
    let dir = TempDir::new("expect-metrics");
    let cfg = dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:8080\"\nhttps = \"127.0.0.1:8443\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[upstreams.app]\nservers = [\"127.0.0.1:9\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n{admin}",
            pki.dir.path().join("edge.crt").display(),
            pki.dir.path().join("edge.key").display(),
        ),
    );
    let (_, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", cfg.to_str().unwrap()],
    ))
    .await;
    assert!(
        !found(&v).contains(&("VF-MET-01".into(), "error".into())),
        "{v:#}"
    );
    assert!(
        found(&v).contains(&("VF-MET-01".into(), "info".into())),
        "{v:#}"
    );
    assert!(why(&v, "VF-MET-01").contains("127.0.0.0/8"), "{v:#}");
}

/// VF-ACT-01 on a CSRF-protected login whose lockout answers 423: verify takes the form's
/// token first, as a browser does, and counts 423 as the limit it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_probe_passes_csrf_and_counts_a_423_lockout() {
    let pki = Pki::new();
    let up = Upstream::start("a").await;
    let edge = rampart(
        &pki,
        &up.authority(),
        r#"
[[routes]]
path = "/status/"
upstream = "app"
csrf = true
limit = "login"
[limits.login]
rate = "100/m"
key = "ip"
lockout = { failures = 3, for = "15m", status = 423 }
"#,
    )
    .await;
    let (_, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &[
            "--login",
            "/status/401",
            "--active",
            "--login-attempts",
            "6",
        ],
    ))
    .await;
    assert!(
        !found(&v).iter().any(|(id, _)| id == "VF-ACT-01"),
        "{}",
        why(&v, "VF-ACT-01")
    );
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "VF-ACT-01")
        .unwrap();
    assert_eq!(c["status"], "passed", "{v:#}");
}

/// VF-MTLS-01: a path that requires a client certificate refuses verify's client (which
/// never presents one); an open path given as `--mtls` is an error; `--expect-config`
/// probes every route with `client_cert = "required"` without being told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_paths_refuse_a_client_without_a_certificate() {
    let pki = Pki::new();
    let clients = Pki::named("client CA");
    let leaf = pki.leaf_valid("edge", &["127.0.0.1", "localhost"], -3600, 90 * 86_400);
    let up = Upstream::start("a").await;
    let dir = TempDir::new("verify-mtls");
    let conf = format!(
        r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
[tls]
cert = "{}"
key = "{}"
client_ca = "{}"
[upstreams.app]
servers = ["{}"]
[[routes]]
path = "/partners/"
client_cert = "required"
upstream = "app"
[[routes]]
path = "/"
upstream = "app"
"#,
        leaf.cert.display(),
        leaf.key.display(),
        clients.ca_path().display(),
        up.authority(),
    );
    let promised = dir.write("rampart.toml", &conf);
    let edge = start(&conf).await;
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--mtls", "/partners/x"],
    ))
    .await;
    assert_eq!(code, 0, "{v:#}");
    assert!(why(&v, "VF-MTLS-01").is_empty());
    assert!(
        v["checks"].to_string().contains("VF-MTLS-01"),
        "{}",
        v["checks"]
    );
    let (code, v) = verify(args(edge.https(), edge.http(), &pki, &["--mtls", "/open"])).await;
    assert_eq!(code, 1);
    assert!(
        why(&v, "VF-MTLS-01").contains("answered 200 to a client without a certificate"),
        "{}",
        why(&v, "VF-MTLS-01")
    );
    // --expect-config: the required route is probed without naming it; a config that
    // promises a certificate where the live site asks none is an error.
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", promised.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{v:#}");
    assert!(why(&v, "VF-MTLS-01").is_empty());
    let stricter = dir.write(
        "stricter.toml",
        conf.replace(
            "path = \"/\"\nupstream = \"app\"",
            "path = \"/\"\nclient_cert = \"required\"\nupstream = \"app\"",
        ),
    );
    let (code, v) = verify(args(
        edge.https(),
        edge.http(),
        &pki,
        &["--expect-config", stricter.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 1);
    let on_root = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "VF-MTLS-01")
        .map(|f| f["subject"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        on_root,
        [format!("https://127.0.0.1:{}/", edge.https().port())]
    );
}
