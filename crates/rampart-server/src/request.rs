//! The request path. [`stack`] is the spine: one request through every step in order,
//! each step a call into the module that owns it: [`front`] (before a route is known),
//! [`crate::policy`] (the request and response policies), [`handle`] (the route's
//! handler), [`trace`] (metrics, access log, audit of refusals). [`status`] renders
//! `/health`, `/ready` and `/metrics`; [`rescue`] turns a panic into a 500. Imports every
//! layer below: [`crate::edge`], [`crate::handler`], [`crate::policy`], [`crate::observe`],
//! [`crate::wire`].

pub mod answer;
pub mod connection;
pub mod front;
pub mod handle;
pub mod rescue;
pub mod stack;
pub mod status;
pub mod trace;
