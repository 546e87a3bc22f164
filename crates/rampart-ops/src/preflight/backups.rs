//! PF-BAK-01: each `[[backups]]` entry keeps its backups private and encrypted: the
//! directory (and the copy target) not readable by other users, and a 32-byte key.

use std::os::unix::fs::PermissionsExt as _;

use rampart_config::Config;

use super::{Severity, Sink};

const ID: &str = "PF-BAK-01";
const TITLE: &str = "backups private and encrypted";

pub(crate) fn check(c: &Config, s: &mut Sink) {
    if c.backups.is_empty() {
        s.skip(ID, TITLE, "no [[backups]] in the config");
        return;
    }
    s.check(ID, TITLE);
    for (i, b) in c.backups.iter().enumerate() {
        for (what, dir) in [("dir", Some(&b.dir)), ("copy_to", b.copy_to.as_ref())] {
            let Some(dir) = dir else { continue };
            let Ok(meta) = std::fs::metadata(dir) else {
                continue; // made 0700 by the first backup
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                s.add(
                    ID,
                    Severity::Error,
                    format!("backups[{i}].{what}"),
                    format!("{} is readable by every user (mode {mode:04o}): a dump holds the whole database", dir.display()),
                    format!("chmod 700 {}", dir.display()),
                );
            } else if mode & 0o070 != 0 {
                s.add(
                    ID,
                    Severity::Warn,
                    format!("backups[{i}].{what}"),
                    format!("{} is open to its group (mode {mode:04o})", dir.display()),
                    format!(
                        "chmod 700 {} unless the group is only the backup operators",
                        dir.display()
                    ),
                );
            }
        }
        match &b.key {
            None => s.add(
                ID,
                Severity::Warn,
                format!("backups[{i}].key"),
                "backups are not encrypted: anyone who gets a copy (offsite, a stolen disk) reads the database",
                "key_file = \"/etc/rampart/backup.key\" (`rampart secrets generate backup-key`, chmod 600), kept apart from the backups",
            ),
            Some(k) => {
                if let Err(e) = rampart_backup::crypt::Key::from_bytes(k.as_bytes()) {
                    s.add(
                        ID,
                        Severity::Error,
                        format!("backups[{i}].key"),
                        e,
                        "`rampart secrets generate backup-key` makes a 32-byte key",
                    );
                }
            }
        }
    }
}
