//! What the connection layer shares across listeners: the current edge (swapped whole on
//! reload), the connection cap, the shutdown token and task tracker, and the port plain
//! HTTP redirects to. The live state above ([`crate::control::live`]) owns one and drives
//! it; connections only read it.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::edge::Edge;
use crate::wire::activity::Registry;

/// Shared by every listener and connection.
#[derive(Debug)]
pub struct Serving {
    pub(crate) edge: ArcSwap<Edge>,
    /// Cancelled at shutdown: listeners stop, connections drain.
    pub token: CancellationToken,
    /// Every connection task, for the drain.
    pub tracker: TaskTracker,
    pub(crate) limit: Arc<Semaphore>,
    /// Every open connection (the process's registry, which outlives edges).
    pub(crate) conns: Arc<Registry>,
    /// Where quiet plain connections wait without a task.
    pub(crate) lot: Arc<super::lot::Lot>,
    redirect_port: AtomicU16,
}

impl Serving {
    /// Serves `edge`, with at most `max_connections` open at once.
    pub fn new(edge: Edge, max_connections: usize) -> Self {
        Self {
            conns: edge.process.conns.clone(),
            edge: ArcSwap::from_pointee(edge),
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            limit: Arc::new(Semaphore::new(max_connections)),
            lot: Arc::new(super::lot::Lot::new()),
            redirect_port: AtomicU16::new(0),
        }
    }

    /// The current edge.
    pub fn edge(&self) -> Arc<Edge> {
        self.edge.load_full()
    }

    /// Makes `edge` current: the next request uses it, requests under way finish on theirs.
    pub fn swap(&self, edge: Arc<Edge>) {
        self.edge.store(edge);
    }

    /// The port plain-HTTP requests are redirected to, when HTTPS is served.
    pub fn redirect_port(&self) -> Option<u16> {
        match self.redirect_port.load(Ordering::Relaxed) {
            0 => None,
            p => Some(p),
        }
    }

    /// Sets (or, with 0, clears) the HTTPS redirect port.
    pub fn set_redirect_port(&self, port: u16) {
        self.redirect_port.store(port, Ordering::Relaxed);
    }
}
