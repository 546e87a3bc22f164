//! Where a config comes from: its name for messages, the directory relative paths resolve
//! against, and the environment `${VAR}` reads.

use std::path::PathBuf;

/// Where a config comes from and what it may read: the environment and files beside it.
pub struct Source<'a> {
    /// Name for messages (`rampart.toml`, `<embedded default>`).
    pub name: String,
    /// Directory that relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// Environment lookup for `${VAR}` (the process environment in production).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The process environment, for [`Source::env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
