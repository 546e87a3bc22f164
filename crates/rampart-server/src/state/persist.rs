//! What a single instance keeps across restarts, under `server.state_dir`: operator changes
//! (`control.json`: drains, weights, blue-green switches) and active login lockouts
//! (`lockouts.json`: limit → account → Unix time in ms the lock ends). Written whole on
//! each change (a temporary file, fsynced, renamed over the old one, mode 0600), read at
//! start; a file that is missing is an empty state, one that does not parse is logged and
//! ignored (never a refused start).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::Change;

/// The control file's path.
pub fn control_path(dir: &Path) -> PathBuf {
    dir.join("control.json")
}

/// The lockout file's path.
pub fn lockouts_path(dir: &Path) -> PathBuf {
    dir.join("lockouts.json")
}

/// Unix time now, in ms.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `data` to `path` atomically (0600).
///
/// # Errors
/// The directory cannot be created or written.
pub fn write_atomic(path: &Path, data: impl AsRef<[u8]>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(data.as_ref())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn read_json(path: &Path) -> Option<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read saved state; starting without it");
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "saved state does not parse; starting without it");
            None
        }
    }
}

/// Saves operator changes.
///
/// # Errors
/// As [`write_atomic`].
pub fn save_control(dir: &Path, changes: &[Change]) -> std::io::Result<()> {
    let list: Vec<Value> = changes
        .iter()
        .filter_map(|c| serde_json::from_str(&c.to_json("")).ok())
        .collect();
    write_atomic(&control_path(dir), json!({ "changes": list }).to_string())
}

/// Loads saved operator changes (empty when none).
pub fn load_control(dir: &Path) -> Vec<Change> {
    let Some(v) = read_json(&control_path(dir)) else {
        return Vec::new();
    };
    v.get("changes")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| Change::from_json(&c.to_string()).map(|(c, _)| c))
                .collect()
        })
        .unwrap_or_default()
}

/// Active locks: limit → account → Unix ms the lock ends.
pub type Locks = BTreeMap<String, BTreeMap<String, u64>>;

/// Saves active locks.
///
/// # Errors
/// As [`write_atomic`].
pub fn save_lockouts(dir: &Path, locks: &Locks) -> std::io::Result<()> {
    let text = serde_json::to_string(locks).unwrap_or_else(|_| "{}".into());
    write_atomic(&lockouts_path(dir), &text)
}

/// Loads the locks that have not ended yet.
pub fn load_lockouts(dir: &Path) -> Locks {
    let now = unix_ms();
    let Some(Value::Object(limits)) = read_json(&lockouts_path(dir)) else {
        return Locks::new();
    };
    limits
        .into_iter()
        .filter_map(|(limit, accounts)| {
            let Value::Object(a) = accounts else {
                return None;
            };
            let live: BTreeMap<String, u64> = a
                .into_iter()
                .filter_map(|(acct, until)| until.as_u64().filter(|&u| u > now).map(|u| (acct, u)))
                .collect();
            (!live.is_empty()).then_some((limit, live))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_lockouts_round_trip_and_bad_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("rampart-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(load_control(&dir).is_empty(), "no file: nothing saved");
        let changes = vec![
            Change::Route {
                route: "app".into(),
                pool: "green".into(),
            },
            Change::Weight {
                pool: "green".into(),
                server: "127.0.0.1:1".into(),
                weight: 0,
            },
        ];
        save_control(&dir, &changes).unwrap();
        assert_eq!(load_control(&dir), changes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(control_path(&dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut locks = Locks::new();
        let now = unix_ms();
        locks
            .entry("login".into())
            .or_default()
            .insert("account:bob".into(), now + 60_000);
        locks
            .entry("login".into())
            .or_default()
            .insert("account:old".into(), now - 1);
        save_lockouts(&dir, &locks).unwrap();
        let back = load_lockouts(&dir);
        assert_eq!(
            back["login"].keys().collect::<Vec<_>>(),
            ["account:bob"],
            "ended locks are dropped"
        );
        std::fs::write(control_path(&dir), "{not json").unwrap();
        assert!(load_control(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
