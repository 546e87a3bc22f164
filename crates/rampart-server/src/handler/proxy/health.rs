//! Active health checks: per server of a pool with `health_check`, a `GET path` every
//! `interval` (the first at once), each within `timeout`. `fall` consecutive failures take
//! the server out of balancing; `rise` consecutive passes bring it back. Combined with
//! passive health (failures of real requests): a server is used only when neither has it
//! out. The checker of a pool lives as long as the pool (a reload that keeps the pool
//! keeps its checker and state).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rampart_config::ops::HealthCheck;
use tokio_util::sync::CancellationToken;

use crate::handler::proxy::{Pool, Server};

/// Told of each transition (`upstream.up` / `upstream.down`, and why), to audit it.
pub type Report = Arc<dyn Fn(&'static str, &str) + Send + Sync>;

/// Starts the checkers of `pool` (nothing when it has no `health_check`).
pub(crate) fn spawn(pool: &Arc<Pool>, token: &CancellationToken, report: Report) {
    let Some(check) = pool.config.health_check.clone() else {
        return;
    };
    for (i, server) in pool.servers().iter().enumerate() {
        let weak_pool = Arc::downgrade(pool);
        let server = Arc::downgrade(server);
        let check = check.clone();
        let token = token.clone();
        let report = report.clone();
        tokio::spawn(async move {
            // Spread the servers' checks over the interval.
            let offset = check.interval / 8 * u32::try_from(i % 8).unwrap_or(0);
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(check.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut passes, mut fails) = (0u32, 0u32);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = token.cancelled() => return,
                }
                let (Some(pool), Some(server)) = (weak_pool.upgrade(), server.upgrade()) else {
                    return;
                };
                let result = check_once(&pool, &server, &check).await;
                match result {
                    Ok(()) => {
                        passes += 1;
                        fails = 0;
                        if server.check_failed() && passes >= check.rise {
                            server.check_down.store(false, Ordering::Relaxed);
                            transition(
                                &*report,
                                &pool,
                                &server,
                                "upstream.up",
                                "health check passing",
                            );
                        }
                    }
                    Err(why) => {
                        fails += 1;
                        passes = 0;
                        if !server.check_failed() && fails >= check.fall {
                            server.check_down.store(true, Ordering::Relaxed);
                            transition(&*report, &pool, &server, "upstream.down", &why);
                        }
                    }
                }
            }
        });
    }
}

