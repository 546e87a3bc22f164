//! Database backups that can be trusted: `pg_dump` (custom format) or `mysqldump`/
//! `mariadb-dump` streamed through zstd and, with a key, AES-256-GCM ([`crypt`]) into a
//! temporary file that is fsynced and renamed; a manifest beside each backup (database,
//! server and tool versions, times, sizes, SHA-256, every table's rows in the dump's
//! snapshot); restore and verify (checksum, decryption, a restore into a scratch database
//! whose tables and rows are compared with the manifest); retention by age and count that
//! never deletes the newest good backup.
//!
//! Credentials reach the tools through a private password file only ([`db`]).
//! Synchronous: the CLI calls it directly, `serve` on a blocking thread.

pub mod crypt;
pub mod db;
mod engine;
pub mod manifest;
pub mod retention;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::crypt::{hex, Key};
use crate::db::{Credentials, Database, Engine};
pub use crate::manifest::{manifest_path, read_manifest, Manifest, TableRows, FORMAT};

/// How a backup is going.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes the dump tool wrote so far.
    pub dump_bytes: u64,
    /// Bytes written to the file so far.
    pub written: u64,
    /// Since the start.
    pub elapsed: Duration,
}

/// What `run` is asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The database.
    pub database: Database,
    /// Where backups go.
    pub dir: PathBuf,
    /// Encrypt with this key.
    pub key: Option<Key>,
    /// zstd level (default 3).
    pub level: i32,
    /// Delete backups older than this (never the newest good one).
    pub keep_age: Option<Duration>,
    /// Keep at most this many (never fewer than one).
    pub keep_count: Option<usize>,
    /// Also copy the backup and its manifest here (another mount).
    pub copy_to: Option<PathBuf>,
}

/// What `run` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The backup file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Backups deleted by retention.
    pub deleted: Vec<PathBuf>,
    /// Where it was copied.
    pub copied: Option<PathBuf>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A file that hashes and counts what is written to it.
struct Hashing {
    file: std::fs::File,
    sha: aws_lc_rs::digest::Context,
    n: u64,
}

