//! Starting the edge in process (most tests) or as the real binary (CLI and signals).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rampart_config::{load_str, Source};
use rampart_server::{Edge, Running};
use rampart_test_support::TempDir;

/// An edge running inside the test's runtime.
pub struct TestEdge {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub running: Option<Running>,
    pub dir: TempDir,
}

impl TestEdge {
    pub fn http(&self) -> SocketAddr {
        self.http.expect("no http listener")
    }
    pub fn https(&self) -> SocketAddr {
        self.https.expect("no https listener")
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown();
        }
    }
}

/// Loads `toml` (relative paths resolve in a fresh temp dir, which also holds the state
/// dir), builds and starts it. Panics with the config errors when it does not load.
pub async fn start(toml: &str) -> TestEdge {
    start_in(TempDir::new("edge"), toml).await
}

pub async fn start_in(dir: TempDir, toml: &str) -> TestEdge {
    rampart_test_support::raise_open_files();
    let mut config = load_str(
        toml,
        &Source {
            name: "test.toml".into(),
            base_dir: dir.path().to_path_buf(),
            env: &rampart_config::process_env,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config.server.state_dir = dir.path().join("state");
    // Thousands of test requests need no access log on the test's stdout.
    if !toml.contains("[logging]") {
        config.logging.access = rampart_config::ops::LogTarget::Off;
    }
    let edge = Edge::build(config, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let running = rampart_server::start(edge).await.unwrap();
    TestEdge {
        http: running.http_addr,
        https: running.https_addr,
        running: Some(running),
        dir,
    }
}

/// A plain-HTTP edge proxying everything to `servers`, with extra upstream keys and
/// extra top-level TOML appended.
pub fn proxy_toml(servers: &[String], upstream_extra: &str, extra: &str) -> String {
    let list = servers
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\n[upstreams.app]\nservers = [{list}]\n{upstream_extra}\n\n{extra}\n\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n"
    )
}

/// The real binary, killed on drop.
pub struct Proc {
    pub child: Child,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rampart"));
    c.env_remove("RAMPART_CONFIG").env_remove("RAMPART_LOG");
    c
}

/// Runs `rampart serve` with `args` in `cwd`, waiting until it has logged `listeners`
/// "listening" lines.
pub fn serve(cwd: &std::path::Path, args: &[&str], listeners: usize) -> Proc {
    let mut cmd = bin();
    cmd.arg("serve").args(args);
    serve_cmd(cmd, cwd, listeners)
}

/// `rampart serve -c rampart.toml` in `dir` with both listeners on free ports.
pub fn serve_http_https(dir: &std::path::Path) -> Proc {
    serve(
        dir,
        &[
            "-c",
            "rampart.toml",
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
        ],
        2,
    )
}

/// As [`serve`], for a prepared command (a wrapper such as `prlimit` around the binary).
pub fn serve_cmd(mut cmd: Command, cwd: &std::path::Path, listeners: usize) -> Proc {
    let mut child = cmd
        .current_dir(cwd)
        .env("RAMPART_STATE_DIR", cwd.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut p = Proc {
        child,
        http: None,
        https: None,
        lines: rx,
        seen: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = 0;
    while found < listeners {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = p
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("edge did not start; output so far: {:?}", p.seen));
        p.seen.push(line.clone());
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["message"] == "listening" {
            let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
            match v["listener"].as_str() {
                Some("http") => p.http = Some(addr),
                Some("https") => p.https = Some(addr),
                _ => {}
            }
            found += 1;
        }
    }
    p
}

impl Proc {
    /// Collects further stdout lines until one contains `needle` or `within` passes.
    pub fn wait_for_line(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends SIGHUP (reload) to a child process.
pub fn sighup(child: &Child) {
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The Python that has `cryptography` and `junitparser` (`.ci/run` makes a venv and sets
/// `RAMPART_TEST_PYTHON`).
pub fn python() -> String {
    std::env::var("RAMPART_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `(id, severity)` of the findings of a JSON report (preflight, verify) that `keep` accepts.
pub fn finding_ids(
    v: &serde_json::Value,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> std::collections::BTreeSet<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| keep(f))
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The expected `(id, severity)` set.
pub fn id_set(items: &[(&str, &str)]) -> std::collections::BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Exit code and JSON report of a finished command; panics with its output when stdout is
/// not JSON.
pub fn json_report(out: &std::process::Output) -> (i32, serde_json::Value) {
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// A real Python app server (uvicorn, gunicorn) on 127.0.0.1:0, run from the test venv;
/// stopped when dropped.
pub struct AppServer {
    child: Child,
    pub addr: SocketAddr,
}

impl AppServer {
    /// Runs `python -m MODULE ARGS…` in `dir` and waits for the line in which it names its
    /// address (`http://127.0.0.1:PORT`).
    pub fn start(dir: &std::path::Path, module: &str, args: &[&str]) -> Self {
        let mut child = Command::new(python())
            .arg("-m")
            .arg(module)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{module}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{module} did not start (is it in RAMPART_TEST_PYTHON's venv?): {seen:?}");
            };
            if let Some(at) = line.find("http://127.0.0.1:") {
                let rest = &line[at + "http://".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                let addr = rest[..end].parse().unwrap();
                return Self { child, addr };
            }
            seen.push(line);
        }
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocks on a future from inside `eventually`'s closure (a fresh runtime on a thread).
pub fn futures_block<F: std::future::Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

/// Loads `toml` as `dir/rampart.toml` would be (relative paths in `dir`, the state dir
/// `dir/state`), lets `tweak` adjust what a test cannot write (a faster interval), builds
/// the edge. The config's errors as one string.
pub fn edge_at(
    dir: &std::path::Path,
    toml: &str,
    tweak: impl FnOnce(&mut rampart_config::Config),
) -> Result<Edge, String> {
    let mut config = load_str(
        toml,
        &Source {
            name: "rampart.toml".into(),
            base_dir: dir.to_path_buf(),
            env: &rampart_config::process_env,
        },
    )
    .map_err(|e| e.to_string())?;
    config.server.state_dir = dir.join("state");
    tweak(&mut config);
    Edge::build(config, "rampart.toml").map_err(|e| e.to_string())
}

/// Starts `edge`: the start's refusal (integrity, license, a busy port) as one string.
pub async fn start_edge(edge: Result<Edge, String>) -> Result<Running, String> {
    rampart_test_support::raise_open_files();
    rampart_server::start(edge?)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// A GET on the running edge's admin listener.
pub async fn admin_get(r: &Running, path: &str) -> rampart_test_support::client::Resp {
    use rampart_test_support::client;
    client::plain(r.live.admin_addr().unwrap(), client::get("admin", path)).await
}

/// The value of an unlabelled metric in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l[name.len() + 1..].trim().parse().ok())
}

/// How many times `event` is in `dir/audit.log`.
pub fn audit_count(dir: &std::path::Path, event: &str) -> usize {
    let needle = format!("\"event\":\"{event}\"");
    std::fs::read_to_string(dir.join("audit.log"))
        .map_or(0, |a| a.lines().filter(|l| l.contains(&needle)).count())
}

/// Waits up to 3 s for `event` to be audited `times` times in `dir/audit.log`.
pub async fn wait_audited(dir: &std::path::Path, event: &str, times: usize) {
    let found = rampart_test_support::eventually(Duration::from_secs(3), || {
        (audit_count(dir, event) >= times).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "{event} not audited {times}x: {:?}",
        std::fs::read_to_string(dir.join("audit.log"))
    );
}

/// `curl -sk` with a 10 s cap; its standard output.
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real nginx on a free loopback port, stopped (with its worker) on drop. `http` is the
/// body of its `http { }` block with `{port}` where its `listen` port goes; its error log
/// and temporary files stay in `dir`.
pub struct Nginx {
    child: Child,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &rampart_test_support::TempDir, http: &str) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx is needed (apt-get install nginx-light)");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let d = dir.path().display();
            let conf = dir.write(
                "nginx.conf",
                format!(
                    "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log info;\n\
                     events {{ worker_connections 64; }}\n\
                     http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n  \
                     fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
                     {}\n}}\n",
                    http.replace("{port}", &port.to_string())
                ),
            );
            let child = Command::new(nginx)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut started = Self { child, port };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return started;
                }
                if started.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Dropped: stopped with SIGTERM, its worker too; the next port is tried.
            drop(started);
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its worker (SIGKILL would leave the worker running).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..250 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw HTTP/2 for tests that speak it frame by frame (to the edge as a client, or as an
/// upstream to the edge): frame types and flags, frames, literal header blocks.
pub(crate) mod h2raw {
    pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub(crate) const DATA: u8 = 0;
    pub(crate) const HEADERS: u8 = 1;
    pub(crate) const RST_STREAM: u8 = 3;
    pub(crate) const SETTINGS: u8 = 4;
    pub(crate) const PING: u8 = 6;
    pub(crate) const GOAWAY: u8 = 7;
    pub(crate) const CONTINUATION: u8 = 9;
    pub(crate) const END_STREAM: u8 = 1;
    pub(crate) const ACK: u8 = 1;
    pub(crate) const END_HEADERS: u8 = 4;

    /// Appends a frame.
    pub(crate) fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, id: u32, payload: &[u8]) {
        let l = (payload.len() as u32).to_be_bytes();
        out.extend_from_slice(&[l[1], l[2], l[3], ty, flags]);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// A header block of literal fields, never indexed (so the other side's table stays
    /// empty and every block reads alone).
    pub(crate) fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            b.push(0);
            for s in [n.as_bytes(), v.as_bytes()] {
                assert!(s.len() < 127);
                b.push(s.len() as u8);
                b.extend_from_slice(s);
            }
        }
        b
    }
}
