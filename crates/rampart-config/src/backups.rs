//! `[[backups]]`: database backups `serve` runs on a cron schedule (`rampart backup run`
//! with the same options), one at a time per database.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use serde::Deserialize;

use crate::units::Duration as RawDuration;

/// One `[[backups]]` entry as written.
#[derive(Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    /// Its name in `/health`, metrics and the audit log (unique).
    pub name: Option<String>,
    /// The URL (`"${DATABASE_URL}"`); `postgres://`, `postgresql://`, `mysql://`,
    /// `mariadb://`.
    pub database: Option<String>,
    /// Cron in UTC: 5 fields (`"0 2 * * *"`: 02:00 daily), 6 with seconds first, or
    /// `@daily`/`@hourly`.
    pub schedule: Option<String>,
    /// Where backups go (made 0700).
    pub dir: Option<String>,
    /// Retention by age (`"30d"`) and count (≥ 1); the newest good backup is never deleted.
    pub keep: Option<RawDuration>,
    /// Retention by age (`"30d"`) and count (≥ 1); the newest good backup is never deleted.
    pub keep_count: Option<usize>,
    /// The 32-byte key (`rampart secrets generate backup-key`).
    pub key: Option<String>,
    /// Zstd level, 1–19.
    pub level: Option<i32>,
    /// Also copy each backup and its manifest here (another mount).
    pub copy_to: Option<String>,
    /// After each backup, restore it into a new database on this server, compare every
    /// table's rows with the manifest, drop it; a mismatch fails the run.
    pub verify_scratch: Option<String>,
}

impl std::fmt::Debug for RawBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBackup")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

/// A cron schedule, evaluated in UTC.
#[derive(Clone)]
pub struct Schedule {
    /// As written.
    pub text: String,
    cron: croner::Cron,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Schedule {
    /// Parses cron text (5 fields, 6 with seconds; `@daily`, `@hourly`…).
    ///
    /// # Errors
    /// Not a cron pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::Cron::from_str(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(Self {
            text: text.trim().to_owned(),
            cron,
        })
    }

    fn at(unix: i64) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp(unix, 0)
    }

    /// The first time after `unix` (seconds).
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        self.cron
            .find_next_occurrence(&Self::at(unix)?, false)
            .ok()
            .map(|t| t.timestamp())
    }

    /// The last time at or before `unix`.
    pub fn previous(&self, unix: i64) -> Option<i64> {
        self.cron
            .find_previous_occurrence(&Self::at(unix)?, true)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// One `[[backups]]` entry, validated.
#[derive(Clone, PartialEq)]
pub struct Backup {
    /// Its name.
    pub name: String,
    /// The database URL (secret: never printed).
    pub database: String,
    /// When.
    pub schedule: Schedule,
    /// Where.
    pub dir: PathBuf,
    /// Age retention.
    pub keep: Option<Duration>,
    /// Count retention.
    pub keep_count: Option<usize>,
    /// The key file's contents.
    pub key: Option<String>,
    /// zstd level.
    pub level: i32,
    /// Copy target.
    pub copy_to: Option<PathBuf>,
    /// Scratch server URL for a verify after each backup.
    pub verify_scratch: Option<String>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn db_name(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "postgres" | "postgresql" | "mysql" | "mariadb") {
        return None;
    }
    let path = rest.split_once('/')?.1;
    let name = path.split(['?', '#']).next()?.to_owned();
    (!name.is_empty()).then_some(name)
}

pub(crate) fn backups(
    raw: &[RawBackup],
    base: &Path,
    err: &mut dyn FnMut(String, String),
) -> Vec<Backup> {
    let mut out: Vec<Backup> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("backups[{i}].{k}");
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let Some(database) = text(&r.database) else {
            err(
                key("database"),
                "missing: the database URL (database = \"${DATABASE_URL}\" or database_file)"
                    .into(),
            );
            continue;
        };
        let Some(name_in_url) = db_name(&database) else {
            err(
                key("database"),
                "not a postgres://, postgresql://, mysql:// or mariadb:// URL naming a database"
                    .into(),
            );
            continue;
        };
        let schedule = match text(&r.schedule).as_deref().map(Schedule::parse) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                err(key("schedule"), format!("not a cron schedule: {e}"));
                continue;
            }
            None => {
                err(
                    key("schedule"),
                    "missing: when to run (cron, UTC: \"0 2 * * *\" is 02:00 every day)".into(),
                );
                continue;
            }
        };
        let Some(dir) = text(&r.dir) else {
            err(key("dir"), "missing: where backups go".into());
            continue;
        };
        let level = r.level.unwrap_or(crate::defaults::trust::BACKUP_LEVEL);
        if !(1..=19).contains(&level) {
            err(key("level"), format!("{level}: zstd levels are 1 to 19"));
        }
        if r.keep_count == Some(0) {
            err(
                key("keep_count"),
                "0: the newest backup is always kept; give at least 1".into(),
            );
        }
        let name = text(&r.name).unwrap_or(name_in_url);
        if out.iter().any(|b| b.name == name) {
            err(
                key("name"),
                format!("{name:?} is used twice: give each backup its own name"),
            );
        }
        out.push(Backup {
            name,
            database,
            schedule,
            dir: base.join(dir),
            keep: r.keep.map(|d| d.0),
            keep_count: r.keep_count,
            key: text(&r.key),
            level,
            copy_to: text(&r.copy_to).map(|p| base.join(p)),
            verify_scratch: text(&r.verify_scratch),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_in_utc() {
        let s = Schedule::parse("0 2 * * *").unwrap();
        // 2026-12-03T01:00:00Z → 02:00 the same day; the previous is the day before.
        let t = 1_796_259_600;
        assert_eq!(s.next_after(t), Some(t + 3600));
        assert_eq!(s.previous(t), Some(t + 3600 - 86_400));
        let every = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(every.next_after(t), Some(t + 10));
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("daily").is_err());
    }
}