impl Write for Hashing {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(b)?;
        self.sha.update(&b[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The file end of the pipeline: plain or encrypted.
enum Sink {
    Plain(Hashing),
    Sealed(crypt::Writer<Hashing>),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(h) => h.write(b),
            Sink::Sealed(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(h) => h.flush(),
            Sink::Sealed(w) => w.flush(),
        }
    }
}

impl Sink {
    fn finish(self) -> std::io::Result<Hashing> {
        match self {
            Sink::Plain(h) => Ok(h),
            Sink::Sealed(w) => w.finish(),
        }
    }
    fn written(&self) -> u64 {
        match self {
            Sink::Plain(h) => h.n,
            Sink::Sealed(w) => w.inner_ref().n,
        }
    }
}

/// `DB-20261203T065500Z.pgdump.zst[.enc]`.
fn file_name(db: &Database, started: i64, encrypted: bool) -> String {
    let stamp: String = rampart_config::civil::rfc3339(started)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let kind = match db.engine {
        Engine::Postgres => "pgdump",
        Engine::MySql => "sql",
    };
    let safe: String = db
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{safe}-{stamp}.{kind}.zst{}",
        if encrypted { ".enc" } else { "" }
    )
}

fn fsync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_json(path: &Path, m: &Manifest) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_vec_pretty(m).map_err(|e| e.to_string())?;
    text.push(b'\n');
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&text)?;
                f.sync_all()
            })
    }
    .and_then(|()| std::fs::rename(&tmp, path))
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Backs `o.database` up into `o.dir`, then applies retention and the copy.
///
/// # Errors
/// The dump tool failed (its message), the directory cannot be written, or the snapshot
/// session failed. A failed backup leaves no file behind.
pub fn run(o: &RunOptions, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, String> {
    let db = &o.database;
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&o.dir)
            .map_err(|e| format!("cannot make {}: {e}", o.dir.display()))?;
    }
    let creds = Credentials::new(db)?;
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let started = i64::try_from(started_ms / 1000).unwrap_or(0);
    let clock = Instant::now();
    let mut session = engine::Session::open(&creds, db)?;
    let server_version = session.version()?;
    let snapshot = session.begin_snapshot()?;
    let tables = session.counts()?;
    let (mut cmd, tool) = engine::dump(&creds, db, snapshot.as_deref())?;
    let tool_version = db::tool_version(&tool);
    // Two backups in one second get -2, -3…: a backup never replaces another.
    let base = file_name(db, started, o.key.is_some());
    let mut name = base.clone();
    let mut n = 1;
    while o.dir.join(&name).exists() || o.dir.join(format!(".{name}.tmp")).exists() {
        n += 1;
        let (stem, ext) = base.split_once('.').unwrap_or((&base, ""));
        name = format!("{stem}-{n}.{ext}");
    }
    let path = o.dir.join(&name);
    let tmp = o.dir.join(format!(".{name}.tmp"));
    let result = (|| -> Result<(u64, Hashing), String> {
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?
        };
        let hashing = Hashing {
            file,
            sha: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            n: 0,
        };
        let sink = match &o.key {
            Some(k) => Sink::Sealed(crypt::Writer::new(hashing, k).map_err(|e| e.to_string())?),
            None => Sink::Plain(hashing),
        };
        let mut z = zstd::stream::write::Encoder::new(sink, o.level).map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {tool}: {e}"))?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let mut err_pipe = child.stderr.take().ok_or("no stderr")?;
        let errs = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err_pipe.read_to_string(&mut s);
            s
        });
        let mut buf = vec![0u8; 256 * 1024];
        let mut dumped = 0u64;
        let mut last = Instant::now();
        let copied = loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e.to_string()),
            };
            if let Err(e) = z.write_all(&buf[..n]) {
                break Err(format!("cannot write {}: {e}", tmp.display()));
            }
            dumped += n as u64;
            if last.elapsed() >= Duration::from_millis(500) {
                last = Instant::now();
                progress(Progress {
                    dump_bytes: dumped,
                    written: z.get_ref().written(),
                    elapsed: clock.elapsed(),
                });
            }
        };
        if copied.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        let stderr = errs.join().unwrap_or_default();
        copied?;
        if !status.success() {
            return Err(format!("{tool} failed ({status}): {}", stderr.trim()));
        }
        let sink = z.finish().map_err(|e| e.to_string())?;
        let mut h = sink.finish().map_err(|e| e.to_string())?;
        h.flush().map_err(|e| e.to_string())?;
        h.file.sync_all().map_err(|e| e.to_string())?;
        Ok((dumped, h))
    })();
    session.end();
    let (dumped, h) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot rename to {}: {e}", path.display()))?;
    fsync_dir(&o.dir);
    let size = h.n;
    let sha256 = hex(h.sha.finish().as_ref());
    progress(Progress {
        dump_bytes: dumped,
        written: size,
        elapsed: clock.elapsed(),
    });
    let manifest = Manifest {
        format: FORMAT.into(),
        file: name,
        engine: db.engine.name().into(),
        database: db.name.clone(),
        server_version,
        tool: tool_version,
        started_at: rampart_config::civil::rfc3339(started),
        finished_at: rampart_config::civil::rfc3339(now_unix()),
        started_unix: started,
        started_ms,
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        dump_bytes: dumped,
        size,
        sha256,
        compression: "zstd".into(),
        encryption: o.key.as_ref().map(|_| "aes-256-gcm-stream".into()),
        key_id: o.key.as_ref().map(Key::id),
        tables: tables
            .into_iter()
            .map(|(name, rows)| TableRows { name, rows })
            .collect(),
    };
    write_json(&manifest_path(&path), &manifest)?;
    fsync_dir(&o.dir);
    let deleted = retention::apply(&o.dir, &db.name, o.keep_age, o.keep_count, &path)?;
    let copied = match &o.copy_to {
        Some(to) => Some(copy_to(&path, to)?),
        None => None,
    };
    Ok(Outcome {
        path,
        manifest,
        deleted,
        copied,
    })
}

/// Copies a backup and its manifest to `to` (another mount), fsynced and renamed.
///
/// # Errors
/// The copy fails.
pub fn copy_to(backup: &Path, to: &Path) -> Result<PathBuf, String> {
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(to)
            .map_err(|e| format!("cannot make {}: {e}", to.display()))?;
    }
    let mut last = PathBuf::new();
    for src in [backup.to_path_buf(), manifest_path(backup)] {
        let name = src.file_name().ok_or("no file name")?;
        let dst = to.join(name);
        let tmp = to.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(&src, &tmp)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &dst))
            .map_err(|e| format!("cannot copy to {}: {e}", dst.display()))?;
        if last.as_os_str().is_empty() {
            last = dst;
        }
    }
    fsync_dir(to);
    Ok(last)
}

