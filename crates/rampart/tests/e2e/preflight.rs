//! `rampart preflight` and `rampart secrets`: one test per PF rule (fires on a bad input,
//! silent on the good setup), with real files, real git repositories and real certificates
//! made here; `serve` refusing a weak production setup before binding; a refused reload
//! keeping the old config; `.env` templates from the field guides filled and then passing;
//! a rotated JWT secret accepted during the overlap only.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rampart_test_support::client;
use rampart_test_support::pki::Pki;
use rampart_test_support::TempDir;
use serde_json::Value;

use crate::harness::{bin, serve};

/// Expected findings: `(rule, severity)`.
type Want<'a> = &'a [(&'a str, &'a str)];

const DAY: i64 = 86_400;

const GOOD_TOML: &str = r#"[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
allowed_hosts = ["app.test"]
env_file = ".env"

[tls]
cert = "app.crt"
key = "app.key"

[preflight]
ca_file = "ca.pem"

[upstreams.app]
servers = ["127.0.0.1:9"]

[limits.login]
rate = "5/m"
lockout = { failures = 5, for = "15m" }

[[routes]]
path = "/login"
upstream = "app"
limit = "login"

[[routes]]
path = "/"
upstream = "app"
"#;

fn good_env(secret: &str) -> String {
    format!(
        "ALLOWED_HOSTS=app.test\nCORS_ORIGINS=https://app.test\nDATABASE_URL=postgres://app@db:5432/app?sslmode=verify-full\nDEBUG=false\nLOG_LEVEL=INFO\nREDIS_URL=rediss://redis:6380/0\nSECRET_KEY={secret}\n"
    )
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

fn generate(kind: &str) -> String {
    let out = bin().args(["secrets", "generate", kind]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Fx {
    dir: TempDir,
    _pki: Pki,
    secret: String,
}

impl Fx {
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn toml(&self, text: &str) {
        self.dir.write("rampart.toml", text);
    }
    fn env(&self, text: &str) {
        self.dir.write(".env", text);
    }
    /// The good `.env` with `key` set to `value` (or removed when `None`).
    fn env_with(&self, key: &str, value: Option<&str>) {
        let mut lines: Vec<String> = good_env(&self.secret)
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(str::to_owned)
            .collect();
        if let Some(v) = value {
            lines.push(format!("{key}={v}"));
            lines.sort();
        }
        self.env(&(lines.join("\n") + "\n"));
    }
    fn cert(&self, pki: &Pki, names: &[&str], from: i64, to: i64) {
        let leaf = pki.leaf_valid("leaf", names, from, to);
        std::fs::copy(&leaf.cert, self.path().join("app.crt")).unwrap();
        std::fs::copy(&leaf.key, self.path().join("app.key")).unwrap();
    }
}

/// The good setup: a CA-signed 90-day certificate for app.test, key 0600, strict config,
/// a clean `.env` that git ignores, a repository with no secret in its history.
fn fx() -> Fx {
    let dir = TempDir::new("preflight");
    let pki = Pki::new();
    std::fs::copy(pki.ca_path(), dir.path().join("ca.pem")).unwrap();
    let f = Fx {
        dir,
        _pki: pki,
        secret: generate("token"),
    };
    f.cert(&f._pki, &["app.test"], -DAY, 89 * DAY);
    f.toml(GOOD_TOML);
    f.env(&good_env(&f.secret));
    f.dir.write(".gitignore", ".env\n.env.bak\n*.key\n");
    git(f.path(), &["init", "-q", "."]);
    git(f.path(), &["add", "rampart.toml", ".gitignore", "app.crt"]);
    git(f.path(), &["commit", "-qm", "init"]);
    f
}

fn preflight(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = bin()
        .args(["preflight", "-c", "rampart.toml", "--format", "json"])
        .args(args)
        .current_dir(dir)
        .env_remove("RAMPART_ENV")
        .output()
        .unwrap();
    crate::harness::json_report(&out)
}

/// `(id, severity)` of every finding not allowed.
fn found(v: &Value) -> BTreeSet<(String, String)> {
    crate::harness::finding_ids(v, |f| f["allowed"] == false && f["severity"] != "info")
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
        .map(|f| format!("{} | {}", f["subject"], f["why"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_good_setup_passes_every_check() {
    let f = fx();
    let (code, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[]), "{v:#}");
    assert_eq!(code, 0);
    assert_eq!(v["status"], "passed");
    let checks = v["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in [
        "PF-SEC-01",
        "PF-SEC-02",
        "PF-SEC-03",
        "PF-SEC-04",
        "PF-SEC-05",
        "PF-DBG-01",
        "PF-LOG-01",
        "PF-HOST-01",
        "PF-CORS-01",
        "PF-DB-01",
        "PF-RDS-01",
        "PF-GIT-01",
        "PF-KEY-01",
        "PF-CRT-01",
        "PF-CRT-02",
        "PF-CRT-03",
        "PF-TLS-01",
        "PF-TLS-02",
        "PF-HSTS-01",
        "PF-HDR-01",
        "PF-CSP-01",
        "PF-COOK-01",
        "PF-ENV-01",
        "PF-ENV-02",
    ] {
        assert!(ids.contains(&id), "{id} not run: {ids:?}");
    }
    // A site that is not a vendor's: nothing signed to check; no client certificates.
    let (vendor, site): (Vec<_>, Vec<_>) = checks.iter().partition(|c| {
        ["PF-LIC-01", "PF-INT-01", "PF-BAK-01", "PF-MTLS-01"].contains(&c["id"].as_str().unwrap())
    });
    assert!(site.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert!(
        vendor.iter().all(|c| c["status"] == "skipped"),
        "{checks:#?}"
    );
}

#[test]
fn secret_rules_fire_on_weak_values() {
    let f = fx();
    let cases: &[(&str, &str, &str)] = &[
        ("SECRET_KEY", "short-Q9z-random", "PF-SEC-01"),
        (
            "SECRET_KEY",
            "django-insecure-9xq2v8z7w6u5t4s3r2q1p0onmlkjihgfedcbaZYXWVUTSRQPONM",
            "PF-SEC-01",
        ),
        ("SECRET_KEY", "REPLACE_WITH_GENERATED_VALUE", "PF-SEC-02"),
        ("SECRET_KEY", "<generated-secret>", "PF-SEC-02"),
        ("SECRET_KEY", "changeme", "PF-SEC-02"),
        (
            "SECRET_KEY",
            "abcdeaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "PF-SEC-03",
        ),
    ];
    for (key, value, rule) in cases {
        f.env_with(key, Some(value));
        let (code, v) = preflight(f.path(), &[]);
        assert_eq!(found(&v), set(&[(rule, "error")]), "{key}={value}: {v:#}");
        assert_eq!(code, 1);
        assert!(!v.to_string().contains(value), "the value is never printed");
    }
    // Fallbacks: every entry passes the same rules.
    f.env(&format!(
        "{}SECRET_KEY_FALLBACKS={},weak\n",
        good_env(&f.secret),
        generate("token")
    ));
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-SEC-04", "error")]), "{v:#}");
    // One value for two secrets.
    f.env(&format!("{}TOKEN_SALT={}\n", good_env(&f.secret), f.secret));
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-SEC-05", "error")]), "{v:#}");
    assert!(why(&v, "PF-SEC-05").contains("SECRET_KEY"));
    // The edge's own secrets are judged too.
    f.env(&good_env(&f.secret));
    f.toml(&format!(
        "{GOOD_TOML}\n[jwt]\nalg = \"HS256\"\nsecret = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"
    ));
    let (_, v) = preflight(f.path(), &[]);
    assert!(why(&v, "PF-SEC-01").contains("jwt.secret"), "{v:#}");
}

#[test]
fn environment_rules_fire() {
    let f = fx();
    let cases: &[(&str, Option<&str>, Want<'_>)] = &[
        ("DEBUG", Some("True"), &[("PF-DBG-01", "error")]),
        ("LOG_LEVEL", Some("debug"), &[("PF-LOG-01", "error")]),
        ("ALLOWED_HOSTS", Some("*"), &[("PF-HOST-01", "error")]),
        ("ALLOWED_HOSTS", Some(""), &[("PF-HOST-01", "error")]),
        ("CORS_ORIGINS", Some("*"), &[("PF-CORS-01", "error")]),
        (
            "CORS_ORIGINS",
            Some("https://app.test,http://app.test"),
            &[("PF-CORS-01", "error")],
        ),
        (
            "CORS_ORIGINS",
            Some("https://*.app.test"),
            &[("PF-CORS-01", "error")],
        ),
        ("CORS_ORIGINS", Some("null"), &[("PF-CORS-01", "error")]),
        (
            "DATABASE_URL",
            Some("postgres://app@db/app"),
            &[("PF-DB-01", "error")],
        ),
        (
            "DATABASE_URL",
            Some("postgresql://app@db/app?sslmode=prefer"),
            &[("PF-DB-01", "error")],
        ),
        (
            "DATABASE_URL",
            Some("postgres://app@db/app?sslmode=require"),
            &[("PF-DB-01", "warn")],
        ),
        (
            "REDIS_URL",
            Some("redis://redis:6379/0"),
            &[("PF-RDS-01", "error")],
        ),
    ];
    for (key, value, want) in cases {
        f.env_with(key, *value);
        let (code, v) = preflight(f.path(), &[]);
        assert_eq!(found(&v), set(want), "{key}={value:?}: {v:#}");
        let errors = want.iter().any(|(_, s)| *s == "error");
        assert_eq!(code, i32::from(errors), "{key}");
    }
    // The process environment is checked when asked.
    f.env_with("DEBUG", Some("false"));
    let out = bin()
        .args([
            "preflight",
            "-c",
            "rampart.toml",
            "--format",
            "json",
            "--process-env",
        ])
        .current_dir(f.path())
        .env("DJANGO_DEBUG", "1")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        why(&v, "PF-DBG-01").contains("process environment DJANGO_DEBUG"),
        "{v:#}"
    );
}

#[test]
fn dotenv_syntax_and_required_keys() {
    let f = fx();
    f.env(&format!(
        "{}DEBUG=false\nbroken line\n",
        good_env(&f.secret)
    ));
    let (code, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-ENV-01", "error")]), "{v:#}");
    assert_eq!(code, 1);
    let w = why(&v, "PF-ENV-01");
    assert!(
        w.contains("DuplicatedKey") && w.contains("KeyWithoutValue"),
        "{w}"
    );
    // Style rules are notes only.
    f.env(&format!(
        "{} \n",
        good_env(&f.secret).replace("DEBUG=false", "debug=false")
    ));
    let (code, v) = preflight(f.path(), &[]);
    assert_eq!(code, 0, "{v:#}");
    assert!(why(&v, "PF-ENV-01").contains("LowercaseKey"));
    // Required keys: from the config and from --require, typed.
    f.env(&good_env(&f.secret));
    f.toml(&GOOD_TOML.replace(
        "[preflight]\n",
        "[preflight]\nrequired = { DATABASE_URL = \"url\", WORKERS = \"int\" }\n",
    ));
    let (_, v) = preflight(
        f.path(),
        &["--require", "DEBUG:bool", "--require", "SENTRY_DSN:url"],
    );
    let w = why(&v, "PF-ENV-02");
    assert!(
        w.contains("WORKERS is not set") && w.contains("SENTRY_DSN is not set"),
        "{w}"
    );
    assert!(!w.contains("DATABASE_URL") && !w.contains("DEBUG"), "{w}");
    f.env(&format!("{}WORKERS=many\n", good_env(&f.secret)));
    let (_, v) = preflight(f.path(), &[]);
    assert!(
        why(&v, "PF-ENV-02").contains("WORKERS is not a valid int"),
        "{v:#}"
    );
}

#[test]
fn git_rules_fire_on_tracked_unignored_and_historic_secrets() {
    // Not ignored.
    let f = fx();
    f.dir.write(".gitignore", "*.key\n");
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-GIT-01", "error")]), "{v:#}");
    assert!(why(&v, "PF-GIT-01").contains("not git-ignored"));
    // Tracked, then deleted: the history still has it.
    let f = fx();
    git(f.path(), &["add", "-f", ".env"]);
    git(f.path(), &["commit", "-qm", "oops"]);
    let (_, v) = preflight(f.path(), &[]);
    let w = why(&v, "PF-GIT-01");
    assert!(
        w.contains("git index: .env") && w.contains("git history: .env"),
        "{w}"
    );
    git(f.path(), &["rm", "-q", "--cached", ".env"]);
    git(f.path(), &["commit", "-qm", "remove"]);
    let (_, v) = preflight(f.path(), &[]);
    let w = why(&v, "PF-GIT-01");
    assert!(
        !w.contains("git index") && w.contains("git history: .env"),
        "{w}"
    );
    // A key committed in source code, then removed.
    let f = fx();
    f.dir.write(
        "settings.py",
        "AWS_KEY = 'AKIAIOSFODNN7REALKEY'\nAPI_TOKEN = \"tK9vQ2mZ8pL4xR7wN1cB6yH3\"\nTIMEOUT = 30\n",
    );
    f.dir.write(
        "deploy.pem",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n",
    );
    git(f.path(), &["add", "settings.py", "deploy.pem"]);
    git(f.path(), &["commit", "-qm", "settings"]);
    std::fs::remove_file(f.path().join("settings.py")).unwrap();
    std::fs::remove_file(f.path().join("deploy.pem")).unwrap();
    git(f.path(), &["commit", "-qam", "rm"]);
    let (_, v) = preflight(f.path(), &[]);
    let w = why(&v, "PF-GIT-01");
    assert!(w.contains("AWS access key"), "{w}");
    assert!(w.contains("high-entropy value"), "{w}");
    assert!(
        !w.contains("AKIAIOSFODNN7REALKEY"),
        "evidence is not printed"
    );
    assert!(w.contains("deploy.pem") && w.contains("private key"), "{w}");
    assert_eq!(w.lines().count(), 3, "{w}");
    // A finding in history can be accepted by its subject (a test fixture, say).
    let (code, _) = preflight(
        f.path(),
        &[
            "--allow",
            "PF-GIT-01:git history: settings.py",
            "--allow",
            "PF-GIT-01:git history: deploy.pem",
        ],
    );
    assert_eq!(code, 0);
}

#[test]
fn certificate_rules_fire() {
    let f = fx();
    let pki = Pki::new();
    std::fs::copy(pki.ca_path(), f.path().join("ca.pem")).unwrap();
    let cases: &[(&[&str], i64, i64, Want<'_>, &str)] = &[
        (
            &["app.test"],
            -91 * DAY,
            -DAY,
            &[("PF-CRT-01", "error")],
            "expired",
        ),
        (
            &["app.test"],
            -70 * DAY,
            20 * DAY,
            &[("PF-CRT-01", "error")],
            "expires in",
        ),
        (
            &["app.test"],
            -40 * DAY,
            45 * DAY,
            &[("PF-CRT-01", "warn")],
            "expires in",
        ),
        (
            &["app.test"],
            -DAY,
            399 * DAY,
            &[("PF-CRT-02", "warn")],
            "lifetime is 400 days",
        ),
        (
            &["other.test"],
            -DAY,
            89 * DAY,
            &[("PF-CRT-02", "error")],
            "app.test",
        ),
    ];
    for (names, from, to, want, text) in cases {
        f.cert(&pki, names, *from, *to);
        let (_, v) = preflight(f.path(), &[]);
        assert_eq!(found(&v), set(want), "{names:?} {from} {to}: {v:#}");
        assert!(why(&v, want[0].0).contains(text), "{v:#}");
    }
    // An untrusted chain: the CA is not given.
    f.cert(&pki, &["app.test"], -DAY, 89 * DAY);
    f.toml(&GOOD_TOML.replace("ca_file = \"ca.pem\"\n", ""));
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-CRT-02", "error")]), "{v:#}");
    assert!(why(&v, "PF-CRT-02").contains("does not verify"), "{v:#}");
    // ... or given on the command line.
    let (_, v) = preflight(f.path(), &["--ca-file", "ca.pem"]);
    assert_eq!(found(&v), set(&[]), "{v:#}");
    // RSA-1024 (openssl makes it: rcgen cannot).
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "app.key",
            "-out",
            "app.crt",
            "-days",
            "60",
            "-subj",
            "/CN=app.test",
            "-addext",
            "subjectAltName=DNS:app.test",
        ])
        .current_dir(f.path())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let (_, v) = preflight(f.path(), &["--allow", "PF-CRT-02"]);
    assert_eq!(found(&v), set(&[("PF-CRT-03", "error")]), "{v:#}");
    assert!(why(&v, "PF-CRT-03").contains("RSA key of 1024 bits"));
}

/// `[tls.acme]`: the names it will certify count as covered; no certificate in the store
/// yet is a note; one past three quarters of its lifetime (renewal was due at two thirds)
/// a warning; an expired one an error.
#[test]
fn acme_store_rules_fire() {
    let f = fx();
    let pki = Pki::new();
    f.toml(
        &GOOD_TOML
            .replace(
                "env_file = \".env\"\n",
                "env_file = \".env\"\nstate_dir = \"state\"\n",
            )
            .replace(
                "[tls]\ncert = \"app.crt\"\nkey = \"app.key\"\n",
                "[tls.acme]\nemail = \"ops@app.test\"\n",
            ),
    );
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[]), "{v:#}");
    assert!(why(&v, "PF-CRT-01").contains("no certificate from https://acme-v02.api.letsencrypt.org/directory yet: ordered at the first start for app.test"), "{v:#}");
    let store = f
        .path()
        .join("state/acme/acme-v02.api.letsencrypt.org_directory");
    std::fs::create_dir_all(&store).unwrap();
    for (from, to, want, text) in [
        (-DAY, 89 * DAY, None, ""),
        (
            -80 * DAY,
            10 * DAY,
            Some("warn"),
            "days (renewal was due at two thirds",
        ),
        (-91 * DAY, -DAY, Some("error"), "expired 1 days ago"),
    ] {
        let leaf = pki.leaf_valid("acme", &["app.test"], from, to);
        std::fs::copy(&leaf.cert, store.join("cert.pem")).unwrap();
        let (_, v) = preflight(f.path(), &[]);
        match want {
            None => assert_eq!(found(&v), set(&[]), "{v:#}"),
            Some(sev) => {
                assert_eq!(found(&v), set(&[("PF-CRT-01", sev)]), "{v:#}");
                assert!(why(&v, "PF-CRT-01").contains(text), "{v:#}");
            }
        }
    }
}

#[test]
fn private_key_mode_rule_fires() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = fx();
    let key = f.path().join("app.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-KEY-01", "error")]), "{v:#}");
    assert!(why(&v, "PF-KEY-01").contains("mode 0644"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[]), "{v:#}");
}

#[test]
fn edge_config_rules_fire() {
    let f = fx();
    let routes_at = GOOD_TOML.find("[upstreams.app]").unwrap();
    let cases: &[(&str, Want<'_>, &str)] = &[
        ("[headers]\nhsts = \"max-age=86400\"\n", &[("PF-HSTS-01", "error"), ("PF-HSTS-01", "warn")], "under six months"),
        ("[headers]\nhsts = \"max-age=31536000; includeSubDomains\"\n", &[("PF-HSTS-01", "warn")], "under two years"),
        ("[headers]\nhsts = \"max-age=63072000; preload\"\n", &[("PF-HSTS-01", "error"), ("PF-HSTS-01", "warn")], "preload needs"),
        ("[headers]\nhsts = false\n", &[("PF-HSTS-01", "error")], "no Strict-Transport-Security"),
        ("[headers]\ncontent_type_options = false\n", &[("PF-HDR-01", "error")], "X-Content-Type-Options"),
        ("[headers]\nreferrer_policy = \"unsafe-url\"\n", &[("PF-HDR-01", "error")], "unsafe-url"),
        ("[headers]\nframe_options = false\ncsp = \"default-src 'self'; base-uri 'self'; form-action 'self'; object-src 'none'\"\n", &[("PF-HDR-01", "error"), ("PF-CSP-01", "warn")], "can be framed"),
        // `check` refuses `coop = "same-site"`; through `set` it reaches preflight.
        ("[headers]\nset = { \"Cross-Origin-Opener-Policy\" = \"same-site\" }\n", &[("PF-HDR-01", "error")], "Cross-Origin-Opener-Policy"),
        ("[headers]\ncsp = \"default-src 'self'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'\"\n", &[("PF-CSP-01", "error")], "unsafe-inline"),
        ("[headers]\ncsp = \"default-src 'self'; script-src 'self' 'unsafe-eval'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'\"\n", &[("PF-CSP-01", "warn")], "unsafe-eval"),
        ("[headers]\ncsp = false\n", &[("PF-CSP-01", "error")], "no enforcing Content-Security-Policy"),
        ("[cors.web]\norigins = [\"https://app.test\", \"http://old.app.test\"]\n", &[("PF-CORS-01", "error")], "plain-HTTP origin"),
        ("[logging]\nmask_pii = false\naccess = \"off\"\n", &[("PF-LOG-02", "warn")], "unmasked"),
        ("[admin]\nlisten = \"127.0.0.1:0\"\npublic_path = \"/_rampart\"\npublic_allow = [\"0.0.0.0/0\"]\n", &[("PF-ADM-01", "error")], "open to every address"),
        // A warning here; an error with `environment = "production"`.
        ("[state]\nredis = \"redis://10.0.0.5:6379\"\n", &[("PF-STATE-01", "warn")], "unencrypted"),
        ("[state]\nredis = \"rediss://app:hunter2@10.0.0.5:6380\"\n", &[("PF-STATE-01", "error")], "carries its password"),
        // Plain Redis on this host, TLS with the password from the environment: fine.
        ("[state]\nredis = \"redis://127.0.0.1:6379\"\n", &[], ""),
        ("[state]\nredis = \"rediss://redis.internal:6380\"\npassword = \"${HOME}\"\n", &[], ""),
        // Health and readiness for everyone (guide 002's public `/health`) are no finding.
        ("[admin]\nlisten = \"127.0.0.1:0\"\npublic_path = \"\"\npublic_endpoints = [\"health\", \"ready\"]\npublic_allow = [\"0.0.0.0/0\", \"::/0\"]\n", &[], ""),
    ];
    for (section, want, text) in cases {
        let toml = format!(
            "{}{section}\n{}",
            &GOOD_TOML[..routes_at],
            &GOOD_TOML[routes_at..]
        );
        f.toml(&toml);
        let (_, v) = preflight(f.path(), &[]);
        assert_eq!(found(&v), set(want), "{section}: {v:#}");
        if let Some((id, _)) = want.first() {
            assert!(why(&v, id).contains(text), "{section}: {}", why(&v, id));
        }
    }
    // Plain Redis off the host is an error in production.
    f.toml(
        &GOOD_TOML
            .replace("[server]\n", "[server]\nenvironment = \"production\"\n")
            .replace(
                "[upstreams.app]",
                "[state]\nredis = \"redis://10.0.0.5:6379\"\n\n[upstreams.app]",
            ),
    );
    let (_, v) = preflight(f.path(), &[]);
    assert!(
        found(&v).contains(&("PF-STATE-01".to_owned(), "error".to_owned())),
        "{v:#}"
    );
    // Report-only CSP alone is not enforcement.
    f.toml(&GOOD_TOML.replace(
        "path = \"/\"\nupstream = \"app\"\n",
        "path = \"/\"\nupstream = \"app\"\ncsp_report_only = true\n",
    ));
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-CSP-01", "error")]), "{v:#}");
    assert!(why(&v, "PF-CSP-01").contains("routes[1] (/)"));
    // Cookies, login limits, hosts, TLS.
    let edits: &[(&str, &str, Want<'_>)] = &[
        (
            "path = \"/\"\nupstream = \"app\"\n",
            "path = \"/\"\nupstream = \"app\"\ncookies = { secure = false, samesite = \"None\" }\n",
            &[("PF-COOK-01", "error")],
        ),
        (
            "upstream = \"app\"\nlimit = \"login\"\n",
            "upstream = \"app\"\n",
            &[("PF-LIM-01", "error")],
        ),
        (
            "lockout = { failures = 5, for = \"15m\" }\n",
            "",
            &[("PF-LIM-01", "warn")],
        ),
        (
            "allowed_hosts = [\"app.test\"]\n",
            "",
            &[("PF-HOST-01", "error")],
        ),
        ("https = \"127.0.0.1:0\"\n", "", &[("PF-TLS-01", "error")]),
    ];
    for (from, to, want) in edits {
        let mut toml = GOOD_TOML.replacen(from, to, 1);
        if to.is_empty() && from.starts_with("https") {
            let at = toml.find("[tls]").unwrap();
            let end = toml.find("[preflight]").unwrap();
            toml.replace_range(at..end, "");
        }
        f.toml(&toml);
        let (_, v) = preflight(f.path(), &[]);
        assert_eq!(found(&v), set(want), "{from} -> {to}: {v:#}");
    }
}

#[test]
fn allowances_formats_and_exit_codes() {
    let f = fx();
    f.env_with("DEBUG", Some("true"));
    let (code, v) = preflight(f.path(), &["--allow", "PF-DBG-01"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["allowed"], 1);
    assert_eq!(v["version"], 1);
    // A subject-specific allowance covers only that subject.
    let (code, _) = preflight(f.path(), &["--allow", "PF-DBG-01:routes[0]"]);
    assert_eq!(code, 1);
    let (code, _) = preflight(f.path(), &["--allow", "PF-DBG-01:.env:4"]);
    assert_eq!(code, 0);
    // In the config.
    f.toml(&GOOD_TOML.replace("[preflight]\n", "[preflight]\nallow = [\"PF-DBG-01\"]\n"));
    let (code, _) = preflight(f.path(), &[]);
    assert_eq!(code, 0);
    f.toml(GOOD_TOML);
    // Text: grouped by severity, no colour when not a terminal.
    let out = bin()
        .args(["preflight", "-c", "rampart.toml"])
        .current_dir(f.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.starts_with("ERRORS (1)\n  PF-DBG-01 .env:4 DEBUG\n"),
        "{text}"
    );
    assert!(text.contains("fix: set DEBUG=false"));
    assert!(text.contains("preflight FAILED: 1 errors"), "{text}");
    assert!(!text.contains('\x1b'));
    // JUnit: a parser reads it; one test case per check, the error one failing.
    let out = bin()
        .args(["preflight", "-c", "rampart.toml", "--format", "junit"])
        .current_dir(f.path())
        .output()
        .unwrap();
    let xml = f.dir.write("report.xml", &out.stdout);
    let script = "import sys\nfrom junitparser import JUnitXml, Failure\nx = JUnitXml.fromfile(sys.argv[1])\nfailed = [c.name for s in x for c in s if any(isinstance(r, Failure) for r in c.result)]\ntotal = sum(1 for s in x for c in s)\nprint(total, ';'.join(failed))\n";
    let py = crate::harness::python();
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let (total, failed) = said.trim().split_once(' ').unwrap();
    assert!(total.parse::<usize>().unwrap() >= 24, "{said}");
    assert_eq!(failed, "PF-DBG-01 DEBUG off");
    // Bad input: a config that does not load, an unknown format, nothing to check.
    let out = bin()
        .args(["preflight", "-c", "missing.toml"])
        .current_dir(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the file"));
    let out = bin()
        .args(["preflight", "--format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let empty = TempDir::new("pf-empty");
    let out = bin()
        .arg("preflight")
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to check"));
}

/// The edge's config for `serve` in production: the good setup with an admin listener on a
/// free port.
fn production_toml() -> String {
    GOOD_TOML.replace(
        "env_file = \".env\"\n",
        "env_file = \".env\"\nenvironment = \"production\"\n",
    ) + "\n[admin]\nlisten = \"127.0.0.1:0\"\n"
}

#[test]
fn serve_in_production_refuses_a_placeholder_before_binding() {
    let f = fx();
    f.toml(&production_toml());
    f.env_with("SECRET_KEY", Some("REPLACE_WITH_GENERATED_VALUE"));
    // Hold the port the edge is told to use: a bind before the checks would fail with
    // "address in use" instead of the preflight report.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = bin()
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .current_dir(f.path())
        .env("RAMPART_STATE_DIR", f.path().join("state"))
        .env_remove("RAMPART_ENV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PF-SEC-02") && err.contains("SECRET_KEY"),
        "{err}"
    );
    assert!(err.contains("refusing to start in production"), "{err}");
    assert!(!err.contains("in use"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    // RAMPART_ENV=production does the same for a config that does not say it.
    f.toml(GOOD_TOML);
    let out = bin()
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .current_dir(f.path())
        .env("RAMPART_STATE_DIR", f.path().join("state"))
        .env("RAMPART_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // --allow accepts it knowingly, and the audit log says so.
    f.toml(&production_toml());
    let mut p = serve(f.path(), &["--allow", "PF-SEC-02"], 2);
    let line = p
        .seen
        .iter()
        .find(|l| l.contains("preflight.allowed"))
        .cloned()
        .or_else(|| p.wait_for_line("preflight.allowed", Duration::from_secs(10)))
        .unwrap_or_else(|| panic!("no audit line: {:?}", p.seen));
    assert!(
        line.contains("PF-SEC-02") && line.contains("SECRET_KEY"),
        "{line}"
    );
    // A production start that passed says so, with what it accepted.
    let passed = p
        .seen
        .iter()
        .find(|l| l.contains("preflight passed"))
        .cloned()
        .unwrap_or_else(|| panic!("no 'preflight passed' line: {:?}", p.seen));
    assert!(
        passed.contains("\"allowed\":1") && passed.contains("\"enforced\":true"),
        "{passed}"
    );
    drop(held);
}

/// Waits until the edge behind `admin` has done `n` reloads.
async fn reloads_reach(admin: std::net::SocketAddr, n: u64) {
    for _ in 0..50 {
        let h = client::plain(admin, client::get("admin", "/health"))
            .await
            .json();
        if h["config"]["reloads"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reload {n} did not happen");
}

fn admin_addr(p: &mut crate::harness::Proc) -> std::net::SocketAddr {
    let line = p
        .seen
        .iter()
        .find(|l| l.contains("admin API"))
        .cloned()
        .or_else(|| p.wait_for_line("admin API", Duration::from_secs(10)))
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    v["addr"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_reload_with_a_new_error_keeps_the_old_config() {
    let f = fx();
    f.toml(&production_toml());
    let mut p = serve(f.path(), &[], 2);
    let admin = admin_addr(&mut p);
    let health = || async move {
        client::plain(admin, client::get("admin", "/health"))
            .await
            .json()
    };
    let h = health().await;
    assert_eq!(h["security"]["preflight"], "passed", "{h:#}");
    assert_eq!(h["security"]["environment"], "production");
    let m = client::plain(admin, client::get("admin", "/metrics"))
        .await
        .text();
    assert!(
        m.contains("rampart_preflight_findings{severity=\"error\"} 0"),
        "{m}"
    );
    // The application's environment turns weak: DEBUG on. A reload is refused.
    f.env_with("DEBUG", Some("true"));
    crate::harness::sighup(&p.child);
    let line = p.wait_for_line("config reload refused", Duration::from_secs(10));
    assert!(
        line.as_deref()
            .is_some_and(|l| l.contains("preflight error")),
        "{:?}",
        p.seen
    );
    let h = health().await;
    assert_eq!(h["config"]["reload_failures"], 1, "{h:#}");
    assert_eq!(h["security"]["preflight"], "passed");
    // Still serving: the plain listener still redirects app.test to HTTPS.
    let r = client::plain(p.http.unwrap(), client::get("app.test", "/x")).await;
    assert!(r.status.is_redirection(), "{}", r.status);
    // Fixed: the reload goes through.
    f.env_with("DEBUG", Some("false"));
    crate::harness::sighup(&p.child);
    reloads_reach(admin, 1).await;
}

/// `.env` templates from the field guides (../shared/field-guides 000, 002, 004), as their
/// teams publish them.
const GUIDE_000: &str = "# === ENVIRONMENT ===\nENVIRONMENT=production\nDEBUG=false\n\n# === SECRETS (GENERATE UNIQUE VALUES!) ===\nSECRET_KEY=REPLACE_WITH_GENERATED_VALUE\nENCRYPTION_KEY=REPLACE_WITH_GENERATED_VALUE\n\n# === LICENSE ===\nLICENSE_KEY=REPLACE_WITH_YOUR_LICENSE_JWT\nLICENSE_SIGNING_ALG=RS256\nLICENSE_PUBLIC_KEY=REPLACE_WITH_CHURNVISION_PUBLIC_KEY\nINTEGRITY_PUBLIC_KEY=REPLACE_WITH_CHURNVISION_INTEGRITY_PUBLIC_KEY\nINTEGRITY_MANIFEST_PATH=/etc/churnvision/integrity.json\nINTEGRITY_SIGNATURE_PATH=/etc/churnvision/integrity.sig\nINTEGRITY_REQUIRE_SIGNED=true\n\n# === DATABASE ===\nPOSTGRES_USER=churnvision\nPOSTGRES_PASSWORD=REPLACE_WITH_STRONG_PASSWORD\nPOSTGRES_DB=churnvision\n\n# === REDIS ===\nREDIS_URL=redis://redis:6379/0\n\n# === CORS (your frontend domains) ===\nALLOWED_ORIGINS=https://churnvision.yourcompany.com\n";
const GUIDE_002: &str = "# Environment\nENVIRONMENT=production\nLOG_LEVEL=INFO\n\n# AWS Configuration (use IAM roles in production)\nAWS_REGION=us-west-2\n# AWS_ACCESS_KEY_ID - Use IAM roles instead\n\n# OpenAI (if using)\nOPENAI_API_KEY=sk-your-actual-openai-key\n\n# API Configuration\nAPI_HOST=0.0.0.0\nAPI_PORT=8000\n\n# Security - Authentication\nREQUIRE_AUTHENTICATION=true\nAPI_KEYS=<generated-key-1>,<generated-key-2>\nJWT_SECRET_KEY=<generated-jwt-secret>\nJWT_ALGORITHM=HS256\nJWT_ACCESS_TOKEN_EXPIRE_MINUTES=30\n\n# Security - HTTPS\nENFORCE_HTTPS=true\nALLOWED_HOSTS=yourdomain.com,www.yourdomain.com\n\n# Security - Data Protection\nMASK_PII_IN_LOGS=true\nENABLE_ENCRYPTION_AT_REST=true\nENCRYPTION_KEY=<generated-encryption-key>\n\n# CORS (HTTPS only, no wildcards!)\nCORS_ORIGINS=https://yourdomain.com\nCORS_ALLOW_METHODS=GET,POST,PUT,DELETE\n";
const GUIDE_004: &str = "# Database\nPOSTGRES_DB=workload_tracker\nPOSTGRES_USER=postgres\nPOSTGRES_PASSWORD=your-secure-password\n\n# Redis\nREDIS_PASSWORD=your-redis-password\n\n# Django\nDEBUG=false\nSECRET_KEY=your-production-secret-key\nDJANGO_SETTINGS_MODULE=config.settings\nALLOWED_HOSTS=your.domain.com,your-alt-domain.com\nCORS_ALLOWED_ORIGINS=https://your.domain.com\nAUTH_ENFORCED=true\n";

#[test]
fn secrets_fill_the_field_guide_templates_and_preflight_passes() {
    use std::os::unix::fs::PermissionsExt as _;
    let py = crate::harness::python();
    for (name, template, left, operator_edits) in [
        (
            "000",
            GUIDE_000,
            &["LICENSE_KEY"][..],
            &[
                ("LICENSE_KEY=REPLACE_WITH_YOUR_LICENSE_JWT", "LICENSE_KEY=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjdXN0b21lci00MiJ9.c2lnbmF0dXJlLWZyb20tdGhlLXZlbmRvcg"),
                ("REDIS_URL=redis://", "REDIS_URL=rediss://"),
            ][..],
        ),
        (
            "002",
            GUIDE_002,
            &["OPENAI_API_KEY"][..],
            &[(
                "OPENAI_API_KEY=sk-your-actual-openai-key",
                "OPENAI_API_KEY=sk-proj-Xq7TbR2vLm9KwP4sZc8NdF1gHj6YtU3e",
            )][..],
        ),
        ("004", GUIDE_004, &[][..], &[][..]),
    ] {
        let dir = TempDir::new("guide");
        let env = dir.write(".env", template);
        let (code, v) = {
            let out = bin()
                .args(["preflight", "--env-file", ".env", "--format", "json"])
                .current_dir(dir.path())
                .output()
                .unwrap();
            (out.status.code(), serde_json::from_slice::<Value>(&out.stdout).unwrap())
        };
        assert_eq!(code, Some(1), "guide {name}: the template fails as it is");
        assert!(why(&v, "PF-SEC-02").contains("placeholder"), "{name}: {v:#}");
        let out = bin()
            .args(["secrets", "generate", "--env-file", ".env"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said = String::from_utf8_lossy(&out.stdout);
        for key in left {
            assert!(said.contains("left .env:") && said.contains(key), "{name}: {said}");
        }
        let after = std::fs::read_to_string(&env).unwrap();
        // Every other byte is kept: the lines without a placeholder are unchanged, in order.
        let kept: Vec<&str> = template
            .lines()
            .filter(|l| {
                ![
                    "GENERATED",
                    "generated",
                    "STRONG_PASSWORD",
                    "=your-secure",
                    "=your-redis",
                    "=your-production",
                ]
                .iter()
                .any(|m| l.contains(m))
            })
            .collect();
        let now: Vec<&str> = after.lines().filter(|l| kept.contains(l)).collect();
        assert_eq!(now, kept, "{name}");
        assert_eq!(after.lines().count(), template.lines().count());
        assert_eq!(std::fs::metadata(&env).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(dir.path().join(".env.bak")).unwrap(), template);
        assert!(!said.contains(&after[after.find("SECRET_KEY=").map_or(0, |i| i + 11)..][..20]), "values are not printed");
        // The operator supplies what only they have; then preflight passes.
        let mut text = after.clone();
        for (from, to) in operator_edits {
            text = text.replacen(from, to, 1);
        }
        std::fs::write(&env, &text).unwrap();
        let out = bin()
            .args(["preflight", "--env-file", ".env", "--format", "json"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(found(&v), set(&[]), "guide {name}: {v:#}\n{text}");
        assert_eq!(out.status.code(), Some(0));
        // Python's cryptography accepts the Fernet key.
        let filled = rampart_config::dotenv::EnvFile::parse(&text);
        if let Some(key) = filled.get("ENCRYPTION_KEY") {
            let out = Command::new(&py)
                .arg("-c")
                .arg("import sys\nfrom cryptography.fernet import Fernet\nf = Fernet(sys.argv[1].encode())\nassert f.decrypt(f.encrypt(b'rampart')) == b'rampart'\nprint('ok')")
                .arg(key)
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
        }
        // Nothing left to fill: a second run changes nothing.
        let out = bin()
            .args(["secrets", "generate", "--env-file", ".env"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("no placeholder to fill"));
        assert_eq!(std::fs::read_to_string(&env).unwrap(), text);
    }
}

#[test]
fn secrets_generate_kinds() {
    let dir = TempDir::new("kinds");
    for kind in ["ed25519", "rsa"] {
        let out = bin()
            .args(["secrets", "generate", kind, "--bits", "2048"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}");
        let pem = String::from_utf8(out.stdout).unwrap();
        let (private, public) = pem.split_at(pem.find("-----BEGIN PUBLIC KEY-----").unwrap());
        let key = dir.write(&format!("{kind}.key"), private);
        let check = Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(&key)
            .args(["-pubout"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&check.stdout),
            public,
            "{kind}: the public key matches"
        );
    }
    let out = bin()
        .args([
            "secrets",
            "generate",
            "token",
            "api-key",
            "password",
            "fernet",
            "jwt-hs256",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("api-key: rk_"));
    let out = bin()
        .args(["secrets", "generate", "uuid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind \"uuid\""));
    let out = bin()
        .args(["secrets", "generate", "rsa", "--bits", "1024"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = bin()
        .args(["secrets", "generate", "--env-file", "missing.env"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read missing.env"));
}

/// The status of `GET /` on `http` with one extra request header.
async fn status_with(http: std::net::SocketAddr, name: &'static str, value: String) -> u16 {
    let req = http::Request::builder()
        .uri("/")
        .header("host", "app")
        .header(name, value)
        .body(client::empty())
        .unwrap();
    client::plain(http, req).await.status.as_u16()
}

fn hs256(secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "u1", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_jwt_secret_is_accepted_during_the_overlap_only() {
    let up = rampart_test_support::upstream::Upstream::start("app").await;
    let dir = TempDir::new("rotate");
    let old = generate("jwt-hs256");
    let env = dir.write(".env", format!("# auth\nJWT_SECRET={old}\nOTHER=1\n"));
    dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nenv_file = \".env\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[jwt]\nalg = \"HS256\"\nsecret = \"${{JWT_SECRET}}\"\nsecret_previous = \"${{JWT_SECRET_PREVIOUS:-}}\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\nauth = [\"jwt\"]\n",
            up.addr
        ),
    );
    let mut p = serve(dir.path(), &[], 1);
    let admin = admin_addr(&mut p);
    let http = p.http.unwrap();
    let call = |token: String| status_with(http, "authorization", format!("Bearer {token}"));
    assert_eq!(call(hs256(&old)).await, 200);
    let out = bin()
        .args(["secrets", "rotate", "JWT_SECRET", "--env-file", ".env"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rampart reload"));
    let text = std::fs::read_to_string(&env).unwrap();
    let f = rampart_config::dotenv::EnvFile::parse(&text);
    let new = f.get("JWT_SECRET").unwrap().to_owned();
    assert_eq!(f.get("JWT_SECRET_PREVIOUS"), Some(old.as_str()));
    assert!(text.starts_with("# auth\nJWT_SECRET=") && text.ends_with("\nOTHER=1\n"));
    // A second rotation before the overlap ends is refused.
    let out = bin()
        .args(["secrets", "rotate", "JWT_SECRET", "--env-file", ".env"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    crate::harness::sighup(&p.child);
    reloads_reach(admin, 1).await;
    assert_eq!(call(hs256(&new)).await, 200, "new secret");
    assert_eq!(
        call(hs256(&old)).await,
        200,
        "old secret during the overlap"
    );
    assert_eq!(
        call(hs256(&generate("jwt-hs256"))).await,
        403,
        "any other secret"
    );
    let out = bin()
        .args([
            "secrets",
            "rotate",
            "JWT_SECRET",
            "--env-file",
            ".env",
            "--finish",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    crate::harness::sighup(&p.child);
    reloads_reach(admin, 2).await;
    assert_eq!(call(hs256(&new)).await, 200);
    assert_eq!(
        call(hs256(&old)).await,
        403,
        "the old secret after the overlap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_api_key_is_accepted_during_the_overlap_only() {
    let up = rampart_test_support::upstream::Upstream::start("app").await;
    let dir = TempDir::new("rotate-key");
    let old = generate("api-key");
    dir.write(".env", format!("CI_API_KEY={old}\n"));
    dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nenv_file = \".env\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[api_keys]\nkeys = [{{ name = \"ci\", key = \"${{CI_API_KEY}}\", previous = \"${{CI_API_KEY_PREVIOUS:-}}\" }}]\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\nauth = [\"api_key\"]\n",
            up.addr
        ),
    );
    let mut p = serve(dir.path(), &[], 1);
    let admin = admin_addr(&mut p);
    let http = p.http.unwrap();
    let call = |key: String| status_with(http, "x-api-key", key);
    assert_eq!(call(old.clone()).await, 200);
    let rotate = |finish: bool| {
        let mut c = bin();
        c.args(["secrets", "rotate", "CI_API_KEY", "--env-file", ".env"]);
        if finish {
            c.arg("--finish");
        }
        assert!(c.current_dir(dir.path()).status().unwrap().success());
    };
    rotate(false);
    let text = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    let new = rampart_config::dotenv::EnvFile::parse(&text)
        .get("CI_API_KEY")
        .unwrap()
        .to_owned();
    crate::harness::sighup(&p.child);
    reloads_reach(admin, 1).await;
    assert_eq!(call(new.clone()).await, 200);
    assert_eq!(call(old.clone()).await, 200, "old key during the overlap");
    rotate(true);
    crate::harness::sighup(&p.child);
    reloads_reach(admin, 2).await;
    assert_eq!(call(new).await, 200);
    assert_eq!(call(old).await, 403, "old key after the overlap");
}

/// The status of check `id` in a JSON report.
fn status(v: &Value, id: &str) -> String {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// The field audit's false alarms and wrong advice: asyncpg's `?ssl=require` is read;
/// guide 002's `token_urlsafe(32)` ENCRYPTION_KEY passes; a check with nothing to look at
/// is "skipped"; a required secret is judged once; `KEY:bool=true` catches a switched-off
/// safety flag; and every `rampart …` command a fix text prints runs.
#[test]
fn preflight_reads_the_guides_as_written_and_its_advice_works() {
    let f = fx();
    // asyncpg (guide 000 verbatim): ssl=require is TLS without a name check, a warning.
    f.env_with(
        "DATABASE_URL",
        Some("postgresql+asyncpg://cv:pw@db:5432/churnvision?ssl=require"),
    );
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(found(&v), set(&[("PF-DB-01", "warn")]), "{v:#}");
    // guide 002: ENCRYPTION_KEY from secrets.token_urlsafe(32).
    f.env_with(
        "ENCRYPTION_KEY",
        Some("Xq8mJ2v_KpR4tYw9ZbN3cLfH6sD1gAeU7iO0nM5kTjQ"),
    );
    let (_, v) = preflight(f.path(), &[]);
    assert!(!found(&v).iter().any(|(id, _)| id == "PF-SEC-01"), "{v:#}");
    // Nothing to check: skipped, not passed.
    f.env_with("DATABASE_URL", None);
    f.toml(&GOOD_TOML.replace("path = \"/login\"", "path = \"/app\""));
    let (_, v) = preflight(f.path(), &[]);
    assert_eq!(status(&v, "PF-DB-01"), "skipped", "{v:#}");
    assert_eq!(status(&v, "PF-LIM-01"), "skipped", "{v:#}");
    // Value assertions, and a required secret judged once.
    f.toml(&GOOD_TOML.replace(
        "[preflight]\n",
        "[preflight]\nrequired = { ENFORCE_HTTPS = \"bool=true\", MASK_PII_IN_LOGS = \"bool=true\", WORKERS = \"int=4\", SECRET_KEY = \"secret\" }\n",
    ));
    let mut env = good_env("short");
    env.push_str("ENFORCE_HTTPS=false\nMASK_PII_IN_LOGS=yes\nWORKERS=4\n");
    f.env(&env);
    let (code, v) = preflight(f.path(), &[]);
    assert_eq!(code, 1);
    let env02 = why(&v, "PF-ENV-02");
    assert!(
        env02.contains("ENFORCE_HTTPS is")
            && env02.contains("requires")
            && !env02.contains("MASK_PII")
            && !env02.contains("WORKERS"),
        "{env02}"
    );
    let sec01 = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["id"] == "PF-SEC-01" && x["why"].as_str().unwrap_or("").contains("SECRET_KEY")
        })
        .count();
    assert_eq!(sec01, 1, "a required secret is reported once: {v:#}");
    // Every `rampart …` command in a fix text runs as printed.
    f.toml(&GOOD_TOML.replace("lockout = { failures = 5, for = \"15m\" }\n", ""));
    let mut env = good_env("short");
    env.push_str("JWT_SECRET=short\nENCRYPTION_KEY=short\nDB_PASSWORD=short\n");
    f.env(&env);
    let (_, v) = preflight(f.path(), &[]);
    let fixes: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["fix"].as_str().map(str::to_owned))
        .collect();
    let mut ran = 0;
    for fix in &fixes {
        for cmd in fix.split('`').skip(1).step_by(2) {
            if let Some(args) = cmd.strip_prefix("rampart ") {
                let out = bin()
                    .args(args.split_whitespace())
                    .current_dir(f.path())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "`{cmd}` (from {fix:?}) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                ran += 1;
            } else if cmd.starts_with("lockout = ") {
                // A config line: it must pass `rampart check` where the fix says it goes.
                let toml = GOOD_TOML.replace("lockout = { failures = 5, for = \"15m\" }", cmd);
                f.toml(&toml);
                let out = bin()
                    .args(["check", "-c", "rampart.toml"])
                    .current_dir(f.path())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{cmd}: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 3, "fix texts with commands: {fixes:#?}");
}
