//! The library behind rampart's operator commands: `preflight` (catalog B1 checks over the
//! edge config, the application's environment and the deployment's files) and `secrets`
//! (generation from the OS CSPRNG, `.env` filling and rotation). The binary's `cmd/`
//! modules only parse arguments and print.

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod certs;
pub mod csp;
pub mod findings;
pub mod import;
pub mod integrity;
pub mod preflight;
mod rsa;
pub mod secrets;
pub mod verify;
