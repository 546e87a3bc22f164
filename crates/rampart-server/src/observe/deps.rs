//! Readiness probes of declared dependencies, at protocol level: a TCP connect, an HTTP
//! `GET` answered 2xx/3xx, Redis `PING` answered (`+PONG`, or `-NOAUTH`: the server is up
//! and wants a password), a PostgreSQL `SSLRequest` answered `S` or `N`, a MySQL server
//! greeting (protocol 10, not an error packet such as "too many connections").
//!
//! `https://` and `rediss://` dependencies are probed over TLS, the certificate verified
//! against the dependency's `ca` file or the system roots for the address's host name: a
//! dependency whose certificate does not verify is not ready.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rampart_config::ops::{Dependency, DependencyKind};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Probes `d`: `Ok(())` when it answers as its kind should, else why not.
pub async fn probe(d: &Dependency) -> Result<(), String> {
    match tokio::time::timeout(d.timeout, probe_inner(d)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", d.timeout)),
    }
}

async fn probe_inner(d: &Dependency) -> Result<(), String> {
    let s = TcpStream::connect(&d.address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    if !d.tls {
        return speak(d, s).await;
    }
    let host = host_of(&d.address);
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host:?} is not a TLS server name"))?;
    let tls = tokio_rustls::TlsConnector::from(client_config(d.ca.as_ref())?)
        .connect(name, s)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    speak(d, tls).await
}

/// The host part of `host:port` (`[::1]:443` → `::1`).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// One client config per CA file (`None`: the system roots), built on first use: a probe
/// runs on every `/ready`, and parsing the system roots takes milliseconds.
pub(crate) fn client_config(ca: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIGS: Mutex<Option<HashMap<Option<PathBuf>, Arc<rustls::ClientConfig>>>> =
        Mutex::new(None);
    let mut configs = CONFIGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let configs = configs.get_or_insert_with(HashMap::new);
    if let Some(c) = configs.get(&ca.cloned()) {
        return Ok(c.clone());
    }
    let roots = match ca {
        Some(path) => crate::wire::roots::from_file(path)?.0,
        None => crate::wire::roots::system()
            .map_err(|e| format!("{e} to verify the dependency against"))?,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    configs.insert(ca.cloned(), config.clone());
    Ok(config)
}

/// The kind's protocol exchange on a connected stream.
async fn speak<S: AsyncRead + AsyncWrite + Unpin>(d: &Dependency, mut s: S) -> Result<(), String> {
    match d.kind {
        DependencyKind::Tcp => Ok(()),
        DependencyKind::Http => {
            let host = d.address.as_str();
            let status = get_status(&mut s, host, &d.path, "rampart-ready").await?;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("HTTP {status}"))
            }
        }
        DependencyKind::Redis => {
            s.write_all(b"*1\r\n$4\r\nPING\r\n")
                .await
                .map_err(|e| e.to_string())?;
            let r = read_some(&mut s, 5).await?;
            if r.starts_with(b"+PONG") || r.starts_with(b"-NOAUTH") {
                Ok(())
            } else {
                Err(format!(
                    "unexpected reply {:?}",
                    String::from_utf8_lossy(&r[..r.len().min(40)])
                ))
            }
        }
        DependencyKind::Postgres => {
            // SSLRequest: length 8, code 80877103.
            s.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
                .await
                .map_err(|e| e.to_string())?;
            let r = read_some(&mut s, 1).await?;
            match r[0] {
                b'S' | b'N' => Ok(()),
                b'E' => Err("server answered with an error".into()),
                other => Err(format!("not PostgreSQL (first byte {other:#04x})")),
            }
        }
        DependencyKind::Mysql => {
            let r = read_some(&mut s, 5).await?;
            match r[4] {
                10 => Ok(()),
                0xff => Err(format!(
                    "server refused: {}",
                    String::from_utf8_lossy(r.get(7..).unwrap_or_default())
                        .chars()
                        .take(80)
                        .collect::<String>()
                )),
                other => Err(format!("not MySQL (protocol byte {other})")),
            }
        }
    }
}

/// Sends `GET path` (closing the connection after) and reads the response's status code.
/// Shared by dependency probes and upstream health checks.
pub(crate) async fn get_status<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    path: &str,
    agent: &str,
) -> Result<u16, String> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let head = read_some(s, 12).await?;
    std::str::from_utf8(&head)
        .ok()
        .and_then(|h| h.strip_prefix("HTTP/1."))
        .and_then(|h| h.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP response".to_owned())
}

/// Reads until at least `min` bytes (or the peer closes).
async fn read_some<S: AsyncRead + Unpin>(s: &mut S, min: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < min {
        let got = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        n += got;
    }
    if n < min {
        return Err("connection closed before an answer".into());
    }
    buf.truncate(n);
    Ok(buf)
}

/// Probes every dependency at once.
pub async fn probe_all(deps: &[Dependency]) -> Vec<Result<(), String>> {
    let handles: Vec<_> = deps
        .iter()
        .map(|d| {
            let d = d.clone();
            tokio::spawn(async move { probe(&d).await })
        })
        .collect();
    let mut out = Vec::with_capacity(deps.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|_| Err("probe failed".into())));
    }
    out
}
