//! Request framing attacks through the real edge to a recording upstream: protocol
//! upgrades other than WebSocket, oversized heads on every HTTP/1.1 path, and malformed
//! chunked bodies that must never count against an upstream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_test_support::client::{self, get, tls_config};
use rampart_test_support::pki::Pki;
use rampart_test_support::upstream::Upstream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::start;

/// A raw upstream that answers `101 Switching Protocols` to any request carrying
/// `Upgrade`, then reads whatever the tunnel brings and answers each request head in it
/// with `200 tunnelled`. Every head it receives (inside a tunnel or not) is recorded.
struct Upgrader {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upgrader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upgrader {
    async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let h = h.clone();
                tokio::spawn(async move { upgrader_conn(s, h).await });
            }
        });
        Self { addr, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn upgrader_conn(mut s: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut tunnelled = false;
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        buf.drain(..end + 4);
        let lower = head.to_ascii_lowercase();
        heads.lock().unwrap().push(head);
        // Bodies are not expected here: the tests send none through this upstream.
        let answer: &[u8] = if lower.contains("\r\nupgrade:") && !tunnelled {
            tunnelled = true;
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        } else if tunnelled {
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\ntunnelled!"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain"
        };
        if s.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn upgrade_toml(up: SocketAddr, tls: Option<(&std::path::Path, &std::path::Path)>) -> String {
    let (listen, tls) = match tls {
        Some((cert, key)) => (
            "https = \"127.0.0.1:0\"".to_owned(),
            format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        ),
        None => ("http = \"127.0.0.1:0\"".to_owned(), String::new()),
    };
    format!(
        r#"
[server]
{listen}
{tls}
[upstreams.app]
servers = ["{up}"]
[[routes]]
path = "/admin"
upstream = "app"
deny = ["0.0.0.0/0", "::/0"]
[[routes]]
path = "/"
upstream = "app"
"#
    )
}

const H2C_UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: app\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /admin HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

/// Sends the smuggling attempt and reads until the edge closes.
async fn smuggle<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> String {
    s.write_all(H2C_UPGRADE).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_not_smuggled(out: &str, up: &Upgrader) {
    assert!(!out.contains(" 101 "), "the edge switched protocols: {out}");
    assert!(
        !out.contains("tunnelled!"),
        "a request crossed the tunnel: {out}"
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("HTTP/1.1 403"),
        "the second request meets the route's deny: {out}"
    );
    let heads = up.heads();
    assert_eq!(
        heads.len(),
        1,
        "only the first request reaches the upstream: {heads:?}"
    );
    let first = heads[0].to_ascii_lowercase();
    assert!(!first.contains("upgrade"), "Upgrade forwarded: {first}");
    assert!(!first.contains("http2-settings"), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_never_tunnelled_over_plain_http() {
    let up = Upgrader::start().await;
    let edge = start(&upgrade_toml(up.addr, None)).await;
    let out = smuggle(TcpStream::connect(edge.http()).await.unwrap()).await;
    assert_not_smuggled(&out, &up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_never_tunnelled_over_tls() {
    let up = Upgrader::start().await;
    let pki = Pki::new();
    let leaf = pki.leaf("edge", &["app"]);
    let edge = start(&upgrade_toml(up.addr, Some((&leaf.cert, &leaf.key)))).await;
    let cfg = tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]);
    let tls = client::tls_connect(edge.https(), cfg, "app").await.unwrap();
    let out = smuggle(tls).await;
    assert_not_smuggled(&out, &up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_switching_protocols_unasked_is_a_bad_gateway() {
    // A client asking for a WebSocket gets a tunnel only when the upstream switched to a
    // WebSocket; an upstream answering 101 with another protocol is a 502.
    let up = Upgrader::start().await;
    let edge = start(&upgrade_toml(up.addr, None)).await;
    let ws = b"GET /chat HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let out = client::raw(edge.http(), ws, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    assert!(up.heads()[0]
        .to_ascii_lowercase()
        .contains("upgrade: websocket"));
}

// === max_header_size ===

/// A request head of exactly `total` bytes (request line, header lines, blank line).
fn head_of(method: &str, total: usize, extra: &str) -> String {
    let start = format!("{method} / HTTP/1.1\r\nHost: h\r\n{extra}X-Pad: ");
    let end = "\r\n\r\n";
    let pad = total - start.len() - end.len();
    let head = format!("{start}{}{end}", "p".repeat(pad));
    assert_eq!(head.len(), total);
    head
}

const SIZE_RESPOND: &str = "[[routes]]\npath = \"/\"\nupstream = \"app\"\n";

async fn size_edge(max: &str) -> (crate::harness::TestEdge, Upstream) {
    let up = Upstream::start("a").await;
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmax_header_size = \"{max}\"\n[upstreams.app]\nservers = [\"{}\"]\n{SIZE_RESPOND}",
        up.authority()
    ))
    .await;
    (edge, up)
}

async fn status_of(addr: SocketAddr, bytes: &[u8]) -> String {
    let out = client::raw(addr, bytes, Duration::from_secs(5)).await;
    out.get(..12).unwrap_or(&out).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_header_size_holds_byte_exact_on_every_http1_path() {
    for max in [16 * 1024, 64 * 1024] {
        let (edge, up) = size_edge(&format!("{max}")).await;
        for (method, extra, body) in [
            // The fast path (GET, no body) and hyper's path (a body).
            ("GET", "Connection: close\r\n", ""),
            ("POST", "Content-Length: 2\r\nConnection: close\r\n", "ok"),
        ] {
            let at = format!("{}{body}", head_of(method, max, extra));
            assert_eq!(
                status_of(edge.http(), at.as_bytes()).await,
                "HTTP/1.1 200",
                "{method}: a head of exactly max_header_size ({max}) is served"
            );
            let over = format!("{}{body}", head_of(method, max + 1, extra));
            assert_eq!(
                status_of(edge.http(), over.as_bytes()).await,
                "HTTP/1.1 431",
                "{method}: one byte over max_header_size ({max}) is refused"
            );
            let big = format!("{}{body}", head_of(method, 100_000, extra));
            assert_eq!(
                status_of(edge.http(), big.as_bytes()).await,
                "HTTP/1.1 431",
                "{method}: a 100 KB head"
            );
        }
        // A second request on a connection hyper already serves (after a POST) is held
        // to the same limit.
        let mut keep = head_of("POST", 200, "Content-Length: 2\r\n");
        keep.push_str("ok");
        keep.push_str(&head_of("GET", max + 1, "Connection: close\r\n"));
        let out = client::raw(edge.http(), keep.as_bytes(), Duration::from_secs(5)).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("HTTP/1.1 431"), "second request: {out}");
        let served = up.seen().len();
        assert_eq!(
            served, 3,
            "only the requests within the limit reached the upstream"
        );
        assert_eq!(client::plain(edge.http(), get("h", "/")).await.status, 200);
    }
}

// === malformed chunked bodies ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_are_400_and_never_count_against_the_upstream() {
    let up = Upstream::start("a").await;
    let edge = start(&format!(
        r#"
[server]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[upstreams.app]
servers = ["{}"]
max_fails = 3
[[routes]]
path = "/"
upstream = "app"
"#,
        up.authority()
    ))
    .await;
    let admin = edge.running.as_ref().unwrap().live.admin_addr().unwrap();
    let ext = format!("5;{}", "e".repeat(100_000));
    let sizes = ["zz", "-1", "ffffffffffffffffffff", "3 3", ext.as_str()];
    for i in 0..100 {
        let size = sizes[i % sizes.len()];
        let req = format!(
            "POST /echo-body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        let out = client::raw(edge.http(), req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "chunk size {:?}: {}",
            &size[..size.len().min(12)],
            &out[..out.len().min(200)]
        );
    }
    let errors = edge
        .running
        .as_ref()
        .unwrap()
        .live
        .edge()
        .pools()
        .iter()
        .flat_map(|p| p.servers())
        .map(|s| (s.errors(), s.is_down()))
        .collect::<Vec<_>>();
    assert_eq!(errors, [(0, false)], "the upstream was blamed");
    let ready = client::plain(admin, get("admin", "/ready")).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(client::plain(edge.http(), get("h", "/")).await.status, 200);
}
