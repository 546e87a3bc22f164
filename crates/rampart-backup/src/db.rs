//! The database: its URL, its credentials handed to the client tools without ever being
//! on a command line or in an environment `ps` shows (a 0600 password file in a private
//! directory, removed afterwards), and the tools' commands.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL (`pg_dump`, `pg_restore`, `psql`).
    Postgres,
    /// MySQL or MariaDB (`mysqldump`/`mariadb-dump`, `mysql`/`mariadb`).
    MySql,
}

impl Engine {
    /// Its name in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            Self::MySql => "mysql",
        }
    }
}

/// A database, from its URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// The server kind.
    pub engine: Engine,
    /// Host name or address (a path: a Unix socket directory).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password (never printed).
    pub password: Option<String>,
    /// Database name.
    pub name: String,
    /// Query parameters (`sslmode`, `sslrootcert`…), passed through.
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Database {
    /// Parses `postgres://user:pass@host:port/name?sslmode=require`, `postgresql://…`,
    /// `mysql://…` or `mariadb://…` (percent-encoded parts decoded).
    ///
    /// # Errors
    /// Another scheme, or no database name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let u = url::Url::parse(text.trim()).map_err(|e| format!("not a database URL: {e}"))?;
        let engine = match u.scheme() {
            "postgres" | "postgresql" => Engine::Postgres,
            "mysql" | "mariadb" => Engine::MySql,
            s => {
                return Err(format!(
                    "{s}://: expected postgres://, postgresql://, mysql:// or mariadb://"
                ))
            }
        };
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let name = dec(u.path().trim_start_matches('/'));
        if name.is_empty() || name.contains('/') {
            return Err("the URL names no database (…/NAME)".into());
        }
        let params: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let host = params
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.clone())
            .or_else(|| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into());
        Ok(Self {
            engine,
            port: u.port().unwrap_or(match engine {
                Engine::Postgres => 5432,
                Engine::MySql => 3306,
            }),
            host,
            user: if u.username().is_empty() {
                match engine {
                    Engine::Postgres => "postgres".into(),
                    Engine::MySql => "root".into(),
                }
            } else {
                dec(u.username())
            },
            password: u.password().map(dec),
            name,
            params: params.into_iter().filter(|(k, _)| k != "host").collect(),
        })
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        let scheme = match self.engine {
            Engine::Postgres => "postgresql",
            Engine::MySql => "mysql",
        };
        format!(
            "{scheme}://{}{}@{}:{}/{}",
            self.user,
            if self.password.is_some() { ":***" } else { "" },
            self.host,
            self.port,
            self.name
        )
    }

    /// The same server and credentials, another database.
    pub fn with_name(&self, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..self.clone()
        }
    }

    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// A private directory (0700) holding the password file (0600); removed on drop.