/// Opens a backup's contents: checks nothing yet (the checksum is checked separately).
fn open_stream(backup: &Path, key: Option<&Key>) -> Result<Box<dyn Read + Send>, String> {
    let mut f = std::fs::File::open(backup)
        .map_err(|e| format!("cannot read {}: {e}", backup.display()))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    let f = std::fs::File::open(backup).map_err(|e| e.to_string())?;
    let raw: Box<dyn Read + Send> = if crypt::is_encrypted(&head[..n]) {
        let k = key.ok_or("the backup is encrypted: give its key (--key-file)")?;
        Box::new(crypt::Reader::new(std::io::BufReader::new(f), k).map_err(|e| e.to_string())?)
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    let z = zstd::stream::read::Decoder::new(raw).map_err(|e| e.to_string())?;
    Ok(Box::new(z))
}

/// Checks a backup file against its manifest's size and SHA-256.
///
/// # Errors
/// The file or manifest is unreadable, or differs.
pub fn check_sum(backup: &Path, m: &Manifest) -> Result<(), String> {
    let mut f = std::fs::File::open(backup)
        .map_err(|e| format!("cannot read {}: {e}", backup.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    if n != m.size {
        return Err(format!(
            "{}: {n} bytes, the manifest says {}",
            backup.display(),
            m.size
        ));
    }
    let sum = hex(ctx.finish().as_ref());
    if sum != m.sha256 {
        return Err(format!(
            "{}: SHA-256 {sum}, the manifest says {}: the file is corrupted",
            backup.display(),
            m.sha256
        ));
    }
    Ok(())
}

/// Restores a backup into `target` (which must exist; PostgreSQL objects are replaced).
/// Returns the bytes restored.
///
/// # Errors
/// A bad checksum, a wrong or missing key, or the restore tool failed.
pub fn restore(backup: &Path, key: Option<&Key>, target: &Database) -> Result<u64, String> {
    let m = read_manifest(backup)?;
    if m.engine != target.engine.name() {
        return Err(format!(
            "a {} backup cannot be restored into {}",
            m.engine,
            target.redacted()
        ));
    }
    check_sum(backup, &m)?;
    if let (Some(want), Some(k)) = (&m.key_id, key) {
        if *want != k.id() {
            return Err(format!(
                "the backup was encrypted with key {want}, this key is {}",
                k.id()
            ));
        }
    }
    let mut input = open_stream(backup, key)?;
    let creds = Credentials::new(target)?;
    let mut cmd = engine::restore(&creds, target)?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the restore tool: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut err_pipe = child.stderr.take().ok_or("no stderr")?;
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let copied = std::io::copy(&mut input, &mut stdin);
    drop(stdin);
    let status = child.wait().map_err(|e| e.to_string())?;
    let stderr = errs.join().unwrap_or_default();
    let n = copied.map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => format!("the restore tool stopped: {}", stderr.trim()),
        _ => e.to_string(),
    })?;
    if !status.success() {
        return Err(format!("restore failed ({status}): {}", stderr.trim()));
    }
    Ok(n)
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    /// The manifest.
    pub database: String,
    /// Bytes of dump read back.
    pub dump_bytes: u64,
    /// Tables compared in the scratch database (0 without one).
    pub tables: usize,
    /// Rows compared.
    pub rows: u64,
    /// Differences from the manifest (empty: it restores as recorded).
    pub problems: Vec<String>,
    /// The scratch database used (dropped after).
    pub scratch: Option<String>,
}

/// Verifies a backup: its checksum, that it decrypts and decompresses whole, and with a
/// scratch server, that it restores into a new database whose tables and rows match the
/// manifest (the database is dropped after).
///
/// # Errors
/// A problem that stops the check (unreadable, corrupted, wrong key, restore failed).
pub fn verify(
    backup: &Path,
    key: Option<&Key>,
    scratch: Option<&Database>,
) -> Result<Verified, String> {
    let m = read_manifest(backup)?;
    check_sum(backup, &m)?;
    if let (Some(want), Some(k)) = (&m.key_id, key) {
        if *want != k.id() {
            return Err(format!(
                "the backup was encrypted with key {want}, this key is {}",
                k.id()
            ));
        }
    }
    let mut v = Verified {
        database: m.database.clone(),
        ..Verified::default()
    };
    let mut input = open_stream(backup, key)?;
    v.dump_bytes = std::io::copy(&mut input, &mut std::io::sink()).map_err(|e| e.to_string())?;
    if v.dump_bytes != m.dump_bytes {
        v.problems.push(format!(
            "the dump is {} bytes, the manifest says {}",
            v.dump_bytes, m.dump_bytes
        ));
    }
    let Some(server) = scratch else {
        return Ok(v);
    };
    let name = format!(
        "rampart_verify_{}",
        &hex(&{
            let mut b = [0u8; 4];
            let _ = aws_lc_rs::rand::fill(&mut b);
            b
        })
    );
    let target = server.with_name(&name);
    let creds = Credentials::new(server)?;
    engine::create_or_drop(&creds, server, &name, true)?;
    v.scratch = Some(name.clone());
    let restored = restore(backup, key, &target).and_then(|_| {
        let mut s = engine::Session::open(&creds, &target)?;
        s.counts()
    });
    let dropped = engine::create_or_drop(&creds, server, &name, false);
    let counts = restored?;
    dropped?;
    let want: std::collections::BTreeMap<&str, u64> =
        m.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    let got: std::collections::BTreeMap<&str, u64> =
        counts.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    for (t, n) in &want {
        match got.get(t) {
            None => v.problems.push(format!("table {t}: missing after restore")),
            Some(g) if g != n => v
                .problems
                .push(format!("table {t}: {g} rows restored, {n} recorded")),
            Some(_) => {}
        }
    }
    for t in got.keys().filter(|t| !want.contains_key(*t)) {
        v.problems
            .push(format!("table {t}: restored but not recorded"));
    }
    v.tables = got.len();
    v.rows = got.values().sum();
    Ok(v)
}
