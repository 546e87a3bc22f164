//! Operations sections: `[admin]`, `[logging]`, `[[dependencies]]` and an upstream's
//! `health_check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::{Duration as RawDuration, ListenAddr};

/// `[admin]`: the admin listener (`/metrics`, `/health`, `/ready`, `/upstreams`, control).
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Its address; not loopback → `token` is required.
    pub listen: Option<ListenAddr>,
    /// Bearer token for every admin request (≥ 16 characters; write
    /// `"${RAMPART_ADMIN_TOKEN}"`).
    pub token: Option<String>,
    /// Also answer `GET {public_path}/metrics`, `/health`, `/ready` on the public listeners
    /// (`"/_rampart"`; `""` mounts them at the site's root: `/health`), for the clients in
    /// `public_allow` only.
    pub public_path: Option<String>,
    /// The client networks allowed to use `public_path`; required with it. Others get 404
    /// under a prefix; at the root their request goes to the routes (the application's own
    /// `/health`).
    #[serde(default)]
    pub public_allow: Vec<crate::units::Cidr>,
    /// Which of `"metrics"`, `"health"`, `"ready"` are mounted: `["health", "ready"]` with
    /// `public_allow = ["0.0.0.0/0", "::/0"]` is a public health check without public
    /// metrics (preflight's PF-ADM-01 errors only on metrics open to everyone).
    pub public_endpoints: Option<Vec<String>>,
}

/// `[logging]`.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    /// Access log: `"stdout"`, `"off"`, or a file path (appended, mode 0640, reopened on
    /// SIGUSR1).
    pub access: Option<String>,
    /// Audit log: `"stdout"` or a file path (it cannot be turned off).
    pub audit: Option<String>,
    /// Mask e-mail addresses, phone numbers, card numbers (Luhn-checked), bearer/basic
    /// tokens, JWTs, known API key formats (Stripe, AWS, GitHub, Slack, GitLab, rampart)
    /// and secrets in query strings, in every log line.
    pub mask_pii: Option<bool>,
    /// Also log client addresses with the last IPv4 octet (last 80 IPv6 bits) zeroed.
    pub mask_ip: Option<bool>,
    /// More rules: `[{ pattern = "emp-[0-9]{6}", replace = "[employee]" }]` (regex; default
    /// replacement `[masked]`).
    #[serde(default)]
    pub mask: Vec<RawMaskRule>,
    /// Lines queued for the writer thread, which writes them in batches every 5 ms at most
    /// (and all of them on SIGTERM before exit); when full, lines are dropped and counted,
    /// never waited for.
    pub queue: Option<usize>,
}

/// `[tracing]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// An OpenTelemetry collector's OTLP/HTTP endpoint, e.g. `"http://collector:4318"` or
    /// `"https://otlp.example.com"`: one span per request is exported to `…/v1/traces`
    /// (protobuf).
    pub otlp: Option<String>,
    /// The spans' `service.name`.
    pub service_name: Option<String>,
    /// Headers sent with every export, e.g. `{ "x-api-key" = "${OTLP_KEY}" }`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Where spans go (`[tracing] otlp`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// The traces URL (`…/v1/traces`).
    pub url: http::Uri,
    /// Host and port to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `https`: TLS verified against the system roots.
    pub tls: bool,
    /// `service.name`.
    pub service_name: String,
    /// Extra headers, checked to be valid.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Validates `[tracing]`.
