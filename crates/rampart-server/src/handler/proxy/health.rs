//! Active health checks: per server of a pool with `health_check`, a `GET path` every
//! `interval` (the first at once), each within `timeout`. `fall` consecutive failures take
//! the server out of balancing; `rise` consecutive passes bring it back. Combined with
//! passive health (failures of real requests): a server is used only when neither has it
//! out. The checker of a pool lives as long as the pool (a reload that keeps the pool
//! keeps its checker and state).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rampart_config::ops::HealthCheck;
use tokio::net::TcpStream;
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
                let result = check_once(&server, &check).await;
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

/// One check: connect, `GET path`, status line within `timeout`.
async fn check_once(server: &Server, check: &HealthCheck) -> Result<(), String> {
    let run = async {
        let mut s = TcpStream::connect(&server.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let host = check.host.as_deref().unwrap_or(&server.authority);
        let status =
            crate::observe::deps::get_status(&mut s, host, &check.path, "rampart-health-check")
                .await?;
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
