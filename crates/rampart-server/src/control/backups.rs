//! `[[backups]]` at run time: each entry runs on its cron schedule (UTC) on a blocking
//! thread, never two at once for one database (an occurrence that finds its database busy
//! is skipped and audited), and in a fleet only on the instance that takes the shared
//! lock for that occurrence. Results go to [`Process`] (`/health`, metrics) and the audit
//! log (`backup.succeeded`, `backup.failed`, `backup.skipped`).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rampart_config::backups::Backup;
use tokio_util::sync::CancellationToken;

use super::live::Live;
use crate::observe::audit;
use crate::observe::process::{BackupStatus, Process};

fn now_unix() -> i64 {
    i64::try_from(crate::state::persist::unix_ms() / 1000).unwrap_or(i64::MAX)
}

fn statuses(p: &Process) -> std::sync::MutexGuard<'_, BTreeMap<String, BackupStatus>> {
    p.backups
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The database a backup names, without its password: what "one at a time" is keyed by.
fn identity(b: &Backup) -> String {
    rampart_backup::db::Database::parse(&b.database)
        .map(|d| d.redacted())
        .unwrap_or_else(|_| b.name.clone())
}

/// Runs every entry of the current config on its schedule until `stop`; `wake` (a reload)
/// recomputes the schedule.
pub async fn run(live: Weak<Live>, wake: Arc<tokio::sync::Notify>, stop: CancellationToken) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let Some(l) = live.upgrade() else { return };
        let edge = l.edge();
        let now = now_unix();
        // Every entry's next run (kept across reloads while its schedule is the same).
        let mut next_due: Option<i64> = None;
        {
            let mut st = statuses(&l.process);
            st.retain(|name, _| edge.config.backups.iter().any(|b| &b.name == name));
            for b in &edge.config.backups {
                let s = st.entry(b.name.clone()).or_default();
                let next = match s.next_run {
                    Some(t) if b.schedule.next_after(t - 1) == Some(t) => t,
                    _ => b.schedule.next_after(now).unwrap_or(i64::MAX),
                };
                s.next_run = Some(next);
                next_due = Some(next_due.map_or(next, |d: i64| d.min(next)));
            }
        }
        drop(l);
        let wait = next_due.map_or(Duration::from_secs(3600), |t| {
            Duration::from_secs(u64::try_from(t - now).unwrap_or(0))
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => continue,
            () = stop.cancelled() => return,
        }
        let Some(l) = live.upgrade() else { return };
        let edge = l.edge();
        let now = now_unix();
        for b in edge.config.backups.clone() {
            let due = {
                let mut st = statuses(&l.process);
                let s = st.entry(b.name.clone()).or_default();
                match s.next_run {
                    Some(t) if t <= now => {
                        s.next_run = b.schedule.next_after(now);
                        Some(t)
                    }
                    _ => None,
                }
            };
            let Some(occurrence) = due else { continue };
            let id = identity(&b);
            let fresh = busy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id.clone());
            if !fresh {
                statuses(&l.process)
                    .entry(b.name.clone())
                    .or_default()
                    .skipped += 1;
                audit::system(
                    &*edge,
                    "backup.skipped",
                    "warning",
                    &format!(
                        "backup {}: the previous backup of this database is still running",
                        b.name
                    ),
                );
                continue;
            }
            let (live, busy) = (live.clone(), busy.clone());
            tokio::spawn(async move {
                one(live, b, occurrence).await;
                busy.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
            });
        }
    }
}

/// One run of `b` for the occurrence at `at`.
async fn one(live: Weak<Live>, b: Backup, at: i64) {
    let Some(l) = live.upgrade() else { return };
    let edge = l.edge();
    // A fleet backs each occurrence up once: the instance that takes its lock.
    let fleet = edge.policies.shared().cloned();
    let lock = fleet
        .as_ref()
        .map(|f| f.key(&format!("backup:{}:{at}", b.name)));
    if let (Some(f), Some(key)) = (&fleet, &lock) {
        match f.set_nx(key, &f.id, Duration::from_secs(6 * 3600)).await {
            Ok(true) => {}
            Ok(false) => return,
            // The shared state is down: back up here rather than not at all.
            Err(e) => {
                tracing::warn!(backup = %b.name, error = %e, "backup lock: shared state unreachable; backing up here")
            }
        }
    }
    {
        let mut st = statuses(&l.process);
        let s = st.entry(b.name.clone()).or_default();
        s.running = true;
        s.last_attempt = Some(now_unix());
    }
    drop(l);
    let job = b.clone();
    let result = tokio::task::spawn_blocking(move || backup(&job))
        .await
        .unwrap_or_else(|e| Err(format!("the backup task failed: {e}")));
    let Some(l) = live.upgrade() else { return };
    let edge = l.edge();
    {
        let mut st = statuses(&l.process);
        let s = st.entry(b.name.clone()).or_default();
        s.running = false;
        match &result {
            Ok(o) => {
                s.last_success = s.last_attempt;
                s.last_file = Some(o.path.display().to_string());
                s.last_size = o.manifest.size;
                s.last_duration = Duration::from_millis(o.manifest.duration_ms);
                s.last_error = None;
            }
            Err(e) => {
                s.failures += 1;
                s.last_error = Some(e.clone());
            }
        }
    }
    match result {
        Ok(o) => {
            let m = &o.manifest;
            audit::system(
                &*edge,
                "backup.succeeded",
                "info",
                &format!(
                    "backup {}: {} ({} bytes, {} tables, {} ms){}",
                    b.name,
                    o.path.display(),
                    m.size,
                    m.tables.len(),
                    m.duration_ms,
                    if o.deleted.is_empty() {
                        String::new()
                    } else {
                        format!("; retention deleted {}", o.deleted.len())
                    }
                ),
            );
            tracing::info!(backup = %b.name, file = %o.path.display(), bytes = m.size, "backup done");
        }
        Err(e) => {
            audit::system(
                &*edge,
                "backup.failed",
                "high",
                &format!("backup {}: {e}", b.name),
            );
            tracing::error!(backup = %b.name, error = %e, "backup failed");
        }
    }
    // The lock stays until it expires: this occurrence is done (or failed, and audited)
    // on this instance, and no other instance repeats it; the next occurrence retries.
}

/// The backup itself, with an optional verify into a scratch database.
fn backup(b: &Backup) -> Result<rampart_backup::Outcome, String> {
    let key = b
        .key
        .as_deref()
        .map(|k| rampart_backup::crypt::Key::from_bytes(k.as_bytes()))
        .transpose()
        .map_err(|e| format!("backups.key: {e}"))?;
    let o = rampart_backup::RunOptions {
        database: rampart_backup::db::Database::parse(&b.database)?,
        dir: b.dir.clone(),
        key: key.clone(),
        level: b.level,
        keep_age: b.keep,
        keep_count: b.keep_count,
        copy_to: b.copy_to.clone(),
    };
    let out = rampart_backup::run(&o, &mut |_| {})?;
    if let Some(scratch) = &b.verify_scratch {
        let server = rampart_backup::db::Database::parse(scratch)?;
        let v = rampart_backup::verify(&out.path, key.as_ref(), Some(&server))?;
        if !v.problems.is_empty() {
            return Err(format!(
                "{} was written but does not restore as recorded: {}",
                out.path.display(),
                v.problems.join("; ")
            ));
        }
    }
    Ok(out)
}
