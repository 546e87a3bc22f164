//! The demo shipped with the embedded default config: a small static site (from
//! `demo/site/` in the repository, compiled into the binary) and an in-process echo
//! upstream, so `rampart serve` shows both static serving and proxying with nothing else
//! running.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// The demo site's files: (relative path, contents). The README goes with it, so the
/// page's link to the config reference works offline.
const SITE: &[(&str, &str)] = &[
    ("index.html", include_str!("../../../demo/site/index.html")),
    ("app.js", include_str!("../../../demo/site/app.js")),
    ("style.css", include_str!("../../../demo/site/style.css")),
    ("README.md", include_str!("../../../README.md")),
];

/// Writes the demo site into `dir`, replacing older copies; `{CERT}` in the page becomes
/// the development certificate's path (for the `rampart verify` command it shows).
pub(crate) fn write_site(dir: &Path, cert: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, content) in SITE {
        let content = if *name == "index.html" {
            content.replace("{CERT}", &cert.display().to_string())
        } else {
            (*content).to_owned()
        };
        std::fs::write(dir.join(name), content)?;
    }
    Ok(())
}

/// The embedded default config. `{STATE}` and `{DEMO_PORT}` are filled in at start.
pub(crate) const DEFAULT_CONFIG: &str = r#"# rampart's embedded default: a demo for a first run, not a production config.
[server]
http = "127.0.0.1:8080"    # answers only with redirects to HTTPS
https = "127.0.0.1:8443"

[tls]
self_signed = ["localhost", "127.0.0.1", "::1"]   # generated once, kept in the state dir

[upstreams.demo]
servers = ["127.0.0.1:{DEMO_PORT}"]               # the in-process echo server

[[routes]]
name = "demo-api"
path = "/api/"
upstream = "demo"

[[routes]]
name = "demo-site"
path = "/"
static = "demo-site"
spa_fallback = "index.html"
"#;

/// Serves the echo upstream on `listener` until the process ends.
pub(crate) async fn serve_echo(listener: std::net::TcpListener) {
    let Ok(listener) = listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    else {
        tracing::error!("demo upstream could not start");
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo))
                .await;
        });
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let shown = match k.as_str() {
                "authorization" | "cookie" | "x-api-key" => "[hidden]".to_owned(),
                _ => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            };
            (k.as_str().to_owned(), serde_json::Value::String(shown))
        })
        .collect();
    let body = serde_json::json!({
        "service": "rampart demo upstream",
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // A banner the edge is expected to remove.
    resp.headers_mut().insert(
        "x-powered-by",
        http::HeaderValue::from_static("demo-echo/1.0"),
    );
    Ok(resp)
}
