//! TLS: HTTP/1.1 and HTTP/2 by ALPN, SNI with several certificates, resumption, versions,
//! key formats, and the plain listener's redirect.

use std::process::Command;
use std::sync::Arc;

use http::{Request, StatusCode, Version};
use rampart_config::{load_str, Source};
use rampart_server::Edge;
use rampart_test_support::client::{self, get, tls_config, Conn};
use rampart_test_support::pki::Pki;
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;

use crate::harness::{start, TestEdge};

async fn tls_edge(pki: &Pki, extra_tls: &str) -> (TestEdge, Upstream) {
    let up = Upstream::start("a").await;
    let main = pki.leaf("main", &["localhost", "app.test"]);
    let other = pki.leaf("other", &["other.test"]);
    let wild = pki.leaf("wild", &["*.wild.test"]);
    let toml = format!(
        r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
redirect_exempt = ["/.well-known/acme-challenge/"]
[tls]
cert = "{}"
key = "{}"
{extra_tls}
[[tls.certificates]]
cert = "{}"
key = "{}"
[[tls.certificates]]
cert = "{}"
key = "{}"
[upstreams.app]
servers = ["{}"]
[[routes]]
path = "/"
upstream = "app"
"#,
        main.cert.display(),
        main.key.display(),
        other.cert.display(),
        other.key.display(),
        wild.cert.display(),
        wild.key.display(),
        up.authority()
    );
    (start(&toml).await, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_by_alpn_end_to_end() {
    let pki = Pki::new();
    let (edge, up) = tls_edge(&pki, "").await;
    let roots = [pki.ca_der.clone()];
    let h2 = client::tls(
        edge.https(),
        tls_config(&roots, &[b"h2", b"http/1.1"]),
        "localhost",
        get("localhost", "/x"),
    )
    .await;
    assert_eq!(h2.version, Version::HTTP_2);
    assert_eq!(h2.status, 200);
    assert_eq!(
        h2.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    let h1 = client::tls(
        edge.https(),
        tls_config(&roots, &[b"http/1.1"]),
        "localhost",
        get("localhost", "/y"),
    )
    .await;
    assert_eq!(h1.version, Version::HTTP_11);
    assert_eq!(h1.status, 200);
    // Upstream values of the headers the edge sets are replaced, over both protocols (the
    // HTTP/1.1 writer applies the policy while serializing), and nothing is sent twice.
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let r = client::tls(
            edge.https(),
            tls_config(&roots, &[alpn]),
            "localhost",
            get("localhost", "/banner"),
        )
        .await;
        for (name, value) in [
            (
                "strict-transport-security",
                "max-age=63072000; includeSubDomains",
            ),
            ("x-frame-options", "DENY"),
            ("server", "rampart"),
        ] {
            assert_eq!(r.header(name), Some(value), "{name}");
            assert_eq!(r.header_count(name), 1, "{name} over {alpn:?}");
        }
        assert_eq!(r.header_count("date"), 1, "date over {alpn:?}");
        assert!(r.header("x-powered-by").is_none());
    }
    let seen = up.seen();
    assert_eq!(
        seen[0].headers["host"], "localhost",
        "HTTP/2 :authority becomes Host"
    );
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
    assert_eq!(seen[0].version, Version::HTTP_11);
    // Several streams on one HTTP/2 connection.
    let mut conn = Conn::tls(edge.https(), tls_config(&roots, &[b"h2"]), "localhost").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let req = get("localhost", &format!("/s/{i}"));
        let Conn::H2(sender) = &conn else {
            panic!("not h2")
        };
        let mut s = sender.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = req;
            *req.uri_mut() = format!("https://localhost{}", req.uri().path())
                .parse()
                .unwrap();
            req.headers_mut().remove("host");
            s.send_request(req).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        conn.send(get("localhost", "/last")).await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_chosen_by_sni_with_wildcards_and_a_default() {
    let pki = Pki::new();
    let (edge, _up) = tls_edge(&pki, "").await;
    let cfg = tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]);
    // The client verifies the certificate against the name, so a wrong pick fails here.
    for name in ["localhost", "app.test", "other.test", "a.wild.test"] {
        let r = client::tls(edge.https(), cfg.clone(), name, get(name, "/")).await;
        assert_eq!(r.status, 200, "{name}");
    }
    let err = client::tls_connect(edge.https(), cfg.clone(), "unknown.test").await;
    assert!(
        err.is_err(),
        "an unknown name gets the default certificate, which does not cover it"
    );
    // The certificate presented for it is the default (first) one, not another.
    assert!(
        openssl_available(),
        "openssl is needed (.ci/run installs it)"
    );
    let addr = edge.https().to_string();
    let presented = tokio::task::spawn_blocking(move || {
        let hello = Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", "unknown.test"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let mut x509 = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        x509.stdin.take().unwrap().write_all(&hello.stdout).unwrap();
        String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(
        presented.contains("DNS:localhost") && presented.contains("DNS:app.test"),
        "{presented}"
    );
    let err = client::tls_connect(edge.https(), cfg, "a.b.wild.test").await;
    assert!(err.is_err(), "a wildcard covers one label only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume() {
    let pki = Pki::new();
    for tickets in ["session_tickets = true", "session_tickets = false"] {
        let (edge, _up) = tls_edge(&pki, tickets).await;
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let mut store = rustls::RootCertStore::empty();
            store.add(pki.ca_der.clone()).unwrap();
            let cfg = Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth(),
            );
            let kinds = {
                let mut kinds = Vec::new();
                for _ in 0..2 {
                    let mut tls = client::tls_connect(edge.https(), cfg.clone(), "localhost")
                        .await
                        .unwrap();
                    // TLS 1.3 tickets arrive after the handshake: read the response so they land.
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    tls.write_all(
                        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .await
                    .unwrap();
                    let mut out = Vec::new();
                    tls.read_to_end(&mut out).await.unwrap();
                    kinds.push(tls.get_ref().1.handshake_kind());
                }
                kinds
            };
            assert_eq!(
                kinds[1],
                Some(rustls::HandshakeKind::Resumed),
                "{tickets} {versions:?}: {kinds:?}"
            );
        }
    }
}

/// A client's ticket store that counts the TLS 1.3 tickets it is given.
#[derive(Debug)]
struct CountingTickets {
    inner: rustls::client::ClientSessionMemoryCache,
    given: std::sync::atomic::AtomicUsize,
}

impl rustls::client::ClientSessionStore for CountingTickets {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, g: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, g);
    }
    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        v: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, v);
    }
    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }
    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        v: rustls::client::Tls13ClientSessionValue,
    ) {
        self.given
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.insert_tls13_ticket(name, v);
    }
    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// One TLS 1.3 ticket per handshake (as Go's and Caddy's servers send; OpenSSL's default is
