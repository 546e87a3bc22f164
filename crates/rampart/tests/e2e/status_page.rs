//! The status page in real headless Chromium, driven over the DevTools protocol (the page
//! follows a never-ending event stream, which `--dump-dom` cannot wait for): it renders
//! behind the admin token, the traffic chart moves when load arrives, an upstream going
//! down shows within its health-check interval, the page's CSP reports no violation, and a
//! screenshot is kept (`target/status-page.png`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use rampart_test_support::client;
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::start_in;

const TOKEN: &str = "status-page-token-0123456789";

struct Browser {
    child: std::process::Child,
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    next: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn open(url: &str, profile: &std::path::Path) -> Self {
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1280,1000",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium is installed by .ci/run");
        let port_file = profile.join("DevToolsActivePort");
        let end = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next()?.parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < end, "chromium's DevTools never opened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let list = loop {
            let r = client::plain(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                client::get("127.0.0.1", "/json/list"),
            )
            .await;
            let v = r.json();
            if v.as_array()
                .is_some_and(|a| a.iter().any(|t| t["type"] == "page"))
            {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ws_url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap()["webSocketDebuggerUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (ws, _) = tokio_tungstenite::client_async(ws_url, tcp).await.unwrap();
        Self { child, ws, next: 0 }
    }

    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next += 1;
        let id = self.next;
        let msg = serde_json::json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let m = self.ws.next().await.unwrap().unwrap();
            if let Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    return v["result"].clone();
                }
            }
        }
    }

    async fn eval(&mut self, js: &str) -> String {
        let r = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({"expression": js, "returnByValue": true}),
            )
            .await;
        match &r["result"]["value"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Evaluates `js` until `ok` holds for its value, within `within`.
    async fn until(&mut self, js: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + within;
        loop {
            let v = self.eval(js).await;
            if ok(&v) || Instant::now() > end {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_updates_and_shows_an_upstream_down() {
    let up = Upstream::start("app").await;
    let dir = TempDir::new("status-page");
    let profile = dir.path().join("chromium");
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [upstreams.app]\nservers = [\"{}\"]\nhealth_check = {{ path = \"/\", interval = \"500ms\", timeout = \"200ms\", fall = 1, rise = 1 }}\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/private\"\ndeny = [\"127.0.0.0/8\"]\nrespond = {{ status = 200, body = \"no\" }}\n",
        up.authority()
    );
    let edge = start_in(dir, &toml).await;
    let admin = edge.running.as_ref().unwrap().live.admin_addr().unwrap();
    // The page and its assets need no token; the data does.
    let page = client::plain(admin, client::get("admin", "/status")).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'"),
        "{csp}"
    );
    let denied = client::plain(admin, client::get("admin", "/status/snapshot")).await;
    assert_eq!(denied.status, 401);
    // A refusal, so a security event is listed.
    let r = client::plain(edge.http(), client::get("h", "/private")).await;
    assert_eq!(r.status, 403);

    let url = format!("http://{admin}/status#token={TOKEN}");
    let mut b = Browser::open(&url, &profile).await;
    let state = b
        .until(
            "document.getElementById('state').textContent",
            Duration::from_secs(15),
            |s| s == "healthy",
        )
        .await;
    assert_eq!(state, "healthy");
    let recent = b
        .until(
            "document.getElementById('recent').innerText",
            Duration::from_secs(5),
            |s| s.contains("acl.refused"),
        )
        .await;
    assert!(recent.contains("acl.refused"), "{recent}");
    // Load arrives: the chart and the rate move.
    let http = edge.http();
    let load = tokio::spawn(async move {
        for _ in 0..80 {
            let _ = client::plain(http, client::get("h", "/")).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    let rate = b
        .until(
            "document.getElementById('rate').textContent",
            Duration::from_secs(10),
            |s| s.parse::<f64>().is_ok_and(|r| r > 0.0),
        )
        .await;
    assert!(rate.parse::<f64>().is_ok_and(|r| r > 0.0), "rate {rate}");
    let points = b
        .until(
            "document.getElementById('line').getAttribute('points')",
            Duration::from_secs(5),
            |p| p.split(' ').count() >= 2,
        )
        .await;
    assert!(points.split(' ').count() >= 2, "chart: {points}");
    load.await.unwrap();
    let routes = b.eval("document.getElementById('routes').innerText").await;
    assert!(routes.contains('/'), "{routes}");
    // The upstream goes down: shown within the health check's interval (and a margin).
    assert!(b
        .eval("document.getElementById('upstreams').innerText")
        .await
        .contains("up"));
    up.stop();
    let t = Instant::now();
    let ups = b
        .until(
            "document.getElementById('upstreams').innerText",
            Duration::from_secs(5),
            |s| s.contains("down"),
        )
        .await;
    assert!(ups.contains("down"), "{ups}");
    eprintln!("upstream shown down after {:?}", t.elapsed());
    let violations = b.eval("document.body.dataset.cspViolations || '0'").await;
    assert_eq!(violations, "0");
    // The screenshot, kept as the test's artifact.
    let shot = b
        .call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        )
        .await;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot["data"].as_str().unwrap(),
    )
    .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/status-page.png");
    std::fs::write(&out, png).unwrap();
}
