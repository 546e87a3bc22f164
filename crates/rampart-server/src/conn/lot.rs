//! The lot: where plain HTTP/1.1 keep-alive connections wait once they have been quiet for
//! `server.park_after`, with no task of their own.
//!
//! A parked connection in its own task still held a task cell, its boxed connection state
//! and tokio's readiness record for the socket: ~1.45 KiB per idle connection against
//! nginx's ~0.6. In the lot a connection is its socket, registered in the lot's own epoll
//! set, and a small record (peer address, activity record, registry place, connection
//! permit): tokio's registration is given up (`into_std`), so its readiness record goes too.
//! One thread per process waits on that epoll set (a thread, not a task: tokio offers no
//! safe way to wait on an epoll descriptor of our own); a readable socket (a request, or
//! the client closing) leaves the lot and gets a task again on the runtime, served from its
//! first byte as if just accepted. The move costs four `epoll_ctl` calls, a wake of the
//! runtime and a task spawn, paid only by a connection quiet for `park_after`, never by a
//! busy one.
//!
//! The idle sweep keeps working on connections in the lot: it raises close (idle timeout)
//! or shutdown on their activity record, which wakes the lot (all records share one waker)
//! and the lot closes every connection so signalled. They are idle at a request boundary
//! with nothing buffered, so closing them loses nothing.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Wake;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::wire::activity::{Activity, Entry, PARKED_LOT, PARKED_NO, SIGNAL_NONE, SIGNAL_PARK};

/// A plain connection between tasks: what its task hands to the lot, and the lot back to a
/// new task.
pub(crate) struct Held<S> {
    pub(crate) stream: S,
    pub(crate) peer: SocketAddr,
    pub(crate) activity: Arc<Activity>,
    pub(crate) entry: Entry,
    pub(crate) permit: OwnedSemaphorePermit,
}

impl<S> Held<S> {
    /// The stream, and the rest of the record (to go with another form of the stream).
    pub(crate) fn split(self) -> (S, Held<()>) {
        let Held {
            stream,
            peer,
            activity,
            entry,
            permit,
        } = self;
        let rest = Held {
            stream: (),
            peer,
            activity,
            entry,
            permit,
        };
        (stream, rest)
    }
}

impl Held<()> {
    /// The record with `stream`.
    pub(crate) fn with<S>(self, stream: S) -> Held<S> {
        Held {
            stream,
            peer: self.peer,
            activity: self.activity,
            entry: self.entry,
            permit: self.permit,
        }
    }
}

/// The connections in the lot, and its epoll set (see the module docs).
pub struct Lot {
    slots: Mutex<slab::Slab<Held<mio::net::TcpStream>>>,
    /// Registers sockets in the epoll set from connection tasks.
    registry: Option<mio::Registry>,
    /// The epoll set itself, until the lot's thread takes it.
    poll: Mutex<Option<mio::Poll>>,
    /// The lot's thread is waiting on the set: only then may connections enter.
    running: AtomicBool,
    signal: Option<Arc<Signal>>,
}

impl std::fmt::Debug for Lot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lot")
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The token of the lot thread's own waker in the epoll set.
const WAKE: mio::Token = mio::Token(usize::MAX);

/// The one waker of every connection in the lot (the sweep raised a signal on one of
/// them), and the stop at shutdown: both wake the lot's thread.
struct Signal {
    raised: AtomicBool,
    stop: AtomicBool,
    waker: mio::Waker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // One wake per batch: an idle timeout closing thousands at once is one write.
        if !self.raised.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

impl Lot {
    /// A lot with its own epoll set; without one (the set could not be created), parked
    /// connections keep their tasks.
    pub(crate) fn new() -> Self {
        let set = mio::Poll::new().and_then(|p| {
            let r = p.registry().try_clone()?;
            let waker = mio::Waker::new(&r, WAKE)?;
            Ok((p, r, waker))
        });
        let (poll, registry, signal) = match set {
            Ok((p, r, waker)) => {
                let signal = Arc::new(Signal {
                    raised: AtomicBool::new(false),
                    stop: AtomicBool::new(false),
                    waker,
                });
                (Some(p), Some(r), Some(signal))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no epoll set for idle connections; they keep a task each");
                (None, None, None)
            }
        };
        Self {
            slots: Mutex::new(slab::Slab::new()),
            registry,
            poll: Mutex::new(poll),
            running: AtomicBool::new(false),
            signal,
        }
    }

