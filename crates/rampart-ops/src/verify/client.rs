//! A small blocking HTTP/1.1 client for probes: one request per connection, every header
//! kept as sent (duplicates too), nothing followed, every step under a timeout. It never
//! refuses a certificate itself: the chain it saw is kept and judged by the caller.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Bodies are read up to this many bytes (enough for an HTML page's scripts).
const BODY_MAX: usize = 2 << 20;

/// One answer.
#[derive(Debug, Clone, Default)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers in the order sent, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked, at most 2 MiB).
    pub body: Vec<u8>,
    /// From connecting to the end of the body.
    pub elapsed: Duration,
}

impl Resp {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the TLS handshake of a probe showed.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The chain the server sent, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// Negotiated protocol (`TLSv1.3`).
    pub version: Option<String>,
    /// Negotiated suite (IANA name).
    pub suite: Option<String>,
    /// Negotiated key-exchange group.
    pub group: Option<String>,
    /// An OCSP response was stapled.
    pub ocsp_stapled: bool,
}

/// Where probes go.
#[derive(Debug, Clone)]
pub struct Client {
    /// The name used for SNI and `Host`.
    pub host: String,
    /// The resolved address (its port is replaced per request).
    pub ip: std::net::IpAddr,
    /// Per-step timeout.
    pub timeout: Duration,
}

