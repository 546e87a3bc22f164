//! `rampart backup` against real servers started here: PostgreSQL (`initdb`/`pg_ctl`, as
//! the `postgres` user when the tests run as root) and MariaDB (`mariadb-install-db`/
//! `mariadbd`), each on a free port in a temporary directory. Data written, backed up,
//! the database dropped, restored, compared row for row; encryption, corruption,
//! retention, and `ps` during a backup.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rampart_test_support::TempDir;

use crate::harness::bin;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed by .ci/run")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin").join(tool))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| panic!("no {tool}"))
}

/// Runs `program` as the `postgres` user when root (PostgreSQL refuses to run as root).
fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub(crate) struct Postgres {
    pub(crate) port: u16,
    dir: TempDir,
}

pub(crate) const PG_PASSWORD: &str = "s3cr:et-pg\\pass";

impl Postgres {
    pub(crate) fn start() -> Self {
        let dir = TempDir::new("pg");
        let port = rampart_test_support::free_port();
        std::fs::write(dir.path().join("pw"), PG_PASSWORD).unwrap();
        if is_root() {
            assert!(Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        let out = as_pg(&pg_bin("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "scram-sha-256", "-U", "postgres", "--pwfile"])
            .arg(dir.path().join("pw"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = as_pg(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.path().display()
            ))
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { port, dir }
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            "s3cr%3Aet-pg%5Cpass", self.port
        )
    }

    /// psql through the socket directory, as the superuser.
    pub(crate) fn sql(&self, db: &str, sql: &str) -> String {
        let out = as_pg(Path::new("/usr/bin/psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PG_PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_pg(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

struct Maria {
    port: u16,
    dir: TempDir,
    child: std::process::Child,
}

const MARIA_PASSWORD: &str = "m@ria\"pw:1";

impl Maria {
    fn start() -> Self {
        let dir = TempDir::new("mariadb");
        let port = rampart_test_support::free_port();
        let out = Command::new("mariadb-install-db")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(if is_root() {
                &["--user=root"][..]
            } else {
                &[][..]
            })
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("mariadb-server is installed by .ci/run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .args(if is_root() {
                &["--user=root"][..]
            } else {
                &[][..]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = Self { port, dir, child };
        let end = Instant::now() + Duration::from_secs(30);
        while !m.dir.path().join("sock").exists() {
            assert!(Instant::now() < end, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        m.sql(
            "",
            &format!(
                "CREATE USER app@'%' IDENTIFIED BY '{}'; GRANT ALL ON *.* TO app@'%';",
                MARIA_PASSWORD.replace('\'', "''")
            ),
        );
        m
    }

    fn url(&self, db: &str) -> String {
        format!("mysql://app:m%40ria%22pw%3A1@127.0.0.1:{}/{db}", self.port)
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .args(if db.is_empty() {
                vec![]
            } else {
                vec![db.to_owned()]
            })
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rampart(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.args(args).current_dir(dir).env_remove("DATABASE_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, want: &str) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "should fail ({want}): {all}");
    assert!(all.contains(want), "wanted {want:?}: {all}");
}

/// The backup files (not manifests) in `dir`, sorted.
fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy().into_owned();
                    !n.starts_with('.') && (n.ends_with(".zst") || n.ends_with(".zst.enc"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A digest of every row of the test tables, in order.
fn pg_digest(pg: &Postgres, db: &str) -> String {
    pg.sql(
        db,
        "SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o; \
         SELECT md5(coalesce(string_agg(i::text, ',' ORDER BY id), '')) FROM billing.\"Invoice\" i",
    )
}

/// PostgreSQL: an encrypted backup (progress as JSON lines, no password in `ps` while it
/// runs), the database dropped and restored row for row; without the key, or with
/// another, nothing restores; `verify` restores it into a scratch database and compares
/// every table, and finds a flipped byte.
#[test]
fn postgres_backup_restores_row_for_row_and_only_with_its_key() {
    let pg = Postgres::start();
    let tmp = TempDir::new("pg-backup");
    let dir = tmp.path();
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql(
        "shop",
        "CREATE TABLE orders (id serial PRIMARY KEY, item text, qty int, note text, raw bytea); \
         INSERT INTO orders (item, qty, note, raw) SELECT 'item ' || g, g % 97, \
           CASE WHEN g % 10 = 0 THEN NULL ELSE 'naïve café ☕ ' || md5(g::text) END, \
           decode(md5(g::text), 'hex') FROM generate_series(1, 300000) g; \
         CREATE SCHEMA billing; CREATE TABLE billing.\"Invoice\" (id int PRIMARY KEY, total numeric); \
         INSERT INTO billing.\"Invoice\" SELECT g, g * 1.25 FROM generate_series(1, 1234) g;",
    );
    let before = pg_digest(&pg, "shop");
    let key = String::from_utf8(rampart(dir, &["secrets", "generate", "backup-key"], &[]).stdout)
        .unwrap();
    std::fs::write(dir.join("backup.key"), key.trim()).unwrap();
    let url = pg.url("shop");

    // The backup runs while `ps` is read: no password on any command line.
    let mut child = bin()
        .args([
            "backup",
            "run",
            "--dir",
            "backups",
            "--encrypt-key-file",
            "backup.key",
        ])
        .current_dir(dir)
        .env("DATABASE_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen_dump = false;
    while child.try_wait().unwrap().is_none() {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(!ps.contains("s3cr:et") && !ps.contains("s3cr%3Aet"), "{ps}");
        seen_dump |= ps.lines().any(|l| l.contains("pg_dump"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("shop (2 tables, 301234 rows)"), "{stdout}");
    assert!(seen_dump, "pg_dump was never seen running");
    let progress = String::from_utf8_lossy(&out.stderr);
    let last: serde_json::Value = serde_json::from_str(progress.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "backup.progress", "{progress}");
    let files = backups(&dir.join("backups"));
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].clone();
    assert!(
        file.to_string_lossy().ends_with(".pgdump.zst.enc"),
        "{file:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", file.display())).unwrap())
            .unwrap();
    assert_eq!(manifest["engine"], "postgresql");
    assert_eq!(manifest["encryption"], "aes-256-gcm-stream");
    assert_eq!(manifest["tables"][0]["name"], "billing.\"Invoice\"");
    assert_eq!(manifest["tables"][1]["rows"], 300_000);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let f = file.to_str().unwrap();

    // Dropped, then restored only with its key.
    pg.sql("postgres", "DROP DATABASE shop");
    pg.sql("postgres", "CREATE DATABASE shop");
    failed(
        &rampart(dir, &["backup", "restore", f], &[("DATABASE_URL", &url)]),
        "give its key",
    );
    std::fs::write(
        dir.join("other.key"),
        rampart(dir, &["secrets", "generate", "backup-key"], &[]).stdout,
    )
    .unwrap();
    failed(
        &rampart(
            dir,
            &["backup", "restore", f, "--key-file", "other.key"],
            &[("DATABASE_URL", &url)],
        ),
        "encrypted with key",
    );
    ok(&rampart(
        dir,
        &["backup", "restore", f, "--key-file", "backup.key"],
        &[("DATABASE_URL", &url)],
    ));
    assert_eq!(pg_digest(&pg, "shop"), before);

    // Verify: restored into a scratch database, compared, dropped.
    let scratch = pg.url("postgres");
    let out = ok(&rampart(
        dir,
        &[
            "backup",
            "verify",
            f,
            "--key-file",
            "backup.key",
            "--format",
            "json",
        ],
        &[("DATABASE_SCRATCH_URL", &scratch)],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "passed", "{v:#}");
    assert_eq!(v["result"]["tables"], 2);
    assert_eq!(v["result"]["rows"], 301_234);
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'rampart_verify_%'"
        ),
        "0"
    );
    // One flipped byte: the checksum says so before anything is decrypted.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    failed(
        &rampart(
            dir,
            &["backup", "verify", f, "--key-file", "backup.key"],
            &[],
        ),
        "corrupted",
    );
    // Also with the manifest's checksum made to match: the decryption refuses it.
    let sum = sha256_hex(&bytes);
    let mtext = std::fs::read_to_string(format!("{f}.json")).unwrap();
    let old = manifest["sha256"].as_str().unwrap();
    std::fs::write(format!("{f}.json"), mtext.replace(old, &sum)).unwrap();
    failed(
        &rampart(
            dir,
            &["backup", "verify", f, "--key-file", "backup.key"],
            &[],
        ),
        "does not decrypt",
    );
}

fn sha256_hex(b: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// MariaDB: plain and encrypted backups of a database with routines, triggers, binary
/// and NULL values, restored row for row after a drop; `verify` on a scratch database.
#[test]
fn mariadb_backup_restores_row_for_row() {
    let m = Maria::start();
    let tmp = TempDir::new("maria-backup");
    let dir = tmp.path();
    m.sql("", "CREATE DATABASE tracker");
    m.sql(
        "tracker",
        "CREATE TABLE issues (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200), body BLOB, \
           created DATETIME(6)) CHARACTER SET utf8mb4; \
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, issue INT); \
         CREATE TRIGGER log_issue AFTER INSERT ON issues FOR EACH ROW INSERT INTO audit (issue) VALUES (NEW.id); \
         CREATE PROCEDURE open_issues() SELECT COUNT(*) FROM issues; \
         INSERT INTO issues (title, body, created) VALUES ('naïve ☕ it''s', 0x00FF10, '2026-12-03 06:00:00.123456'), \
           ('null body', NULL, NULL); \
         INSERT INTO issues (title, body, created) SELECT CONCAT('bulk ', seq), UNHEX(MD5(seq)), NOW(6) \
           FROM seq_1_to_5000;",
    );
    let digest = |m: &Maria| {
        m.sql(
            "tracker",
            "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, title, HEX(body), created) ORDER BY id SEPARATOR ',')) FROM issues; \
             SELECT COUNT(*) FROM audit; \
             SELECT GROUP_CONCAT(ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'tracker'; \
             SELECT GROUP_CONCAT(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'tracker';",
        )
    };
    m.sql("", "SET GLOBAL group_concat_max_len = 104857600");
    let before = digest(&m);
    std::fs::write(dir.join("db.url"), m.url("tracker")).unwrap();
    std::fs::write(
        dir.join("backup.key"),
        rampart(dir, &["secrets", "generate", "backup-key"], &[]).stdout,
    )
    .unwrap();
    for args in [
        &["backup", "run", "--database-file", "db.url", "--dir", "b"][..],
        &[
            "backup",
            "run",
            "--database-file",
            "db.url",
            "--dir",
            "b",
            "--encrypt-key-file",
            "backup.key",
        ][..],
    ] {
        let out = ok(&rampart(dir, args, &[]));
        assert!(out.contains("tracker (2 tables, 10004 rows)"), "{out}");
    }
    let files = backups(&dir.join("b"));
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let f = f.to_str().unwrap();
        let key: &[&str] = if f.ends_with(".enc") {
            &["--key-file", "backup.key"]
        } else {
            &[]
        };
        m.sql("", "DROP DATABASE tracker; CREATE DATABASE tracker");
        let mut args = vec!["backup", "restore", f, "--database-file", "db.url"];
        args.extend_from_slice(key);
        ok(&rampart(dir, &args, &[]));
        assert_eq!(digest(&m), before, "{f}");
        let mut args = vec!["backup", "verify", f, "--database-scratch"];
        let scratch = m.url("mysql");
        args.push(&scratch);
        args.extend_from_slice(key);
        let out = ok(&rampart(dir, &args, &[]));
        assert!(out.contains("2 tables, 10004 rows as recorded"), "{out}");
    }
}

/// Retention: `--keep-count` keeps the newest N; `--keep` deletes exactly the backups
/// older than the age, and never the newest good backup, even when it is older itself.
#[test]
fn retention_removes_exactly_the_expired_backups() {
    let pg = Postgres::start();
    let tmp = TempDir::new("pg-retention");
    let dir = tmp.path();
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)",
    );
    let url = pg.url("app");
    let env = [("DATABASE_URL", url.as_str())];
    for _ in 0..4 {
        ok(&rampart(
            dir,
            &["backup", "run", "--dir", "b", "--keep-count", "3"],
            &env,
        ));
    }
    // Oldest first, by when each was made (several are made in one second).
    let mut kept = backups(&dir.join("b"));
    kept.sort_by_key(|f| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{}.json", f.display())).unwrap())
                .unwrap();
        m["started_ms"].as_u64().unwrap()
    });
    assert_eq!(kept.len(), 3, "{kept:?}");
    // Age the two oldest by 40 days (their manifests say when they were made).
    for f in &kept[..2] {
        let mp = format!("{}.json", f.display());
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
        let t = m["started_unix"].as_i64().unwrap();
        m["started_unix"] = (t - 40 * 86_400).into();
        std::fs::write(&mp, serde_json::to_vec(&m).unwrap()).unwrap();
    }
    // A file that is not a backup of this database is never touched.
    std::fs::write(dir.join("b/notes.txt"), "keep me").unwrap();
    let out = ok(&rampart(
        dir,
        &["backup", "run", "--dir", "b", "--keep", "30d"],
        &env,
    ));
    assert_eq!(out.matches("deleted ").count(), 2, "{out}");
    let now = backups(&dir.join("b"));
    assert_eq!(now.len(), 2, "{out}\n{kept:?}\n{now:?}");
    assert!(!now.contains(&kept[0]) && !now.contains(&kept[1]) && now.contains(&kept[2]));
    assert!(dir.join("b/notes.txt").exists());
    // --keep 0s keeps the newest good backup whatever it says.
    let out = ok(&rampart(
        dir,
        &[
            "backup",
            "run",
            "--dir",
            "b",
            "--keep",
            "0s",
            "--copy-to",
            "offsite",
        ],
        &env,
    ));
    let left: Vec<PathBuf> = backups(&dir.join("b"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "zst"))
        .collect();
    assert_eq!(left.len(), 1, "{out}\n{left:?}");
    let copied = backups(&dir.join("offsite"));
    assert_eq!(
        copied
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>(),
        [left[0].file_name().unwrap().to_owned()]
    );
    assert!(dir
        .join("offsite")
        .join(format!(
            "{}.json",
            left[0].file_name().unwrap().to_string_lossy()
        ))
        .exists());
    // Bad inputs: clear errors, nothing left behind.
    failed(
        &rampart(dir, &["backup", "run", "--dir", "b"], &[]),
        "give the database",
    );
    failed(
        &rampart(
            dir,
            &["backup", "run", "--dir", "b"],
            &[("DATABASE_URL", "redis://x/0")],
        ),
        "expected postgres://",
    );
    let wrong = url.replace("s3cr%3Aet", "wrong");
    failed(
        &rampart(
            dir,
            &["backup", "run", "--dir", "b"],
            &[("DATABASE_URL", &wrong)],
        ),
        "password authentication failed",
    );
    std::fs::write(dir.join("weak.key"), "hunter2").unwrap();
    failed(
        &rampart(
            dir,
            &[
                "backup",
                "run",
                "--dir",
                "b",
                "--encrypt-key-file",
                "weak.key",
            ],
            &env,
        ),
        "not a backup key",
    );
    assert!(std::fs::read_dir(dir.join("b")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

/// `[[backups]]` in `serve`: an every-second schedule backs up (encrypted, verified by a
/// scratch restore after each run, `keep_count` applied), `/health` and the metrics show
/// it, each run is audited; with the database gone the next run fails, `/health` is
/// degraded and the failure audited, and the edge keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_scheduled_backups_and_reports_them() {
    use rampart_test_support::client;
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE crm");
    pg.sql("crm", "CREATE TABLE contacts (id int, email text); INSERT INTO contacts SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 500) g");
    let tmp = TempDir::new("serve-backups");
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("db.url"), pg.url("crm")).unwrap();
    std::fs::write(
        dir.join("backup.key"),
        rampart(&dir, &["secrets", "generate", "backup-key"], &[]).stdout,
    )
    .unwrap();
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [logging]\naccess = \"off\"\naudit = \"audit.log\"\n\
         [[backups]]\nname = \"crm\"\ndatabase_file = \"db.url\"\nschedule = \"* * * * * *\"\n\
         dir = \"backups\"\nkeep_count = 2\nkey_file = \"backup.key\"\nverify_scratch = \"{}\"\n\
         [[routes]]\npath = \"/\"\nrespond = {{ body = \"up\" }}\n",
        pg.url("postgres")
    );
    let edge = crate::harness::start_in(tmp, &toml).await;
    let admin = edge.running.as_ref().unwrap().live.admin_addr().unwrap();
    let health = || async move {
        client::plain(admin, client::get("admin", "/health"))
            .await
            .json()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let h = loop {
        let h = health().await;
        if h["backups"]["crm"]["status"] == "ok" && h["backups"]["crm"]["last_success"].is_string()
        {
            break h;
        }
        assert!(Instant::now() < deadline, "{h:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h["status"], "healthy", "{h:#}");
    assert_eq!(h["backups"]["crm"]["schedule"], "* * * * * *");
    let file = h["backups"]["crm"]["last_file"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(file.ends_with(".pgdump.zst.enc"), "{h:#}");
    let m = client::plain(admin, client::get("admin", "/metrics"))
        .await
        .text();
    let last = m
        .lines()
        .find(|l| l.starts_with("rampart_backup_last_success_timestamp_seconds{backup=\"crm\"}"))
        .unwrap_or_else(|| panic!("{m}"));
    assert!(
        last.split(' ').nth(1).unwrap().parse::<f64>().unwrap() > 1.7e9,
        "{last}"
    );
    assert!(
        m.contains("rampart_backup_size_bytes{backup=\"crm\"}"),
        "{m}"
    );
    // The audit writer batches its lines for a few milliseconds: wait for it.
    crate::harness::wait_audited(edge.dir.path(), "backup.succeeded", 1).await;
    // keep_count = 2 after a few more runs. A new backup is written (and verified) before
    // the oldest is pruned, so for a moment there are three: wait for a moment with two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = rampart_test_support::eventually(Duration::from_secs(2), || {
        (backups(&dir.join("backups")).len() <= 2).then_some(())
    })
    .await;
    assert!(kept.is_some(), "{:?}", backups(&dir.join("backups")));
    // The database goes away: the next run fails and says so.
    drop(pg);
    let deadline = Instant::now() + Duration::from_secs(20);
    let h = loop {
        let h = health().await;
        if h["backups"]["crm"]["status"] == "failed" {
            break h;
        }
        assert!(Instant::now() < deadline, "{h:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert!(
        h["backups"]["crm"]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{h:#}"
    );
    crate::harness::wait_audited(edge.dir.path(), "backup.failed", 1).await;
    assert_eq!(
        client::plain(edge.http(), client::get("x", "/"))
            .await
            .text(),
        "up"
    );
}

/// Preflight's PF-BAK-01: a backup directory readable by other users is an error, one
/// open to its group a warning, no key a warning and a key that is not 32 bytes an error;
/// a 0700 directory and a generated key pass.
#[test]
fn preflight_flags_open_backup_dirs_and_weak_or_missing_keys() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = TempDir::new("pf-backups");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("open")).unwrap();
    std::fs::set_permissions(dir.join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("group")).unwrap();
    std::fs::set_permissions(dir.join("group"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(dir.join("weak.key"), "hunter2").unwrap();
    std::fs::write(
        dir.join("good.key"),
        rampart(dir, &["secrets", "generate", "backup-key"], &[]).stdout,
    )
    .unwrap();
    let config = |entries: &str| {
        std::fs::write(
            dir.join("rampart.toml"),
            format!("[server]\nhttp = \"127.0.0.1:0\"\n{entries}[[routes]]\npath = \"/\"\nrespond = {{ body = \"x\" }}\n"),
        )
        .unwrap();
        let out = rampart(
            dir,
            &["preflight", "-c", "rampart.toml", "--format", "json"],
            &[],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut found: Vec<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == "PF-BAK-01")
            .map(|f| {
                format!(
                    "{} {}",
                    f["severity"].as_str().unwrap(),
                    f["subject"].as_str().unwrap()
                )
            })
            .collect();
        found.sort();
        found
    };
    let entry = |name: &str, d: &str, key: &str| {
        format!("[[backups]]\nname = \"{name}\"\ndatabase = \"postgres://u:p@db/{name}\"\nschedule = \"0 2 * * *\"\ndir = \"{d}\"\n{key}\n")
    };
    assert_eq!(
        config(&(entry("a", "open", "") + &entry("b", "group", "key_file = \"weak.key\""))),
        [
            "error backups[0].dir",
            "error backups[1].key",
            "warn backups[0].key",
            "warn backups[1].dir",
        ]
    );
    std::fs::set_permissions(dir.join("open"), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        config(&entry("a", "open", "key_file = \"good.key\"")),
        Vec::<String>::new()
    );
    // A bad schedule or database URL is a config error naming its key.
    let out = rampart(dir, &["check", "-c", "rampart.toml"], &[]);
    assert!(out.status.success());
    std::fs::write(
        dir.join("rampart.toml"),
        "[[backups]]\ndatabase = \"redis://x/0\"\nschedule = \"0 2 * * *\"\ndir = \"b\"\n\
         [[backups]]\ndatabase = \"postgres://x/db\"\nschedule = \"every night\"\ndir = \"b\"\n",
    )
    .unwrap();
    let out = rampart(dir, &["check", "-c", "rampart.toml"], &[]);
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("backups[0].database") && err.contains("backups[1].schedule"),
        "{err}"
    );
}