    /// Whether connections can enter (the lot's task is running).
    pub(crate) fn is_open(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    fn slots(&self) -> MutexGuard<'_, slab::Slab<Held<mio::net::TcpStream>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes connection `key` out, if it is still in.
    fn take(&self, key: usize) -> Option<Held<mio::net::TcpStream>> {
        let mut held = self.slots().try_remove(key)?;
        if let Some(r) = &self.registry {
            let _ = r.deregister(&mut held.stream);
        }
        Some(held)
    }

    /// Closes every connection the sweep signalled (idle timeout, shutdown).
    fn close_signalled(&self) {
        self.slots().retain(|_, held| {
            let a = &held.activity;
            if a.signal.load(Ordering::Acquire) == SIGNAL_PARK {
                a.take_park();
            }
            a.signal.load(Ordering::Acquire) == SIGNAL_NONE
        });
    }
}

impl Lot {
    /// Moves `held` into the lot. It was parked at a request boundary with nothing
    /// buffered. A connection the lot cannot take comes back (`Some`), to get a task of its
    /// own again; one whose socket failed on the way is closed (`None`).
    pub(crate) fn park(&self, held: Held<TcpStream>) -> Option<Held<TcpStream>> {
        let (Some(registry), Some(signal)) = (&self.registry, &self.signal) else {
            return Some(held);
        };
        if !self.is_open() {
            return Some(held);
        }
        let (stream, rest) = held.split();
        let (peer, activity) = (rest.peer, rest.activity.clone());
        // Leaves tokio's reactor (its readiness record is freed) for the lot's epoll set.
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "a parked connection could not leave the reactor");
                return None;
            }
        };
        let mut stream = mio::net::TcpStream::from_std(std);
        activity.parked.store(PARKED_LOT, Ordering::Relaxed);
        activity.set_waker(std::task::Waker::from(signal.clone()));
        let key = {
            let mut slots = self.slots();
            let slot = slots.vacant_entry();
            // Registered under the lock: an event for this key waits for the record.
            if let Err(e) =
                registry.register(&mut stream, mio::Token(slot.key()), mio::Interest::READABLE)
            {
                drop(slots);
                tracing::debug!(%peer, error = %e, "a parked connection could not enter the lot");
                activity.parked.store(PARKED_NO, Ordering::Relaxed);
                return back(rest.with(stream));
            }
            let key = slot.key();
            slot.insert(rest.with(stream));
            key
        };
        if !self.is_open() {
            // The lot's thread ended (shutdown) while this one came in.
            drop(self.take(key));
            return None;
        }
        // A signal raised while the waker was still the old task's must not be missed.
        if activity.signal.load(Ordering::Acquire) != SIGNAL_NONE {
            Wake::wake_by_ref(signal);
        }
        None
    }
}

/// A connection out of the lot, registered with tokio's reactor again (on a runtime
/// thread); `None` (closed) when that fails.
pub(crate) fn back(held: Held<mio::net::TcpStream>) -> Option<Held<TcpStream>> {
    let (stream, rest) = held.split();
    rest.activity.parked.store(PARKED_NO, Ordering::Relaxed);
    match TcpStream::from_std(std::net::TcpStream::from(stream)) {
        Ok(stream) => Some(rest.with(stream)),
        Err(e) => {
            tracing::debug!(peer = %rest.peer, error = %e, "a parked connection could not rejoin the reactor");
            None
        }
    }
}

/// Runs the lot's thread until `stop` is cancelled (or this task is dropped with its
/// runtime): the thread hands each readable connection to `resume` (which gives it a task
/// on the runtime), closes signalled ones, and at the end closes all that are left.
pub(crate) async fn run<R>(lot: Arc<Lot>, stop: tokio_util::sync::CancellationToken, resume: R)
where
    R: Fn(Held<mio::net::TcpStream>) + Send + 'static,
{
    let (Some(poll), Some(signal)) = (
        lot.poll
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
        lot.signal.clone(),
    ) else {
        return;
    };
    // The thread ends when this task does: at shutdown, or with the runtime.
    struct Stop(Arc<Signal>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::Release);
            let _ = self.0.waker.wake();
        }
    }
    let _stop = Stop(signal);
    lot.running.store(true, Ordering::Release);
    let lot2 = lot.clone();
    let thread = std::thread::Builder::new()
        .name("rampart-lot".into())
        .spawn(move || watch(&lot2, poll, &resume));
    if let Err(e) = thread {
        lot.running.store(false, Ordering::Release);
        tracing::warn!(error = %e, "no thread for idle connections; they keep a task each");
        return;
    }
    stop.cancelled().await;
}

/// The lot's thread (see [`run`]).
fn watch(lot: &Lot, mut poll: mio::Poll, resume: &dyn Fn(Held<mio::net::TcpStream>)) {
    let Some(signal) = &lot.signal else { return };
    let mut events = mio::Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!(error = %e, "waiting on idle connections failed");
            break;
        }
        if signal.stop.load(Ordering::Acquire) {
            break;
        }
        for ev in &events {
            if ev.token() == WAKE {
                continue;
            }
            if let Some(held) = lot.take(ev.token().0) {
                resume(held);
            }
        }
        if signal.raised.swap(false, Ordering::AcqRel) {
            lot.close_signalled();
        }
    }
    lot.running.store(false, Ordering::Release);
    // Every connection still here is idle at a request boundary: closing it loses nothing.
    let left = std::mem::take(&mut *lot.slots());
    drop(left);
}
