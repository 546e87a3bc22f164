//! Command-line interface (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// One binary that puts a web application into production safely.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the edge. Without a config file, serves a demo site on https://localhost:8443.
    Serve(ServeArgs),
    /// Test a config file (like `nginx -t`): prints `ok` or every error; exits 0 or 1.
    Check(CheckArgs),
    /// Ask a running edge to reload its config (through the admin API of that config).
    Reload(ReloadArgs),
    /// Ask a running edge whether it is ready (`GET /ready` on the admin API of that
    /// config): exits 0 when it is, 1 when not or unreachable. For container health checks.
    Ready(ReloadArgs),
    /// Check a production setup (edge config, application environment, certificates, key
    /// files, git repository) against the PF-* rules; exits 1 on any error finding.
    Preflight(PreflightArgs),
    /// Generate secrets, fill `.env` placeholders, rotate a secret with an overlap.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Grade a live deployment from the outside (any site): the MDN Observatory HTTP grade,
    /// the SSL Labs TLS grade, and the VF-* checks; exits 1 below --min-grade or on any error.
    Verify(VerifyArgs),
    /// Integrity manifests: build one of directories, sign it, verify a tree against it.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Translate another server's config into rampart.toml.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Database backups: run one, verify one (restored into a scratch database), restore one.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// License tokens: read and judge one (support), or issue one (vendor).
    #[command(subcommand)]
    License(LicenseCommand),
    /// Print the version.
    Version,
    /// The config's JSON Schema, its reference or a commented example, from the code.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script: `rampart completions bash > /etc/bash_completion.d/rampart`.
    Completions(CompletionsArgs),
    /// Write the manual pages (rampart.1 and one per subcommand) into a directory, or print
    /// rampart.1: `rampart man | man -l -`.
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// The JSON Schema of rampart.toml, for editors (taplo / Even Better TOML).
    Schema,
    /// The Markdown reference of every key (docs/config.md).
    Reference,
    /// A config with every key, commented out.
    Example,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write rampart.1 and rampart-SUBCOMMAND.1 here instead of printing rampart.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) out_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Config file. Default: ./rampart.toml if present, else the embedded demo config.
    #[arg(short, long, value_name = "FILE", env = "RAMPART_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Override `server.http` (e.g. 127.0.0.1:0 for a free port).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// Override `server.https`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) https: Option<SocketAddr>,
    /// Override `server.workers`.
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Override `server.state_dir` (where the development certificate is kept).
    #[arg(long, value_name = "DIR", env = "RAMPART_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Accept a preflight finding knowingly (`PF-CRT-02` or `PF-CSP-01:routes[1]`); it is
    /// written to the audit log at start. Repeatable.
    #[arg(long = "allow", value_name = "RULE_ID")]
    pub(crate) allow: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Junit,
}