pub fn tracing(t: Option<&RawTracing>, sink: &mut dyn FnMut(String, String)) -> Option<Otlp> {
    let t = t?;
    let Some(raw) = t.otlp.as_deref() else {
        if !t.headers.is_empty() || t.service_name.is_some() {
            sink(
                "tracing.otlp".into(),
                "missing: service_name and headers are for the OTLP export, which needs its URL"
                    .into(),
            );
        }
        return None;
    };
    let bad = |sink: &mut dyn FnMut(String, String), why: &str| {
        sink(
            "tracing.otlp".into(),
            format!("{why}: want an http:// or https:// URL such as \"http://collector:4318\", got {raw:?}"),
        );
        None
    };
    let Ok(uri) = raw.parse::<http::Uri>() else {
        return bad(sink, "not a URL");
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return bad(sink, "not http or https"),
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return bad(sink, "no host");
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // The collector's base URL gets the signal's path, as OTEL_EXPORTER_OTLP_ENDPOINT
    // does; a URL already naming `/v1/traces` is kept.
    let path = uri.path().trim_end_matches('/');
    let path = if path.ends_with("/v1/traces") {
        path.to_owned()
    } else {
        format!("{path}/v1/traces")
    };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let Ok(url) =
        format!("{}://{authority}{path}", if tls { "https" } else { "http" }).parse::<http::Uri>()
    else {
        return bad(sink, "not a URL");
    };
    let mut headers = Vec::new();
    for (k, v) in &t.headers {
        match (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                headers.push((n, v));
            }
            _ => sink(
                format!("tracing.headers.{k}"),
                "not a valid header name and value".into(),
            ),
        }
    }
    Some(Otlp {
        url,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        tls,
        service_name: t
            .service_name
            .clone()
            .unwrap_or_else(|| crate::defaults::ops::SERVICE_NAME.into()),
        headers,
    })
}

/// One extra masking rule.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMaskRule {
    /// A regular expression (regex-lite syntax).
    pub pattern: String,
    /// What a match becomes.
    pub replace: Option<String>,
}

/// An upstream's `health_check = { … }`.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Path requested with GET.
    pub path: Option<String>,
    /// Status that counts as healthy.
    pub status: Option<u16>,
    /// Time between checks.
    pub interval: Option<RawDuration>,
    /// Time allowed per check.
    pub timeout: Option<RawDuration>,
    /// Consecutive passes that bring a server back.
    pub rise: Option<u32>,
    /// Consecutive failures that take it out.
    pub fall: Option<u32>,
    /// `Host` header sent.
    pub host: Option<String>,
    /// `"http"` (a `GET path`) or `"grpc"`: the gRPC health protocol's
    /// `grpc.health.v1.Health/Check` for `service`, passing when the server answers
    /// `SERVING` (the pool must speak HTTP/2: `protocol = "h2"` or `"auto"`).
    pub kind: Option<String>,
    /// The service asked about by a `grpc` check (`""`: the server as a whole).
    pub service: Option<String>,
}

/// One `[[dependencies]]` entry: something `/ready` waits for.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDependency {
    /// Its name in `/health` and `/ready`.
    pub name: String,
    /// `tcp` (connects), `http` (`GET` answered 2xx/3xx), `redis` (`PING` answered `+PONG`
    /// or `-NOAUTH`), `postgres` (an SSLRequest answered `S`/`N`), `mysql` (a protocol-10
    /// greeting, not an error packet such as "Too many connections").
    pub kind: String,
    /// `host:port`; for `http` a URL `http://host[:port]/path` or `https://…` (port 443);
    /// for `redis` also `redis://` / `rediss://host[:port]` (TLS; credentials in the URL
    /// are ignored: a probe never authenticates, `-NOAUTH` counts as up). TLS certificates
    /// are verified for the host name; a certificate that does not verify is "not ready"
    /// with the reason.
    pub address: String,
    /// PEM CA file for an `https://` / `rediss://` dependency signed by a private CA.
    pub ca: Option<String>,
    /// `false`: a failure only degrades `/health`.
    pub required: Option<bool>,
    /// Per probe.
    pub timeout: Option<RawDuration>,
}

/// `[admin]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Listener address.
    pub listen: SocketAddr,
    /// Bearer token.
    pub token: Option<String>,
    /// The endpoints mounted on the public listeners, and who may use them.
    pub public: Option<PublicAdmin>,
}

/// `admin.public_path`: `/metrics`, `/health`, `/ready` on the public listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicAdmin {
    /// Mount prefix (`""`: the root).
    pub path: String,
    /// Client networks allowed; others get what the routes answer (with a prefix: 404).
    pub allow: Vec<ipnet::IpNet>,
    /// `/metrics` mounted.
    pub metrics: bool,
    /// `/health` mounted.
    pub health: bool,
    /// `/ready` mounted.
    pub ready: bool,
}

