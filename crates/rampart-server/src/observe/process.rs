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
}

impl Default for Process {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            reloads: ReloadStats::default(),
            started: Instant::now(),
            conns: Arc::default(),
        }
    }
}

impl Process {
    /// How long the process has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the edge is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
