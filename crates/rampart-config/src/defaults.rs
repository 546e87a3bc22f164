//! Every key's default, as named constants: validation applies them and the reference
//! (`docs/config.md`'s `default` column, the schema's `default`) shows them, so what is
//! documented is what runs. A default that is not one value (the cores available, the
//! routes' hosts) is a sentence in [`shown`] beside the constants.

use std::time::Duration;

use serde_json::Value;

/// `[server]`.
pub mod server {
    use super::Duration;
    /// `server.shutdown_grace`.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// `server.header_read_timeout`.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
    /// `server.idle_timeout`.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `server.park_after`.
    pub const PARK_AFTER: Duration = Duration::from_millis(100);
    /// `server.tls_handshake_timeout`.
    pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `server.max_header_size`, bytes.
    pub const MAX_HEADER_SIZE: u64 = 64 * 1024;
    /// `server.max_headers`.
    pub const MAX_HEADERS: usize = 100;
    /// `server.max_connections`.
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// `server.h2_max_concurrent_streams`.
    pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
    /// `server.h2_max_pending_reset_streams`.
    pub const H2_MAX_PENDING_RESET_STREAMS: usize = 20;
    /// `server.h2c`.
    pub const H2C: bool = false;
    /// `server.h1_fast_path`.
    pub const H1_FAST_PATH: bool = true;
    /// `server.watch_config`.
    pub const WATCH_CONFIG: bool = false;
    /// `server.misdirected`.
    pub const MISDIRECTED: &str = "421";
    /// `server.environment`.
    pub const ENVIRONMENT: &str = "development";
}

/// `[tls]` and `[tls.acme]`.
pub mod tls {
    use super::Duration;
    /// `tls.min_version`.
    pub const MIN_VERSION: &str = "1.2";
    /// `tls.profile`.
    pub const PROFILE: &str = "intermediate";
    /// `tls.session_tickets`.
    pub const SESSION_TICKETS: bool = true;
    /// `tls.prefer_server_order`.
    pub const PREFER_SERVER_ORDER: bool = false;
    /// `tls.post_quantum`.
    pub const POST_QUANTUM: bool = true;
    /// `tls.ocsp_stapling`.
    pub const OCSP_STAPLING: bool = true;
    /// `tls.acme.directory`.
    pub const ACME_DIRECTORY: &str = "letsencrypt";
    /// `tls.acme.retry`: the first wait after a failed order.
    pub const ACME_RETRY: Duration = Duration::from_secs(60);
}

/// `[headers]` (and a route's `headers`): the value `true` or an absent key sends.
pub mod headers {
    /// `headers.csp`.
    pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; \
                           form-action 'self'; object-src 'none'";
    /// `headers.hsts` (HTTPS responses only).
    pub const HSTS: &str = "max-age=63072000; includeSubDomains";
    /// `headers.content_type_options`.
    pub const CONTENT_TYPE_OPTIONS: &str = "nosniff";
    /// `headers.frame_options`.
    pub const FRAME_OPTIONS: &str = "DENY";
    /// `headers.referrer_policy`.
    pub const REFERRER_POLICY: &str = "strict-origin-when-cross-origin";
    /// `headers.permissions_policy`.
    pub const PERMISSIONS_POLICY: &str =
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
    /// `headers.coop`.
    pub const COOP: &str = "same-origin";
    /// `headers.corp`.
    pub const CORP: &str = "same-origin";
    /// `headers.hide_banners`.
    pub const HIDE_BANNERS: bool = true;
    /// `headers.hsts_preload`.
    pub const HSTS_PRELOAD: bool = false;
}