/// two): a client connecting one connection after another resumes every time, since each
/// handshake, resumed ones too, hands it the ticket for the next. A second ticket cost the
/// server a key derivation and an encryption per connection, and the client as much to
/// take it (measured: ~4 % of the edge's CPU per new connection, and 8-20 % more new
/// connections per second from one load-generating core).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ticket_per_handshake_keeps_a_sequential_client_resuming() {
    let pki = Pki::new();
    for tickets in ["session_tickets = true", "session_tickets = false"] {
        let (edge, _up) = tls_edge(&pki, tickets).await;
        let mut store = rustls::RootCertStore::empty();
        store.add(pki.ca_der.clone()).unwrap();
        let counting = Arc::new(CountingTickets {
            inner: rustls::client::ClientSessionMemoryCache::new(16),
            given: std::sync::atomic::AtomicUsize::new(0),
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
        cfg.resumption = rustls::client::Resumption::store(counting.clone());
        let cfg = Arc::new(cfg);
        let mut kinds = Vec::new();
        for _ in 0..4 {
            let mut tls = client::tls_connect(edge.https(), cfg.clone(), "localhost")
                .await
                .unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            tls.read_to_end(&mut out).await.unwrap();
            kinds.push(tls.get_ref().1.handshake_kind().unwrap());
        }
        assert_eq!(
            kinds,
            [
                rustls::HandshakeKind::Full,
                rustls::HandshakeKind::Resumed,
                rustls::HandshakeKind::Resumed,
                rustls::HandshakeKind::Resumed
            ],
            "{tickets}"
        );
        assert_eq!(
            counting.given.load(std::sync::atomic::Ordering::Relaxed),
            4,
            "{tickets}: tickets given over 4 handshakes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_offers_only_forward_secret_aead_and_min_version_13_refuses_it() {
    let pki = Pki::new();
    let (edge, _up) = tls_edge(&pki, "").await;
    let mut store = rustls::RootCertStore::empty();
    store.add(pki.ca_der.clone()).unwrap();
    let tls12 = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(store.clone())
        .with_no_client_auth(),
    );
    let tls = client::tls_connect(edge.https(), tls12.clone(), "localhost")
        .await
        .unwrap();
    let suite = format!(
        "{:?}",
        tls.get_ref().1.negotiated_cipher_suite().unwrap().suite()
    );
    assert!(
        suite.starts_with("TLS_ECDHE_") && (suite.contains("GCM") || suite.contains("CHACHA20")),
        "{suite}"
    );
    let (strict, _up) = tls_edge(&pki, "min_version = \"1.3\"").await;
    assert!(client::tls_connect(strict.https(), tls12, "localhost")
        .await
        .is_err());
    // A client that offers only what rustls' client cannot (CBC, static RSA, 3DES, RC4)
    // is refused: the server has none of them, not just a client that never asks.
    assert!(
        openssl_available(),
        "openssl is needed (.ci/run installs it)"
    );
    let addr = edge.https().to_string();
    for weak in [
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256",
        "AES128-GCM-SHA256:AES256-SHA:DES-CBC3-SHA",
    ] {
        let addr = addr.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &addr,
                    "-tls1_2",
                    "-servername",
                    "localhost",
                ])
                .args(["-cipher", &format!("{weak}@SECLEVEL=0")])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{weak} negotiated:\n{text}");
        assert!(
            !text.contains("no ciphers available"),
            "the client did not really offer {weak}:\n{text}"
        );
    }
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls11_and_older_are_refused() {
    assert!(
        openssl_available(),
        "openssl is needed (.ci/run installs it)"
    );
    let pki = Pki::new();
    let (edge, _up) = tls_edge(&pki, "").await;
    let addr = edge.https().to_string();
    for flag in ["-tls1_1", "-tls1"] {
        let addr = addr.clone();
        let out = tokio::task::spawn_blocking(move || {
            // SECLEVEL=0 lets OpenSSL 3 offer the old protocol, so the refusal is the server's.
            Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &addr,
                    flag,
                    "-cipher",
                    "DEFAULT@SECLEVEL=0",
                    "-servername",
                    "localhost",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{flag} handshake succeeded:\n{text}");
        assert!(
            !text.contains("no protocols available"),
            "the client did not really try {flag}:\n{text}"
        );
        // rustls answers an old hello with a handshake_failure alert (40).
        assert!(
            text.contains("alert"),
            "{flag}: expected a TLS alert from the server:\n{text}"
        );
    }
    // And the same client with TLS 1.2 succeeds, so the test can tell the difference.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr,
                "-tls1_2",
                "-servername",
                "localhost",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Protocol  : TLSv1.2") || text.contains("TLSv1.2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_pkcs1_and_ec_sec1_keys_load_and_serve() {
    assert!(
        openssl_available(),
        "openssl is needed (.ci/run installs it)"
    );
    let dir = TempDir::new("keys");
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    run(&[
        "req",
        "-x509",
        "-key",
        "rsa.key",
        "-out",
        "rsa.crt",
        "-days",
        "30",
        "-subj",
        "/CN=rsa.test",
        "-addext",
        "subjectAltName=DNS:rsa.test",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]);
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ec.key",
    ]);
    run(&[
        "req",
        "-x509",
        "-key",
        "ec.key",
        "-out",
        "ec.crt",
        "-days",
        "30",
        "-subj",
        "/CN=ec.test",
        "-addext",
        "subjectAltName=DNS:ec.test",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]);
    assert!(std::fs::read_to_string(d.join("rsa.key"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    assert!(std::fs::read_to_string(d.join("ec.key"))
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    let toml = r#"
[server]
https = "127.0.0.1:0"
[tls]
cert = "rsa.crt"
key = "rsa.key"
[[tls.certificates]]
cert = "ec.crt"
key = "ec.key"
[[routes]]
respond = { body = "ok" }
"#;
    let edge = crate::harness::start_in(dir, toml).await;
    for name in ["rsa.test", "ec.test"] {
        use rustls_pki_types::pem::PemObject;
        let stem = name.trim_end_matches(".test");
        let der = rustls_pki_types::CertificateDer::from_pem_file(
            edge.dir.path().join(format!("{stem}.crt")),
        )
        .unwrap();
        let r = client::tls(
            edge.https(),
            tls_config(&[der], &[b"http/1.1"]),
            name,
            get(name, "/"),
        )
        .await;
        assert_eq!(r.text(), "ok", "{name}");
    }
}

#[test]
fn a_key_that_does_not_fit_its_certificate_is_a_config_error() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let toml = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[routes]]\nrespond = {{ body = \"x\" }}\n",
        a.cert.display(),
        b.key.display()
    );
    let dir = TempDir::new("mismatch");
    let config = load_str(
        &toml,
        &Source {
            name: "t".into(),
            base_dir: dir.path().into(),
            env: &rampart_config::process_env,
        },
    )
    .unwrap();
    let err = Edge::build(config, "t").unwrap_err();
    assert_eq!(err.errors[0].key, "tls.key");
    assert!(
        err.errors[0]
            .message
            .contains("does not fit the certificate"),
        "{err}"
    );
    let garbage = dir.write("garbage.pem", "not a pem");
    let toml = toml.replace(&b.key.display().to_string(), &garbage.display().to_string());
    let config = load_str(
        &toml,
        &Source {
            name: "t".into(),
            base_dir: dir.path().into(),
            env: &rampart_config::process_env,
        },
    )
    .unwrap();
    let err = Edge::build(config, "t").unwrap_err();
    assert_eq!(err.errors[0].key, "tls.key", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listener_redirects_to_https_except_exempt_paths() {
    let pki = Pki::new();
    let (edge, up) = tls_edge(&pki, "").await;
    let port = edge.https().port();
    let r = client::plain(edge.http(), get("app.test", "/a/b?c=1&d=2")).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        r.header("location"),
        Some(format!("https://app.test:{port}/a/b?c=1&d=2").as_str())
    );
    assert!(r.header("strict-transport-security").is_none());
    let r = client::plain(
        edge.http(),
        Request::post("/form")
            .header("host", "app.test:80")
            .body(client::full("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::PERMANENT_REDIRECT,
        "308 keeps the method and body"
    );
    assert_eq!(
        r.header("location"),
        Some(format!("https://app.test:{port}/form").as_str())
    );
    let r = client::plain(
        edge.http(),
        get("app.test", "/.well-known/acme-challenge/token"),
    )
    .await;
    assert_eq!(r.status, 200, "exempt paths are served over plain HTTP");
    assert_eq!(
        up.count(),
        1,
        "only the exempt request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiates_http2_and_sees_the_policy() {
    let pki = Pki::new();
    let (edge, _up) = tls_edge(&pki, "").await;
    let port = edge.https().port();
    let url = format!("https://localhost:{port}/x");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = pki.ca_path();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--http2", "-D", "-", "-o", "/dev/null", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &resolve, &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=63072000; includesubdomains"),
        "{head}"
    );
    assert!(head.contains("server: rampart\r\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_is_tunnelled() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let pki = Pki::new();
    let (edge, _up) = tls_edge(&pki, "").await;
    let tls = client::tls_connect(
        edge.https(),
        tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]),
        "localhost",
    )
    .await
    .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("over tls")).await.unwrap();
    let back = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back.into_text().unwrap(), "over tls");
}

/// A client config offering only TLS 1.2 with one suite.
fn tls12_with(pki: &Pki, suite: rustls::CipherSuite) -> Arc<rustls::ClientConfig> {
    tls12_offering(pki, &[suite])
}

/// A client config offering only TLS 1.2 with these suites, in this order of preference.
fn tls12_offering(pki: &Pki, suites: &[rustls::CipherSuite]) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| suites.contains(&s.suite()));
    provider
        .cipher_suites
        .sort_by_key(|s| suites.iter().position(|x| *x == s.suite()));
    let mut store = rustls::RootCertStore::empty();
    store.add(pki.ca_der.clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// `tls.ciphers` takes guide 000's nginx `ssl_ciphers` line verbatim: only the listed TLS 1.2
/// suites are negotiated; `profile = "modern"` is TLS 1.3 only; suites rampart never
/// offers (CBC) and contradictions are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ciphers_and_mozilla_profiles() {
    use rustls::CipherSuite as C;
    let pki = Pki::new();
    let (edge, _up) = tls_edge(
        &pki,
        "ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\"",
    )
    .await;
    let ok = tls12_with(&pki, C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let tls = client::tls_connect(edge.https(), ok.clone(), "localhost")
        .await
        .expect("a listed suite is negotiated");
    assert_eq!(
        tls.get_ref().1.negotiated_cipher_suite().unwrap().suite(),
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
    for unlisted in [
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let cfg = tls12_with(&pki, unlisted);
        assert!(
            client::tls_connect(edge.https(), cfg, "localhost")
                .await
                .is_err(),
            "{unlisted:?} is not listed"
        );
    }
    // TLS 1.3 still negotiates (its suites are not nginx's ssl_ciphers either).
    let r = client::tls(
        edge.https(),
        tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]),
        "localhost",
        get("localhost", "/"),
    )
    .await;
    assert_eq!(r.status, 200);
    let (modern, _up) = tls_edge(&pki, "profile = \"modern\"").await;
    assert!(client::tls_connect(modern.https(), ok, "localhost")
        .await
        .is_err());
    // Errors are named.
    let leaf = pki.leaf("bad", &["localhost"]);
    for (extra, want) in [
        (
            "ciphers = [\"ECDHE-RSA-AES128-SHA\"]",
            "tls.ciphers: \"ECDHE-RSA-AES128-SHA\" is not offered",
        ),
        ("ciphers = []", "tls.ciphers: empty"),
        (
            "profile = \"modern\"\nmin_version = \"1.2\"",
            "tls.min_version: profile \"modern\"",
        ),
        ("profile = \"old\"", "tls.profile: expected"),
        (
            "min_version = \"1.3\"\nciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256\"",
            "tls.ciphers: TLS 1.2 suites with TLS 1.2 off",
        ),
    ] {
        let toml = format!(
            "[server]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}\n[[routes]]\nrespond = {{ body = \"x\" }}\n",
            leaf.cert.display(),
            leaf.key.display()
        );
        let errs = load_str(
            &toml,
            &Source {
                name: "t".into(),
                base_dir: pki.dir.path().to_path_buf(),
                env: &|_| None,
            },
        )
        .expect_err(extra);
        let text = errs.to_string();
        assert!(text.contains(want), "{extra}: {text}");
    }
}

/// `headers.set` overrides HSTS as it overrides every other header the named keys control:
/// the value is sent on HTTPS, never on plain HTTP; a malformed one or one set twice is
/// named by `check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_transport_security_in_headers_set_is_the_hsts_value() {
    let pki = Pki::new();
    let (edge, _up) = tls_edge(
        &pki,
        "[headers]\nset = { \"Strict-Transport-Security\" = \"max-age=31536000\" }",
    )
    .await;
    let cfg = tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]);
    let r = client::tls(edge.https(), cfg, "localhost", get("localhost", "/")).await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let plain = client::plain(
        edge.http(),
        get("localhost", "/.well-known/acme-challenge/x"),
    )
    .await;
    assert_eq!(
        plain.header("strict-transport-security"),
        None,
        "never on plain HTTP"
    );
    for (headers, want) in [
        ("set = { \"Strict-Transport-Security\" = \"includeSubDomains\" }", "must contain max-age"),
        ("hsts = \"max-age=600\"\nset = { \"strict-transport-security\" = \"max-age=31536000\" }", "keep one"),
    ] {
        let toml = format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[headers]\n{headers}\n[[routes]]\nrespond = {{ body = \"x\" }}\n"
        );
        let errs = load_str(
            &toml,
            &Source {
                name: "t".into(),
                base_dir: pki.dir.path().to_path_buf(),
                env: &|_| None,
            },
        )
        .expect_err(headers)
        .to_string();
        assert!(errs.contains("headers.set.") && errs.contains(want), "{errs}");
    }
}

/// HTTP/2: a refusal to a POST answered before its body was read reaches curl every time
/// (curl 7.88 printed "Stream error in the HTTP/2 framing layer" in 5 of 8 tries when the
/// refusal was followed at once by RST_STREAM): a small body is read first. Policy
/// refusals (401) and the ones before routing (400: a path that climbs out) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_early_refusals_reach_curl_every_time() {
    let pki = Pki::new();
    let (edge, up) = tls_edge(
        &pki,
        "[api_keys]\nkeys = [{ name = \"ci\", key = \"ci-key-0123456789abcdef\" }]\n[[routes]]\npath = \"/api/\"\nupstream = \"app\"\nauth = [\"api_key\"]",
    )
    .await;
    let port = edge.https().port();
    let ca = pki.ca_path();
    let body = "x".repeat(20_000);
    let dir = TempDir::new("h2refuse");
    let data = dir.write("body.json", &body);
    for (path, want) in [("/api/orders", "401 2"), ("/../etc/passwd", "400 2")] {
        let runs = (0..12)
            .map(|_| {
                let (ca, data) = (ca.clone(), data.clone());
                let url = format!("https://localhost:{port}{path}");
                tokio::task::spawn_blocking(move || {
                    Command::new("curl")
                        .args(["-sS", "--http2", "--path-as-is", "-o", "/dev/null"])
                        .args(["-w", "%{http_code} %{http_version}"])
                        .arg("--cacert")
                        .arg(&ca)
                        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                        .args(["-X", "POST", "-H", "Content-Type: application/json"])
                        .arg("--data-binary")
                        .arg(format!("@{}", data.display()))
                        .arg(url)
                        .output()
                        .unwrap()
                })
            })
            .collect::<Vec<_>>();
        for r in runs {
            let out = r.await.unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stdout == want,
                "{path}: curl saw {stdout:?} (exit {:?}): {stderr}",
                out.status.code()
            );
        }
    }
    assert_eq!(up.count(), 0);
}

