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

pub use control::live::{self as live, Live};
pub use control::{start, Running};
pub use edge::Edge;
pub use observe::audit;
