//! A real HTTP/1.1 upstream on 127.0.0.1:0 that records every request it receives.
//!
//! Behaviour by path:
//! - `/slow/MS`: answers after MS milliseconds.
//! - `/status/CODE`: answers with that status.
//! - `/banner`: answers with `Server`, `X-Powered-By`, its own CSP, `X-Frame-Options` and HSTS,
//!   and hop-by-hop headers, to check what the edge replaces and removes.
//! - `…/set-cookie`: sets a bare cookie and an already hardened one.
//! - `/echo-body`: reads the whole request body and answers `len=N`.
//! - `/first-chunk`: answers `first=N` as soon as the first body chunk arrives.
//! - `/stream`: sends `first`, then `second` 800 ms later.
//! - `/big/N`: an N-byte body, [`pattern`]`(N)`: a lost, repeated or reordered chunk shows.
//! - `/digest-body`: reads the whole request body and answers `len=N fnv=HEX` ([`fnv`]).
//! - `/drop`: closes the connection without answering.
//! - `/ws`: a WebSocket echo.
//! - `/html`: an HTML page with inline and external scripts and styles; it prints the
//!   `X-CSP-Nonce` it received. `/html-gz`: the same page gzip-encoded.
//! - `/html-big/N`: an N-byte HTML page full of `<script>` tags, generated as it is sent.
//! - `/text/N`: N bytes of `text/plain`.
//! - anything else: `upstream NAME`.
//!
//! Every answer carries `x-upstream: NAME`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub peer: SocketAddr,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type RespBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_at(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// On a given address (to bring a stopped upstream back where it was).
    pub async fn start_at(name: &str, at: SocketAddr) -> Self {
        crate::raise_open_files();
        let listener = TcpListener::bind(at).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (n, s) = (name.to_owned(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let (n, s) = (n.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(n.clone(), s.clone(), peer, req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            seen,
            task,
        }
    }

    /// `host:port` for a config.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Stops accepting and closes (connections already open end with their tasks).
    pub fn stop(&self) {
        self.task.abort();
    }
}

fn full(s: impl Into<Bytes>) -> RespBody {
    Full::new(s.into()).boxed()
}

async fn handle(
    name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<RespBody>, std::io::Error> {
    seen.lock().unwrap().push(Seen {
        method: req.method().clone(),
        uri: req.uri().to_string(),
        version: req.version(),
        headers: req.headers().clone(),
        peer,
    });
    let path = req.uri().path().to_owned();
    let mut resp = if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        Response::new(full(format!("slow {name}")))
    } else if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(full(format!("status {code}")));
        *r.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        r
    } else if path == "/banner" {
        let mut r = Response::new(full("banner"));
        let h = r.headers_mut();
        h.insert("server", HeaderValue::from_static("nginx/1.18.0 (Ubuntu)"));
        h.insert("x-powered-by", HeaderValue::from_static("PHP/8.1.2"));
        h.insert("x-aspnet-version", HeaderValue::from_static("4.0.30319"));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src *"),
        );
        h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        h.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=60"),
        );
        h.insert("x-app-header", HeaderValue::from_static("kept"));
        h.insert("connection", HeaderValue::from_static("x-resp-hop"));
        h.insert("x-resp-hop", HeaderValue::from_static("secret"));
        r
    } else if path.ends_with("/set-cookie") {
        let mut r = Response::new(full("cookies"));
        let h = r.headers_mut();
        h.append("set-cookie", HeaderValue::from_static("sid=s3cret; Path=/"));
        h.append(
            "set-cookie",
            HeaderValue::from_static("theme=dark; Secure; HttpOnly; SameSite=Strict"),
        );
        r
    } else if path == "/echo-body" {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        Response::new(full(format!("len={body}")))
    } else if path == "/digest-body" {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Response::new(full(format!("len={} fnv={:016x}", body.len(), fnv(&body))))
    } else if path == "/first-chunk" {
        let mut body = req.into_body();
        let mut n = 0;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.map(|f| f.into_data()) {
                if let Ok(d) = d {
                    n = d.len();
                    break;
                }
            } else {
                break;
            }
        }
        // Keep the rest of the body from blocking the answer.
        tokio::spawn(async move { while body.frame().await.is_some() {} });
        Response::new(full(format!("first={n}")))
    } else if path == "/stream" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"first")))).await;
            tokio::time::sleep(Duration::from_millis(800)).await;
            let _ = tx
                .send(Ok(Frame::data(Bytes::from_static(b"second"))))
                .await;
        });
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        Response::new(BodyExt::boxed(StreamBody::new(stream)))
    } else if let Some(n) = path.strip_prefix("/big/") {
        let n: usize = n.parse().unwrap_or(0);
        Response::new(full(pattern(n)))
    } else if path == "/html" || path == "/html-gz" {
        let nonce = req
            .headers()
            .get("x-csp-nonce")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let page = html_page(&nonce);
        let mut r = if path == "/html-gz" {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, page.as_bytes()).unwrap();
            let mut r = Response::new(full(e.finish().unwrap()));
            r.headers_mut()
                .insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        } else {
            Response::new(full(page))
        };
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r.headers_mut()
            .insert("etag", HeaderValue::from_static("\"page-v1\""));
        r
    } else if let Some(n) = path.strip_prefix("/html-big/") {
        let total: usize = n.parse().unwrap_or(0);
        const PIECE: &[u8] =
            b"<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p><script>x()</script>\n";
        let stream = futures_util::stream::unfold(0usize, move |sent| async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(64 * 1024);
            let chunk: Vec<u8> = PIECE.iter().copied().cycle().take(n).collect();
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))),
                sent + n,
            ))
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/html"));
        r
    } else if let Some(n) = path.strip_prefix("/text/") {
        let n: usize = n.parse().unwrap_or(0);
        let body: Vec<u8> = b"all work and no play makes jack a dull boy. "
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect();
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    } else if path == "/drop" {
        // Read the body, then fail: hyper closes the connection without an answer.
        let _ = req.into_body().collect().await;
        return Err(std::io::Error::other("dropped on purpose"));
    } else if path == "/ws" {
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            return Ok(Response::builder()
                .status(400)
                .body(full("not a websocket"))
                .unwrap());
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    let _ = ws.send(msg).await;
                } else if msg.is_close() {
                    break;
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .header("x-upstream", name)
            .body(full(""))
            .unwrap());
    } else {
        Response::new(full(format!("upstream {name}")))
    };
    resp.headers_mut()
        .insert("x-upstream", HeaderValue::from_str(&name).unwrap());
    Ok(resp)
}

/// The page `/html` serves: every kind of tag a CSP nonce applies to, and one the upstream
/// nonced itself with the `X-CSP-Nonce` it was given.
pub fn html_page(nonce: &str) -> String {
    format!(
        "<!doctype html><html><head><title>t</title><style>p{{color:red}}</style>\
<link rel=\"stylesheet\" href=\"/a.css\"><link rel=\"icon\" href=\"/f.ico\"></head>\
<body><p id=\"n\">upstream-nonce:{nonce}</p><script>document.title='ok'</script>\
<script src=\"/app.js\"></script><script nonce=\"{nonce}\">1</script></body></html>"
    )
}

/// `n` bytes where every position differs from its neighbours' pattern (a 251-byte cycle
/// offset by the 64 KiB block), so a lost, doubled or reordered chunk changes the bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i % 251) as u8).wrapping_add((i >> 16) as u8))
        .collect()
}

/// FNV-1a, 64 bits: a body's fingerprint for comparing it whole without sending it back.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
