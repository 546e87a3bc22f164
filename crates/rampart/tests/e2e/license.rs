//! `[license]` with real keys: tokens minted by PyJWT with keys made by Python's
//! `cryptography` (RS256, ES256) and by `openssl` (EdDSA through `rampart license issue`);
//! features gating routes, the 30/7-day warnings, the grace period, the notice once
//! expired, and the anti-rollback anchor against a clock set back (the real binary under
//! libfaketime), a corrupted, deleted or foreign state file, and a license bound to
//! another installation.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rampart_server::{Edge, Running};
use rampart_test_support::{client, TempDir};

use crate::harness::{admin_get, bin, edge_at, metric, python, start_edge, wait_audited};

/// Makes keys and mints tokens with PyJWT, as a vendor's Python tooling would.
const MINT: &str = r#"
import json, sys, jwt
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519
cmd = sys.argv[1]
if cmd == "keygen":
    kind, out = sys.argv[2], sys.argv[3]
    key = {"rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
           "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
           "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
    open(out + ".pem", "wb").write(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
    open(out + ".pub", "wb").write(key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
else:
    key, alg, claims = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    secret = open(key, "rb").read()
    if not alg.startswith("HS"):
        secret = s.load_pem_private_key(secret, None)
    print(jwt.encode(claims, secret, algorithm=alg))
"#;

fn run_py(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(MINT)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

const DAY: i64 = 86_400;

/// A token for "Acme Corp" signed by `key` (`vendor` → vendor.pem) expiring at `exp`.
fn mint(dir: &Path, key: &str, alg: &str, exp: i64, extra: serde_json::Value) -> String {
    let mut claims = serde_json::json!({
        "sub": "cust-0042",
        "customer": "Acme Corp",
        "jti": "lic-2026-0042",
        "iat": now() - 60,
        "exp": exp,
        "features": ["analytics", "ai"],
        "seats": 250,
        "max_instances": 3,
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    run_py(
        dir,
        &["sign", &format!("{key}.pem"), alg, &claims.to_string()],
    )
}

fn toml(license: &str) -> String {
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [logging]\naccess = \"off\"\naudit = \"audit.log\"\n\
         [license]\ntoken_file = \"license.jwt\"\npublic_key_file = \"vendor.pub\"\n{license}\n\
         [[routes]]\npath = \"/ai\"\nrequires_feature = \"ai\"\nrespond = {{ body = \"ai\" }}\n\
         [[routes]]\npath = \"/sso\"\nrequires_feature = \"sso\"\nrespond = {{ body = \"sso\" }}\n\
         [[routes]]\npath = \"/\"\nrespond = {{ body = \"app\" }}\n"
    )
}

fn edge_of(dir: &Path, toml: &str) -> Result<Edge, String> {
    edge_at(dir, toml, |_| {})
}

async fn start(dir: &Path, toml: &str) -> Result<Running, String> {
    start_edge(edge_of(dir, toml)).await
}

async fn get(r: &Running, path: &str) -> client::Resp {
    client::plain(r.http_addr.unwrap(), client::get("app.test", path)).await
}

async fn license_state(r: &Running, want: &str) -> serde_json::Value {
    health_until(r, want, |h| h["license"]["status"] == want).await
}

async fn health_until(
    r: &Running,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = admin_get(r, "/health").await.json();
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "license never {what}: {h:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A valid RS256 license (PyJWT, `cryptography` RSA key) serves its features and refuses
/// others; 30 and 7 days before expiry are warned about (audited each, `/health`
/// degraded under 7); an expired license in grace is served with warnings; past grace
/// every request gets the notice (HTML to a browser, JSON otherwise) while the health
/// endpoints answer; a token from another key is invalid; `on_expired = "refuse"` refuses
/// a reload that would block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_warnings_grace_and_the_notice() {
    let tmp = TempDir::new("license");
    let dir = tmp.path();
    run_py(
        dir,
        &["keygen", "rsa", &dir.join("vendor").display().to_string()],
    );
    run_py(
        dir,
        &["keygen", "rsa", &dir.join("other").display().to_string()],
    );
    let write =
        |token: &str| std::fs::write(dir.join("license.jwt"), format!("{token}\n")).unwrap();
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 365 * DAY,
        serde_json::json!({}),
    ));
    let cfg = toml("algorithm = \"RS256\"\ngrace = \"7d\"\nfeature_status = 402");
    let running = start(dir, &cfg).await.unwrap();

    let h = license_state(&running, "valid").await;
    let l = &h["license"];
    assert_eq!(h["status"], "healthy", "{h:#}");
    assert_eq!(l["customer"], "Acme Corp");
    assert_eq!(l["license_id"], "lic-2026-0042");
    assert_eq!(l["algorithm"], "RS256");
    assert_eq!(l["features"], serde_json::json!(["analytics", "ai"]));
    assert_eq!(
        (l["seats"].as_i64(), l["max_instances"].as_i64()),
        (Some(250), Some(3))
    );
    let days = l["days_remaining"].as_i64().unwrap();
    assert!((363..=365).contains(&days), "{h:#}");
    let id = l["installation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.join("state/installation.id"))
            .unwrap()
            .trim(),
        id
    );
    let sealed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/license_state.json")).unwrap())
            .unwrap();
    assert_eq!(sealed["installation_id"], id.as_str());
    assert_eq!(get(&running, "/ai").await.text(), "ai");
    let r = get(&running, "/sso").await;
    assert_eq!(r.status, 402);
    assert_eq!(r.json()["error"], "feature_not_licensed");
    let m = admin_get(&running, "/metrics").await.text();
    assert_eq!(metric(&m, "rampart_license_valid"), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, "rampart_license_days_remaining"),
        Some(days as f64),
        "{m}"
    );

    // 20 days left: warned, still healthy; 3 days left: warned again, degraded.
    let reload = |c: &str| running.live.reload(edge_of(dir, c).unwrap());
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 20 * DAY + 600,
        serde_json::json!({}),
    ));
    reload(&cfg).await.unwrap();
    let h = license_state(&running, "expiring").await;
    assert_eq!(h["status"], "healthy", "{h:#}");
    assert_eq!(h["license"]["days_remaining"], 20, "{h:#}");
    wait_audited(dir, "license.expiring", 1).await;
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 3 * DAY + 600,
        serde_json::json!({}),
    ));
    reload(&cfg).await.unwrap();
    wait_audited(dir, "license.expiring", 2).await;
    let h = admin_get(&running, "/health").await.json();
    assert_eq!(h["status"], "degraded", "{h:#}");

    // Expired yesterday, 7 days of grace: served, audited, degraded.
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() - DAY,
        serde_json::json!({}),
    ));
    reload(&cfg).await.unwrap();
    let h = license_state(&running, "grace").await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert!(
        h["license"]["message"].as_str().unwrap().contains("grace"),
        "{h:#}"
    );
    wait_audited(dir, "license.grace", 1).await;
    assert_eq!(get(&running, "/ai").await.text(), "ai");

    // A license that runs out while serving: the task wakes at its expiry (no grace) and
    // every request then gets the notice; the health endpoints still answer.
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 2,
        serde_json::json!({}),
    ));
    let no_grace = cfg.replace(
        "grace = \"7d\"",
        "grace = \"0s\"\nnotice = \"Renew at <https://vendor.example/renew> & restart.\"",
    );
    reload(&no_grace).await.unwrap();
    assert_eq!(get(&running, "/").await.text(), "app");
    let h = license_state(&running, "expired").await;
    assert_eq!(h["status"], "unhealthy", "{h:#}");
    wait_audited(dir, "license.expired", 1).await;
    let r = get(&running, "/").await;
    assert_eq!(r.status, 503);
    let j = r.json();
    assert_eq!(j["error"], "license_required");
    assert_eq!(j["license"], "expired");
    assert!(
        j["message"].as_str().unwrap().starts_with("Renew at"),
        "{j}"
    );
    let mut req = client::get("app.test", "/ai");
    req.headers_mut()
        .insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
    let r = client::plain(running.http_addr.unwrap(), req).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text()
            .contains("Renew at &lt;https://vendor.example/renew&gt; &amp; restart."),
        "{}",
        r.text()
    );
    assert_eq!(admin_get(&running, "/ready").await.status, 200);
    let m = admin_get(&running, "/metrics").await.text();
    assert_eq!(metric(&m, "rampart_license_valid"), Some(0.0), "{m}");

    // A token signed by someone else: invalid, the notice stays.
    write(&mint(
        dir,
        "other",
        "RS256",
        now() + 365 * DAY,
        serde_json::json!({}),
    ));
    reload(&cfg).await.unwrap();
    let h = license_state(&running, "invalid").await;
    assert!(
        h["license"]["message"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{h:#}"
    );
    wait_audited(dir, "license.invalid", 1).await;
    assert_eq!(get(&running, "/").await.status, 503);
    // The vendor's again: served again, audited.
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 365 * DAY,
        serde_json::json!({}),
    ));
    reload(&cfg).await.unwrap();
    license_state(&running, "valid").await;
    wait_audited(dir, "license.valid", 1).await;
    assert_eq!(get(&running, "/").await.text(), "app");
    // With on_expired = "refuse", a reload to a blocking license is refused; the valid
    // one keeps serving.
    write(&mint(
        dir,
        "vendor",
        "RS256",
        now() - 30 * DAY,
        serde_json::json!({}),
    ));
    let refuse = cfg.replace("grace = \"7d\"", "grace = \"7d\"\non_expired = \"refuse\"");
    let err = reload(&refuse).await.unwrap_err();
    assert!(err.contains("license: expired"), "{err}");
    assert_eq!(get(&running, "/").await.text(), "app");
    running.shutdown();
}

