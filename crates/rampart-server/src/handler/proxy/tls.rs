//! TLS to upstream servers (`https://` servers, a pool's `tls = { … }`): the rustls client
//! config built once per pool (CA or system roots, client certificate for mutual TLS,
//! minimum version, ALPN), the name each server is verified against, and what a failed
//! handshake was (a certificate that does not verify is told apart from a network error,
//! for the audit event and the metric). Sessions are resumed: rustls keeps tickets per
//! server name in memory, so a new connection to a server seen before skips the full
//! handshake.

use std::io;
use std::sync::Arc;

use rampart_config::runtime::{UpstreamProtocol, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A pool's TLS client.
#[derive(Clone)]
pub(crate) struct Client {
    /// ALPN as the pool's protocol says.
    connector: TlsConnector,
    /// ALPN `http/1.1` only: the HTTP/1.1 path (WebSocket upgrades, HTTP health checks)
    /// of an `h2` or `auto` pool.
    h1: TlsConnector,
    /// `tls.server_name`, for every server.
    name: Option<ServerName<'static>>,
    /// SHA-256 of the files read (CA, certificate, key): a reload that changes one builds a
    /// new pool even when the config text is the same.
    pub(crate) digest: [u8; 32],
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("name", &self.name).finish()
    }
}

impl Client {
    /// The client of a pool's TLS settings.
    ///
    /// # Errors
    /// A file that cannot be read or holds no usable certificate or key, named.
    pub(crate) fn new(t: &UpstreamTls, protocol: UpstreamProtocol) -> Result<Self, String> {
        use aws_lc_rs::digest;
        let mut hash = digest::Context::new(&digest::SHA256);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if t.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?;
        let builder = if t.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            let roots = match &t.ca {
                Some(path) => {
                    let (roots, pem) = crate::wire::roots::from_file(path)?;
                    hash.update(&pem);
                    roots
                }
                None => crate::wire::roots::system()
                    .map_err(|e| format!("{e} to verify the servers: set tls.ca"))?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match &t.client_cert {
            Some((cert, key)) => {
                let chain_pem = std::fs::read(cert)
                    .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
                let key_pem =
                    std::fs::read(key).map_err(|e| format!("key {}: {e}", key.display()))?;
                hash.update(&chain_pem);
                hash.update(&key_pem);
                let chain = CertificateDer::pem_slice_iter(&chain_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
                if chain.is_empty() {
                    return Err(format!("certificate {}: no certificate", cert.display()));
                }
                let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| format!("key {}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    format!(
                        "certificate {} and key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let h1 = TlsConnector::from(Arc::new(config.clone()));
        config.alpn_protocols = match protocol {
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::H2 => vec![b"h2".to_vec()],
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        let name = match &t.server_name {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|e| format!("tls.server_name {n:?}: {e}"))?,
            ),
            None => None,
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(hash.finish().as_ref());
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            h1,
            name,
            digest,
        })
    }

    /// The TLS handshake with the server at `authority` over `tcp`, offering only
    /// `http/1.1` by ALPN when `h1`, else what the pool's protocol speaks.
    ///
    /// # Errors
    /// The handshake's error; [`verify_failure`] tells a certificate problem apart.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        authority: &str,
        h1: bool,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => server_name(authority)?,
        };
        let connector = if h1 { &self.h1 } else { &self.connector };
        connector.connect(name, tcp).await
    }
}

/// What the last TLS handshakes with one server showed, for `/upstreams` and
/// `rampart check --live`: the protocol, ALPN and certificate of the last success, the
/// reason of the last failure.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Unix seconds of the last handshake that succeeded.
    pub ok_at: Option<u64>,
    /// `1.3` / `1.2`.
    pub version: Option<&'static str>,
    /// The protocol ALPN chose (`h2`, `http/1.1`), if any, on the last handshake that
    /// offered the pool's own protocols: a WebSocket upgrade or an HTTP health check on an
    /// `h2`/`auto` pool asks for HTTP/1.1 alone and does not say what the pool speaks.
    pub alpn: Option<String>,
    /// The server's leaf certificate (DER), kept to parse it again only when it changes.
    leaf: Vec<u8>,
    /// Its subject, issuer and end of validity (unix seconds).
    pub certificate: Option<(String, String, i64)>,
    /// Unix seconds and reason of the last failed handshake.
    pub failed: Option<(u64, String)>,
}

impl Seen {
    /// Records a handshake's outcome; `pool_alpn`: it offered the pool's own protocols.
    pub(crate) fn record(&mut self, r: &io::Result<TlsStream<TcpStream>>, pool_alpn: bool) {
        let now = crate::state::persist::unix_ms() / 1000;
        match r {
            Ok(s) => {
                let c = s.get_ref().1;
                self.ok_at = Some(now);
                self.version = match c.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => Some("1.3"),
                    Some(rustls::ProtocolVersion::TLSv1_2) => Some("1.2"),
                    _ => None,
                };
                if pool_alpn || self.alpn.is_none() {
                    self.alpn = c
                        .alpn_protocol()
                        .map(|a| String::from_utf8_lossy(a).into_owned());
                }
                let leaf = c.peer_certificates().and_then(|p| p.first());
                if let Some(leaf) = leaf.filter(|l| l.as_ref() != self.leaf.as_slice()) {
                    self.leaf = leaf.to_vec();
                    self.certificate =
                        x509_parser::parse_x509_certificate(leaf)
                            .ok()
                            .map(|(_, cert)| {
                                (
                                    cert.subject().to_string(),
                                    cert.issuer().to_string(),
                                    cert.validity().not_after.timestamp(),
                                )
                            });
                }
            }
            Err(e) => {
                let why = verify_failure(e).unwrap_or_else(|| format!("TLS: {e}"));
                self.failed = Some((now, why));
            }
        }
    }
}

/// The host of `host:port` as a TLS name (an IP address is verified against the
/// certificate's IP addresses and sends no SNI).
fn server_name(authority: &str) -> io::Result<ServerName<'static>> {
    let host = match authority.rfind(':') {
        Some(i) => &authority[..i],
        None => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?}: {e}")))
}

/// What was wrong with the server's certificate, when that is why `e` failed (else `None`:
/// a network error, a protocol mismatch).
pub(crate) fn verify_failure(e: &io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidCertificate(c) => Some(match c {
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => {
                "certificate not valid for the server's name".into()
            }
            rustls::CertificateError::UnknownIssuer => {
                "certificate not issued by a trusted CA (unknown issuer)".into()
            }
            // An issuer of a trusted CA's name that did not sign it: forged, or signed by
            // another CA of the same name (a self-made one).
            rustls::CertificateError::BadSignature => {
                "certificate not issued by a trusted CA (its signature does not verify)".into()
            }
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            rustls::CertificateError::Revoked => "certificate revoked".into(),
            other => format!("certificate invalid: {other:?}"),
        }),
        rustls::Error::AlertReceived(a) => {
            Some(format!("the server refused the handshake ({a:?})"))
        }
        rustls::Error::NoCertificatesPresented => Some("the server sent no certificate".into()),
        _ => None,
    }
}

/// `insecure_skip_verify`: any certificate is accepted; the handshake's signatures are
/// still checked (the connection is encrypted to whoever holds the key it sent).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
