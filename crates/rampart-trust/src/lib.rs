//! What a vendor signs and rampart checks: integrity manifests of the files it serves
//! ([`manifest`]) and the keys and detached signatures over them ([`keys`]). Below
//! `rampart-server` (checked at start, on reload and periodically) and `rampart-ops`
//! (the `rampart manifest` commands); it knows nothing of either.

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod keys;
pub mod manifest;
