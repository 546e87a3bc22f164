//! State a fleet shares: rate-limit counters, login lockouts and operator changes.
//!
//! `[state] backend = "local"` (the default) keeps it in the process: the limiter and
//! lockout tables in [`crate::policy`], with what must survive a restart (operator
//! changes, active lockouts) written under `server.state_dir` ([`persist`]).
//! `backend = "redis"` shares it through a Redis-protocol server ([`fleet`]): one round
//! trip per decision, a circuit breaker ([`breaker`]) in front, and each limit's
//! `on_state_error` when the server cannot answer. The policies call the local state
//! directly when there is no fleet, so a single instance pays nothing for this layer.

pub mod breaker;
pub mod fleet;
pub mod persist;
pub mod revocations;

pub use fleet::{Change, Fleet, StateError};
pub use revocations::Revocations;
