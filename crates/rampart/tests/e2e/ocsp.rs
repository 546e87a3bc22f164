//! OCSP stapling against a real responder: `openssl ocsp` serving a test CA's index, read
//! back with `openssl s_client -status`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_test_support::client;
use rampart_test_support::{eventually, TempDir};

use crate::harness::{start_in, TestEdge};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl ocsp` cannot reload its index nor take its port from the certificates it
/// vouches for, so the port is chosen first (the ACME tests do the same for pebble).
fn free_port() -> u16 {
    rampart_test_support::free_port()
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed by .ci/run");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA made with openssl and the leaves it issues, with the index its responder reads.
struct TestCa {
    dir: TempDir,
}

impl TestCa {
    fn new() -> Self {
        let dir = TempDir::new("ocsp-ca");
        for name in ["ca", "other"] {
            openssl(
                dir.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.crt"),
                    "-subj",
                    &format!("/CN=OCSP test {name}"),
                    "-days",
                    "30",
                ],
            );
        }
        let ca = Self { dir };
        ca.issue("responder", "extendedKeyUsage=OCSPSigning\n");
        ca.dir.write("index.txt", "");
        ca
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// Issues `name` with the extensions `ext`; returns its serial (hex, as the index has).
    fn issue(&self, name: &str, ext: &str) -> String {
        let p = self.dir.path();
        std::fs::write(p.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            p,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            p,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "5",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        // The chain rampart serves: leaf, then its issuer.
        let chain = std::fs::read_to_string(p.join(format!("{name}.crt"))).unwrap()
            + &std::fs::read_to_string(p.join("ca.crt")).unwrap();
        std::fs::write(p.join(format!("{name}.chain")), chain).unwrap();
        let serial = openssl(
            p,
            &["x509", "-in", &format!("{name}.crt"), "-noout", "-serial"],
        );
        serial.trim().trim_start_matches("serial=").to_owned()
    }

    /// A leaf for `host` whose responder is on `port`, listed in the index as valid (`V`)
    /// or revoked (`R`).
    fn leaf(&self, host: &str, port: u16, status: char) {
        let serial = self.issue(
            host,
            &format!(
                "subjectAltName=DNS:{host}\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}/\n"
            ),
        );
        let revoked = if status == 'R' {
            "261101000000Z,keyCompromise"
        } else {
            ""
        };
        let mut index = std::fs::read_to_string(self.path("index.txt")).unwrap();
        index.push_str(&format!(
            "{status}\t301231235959Z\t{revoked}\t{serial}\tunknown\t/CN={host}\n"
        ));
        std::fs::write(self.path("index.txt"), index).unwrap();
    }

    /// `openssl ocsp` on `port`, signing with `signer` (`responder`: delegated by the CA;
    /// `other`: an unrelated CA's key), answers valid for ten minutes.
    fn responder(&self, port: u16, signer: &str) -> Killed {
        let child = Command::new("openssl")
            .args(["ocsp", "-index", "index.txt", "-port", &port.to_string()])
            .args([
                "-rsigner",
                &format!("{signer}.crt"),
                "-rkey",
                &format!("{signer}.key"),
            ])
            .args(["-CA", "ca.crt", "-nmin", "10"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is installed by .ci/run");
        // Not probed by connecting: a connection closed without a request wedges the
        // single-threaded responder (and a stray GET stops it).
        let end = Instant::now() + Duration::from_secs(10);
        while !listening(port) {
            assert!(
                Instant::now() < end,
                "openssl ocsp never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Killed(child)
    }
}

/// Whether a socket listens on `port` (from /proc/net, without connecting).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && format!("{} ", cols[1]).ends_with(&want) && cols[3] == "0A"
            })
        })
    })
}

/// What `openssl s_client -status` sees of the staple for `host`.
fn staple(port: u16, host: &str, ca: &TestCa) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", host, "-status", "-CAfile"])
        .arg(ca.path("ca.crt"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config(ca: &TestCa, stapling: bool) -> String {
    let pair = |n: &str| {
        format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            ca.path(&format!("{n}.chain")).display(),
            ca.path(&format!("{n}.key")).display()
        )
    };
    format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[logging]\naccess = \"off\"\naudit = \"audit.log\"\n[tls]\n{}ocsp_stapling = {stapling}\n[[tls.certificates]]\n{}[[tls.certificates]]\n{}[[tls.certificates]]\n{}[[routes]]\npath = \"/\"\nrespond = {{ status = 200, body = \"ok\" }}\n",
        pair("good.test"),
        pair("revoked.test"),
        pair("forged.test"),
        pair("crl.test"),
    )
}

async fn health(edge: &TestEdge) -> serde_json::Value {
    let admin = edge.running.as_ref().unwrap().live.admin_addr().unwrap();
    client::plain(admin, client::get("admin", "/health"))
        .await
        .json()
}

/// The `/health` OCSP entry of the certificate for `host`.
fn entry<'a>(h: &'a serde_json::Value, host: &str) -> &'a serde_json::Value {
    h["ocsp"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["names"][0] == host))
        .unwrap_or_else(|| panic!("no OCSP entry for {host}: {h:#}"))
}

async fn wait_status(edge: &TestEdge, host: &str, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(edge).await;
        if entry(&h, host)["status"] == want {
            return h;
        }
        assert!(Instant::now() < deadline, "{host} never {want}: {h:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_responses_are_stapled_checked_cached_and_never_bad() {
    let ca = TestCa::new();
    let (good_port, bad_port) = (free_port(), free_port());
    ca.leaf("good.test", good_port, 'V');
    ca.leaf("revoked.test", good_port, 'R');
    ca.leaf("forged.test", bad_port, 'V');
    // Only a CRL, as Let's Encrypt's certificates since 2025.
    ca.issue(
        "crl.test",
        "subjectAltName=DNS:crl.test\ncrlDistributionPoints=URI:http://crl.test/ca.crl\n",
    );
    let good = ca.responder(good_port, "responder");
    let bad = ca.responder(bad_port, "other");
    let dir = TempDir::new("ocsp-edge");
    let cfg = config(&ca, true);
    let mut edge = start_in(dir, &cfg).await;
    let port = edge.https().port();

    // Good: stapled, and openssl verifies the staple against the CA.
    let h = wait_status(&edge, "good.test", "good").await;
    let e = entry(&h, "good.test");
    assert_eq!(e["stapled"], true, "{h:#}");
    let out = staple(port, "good.test", &ca);
    assert!(out.contains("OCSP Response Status: successful"), "{out}");
    assert!(out.contains("Cert Status: good"), "{out}");
    // Revoked: never stapled, an error in /health, the logs and the audit log.
    let h = wait_status(&edge, "revoked.test", "revoked").await;
    assert!(
        entry(&h, "revoked.test")["message"]
            .as_str()
            .unwrap()
            .contains("REVOKED"),
        "{h:#}"
    );
    assert_eq!(h["status"], "degraded", "{h:#}");
    let out = staple(port, "revoked.test", &ca);
    assert!(out.contains("OCSP response: no response sent"), "{out}");
    let audit = edge.dir.path().join("audit.log");
    let audited = eventually(Duration::from_secs(3), || {
        std::fs::read_to_string(&audit)
            .ok()
            .filter(|a| a.contains("tls.ocsp.revoked"))
    })
    .await;
    assert!(audited.is_some());
    // Signed by a key the issuer never delegated: not stapled, and why.
    let h = wait_status(&edge, "forged.test", "error").await;
    let why = entry(&h, "forged.test")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        why.contains("not issued by the certificate's issuer"),
        "{why}"
    );
    assert!(staple(port, "forged.test", &ca).contains("OCSP response: no response sent"));
    // CRL only: fine, and says so.
    let e = entry(&h, "crl.test");
    assert_eq!(e["status"], "crl_only", "{h:#}");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("http://crl.test/ca.crl"));
    // The staple's age is a metric, for the stapled certificate only.
    let admin = edge.running.as_ref().unwrap().live.admin_addr().unwrap();
    let m = client::plain(admin, client::get("admin", "/metrics"))
        .await
        .text();
    let ages: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("rampart_tls_ocsp_staple_age_seconds{"))
        .collect();
    assert_eq!(ages.len(), 1, "{m}");
    assert!(ages[0].contains("name=\"good.test\""), "{m}");

    // A restart (the real binary, the same state_dir) with both responders gone staples
    // the cached good response at once; the revoked certificate has nothing to staple.
    drop((good, bad));
    let old = std::mem::replace(&mut edge.dir, TempDir::new("unused"));
    edge.running.take().unwrap().drain().await;
    old.write("rampart.toml", &cfg);
    let proc = crate::harness::serve(old.path(), &["-c", "rampart.toml"], 1);
    let port = proc.https.unwrap().port();
    let cached = eventually(Duration::from_secs(10), || {
        let out = staple(port, "good.test", &ca);
        out.contains("Cert Status: good").then_some(out)
    })
    .await;
    assert!(cached.is_some(), "the cached response was not stapled");
    assert!(staple(port, "revoked.test", &ca).contains("OCSP response: no response sent"));
    drop(proc);
    drop(old);

    // `ocsp_stapling = false`: nothing is stapled and /health has no OCSP section.
    let off = start_in(TempDir::new("ocsp-off"), &config(&ca, false)).await;
    assert!(
        staple(off.https().port(), "good.test", &ca).contains("OCSP response: no response sent")
    );
    assert!(health(&off).await["ocsp"].is_null());
}
