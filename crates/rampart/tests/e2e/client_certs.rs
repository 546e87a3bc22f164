//! Client certificates per route (mutual TLS from callers): `[tls] client_ca` and a route's
//! `client_cert`. A client without a certificate is refused on a `required` route and let
//! through on an `optional` one (nothing forwarded), on HTTP/1.1 and HTTP/2 alike; the
//! verified certificate reaches the upstream in `X-Client-Cert-*` (forged copies removed);
//! `auth = ["mtls"]` names the certificate's holder; hosts without such routes never ask for
//! a certificate; a certificate revoked by a CRL is refused after a reload.

use std::path::Path;
use std::sync::Arc;

use rampart_server::Running;
use rampart_test_support::pki::{Leaf, Pki};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::{client, TempDir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::harness::{edge_at, start_edge};

fn toml(server: &Leaf, client_ca: &Path, crl: &Path, upstream: &str) -> String {
    format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nclient_crl = [\"{}\"]\n\
         [logging]\naccess = \"access.log\"\naudit = \"audit.log\"\n\
         [upstreams.app]\nservers = [\"{upstream}\"]\n\
         [limits.per_cert]\nrate = \"4/m\"\nkey = \"client_cert\"\n\
         [[routes]]\nhost = \"mtls.test\"\npath = \"/required\"\nclient_cert = \"required\"\nlimit = \"per_cert\"\nupstream = \"app\"\n\
         [[routes]]\nhost = \"mtls.test\"\npath = \"/optional\"\nclient_cert = \"optional\"\nupstream = \"app\"\n\
         [[routes]]\nhost = \"mtls.test\"\npath = \"/auth\"\nclient_cert = \"optional\"\nauth = [\"mtls\"]\nupstream = \"app\"\n\
         [[routes]]\nhost = \"open.test\"\npath = \"/\"\nupstream = \"app\"\n",
        server.cert.display(),
        server.key.display(),
        client_ca.display(),
        crl.display(),
    )
}

fn config(server_ca: &Pki, alpn: &[u8], cert: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.ca_der.clone()).unwrap();
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut c = match cert {
        Some(l) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&l.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&l.key).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(c)
}

