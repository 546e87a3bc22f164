//! What differs between PostgreSQL and MySQL/MariaDB: a SQL session through the client
//! tool (`psql`, `mysql`/`mariadb`) for the version, the tables and their row counts, and
//! the dump and restore commands.
//!
//! PostgreSQL: the session opens a repeatable-read transaction and exports its snapshot;
//! `pg_dump --snapshot` dumps exactly what the session counted. MySQL/MariaDB: the session
//! counts in its own consistent snapshot taken just before `mysqldump
//! --single-transaction` takes the dump's, so on a database being written the two can
//! differ by the writes in between (verify reports which table).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::db::{tool, Credentials, Database, Engine};

const END: &str = "rampart-end-of-answer";

/// A SQL session through the client tool.
pub(crate) struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    engine: Engine,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Quotes an identifier for `engine`.
fn ident(engine: Engine, name: &str) -> String {
    match engine {
        // Names come from the catalog already quoted by quote_ident.
        Engine::Postgres => name.to_owned(),
        Engine::MySql => format!("`{}`", name.replace('`', "``")),
    }
}

impl Session {
    /// Connects to `db`.
    ///
    /// # Errors
    /// The client tool is missing or cannot connect.
    pub(crate) fn open(creds: &Credentials, db: &Database) -> Result<Self, String> {
        let mut cmd = match db.engine {
            Engine::Postgres => {
                let mut c = creds.command(db, "psql");
                c.args([
                    "-X",
                    "-A",
                    "-t",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &db.name,
                ]);
                c
            }
            Engine::MySql => {
                let mut c = creds.command(db, &tool(&["mariadb", "mysql"])?);
                c.args(["--batch", "--skip-column-names", "--unbuffered", &db.name]);
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run the database client: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut s = Self {
            child,
            stdin,
            stdout,
            engine: db.engine,
        };
        s.lines("SELECT 1;")
            .map_err(|e| format!("cannot connect to {}: {e}", db.redacted()))?;
        Ok(s)
    }

    /// Runs `sql` and returns the lines it printed.
    ///
    /// # Errors
    /// The statement failed (the client's error).
    pub(crate) fn lines(&mut self, sql: &str) -> Result<Vec<String>, String> {
        let sent = writeln!(self.stdin, "{sql}\nSELECT '{END}';").and_then(|()| self.stdin.flush());
        let mut out = Vec::new();
        if sent.is_ok() {
            let mut line = String::new();
            loop {
                line.clear();
                match self.stdout.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let l = line.trim_end_matches(['\n', '\r']);
                        if l == END {
                            return Ok(out);
                        }
                        out.push(l.to_owned());
                    }
                }
            }
        }
        // The client stopped (ON_ERROR_STOP): its error is on stderr.
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        Err(if err.trim().is_empty() {
            "the database client stopped".into()
        } else {
            err.trim().to_owned()
        })
    }

    /// Starts the snapshot the dump will see; PostgreSQL returns its id for `pg_dump`.
    ///
    /// # Errors
    /// As [`Session::lines`].
    pub(crate) fn begin_snapshot(&mut self) -> Result<Option<String>, String> {
        match self.engine {
            Engine::Postgres => {
                self.lines("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;")?;
                Ok(self.lines("SELECT pg_export_snapshot();")?.pop())
            }
            Engine::MySql => {
                self.lines("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;")?;
                self.lines("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;")?;
                Ok(None)
            }
        }
    }

    /// The server's version.
    ///
    /// # Errors
    /// As [`Session::lines`].
    pub(crate) fn version(&mut self) -> Result<String, String> {
        let sql = match self.engine {
            Engine::Postgres => "SHOW server_version;",
            Engine::MySql => "SELECT VERSION();",
        };
        Ok(self.lines(sql)?.pop().unwrap_or_default())
    }

    /// Every table with its rows, by name.
    ///
    /// # Errors
    /// As [`Session::lines`].
    pub(crate) fn counts(&mut self) -> Result<Vec<(String, u64)>, String> {
        let list = match self.engine {
            Engine::Postgres => {
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1;"
            }
            Engine::MySql => {
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() \
                 AND table_type = 'BASE TABLE' ORDER BY 1;"
            }
        };
        let tables = self.lines(list)?;
        let mut out = Vec::new();
        // One statement per 100 tables keeps each line short.
        for chunk in tables.chunks(100) {
            let sql = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| format!("SELECT {i}, COUNT(*) FROM {}", ident(self.engine, t)))
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
                + ";";
            for l in self.lines(&sql)? {
                let (i, n) = l
                    .split_once(['|', '\t'])
                    .ok_or_else(|| format!("unexpected count line {l:?}"))?;
                let i: usize = i.trim().parse().map_err(|_| format!("bad line {l:?}"))?;
                let n: u64 = n.trim().parse().map_err(|_| format!("bad count {l:?}"))?;
                if let Some(t) = chunk.get(i) {
                    out.push((t.clone(), n));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Ends the snapshot.
    pub(crate) fn end(mut self) {
        let _ = self.lines("COMMIT;");
    }
}

/// The dump command: its output on stdout.
///
/// # Errors
/// The tool is missing.
pub(crate) fn dump(
    creds: &Credentials,
    db: &Database,
    snapshot: Option<&str>,
) -> Result<(Command, String), String> {
    match db.engine {
        Engine::Postgres => {
            let mut c = creds.command(db, "pg_dump");
            // Custom format, uncompressed: rampart compresses (zstd) and pg_restore can
            // still list and pick from it.
            c.args(["--format=custom", "--compress=0"]);
            if let Some(s) = snapshot {
                c.arg(format!("--snapshot={s}"));
            }
            c.arg(&db.name);
            Ok((c, "pg_dump".into()))
        }
        Engine::MySql => {
            let t = tool(&["mariadb-dump", "mysqldump"])?;
            let mut c = creds.command(db, &t);
            c.args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--default-character-set=utf8mb4",
                "--no-tablespaces",
                &db.name,
            ]);
            Ok((c, t))
        }
    }
}

/// The restore command: the dump on stdin, into `db` (which exists).
///
/// # Errors
/// The tool is missing.
pub(crate) fn restore(creds: &Credentials, db: &Database) -> Result<Command, String> {
    match db.engine {
        Engine::Postgres => {
            let mut c = creds.command(db, "pg_restore");
            c.args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--clean",
                "--if-exists",
                "--single-transaction",
                "-d",
                &db.name,
            ]);
            Ok(c)
        }
        Engine::MySql => {
            let mut c = creds.command(db, &tool(&["mariadb", "mysql"])?);
            c.args(["--batch", &db.name]);
            Ok(c)
        }
    }
}

/// Creates (or drops) database `name` on `db`'s server.
///
/// # Errors
/// The statement failed.
pub(crate) fn create_or_drop(
    creds: &Credentials,
    db: &Database,
    name: &str,
    create: bool,
) -> Result<(), String> {
    let q = match db.engine {
        Engine::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        Engine::MySql => format!("`{}`", name.replace('`', "``")),
    };
    let sql = match (db.engine, create) {
        (_, true) => format!("CREATE DATABASE {q};"),
        (Engine::Postgres, false) => format!("DROP DATABASE IF EXISTS {q} WITH (FORCE);"),
        (Engine::MySql, false) => format!("DROP DATABASE IF EXISTS {q};"),
    };
    let mut s = Session::open(creds, db)?;
    s.lines(&sql)?;
    Ok(())
}