impl PublicAdmin {
    /// Whether `rest` (the path after the prefix) is a mounted endpoint.
    pub fn mounts(&self, rest: &str) -> bool {
        match rest {
            "/metrics" => self.metrics,
            "/health" => self.health,
            "/ready" => self.ready,
            _ => false,
        }
    }
}

/// Where a log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Nowhere.
    Off,
    /// Standard output.
    Stdout,
    /// A file, appended to, reopened on SIGUSR1.
    File(std::path::PathBuf),
}

/// `[logging]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Logging {
    /// Access log target.
    pub access: LogTarget,
    /// Audit log target.
    pub audit: LogTarget,
    /// Mask personal data.
    pub mask_pii: bool,
    /// Mask client IP tails.
    pub mask_ip: bool,
    /// Extra rules (pattern, replacement); patterns checked to compile.
    pub rules: Vec<(String, String)>,
    /// Queue length.
    pub queue: usize,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            access: LogTarget::Stdout,
            audit: LogTarget::Stdout,
            mask_pii: true,
            mask_ip: false,
            rules: Vec::new(),
            queue: 8192,
        }
    }
}

/// An active health check, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path.
    pub path: String,
    /// Expected status; `None` is any 2xx.
    pub status: Option<u16>,
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
    /// Passes to come back.
    pub rise: u32,
    /// Failures to go out.
    pub fall: u32,
    /// Host header.
    pub host: Option<String>,
    /// A gRPC health check of this service (`""`: the whole server) instead of `GET path`.
    pub grpc_service: Option<String>,
}

/// What a dependency speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyKind {
    /// A TCP connect.
    Tcp,
    /// `GET` answered with 2xx/3xx.
    Http,
    /// `PING` answered `+PONG`.
    Redis,
    /// A PostgreSQL SSLRequest answered `S` or `N` (the server speaks the protocol).
    Postgres,
    /// A MySQL server greeting (protocol 10), not an error packet.
    Mysql,
}

/// A dependency, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: DependencyKind,
    /// `host:port`.
    pub address: String,
    /// For HTTP: the path (with query).
    pub path: String,
    /// TLS (`https://`, `rediss://`): verified against `ca` or the system roots, SNI and
    /// the verified name taken from the host.
    pub tls: bool,
    /// The CA file for `tls`, resolved against the config's directory.
    pub ca: Option<PathBuf>,
    /// Needed by `/ready`.
    pub required: bool,
    /// Probe timeout.
    pub timeout: Duration,
}

/// `(host:port, path, tls)` of a dependency's address, ports defaulted by scheme.
fn dependency_address(kind: DependencyKind, a: &str) -> Option<(String, String, bool)> {
    let (scheme, rest) = match a.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, a),
    };
    let (tls, port) = match (kind, scheme) {
        (DependencyKind::Http, Some("http")) => (false, 80),
        (DependencyKind::Http, Some("https")) => (true, 443),
        (DependencyKind::Redis, Some("redis")) => (false, 6379),
        (DependencyKind::Redis, Some("rediss")) => (true, 6379),
        (DependencyKind::Http, _) | (_, Some(_)) => return None,
        (_, None) => return Some((a.to_owned(), String::new(), false)),
    };
    let (auth, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    // Credentials (`rediss://user:pass@host`) are never used by a probe.
    let host_port = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()));
    let address = if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:{port}")
    };
    let path = match (kind, path) {
        (DependencyKind::Http, "") => "/".to_owned(),
        (DependencyKind::Http, p) if p.starts_with('?') => format!("/{p}"),
        (DependencyKind::Http, p) => p.to_owned(),
        _ => String::new(),
    };
    Some((address, path, tls))
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
}