/// `prefer_server_order = true` (nginx `ssl_prefer_server_ciphers on`): the server's
/// `ciphers` order decides; without it the client's preference does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_server_order_chooses_by_the_servers_list() {
    use rustls::CipherSuite as C;
    let pki = Pki::new();
    // The client prefers ChaCha20, then AES-128-GCM.
    let client_cfg = || {
        tls12_offering(
            &pki,
            &[
                C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
        )
    };
    let list = "ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305\"";
    for (extra, want) in [
        (
            list.to_owned(),
            C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            format!("{list}\nprefer_server_order = true"),
            C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
    ] {
        let (edge, _up) = tls_edge(&pki, &extra).await;
        let tls = client::tls_connect(edge.https(), client_cfg(), "localhost")
            .await
            .unwrap();
        assert_eq!(
            tls.get_ref().1.negotiated_cipher_suite().unwrap().suite(),
            want,
            "{extra}"
        );
    }
}

/// A TLS 1.3 client config whose only key-exchange groups (and so key shares) are `groups`.
fn tls13_groups(pki: &Pki, groups: &[rustls::NamedGroup]) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups.retain(|g| groups.contains(&g.name()));
    assert_eq!(provider.kx_groups.len(), groups.len());
    let mut store = rustls::RootCertStore::empty();
    store.add(pki.ca_der.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Post-quantum by default: a ClientHello whose only key share is X25519MLKEM768 (no
/// classical fallback, so a HelloRetryRequest would fail it) completes and serves a request;
/// a client offering both gets the hybrid group; X25519-only clients still work; and
/// `post_quantum = false` takes the hybrid group away, no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_quantum_key_exchange_is_offered_and_preferred_by_default() {
    use rustls::NamedGroup as G;
    let pki = Pki::new();
    let (edge, _up) = tls_edge(&pki, "").await;
    for (groups, want) in [
        (&[G::X25519MLKEM768][..], G::X25519MLKEM768),
        (&[G::X25519MLKEM768, G::X25519][..], G::X25519MLKEM768),
        (&[G::X25519][..], G::X25519),
        (&[G::secp256r1][..], G::secp256r1),
    ] {
        let cfg = tls13_groups(&pki, groups);
        let tls = client::tls_connect(edge.https(), cfg.clone(), "localhost")
            .await
            .unwrap_or_else(|e| panic!("{groups:?}: {e}"));
        let got = tls.get_ref().1.negotiated_key_exchange_group().unwrap();
        assert_eq!(got.name(), want, "{groups:?}");
        let r = client::tls(edge.https(), cfg, "localhost", get("localhost", "/")).await;
        assert_eq!(r.status, 200, "{groups:?}");
    }
    let (classic, _up) = tls_edge(&pki, "post_quantum = false").await;
    assert!(client::tls_connect(
        classic.https(),
        tls13_groups(&pki, &[G::X25519MLKEM768]),
        "localhost"
    )
    .await
    .is_err());
    let tls = client::tls_connect(
        classic.https(),
        tls13_groups(&pki, &[G::X25519MLKEM768, G::X25519]),
        "localhost",
    )
    .await
    .unwrap();
    assert_eq!(
        tls.get_ref()
            .1
            .negotiated_key_exchange_group()
            .unwrap()
            .name(),
        G::X25519
    );
}