pub struct Credentials {
    dir: PathBuf,
    file: Option<PathBuf>,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            // Overwrite before unlinking: a short-lived secret still should not linger.
            if let Ok(len) = std::fs::metadata(f).map(|m| m.len()) {
                let _ = std::fs::write(f, vec![0u8; usize::try_from(len).unwrap_or(0)]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn private_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let name = crate::crypt::hex(&b);
    let dir = std::env::temp_dir().join(format!("rampart-backup-{name}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Credentials {
    /// Writes `db`'s password for its tools: a `.pgpass` line for PostgreSQL, an option
    /// file (`[client] password=…`) for MySQL/MariaDB.
    ///
    /// # Errors
    /// The temporary directory cannot be made.
    pub fn new(db: &Database) -> Result<Self, String> {
        let dir = private_dir()?;
        let mut c = Self { dir, file: None };
        if let Some(pw) = &db.password {
            let (name, text) = match db.engine {
                Engine::Postgres => {
                    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
                    ("pgpass", format!("*:*:*:{}:{}\n", esc(&db.user), esc(pw)))
                }
                Engine::MySql => {
                    let esc = pw.replace('\\', "\\\\").replace('"', "\\\"");
                    ("my.cnf", format!("[client]\npassword=\"{esc}\"\n"))
                }
            };
            let f = c.dir.join(name);
            write_private(&f, &text)?;
            c.file = Some(f);
        }
        Ok(c)
    }

    /// A tool's command for `db` with its connection and credentials (nothing secret in
    /// its arguments or environment).
    pub fn command(&self, db: &Database, program: &str) -> Command {
        let mut cmd = Command::new(program);
        // Nothing of ours leaks in: the tools read only what is set here.
        for k in ["PGPASSWORD", "MYSQL_PWD", "PGPASSFILE", "PGSERVICEFILE"] {
            cmd.env_remove(k);
        }
        match db.engine {
            Engine::Postgres => {
                if let Some(f) = &self.file {
                    cmd.env("PGPASSFILE", f);
                }
                for (k, env) in [
                    ("sslmode", "PGSSLMODE"),
                    ("sslrootcert", "PGSSLROOTCERT"),
                    ("sslcert", "PGSSLCERT"),
                    ("sslkey", "PGSSLKEY"),
                ] {
                    if let Some(v) = db.param(k) {
                        cmd.env(env, v);
                    }
                }
                cmd.args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user]);
                cmd.arg("--no-password");
            }
            Engine::MySql => {
                // --defaults-extra-file must come first.
                if let Some(f) = &self.file {
                    cmd.arg(format!("--defaults-extra-file={}", f.display()));
                }
                if db.host.starts_with('/') {
                    cmd.arg(format!("--socket={}", db.host));
                } else {
                    cmd.arg(format!("--host={}", db.host));
                    cmd.arg(format!("--port={}", db.port));
                    cmd.arg("--protocol=TCP");
                }
                cmd.arg(format!("--user={}", db.user));
                match db.param("ssl-mode").or_else(|| db.param("sslmode")) {
                    Some("REQUIRED" | "required" | "require") => {
                        cmd.arg("--ssl");
                    }
                    Some("VERIFY_IDENTITY" | "verify_identity" | "verify-full") => {
                        cmd.arg("--ssl-verify-server-cert");
                    }
                    _ => {}
                }
                if let Some(ca) = db.param("ssl-ca").or_else(|| db.param("sslrootcert")) {
                    cmd.arg(format!("--ssl-ca={ca}"));
                }
            }
        }
        cmd
    }
}

/// The first of `names` found on `PATH` (MariaDB renamed its tools).
pub fn tool(names: &[&str]) -> Result<String, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for n in names {
        if std::env::split_paths(&path).any(|d| d.join(n).is_file()) {
            return Ok((*n).to_owned());
        }
    }
    Err(format!("{} not found on PATH", names.join(" or ")))
}

/// `program --version`, first line.
pub fn tool_version(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_print_the_password() {
        let d =
            Database::parse("postgres://app:p%40ss%3Aw@db.internal:6543/shop?sslmode=verify-full")
                .unwrap();
        assert_eq!(
            (
                d.engine,
                d.host.as_str(),
                d.port,
                d.user.as_str(),
                d.name.as_str()
            ),
            (Engine::Postgres, "db.internal", 6543, "app", "shop")
        );
        assert_eq!(d.password.as_deref(), Some("p@ss:w"));
        assert_eq!(d.redacted(), "postgresql://app:***@db.internal:6543/shop");
        assert!(!format!("{d:?}").contains("p@ss"));
        let m = Database::parse("mariadb://root@127.0.0.1/tracker").unwrap();
        assert_eq!((m.engine, m.port), (Engine::MySql, 3306));
        assert!(Database::parse("redis://x/0").is_err());
        assert!(Database::parse("postgres://x@h/").is_err());
    }

    #[test]
    fn the_password_file_is_private_and_removed() {
        let d = Database::parse("postgres://app:se:cr\\et@h/db").unwrap();
        let c = Credentials::new(&d).unwrap();
        let f = c.file.clone().unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "*:*:*:app:se\\:cr\\\\et\n"
        );
        let cmd = c.command(&d, "pg_dump");
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("se:cr")), "{args:?}");
        drop(c);
        assert!(!f.exists());
    }
}