/// `[upstreams.NAME]` and its `health_check`.
pub mod upstream {
    use super::Duration;
    /// `upstreams.*.balance`.
    pub const BALANCE: &str = "round_robin";
    /// `upstreams.*.protocol`.
    pub const PROTOCOL: &str = "http1";
    /// `upstreams.*.max_fails`.
    pub const MAX_FAILS: u32 = 3;
    /// `upstreams.*.fail_timeout`.
    pub const FAIL_TIMEOUT: Duration = Duration::from_secs(30);
    /// `upstreams.*.connect_timeout`.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `upstreams.*.dns_ttl`.
    pub const DNS_TTL: Duration = Duration::from_secs(10);
    /// `upstreams.*.response_timeout`.
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `upstreams.*.idle_timeout`.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `upstreams.*.max_idle`.
    pub const MAX_IDLE: usize = 1024;
    /// `upstreams.*.retry`.
    pub const RETRY: bool = true;
    /// `upstreams.*.required`.
    pub const REQUIRED: bool = true;
    /// `health_check.path`.
    pub const CHECK_PATH: &str = "/health";
    /// `health_check.interval`.
    pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
    /// `health_check.timeout`.
    pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
    /// `health_check.rise`.
    pub const CHECK_RISE: u32 = 2;
    /// `health_check.fall`.
    pub const CHECK_FALL: u32 = 3;
}

/// `[[routes]]`.
pub mod route {
    use super::Duration;
    /// `routes.path`.
    pub const PATH: &str = "/";
    /// `routes.index`.
    pub const INDEX: &str = "index.html";
    /// `routes.revalidate_after`.
    pub const REVALIDATE_AFTER: Duration = Duration::from_secs(1);
    /// `routes.html_cache` (and files no rule or hash names).
    pub const HTML_CACHE: &str = "no-cache";
    /// `routes.compress_min_size`, bytes.
    pub const COMPRESS_MIN_SIZE: u64 = 1024;
    /// `routes.redirect_status`.
    pub const REDIRECT_STATUS: u16 = 301;
    /// `routes.respond.status`.
    pub const RESPOND_STATUS: u16 = 200;
    /// `routes.respond.content_type`.
    pub const RESPOND_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
    /// `routes.body_limit`, bytes.
    pub const BODY_LIMIT: u64 = 10_000_000;
    /// `routes.tenant.header`.
    pub const TENANT_HEADER: &str = "x-tenant-id";
    /// `routes.tenant.pattern`.
    pub const TENANT_PATTERN: &str = "[A-Za-z0-9_-]{1,64}";
    /// `routes.cookies.samesite`.
    pub const COOKIE_SAMESITE: &str = "Lax";
}

/// `[limits.NAME]` and its `lockout`.
pub mod limit {
    use super::Duration;
    /// `limits.*.key`.
    pub const KEY: &str = "ip";
    /// `limits.*.nodelay`.
    pub const NODELAY: bool = true;
    /// `limits.*.max_keys`.
    pub const MAX_KEYS: usize = 100_000;
    /// `limits.*.lease`: tokens a fleet instance takes from Redis at once.
    pub const LEASE: u32 = 1;
    /// `lockout.failures`.
    pub const LOCKOUT_FAILURES: u32 = 5;
    /// `lockout.for` (and `window`, which defaults to `for`).
    pub const LOCKOUT_FOR: Duration = Duration::from_secs(900);
    /// `lockout.field`.
    pub const LOCKOUT_FIELD: &str = "username";
    /// `lockout.statuses`.
    pub const LOCKOUT_STATUSES: [u16; 2] = [401, 403];
    /// `lockout.status`.
    pub const LOCKOUT_STATUS: u16 = 429;
}

/// `[api_keys]`, `[jwt]`, `[cors.NAME]`, `[csrf]`, `[csp_report]`.
pub mod auth {
    use super::Duration;
    /// `api_keys.header`.
    pub const API_KEY_HEADER: &str = "x-api-key";
    /// `jwt.leeway`.
    pub const JWT_LEEWAY: Duration = Duration::from_secs(30);
    /// `cors.*.methods`.
    pub const CORS_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];
    /// `cors.*.max_age`.
    pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);
    /// `cors.*.credentials`.
    pub const CORS_CREDENTIALS: bool = false;
    /// `csrf.cookie`.
    pub const CSRF_COOKIE: &str = "csrf_token";
    /// `csrf.header`.
    pub const CSRF_HEADER: &str = "x-csrf-token";
    /// `csrf.exempt_bearer`.
    pub const CSRF_EXEMPT_BEARER: bool = false;
    /// `csp_report.path`.
    pub const CSP_REPORT_PATH: &str = "/csp-report";
    /// `csp_report.max_body`, bytes.
    pub const CSP_REPORT_MAX_BODY: u64 = 64 * 1024;
    /// `csp_report.rate`.
    pub const CSP_REPORT_RATE: &str = "10/s";
    /// `csp_report.burst`.
    pub const CSP_REPORT_BURST: u32 = 20;
    /// `csp_report.report_to`.
    pub const CSP_REPORT_TO: bool = true;
}

