//! `[license]` at run time: the token verified with the vendor's key, judged at the later
//! of the clock and the highest time this installation has seen (the anchor, sealed in
//! the state file and moved forward by every check), so a clock set back never revives
//! an expired license. A missing state file where an installation id exists (or the
//! reverse), an edited one or another installation's is tampering, not a fresh start.
//!
//! Checked before the listeners are bound (with `on_expired = "refuse"` a blocked license
//! refuses the start), before a reload is swapped in, every `interval` and at each
//! boundary (30 and 7 days before expiry, expiry, the end of grace). Each result is kept
//! in [`Process`] for `/health`, the metrics, the notice and `requires_feature`; changes
//! are audited (`license.expiring`, `license.grace`, `license.expired`, `license.invalid`,
//! `license.tampered`, `license.clock_rollback`, `license.valid`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rampart_config::license::{License as Config, OnExpired};
use rampart_trust::license::{self, Anchor, AnchorError, Expect, Standing};

use crate::observe::audit;
use crate::observe::process::{LicenseState, LicenseStatus, Process};
use crate::state::persist::write_atomic;
use crate::state::Fleet;

/// A clock this far behind the anchor is only skew (NTP steps, VM migration).
const SKEW: i64 = 300;

fn now_unix() -> i64 {
    i64::try_from(crate::state::persist::unix_ms() / 1000).unwrap_or(i64::MAX)
}

/// Checks the license at the clock's time, moving the anchor forward.
pub fn check(cfg: &Config, state_dir: &Path) -> LicenseStatus {
    check_at(cfg, state_dir, now_unix())
}

fn check_at(cfg: &Config, state_dir: &Path, now: i64) -> LicenseStatus {
    let grace = i64::try_from(cfg.grace.as_secs()).unwrap_or(i64::MAX);
    let mut st = LicenseStatus {
        state: LicenseState::Invalid,
        license: None,
        message: String::new(),
        checked_at: now,
        judged_at: now,
        clock_behind: 0,
        installation_id: None,
        grace,
        instances: None,
    };
    let expect = Expect {
        algorithm: cfg.algorithm.as_deref(),
        issuer: cfg.issuer.as_deref(),
        audience: cfg.audience.as_deref(),
    };
    let lic = match license::verify(&cfg.token, cfg.public_key.as_bytes(), &expect) {
        Ok(l) => l,
        Err(e) => {
            st.message = e;
            return st;
        }
    };
    let (state_path, id_path) = cfg.paths(state_dir);
    let anchor = match anchor(
        &state_path,
        &id_path,
        now.max(lic.issued_at.unwrap_or(0)),
        &lic,
    ) {
        Ok(a) => a,
        Err((state, why)) => {
            st.state = state;
            st.message = why;
            st.license = Some(lic);
            return st;
        }
    };
    st.installation_id = Some(anchor.installation_id.clone());
    let judged = now
        .max(anchor.highest_seen)
        .max(lic.issued_at.unwrap_or(i64::MIN));
    st.judged_at = judged;
    if judged - now > SKEW {
        st.clock_behind = judged - now;
    }
    let key = lic.key();
    if let Err(e) = write_atomic(&state_path, anchor.advanced(judged, &key).to_bytes()) {
        st.message = format!(
            "cannot keep the license state in {}: {e}",
            state_path.display()
        );
        st.license = Some(lic);
        return st;
    }
    if let Some(bound) = &lic.installation_id {
        if st.installation_id.as_deref() != Some(bound.as_str()) {
            st.message = format!(
                "issued for installation {bound:?}; this is {:?} ({})",
                st.installation_id.as_deref().unwrap_or(""),
                id_path.display()
            );
            st.license = Some(lic);
            return st;
        }
    }
    let days = lic.days_left(judged);
    st.state = match lic.standing(judged, grace) {
        Standing::NotYetValid => LicenseState::NotYetValid,
        Standing::Valid if days < 30 => LicenseState::Expiring,
        Standing::Valid => LicenseState::Valid,
        Standing::Grace => LicenseState::Grace,
        Standing::Expired => LicenseState::Expired,
    };
    st.message = match st.state {
        LicenseState::Expiring => format!("expires in {days} days"),
        LicenseState::Grace => format!(
            "expired {} days ago; served for the grace period, until {}",
            -days,
            rampart_config::civil::rfc3339(lic.expires_at.saturating_add(grace))
        ),
        LicenseState::Expired => format!(
            "expired on {}",
            rampart_config::civil::rfc3339(lic.expires_at)
        ),
        LicenseState::NotYetValid => format!(
            "not valid before {}",
            rampart_config::civil::rfc3339(lic.not_before.unwrap_or(0))
        ),
        _ => String::new(),
    };
    if st.clock_behind > 0 {
        let note = format!(
            "the clock is {}s behind the latest time this installation has seen; judged at that time",
            st.clock_behind
        );
        st.message = if st.message.is_empty() {
            note
        } else {
            format!("{}; {note}", st.message)
        };
    }
    st.license = Some(lic);
    st
}

/// The anchor of this installation, or why it cannot be believed. A first start (neither
/// file exists) makes both.
fn anchor(
    state_path: &Path,
    id_path: &Path,
    now: i64,
    lic: &license::License,
) -> Result<Anchor, (LicenseState, String)> {
    match license::read_anchor(state_path, id_path) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => {
            let id = license::new_installation_id();
            write_atomic(id_path, format!("{id}\n")).map_err(|e| {
                (
                    LicenseState::Invalid,
                    format!("cannot write {}: {e}", id_path.display()),
                )
            })?;
            tracing::info!(installation_id = %id, file = %id_path.display(), "new installation");
            Ok(Anchor::new(&id, now, &lic.key()))
        }
        Err(AnchorError::Tampered(why)) => Err((LicenseState::Tampered, why)),
        Err(AnchorError::Unreadable(why)) => Err((LicenseState::Invalid, why)),
    }
}

