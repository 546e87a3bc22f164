//! The periodic checks of what a vendor signs, over the live config: `[integrity]`
//! re-verified every `interval` (paced by `read_rate`, on a blocking thread) and
//! `[license]` re-checked at every `interval` and boundary, with its fleet seat kept by a
//! heartbeat. What each check does is in [`super::integrity`] and [`super::license`];
//! these loops only schedule them, so those modules never need the live process.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::live::Live;
use super::{integrity, license};

/// Re-verifies every `interval` of the current config until `stop`.
pub(super) async fn integrity(live: Weak<Live>, stop: CancellationToken) {
    loop {
        let interval = live
            .upgrade()
            .and_then(|l| l.edge().config.integrity.as_ref().and_then(|i| i.interval))
            .unwrap_or(Duration::from_secs(60));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        let Some(l) = live.upgrade() else { return };
        let edge = l.edge();
        let Some(cfg) = edge.config.integrity.clone() else {
            l.process.set_integrity(None);
            continue;
        };
        if cfg.interval.is_none() {
            continue;
        }
        drop(l);
        let rate = cfg.read_rate;
        let Ok(r) = tokio::task::spawn_blocking(move || integrity::check(&cfg, Some(rate))).await
        else {
            continue;
        };
        let Some(l) = live.upgrade() else { return };
        integrity::record(&l.process, &l.edge(), r);
    }
}

/// Re-checks at every `interval` and boundary of the current config until `stop`, and
/// keeps this instance's seat in a fleet (every [`license::HEARTBEAT`], given back at stop);
/// `wake` (a reload) recomputes the next boundary.
pub(super) async fn license(
    live: Weak<Live>,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    use tokio::time::Instant;
    let mut next_check: Option<Instant> = None;
    let mut next_beat = Instant::now();
    loop {
        let Some(l) = live.upgrade() else { return };
        let edge = l.edge();
        let current = l.process.license.load_full();
        let due = *next_check.get_or_insert_with(|| {
            Instant::now()
                + match (&edge.config.license, current.as_deref()) {
                    (Some(cfg), Some(st)) => license::next_wake(st, cfg.interval),
                    (Some(cfg), None) => cfg.interval,
                    (None, _) => Duration::from_secs(60),
                }
        });
        let seated = current
            .as_deref()
            .and_then(|st| license::seating(&edge, st));
        let until = if seated.is_some() {
            due.min(next_beat)
        } else {
            due
        };
        drop((l, edge, current));
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            // A reload checked the new config itself: the next boundary and the seat are
            // worked out again.
            () = wake.notified() => {
                next_check = None;
                next_beat = Instant::now();
                continue;
            }
            () = stop.cancelled() => {
                if let Some((fleet, key, _)) = seated {
                    let _ = fleet.unseat(&key).await;
                }
                return;
            }
        }
        let Some(l) = live.upgrade() else { return };
        let edge = l.edge();
        let Some(cfg) = edge.config.license.clone() else {
            l.process.license.store(None);
            l.process.license_blocked.store(false, Ordering::Relaxed);
            next_check = None;
            continue;
        };
        let now = Instant::now();
        let st = if now >= due {
            next_check = None;
            license::check(&cfg, &edge.config.server.state_dir)
        } else {
            match l.process.license.load_full() {
                Some(st) => (*st).clone(),
                None => continue,
            }
        };
        next_beat = now + license::HEARTBEAT;
        let st = license::seat(&edge, st).await;
        license::record(&l.process, &edge, st);
    }
}
