//! Real HTTP clients for tests: HTTP/1.1 and HTTP/2 (hyper client connections), plain or
//! over rustls with a chosen SNI name, ALPN and trust anchors.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub type ReqBody = BoxBody<Bytes, std::io::Error>;

/// A complete response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }
}

pub fn empty() -> ReqBody {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A request body fed chunk by chunk through the returned sender.
pub fn channel() -> (tokio::sync::mpsc::Sender<Bytes>, ReqBody) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    (tx, BodyExt::boxed(http_body_util::StreamBody::new(stream)))
}

/// A GET with a Host header.
pub fn get(host: &str, path: &str) -> Request<ReqBody> {
    Request::get(path)
        .header("host", host)
        .body(empty())
        .unwrap()
}

/// A client TLS config trusting `roots`, offering `alpn`.
pub fn tls_config(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Connects and handshakes TLS with `sni`.
pub async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    sni: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
    TlsConnector::from(cfg).connect(name, tcp).await
}

/// One client connection, HTTP/1.1 or HTTP/2, kept alive across requests.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
}

impl Conn {
    pub async fn plain(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::h1_over(TokioIo::new(tcp)).await
    }

    /// Over TLS; HTTP/2 when the server picked `h2` by ALPN.
    pub async fn tls(addr: SocketAddr, cfg: Arc<ClientConfig>, sni: &str) -> Self {
        let tls = tls_connect(addr, cfg, sni).await.unwrap();
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            Conn::H2(sender)
        } else {
            Self::h1_over(TokioIo::new(tls)).await
        }
    }

    async fn h1_over<T>(io: T) -> Self
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        Conn::H1(sender)
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&mut self, req: Request<ReqBody>) -> Result<Resp, hyper::Error> {
        let resp = self.send_streaming(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Resp {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send_streaming(
        &mut self,
        mut req: Request<ReqBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Conn::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Conn::H2(s) => {
                if req.uri().authority().is_none() {
                    let host = req
                        .headers_mut()
                        .remove("host")
                        .and_then(|h| h.to_str().ok().map(str::to_owned))
                        .unwrap_or_else(|| "localhost".into());
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map_or("/".to_owned(), |p| p.to_string());
                    *req.uri_mut() = format!("https://{host}{pq}").parse().unwrap();
                }
                *req.version_mut() = Version::HTTP_2;
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

/// One request on a fresh plain connection.
pub async fn plain(addr: SocketAddr, req: Request<ReqBody>) -> Resp {
    Conn::plain(addr).await.send(req).await.unwrap()
}

/// One request on a fresh TLS connection.
pub async fn tls(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    sni: &str,
    req: Request<ReqBody>,
) -> Resp {
    Conn::tls(addr, cfg, sni).await.send(req).await.unwrap()
}

/// Writes raw bytes and reads until the peer closes or `within` passes.
/// Like [`raw`], but `None` when the peer has not closed (or reset) the connection within
/// `within`: a server that hangs is told apart from one that closes.
pub async fn raw_until_closed(
    addr: SocketAddr,
    bytes: &[u8],
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

pub async fn raw(addr: SocketAddr, bytes: &[u8], within: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
