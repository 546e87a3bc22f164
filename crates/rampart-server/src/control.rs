//! The running process: [`live`] (the current edge, reload, admin changes that survive
//! reloads), the [`admin`] API, and [`start`]/[`Running`] (bind, serve, drain). The top
//! layer: it may import every other one, and none imports it.

pub mod acme;
pub mod admin;
pub mod backups;
pub mod integrity;
pub mod license;
pub mod live;
pub mod ocsp;
mod start;
pub(crate) mod status_page;
mod watch;

pub use start::{start, Running};
