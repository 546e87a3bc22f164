//! `rampart backup run|verify|restore`: argument handling, progress and printing; the work
//! is in `rampart_backup`.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::process::ExitCode;

use rampart_backup::crypt::Key;
use rampart_backup::db::Database;
use rampart_backup::{Progress, RunOptions};

use crate::cli::{BackupCommand, BackupDb, Format};

pub(crate) fn run(c: BackupCommand) -> anyhow::Result<ExitCode> {
    match c {
        BackupCommand::Run(a) => {
            let key = key(a.encrypt_key_file.as_deref())?;
            let keep_age = a
                .keep
                .as_deref()
                .map(rampart_config::units::parse_duration)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--keep: {e}"))?;
            if !(1..=19).contains(&a.level) {
                anyhow::bail!("--level {}: 1 to 19", a.level);
            }
            let o = RunOptions {
                database: database(&a.db)?,
                dir: a.dir.clone(),
                key,
                level: a.level,
                keep_age,
                keep_count: a.keep_count,
                copy_to: a.copy_to.clone(),
            };
            let tty = std::io::stderr().is_terminal();
            let mut report = |p: Progress| progress(p, tty);
            let out = rampart_backup::run(&o, &mut report).map_err(anyhow::Error::msg)?;
            if tty {
                eprintln!();
            }
            let m = &out.manifest;
            println!(
                "{}: {} ({} tables, {} rows), {} dumped, {} written{}, {:.1}s, sha256 {}",
                out.path.display(),
                m.database,
                m.tables.len(),
                m.tables.iter().map(|t| t.rows).sum::<u64>(),
                bytes(m.dump_bytes),
                bytes(m.size),
                if m.encryption.is_some() {
                    " (encrypted)"
                } else {
                    ""
                },
                m.duration_ms as f64 / 1000.0,
                m.sha256
            );
            for d in &out.deleted {
                println!("deleted {} (retention)", d.display());
            }
            if let Some(c) = &out.copied {
                println!("copied to {}", c.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify(a) => {
            let key = key(a.key_file.as_deref())?;
            let scratch = a
                .database_scratch
                .as_deref()
                .map(Database::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--database-scratch: {e}"))?;
            let result = rampart_backup::verify(&a.backup, key.as_ref(), scratch.as_ref());
            let ok = result.as_ref().is_ok_and(|v| v.problems.is_empty());
            match a.format {
                Format::Json => {
                    let v = match &result {
                        Ok(v) => {
                            serde_json::json!({"status": if ok { "passed" } else { "failed" }, "backup": a.backup, "result": v})
                        }
                        Err(e) => {
                            serde_json::json!({"status": "failed", "backup": a.backup, "error": e})
                        }
                    };
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                _ => {
                    match &result {
                        Ok(v) => {
                            for p in &v.problems {
                                println!("problem: {p}");
                            }
                            let restored = match &v.scratch {
                            Some(s) => format!(
                                "; restored into {s} (dropped): {} tables, {} rows as recorded",
                                v.tables, v.rows
                            ),
                            None => "; not restored (give --database-scratch to restore and compare)".into(),
                        };
                            println!(
                                "backup verify {}: {} checksum ok, {} of dump read{restored}",
                                if ok { "passed" } else { "FAILED" },
                                a.backup.display(),
                                bytes(v.dump_bytes)
                            );
                        }
                        Err(e) => println!("backup verify FAILED: {e}"),
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        BackupCommand::Restore(a) => {
            let key = key(a.key_file.as_deref())?;
            let target = database(&a.db)?;
            let n = rampart_backup::restore(&a.backup, key.as_ref(), &target)
                .map_err(anyhow::Error::msg)?;
            println!(
                "restored {} into {} ({} of dump)",
                a.backup.display(),
                target.redacted(),
                bytes(n)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The key in `file`, when one is given.
fn key(file: Option<&std::path::Path>) -> anyhow::Result<Option<Key>> {
    file.map(Key::from_file)
        .transpose()
        .map_err(anyhow::Error::msg)
}

fn database(d: &BackupDb) -> anyhow::Result<Database> {
    let url = match (&d.database, &d.database_file) {
        (_, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?,
        (Some(u), None) => u.clone(),
        (None, None) => {
            anyhow::bail!("give the database: DATABASE_URL, --database-file or --database")
        }
    };
    Database::parse(&url).map_err(anyhow::Error::msg)
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// A bar on a terminal, a JSON line otherwise (stderr either way).
fn progress(p: Progress, tty: bool) {
    let secs = p.elapsed.as_secs_f64().max(0.001);
    let rate = p.dump_bytes as f64 / secs;
    let mut err = std::io::stderr();
    if tty {
        let _ = write!(
            err,
            "\r{} dumped → {} written, {}/s, {:.0}s   ",
            bytes(p.dump_bytes),
            bytes(p.written),
            bytes(rate as u64),
            secs
        );
        let _ = err.flush();
    } else {
        let _ = writeln!(
            err,
            "{}",
            serde_json::json!({"event": "backup.progress", "dump_bytes": p.dump_bytes, "written": p.written, "bytes_per_second": rate as u64, "elapsed_ms": p.elapsed.as_millis() as u64})
        );
    }
}