/// Records the chain instead of judging it (verify judges it afterwards, with its own
/// roots); the handshake signature is still checked, so the server holds the leaf's key.
#[derive(Debug)]
pub(crate) struct Recorder {
    chain: Mutex<Vec<Vec<u8>>>,
    ocsp: Mutex<bool>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self {
            chain: Mutex::new(Vec::new()),
            ocsp: Mutex::new(false),
            algs: rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut c = vec![end_entity.to_vec()];
        c.extend(intermediates.iter().map(|d| d.to_vec()));
        if let Ok(mut g) = self.chain.lock() {
            *g = c;
        }
        if let Ok(mut g) = self.ocsp.lock() {
            *g = !ocsp_response.is_empty();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A request.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    /// Over TLS.
    pub tls: bool,
    /// Port.
    pub port: u16,
    /// Method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// A body, sent with its length.
    pub body: Option<&'a [u8]>,
}

impl Client {
    /// Resolves `host` (a name or an IP literal).
    ///
    /// # Errors
    /// The name does not resolve.
    pub fn new(host: &str, port: u16, timeout: Duration) -> Result<Self, String> {
        let addrs: Vec<SocketAddr> = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let first = addrs
            .first()
            .ok_or_else(|| format!("{host} has no address"))?;
        // The first address that accepts a connection (`localhost` may list ::1 first
        // for a site bound to 127.0.0.1 only).
        let ip = addrs
            .iter()
            .find(|a| TcpStream::connect_timeout(a, timeout).is_ok())
            .unwrap_or(first)
            .ip();
        Ok(Self {
            host: host.to_owned(),
            ip,
            timeout,
        })
    }

    /// A TCP connection to `port` under the timeout.
    ///
    /// # Errors
    /// Connection refused, unreachable, timed out.
    pub fn connect(&self, port: u16) -> Result<TcpStream, String> {
        let addr = SocketAddr::new(self.ip, port);
        let s = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = s.set_read_timeout(Some(self.timeout));
        let _ = s.set_write_timeout(Some(self.timeout));
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// A rustls client config that records the chain, for `versions`.
    pub fn tls_config(
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> (Arc<ClientConfig>, Arc<RecorderHandle>) {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let rec = Arc::new(Recorder::new());
        let cfg = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(rec.clone())
                    .with_no_client_auth()
            });
        let mut cfg = match cfg {
            Ok(c) => c,
            // INVARIANT: aws-lc-rs supports every version rustls has.
            Err(_) => ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(rec.clone())
                .with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        (Arc::new(cfg), Arc::new(RecorderHandle(rec)))
    }

    /// A TLS handshake only (no request), with what it showed.
    ///
    /// # Errors
    /// The connection or the handshake failed.
    pub fn handshake(
        &self,
        port: u16,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<Seen, String> {
        let (cfg, rec) = Self::tls_config(versions, &[b"http/1.1"]);
        let mut tcp = self.connect(port)?;
        let mut conn = self.tls_conn(cfg)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
        }
        Ok(seen(&conn, &rec))
    }

    /// A TLS client connection to the target's name (SNI; none for an IP address).
    pub(crate) fn tls_conn(
        &self,
        cfg: Arc<ClientConfig>,
    ) -> Result<rustls::ClientConnection, String> {
        let name = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.host.clone())
                .map_err(|e| format!("not a server name: {e}"))?,
        };
        rustls::ClientConnection::new(cfg, name).map_err(|e| format!("TLS: {e}"))
    }

    /// Sends one request on a new connection and reads the whole answer.
    ///
    /// # Errors
    /// Connection, TLS, timeout, or an answer that is not HTTP.
    pub fn send(&self, r: &Req<'_>) -> Result<(Resp, Option<Seen>), String> {
        let started = Instant::now();
        let mut tcp = self.connect(r.port)?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rampart-verify\r\nAccept: */*\r\nConnection: close\r\n",
            r.method,
            r.path,
            self.host_header(r.port, r.tls)
        );
        for (k, v) in r.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        if let Some(b) = r.body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        if let Some(b) = r.body {
            wire.extend_from_slice(b);
        }
        let (raw, seen) = if r.tls {
            let (cfg, rec) = Self::tls_config(rustls::ALL_VERSIONS, &[b"http/1.1"]);
            let conn = self.tls_conn(cfg)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(&wire)
                .map_err(|e| format!("TLS or write failed: {e}"))?;
            let raw = read_all(&mut s)?;
            (raw, Some(seen(&s.conn, &rec)))
        } else {
            tcp.write_all(&wire)
                .map_err(|e| format!("write failed: {e}"))?;
            (read_all(&mut tcp)?, None)
        };
        let mut resp = parse(&raw, r.method == "HEAD")?;
        resp.elapsed = started.elapsed();
        Ok((resp, seen))
    }

    /// `Host` as a browser sends it: the port only when it is not the scheme's default.
    pub fn host_header(&self, port: u16, tls: bool) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if (tls && port == 443) || (!tls && port == 80) {
            host
        } else {
            format!("{host}:{port}")
        }
    }
}

/// The recorder, to read after a handshake.
#[derive(Debug)]
pub struct RecorderHandle(Arc<Recorder>);

fn seen(conn: &rustls::ClientConnection, rec: &RecorderHandle) -> Seen {
    Seen {
        chain: rec.0.chain.lock().map(|c| c.clone()).unwrap_or_default(),
        version: conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        }),
        suite: conn
            .negotiated_cipher_suite()
            .map(|s| s.suite().as_str().unwrap_or("unknown").to_owned()),
        group: conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name())),
        ocsp_stapled: rec.0.ocsp.lock().map(|g| *g).unwrap_or(false),
    }
}

/// Reads to the end of the stream (the request said `Connection: close`), at most the
/// head plus 2 MiB. A peer that closes without TLS close_notify still ends the answer.
fn read_all<R: Read>(s: &mut R) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > BODY_MAX + 65536 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // A server that keeps the connection open after a complete answer.
                if complete(&out) {
                    break;
                }
                return Err("timed out waiting for the answer".into());
            }
            Err(e) => return Err(format!("read failed: {e}")),
        }
        if complete(&out) {
            break;
        }
    }
    Ok(out)
}

/// Whether `raw` holds a whole answer with a known length (so there is no need to wait
/// for the server to close).
fn complete(raw: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = r.parse(raw) else {
        return false;
    };
    if matches!(r.code, Some(101 | 204 | 304)) {
        return true;
    }
    let len = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    len.is_some_and(|l| raw.len() >= n + l)
}

/// Parses a whole answer.
fn parse(raw: &[u8], head_only: bool) -> Result<Resp, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut headers);
    let n = match r.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if raw.is_empty() => {
            return Err("the connection closed without an answer".into())
        }
        Ok(httparse::Status::Partial) => return Err("the answer ended inside its head".into()),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    let status = r.code.unwrap_or(0);
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let rest = &raw[n..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if head_only || matches!(status, 101 | 204 | 304) {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match len {
            Some(l) => rest[..l.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    let mut body = body;
    body.truncate(BODY_MAX);
    Ok(Resp {
        status,
        headers,
        body,
        elapsed: Duration::ZERO,
    })
}

/// The data of a chunked body (as much as arrived).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(rest.len());
        out.extend_from_slice(&rest[start..end]);
        if end + 2 > rest.len() {
            break;
        }
        rest = &rest[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.all("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(r.body, b"abcde");
        let r = parse(
            b"HTTP/1.1 301 Moved\r\nContent-Length: 3\r\n\r\nabcdef",
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"abc");
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"));
        assert!(parse(b"", false).is_err());
        assert!(parse(b"SSH-2.0-OpenSSH\r\n", false).is_err());
    }
}