/// Validates `[admin]`.
pub fn admin(a: &RawAdmin, sink: &mut dyn FnMut(String, String)) -> Admin {
    let listen = a
        .listen
        .as_ref()
        .map_or(crate::defaults::ops::ADMIN_LISTEN, |l| l.0);
    if let Some(t) = &a.token {
        if t.len() < 16 {
            sink(
                "admin.token".into(),
                "must be at least 16 characters (`rampart secrets` can make one)".into(),
            );
        }
    }
    if !listen.ip().is_loopback() && a.token.is_none() {
        sink(
            "admin.token".into(),
            format!("admin.listen {listen} is not loopback: set a token (or listen on 127.0.0.1)"),
        );
    }
    let public = match &a.public_path {
        None => None,
        Some(p) => {
            if !(p.is_empty() || p.starts_with('/') && p.len() >= 2 && !p.ends_with('/')) {
                sink(
                    "admin.public_path".into(),
                    format!(
                        "{p:?} must be a path like \"/_rampart\" (no trailing '/'), or \"\" for the root"
                    ),
                );
            }
            if a.public_allow.is_empty() {
                sink(
                    "admin.public_allow".into(),
                    "public_path needs the client networks allowed to use it".into(),
                );
            }
            let mut public = PublicAdmin {
                path: p.clone(),
                allow: a.public_allow.iter().map(|c| c.0).collect(),
                metrics: true,
                health: true,
                ready: true,
            };
            if let Some(list) = &a.public_endpoints {
                (public.metrics, public.health, public.ready) = (false, false, false);
                for (i, e) in list.iter().enumerate() {
                    match e.as_str() {
                        "metrics" => public.metrics = true,
                        "health" => public.health = true,
                        "ready" => public.ready = true,
                        other => sink(
                            format!("admin.public_endpoints[{i}]"),
                            format!("expected metrics, health or ready, got {other:?}"),
                        ),
                    }
                }
            }
            Some(public)
        }
    };
    Admin {
        listen,
        token: a.token.clone(),
        public,
    }
}

fn target(
    key: &str,
    v: Option<&str>,
    base: &std::path::Path,
    off_ok: bool,
    sink: &mut dyn FnMut(String, String),
) -> LogTarget {
    match v {
        None | Some(crate::defaults::ops::LOG_TARGET) => LogTarget::Stdout,
        Some("off") if off_ok => LogTarget::Off,
        Some("off") => {
            sink(
                key.into(),
                "the audit log cannot be turned off; send it to \"stdout\" or a file".into(),
            );
            LogTarget::Stdout
        }
        Some("") => {
            sink(
                key.into(),
                "expected \"stdout\", \"off\" or a file path".into(),
            );
            LogTarget::Stdout
        }
        Some(p) => LogTarget::File(base.join(p)),
    }
}

/// Validates `[logging]`; relative paths resolve against `base`.
pub fn logging(
    l: Option<&RawLogging>,
    base: &std::path::Path,
    sink: &mut dyn FnMut(String, String),
) -> Logging {
    let default = RawLogging::default();
    let l = l.unwrap_or(&default);
    let mut rules = Vec::new();
    for (i, r) in l.mask.iter().enumerate() {
        match regex_lite::Regex::new(&r.pattern) {
            Ok(_) => rules.push((
                r.pattern.clone(),
                r.replace
                    .clone()
                    .unwrap_or_else(|| crate::defaults::ops::MASK_REPLACE.into()),
            )),
            Err(e) => sink(format!("logging.mask[{i}].pattern"), format!("{e}")),
        }
    }
    let queue = l.queue.unwrap_or(crate::defaults::ops::LOG_QUEUE);
    if !crate::bounds::LOG_QUEUE.contains(&(queue as u64)) {
        sink(
            "logging.queue".into(),
            format!("must be between 16 and 1000000, got {queue}"),
        );
    }
    Logging {
        access: target("logging.access", l.access.as_deref(), base, true, sink),
        audit: target("logging.audit", l.audit.as_deref(), base, false, sink),
        mask_pii: l.mask_pii.unwrap_or(crate::defaults::ops::MASK_PII),
        mask_ip: l.mask_ip.unwrap_or(crate::defaults::ops::MASK_IP),
        rules,
        queue: queue.clamp(16, 1_000_000),
    }
}

