//! rampart's edge: listeners and TLS, the request path, routing, policies, static files and
//! the reverse proxy.
//!
//! Entry points: [`Edge::load`] (or [`Edge::build`]) turns a config into a runnable edge,
//! checking everything that can be checked before a socket is opened (certificates, key
//! matches, static roots); [`start`] binds and serves it and returns a [`Running`] handle
//! whose `drain` performs the graceful shutdown.
//!
//! # Layout
//! One folder per layer; each imports only the layers listed before it (bottom first), never
//! one after it. A constant, a guard or a type that a lower layer needs moves down.
//!
//! | layer | what lives there |
//! |---|---|
//! | [`wire`] | what every layer exchanges: the body type, refusals, request ids, connection activity |
//! | [`observe`] | metrics, access and audit logs, PII masking, process status, dependency probes |
//! | [`state`] | state a fleet shares (rate limits, lockouts, operator changes): local, or Redis with a circuit breaker |
//! | [`policy`] | one module per request or response policy, each compiled from its config table |
//! | [`handler`] | what answers a request: the reverse proxy (pools, balancing, health checks), static files, transforms, CSP reports |
//! | [`edge`] | everything compiled from one config (routes, pools, policies, certificates), swapped whole on reload |
//! | [`request`] | the spine: one request through the policies, in order, to its handler; built-in status endpoints; panic rescue |
//! | [`conn`] | listeners, TLS accept, HTTP/1.1 fast path or hyper (h1/h2), parking, idle sweeps |
//! | [`control`] | the running process: live state, reload, the admin API, start and drain |
//!
//! A new policy goes in `policy/`, a new kind of answer in `handler/`; the spine in
//! [`request::stack`] calls both.

#![warn(missing_docs)]

pub mod conn;
pub mod control;
pub mod edge;
pub mod handler;
pub mod observe;
pub mod policy;
pub mod request;
pub mod state;
pub mod wire;

/// Entry points for fuzzing the hand-written HTTP/1.1 codecs and HPACK (`fuzz/`, cargo-fuzz) and
/// for replaying the committed corpus in the tests; not part of the API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing {
    /// A request head as the fast path reads it, checked against hyper's server.
    pub use crate::conn::fuzz_head as request_head;
    /// An upstream answer as the origin client reads it, checked against hyper's client.
    pub use crate::handler::proxy::fuzz_response as response;
    /// HPACK header blocks as the HTTP/2 server decodes them, re-encoded and decoded.
    pub use crate::wire::hpack::fuzz as hpack;

    #[cfg(test)]
    mod tests {
        /// Every input in `fuzz/corpus/<target>/` (what cargo-fuzz kept, minimised to
        /// its coverage) and `fuzz/regressions/<target>/` (the failing inputs it found,
        /// named by the bug, each fixed) replayed on every test run, on stable.
        #[test]
        fn the_fuzz_corpus_replays_clean() {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
            type Target = fn(&[u8]);
            let targets: [(&str, Target); 3] = [
                ("request_head", super::request_head),
                ("response", super::response),
                ("hpack", super::hpack),
            ];
            for (name, target) in targets {
                let mut n = 0;
                for set in ["corpus", "regressions"] {
                    let dir = root.join(set).join(name);
                    let entries =
                        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
                    for entry in entries {
                        let path = entry.unwrap().path();
                        let bytes = std::fs::read(&path).unwrap();
                        let caught = std::panic::catch_unwind(|| target(&bytes));
                        assert!(caught.is_ok(), "{name}: {path:?} fails");
                        n += 1;
                    }
                }
                assert!(n >= 100, "{name}: only {n} inputs");
            }
        }
    }
}

pub use control::live::{self as live, Live};
pub use control::{start, Running};
pub use edge::Edge;
pub use observe::audit;