fn serve_once(dir: &Path, faketime: Option<&str>) -> Output {
    let exe = bin().get_program().to_owned();
    let mut cmd = Command::new("timeout");
    cmd.arg("20");
    if let Some(offset) = faketime {
        cmd.args(["faketime", "-f", offset]);
    }
    cmd.arg(exe)
        .args(["serve", "-c", "rampart.toml"])
        .current_dir(dir)
        .env_remove("RAMPART_CONFIG")
        .env("RAMPART_STATE_DIR", dir.join("state"))
        .output()
        .unwrap()
}

fn refused(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "wanted {want:?}: {err}");
}

/// The anti-rollback anchor, with the real binary: a run under a clock 60 days ahead
/// (libfaketime) moves the anchor, so the 30-day license stays expired once the clock is
/// back; an edited, deleted or foreign state file is tampering, not a fresh start; a
/// license bound to another installation is invalid. ES256 tokens from PyJWT.
#[test]
fn the_clock_set_back_and_a_tampered_state_do_not_revive_a_license() {
    let tmp = TempDir::new("license-anchor");
    let dir = tmp.path();
    run_py(
        dir,
        &["keygen", "ec", &dir.join("vendor").display().to_string()],
    );
    std::fs::write(
        dir.join("license.jwt"),
        mint(
            dir,
            "vendor",
            "ES256",
            now() + 30 * DAY,
            serde_json::json!({}),
        ),
    )
    .unwrap();
    let cfg = toml(
        "algorithm = \"ES256\"\ngrace = \"0s\"\non_expired = \"refuse\"\n\
         state_path = \"data/license_state.json\"\ninstallation_id_path = \"data/installation.id\"",
    );
    std::fs::write(dir.join("rampart.toml"), &cfg).unwrap();
    let state = dir.join("data/license_state.json");
    let id_file = dir.join("data/installation.id");

    // Sixty days ahead: expired, refused, and the anchor moved there.
    refused(&serve_once(dir, Some("+60d")), "expired on");
    let anchor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        anchor["highest_seen"].as_i64().unwrap() > now() + 59 * DAY,
        "{anchor}"
    );
    // The clock back to today: still expired, and the rollback named.
    let out = serve_once(dir, None);
    refused(&out, "expired on");
    refused(&out, "behind the latest time this installation has seen");

    // The anchor edited back by hand: its MAC no longer matches.
    let good = std::fs::read_to_string(&state).unwrap();
    let highest = anchor["highest_seen"].as_i64().unwrap().to_string();
    std::fs::write(&state, good.replace(&highest, &now().to_string())).unwrap();
    refused(&serve_once(dir, None), "corrupted or edited");
    std::fs::write(&state, "{\"format\": \"rampart-lic").unwrap();
    refused(&serve_once(dir, None), "corrupted or edited");
    // Deleted: this installation has run before, so it is not a fresh start.
    std::fs::remove_file(&state).unwrap();
    refused(&serve_once(dir, None), "is gone but this installation");
    // Another installation's state, copied in.
    let other = TempDir::new("license-other");
    std::fs::write(
        other.path().join("license.jwt"),
        std::fs::read(dir.join("license.jwt")).unwrap(),
    )
    .unwrap();
    std::fs::copy(dir.join("vendor.pub"), other.path().join("vendor.pub")).unwrap();
    std::fs::write(other.path().join("rampart.toml"), &cfg).unwrap();
    refused(&serve_once(other.path(), Some("+60d")), "expired on");
    std::fs::copy(other.path().join("data/license_state.json"), &state).unwrap();
    refused(&serve_once(dir, None), "belongs to installation");
    // The installation id gone while its state remains.
    std::fs::remove_file(&id_file).unwrap();
    refused(&serve_once(dir, None), "installation id");

    // Both gone is a new installation (nothing on one host can tell it from one): it
    // starts, and a license bound to another installation does not.
    std::fs::remove_file(&state).unwrap();
    let mut proc = crate::harness::serve(dir, &["-c", "rampart.toml"], 1);
    assert!(proc.http.is_some());
    let _ = proc.child.kill();
    let new_id = std::fs::read_to_string(&id_file).unwrap().trim().to_owned();
    assert_eq!(new_id.len(), 32);
    std::fs::write(
        dir.join("license.jwt"),
        mint(
            dir,
            "vendor",
            "ES256",
            now() + 30 * DAY,
            serde_json::json!({"installation_id": "0123456789abcdef0123456789abcdef"}),
        ),
    )
    .unwrap();
    refused(&serve_once(dir, None), "issued for installation");
    // Bound to this one: served.
    std::fs::write(
        dir.join("license.jwt"),
        mint(
            dir,
            "vendor",
            "ES256",
            now() + 30 * DAY,
            serde_json::json!({"installation_id": new_id}),
        ),
    )
    .unwrap();
    let proc = crate::harness::serve(dir, &["-c", "rampart.toml"], 1);
    assert!(proc.http.is_some());
}

