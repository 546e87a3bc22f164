//! The manifest written beside each backup (`FILE.json`): what it holds and how to read it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest format marker.
pub const FORMAT: &str = "rampart-backup/1";

/// What is recorded beside each backup (`FILE.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The backup file's name (in the same directory).
    pub file: String,
    /// `postgresql` or `mysql`.
    pub engine: String,
    /// The database's name.
    pub database: String,
    /// The server's version.
    pub server_version: String,
    /// The dump tool and its version.
    pub tool: String,
    /// Started (RFC 3339).
    pub started_at: String,
    /// Finished (RFC 3339).
    pub finished_at: String,
    /// Started (Unix seconds, for retention).
    pub started_unix: i64,
    /// Started (Unix milliseconds, for ordering backups made in one second).
    #[serde(default)]
    pub started_ms: u64,
    /// Milliseconds it took.
    pub duration_ms: u64,
    /// Bytes the dump tool wrote.
    pub dump_bytes: u64,
    /// Bytes of the backup file.
    pub size: u64,
    /// SHA-256 of the backup file (hex).
    pub sha256: String,
    /// `zstd`.
    pub compression: String,
    /// `aes-256-gcm-stream` when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The key's id ([`Key::id`]) when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Every table and its rows, in the dump's snapshot.
    pub tables: Vec<TableRows>,
}

/// A table and its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Schema-qualified (PostgreSQL) or plain (MySQL) name.
    pub name: String,
    /// Rows.
    pub rows: u64,
}

/// The manifest of a backup file (`FILE.json`).
pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut s = backup.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Reads a backup's manifest.
///
/// # Errors
/// Missing or not a manifest.
pub fn read_manifest(backup: &Path) -> Result<Manifest, String> {
    let p = manifest_path(backup);
    let bytes = std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a backup manifest: {e}", p.display()))?;
    if m.format != FORMAT {
        return Err(format!("{}: format {:?}", p.display(), m.format));
    }
    Ok(m)
}