/// Validates an upstream's `health_check`.
pub fn health_check(
    key: &str,
    h: &RawHealthCheck,
    sink: &mut dyn FnMut(String, String),
) -> HealthCheck {
    let path = h
        .path
        .clone()
        .unwrap_or_else(|| crate::defaults::upstream::CHECK_PATH.into());
    if !path.starts_with('/') || path.contains([' ', '\r', '\n']) {
        sink(
            format!("{key}.path"),
            format!("{path:?} must be a path starting with '/'"),
        );
    }
    if let Some(s) = h.status {
        if !(100..=599).contains(&s) {
            sink(
                format!("{key}.status"),
                format!("{s} is not an HTTP status"),
            );
        }
    }
    let interval = h
        .interval
        .map_or(crate::defaults::upstream::CHECK_INTERVAL, |d| d.0);
    let timeout = h
        .timeout
        .map_or(crate::defaults::upstream::CHECK_TIMEOUT, |d| d.0);
    if interval < Duration::from_millis(100) {
        sink(format!("{key}.interval"), "must be at least 100ms".into());
    }
    if timeout.is_zero() || timeout > interval.max(Duration::from_millis(100)) {
        sink(
            format!("{key}.timeout"),
            "must be more than 0 and at most the interval".into(),
        );
    }
    let (rise, fall) = (
        h.rise.unwrap_or(crate::defaults::upstream::CHECK_RISE),
        h.fall.unwrap_or(crate::defaults::upstream::CHECK_FALL),
    );
    for (k, v) in [("rise", rise), ("fall", fall)] {
        if let Err(m) = crate::bounds::check(u64::from(v), &crate::bounds::RISE_FALL) {
            sink(format!("{key}.{k}"), m);
        }
    }
    let grpc_service = match h.kind.as_deref() {
        None | Some("http") => {
            if h.service.is_some() {
                sink(format!("{key}.service"), "only for kind = \"grpc\"".into());
            }
            None
        }
        Some("grpc") => Some(h.service.clone().unwrap_or_default()),
        Some(other) => {
            sink(
                format!("{key}.kind"),
                format!("expected \"http\" or \"grpc\", got {other:?}"),
            );
            None
        }
    };
    HealthCheck {
        path,
        status: h.status,
        interval,
        timeout,
        rise,
        fall,
        host: h.host.clone(),
        grpc_service,
    }
}

/// Validates `[[dependencies]]`.
pub fn dependencies(
    deps: &[RawDependency],
    base: &Path,
    sink: &mut dyn FnMut(String, String),
) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        let key = format!("dependencies[{i}]");
        let kind = match d.kind.as_str() {
            "tcp" => DependencyKind::Tcp,
            "http" => DependencyKind::Http,
            "redis" => DependencyKind::Redis,
            "postgres" | "postgresql" => DependencyKind::Postgres,
            "mysql" | "mariadb" => DependencyKind::Mysql,
            other => {
                sink(
                    format!("{key}.kind"),
                    format!("expected tcp, http, redis, postgres or mysql, got {other:?}"),
                );
                continue;
            }
        };
        let Some((address, path, tls)) = dependency_address(kind, &d.address) else {
            let want = match kind {
                DependencyKind::Http => "an http:// or https:// URL",
                DependencyKind::Redis => "host:port or a redis:// / rediss:// URL",
                _ => "host:port",
            };
            sink(
                format!("{key}.address"),
                format!("{:?} must be {want}", d.address),
            );
            continue;
        };
        if d.ca.is_some() && !tls {
            sink(
                format!("{key}.ca"),
                "a CA file needs a TLS address (https:// or rediss://)".into(),
            );
        }
        if !is_host_port(&address) {
            sink(
                format!("{key}.address"),
                format!("{:?} must be host:port", d.address),
            );
            continue;
        }
        if d.name.is_empty() || out.iter().any(|o| o.name == d.name) {
            sink(
                format!("{key}.name"),
                format!("{:?} must be a unique, non-empty name", d.name),
            );
        }
        out.push(Dependency {
            name: d.name.clone(),
            kind,
            address,
            path,
            tls,
            ca: d.ca.as_ref().map(|c| base.join(c)),
            required: d
                .required
                .unwrap_or(crate::defaults::ops::DEPENDENCY_REQUIRED),
            timeout: d
                .timeout
                .map_or(crate::defaults::ops::DEPENDENCY_TIMEOUT, |t| t.0),
        });
    }
    out
}
