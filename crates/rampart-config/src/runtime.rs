//! The typed runtime form: what the server runs from. It has no `Deserialize` and holds
//! no unchecked values: addresses are parsed, durations are `Duration`s, header values are
//! `HeaderValue`s, routes refer to upstreams by index.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use ipnet::IpNet;

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners, limits, trust.
    pub server: Server,
    /// TLS, when HTTPS is served.
    pub tls: Option<Tls>,
    /// Upstream pools; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// Named policies routes refer to.
    pub policies: crate::policy::Policies,
    /// The CSP violation report endpoint, when on.
    pub csp_report: Option<crate::site::CspReport>,
    /// The admin listener, when on.
    pub admin: Option<crate::ops::Admin>,
    /// Logs.
    pub logging: crate::ops::Logging,
    /// Services `/ready` waits for.
    pub dependencies: Vec<crate::ops::Dependency>,
    /// `[preflight]`.
    pub preflight: crate::posture::Preflight,
    /// What the preflight run on this config found (set by `serve` before the edge is
    /// built; `None` when it did not run).
    pub posture: Option<crate::posture::Posture>,
    /// `[state]`: where shared state lives.
    pub state: crate::state::State,
    /// Weak secrets among rampart's own (`jwt.secret`, API keys, `admin.token`): the key
    /// and the rule broken. The values themselves are not kept.
    pub secret_issues: Vec<(String, crate::secret::Weakness)>,
    /// `[integrity]`: the signed manifest checked at start, reload and periodically.
    pub integrity: Option<crate::integrity::Integrity>,
    /// `[license]`: the vendor's license, checked at start, reload and periodically.
    pub license: Option<crate::license::License>,
    /// `[[backups]]`: scheduled database backups.
    pub backups: Vec<crate::backups::Backup>,
    /// `[tracing]`: the OTLP collector spans go to, when set.
    pub otlp: Option<crate::ops::Otlp>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Plain HTTP listener.
    pub http: Option<SocketAddr>,
    /// HTTPS listener.
    pub https: Option<SocketAddr>,
    /// Runtime worker threads.
    pub workers: usize,
    /// Peers whose `X-Forwarded-*` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Client networks refused on every request (IPv4-mapped IPv6 counts as IPv4).
    pub deny: Vec<IpNet>,
    /// Hosts answered; empty means any.
    pub allowed_hosts: Vec<HostPattern>,
    /// What a request for another host gets.
    pub misdirected: Misdirected,
    /// Path prefixes the plain listener serves instead of redirecting.
    pub redirect_exempt: Vec<String>,
    /// Port written into HTTPS redirects; `None` uses the HTTPS listener's port.
    pub https_port: Option<u16>,
    /// Where generated state is kept.
    pub state_dir: PathBuf,
    /// Drain time on SIGTERM.
    pub shutdown_grace: Duration,
    /// Time allowed to receive a request head.
    pub header_read_timeout: Duration,
    /// Time a connection may sit idle.
    pub idle_timeout: Duration,
    /// Quiet time after which an idle HTTP/1.1 connection keeps only its socket.
    pub park_after: Duration,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_size: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Most open client connections.
    pub max_connections: usize,
    /// Accept HTTP/2 prior knowledge on the plain listener.
    pub h2c: bool,
    /// Answer simple HTTP/1.1 requests (GET/HEAD without a body) without hyper.
    pub h1_fast_path: bool,
    /// Reload when the config file changes.
    pub watch_config: bool,
    /// `development` or `production` (`RAMPART_ENV` overrides the file).
    pub environment: crate::posture::Environment,
    /// A `.env` file whose variables `${VAR}` reads (before the process environment), read
    /// again on every reload.
    pub env_file: Option<PathBuf>,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 pending reset streams per connection.
    pub h2_max_pending_reset_streams: usize,
}

/// What a request for a host outside `allowed_hosts` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misdirected {
    /// 421 Misdirected Request with a JSON body.
    Status421,
    /// The connection is closed without an answer (nginx's `return 444`).
    Close,
}

/// A host to match: exact, or any subdomain of a suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `example.com` (lowercase).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`; matches subdomains at any depth.
    Wildcard(String),
}

