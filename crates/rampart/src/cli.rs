//! Command-line interface (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// One binary that puts a web application into production safely.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the edge. Without a config file, serves a demo site on https://localhost:8443.
    Serve(ServeArgs),
    /// Test a config file (like `nginx -t`): prints `ok` or every error; exits 0 or 1.
    Check(CheckArgs),
    /// Ask a running edge to reload its config (through the admin API of that config).
    Reload(ReloadArgs),
    /// Print the version.
    Version,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Config file. Default: ./rampart.toml if present, else the embedded demo config.
    #[arg(short, long, value_name = "FILE", env = "RAMPART_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Override `server.http` (e.g. 127.0.0.1:0 for a free port).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// Override `server.https`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) https: Option<SocketAddr>,
    /// Override `server.workers`.
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Override `server.state_dir` (where the development certificate is kept).
    #[arg(long, value_name = "DIR", env = "RAMPART_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Config file to test.
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "rampart.toml",
        env = "RAMPART_CONFIG"
    )]
    pub(crate) config: PathBuf,
    /// Also show the running edge's effective state (pools, servers, weights, routes)
    /// from its admin API.
    #[arg(long)]
    pub(crate) live: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// Config file of the running edge (its [admin] section says where to ask).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "rampart.toml",
        env = "RAMPART_CONFIG"
    )]
    pub(crate) config: PathBuf,
}