#[derive(Debug, Args)]
pub(crate) struct PreflightArgs {
    /// Edge config. Default: ./rampart.toml when present (without one, only the
    /// environment and repository are checked).
    #[arg(short, long, value_name = "FILE", env = "RAMPART_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The application's `.env` file (default: the config's `server.env_file`). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) env_file: Vec<PathBuf>,
    /// Also check this process's environment as the application's.
    #[arg(long)]
    pub(crate) process_env: bool,
    /// The application's git repository (default: `[preflight] repo`, else the config's
    /// directory when it is inside one).
    #[arg(long, value_name = "DIR")]
    pub(crate) repo: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM) for the chain check.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// A key the environment must have: `KEY` or `KEY:type` (string, secret, url, int,
    /// bool, email). Repeatable.
    #[arg(long, value_name = "KEY[:TYPE]")]
    pub(crate) require: Vec<String>,
    /// Accept a finding knowingly (`PF-CRT-02` or `PF-CSP-01:routes[1]`). Repeatable.
    #[arg(long = "allow", value_name = "RULE_ID")]
    pub(crate) allow: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The site: https://host[:port] (http:// for a site without TLS, graded as such).
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// The plain-HTTP port for the redirect check (default 80 when the URL uses 443).
    #[arg(long, value_name = "N")]
    pub(crate) http_port: Option<u16>,
    /// Another path whose headers and cookies are checked. Repeatable.
    #[arg(long = "path", value_name = "P")]
    pub(crate) paths: Vec<String>,
    /// A path that must refuse anonymous requests (401/403). Repeatable.
    #[arg(long = "protected", value_name = "P")]
    pub(crate) protected: Vec<String>,
    /// A path that requires a client certificate (mutual TLS): a client without one must
    /// be refused (403, or the handshake). Repeatable; with --expect-config, every route
    /// with `client_cert = "required"` is probed as well.
    #[arg(long = "mtls", value_name = "P")]
    pub(crate) mtls: Vec<String>,
    /// The login route: its cookies are checked; with --active its limit is probed.
    #[arg(long, value_name = "P")]
    pub(crate) login: Option<String>,
    /// The health endpoint (default /health; skipped when that answers 404).
    #[arg(long, value_name = "P")]
    pub(crate) health: Option<String>,
    /// Health probes to send.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) health_probes: usize,
    /// Slowest acceptable health answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub(crate) health_max_ms: u64,
    /// A WebSocket path, upgraded with --active.
    #[arg(long, value_name = "P")]
    pub(crate) websocket: Option<String>,
    /// Also send probes that change state: N+1 wrong logins (expects 429), a 1 GiB body
    /// declaration (expects 413), a WebSocket upgrade (expects 101).
    #[arg(long)]
    pub(crate) active: bool,
    /// Wrong login attempts with --active.
    #[arg(long, value_name = "N", default_value_t = 11)]
    pub(crate) login_attempts: usize,
    /// Check that the live site matches this rampart config (headers, HSTS, auth, limits,
    /// CORS, redirect per route).
    #[arg(long, value_name = "FILE")]
    pub(crate) expect_config: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM), for a private CA.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Grade even when the certificate does not verify (reported as a warning).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Per-probe timeout in seconds.
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub(crate) timeout: u64,
    /// The least grade that passes, for both grades (A+, A, A-, B+, B, …, F).
    #[arg(long, value_name = "GRADE", default_value = "A")]
    pub(crate) min_grade: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Print new secrets of the given kinds (token, jwt-hs256, fernet, api-key, ed25519,
    /// rsa, password), or fill every placeholder of a `.env` file in place.
    Generate(GenerateArgs),
    /// Give KEY a new value in a `.env` file and keep the old one in KEY_PREVIOUS (both
    /// accepted during the overlap); `--finish` drops KEY_PREVIOUS.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Kinds to print (default: token).
    #[arg(value_name = "KIND")]
    pub(crate) kinds: Vec<String>,
    /// Fill this file's placeholders in place (atomic, mode 0600, old file kept as .bak).
    #[arg(long, value_name = "FILE")]
    pub(crate) env_file: Option<PathBuf>,
    /// Write the filled file (the default with --env-file; kept for scripts).
    #[arg(long)]
    pub(crate) write: bool,
    /// Show which keys would be filled, change nothing.
    #[arg(long, conflicts_with = "write")]
    pub(crate) dry_run: bool,
    /// Random bytes in a `token`.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) bytes: usize,
    /// RSA key size (2048, 3072, 4096).
    #[arg(long, value_name = "BITS", default_value_t = 3072)]
    pub(crate) bits: usize,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// The variable to rotate (e.g. JWT_SECRET).
    pub(crate) key: String,
    /// The `.env` file holding it.
    #[arg(long, value_name = "FILE", default_value = ".env")]
    pub(crate) env_file: PathBuf,
    /// End the overlap: remove KEY_PREVIOUS.
    #[arg(long)]
    pub(crate) finish: bool,
    /// The edge config (for the reload command printed).
    #[arg(short, long, value_name = "FILE", default_value = "rampart.toml")]
    pub(crate) config: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Config file to test.
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "rampart.toml",
        env = "RAMPART_CONFIG"
    )]
    pub(crate) config: PathBuf,
    /// Also show the running edge's effective state (pools, servers, weights, routes)
    /// from its admin API.
    #[arg(long)]
    pub(crate) live: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// Config file of the running edge (its [admin] section says where to ask).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "rampart.toml",
        env = "RAMPART_CONFIG"
    )]
    pub(crate) config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ManifestCommand {
    /// Write the SHA-256, size and mode of every file under PATH… (links recorded, never
    /// followed) to a JSON manifest.
    Build(ManifestBuildArgs),
    /// Sign a manifest with a PEM private key (Ed25519 by default; RSA-PSS, RS256, ES256),
    /// writing a detached base64 signature.
    Sign(ManifestSignArgs),
    /// Check a manifest's signature, then every file: each changed, missing and extra file
    /// is named; exits 1 on any.
    Verify(ManifestVerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ManifestBuildArgs {
    /// Directories or files to describe (each a root of the manifest: static roots,
    /// rampart's own config, any other file).
    #[arg(required = true, value_name = "PATH")]
    pub(crate) dirs: Vec<PathBuf>,
    /// Where to write the manifest.
    #[arg(short, long, value_name = "FILE", default_value = "integrity.json")]
    pub(crate) output: PathBuf,
    /// Leave out paths matching this glob (relative to the root; `*` stops at `/`, `**`
    /// crosses it). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// The version of what is described, recorded in the manifest.
    #[arg(long = "release", value_name = "VERSION")]
    pub(crate) release: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ManifestSignArgs {
    /// The manifest.
    #[arg(value_name = "MANIFEST")]
    pub(crate) manifest: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC), e.g. from `rampart secrets generate ed25519`.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// ed25519, rsa-pss (RSA default), rs256 or es256 (EC default).
    #[arg(long, value_name = "ALG")]
    pub(crate) alg: Option<String>,
    /// Where to write the signature (default: MANIFEST.sig).
    #[arg(long, value_name = "FILE")]
    pub(crate) signature: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ManifestVerifyArgs {
    /// The manifest.
    #[arg(value_name = "MANIFEST")]
    pub(crate) manifest: PathBuf,
    /// The signer's PEM public key.
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: Option<PathBuf>,
    /// The detached signature (default: MANIFEST.sig).
    #[arg(long, value_name = "FILE")]
    pub(crate) signature: Option<PathBuf>,
    /// Where a root is now, when not where the manifest says (in the manifest's order; a
    /// recorded relative root is found beside the manifest). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Vec<PathBuf>,
    /// Check the files without checking who signed the list.
    #[arg(long)]
    pub(crate) unsigned: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LicenseCommand {
    /// Verify a license token with the vendor's public key and print its claims and
    /// verdict; exits 1 when it does not verify, has expired or is not valid yet.
    Inspect(LicenseInspectArgs),
    /// Sign a license token with the vendor's private key (RS256 for RSA keys, ES256 for
    /// P-256, EdDSA for Ed25519) and print it.
    Issue(LicenseIssueArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LicenseInspectArgs {
    /// The token, a file holding it, or `-` for standard input.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: String,
    /// The vendor's PEM public key.
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: PathBuf,
    /// The one algorithm accepted (RS256, ES256, EdDSA…).
    #[arg(long, value_name = "ALG")]
    pub(crate) algorithm: Option<String>,
    /// The issuer (`iss`) required.
    #[arg(long)]
    pub(crate) issuer: Option<String>,
    /// The audience (`aud`) required.
    #[arg(long)]
    pub(crate) audience: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct LicenseIssueArgs {
    /// The vendor's PEM private key.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// Who it is for.
    #[arg(long)]
    pub(crate) customer: String,
    /// Expiry: a date (2027-12-31, the end of that day UTC) or RFC 3339 time.
    #[arg(long, value_name = "DATE", conflicts_with = "days")]
    pub(crate) expires: Option<String>,
    /// Expiry in days from now.
    #[arg(long, value_name = "N")]
    pub(crate) days: Option<u32>,
    /// Signing algorithm (default from the key: RS256, ES256 or EdDSA).
    #[arg(long, value_name = "ALG")]
    pub(crate) alg: Option<String>,
    /// A licensed feature. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) feature: Vec<String>,
    /// Seats (users), for the application to enforce.
    #[arg(long, value_name = "N")]
    pub(crate) seats: Option<u64>,
    /// Instances allowed at once.
    #[arg(long, value_name = "N")]
    pub(crate) max_instances: Option<u64>,
    /// Bind it to one installation (its `installation.id`).
    #[arg(long, value_name = "ID")]
    pub(crate) installation_id: Option<String>,
    /// License id (`jti`; default: random).
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
    /// Issuer (`iss`).
    #[arg(long)]
    pub(crate) issuer: Option<String>,
    /// Audience (`aud`, the product).
    #[arg(long)]
    pub(crate) audience: Option<String>,
    /// Write the token here (0600) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Dump a PostgreSQL or MySQL/MariaDB database through zstd (and AES-256-GCM with a
    /// key) into DIR, with a manifest; then apply retention and the copy.
    Run(BackupRunArgs),
    /// Check a backup: checksum, decryption, the whole dump read back, and with
    /// --database-scratch a restore into a new database compared table by table.
    Verify(BackupVerifyArgs),
    /// Restore a backup into an existing database (PostgreSQL objects are replaced).
    Restore(BackupRestoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BackupDb {
    /// The database URL (postgres://… or mysql://…). Keep the password off the command
    /// line: set DATABASE_URL, or use --database-file.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database: Option<String>,
    /// A file holding the database URL.
    #[arg(long, value_name = "FILE", conflicts_with = "database")]
    pub(crate) database_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupRunArgs {
    #[command(flatten)]
    pub(crate) db: BackupDb,
    /// Where backups go.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// Delete backups older than this (30d); never the newest good one.
    #[arg(long, value_name = "AGE")]
    pub(crate) keep: Option<String>,
    /// Keep at most this many backups of the database.
    #[arg(long, value_name = "N")]
    pub(crate) keep_count: Option<usize>,
    /// Encrypt with this key file (32 bytes, `rampart secrets generate backup-key`).
    #[arg(long, alias = "key-file", value_name = "FILE")]
    pub(crate) encrypt_key_file: Option<PathBuf>,
    /// zstd level (1–19).
    #[arg(long, default_value_t = 3)]
    pub(crate) level: i32,
    /// Also copy the backup and its manifest to this directory (another mount).
    #[arg(long, value_name = "DIR")]
    pub(crate) copy_to: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupVerifyArgs {
    /// The backup file.
    #[arg(value_name = "BACKUP")]
    pub(crate) backup: PathBuf,
    /// Its key, when encrypted.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// A server to restore into (a new database is made there and dropped after); the
    /// URL's database is the one connected to for that.
    #[arg(
        long,
        value_name = "URL",
        env = "DATABASE_SCRATCH_URL",
        hide_env_values = true
    )]
    pub(crate) database_scratch: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct BackupRestoreArgs {
    /// The backup file.
    #[arg(value_name = "BACKUP")]
    pub(crate) backup: PathBuf,
    #[command(flatten)]
    pub(crate) db: BackupDb,
    /// Its key, when encrypted.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Translate an nginx config (includes followed): each block commented with its source
    /// line, every directive not translated listed with its line and why.
    Nginx(ImportNginxArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportNginxArgs {
    /// The nginx config (nginx.conf or a site file).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Write the rampart config here (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// nginx's configuration prefix, where relative includes are found (default: the
    /// nearest directory above FILE holding an nginx.conf, else FILE's directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) conf_dir: Option<PathBuf>,
}