async fn get(
    r: &Running,
    cfg: Arc<rustls::ClientConfig>,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> client::Resp {
    let mut req = client::get(host, path);
    for (k, v) in extra {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    client::tls(r.https_addr.unwrap(), cfg, host, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_optional_forwarded_mtls_auth_and_revocation() {
    let server_pki = Pki::new();
    let server = server_pki.leaf("edge", &["mtls.test", "open.test"]);
    let clients = Pki::new();
    let alice = clients.client("alice", "alice", "alice@example.com");
    let crl = clients.crl("crl.pem", &[]);
    let up = Upstream::start("app").await;
    let tmp = TempDir::new("edge-mtls-in");
    let conf = toml(&server, &clients.ca_path(), &crl, &up.authority());
    let r = start_edge(edge_at(tmp.path(), &conf, |_| {}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    for alpn in [&b"http/1.1"[..], b"h2"] {
        let none = config(&server_pki, alpn, None);
        let with = config(&server_pki, alpn, Some(&alice));
        // required: refused without, through with.
        let resp = get(&r, none.clone(), "mtls.test", "/required", &[]).await;
        assert_eq!(resp.status, 403, "{}", resp.text());
        assert!(
            resp.text().contains("client_cert_required"),
            "{}",
            resp.text()
        );
        let resp = get(&r, with.clone(), "mtls.test", "/required", &[]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let seen = up.seen().pop().unwrap();
        let h = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("x-client-cert-subject").as_deref(), Some("CN=alice"));
        assert_eq!(
            h("x-client-cert-san").as_deref(),
            Some("email:alice@example.com")
        );
        assert_eq!(h("x-client-cert-verified").as_deref(), Some("SUCCESS"));
        assert_eq!(h("x-client-cert-fingerprint").unwrap().len(), 64);
        // optional: through without, and a forged subject never reaches the upstream.
        let resp = get(
            &r,
            none.clone(),
            "mtls.test",
            "/optional",
            &[
                ("x-client-cert-subject", "CN=admin"),
                ("x-client-cert-verified", "SUCCESS"),
            ],
        )
        .await;
        assert_eq!(resp.status, 200);
        let seen = up.seen().pop().unwrap();
        assert!(
            seen.headers.get("x-client-cert-subject").is_none(),
            "{:?}",
            seen.headers
        );
        assert!(seen.headers.get("x-client-cert-verified").is_none());
        // auth = ["mtls"]: the certificate is the identity.
        let resp = get(&r, none.clone(), "mtls.test", "/auth", &[]).await;
        assert_eq!(resp.status, 401);
        let resp = get(&r, with.clone(), "mtls.test", "/auth", &[]).await;
        assert_eq!(resp.status, 200);
        let seen = up.seen().pop().unwrap();
        assert_eq!(seen.headers["x-auth-subject"], "alice");
        assert_eq!(seen.headers["x-auth-method"], "mtls");
    }
    crate::harness::wait_audited(tmp.path(), "auth.failure", 4).await;
    // The access log names the certificate's subject on its requests, and only there.
    let logged = rampart_test_support::eventually(std::time::Duration::from_secs(3), || {
        let log = std::fs::read_to_string(tmp.path().join("access.log")).unwrap_or_default();
        log.contains("\"client_cert\":\"CN=alice\"").then_some(log)
    })
    .await
    .expect("no access line names the client certificate");
    assert!(logged
        .lines()
        .filter(|l| l.contains("\"path\":\"/optional\""))
        .all(|l| !l.contains("client_cert")));
    // `key = "client_cert"`: alice's certificate has its own bucket of 4 (two were
    // spent above); bob's is another; clients without one count by IP.
    let bob = clients.client("bob", "bob", "bob@example.com");
    let alice_h1 = config(&server_pki, b"http/1.1", Some(&alice));
    let bob_h1 = config(&server_pki, b"http/1.1", Some(&bob));
    for want in [200, 200, 429] {
        let resp = get(&r, alice_h1.clone(), "mtls.test", "/required", &[]).await;
        assert_eq!(resp.status, want, "{}", resp.text());
    }
    assert_eq!(
        get(&r, bob_h1, "mtls.test", "/required", &[]).await.status,
        200
    );
    let audit = std::fs::read_to_string(tmp.path().join("audit.log")).unwrap();
    assert!(audit.contains("no verified client certificate"), "{audit}");

    // A host without client-certificate routes never asks for one (no browser prompt);
    // the mTLS host does, naming the client CA.
    let ask = |host: &'static str, port: u16| {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                host,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let port = r.https_addr.unwrap().port();
    let open = tokio::task::spawn_blocking(move || ask("open.test", port))
        .await
        .unwrap();
    assert!(
        open.contains("No client certificate CA names sent"),
        "{open}"
    );
    let asked = tokio::task::spawn_blocking(move || ask("mtls.test", port))
        .await
        .unwrap();
    assert!(
        asked.contains("Acceptable client certificate CA names"),
        "{asked}"
    );
    assert!(asked.contains("rampart test CA"), "{asked}");

    // Revoked: the CRL is read again on reload; alice's handshake then fails.
    clients.crl("crl.pem", &[alice.serial]);
    r.live
        .reload(edge_at(tmp.path(), &conf, |_| {}).unwrap())
        .await
        .unwrap();
    let with = config(&server_pki, b"http/1.1", Some(&alice));
    let tcp = tokio::net::TcpStream::connect(r.https_addr.unwrap())
        .await
        .unwrap();
    let refused = async {
        let mut tls = tokio_rustls::TlsConnector::from(with)
            .connect("mtls.test".try_into().unwrap(), tcp)
            .await?;
        // TLS 1.3: the server's verdict on the client certificate arrives after the
        // client's handshake is done; a request shows it.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(b"GET /required HTTP/1.1\r\nhost: mtls.test\r\n\r\n")
            .await?;
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await?;
        Ok::<_, std::io::Error>(n)
    }
    .await;
    match refused {
        Err(e) => assert!(e.to_string().to_lowercase().contains("revoked"), "{e}"),
        Ok(n) => panic!("a revoked certificate was served ({n} bytes)"),
    }
    // Without a certificate, the optional route still answers.
    let none = config(&server_pki, b"http/1.1", None);
    assert_eq!(
        get(&r, none, "mtls.test", "/optional", &[]).await.status,
        200
    );
}

/// Preflight judges the client CA and its CRLs: a CRL past its `nextUpdate` and one from
/// another CA are errors (PF-MTLS-01); a current one passes.
#[test]
fn preflight_judges_the_client_ca_and_crl_freshness() {
    let server_pki = Pki::new();
    let server = server_pki.leaf("edge", &["mtls.test", "open.test"]);
    let clients = Pki::new();
    let other = Pki::named("another CA");
    let run = |crl: &Path| {
        let tmp = TempDir::new("preflight-mtls");
        tmp.write(
            "rampart.toml",
            toml(&server, &clients.ca_path(), crl, "127.0.0.1:9"),
        );
        let out = crate::harness::bin()
            .current_dir(tmp.path())
            .args(["preflight", "-c", "rampart.toml", "--format", "json"])
            .env_remove("RAMPART_ENV")
            .output()
            .unwrap();
        let (_, v) = crate::harness::json_report(&out);
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == "PF-MTLS-01")
            .map(|f| format!("{} {}", f["severity"], f["why"]))
            .collect::<Vec<_>>()
    };
    let current = clients.crl("current.pem", &[]);
    assert_eq!(run(&current), Vec::<String>::new());
    let stale = clients.crl_until("stale.pem", &[], -7200);
    let found = run(&stale);
    assert!(
        found.len() == 1 && found[0].starts_with("\"error\"") && found[0].contains("stale"),
        "{found:?}"
    );
    let foreign = other.crl("foreign.pem", &[]);
    let found = run(&foreign);
    assert!(
        found.iter().any(|f| f.contains("not by a client CA")),
        "{found:?}"
    );
}

/// Different client CAs per route on one host: the partners' route trusts only the
/// partner CA, the staff route only `[tls] client_ca`. The handshake accepts both; each
/// route refuses (403 `client_cert_untrusted`) a certificate of the other's CA, on HTTP/1.1
/// and HTTP/2; `auth = ["mtls"]` takes only its own CA's certificate as an identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_its_own_client_ca_refuses_another_cas_certificate() {
    let server_pki = Pki::new();
    let server = server_pki.leaf("edge", &["mtls.test"]);
    let staff_ca = Pki::named("staff CA");
    let partner_ca = Pki::named("partner CA");
    let staff = staff_ca.client("staff", "sam", "sam@example.com");
    let partner = partner_ca.client("partner", "acme-corp", "ops@acme.example");
    let up = Upstream::start("app").await;
    let tmp = TempDir::new("edge-mtls-per-route");
    let conf = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
         [logging]\naudit = \"audit.log\"\n\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\nhost = \"mtls.test\"\npath = \"/staff\"\nclient_cert = \"required\"\nupstream = \"app\"\n\
         [[routes]]\nhost = \"mtls.test\"\npath = \"/partners\"\nclient_cert = \"required\"\nclient_ca = \"{}\"\nupstream = \"app\"\n\
         [[routes]]\nhost = \"mtls.test\"\npath = \"/partner-api\"\nclient_cert = \"optional\"\nclient_ca = \"{}\"\nauth = [\"mtls\"]\nupstream = \"app\"\n",
        server.cert.display(),
        server.key.display(),
        staff_ca.ca_path().display(),
        up.authority(),
        partner_ca.ca_path().display(),
        partner_ca.ca_path().display(),
    );
    let r = start_edge(edge_at(tmp.path(), &conf, |_| {}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let as_staff = config(&server_pki, alpn, Some(&staff));
        let as_partner = config(&server_pki, alpn, Some(&partner));
        let resp = get(&r, as_staff.clone(), "mtls.test", "/staff", &[]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            up.seen().pop().unwrap().headers["x-client-cert-subject"],
            "CN=sam"
        );
        let resp = get(&r, as_partner.clone(), "mtls.test", "/partners", &[]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            up.seen().pop().unwrap().headers["x-client-cert-subject"],
            "CN=acme-corp"
        );
        // Each CA's certificate on the other's route.
        for (cfg, path) in [(&as_partner, "/staff"), (&as_staff, "/partners")] {
            let resp = get(&r, cfg.clone(), "mtls.test", path, &[]).await;
            assert_eq!(resp.status, 403, "{path}: {}", resp.text());
            assert!(
                resp.text().contains("client_cert_untrusted"),
                "{}",
                resp.text()
            );
        }
        // auth = ["mtls"]: the staff certificate is no identity on the partner route.
        let resp = get(&r, as_staff.clone(), "mtls.test", "/partner-api", &[]).await;
        assert_eq!(resp.status, 403, "{}", resp.text());
        let resp = get(&r, as_partner.clone(), "mtls.test", "/partner-api", &[]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            up.seen().pop().unwrap().headers["x-auth-subject"],
            "acme-corp"
        );
    }
    crate::harness::wait_audited(tmp.path(), "auth.failure", 4).await;
    let audit = std::fs::read_to_string(tmp.path().join("audit.log")).unwrap();
    assert!(
        audit.contains("not issued by the route's client_ca"),
        "{audit}"
    );
    // A route's client_ca without client_cert is a config error naming the key.
    let bad = conf.replace(
        "path = \"/partners\"\nclient_cert = \"required\"\n",
        "path = \"/partners\"\n",
    );
    match edge_at(tmp.path(), &bad, |_| {}) {
        Ok(_) => panic!("client_ca without client_cert was accepted"),
        Err(e) => assert!(e.to_string().contains("routes[1].client_ca"), "{e}"),
    }
    // A route's CA file that holds no certificate: the error names that route's key.
    let junk = tmp.path().join("junk-ca.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let bad = conf.replace(
        &partner_ca.ca_path().display().to_string(),
        &junk.display().to_string(),
    );
    assert_ne!(bad, conf);
    match edge_at(tmp.path(), &bad, |_| {}) {
        Ok(_) => panic!("a CA file without certificates was accepted"),
        Err(e) => assert!(e.to_string().contains("routes[1].client_ca"), "{e}"),
    }
}