/// `[admin]`, `[logging]`, `[tracing]`, `[[dependencies]]`, `[preflight]`.
pub mod ops {
    use super::Duration;
    /// `admin.listen`.
    pub const ADMIN_LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(
        std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9901),
    );
    /// `logging.access` and `logging.audit`.
    pub const LOG_TARGET: &str = "stdout";
    /// `logging.mask_pii`.
    pub const MASK_PII: bool = true;
    /// `logging.mask_ip`.
    pub const MASK_IP: bool = false;
    /// `logging.queue`.
    pub const LOG_QUEUE: usize = 8192;
    /// `logging.mask.replace`.
    pub const MASK_REPLACE: &str = "[masked]";
    /// `tracing.service_name`.
    pub const SERVICE_NAME: &str = "rampart";
    /// `dependencies.required`.
    pub const DEPENDENCY_REQUIRED: bool = true;
    /// `dependencies.timeout`.
    pub const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(2);
    /// `preflight.process_env`.
    pub const PROCESS_ENV: bool = false;
    /// `preflight.history_depth`: commits scanned.
    pub const HISTORY_DEPTH: usize = 1000;
}

/// `[state]`.
pub mod state {
    use super::Duration;
    /// `state.prefix`.
    pub const PREFIX: &str = "rampart:";
    /// `state.pool_size`.
    pub const POOL_SIZE: usize = 2;
    /// `state.timeout`.
    pub const TIMEOUT: Duration = Duration::from_millis(50);
    /// `state.fleet_size`.
    pub const FLEET_SIZE: u32 = 1;
    /// `state.breaker_failures`.
    pub const BREAKER_FAILURES: u32 = 3;
    /// `state.breaker_open`.
    pub const BREAKER_OPEN: Duration = Duration::from_secs(2);
}

/// `[integrity]`, `[license]`, `[[backups]]`.
pub mod trust {
    use super::Duration;
    /// `integrity.require_signed`.
    pub const REQUIRE_SIGNED: bool = true;
    /// `integrity.on_mismatch`.
    pub const ON_MISMATCH: &str = "refuse";
    /// `integrity.interval`.
    pub const INTEGRITY_INTERVAL: Duration = Duration::from_secs(600);
    /// `integrity.read_rate`, bytes per second.
    pub const READ_RATE: u64 = 32 << 20;
    /// `license.grace`.
    pub const LICENSE_GRACE: Duration = Duration::from_secs(7 * 86_400);
    /// `license.on_expired`.
    pub const ON_EXPIRED: &str = "notice";
    /// `license.interval`.
    pub const LICENSE_INTERVAL: Duration = Duration::from_secs(3600);
    /// `license.feature_status`.
    pub const FEATURE_STATUS: u16 = 403;
    /// `backups.level`: zstd.
    pub const BACKUP_LEVEL: i32 = 3;
}