impl HostPattern {
    /// Whether `host` (lowercase, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Certificate and key files; the first is the default when SNI matches none.
    pub certificates: Vec<CertificatePaths>,
    /// CA file client certificates must chain to (mutual TLS).
    pub client_ca: Option<std::path::PathBuf>,
    /// CRL files for client certificates.
    pub client_crls: Vec<std::path::PathBuf>,
    /// Every CA file client certificates are verified against: `client_ca` first (when
    /// set, else the first route's own), then each route `client_ca` not seen before.
    /// A route's [`Route::client_ca`] indexes this list.
    pub client_cas: Vec<std::path::PathBuf>,
    /// The config key that first names each of [`Tls::client_cas`] (`tls.client_ca`,
    /// `routes[3].client_ca`), for errors about the file.
    pub client_ca_keys: Vec<String>,
    /// Names of a self-signed certificate generated into `state_dir`.
    pub self_signed: Vec<String>,
    /// Whether TLS 1.2 is offered (TLS 1.3 always is).
    pub tls12: bool,
    /// TLS 1.2 suites offered (IANA names, in order); empty: all the provider has.
    pub ciphers: Vec<&'static str>,
    /// Stateless session tickets.
    pub session_tickets: bool,
    /// Certificates from an ACME CA.
    pub acme: Option<crate::acme::Acme>,
    /// Suites chosen by the server's order.
    pub prefer_server_order: bool,
    /// X25519MLKEM768 offered and preferred.
    pub post_quantum: bool,
    /// OCSP responses stapled.
    pub ocsp_stapling: bool,
}

/// One certificate chain and its key.
#[derive(Debug, Clone)]
pub struct CertificatePaths {
    /// The key path, for messages (`tls.certificates[1]`).
    pub key_path: String,
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// An upstream pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Its name in the config.
    pub name: String,
    /// `host:port` of each server.
    pub servers: Vec<String>,
    /// How a server is chosen.
    pub balance: Balance,
    /// Failures within `fail_timeout` that take a server out (0: never).
    pub max_fails: u32,
    /// Failure window and time out.
    pub fail_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// How long a server name's addresses are kept.
    pub dns_ttl: Duration,
    /// Time to response headers.
    pub response_timeout: Duration,
    /// Pooled idle connection lifetime.
    pub idle_timeout: Duration,
    /// Idle connections kept per server.
    pub max_idle: usize,
    /// Retry once elsewhere when a connection cannot be made.
    pub retry: bool,
    /// Active health check.
    pub health_check: Option<crate::ops::HealthCheck>,
    /// Needed by `/ready`.
    pub required: bool,
    /// TLS to the servers.
    pub tls: Option<UpstreamTls>,
    /// The protocol spoken to the servers.
    pub protocol: UpstreamProtocol,
}

/// TLS to an upstream pool's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// CA file (else the system roots).
    pub ca: Option<std::path::PathBuf>,
    /// SNI and verified name for every server (else each server's host).
    pub server_name: Option<String>,
    /// Client certificate chain and key (mutual TLS).
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Only TLS 1.3.
    pub tls13_only: bool,
    /// No certificate verification.
    pub insecure_skip_verify: bool,
}

/// What an upstream pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (ALPN `h2` over TLS, prior knowledge in plain).
    H2,
    /// TLS with ALPN `h2` and `http/1.1`: the server chooses.
    Auto,
}

/// Load-balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each server in turn.
    RoundRobin,
    /// The server with the fewest requests in flight.
    LeastConn,
}

/// A route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name for logs and metrics.
    pub name: String,
    /// Hosts matched; empty matches any host.
    pub hosts: Vec<HostPattern>,
    /// Path prefix (or exact path).
    pub path: String,
    /// Exact match instead of prefix.
    pub exact: bool,
    /// Match by this regular expression instead (`path` is then empty).
    pub path_regex: Option<regex_lite::Regex>,
    /// When this prefix is the longest match, regex routes are not consulted.
    pub prefix_priority: bool,
    /// Client certificate requirement.
    pub client_cert: ClientCertMode,
    /// Which of [`Tls::client_cas`] this route's client certificates must chain to (0:
    /// `[tls] client_ca`; meaningless while `client_cert` is off).
    pub client_ca: u8,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
    /// Set on the request sent upstream (`None`: removed).
    pub request_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// What answers.
    pub action: Action,
    /// Response header policy.
    pub headers: HeaderPolicy,
    /// Request policies.
    pub policy: crate::policy::RoutePolicy,
    /// Compression of responses, when on.
    pub compress: Option<crate::site::Compress>,
    /// A fresh nonce per HTML response (`csp_nonce`): the CSP header name and the policy
    /// text the nonce is added to. `None` when off or when the route sends no CSP.
    pub csp_nonce: Option<(HeaderName, String)>,
    /// Served only when the license grants this feature.
    pub requires_feature: Option<String>,
}