fn transition(
    report: &(dyn Fn(&'static str, &str) + Send + Sync),
    pool: &Pool,
    server: &Server,
    event: &'static str,
    why: &str,
) {
    let reason = format!("{} {}: {why}", pool.name, server.authority);
    if event == "upstream.down" {
        tracing::warn!(upstream = %pool.name, server = %server.authority, reason = why, "upstream server failed its health check");
    } else {
        tracing::info!(upstream = %pool.name, server = %server.authority, "upstream server passes its health check again");
    }
    report(event, &reason);
}

/// One check: connect (and the TLS handshake of a TLS pool, its certificate verified as
/// for requests), `GET path` (or the gRPC health call), status within `timeout`.
async fn check_once(pool: &Pool, server: &Server, check: &HealthCheck) -> Result<(), String> {
    if let Some(service) = &check.grpc_service {
        return match tokio::time::timeout(check.timeout, grpc_check(pool, server, service)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", check.timeout)),
        };
    }
    let run = async {
        let s = pool
            .tcp(server)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let host = check.host.as_deref().unwrap_or(&server.authority);
        let agent = "rampart-health-check";
        let status = match &pool.tls {
            Some(tls) => {
                let done = tls.connect(s, &server.authority, true).await;
                if let Ok(mut seen) = server.tls_seen.lock() {
                    let pool_alpn =
                        pool.config.protocol == rampart_config::runtime::UpstreamProtocol::Http1;
                    seen.record(&done, pool_alpn);
                }
                let mut s = done.map_err(|e| {
                    super::tls::verify_failure(&e).unwrap_or_else(|| format!("TLS: {e}"))
                })?;
                crate::observe::deps::get_status(&mut s, host, &check.path, agent).await?
            }
            None => {
                let mut s = s;
                crate::observe::deps::get_status(&mut s, host, &check.path, agent).await?
            }
        };
        let ok = match check.status {
            Some(want) => status == want,
            None => (200..300).contains(&status),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(check.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

/// The gRPC health protocol's `grpc.health.v1.Health/Check` for `service`, over HTTP/2 on a
/// fresh connection: passes when the answer is `SERVING`.
async fn grpc_check(pool: &Pool, server: &Server, service: &str) -> Result<(), String> {
    use http_body_util::BodyExt as _;
    let tcp = pool
        .tcp(server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let client = match &pool.tls {
        Some(tls) => {
            let done = tls.connect(tcp, &server.authority, false).await;
            if let Ok(mut seen) = server.tls_seen.lock() {
                seen.record(&done, true);
            }
            let s = done.map_err(|e| {
                super::tls::verify_failure(&e).unwrap_or_else(|| format!("TLS: {e}"))
            })?;
            super::h2conn::Client::handshake(s)
        }
        None => super::h2conn::Client::handshake(tcp),
    };
    let scheme = if pool.tls.is_some() { "https" } else { "http" };
    let req = http::Request::post(format!(
        "{scheme}://{}/grpc.health.v1.Health/Check",
        server.authority
    ))
    .version(http::Version::HTTP_2)
    .header(http::header::CONTENT_TYPE, "application/grpc")
    .header(http::header::TE, "trailers")
    .header(http::header::USER_AGENT, "rampart-health-check")
    .body(crate::wire::body::Body::full(health_request(service)))
    .map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| format!("HTTP/2: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let head_status = resp.headers().get("grpc-status").cloned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("HTTP/2: {e}"))?;
    let status =
        head_status.or_else(|| body.trailers().and_then(|t| t.get("grpc-status").cloned()));
    match status.as_ref().map(http::HeaderValue::as_bytes) {
        Some(b"0") => {}
        Some(s) => return Err(format!("grpc-status {}", String::from_utf8_lossy(s))),
        None => return Err("no grpc-status".into()),
    }
    match serving_status(&body.to_bytes()) {
        Some(1) => Ok(()),
        Some(2) => Err("NOT_SERVING".into()),
        Some(3) => Err("SERVICE_UNKNOWN".into()),
        Some(n) => Err(format!("serving status {n}")),
        None => Err("not a HealthCheckResponse".into()),
    }
}

/// A framed `HealthCheckRequest { service }` (protobuf field 1, length-delimited; absent
/// when empty), behind gRPC's 5-byte message prefix.
fn health_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&msg);
    framed
}

/// The `status` (field 1, an enum) of one framed `HealthCheckResponse`: 0 when absent
/// (UNKNOWN), `None` when the bytes are not one uncompressed message.
fn serving_status(b: &[u8]) -> Option<u64> {
    let (&flag, rest) = b.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let mut msg = rest.get(4..4 + len)?;
    if flag != 0 || rest.len() != 4 + len {
        return None;
    }
    let mut status = 0;
    while let Some((&tag, r)) = msg.split_first() {
        let (value, used) = varint(r)?;
        match tag {
            0x08 => status = value,
            // Only varint fields are expected; anything else is not this message.
            t if t & 7 == 0 => {}
            _ => return None,
        }
        msg = &r[used..];
    }
    Some(status)
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_are_framed_and_read() {
        assert_eq!(health_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(health_request("ab"), [0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']);
        let long = "s".repeat(200);
        assert_eq!(&health_request(&long)[5..8], &[0x0a, 0xc8, 0x01]);
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(serving_status(&[0, 0, 0, 0, 3, 0x08, 1]), None);
        assert_eq!(serving_status(&[1, 0, 0, 0, 2, 0x08, 1]), None);
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x0a, 1]), None);
    }
}
