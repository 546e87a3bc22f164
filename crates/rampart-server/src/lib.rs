//! rampart's edge: listeners and TLS, the request path, routing, static files and the
//! reverse proxy.
//!
//! Entry points: [`Edge::load`] (or [`Edge::build`]) turns a config into a runnable edge,
//! checking everything that can be checked before a socket is opened (certificates, key
//! matches, static roots); [`server::start`] binds and serves it and returns a
//! [`server::Running`] handle whose `drain` performs the graceful shutdown.
//!
//! The request path, in order, is in [`stack`].

#![warn(missing_docs)]

pub mod admin;
pub mod audit;
pub mod body;
pub mod csp_report;
pub mod deps;
pub mod edge;
pub mod fd_limit;
mod h1fast;
pub mod headers;
pub mod health;
pub mod live;
pub mod logs;
pub mod metrics;
pub mod pii;
pub mod policy;
pub mod proxy;
pub mod refusal;
pub mod request_id;
pub mod rescue;
pub mod router;
pub mod server;
pub mod stack;
pub mod static_files;
pub mod tls;
pub mod transform;

pub use edge::Edge;
pub use live::Live;
pub use server::{start, Running};
