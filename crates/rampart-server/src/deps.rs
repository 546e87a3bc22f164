//! Readiness probes of declared dependencies, at protocol level: a TCP connect, an HTTP
//! `GET` answered 2xx/3xx, Redis `PING` answered (`+PONG`, or `-NOAUTH`: the server is up
//! and wants a password), a PostgreSQL `SSLRequest` answered `S` or `N`, a MySQL server
//! greeting (protocol 10, not an error packet such as "too many connections").

use rampart_config::ops::{Dependency, DependencyKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Probes `d`: `Ok(())` when it answers as its kind should, else why not.
pub async fn probe(d: &Dependency) -> Result<(), String> {
    match tokio::time::timeout(d.timeout, probe_inner(d)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", d.timeout)),
    }
}

async fn probe_inner(d: &Dependency) -> Result<(), String> {
    let mut s = TcpStream::connect(&d.address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    match d.kind {
        DependencyKind::Tcp => Ok(()),
        DependencyKind::Http => {
            let host = d.address.rsplit_once(':').map_or(&*d.address, |(h, _)| h);
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
pub(crate) async fn get_status(
    s: &mut TcpStream,
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
async fn read_some(s: &mut TcpStream, min: usize) -> Result<Vec<u8>, String> {
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
