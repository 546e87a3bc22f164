//! Process-wide facts that outlive any one config: whether the edge is draining, reload
//! counts, when it started, and every open connection. One [`Process`] is made with the
//! first edge and handed on by each reload (like the metric families), so the status
//! endpoints read it from the edge they run on; no layer needs a pointer back up to the
//! live state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::wire::activity::Registry;

/// Reload bookkeeping, for metrics and `/health`.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Successful reloads.
    pub ok: AtomicU64,
    /// Refused reloads (bad config, unbindable listener).
    pub failed: AtomicU64,
    /// Unix time of the last successful load (the start counts).
    pub last_success: AtomicU64,
}

impl ReloadStats {
    /// Records a successful reload now.
    pub fn reloaded(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.stamp();
    }

    /// Records now as the time of the last successful load (the start counts).
    pub fn stamp(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_success.store(now, Ordering::Relaxed);
    }
}

/// The process's state.
#[derive(Debug)]
pub struct Process {
    /// Set while draining: `/ready` answers 503.
    pub draining: AtomicBool,
    /// Reload counts.
    pub reloads: ReloadStats,
    /// When the process started serving.
    pub started: Instant,
    /// Every open client connection.
    pub conns: Arc<Registry>,
    /// The last `[integrity]` check (`None`: not configured or not run yet).
    pub integrity: std::sync::Mutex<Option<Arc<IntegrityResult>>>,
    /// The last `[license]` check (`None`: not configured).
    pub license: arc_swap::ArcSwapOption<LicenseStatus>,
    /// Set while the license is expired, invalid or tampered with: every request but the
    /// health endpoints and ACME gets the notice. One relaxed load per request.
    pub license_blocked: AtomicBool,
    /// Each `[[backups]]` entry's runs, by name.
    pub backups: std::sync::Mutex<std::collections::BTreeMap<String, BackupStatus>>,
}

/// What `/health` and the metrics say about one `[[backups]]` entry.
#[derive(Debug, Clone, Default)]
pub struct BackupStatus {
    /// The next scheduled run (Unix seconds).
    pub next_run: Option<i64>,
    /// Running now.
    pub running: bool,
    /// The last attempt's start (Unix seconds).
    pub last_attempt: Option<i64>,
    /// The last success's start (Unix seconds).
    pub last_success: Option<i64>,
    /// The last success's file.
    pub last_file: Option<String>,
    /// Its size in bytes.
    pub last_size: u64,
    /// How long it took.
    pub last_duration: Duration,
    /// The last failure's message (cleared by a success).
    pub last_error: Option<String>,
    /// Failures since start.
    pub failures: u64,
    /// Occurrences skipped because a backup of the same database was still running.
    pub skipped: u64,
}

/// Where a license stands, as `/health` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseState {
    /// In its term, more than 30 days left.
    Valid,
    /// In its term, 30 days or fewer left.
    Expiring,
    /// Past its expiry, within the grace period: served, with warnings.
    Grace,
    /// Past expiry and grace.
    Expired,
    /// Before its `nbf`.
    NotYetValid,
    /// Not the vendor's, not for this installation, or unreadable.
    Invalid,
    /// The anti-rollback state was deleted, edited or belongs elsewhere.
    Tampered,
    /// Valid, but the fleet already runs `max_instances` other instances.
    InstanceLimit,
}

impl LicenseState {
    /// Its name in `/health`, logs and audit events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expiring => "expiring",
            Self::Grace => "grace",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Invalid => "invalid",
            Self::Tampered => "tampered",
            Self::InstanceLimit => "instance_limit",
        }
    }

    /// Whether the edge then serves only the notice.
    pub fn blocks(self) -> bool {
        matches!(
            self,
            Self::Expired
                | Self::NotYetValid
                | Self::Invalid
                | Self::Tampered
                | Self::InstanceLimit
        )
    }
}

/// The outcome of one `[license]` check.
#[derive(Debug, Clone)]
pub struct LicenseStatus {
    /// Where it stands.
    pub state: LicenseState,
    /// The verified license (`None` when it did not verify).
    pub license: Option<rampart_trust::license::License>,
    /// Why, when not valid (and a warning while valid, e.g. the clock set back).
    pub message: String,
    /// Unix seconds of the check.
    pub checked_at: i64,
    /// The time the license was judged at: the clock, or the highest time this
    /// installation has seen when the clock is behind it.
    pub judged_at: i64,
    /// How far the clock is behind the highest time seen (0: not behind).
    pub clock_behind: i64,
    /// This installation's id.
    pub installation_id: Option<String>,
    /// Grace after expiry, seconds.
    pub grace: i64,
    /// Instances holding a seat in the fleet (`max_instances` with a shared state).
    pub instances: Option<u64>,
}

impl LicenseStatus {
    /// Whole days left until expiry (negative once past).
    pub fn days_left(&self) -> Option<i64> {
        self.license.as_ref().map(|l| l.days_left(self.judged_at))
    }

    /// Whether `feature` is licensed now.
    pub fn grants(&self, feature: &str) -> bool {
        !self.state.blocks() && self.license.as_ref().is_some_and(|l| l.has(feature))
    }
}

impl BackupStatus {
    /// Whether `b` missed its last occurrence: one after the process started passed more
    /// than five minutes ago, and no attempt began at or after it.
    pub fn missed(&self, b: &rampart_config::backups::Backup, started: i64, now: i64) -> bool {
        b.schedule.previous(now - 300).is_some_and(|t| {
            t >= started && !self.running && self.last_attempt.is_none_or(|a| a < t)
        })
    }
}

/// The outcome of one `[integrity]` check.
#[derive(Debug, Clone, Default)]
pub struct IntegrityResult {
    /// Unix seconds when it finished.
    pub checked_at: u64,
    /// How long it took.
    pub took: Duration,
    /// Files listed in the manifest.
    pub files: usize,
    /// The algorithm that verified the signature (`None`: not signed or not verified).
    pub signed_with: Option<&'static str>,
    /// What is wrong: a bad signature or manifest, and each changed, missing and extra
    /// file (`changed: PATH (what)`, `missing: PATH`, `extra: PATH`). Empty: all good.
    pub problems: Vec<String>,
}

impl IntegrityResult {
    /// Nothing wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Default for Process {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            reloads: ReloadStats::default(),
            started: Instant::now(),
            conns: Arc::default(),
            integrity: std::sync::Mutex::new(None),
            license: arc_swap::ArcSwapOption::empty(),
            license_blocked: AtomicBool::new(false),
            backups: std::sync::Mutex::default(),
        }
    }
}

impl Process {
    /// How long the process has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The last `[integrity]` check.
    pub fn integrity(&self) -> Option<Arc<IntegrityResult>> {
        self.integrity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records an `[integrity]` check; returns the previous one.
    pub fn set_integrity(&self, r: Option<Arc<IntegrityResult>>) -> Option<Arc<IntegrityResult>> {
        std::mem::replace(
            &mut *self
                .integrity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            r,
        )
    }

    /// Whether the edge is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
