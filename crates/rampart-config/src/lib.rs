//! `rampart.toml`: the file format, its validation, and the typed runtime form.
//!
//! Three stages, as in ripgrep's low/high args: [`raw`] mirrors the file (serde, unknown keys
//! denied), [`load`] resolves `${VAR}` and `*_file` keys and collects every shape error,
//! and `validate` applies the rules and builds [`runtime::Config`], which cannot hold an
//! invalid value. Errors name the key path (`routes[2].upstream: unknown upstream "apii",
//! did you mean "api"?`) and all of them are reported at once.
//!
//! This crate reads files named by the config (`*_file` secrets, static roots) but does
//! not parse certificates: `rampart-server` builds TLS from [`runtime::Tls`].

#![warn(missing_docs)]

pub mod acme;
pub mod backups;
pub mod bounds;
pub mod civil;
pub mod defaults;
pub mod dotenv;
pub mod error;
pub mod integrity;
pub mod license;
pub mod load;
pub mod ops;
pub mod policy;
pub mod posture;
pub mod raw;
pub mod reference;
pub mod runtime;
pub mod secret;
pub mod site;
pub mod source;
pub mod state;
pub mod units;
mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load, load_str};
pub use runtime::Config;
pub use source::{process_env, Source};
pub use validate::{
    default_state_dir, BANNER_HEADERS, DEFAULT_CSP, DEFAULT_HSTS, DEFAULT_PERMISSIONS_POLICY,
    TLS12_SUITES,
};

#[cfg(test)]
mod tests;
