//! The OCSP refresh task: for every served certificate that names an OCSP responder, asks
//! it over HTTP (RFC 6960 POST), checks the answer (edge::ocsp::check) and staples it,
//! then asks again halfway to its nextUpdate. A response is cached under
//! `state_dir/ocsp/` so a restart staples at once without asking. A failure keeps the
//! current staple while it is fresh and is retried after a minute, doubling up to an hour;
//! a revoked or unknown answer is never stapled and is an audit event (`tls.ocsp.revoked`,
//! critical; `tls.ocsp.unknown`, `tls.ocsp.failed`, warnings) and a `/health` error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::live::Live;
use crate::edge::ocsp::{check, Plan, Stapler, Status, Target, Verdict};
use crate::observe::audit;

/// A response larger than this is refused (real ones are 1–3 KiB).
const MAX_RESPONSE: usize = 64 * 1024;
/// Connect, send and read, all together.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: u64 = 60;
const MAX_BACKOFF: u64 = 3_600;
/// A revoked or unknown certificate is asked again after this.
const RECHECK: u64 = 3_600;
/// Never asked again sooner than this after a good answer.
const MIN_REFRESH: u64 = 10;

fn unix_now() -> u64 {
    crate::state::persist::unix_ms() / 1000
}

/// When to ask again after a good answer: halfway from thisUpdate to nextUpdate.
pub fn refresh_at(this_update: u64, next_update: u64, now: u64) -> u64 {
    let half = this_update + next_update.saturating_sub(this_update) / 2;
    half.max(now + MIN_REFRESH)
}

