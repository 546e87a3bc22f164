//! Retention: backups of one database older than `keep_age` or beyond the newest
//! `keep_count` are deleted (the file and its manifest), but never the newest good backup,
//! whatever the settings say. Only backups with a readable manifest count: a file without
//! one (an interrupted copy, someone else's) is never touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::{manifest_path, read_manifest, Manifest};

/// The backups of `database` in `dir` with their manifests, newest first.
pub fn list(dir: &Path, database: &str) -> Vec<(PathBuf, Manifest)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Manifest)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|mp| {
            let backup = mp.with_extension("");
            let m = read_manifest(&backup).ok()?;
            (m.database == database && backup.is_file()).then_some((backup, m))
        })
        .collect();
    out.sort_by_key(|(_, m)| std::cmp::Reverse((m.started_unix, m.started_ms)));
    out
}

/// Deletes what `keep_age` and `keep_count` do not keep, never `newest`; returns what was
/// deleted.
///
/// # Errors
/// A file that cannot be deleted.
pub fn apply(
    dir: &Path,
    database: &str,
    keep_age: Option<Duration>,
    keep_count: Option<usize>,
    newest: &Path,
) -> Result<Vec<PathBuf>, String> {
    if keep_age.is_none() && keep_count.is_none() {
        return Ok(Vec::new());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let mut deleted = Vec::new();
    for (i, (path, m)) in list(dir, database).into_iter().enumerate() {
        if path == newest || i == 0 {
            continue;
        }
        // The manifest's seconds decide (an operator may correct them); its milliseconds
        // only order backups of the same second.
        let started_ms =
            m.started_unix.saturating_mul(1000) + i64::try_from(m.started_ms % 1000).unwrap_or(0);
        let too_old = keep_age.is_some_and(|a| {
            now_ms - started_ms > i64::try_from(a.as_millis()).unwrap_or(i64::MAX)
        });
        let too_many = keep_count.is_some_and(|c| i >= c.max(1));
        if too_old || too_many {
            for p in [manifest_path(&path), path.clone()] {
                std::fs::remove_file(&p)
                    .map_err(|e| format!("cannot delete {}: {e}", p.display()))?;
            }
            deleted.push(path);
        }
    }
    Ok(deleted)
}
