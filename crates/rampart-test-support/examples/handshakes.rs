//! A TLS 1.3 handshake load generator that can offer the post-quantum hybrid group: the
//! benchmark's `new-conns` row uses wrk on Debian's OpenSSL 3.0, which has no ML-KEM, so
//! the cost of an X25519MLKEM768 handshake needs a client built on rustls.
//!
//! `handshakes ADDR SNI GROUP SECONDS CONCURRENCY`: GROUP is `x25519mlkem768` or `x25519`;
//! each task connects, handshakes (certificate not verified: the server's cost is
//! measured), sends one `GET /` with `Connection: close`, reads the answer, and starts
//! again. Prints `handshakes=N per_second=R group=G`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct Any(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Any {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 {
        eprintln!("usage: handshakes ADDR SNI x25519mlkem768|x25519 SECONDS CONCURRENCY");
        std::process::exit(2);
    }
    let addr: SocketAddr = a[1].parse().expect("ADDR");
    let sni = ServerName::try_from(a[2].clone()).expect("SNI");
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let group = match a[3].as_str() {
        "x25519mlkem768" => rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768,
        "x25519" => rustls::crypto::aws_lc_rs::kx_group::X25519,
        other => panic!("unknown group {other}"),
    };
    // The only share offered: the server cannot answer with another group without a
    // HelloRetryRequest, which would show in the count.
    provider.kx_groups = vec![group];
    let provider = Arc::new(provider);
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any(provider)))
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    let seconds: u64 = a[4].parse().expect("SECONDS");
    let tasks: usize = a[5].parse().expect("CONCURRENCY");
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (cfg, sni, done) = (cfg.clone(), sni.clone(), done.clone());
        set.spawn(async move {
            let connector = tokio_rustls::TlsConnector::from(cfg);
            let mut buf = vec![0u8; 16 * 1024];
            while Instant::now() < end {
                let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let Ok(mut tls) = connector.connect(sni.clone(), tcp).await else {
                    continue;
                };
                let req = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
                if tls.write_all(req).await.is_err() {
                    continue;
                }
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while set.join_next().await.is_some() {}
    let n = done.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!("handshakes={n} per_second={rate:.0} group={}", a[3]);
}
