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
