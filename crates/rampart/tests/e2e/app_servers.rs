//! Real Python app servers behind the edge (uvicorn, gunicorn) and nginx as an origin:
//! pooled connections that the upstream closes when its keep-alive ends never fail a
//! request or count against the server.

use std::time::Duration;

use http::Request;
use rampart_test_support::client::{self, Conn};
use rampart_test_support::TempDir;

use crate::harness::{proxy_toml, start, AppServer};

const APP: &str = r#"
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"uvicorn ok"})

def wsgi(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"gunicorn ok"]
"#;

/// 20 GETs and 20 POSTs in parallel (20+ pooled connections on each upstream client),
/// a pause past the upstream's keep-alive, then the same again: every answer is 200 and
/// the server has no error.
async fn survives_keep_alive_expiry(addr: String, pause: Duration, body: &str) {
    let edge = start(&proxy_toml(&[addr], "max_fails = 3", "")).await;
    let at = edge.http();
    let round = || async {
        let mut tasks = Vec::new();
        for i in 0..40 {
            tasks.push(tokio::spawn(async move {
                let req = if i % 2 == 0 {
                    client::get("app", "/")
                } else {
                    Request::post("/")
                        .header("host", "app")
                        .body(client::full("payload"))
                        .unwrap()
                };
                let r = Conn::plain(at).await.send(req).await.unwrap();
                (r.status.as_u16(), r.text())
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    };
    for (status, text) in round().await {
        assert_eq!((status, text.as_str()), (200, body));
    }
    tokio::time::sleep(pause).await;
    for (status, text) in round().await {
        assert_eq!(
            (status, text.as_str()),
            (200, body),
            "after the upstream's keep-alive"
        );
    }
    let live = edge.running.as_ref().unwrap().live.edge();
    let errors: Vec<u64> = live.pools()[0]
        .servers()
        .iter()
        .map(|s| s.errors())
        .collect();
    assert_eq!(
        errors,
        [0],
        "an upstream's keep-alive ending counted as a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uvicorn_closing_idle_connections_never_gives_502() {
    let dir = TempDir::new("uvicorn");
    dir.write("app.py", APP);
    // uvicorn's default keep-alive: 5 s.
    let app = AppServer::start(
        dir.path(),
        "uvicorn",
        &[
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-access-log",
        ],
    );
    survives_keep_alive_expiry(app.addr.to_string(), Duration::from_secs(6), "uvicorn ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_closing_idle_connections_never_gives_502() {
    let dir = TempDir::new("gunicorn");
    dir.write("app.py", APP);
    // gthread keeps connections alive (the sync worker closes each one); default 2 s.
    let app = AppServer::start(
        dir.path(),
        "gunicorn",
        &[
            "-k",
            "gthread",
            "--threads",
            "32",
            "-b",
            "127.0.0.1:0",
            "app:wsgi",
        ],
    );
    survives_keep_alive_expiry(app.addr.to_string(), Duration::from_secs(3), "gunicorn ok").await;
}

/// nginx as the origin, with its two ways of ending a keep-alive connection shortened for
/// the test: `keepalive_timeout` (default 75 s; 2 s here) closes idle connections, and
/// `keepalive_requests` (default 1000; 7 here) closes one after its last allowed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_closing_idle_and_used_up_connections_never_gives_502() {
    let dir = TempDir::new("nginx-origin");
    // Stopped on drop with SIGTERM: a SIGKILLed master left its worker running, holding
    // the test run's stdout open.
    let nginx = crate::harness::Nginx::start(
        &dir,
        "access_log off; keepalive_timeout 2s; keepalive_requests 7;\n\
         server { listen 127.0.0.1:{port}; location / { default_type text/plain; return 200 \"nginx ok\"; } }",
    );
    let addr = format!("127.0.0.1:{}", nginx.port);
    survives_keep_alive_expiry(addr, Duration::from_secs(3), "nginx ok").await;
}
