//! A panic on the request path answers that request 500 and nothing else: the process
//! unwinds (release builds no longer abort), the request's future is polled inside
//! `catch_unwind`, the panic is counted (`rampart_panics_total`) and logged once with the
//! request's id and its cause, and every other connection goes on. A panic in a
//! connection's own task (outside a request) ends that connection only: tokio catches it.
//!
//! Why unwind, measured (callgrind, plain HTTP/1.1 proxied request, wrk -c8, release
//! builds of the same commit): 22.24k instructions per request with unwinding and this
//! rescue vs 21.16k with `panic = "abort"` (+1.08k, +5.1 %: the landing pads change
//! inlining in the forward path and the header map code, not one hot spot), and a binary
//! of 45.8 MB vs 41.4 MB. An abort would drop every connection of every client on the
//! first bug any input finds, and the restart refuses connections meanwhile; the 5 % is
//! paid for that. Issue 24 (speed) may win it back elsewhere.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::task::{Context, Poll};

static PANICS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last panic's message and place on this thread, for the catch site to log with
    /// its request id.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics since start.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Installs the panic hook (once per process): it counts the panic and keeps its message
/// for the catch site; a panic outside a request is logged here.
pub fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            let what = message(info.payload());
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = format!("{what} at {place}");
            tracing::error!(target: "rampart::panic", cause = %text, "panic");
            LAST.with(|l| *l.borrow_mut() = Some(text));
            // The standard report too (stderr; a backtrace with RUST_BACKTRACE=1).
            previous(info);
        }));
    });
}

fn message(p: &(dyn Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

/// The cause of the last panic on this thread, taken.
pub(crate) fn take_cause() -> String {
    LAST.with(|l| l.borrow_mut().take())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Polls a pinned future (boxed, or pinned on the stack) inside `catch_unwind`: `Err(())`
/// when it panicked.
pub(crate) struct Caught<P>(pub(crate) Pin<P>);

impl<P> Future for Caught<P>
where
    P: std::ops::DerefMut + Unpin,
    P::Target: Future,
{
    type Output = Result<<P::Target as Future>::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// The answer to a request that panicked: 500 with a fresh request id, logged with the
/// cause.
pub(crate) fn internal_error(
    method: &http::Method,
    path: &str,
) -> http::Response<crate::wire::body::Body> {
    let id = crate::wire::request_id::generate();
    tracing::error!(
        request_id = id.to_str().unwrap_or_default(),
        method = %method,
        path,
        cause = %take_cause(),
        "request panicked; answered 500"
    );
    let mut resp = crate::wire::refusal::Refusal::Internal.response(&id);
    resp.headers_mut()
        .insert(crate::wire::request_id::X_REQUEST_ID, id);
    resp
}

/// Test builds only (`test-panic` feature): a request carrying this header panics on the
/// request path, so tests can prove the rescue.
#[cfg(feature = "test-panic")]
pub(crate) fn test_trigger(h: &http::HeaderMap) {
    if h.contains_key("x-rampart-test-panic") {
        panic!("test panic requested");
    }
}