/// How the reference shows a default.
pub(crate) enum Shown {
    /// A value the key could be set to (also the schema's `default`).
    Value(Value),
    /// A sentence: the default depends on something else.
    Text(&'static str),
}

fn d(v: Duration) -> Shown {
    Shown::Value(crate::units::format_duration(v).into())
}

fn v(x: impl Into<Value>) -> Shown {
    Shown::Value(x.into())
}

fn size(bytes: u64) -> Shown {
    Shown::Value(crate::units::format_size(bytes).into())
}

fn t(text: &'static str) -> Shown {
    Shown::Text(text)
}

/// The reference's `default` column: (schema definition, key, default). A key not listed
/// has no default: leaving it out leaves the feature off (or, where the key says so, the
/// key is required). A test checks that every entry names a key that exists.
pub(crate) fn shown() -> Vec<(&'static str, &'static str, Shown)> {
    use self::{auth as a, headers as h, limit as l, ops as o, route as r, server as s};
    use self::{state as st, tls as tl, trust as tr, upstream as u};
    vec![
        ("RawServer", "workers", t("the cores this process may use")),
        ("RawServer", "misdirected", v(s::MISDIRECTED)),
        ("RawServer", "https_port", t("the HTTPS listener's port")),
        (
            "RawServer",
            "state_dir",
            t("`$RAMPART_STATE_DIR`, else `$XDG_STATE_HOME/rampart`, else `~/.local/state/rampart`"),
        ),
        ("RawServer", "shutdown_grace", d(s::SHUTDOWN_GRACE)),
        ("RawServer", "header_read_timeout", d(s::HEADER_READ_TIMEOUT)),
        ("RawServer", "idle_timeout", d(s::IDLE_TIMEOUT)),
        ("RawServer", "park_after", d(s::PARK_AFTER)),
        ("RawServer", "tls_handshake_timeout", d(s::TLS_HANDSHAKE_TIMEOUT)),
        ("RawServer", "max_header_size", size(s::MAX_HEADER_SIZE)),
        ("RawServer", "max_headers", v(s::MAX_HEADERS)),
        ("RawServer", "max_connections", v(s::MAX_CONNECTIONS)),
        ("RawServer", "h2_max_concurrent_streams", v(s::H2_MAX_CONCURRENT_STREAMS)),
        ("RawServer", "h2_max_pending_reset_streams", v(s::H2_MAX_PENDING_RESET_STREAMS)),
        ("RawServer", "h2c", v(s::H2C)),
        ("RawServer", "h1_fast_path", v(s::H1_FAST_PATH)),
        ("RawServer", "watch_config", v(s::WATCH_CONFIG)),
        ("RawServer", "environment", v(s::ENVIRONMENT)),
        ("RawServer", "allowed_hosts", t("any host")),
        ("RawTls", "min_version", v(tl::MIN_VERSION)),
        ("RawTls", "profile", v(tl::PROFILE)),
        ("RawTls", "ciphers", t("all six forward-secret AEAD suites")),
        ("RawTls", "session_tickets", v(tl::SESSION_TICKETS)),
        ("RawTls", "prefer_server_order", v(tl::PREFER_SERVER_ORDER)),
        ("RawTls", "post_quantum", v(tl::POST_QUANTUM)),
        ("RawTls", "ocsp_stapling", v(tl::OCSP_STAPLING)),
        ("RawAcme", "directory", v(tl::ACME_DIRECTORY)),
        ("RawAcme", "retry", d(tl::ACME_RETRY)),
        ("RawAcme", "domains", t("every DNS name among the routes' hosts and `allowed_hosts`")),
        ("RawAcme", "challenge", t("`http-01` with `server.http`, else `tls-alpn-01`")),
        ("RawAcme", "directory_ca", t("the system roots")),
        ("RawHeaders", "csp", v(h::CSP)),
        ("RawHeaders", "hsts", v(h::HSTS)),
        ("RawHeaders", "content_type_options", v(h::CONTENT_TYPE_OPTIONS)),
        ("RawHeaders", "frame_options", v(h::FRAME_OPTIONS)),
        ("RawHeaders", "referrer_policy", v(h::REFERRER_POLICY)),
        ("RawHeaders", "permissions_policy", v(h::PERMISSIONS_POLICY)),
        ("RawHeaders", "coop", v(h::COOP)),
        ("RawHeaders", "corp", v(h::CORP)),
        ("RawHeaders", "hide_banners", v(h::HIDE_BANNERS)),
        ("RawHeaders", "hsts_preload", v(h::HSTS_PRELOAD)),
        ("RawUpstream", "balance", v(u::BALANCE)),
        ("RawUpstream", "protocol", v(u::PROTOCOL)),
        ("RawUpstreamTls", "ca", t("the system roots")),
        ("RawUpstreamTls", "server_name", t("each server's host")),
        ("RawUpstreamTls", "min_version", v("1.2")),
        ("RawUpstreamTls", "insecure_skip_verify", v(false)),
        ("RawUpstream", "max_fails", v(u::MAX_FAILS)),
        ("RawUpstream", "fail_timeout", d(u::FAIL_TIMEOUT)),
        ("RawUpstream", "connect_timeout", d(u::CONNECT_TIMEOUT)),
        ("RawUpstream", "dns_ttl", d(u::DNS_TTL)),
        ("RawUpstream", "response_timeout", d(u::RESPONSE_TIMEOUT)),
        ("RawUpstream", "idle_timeout", d(u::IDLE_TIMEOUT)),
        ("RawUpstream", "max_idle", v(u::MAX_IDLE)),
        ("RawUpstream", "retry", v(u::RETRY)),
        ("RawUpstream", "required", v(u::REQUIRED)),
        ("RawHealthCheck", "path", v(u::CHECK_PATH)),
        ("RawHealthCheck", "status", t("any 2xx")),
        ("RawHealthCheck", "interval", d(u::CHECK_INTERVAL)),
        ("RawHealthCheck", "timeout", d(u::CHECK_TIMEOUT)),
        ("RawHealthCheck", "rise", v(u::CHECK_RISE)),
        ("RawHealthCheck", "fall", v(u::CHECK_FALL)),
        ("RawHealthCheck", "host", t("the server's `host:port`")),
        ("RawHealthCheck", "kind", v("http")),
        ("RawHealthCheck", "service", v("")),
        ("RawRoute", "name", t("host + path")),
        ("RawRoute", "host", t("any host")),
        ("RawRoute", "path", v(r::PATH)),
        ("RawRoute", "index", v(r::INDEX)),
        ("RawRoute", "revalidate_after", d(r::REVALIDATE_AFTER)),
        ("RawRoute", "html_cache", v(r::HTML_CACHE)),
        ("RawRoute", "compress", t("`true` for `static`, `false` for `upstream`")),
        ("RawRoute", "compress_min_size", size(r::COMPRESS_MIN_SIZE)),
        ("RawRoute", "redirect_status", v(r::REDIRECT_STATUS)),
        ("RawRoute", "body_limit", size(r::BODY_LIMIT)),
        ("RawRoute", "methods", t("any method")),
        ("RawRoute", "client_cert", v("off")),
        ("RawRespond", "status", v(r::RESPOND_STATUS)),
        ("RawRespond", "content_type", v(r::RESPOND_CONTENT_TYPE)),
        ("RawTenant", "header", v(r::TENANT_HEADER)),
        ("RawTenant", "pattern", v(r::TENANT_PATTERN)),
        ("RawCookies", "secure", v(true)),
        ("RawCookies", "httponly", v(true)),
        ("RawCookies", "samesite", v(r::COOKIE_SAMESITE)),
        ("RawLimit", "key", v(l::KEY)),
        ("RawLimit", "burst", t("N − 1 of `N/period` (N at once)")),
        ("RawLimit", "nodelay", v(l::NODELAY)),
        ("RawLimit", "max_keys", v(l::MAX_KEYS)),
        ("RawLimit", "methods", t("every method")),
        ("RawLimit", "lease", v(l::LEASE)),
        ("RawLimit", "on_state_error", v("local")),
        ("RawLockout", "failures", v(l::LOCKOUT_FAILURES)),
        ("RawLockout", "for", d(l::LOCKOUT_FOR)),
        ("RawLockout", "window", t("`for`")),
        ("RawLockout", "field", v(l::LOCKOUT_FIELD)),
        ("RawLockout", "statuses", v(l::LOCKOUT_STATUSES.to_vec())),
        ("RawLockout", "status", v(l::LOCKOUT_STATUS)),
        ("RawApiKeys", "header", v(a::API_KEY_HEADER)),
        ("RawJwt", "leeway", d(a::JWT_LEEWAY)),
        ("RawJwt", "forward", t("`{ sub = \"X-Auth-Subject\" }`")),
        ("RawCors", "methods", v(a::CORS_METHODS.to_vec())),
        ("RawCors", "max_age", d(a::CORS_MAX_AGE)),
        ("RawCors", "credentials", v(a::CORS_CREDENTIALS)),
        ("RawCsrf", "cookie", v(a::CSRF_COOKIE)),
        ("RawCsrf", "header", v(a::CSRF_HEADER)),
        ("RawCsrf", "exempt_bearer", v(a::CSRF_EXEMPT_BEARER)),
        ("RawCspReport", "enabled", v(true)),
        ("RawCspReport", "path", v(a::CSP_REPORT_PATH)),
        ("RawCspReport", "max_body", size(a::CSP_REPORT_MAX_BODY)),
        ("RawCspReport", "rate", v(a::CSP_REPORT_RATE)),
        ("RawCspReport", "burst", v(a::CSP_REPORT_BURST)),
        ("RawCspReport", "report_to", v(a::CSP_REPORT_TO)),
        ("RawAdmin", "listen", v(o::ADMIN_LISTEN.to_string())),
        ("RawAdmin", "public_endpoints", t("all three")),
        ("RawLogging", "access", v(o::LOG_TARGET)),
        ("RawLogging", "audit", v(o::LOG_TARGET)),
        ("RawLogging", "mask_pii", v(o::MASK_PII)),
        ("RawLogging", "mask_ip", v(o::MASK_IP)),
        ("RawLogging", "queue", v(o::LOG_QUEUE)),
        ("RawMaskRule", "replace", v(o::MASK_REPLACE)),
        ("RawTracing", "service_name", v(o::SERVICE_NAME)),
        ("RawDependency", "required", v(o::DEPENDENCY_REQUIRED)),
        ("RawDependency", "timeout", d(o::DEPENDENCY_TIMEOUT)),
        ("RawDependency", "ca", t("the system roots")),
        ("RawPreflight", "process_env", v(o::PROCESS_ENV)),
        ("RawPreflight", "history_depth", v(o::HISTORY_DEPTH)),
        ("RawPreflight", "repo", t("the config's directory, when inside a git repository")),
        ("RawState", "backend", t("`redis` when `redis` is set, else `local`")),
        ("RawState", "ca", t("the system roots")),
        ("RawState", "prefix", v(st::PREFIX)),
        ("RawState", "pool_size", v(st::POOL_SIZE)),
        ("RawState", "timeout", d(st::TIMEOUT)),
        ("RawState", "fleet_size", v(st::FLEET_SIZE)),
        ("RawState", "breaker_failures", v(st::BREAKER_FAILURES)),
        ("RawState", "breaker_open", d(st::BREAKER_OPEN)),
        ("RawIntegrity", "signature", t("the manifest's path + `.sig`")),
        ("RawIntegrity", "require_signed", v(tr::REQUIRE_SIGNED)),
        ("RawIntegrity", "roots", t("as recorded in the manifest")),
        ("RawIntegrity", "on_mismatch", v(tr::ON_MISMATCH)),
        ("RawIntegrity", "interval", d(tr::INTEGRITY_INTERVAL)),
        ("RawIntegrity", "read_rate", size(tr::READ_RATE)),
        ("RawLicense", "algorithm", t("any the key allows")),
        ("RawLicense", "state_path", t("`state_dir/license_state.json`")),
        ("RawLicense", "installation_id_path", t("`state_dir/installation.id`")),
        ("RawLicense", "grace", d(tr::LICENSE_GRACE)),
        ("RawLicense", "on_expired", v(tr::ON_EXPIRED)),
        ("RawLicense", "notice", t("\"The license for this installation is not valid…\"")),
        ("RawLicense", "interval", d(tr::LICENSE_INTERVAL)),
        ("RawLicense", "feature_status", v(tr::FEATURE_STATUS)),
        ("RawBackup", "name", t("the database's name")),
        ("RawBackup", "level", v(tr::BACKUP_LEVEL)),
        ("RawBackup", "keep", t("keep all")),
        ("RawBackup", "key", t("none: unencrypted, a preflight warning")),
    ]
}