/// What answers a route.
#[derive(Debug, Clone)]
pub enum Action {
    /// Proxy to `upstreams[i]`.
    Upstream(usize),
    /// Serve files.
    Static(Box<crate::site::StaticSite>),
    /// Redirect.
    Redirect {
        /// Target URL.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// Append the request path and query.
        keep_path: bool,
    },
    /// Fixed response.
    Respond {
        /// Status code.
        status: u16,
        /// Body.
        body: String,
        /// Content type.
        content_type: HeaderValue,
    },
}

/// Response headers a route sets and removes.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// Set on every response, replacing upstream values.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// `Strict-Transport-Security`, HTTPS only.
    pub hsts: Option<HeaderValue>,
    /// Removed from every response.
    pub remove: Vec<HeaderName>,
    /// Made on first use, after validation has finished the policy.
    raw: std::sync::OnceLock<Raw>,
}

/// A header policy prepared for a writer that serializes responses itself.
#[derive(Debug, Clone)]
struct Raw {
    /// `set` (and for HTTPS `hsts`) as `name: value\r\n` lines: `[plain, https]`.
    lines: [Box<[u8]>; 2],
    /// Every name the policy sets or removes…
    names: Box<[Box<str>]>,
    /// …and a bit per name length (below 64), so most names are ruled out by length.
    lens: u64,
}

impl HeaderPolicy {
    /// A policy from its parts.
    #[must_use]
    pub fn new(
        set: Vec<(HeaderName, HeaderValue)>,
        hsts: Option<HeaderValue>,
        remove: Vec<HeaderName>,
    ) -> Self {
        Self {
            set,
            hsts,
            remove,
            raw: std::sync::OnceLock::new(),
        }
    }

    fn raw(&self) -> &Raw {
        self.raw.get_or_init(|| {
            let mut plain = Vec::new();
            for (name, value) in &self.set {
                plain.extend_from_slice(name.as_str().as_bytes());
                plain.extend_from_slice(b": ");
                plain.extend_from_slice(value.as_bytes());
                plain.extend_from_slice(b"\r\n");
            }
            let mut tls = plain.clone();
            if let Some(v) = &self.hsts {
                tls.extend_from_slice(b"strict-transport-security: ");
                tls.extend_from_slice(v.as_bytes());
                tls.extend_from_slice(b"\r\n");
            }
            let hsts = self
                .hsts
                .as_ref()
                .map(|_| http::header::STRICT_TRANSPORT_SECURITY);
            let names: Box<[Box<str>]> = (self.set.iter().map(|(k, _)| k))
                .chain(&self.remove)
                .chain(hsts.as_ref())
                .map(|n| n.as_str().into())
                .collect();
            let lens = names.iter().fold(0u64, |m, n| match n.len() {
                l @ 0..64 => m | 1u64 << l,
                // Longer names are always compared.
                _ => m,
            });
            Raw {
                lines: [plain.into(), tls.into()],
                names,
                lens,
            }
        })
    }

    /// The headers this policy sets, serialized as HTTP/1.1 header lines.
    pub fn lines(&self, https: bool) -> &[u8] {
        &self.raw().lines[usize::from(https)]
    }

    /// Whether the policy replaces or removes a response header of this name. With `hsts`
    /// set the policy owns that header: its value over HTTPS, none over plain HTTP (where
    /// browsers ignore it).
    pub fn overrides(&self, name: &HeaderName) -> bool {
        let raw = self.raw();
        let name = name.as_str();
        if name.len() < 64 && raw.lens & (1u64 << name.len()) == 0 {
            return false;
        }
        raw.names
            .iter()
            .any(|k| k.len() == name.len() && **k == *name)
    }
}

/// Whether a route asks for a client certificate (`client_cert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCertMode {
    /// Not asked for.
    #[default]
    Off,
    /// Asked for; requests without one pass.
    Optional,
    /// Requests without a verified one get 403.
    Required,
}
