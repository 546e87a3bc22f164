//! What a vendor signs and rampart checks: integrity manifests of the files it serves
//! ([`manifest`]), the keys and detached signatures over them ([`keys`]), and license
//! tokens with their anti-rollback anchor ([`license`]). Below `rampart-server` (checked
//! at start, on reload and periodically) and the CLI (`rampart manifest`, `rampart
//! license`); it knows nothing of either.

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod keys;
pub mod license;
pub mod manifest;
