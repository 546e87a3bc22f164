//! `[tls.acme]` against a real ACME CA: Debian's `pebble`, with `pebble-challtestsrv`
//! answering its DNS queries with 127.0.0.1, validating rampart's HTTP-01 and TLS-ALPN-01
//! answers on rampart's own listeners. Renewal information (ARI) needs pebble 2.5 or
//! later: `.ci/run` takes Debian trixie's (2.6) and names its directory in
//! `RAMPART_PEBBLE_DIR`; without it the `pebble` on the PATH is used.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_test_support::client::{self, Conn};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::{eventually, pki::Pki, TempDir};
use rustls_pki_types::CertificateDer;

use crate::harness::{futures_block, start_in, TestEdge};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pebble and its DNS, validating on `http_port` / `tls_port`.
struct Ca {
    pki: Pki,
    _dns: Killed,
    pebble: Option<Killed>,
    dir_url: String,
    mgmt: u16,
    _work: TempDir,
}

/// A pebble program: from `RAMPART_PEBBLE_DIR` when set, else the PATH.
fn pebble_bin(name: &str) -> Command {
    match std::env::var_os("RAMPART_PEBBLE_DIR") {
        Some(dir) => Command::new(std::path::Path::new(&dir).join(name)),
        None => Command::new(name),
    }
}

fn free_port() -> u16 {
    rampart_test_support::free_port()
}

fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Ca {
    fn start(http_port: u16, tls_port: u16, validity_secs: u64) -> Self {
        Self::start_with(http_port, tls_port, validity_secs, None)
    }

    /// With External Account Binding required: `eab` is (key id, base64url HMAC key).
    fn start_with(
        http_port: u16,
        tls_port: u16,
        validity_secs: u64,
        eab: Option<(&str, &str)>,
    ) -> Self {
        let pki = Pki::new();
        let leaf = pki.leaf("pebble", &["127.0.0.1", "localhost"]);
        let work = TempDir::new("pebble");
        let (dns_port, port, mgmt) = (free_port(), free_port(), free_port());
        let dns = pebble_bin("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv is installed by .ci/run (Debian package pebble)");
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": leaf.cert,
            "privateKey": leaf.key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab.is_some(),
            "externalAccountMACKeys": eab.map(|(k, v)| serde_json::json!({ k: v })).unwrap_or(serde_json::json!({})),
            "certificateValidityPeriod": validity_secs,
        }});
        let cfg = work.write("pebble.json", config.to_string());
        let mut ca = Self {
            pki,
            _dns: Killed(dns),
            pebble: None,
            dir_url: format!("https://127.0.0.1:{port}/dir"),
            mgmt,
            _work: work,
        };
        ca.pebble = Some(Killed(
            pebble_bin("pebble")
                .arg("-config")
                .arg(&cfg)
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pebble is installed by .ci/run"),
        ));
        wait_port(port);
        wait_port(mgmt);
        ca
    }

    fn stop(&mut self) {
        self.pebble = None;
    }

    /// Whether this pebble offers renewal information (ARI: pebble 2.5 and later).
    fn offers_ari(&self) -> bool {
        let out = Command::new("curl")
            .args(["-sk", &self.dir_url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("renewalInfo")
    }

    /// Pebble's root for the certificates it issues (made at its start).
    fn root(&self) -> CertificateDer<'static> {
        let out = Command::new("curl")
            .args(["-sk", &format!("https://127.0.0.1:{}/roots/0", self.mgmt)])
            .output()
            .unwrap();
        let pem = String::from_utf8(out.stdout).unwrap();
        rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap()
    }
}

fn toml(ca: &Ca, http: u16, https: u16, challenge: &str, up: &Upstream) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:{http}"
https = "127.0.0.1:{https}"
[admin]
listen = "127.0.0.1:0"
[logging]
access = "off"
audit = "audit.log"
[tls.acme]
directory = "{dir}"
directory_ca = "{ca}"
email = "ops@acme.test"
challenge = "{challenge}"
retry = "1s"
[upstreams.app]
servers = ["{up}"]
[[routes]]
hosts = ["acme.test", "www.acme.test"]
upstream = "app"
"#,
        dir = ca.dir_url,
        ca = ca.pki.ca_path().display(),
        up = up.authority()
    )
}

/// The certificate the edge serves to `sni`, verified against `root`: (serial, names).
async fn served(
    addr: SocketAddr,
    root: CertificateDer<'static>,
    sni: &'static str,
) -> Option<Vec<u8>> {
    let cfg = client::tls_config(&[root], &[b"http/1.1"]);
    let tls = client::tls_connect(addr, cfg, sni).await.ok()?;
    let der = tls.get_ref().1.peer_certificates()?.first()?.clone();
    Some(der.as_ref().to_vec())
}

