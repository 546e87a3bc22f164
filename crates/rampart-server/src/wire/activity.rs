//! Each connection's activity record: how much it has moved (a counter the idle sweep
//! reads), its requests in flight, what the sweep asks of it (park, close, shut down), and
//! the registry of every open connection's record. Kept here, below every layer, because
//! response bodies hold an [`InflightGuard`] and the status endpoints count connections.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

pub(crate) const SIGNAL_NONE: u8 = 0;
pub(crate) const SIGNAL_PARK: u8 = 1;
pub(crate) const SIGNAL_CLOSE: u8 = 2;
pub(crate) const SIGNAL_SHUTDOWN: u8 = 3;

/// [`Activity::parked`]: serving (or between requests, not yet parked).
pub(crate) const PARKED_NO: u8 = 0;
/// Parked in its own task, which waits on the socket (a TLS connection, or one holding
/// part of a request head).
pub(crate) const PARKED_TASK: u8 = 1;
/// Parked in its own task, and free to move to the lot once quiet for `park_after`.
pub(crate) const PARKED_MOVABLE: u8 = 2;
/// In the lot: no task, only the socket and this record.
pub(crate) const PARKED_LOT: u8 = 3;

/// Every open connection's [`Activity`], for the sweeper.
#[derive(Debug, Default)]
pub struct Registry {
    conns: std::sync::Mutex<slab::Slab<Arc<Activity>>>,
}

impl Registry {
    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections parked now (only their socket held), for `/metrics`: all of them, and
    /// those in the lot (no task either).
    pub fn parked(&self) -> (usize, usize) {
        let (mut all, mut lot) = (0, 0);
        for (_, a) in self.lock().iter() {
            match a.parked.load(Ordering::Relaxed) {
                PARKED_NO => {}
                PARKED_LOT => {
                    all += 1;
                    lot += 1;
                }
                _ => all += 1,
            }
        }
        (all, lot)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, slab::Slab<Arc<Activity>>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub(crate) fn insert(self: &Arc<Self>, a: &Arc<Activity>) -> Entry {
        let key = self.lock().insert(a.clone());
        Entry(self.clone(), key)
    }
}

/// A connection's place in the [`Registry`], left when dropped.
pub(crate) struct Entry(Arc<Registry>, usize);

impl Drop for Entry {
    fn drop(&mut self) {
        self.0.lock().remove(self.1);
    }
}

/// How much a connection has moved (a counter, not a clock: cheaper on every read and
/// write), how many requests it has in flight, what the sweeper asks of it, and the state
/// the parking decision needs. The sweeper raises `signal` and then wakes the connection's
/// task.
#[derive(Debug, Default)]
pub struct Activity {
    pub(crate) ticks: AtomicU64,
    pub(crate) inflight: AtomicUsize,
    /// Requests begun on this connection.
    pub(crate) started: AtomicU64,
    /// Bytes were written and not yet flushed.
    pub(crate) unflushed: AtomicBool,
    /// An HTTP/1.1 connection (HTTP/2 ones are never parked).
    pub(crate) parkable: AtomicBool,
    /// Whether and where the connection is parked (`PARKED_*`).
    pub(crate) parked: AtomicU8,
    /// The sweeper's last view of `ticks` (plus one; 0 before its first look), and for how
    /// many sweeps it has not moved.
    pub(crate) seen: AtomicU64,
    pub(crate) quiet: AtomicU32,
    pub(crate) signal: AtomicU8,
    pub(crate) waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Activity {
    pub(crate) fn touch(&self) {
        // A plain load/store, not a locked add: HTTP/2 stream tasks may race and lose an
        // increment, which is harmless since any change marks the connection as active.
        self.ticks.store(
            self.ticks.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
    /// Records the waker of the connection's task (once, at its start).
    pub(crate) async fn register(&self) {
        std::future::poll_fn(|cx| {
            *self
                .waker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.waker().clone());
            Poll::Ready(())
        })
        .await;
    }
    /// Makes `waker` the one [`Activity::raise`] wakes (the lot's, for a connection in it).
    pub(crate) fn set_waker(&self, waker: std::task::Waker) {
        *self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(waker);
    }
    pub(crate) fn raise(&self, signal: u8) {
        // Close and shutdown are final; a park request never overwrites them.
        if signal == SIGNAL_PARK {
            let _ = self.signal.compare_exchange(
                SIGNAL_NONE,
                SIGNAL_PARK,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        } else {
            self.signal.store(signal, Ordering::Release);
        }
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(w) = waker {
            w.wake();
        }
    }
    pub(crate) fn take_park(&self) {
        let _ = self.signal.compare_exchange(
            SIGNAL_PARK,
            SIGNAL_NONE,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Counts a request (or a request body still arriving) as in flight on its connection
/// until dropped.
#[derive(Debug)]
pub struct InflightGuard(Arc<Activity>);

impl InflightGuard {
    pub(crate) fn new(a: Arc<Activity>) -> Self {
        a.inflight.fetch_add(1, Ordering::Relaxed);
        Self(a)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}
