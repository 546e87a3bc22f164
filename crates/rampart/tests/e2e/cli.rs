//! The binary: `check`, `version`, `--help`, `serve` with the embedded default, bad
//! configs refused, graceful drain on SIGTERM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rampart_test_support::client::{self, get, tls_config};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;

use crate::harness::{bin, serve, sigterm};

#[test]
fn help_and_version() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["check", "--help"],
        &["version", "--help"],
    ] {
        let out = bin().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let out = bin().arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rampart 0."));
}

#[test]
fn check_prints_ok_for_a_good_config() {
    let dir = TempDir::new("check-ok");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"127.0.0.1:9\"]\n[[routes]]\nupstream = \"app\"\n",
    );
    let out = bin().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

/// A server name that does not resolve is a warning (the service may not be up yet), not
/// an error: `ok`, exit 0, and the name on stderr.
#[test]
fn check_warns_of_a_server_name_that_does_not_resolve() {
    let dir = TempDir::new("check-dns");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"no-such-host.invalid:8000\", \"localhost:8001\", \"127.0.0.1:9\"]\n[[routes]]\nupstream = \"app\"\n",
    );
    let out = bin().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0]
            .contains("upstreams.app.servers: no-such-host.invalid:8000 does not resolve here"),
        "{err}"
    );
}