async fn wait_served(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    within: Duration,
) -> Vec<u8> {
    let root = root.clone();
    eventually(within, || {
        futures_block(served(addr, root.clone(), "acme.test"))
    })
    .await
    .expect("no certificate from the CA was served")
}

fn admin(edge: &TestEdge) -> SocketAddr {
    edge.running.as_ref().unwrap().live.admin_addr().unwrap()
}

fn audit(edge: &TestEdge) -> String {
    std::fs::read_to_string(edge.dir.path().join("audit.log")).unwrap_or_default()
}

async fn health(edge: &TestEdge) -> serde_json::Value {
    client::plain(admin(edge), client::get("admin", "/health"))
        .await
        .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_obtains_a_certificate_and_a_restart_serves_it_without_the_ca() {
    let (http, https) = (free_port(), free_port());
    let mut ca = Ca::start(http, https, 3600);
    let up = Upstream::start("app").await;
    let dir = TempDir::new("acme-http");
    let state = dir.path().join("state");
    let config = toml(&ca, http, https, "http-01", &up);
    let mut edge = start_in(dir, &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    let root = ca.root();
    let first = wait_served(addr, &root, Duration::from_secs(30)).await;
    // Both names, served through the issued certificate, and the site answers over it.
    assert!(served(addr, root.clone(), "www.acme.test").await.is_some());
    let cfg = client::tls_config(std::slice::from_ref(&root), &[b"http/1.1"]);
    let mut c = Conn::tls(addr, cfg, "acme.test").await;
    let r = c.send(client::get("acme.test", "/")).await.unwrap();
    assert_eq!(r.status, 200);
    let h = health(&edge).await;
    assert_eq!(h["acme"]["last_ok"], true, "{h}");
    assert_eq!(
        h["acme"]["names"],
        serde_json::json!(["acme.test", "www.acme.test"])
    );
    let audited = eventually(Duration::from_secs(3), || {
        audit(&edge).contains("tls.acme.issued").then_some(())
    })
    .await;
    assert!(audited.is_some(), "{}", audit(&edge));
    // The admin API and the metrics show it, with its expiry.
    let certs = client::plain(admin(&edge), client::get("admin", "/certificates"))
        .await
        .json();
    let c = &certs["certificates"][0];
    assert_eq!(c["source"], "tls.acme", "{certs}");
    assert_eq!(
        c["days_left"], 0,
        "pebble's certificates here live an hour: {certs}"
    );
    let m = client::plain(admin(&edge), client::get("admin", "/metrics"))
        .await
        .text();
    let line = m
        .lines()
        .find(|l| {
            l.starts_with("rampart_tls_cert_expiry_seconds{") && l.contains("source=\"tls.acme\"")
        })
        .unwrap_or_else(|| panic!("{m}"));
    let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(left > 3000 && left <= 3600, "{line}");
    // Expiring within 7 days: audited once as critical.
    let expiring = eventually(Duration::from_secs(8), || {
        audit(&edge).contains("tls.cert.expiring").then_some(())
    })
    .await;
    assert!(expiring.is_some(), "{}", audit(&edge));
    // The store: the key readable by rampart alone.
    let store = std::fs::read_dir(state.join("acme"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    {
        use std::os::unix::fs::PermissionsExt as _;
        for f in ["key.pem", "account.json"] {
            let mode = std::fs::metadata(store.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    // A restart with the CA gone serves the stored certificate at once.
    ca.stop();
    let old_dir = std::mem::replace(&mut edge.dir, TempDir::new("unused"));
    edge.running.take().unwrap().drain().await;
    let again = start_in(old_dir, &config).await;
    let served_again = served(addr, root.clone(), "acme.test").await;
    assert_eq!(
        served_again.as_deref(),
        Some(first.as_slice()),
        "not the stored certificate"
    );
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_obtains_a_certificate_on_the_tls_listener() {
    let (http, https) = (free_port(), free_port());
    let ca = Ca::start(http, https, 3600);
    let up = Upstream::start("app").await;
    // The plain listener is not needed: the validation arrives on the TLS one.
    let config = toml(&ca, http, https, "tls-alpn-01", &up)
        .replace(&format!("http = \"127.0.0.1:{http}\"\n"), "");
    let edge = start_in(TempDir::new("acme-alpn"), &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    let root = ca.root();
    let got = eventually(Duration::from_secs(30), || {
        futures_block(served(addr, root.clone(), "acme.test"))
    })
    .await;
    assert!(got.is_some(), "nothing served: {}", audit(&edge));
    let audited = eventually(Duration::from_secs(3), || {
        audit(&edge).contains("tls.acme.issued").then_some(())
    })
    .await;
    assert!(audited.is_some(), "{}", audit(&edge));
    // A client offering acme-tls/1 alone gets no certificate now (no validation pending).
    let cfg = client::tls_config(&[ca.root()], &[b"acme-tls/1"]);
    assert!(client::tls_connect(addr, cfg, "acme.test").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_while_a_connection_stays_open() {
    let (http, https) = (free_port(), free_port());
    // Pebble issues 15-second certificates: renewal is due after about 10 s.
    let ca = Ca::start(http, https, 15);
    let up = Upstream::start("app").await;
    let config = toml(&ca, http, https, "http-01", &up);
    let edge = start_in(TempDir::new("acme-renew"), &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    let root = ca.root();
    let first = wait_served(addr, &root, Duration::from_secs(30)).await;
    let cfg = client::tls_config(std::slice::from_ref(&root), &[b"http/1.1"]);
    let mut kept = Conn::tls(addr, cfg, "acme.test").await;
    assert_eq!(
        kept.send(client::get("acme.test", "/"))
            .await
            .unwrap()
            .status,
        200
    );
    let root2 = root.clone();
    // Due about 10 s after issuance; a loaded CI machine (pebble, the edge and the test
    // on 2 cores with the rest of the suite) gets 45 s, and the audit says why if not.
    let renewed = eventually(Duration::from_secs(45), || {
        let now = futures_block(served(addr, root2.clone(), "acme.test"))?;
        (now != first).then_some(now)
    })
    .await;
    assert!(renewed.is_some(), "never renewed; audit:\n{}", audit(&edge));
    // The connection opened before the renewal still works.
    let r = kept.send(client::get("acme.test", "/")).await.unwrap();
    assert_eq!(r.status, 200);
    let twice = eventually(Duration::from_secs(3), || {
        (audit(&edge).matches("tls.acme.issued").count() >= 2).then_some(())
    })
    .await;
    assert!(twice.is_some(), "{}", audit(&edge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_outage_backs_off_and_is_reported() {
    let (http, https) = (free_port(), free_port());
    let mut ca = Ca::start(http, https, 3600);
    ca.stop();
    let up = Upstream::start("app").await;
    let edge = start_in(
        TempDir::new("acme-down"),
        &toml(&ca, http, https, "http-01", &up),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let h = health(&edge).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["acme"]["last_ok"], false);
    assert!(h["acme"]["next_attempt"].as_u64().unwrap() > 0);
    // Attempts at 0, 1, 3 s (1 s, doubled): three in 4.5 s, not one per request or second.
    let failures = audit(&edge).matches("tls.acme.failed").count();
    assert!((2..=3).contains(&failures), "{failures} attempts in 4.5 s");
    // Without a certificate the TLS listener refuses handshakes; the plain one still answers.
    let cfg = client::tls_config(&[ca.pki.ca_der.clone()], &[b"http/1.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    assert!(client::tls_connect(addr, cfg, "acme.test").await.is_err());
}

/// Two instances (their own `state_dir`s, one Redis) place one order and serve the same
/// certificate. The CA validates on the instance that did not order (as a load balancer
/// may send it anywhere): it answers the token from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_sharing_redis_places_one_order() {
    fleet_places_one_order("http-01").await;
}

/// TLS-ALPN-01 in a fleet: the CA's handshake reaches the instance that did not order
/// (the only one on the CA's TLS port); it answers with the challenge certificate built
/// from the digest the ordering instance announced (a handshake cannot wait for Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_answers_tls_alpn_01_on_any_instance() {
    fleet_places_one_order("tls-alpn-01").await;
}

async fn fleet_places_one_order(challenge: &str) {
    let redis = crate::fleet::Redis::start();
    let redis_port = redis.port;
    let (http_a, https_a, http_b, https_b) = (free_port(), free_port(), free_port(), free_port());
    // The CA validates on B's ports.
    let ca = Ca::start(http_b, https_b, 3600);
    let up = Upstream::start("app").await;
    let state = format!(
        "[state]\nredis = \"redis://127.0.0.1:{redis_port}\"\nprefix = \"acmefleet:\"\n[upstreams.app]"
    );
    let toml_a = toml(&ca, http_a, https_a, challenge, &up).replace("[upstreams.app]", &state);
    let toml_b = toml(&ca, http_b, https_b, challenge, &up).replace("[upstreams.app]", &state);
    let a = start_in(TempDir::new("acme-a"), &toml_a).await;
    // B starts once A holds the fleet's lock (A orders; B waits).
    let locked = eventually(Duration::from_secs(10), || {
        let out = redis.cli(&["--scan", "--pattern", "acmefleet:acme:*:lock"]);
        (!out.is_empty()).then_some(())
    })
    .await;
    assert!(locked.is_some(), "A never took the fleet's lock");
    let b = start_in(TempDir::new("acme-b"), &toml_b).await;
    let root = ca.root();
    let from_a = wait_served(
        SocketAddr::from(([127, 0, 0, 1], https_a)),
        &root,
        Duration::from_secs(30),
    )
    .await;
    let from_b = wait_served(
        SocketAddr::from(([127, 0, 0, 1], https_b)),
        &root,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(from_a, from_b, "the fleet serves one certificate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (la, lb) = (audit(&a), audit(&b));
    assert_eq!(la.matches("tls.acme.issued").count(), 1, "A orders: {la}");
    assert_eq!(lb.matches("tls.acme.issued").count(), 0, "B takes it: {lb}");
    eprintln!(
        "fleet order: A failed {} time(s) before B was up",
        la.matches("tls.acme.failed").count()
    );
}

/// A CA that requires External Account Binding: without it the account is refused (and
/// reported); with `eab_kid` and `eab_hmac_key` the certificate is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding_is_sent_when_the_ca_requires_it() {
    let (http, https) = (free_port(), free_port());
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let ca = Ca::start_with(http, https, 3600, Some(("kid-1", hmac)));
    let up = Upstream::start("app").await;
    let plain = toml(&ca, http, https, "http-01", &up);
    let edge = start_in(TempDir::new("acme-no-eab"), &plain).await;
    let refused = eventually(Duration::from_secs(10), || {
        audit(&edge).contains("tls.acme.failed").then_some(())
    })
    .await;
    assert!(refused.is_some(), "{}", audit(&edge));
    drop(edge);
    let with = plain.replace(
        "retry = \"1s\"",
        &format!("retry = \"1s\"\neab_kid = \"kid-1\"\neab_hmac_key = \"{hmac}\""),
    );
    let edge = start_in(TempDir::new("acme-eab"), &with).await;
    wait_served(
        SocketAddr::from(([127, 0, 0, 1], https)),
        &ca.root(),
        Duration::from_secs(30),
    )
    .await;
    drop(edge);
}

/// ARI (RFC 9773): the CA's renewal window is what schedules the renewal (in `/health`);
/// when the CA revokes the certificate its window moves into the past, and the next check
/// (here, at a restart) renews at once, the order naming the certificate it replaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_renewed_at_once_through_ari() {
    let (http, https) = (free_port(), free_port());
    let ca = Ca::start(http, https, 3600);
    assert!(
        ca.offers_ari(),
        "this pebble has no renewalInfo: set RAMPART_PEBBLE_DIR to pebble 2.5 or later (.ci/run does)"
    );
    let up = Upstream::start("app").await;
    let dir = TempDir::new("acme-ari");
    let state = dir.path().join("state");
    let config = toml(&ca, http, https, "http-01", &up);
    let mut edge = start_in(dir, &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    let root = ca.root();
    let first = wait_served(addr, &root, Duration::from_secs(30)).await;
    let a = admin(&edge);
    let renewal = move || {
        futures_block(async move {
            client::plain(a, client::get("admin", "/health"))
                .await
                .json()["acme"]["renewal"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
    };
    let scheduled = eventually(Duration::from_secs(10), || {
        Some(renewal()).filter(|r| r.starts_with("ARI window"))
    })
    .await;
    assert!(scheduled.is_some(), "{}", renewal());
    // The CA revokes it (through rampart's own account, as an operator would).
    let store = std::fs::read_dir(state.join("acme"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let creds: instant_acme::AccountCredentials =
        serde_json::from_str(&std::fs::read_to_string(store.join("account.json")).unwrap())
            .unwrap();
    let account = instant_acme::Account::builder_with_root(ca.pki.ca_path())
        .unwrap()
        .from_credentials(creds)
        .await
        .unwrap();
    account
        .revoke(&instant_acme::RevocationRequest {
            certificate: &CertificateDer::from(first.clone()),
            reason: None,
        })
        .await
        .unwrap();
    let old_dir = std::mem::replace(&mut edge.dir, TempDir::new("unused"));
    edge.running.take().unwrap().drain().await;
    let again = start_in(old_dir, &config).await;
    let renewed = eventually(Duration::from_secs(30), || {
        futures_block(served(addr, root.clone(), "acme.test")).filter(|c| *c != first)
    })
    .await;
    assert!(
        renewed.is_some(),
        "still the revoked certificate: {}",
        audit(&again)
    );
    assert!(
        audit(&again).contains("tls.acme.issued"),
        "{}",
        audit(&again)
    );
}