/// Seconds to wait after `failures` failures in a row.
pub fn backoff(failures: u32) -> u64 {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

/// Runs until `stop`: visits every served certificate when one is due (or `wake` fires,
/// after a reload), at least once a minute.
pub async fn run(live: Weak<Live>, wake: Arc<tokio::sync::Notify>, stop: CancellationToken) {
    loop {
        let Some(l) = live.upgrade() else { return };
        let edge = l.edge();
        let enabled = edge.config.tls.as_ref().is_some_and(|t| t.ocsp_stapling);
        let mut staplers: Vec<Arc<Stapler>> = Vec::new();
        if enabled {
            for c in edge.certificates_now() {
                if !staplers.iter().any(|s| Arc::ptr_eq(s, &c.ocsp)) {
                    staplers.push(c.ocsp);
                }
            }
        }
        drop(l);
        let mut next = unix_now() + 60;
        for s in &staplers {
            let Plan::Ask(target) = &s.plan else { continue };
            if s.status().next_attempt <= unix_now() {
                let cache = cache_path(&edge.config.server.state_dir, s);
                visit(s, target, &cache, &live, &edge).await;
            }
            next = next.min(s.status().next_attempt);
        }
        drop(edge);
        let wait = Duration::from_secs(next.saturating_sub(unix_now()).clamp(1, 60));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn visit(
    s: &Stapler,
    target: &Target,
    cache: &Path,
    live: &Weak<Live>,
    edge: &crate::edge::Edge,
) {
    let before = s.status();
    let now = unix_now();
    // First visit: a cached response still fresh is stapled at once.
    if before.last_attempt == 0 {
        if let Ok(der) = std::fs::read(cache) {
            if let Ok(Verdict::Good {
                this_update,
                next_update,
            }) = check(&der, target, now)
            {
                s.install(der, this_update, next_update);
                s.set_status(Status {
                    state: "good",
                    message: format!("stapled from the cache; nextUpdate {next_update}"),
                    last_attempt: now,
                    next_attempt: refresh_at(this_update, next_update, now),
                    failures: 0,
                });
                return;
            }
        }
    }
    let answer = fetch(&target.url, &target.request)
        .await
        .and_then(|der| check(&der, target, unix_now()).map(|v| (der, v)));
    let now = unix_now();
    let report = |event: &'static str, severity: &'static str, what: &str| {
        if let Some(l) = live.upgrade() {
            audit::system(&*l.edge(), event, severity, what);
        } else {
            audit::system(edge, event, severity, what);
        }
    };
    let names = s
        .base
        .end_entity_cert()
        .ok()
        .and_then(|c| crate::edge::cert::cert_info(c).ok())
        .map(|(n, _)| n.join(", "))
        .unwrap_or_default();
    let status = match answer {
        Ok((
            der,
            Verdict::Good {
                this_update,
                next_update,
            },
        )) => {
            if let Err(e) = crate::state::persist::write_atomic(cache, &der) {
                tracing::warn!(file = %cache.display(), error = %e, "cannot cache the OCSP response");
            }
            s.install(der, this_update, next_update);
            if before.state != "good" && before.state != "pending" {
                tracing::info!(names, "OCSP status good again; stapling");
            }
            Status {
                state: "good",
                message: format!("good; thisUpdate {this_update}, nextUpdate {next_update}"),
                last_attempt: now,
                next_attempt: refresh_at(this_update, next_update, now),
                failures: 0,
            }
        }
        Ok((_, bad)) => {
            // Revoked or unknown: never stapled, reported once per change.
            s.clear();
            let _ = std::fs::remove_file(cache);
            let (state, event, severity, what) = match bad {
                Verdict::Revoked { at, reason } => (
                    "revoked",
                    "tls.ocsp.revoked",
                    "critical",
                    format!(
                        "certificate for {names} is REVOKED (at {at}{}) according to {}; not stapling",
                        reason.map(|r| format!(", reason {r}")).unwrap_or_default(),
                        target.url
                    ),
                ),
                _ => (
                    "unknown",
                    "tls.ocsp.unknown",
                    "warning",
                    format!(
                        "{} does not know the certificate for {names}; not stapling",
                        target.url
                    ),
                ),
            };
            if before.state != state {
                report(event, severity, &what);
                tracing::error!(names, responder = %target.url, status = state, "OCSP: not stapling");
            }
            Status {
                state,
                message: what,
                last_attempt: now,
                next_attempt: now + RECHECK,
                failures: 0,
            }
        }
        Err(e) => {
            let failures = before.failures + 1;
            let staple = s.staple.load_full().filter(|st| st.next_update > now);
            let mut wait = backoff(failures);
            if let Some(st) = &staple {
                // Try again before the current staple runs out.
                wait = wait.min(st.next_update.saturating_sub(now).max(FIRST_BACKOFF) / 2);
            }
            let what = format!(
                "OCSP for {names} from {} failed: {e}; {}",
                target.url,
                match &staple {
                    Some(st) =>
                        format!("still stapling the response valid until {}", st.next_update),
                    None => "nothing stapled".to_owned(),
                }
            );
            if failures == 1 {
                report("tls.ocsp.failed", "warning", &what);
            }
            tracing::warn!(names, responder = %target.url, error = %e, failures, "OCSP refresh failed");
            Status {
                state: if staple.is_some() { "good" } else { "error" },
                message: what,
                last_attempt: now,
                next_attempt: now + wait.max(1),
                failures,
            }
        }
    };
    s.set_status(status);
}

/// POSTs `request` to `url` (`http://host[:port]/path`) and returns the body of a 200.
async fn fetch(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// responders are asked"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let work = async {
        let stream = TcpStream::connect(&host_port)
            .await
            .map_err(|e| format!("cannot connect to {host_port}: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/ocsp-request")
            .header(http::header::ACCEPT, "application/ocsp-response")
            .header(http::header::CONNECTION, "close")
            .body(http_body_util::Full::new(Bytes::copy_from_slice(request)))
            .map_err(|e| format!("bad request: {e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("the responder answered HTTP {}", resp.status()));
        }
        let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

/// The cache file of a stapler.
pub fn cache_path(state_dir: &Path, s: &Stapler) -> PathBuf {
    state_dir.join("ocsp").join(format!("{}.der", s.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_halfway_and_never_immediate() {
        assert_eq!(
            refresh_at(1_000, 1_000 + 7 * 86_400, 1_000),
            1_000 + 302_400
        );
        assert_eq!(refresh_at(1_000, 1_060, 1_050), 1_060);
        assert_eq!(refresh_at(1_000, 900, 1_000), 1_010);
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(6), 1_920);
        assert_eq!(backoff(7), 3_600);
        assert_eq!(backoff(40), 3_600);
    }
}
