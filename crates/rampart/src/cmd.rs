//! Subcommands.

pub(crate) mod backup;
pub(crate) mod check;
pub(crate) mod import;
pub(crate) mod license;
pub(crate) mod manifest;
pub(crate) mod preflight;
pub(crate) mod reload;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod shell;
pub(crate) mod systemd;
pub(crate) mod verify;

/// `rampart version`.
pub(crate) fn version() {
    println!(
        "rampart {} ({} {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
}