#[test]
fn check_lists_every_error_with_its_key_and_exits_1() {
    let dir = TempDir::new("check-bad");
    let cfg = dir.write(
        "rampart.toml",
        r#"
[server]
http = "127.0.0.1:0"
workers = 0
idle_timeout = "forever"
[upstreams.app]
servers = ["127.0.0.1:9"]
balance = "fastest"
[[routes]]
path = "/"
upstream = "apps"
hots = "x"
"#,
    );
    let out = bin().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "server.workers: must be between 1 and 1024",
        "server.idle_timeout: invalid duration \"forever\"",
        "upstreams.app.balance: unknown balance \"fastest\"",
        "routes[0].hots: unknown key, did you mean `host`?",
        "routes[0].upstream: unknown upstream \"apps\", did you mean \"app\"?",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .all(|l| l.starts_with(&cfg.display().to_string())),
        "every line names the file:\n{text}"
    );
    let missing = bin()
        .args(["check", "-c", "/nonexistent/rampart.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("cannot read the file"));
}

#[test]
fn serve_refuses_a_bad_config_naming_the_key() {
    let dir = TempDir::new("serve-bad");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\nupstream = \"nope\"\n",
    );
    let out = bin()
        .args(["serve", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("routes[0].upstream: unknown upstream \"nope\""));
}

#[test]
fn env_interpolation_and_secret_files_through_the_binary() {
    let dir = TempDir::new("env");
    dir.write("body.secret", "from-file\n");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"${LISTEN}\"\n[[routes]]\nrespond = { body_file = \"body.secret\" }\n",
    );
    let ok = bin()
        .args(["check", "-c"])
        .arg(&cfg)
        .env("LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let missing = bin()
        .args(["check", "-c"])
        .arg(&cfg)
        .env_remove("LISTEN")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout)
        .contains("server.http: environment variable LISTEN is not set"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_serve_runs_the_demo_with_a_stable_certificate() {
    let dir = TempDir::new("demo");
    let args = [
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--workers",
        "1",
    ];
    let mut p = serve(dir.path(), &args, 2);
    let started = p
        .seen
        .iter()
        .find(|l| l.contains("\"started\""))
        .cloned()
        .unwrap_or_default();
    assert!(
        started.contains("<embedded default>") && started.contains("\"workers\":1"),
        "{started}"
    );
    let cert_path = dir.path().join("state/tls/self-signed.crt");
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(&cert_path).unwrap();
    let cfg = tls_config(std::slice::from_ref(&der), &[b"h2", b"http/1.1"]);
    let home = client::tls(
        p.https.unwrap(),
        cfg.clone(),
        "localhost",
        get("localhost", "/"),
    )
    .await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("rampart is running"));
    // The page leads on: the redirect, a config for the newcomer's own app, the README
    // (served with the demo), and the verify command with this demo's certificate.
    let page = home.text();
    for next in [
        "curl -sI http://localhost:8080/",
        "servers = [\"127.0.0.1:3000\"]",
        "rampart check -c rampart.toml",
        "href=\"/README.md\"",
    ] {
        assert!(page.contains(next), "{next}");
    }
    assert!(
        page.contains(&format!(
            "rampart verify https://localhost:8443 --http-port 8080 --ca-file {}",
            cert_path.display()
        )),
        "{page}"
    );
    let readme = client::tls(
        p.https.unwrap(),
        cfg.clone(),
        "localhost",
        get("localhost", "/README.md"),
    )
    .await;
    assert!(readme.text().contains("## Config reference"));
    // The sample config on the page is one `rampart check` accepts (with real files).
    let sample = page
        .split("<pre>[server]")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .map(|body| format!("[server]{body}"))
        .expect("the page shows a sample rampart.toml");
    let pki = rampart_test_support::pki::Pki::new();
    let leaf = pki.leaf("app", &["app.example.com"]);
    let sample = sample
        .replace(
            "/etc/rampart/app.example.com.crt",
            &leaf.cert.display().to_string(),
        )
        .replace(
            "/etc/rampart/app.example.com.key",
            &leaf.key.display().to_string(),
        );
    let sample_path = dir.write("sample.toml", sample);
    let out = bin()
        .args(["check", "-c"])
        .arg(&sample_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let api = client::tls(
        p.https.unwrap(),
        cfg.clone(),
        "localhost",
        get("localhost", "/api/echo"),
    )
    .await;
    let j = api.json();
    assert_eq!(j["path"], "/api/echo");
    assert_eq!(j["headers"]["x-forwarded-proto"], "https");
    assert!(
        api.header("x-powered-by").is_none(),
        "the demo upstream's banner is removed"
    );
    let redirect = client::plain(p.http.unwrap(), get("localhost", "/x")).await;
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("location"),
        Some(format!("https://localhost:{}/x", p.https.unwrap().port()).as_str())
    );
    sigterm(&p.child);
    let status = wait_exit(&mut p.child, Duration::from_secs(15));
    assert_eq!(status, Some(0));
    // A restart keeps the same certificate.
    let mut p2 = serve(dir.path(), &args, 2);
    let again = rustls_pki_types::CertificateDer::from_pem_file(&cert_path).unwrap();
    assert_eq!(
        der, again,
        "the development certificate is stable across restarts"
    );
    let home = client::tls(p2.https.unwrap(), cfg, "localhost", get("localhost", "/")).await;
    assert_eq!(home.status, 200);
    sigterm(&p2.child);
    assert_eq!(wait_exit(&mut p2.child, Duration::from_secs(15)), Some(0));
}

/// SIGTERM the moment the listener is announced (a client may already be connecting): the
/// edge drains and exits 0; it is never killed by the signal's default action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_drains_and_exits_0() {
    for _ in 0..5 {
        let dir = TempDir::new("early-term");
        let cfg = dir.write(
            "rampart.toml",
            "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\nrespond = { body = \"x\" }\n",
        );
        let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
        sigterm(&p.child);
        assert_eq!(wait_exit(&mut p.child, Duration::from_secs(15)), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let up = Upstream::start("a").await;
    let dir = TempDir::new("drain");
    let cfg = dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nshutdown_grace = \"10s\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\n",
            up.authority()
        ),
    );
    let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let addr = p.http.unwrap();
    let inflight = tokio::spawn(async move { client::plain(addr, get("h", "/slow/1500")).await });
    rampart_test_support::eventually(Duration::from_secs(5), || (up.count() > 0).then_some(()))
        .await
        .unwrap();
    let t = Instant::now();
    sigterm(&p.child);
    assert!(p
        .wait_for_line("draining", Duration::from_secs(5))
        .is_some());
    // New connections are refused once draining has started.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    let resp = inflight.await.unwrap();
    assert_eq!(resp.status, 200, "the in-flight request completed");
    assert_eq!(wait_exit(&mut p.child, Duration::from_secs(15)), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "exit took {:?}",
        t.elapsed()
    );
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_emit_audit_events_without_secrets() {
    let up = Upstream::start("a").await;
    let dir = TempDir::new("audit");
    let key = "audit-key-0123456789abcdef";
    let cfg = dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[api_keys]\nkeys = [{{ name = \"ci\", key = \"{key}\" }}]\n[[routes]]\nupstream = \"app\"\nauth = [\"api_key\"]\n",
            up.authority()
        ),
    );
    let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let addr = p.http.unwrap();
    let wrong = format!("{key}-wrong");
    let r = client::plain(
        addr,
        http::Request::get("/private?email=a@b.c")
            .header("host", "h")
            .header("x-api-key", &wrong)
            .body(client::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    let id = r.header("x-request-id").unwrap().to_owned();
    let line = p
        .wait_for_line("auth.failure", Duration::from_secs(5))
        .expect("no audit event");
    assert!(line.contains("rampart::audit"), "{line}");
    assert!(line.contains(&id), "the event names the request: {line}");
    assert!(line.contains("\"ip\":\"127.0.0.1\""), "{line}");
    assert!(line.contains("invalid_credentials"), "{line}");
    assert!(
        !line.contains(&wrong) && !line.contains(key),
        "a key reached the log: {line}"
    );
    assert!(!line.contains("a@b.c"), "the query reached the log: {line}");
    sigterm(&p.child);
    assert_eq!(wait_exit(&mut p.child, Duration::from_secs(15)), Some(0));
}

/// The log writers batch lines for a few milliseconds; lines of requests answered just
/// before SIGTERM are still written before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_the_last_access_log_lines_before_exit() {
    let dir = TempDir::new("log-flush");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\nrespond = { body = \"x\" }\n[logging]\naccess = \"access.log\"\n",
    );
    let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let addr = p.http.unwrap();
    for i in 0..20 {
        let r = client::plain(addr, get("h", &format!("/last/{i}"))).await;
        assert_eq!(r.status, 200);
    }
    sigterm(&p.child);
    assert_eq!(wait_exit(&mut p.child, Duration::from_secs(15)), Some(0));
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    for i in 0..20 {
        assert!(
            log.contains(&format!("\"/last/{i}\"")),
            "line {i} missing:\n{log}"
        );
    }
}

/// A soft open-file limit of 64 (a container's or a login shell's default) must not cap
/// the edge: it raises the soft limit to the hard one at start, serves 100 concurrent
/// proxied connections (200 descriptors), and warns when `max_connections` needs more
/// descriptors than even the hard limit allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_soft_open_file_limit_is_raised_and_a_short_hard_one_is_named() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("prlimit (util-linux) is needed");
    }
    let up = Upstream::start("a").await;
    let dir = TempDir::new("nofile");
    let cfg = dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nmax_connections = 5000\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\nupstream = \"app\"\n",
            up.authority()
        ),
    );
    // The hard limit this test may set: its own, at most 2048 (below max_connections' need).
    let own = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = own
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse().ok())
        .unwrap_or(u64::MAX)
        .min(2048);
    assert!(
        hard >= 512,
        "this test needs a hard open-file limit of 512 or more"
    );
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile=64:{hard}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "-c", cfg.to_str().unwrap()])
        .env_remove("RAMPART_CONFIG")
        .env_remove("RAMPART_LOG");
    let p = crate::harness::serve_cmd(cmd, dir.path(), 1);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(open_files, [hard.to_string(), hard.to_string()], "{limits}");
    let warned = p
        .seen
        .iter()
        .find(|l| l.contains("open-file limit"))
        .cloned()
        .unwrap_or_default();
    assert!(
        warned.contains("\"needed\":10064") && warned.contains(&format!("\"open_files\":{hard}")),
        "a hard limit below max_connections' need is named: {:?}",
        p.seen
    );
    let addr = p.http.unwrap();
    let calls = (0..100)
        .map(|_| tokio::spawn(async move { client::plain(addr, get("h", "/slow/1500")).await }))
        .collect::<Vec<_>>();
    for c in calls {
        assert_eq!(c.await.unwrap().status, 200);
    }
    sigterm(&p.child);
}

/// `rampart … | head -1`: a reader that closes the pipe ends every command quietly with
/// status 0: no panic, nothing on stderr.
#[test]
fn a_closed_stdout_pipe_is_a_quiet_exit() {
    let dir = TempDir::new("epipe");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\nrespond = { status = 200, body = \"x\" }\n",
    );
    let cfg = cfg.to_str().unwrap();
    for args in [
        &["version"][..],
        &["--help"],
        &["check", "-c", cfg],
        &["secrets", "generate", "token"],
        &["preflight", "-c", cfg, "--format", "json"],
    ] {
        let mut child = bin()
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command has written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        if args[0] != "preflight" {
            assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        }
    }
}
