//! The request path: [`stack`] takes one request through the policies, in the documented
//! order, to its handler; [`status`] renders `/health`, `/ready` and `/metrics` (for the
//! admin listener and the public mount); [`rescue`] turns a panic into a 500. Imports every
//! layer below: [`crate::edge`], [`crate::handler`], [`crate::policy`], [`crate::observe`],
//! [`crate::wire`].

pub mod rescue;
pub mod stack;
pub mod status;