/// Whether this check refuses a start or reload (`on_expired = "refuse"` and a license
/// that blocks); the reason when it does.
pub fn refuses(cfg: &Config, st: &LicenseStatus) -> Option<String> {
    (cfg.on_expired == OnExpired::Refuse && st.state.blocks())
        .then(|| format!("license: {} ({})", st.message, st.state.name()))
}

/// The warning level a status is at: audited again when it worsens.
fn level(st: &LicenseStatus) -> u8 {
    match st.state {
        LicenseState::Valid => 0,
        LicenseState::Expiring if st.days_left().unwrap_or(0) >= 7 => 1,
        LicenseState::Expiring => 2,
        LicenseState::Grace => 3,
        _ => 4,
    }
}

/// Records `st`, auditing what changed through `edge`.
pub fn record(process: &Process, edge: &crate::edge::Edge, st: LicenseStatus) {
    let before = process.license.load_full();
    let (state, msg) = (st.state, st.message.clone());
    let who = st
        .license
        .as_ref()
        .map(|l| format!("license for {}", l.customer))
        .unwrap_or_else(|| "license".into());
    let reason = format!("{who}: {} ({msg})", state.name());
    let changed = before
        .as_deref()
        .is_none_or(|b| b.state != state || level(b) < level(&st));
    if changed {
        let event = match state {
            LicenseState::Valid => before
                .as_deref()
                .is_some_and(|b| b.state != LicenseState::Valid)
                .then_some(("license.valid", "info")),
            LicenseState::Expiring => Some((
                "license.expiring",
                if level(&st) == 2 { "high" } else { "warning" },
            )),
            LicenseState::Grace => Some(("license.grace", "critical")),
            LicenseState::Expired | LicenseState::NotYetValid => {
                Some(("license.expired", "critical"))
            }
            LicenseState::Invalid => Some(("license.invalid", "critical")),
            LicenseState::Tampered => Some(("license.tampered", "critical")),
            LicenseState::InstanceLimit => Some(("license.instance_limit", "critical")),
        };
        if let Some((event, severity)) = event {
            audit::system(edge, event, severity, &reason);
        }
    }
    if changed {
        match state {
            LicenseState::Valid => tracing::info!(reason = %reason, "license"),
            LicenseState::Expiring => tracing::warn!(reason = %reason, "license"),
            _ => tracing::error!(reason = %reason, "license"),
        }
    }
    if st.clock_behind > 0 && before.as_deref().is_none_or(|b| b.clock_behind == 0) {
        audit::system(
            edge,
            "license.clock_rollback",
            "critical",
            &format!(
                "the clock is {}s behind the latest time this installation has seen; the license is judged at that time",
                st.clock_behind
            ),
        );
    }
    process
        .license_blocked
        .store(state.blocks(), Ordering::Relaxed);
    process.license.store(Some(Arc::new(st)));
}

/// Seconds until the next time the standing can change (30 and 7 days before expiry,
/// expiry, the end of grace), at most `interval`.
pub(crate) fn next_wake(st: &LicenseStatus, interval: Duration) -> Duration {
    let Some(l) = &st.license else {
        return interval;
    };
    let day = 86_400;
    let next = [
        l.expires_at - 30 * day,
        l.expires_at - 7 * day,
        l.expires_at,
        l.expires_at.saturating_add(st.grace),
    ]
    .into_iter()
    .chain(l.not_before)
    .filter(|t| *t >= st.judged_at)
    .min();
    match next {
        Some(t) => interval.min(Duration::from_secs(
            u64::try_from(t - st.judged_at).unwrap_or(0) + 1,
        )),
        None => interval,
    }
}

/// A seat's heartbeat period; a seat not renewed for three of them is free again.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);

/// The fleet and key a seat is held in: a license with `max_instances` and a shared
/// state.
pub(crate) fn seating(
    edge: &crate::edge::Edge,
    st: &LicenseStatus,
) -> Option<(Arc<Fleet>, String, u64)> {
    let l = st.license.as_ref()?;
    let max = l.max_instances?;
    let fleet = edge.policies.shared()?.clone();
    let key = fleet.key(&format!("license:{}:seats", l.key()));
    Some((fleet, key, max))
}

/// Takes or keeps this instance's seat: over the license's `max_instances`, the
/// instance serves the notice (others keep theirs). Shared state unreachable: the status
/// is kept as it was (one instance never blocks for the fleet's Redis).
pub(crate) async fn seat(edge: &crate::edge::Edge, mut st: LicenseStatus) -> LicenseStatus {
    let blocked_by_seat = st.state == LicenseState::InstanceLimit;
    if st.state.blocks() && !blocked_by_seat {
        return st;
    }
    let Some((fleet, key, max)) = seating(edge, &st) else {
        return st;
    };
    // At start the shared state connects in the background.
    fleet.wait_shared(Duration::from_secs(2)).await;
    match fleet.seat(&key, HEARTBEAT * 3, max).await {
        Ok((true, n)) => {
            st.instances = Some(n);
            if blocked_by_seat {
                st.state = LicenseState::Valid;
                st.message = format!("a seat is free again ({n} of {max} instances)");
            }
        }
        Ok((false, n)) => {
            st.instances = Some(n);
            st.state = LicenseState::InstanceLimit;
            st.message = format!(
                "the license allows {max} instance{} and {n} already serve{}",
                if max == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" }
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "license seat: shared state unreachable; kept as it was")
        }
    }
    st
}