fn rampart(dir: &Path, args: &[&str]) -> Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

/// `rampart license inspect` for support staff and `rampart license issue` for vendors:
/// PyJWT's RS256 token read with its claims; expired, forged (HS256 with the public key as
/// the secret), wrong-key and not-a-token inputs exit 1 with the reason; an EdDSA license
/// issued with an `openssl` key verifies in PyJWT too; bad settings are config errors.
#[test]
fn inspect_and_issue_interoperate_and_refuse_bad_tokens() {
    let tmp = TempDir::new("license-cli");
    let dir = tmp.path();
    run_py(
        dir,
        &["keygen", "rsa", &dir.join("vendor").display().to_string()],
    );
    run_py(
        dir,
        &["keygen", "rsa", &dir.join("other").display().to_string()],
    );
    let token = mint(
        dir,
        "vendor",
        "RS256",
        now() + 90 * DAY,
        serde_json::json!({}),
    );
    std::fs::write(dir.join("license.jwt"), &token).unwrap();
    let out = rampart(
        dir,
        &[
            "license",
            "inspect",
            "license.jwt",
            "--public-key",
            "vendor.pub",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "customer         Acme Corp",
        "license id       lic-2026-0042",
        "signed with      RS256",
        "features         analytics, ai",
        "seats            250",
        "max instances    3",
        "verdict          valid: expires in ",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    let out = rampart(
        dir,
        &[
            "license",
            "inspect",
            &token,
            "--public-key",
            "vendor.pub",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["license"]["claims"]["sub"], "cust-0042");

    let expired = mint(
        dir,
        "vendor",
        "RS256",
        now() - 3 * DAY,
        serde_json::json!({}),
    );
    // PyJWT will not HMAC with a PEM key; any shared secret makes the point.
    std::fs::write(dir.join("hs.pem"), "a-secret-on-the-customers-host").unwrap();
    let forged = mint(dir, "hs", "HS256", now() + 90 * DAY, serde_json::json!({}));
    for (t, key, want) in [
        (expired.as_str(), "vendor.pub", "expired on"),
        (forged.as_str(), "vendor.pub", "shared secret"),
        (token.as_str(), "other.pub", "does not verify"),
        ("eyJhbGciOiJSUzI1NiJ9.e30", "vendor.pub", "not a token"),
    ] {
        let out = rampart(dir, &["license", "inspect", t, "--public-key", key]);
        assert_eq!(out.status.code(), Some(1), "{want}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains(want), "{want:?} in {all}");
    }

    // Issued by rampart with an openssl Ed25519 key; PyJWT verifies it.
    for args in [
        &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"][..],
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub"][..],
    ] {
        assert!(Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap()
            .success());
    }
    let out = rampart(
        dir,
        &[
            "license",
            "issue",
            "--key",
            "ed.pem",
            "--customer",
            "Globex",
            "--expires",
            "2030-06-30",
            "--feature",
            "ai",
            "--seats",
            "10",
            "-o",
            "globex.jwt",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let globex = std::fs::read_to_string(dir.join("globex.jwt")).unwrap();
    let check = Command::new(python())
        .arg("-c")
        .arg(
            "import jwt,sys; c=jwt.decode(sys.argv[1].strip(), open('ed.pub').read(), algorithms=['EdDSA']); \
             print(c['customer'], c['features'], c['seats'], c['exp'])",
        )
        .arg(&globex)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "Globex ['ai'] 10 1909094399",
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = rampart(
        dir,
        &["license", "issue", "--key", "ed.pem", "--customer", "x"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("must expire"));

    // Settings that cannot work are config errors naming their key.
    std::fs::write(dir.join("license.jwt"), &token).unwrap();
    for (extra, key) in [
        ("algorithm = \"HS256\"", "license.algorithm"),
        ("on_expired = \"ignore\"", "license.on_expired"),
        ("interval = \"10s\"", "license.interval"),
        ("feature_status = 404", "license.feature_status"),
    ] {
        let err = edge_of(dir, &toml(extra)).err().unwrap_or_default();
        assert!(err.contains(key), "{extra}: {err}");
    }
    let no_license = toml("").replace(
        "[license]\ntoken_file = \"license.jwt\"\npublic_key_file = \"vendor.pub\"\n",
        "",
    );
    let err = edge_of(dir, &no_license).err().unwrap_or_default();
    assert!(err.contains("routes[0].requires_feature"), "{err}");
    let err = edge_of(
        dir,
        &toml("").replace("public_key_file = \"vendor.pub\"\n", ""),
    )
    .err()
    .unwrap_or_default();
    assert!(err.contains("license.public_key"), "{err}");
}

/// Guide 000's `.env`, filled as its quick start says (PEM keys quoted over several
/// lines, `INTEGRITY_REQUIRE_SIGNED=true` as text), drives `[license]` and `[integrity]`
/// through `${VAR}`: `rampart check` loads it, preflight's PF-LIC-01 and PF-INT-01 pass
/// and no finding names a LICENSE_/INTEGRITY_ variable; a changed file and a license
/// close to expiry are then found by preflight.
#[test]
fn guide_000_env_passes_preflight() {
    let tmp = TempDir::new("guide000");
    let dir = tmp.path();
    run_py(
        dir,
        &["keygen", "rsa", &dir.join("vendor").display().to_string()],
    );
    for args in [
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            "integrity-private.pem",
        ][..],
        &[
            "pkey",
            "-in",
            "integrity-private.pem",
            "-pubout",
            "-out",
            "integrity-public.pem",
        ][..],
    ] {
        assert!(Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap()
            .success());
    }
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(
        dir.join("static/index.html"),
        "<!doctype html><title>ChurnVision</title>",
    )
    .unwrap();
    std::fs::write(
        dir.join("rampart.toml"),
        "[server]\nhttp = \"127.0.0.1:0\"\nenvironment = \"production\"\nenv_file = \".env\"\n\
         [license]\ntoken = \"${LICENSE_KEY}\"\npublic_key = \"${LICENSE_PUBLIC_KEY}\"\n\
         algorithm = \"${LICENSE_SIGNING_ALG}\"\nstate_path = \"${LICENSE_STATE_PATH}\"\n\
         installation_id_path = \"${INSTALLATION_ID_PATH}\"\n\
         [integrity]\nmanifest = \"${INTEGRITY_MANIFEST_PATH}\"\nsignature = \"${INTEGRITY_SIGNATURE_PATH}\"\n\
         public_key = \"${INTEGRITY_PUBLIC_KEY}\"\nrequire_signed = \"${INTEGRITY_REQUIRE_SIGNED}\"\n\
         [[routes]]\npath = \"/\"\nstatic = \"static\"\n",
    )
    .unwrap();
    for args in [
        &[
            "manifest",
            "build",
            "static",
            "rampart.toml",
            "-o",
            "etc/integrity.json",
        ][..],
        &[
            "manifest",
            "sign",
            "etc/integrity.json",
            "--key",
            "integrity-private.pem",
            "--signature",
            "etc/integrity.sig",
        ][..],
    ] {
        let out = rampart(dir, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let env = |token: &str| {
        let pem = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .trim()
                .to_owned()
        };
        let d = dir.display();
        format!(
            "# === ENVIRONMENT ===\nDEBUG=false\nENVIRONMENT=production\n\n\
             # === SECRETS ===\nENCRYPTION_KEY=8Jk1cZ6yq7XQ0pOq3m2dY5m0fX0o2qYwT3c5r7u9w1E=\n\
             SECRET_KEY=Vd3k9QmZp2Xw7Lr4Tn8Yb6Hc1Jf5Gs0Ka3Ue7Wi2Oq9Rx4Mz6Nv8By1Ct5Dp7Eh\n\n\
             # === LICENSE ===\nINTEGRITY_MANIFEST_PATH={d}/etc/integrity.json\n\
             INTEGRITY_PUBLIC_KEY=\"{}\"\nINTEGRITY_REQUIRE_SIGNED=true\n\
             INTEGRITY_SIGNATURE_PATH={d}/etc/integrity.sig\nLICENSE_KEY={token}\n\
             LICENSE_PUBLIC_KEY=\"{}\"\nLICENSE_SIGNING_ALG=RS256\n\n\
             # === LICENSE STATE (ANTI-ROLLBACK) ===\nINSTALLATION_ID_PATH={d}/data/installation.id\n\
             LICENSE_STATE_PATH={d}/data/license_state.json\n",
            pem("integrity-public.pem"),
            pem("vendor.pub"),
        )
    };
    let write_env = |token: &str| {
        std::fs::write(dir.join(".env"), env(token)).unwrap();
        std::fs::set_permissions(
            dir.join(".env"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    };
    write_env(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 365 * DAY,
        serde_json::json!({}),
    ));
    let out = rampart(dir, &["check", "-c", "rampart.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preflight = || {
        let out = rampart(
            dir,
            &["preflight", "-c", "rampart.toml", "--format", "json"],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let status = |v: &serde_json::Value, id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let v = preflight();
    assert_eq!(status(&v, "PF-LIC-01"), "passed", "{v:#}");
    assert_eq!(status(&v, "PF-INT-01"), "passed", "{v:#}");
    let named = v["findings"].to_string();
    for var in ["LICENSE_", "INTEGRITY_", "INSTALLATION_ID"] {
        assert!(!named.contains(var), "{var} flagged: {v:#}");
    }
    // A changed file and a license 10 days from expiry.
    std::fs::write(
        dir.join("static/index.html"),
        "<script src=//evil.example></script>",
    )
    .unwrap();
    write_env(&mint(
        dir,
        "vendor",
        "RS256",
        now() + 10 * DAY + 600,
        serde_json::json!({}),
    ));
    let v = preflight();
    let found: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["id"].as_str().unwrap().starts_with("PF-LIC")
                || f["id"].as_str().unwrap().starts_with("PF-INT")
        })
        .map(|f| {
            format!(
                "{} {} {}",
                f["id"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["why"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("PF-INT-01 error changed: size")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("PF-LIC-01 warn expires in 10 days")),
        "{found:?}"
    );
    // Expired: with the notice (the default) a warning, so a production start serves the
    // notice; with on_expired = "refuse" an error.
    write_env(&mint(
        dir,
        "vendor",
        "RS256",
        now() - 30 * DAY,
        serde_json::json!({}),
    ));
    let lic = |v: &serde_json::Value| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "PF-LIC-01")
            .map(|f| f["severity"].as_str().unwrap().to_owned())
    };
    assert_eq!(lic(&preflight()).as_deref(), Some("warn"));
    let toml = std::fs::read_to_string(dir.join("rampart.toml")).unwrap();
    std::fs::write(
        dir.join("rampart.toml"),
        toml.replace("[license]\n", "[license]\non_expired = \"refuse\"\n"),
    )
    .unwrap();
    assert_eq!(lic(&preflight()).as_deref(), Some("error"));
}

/// `max_instances` in a fleet (a real `redis-server`): with a license for two instances,
/// two edges take seats and serve, a third serves the notice (`instance_limit`, audited);
/// when one of the two stops cleanly its seat is given back and the third takes it at
/// its next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_runs_no_more_instances_than_licensed() {
    let redis = crate::fleet::Redis::start();
    let vendor = TempDir::new("license-fleet-vendor");
    run_py(
        vendor.path(),
        &[
            "keygen",
            "ed25519",
            &vendor.path().join("vendor").display().to_string(),
        ],
    );
    let token = mint(
        vendor.path(),
        "vendor",
        "EdDSA",
        now() + 90 * DAY,
        serde_json::json!({"max_instances": 2}),
    );
    let cfg = format!(
        "{}\n[state]\nbackend = \"redis\"\nredis = \"redis://127.0.0.1:{}\"\nprefix = \"licfleet:\"\n",
        toml("algorithm = \"EdDSA\""),
        redis.port
    );
    let mut dirs = Vec::new();
    let mut edges = Vec::new();
    for i in 0..3 {
        let d = TempDir::new(&format!("license-fleet-{i}"));
        std::fs::write(d.path().join("license.jwt"), &token).unwrap();
        std::fs::copy(
            vendor.path().join("vendor.pub"),
            d.path().join("vendor.pub"),
        )
        .unwrap();
        let e = start(d.path(), &cfg).await.unwrap();
        let want = if i < 2 { "valid" } else { "instance_limit" };
        let h = health_until(&e, want, |h| {
            h["license"]["status"] == want && !h["license"]["instances"].is_null()
        })
        .await;
        if i < 2 {
            assert_eq!(h["license"]["instances"], i + 1, "{h:#}");
            assert_eq!(get(&e, "/").await.text(), "app");
        } else {
            assert_eq!(
                h["license"]["message"], "the license allows 2 instances and 2 already serve",
                "{h:#}"
            );
            assert_eq!(get(&e, "/").await.status, 503);
            wait_audited(d.path(), "license.instance_limit", 1).await;
        }
        dirs.push(d);
        edges.push(e);
    }
    let seats = redis.cli(&["ZCARD", "licfleet:license:lic-2026-0042:seats"]);
    assert_eq!(seats, "2");
    // The first stops cleanly: its seat is free, and the third takes it.
    let first = edges.remove(0);
    first.shutdown();
    drop(first);
    let third = &edges[1];
    let h = license_state(third, "valid").await;
    assert_eq!(h["license"]["instances"], 2, "{h:#}");
    assert_eq!(get(third, "/").await.text(), "app");
    wait_audited(dirs[2].path(), "license.valid", 1).await;
}
