//! The file format: serde structs that mirror `rampart.toml` one to one.
//!
//! Nothing here is trusted; [`crate::validate`] turns it into [`crate::runtime::Config`].
//! Every struct denies unknown keys, so a typo is an error naming the key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::Duration as RawDuration;
use crate::units::{Cidr, Duration, ListenAddr, Size, Toggle};

/// The whole file.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`: listeners, limits, trust.
    #[serde(default)]
    pub server: RawServer,
    /// `[tls]`: certificates and protocol settings.
    pub tls: Option<RawTls>,
    /// `[headers]`: the security header policy applied to every route.
    #[serde(default)]
    pub headers: RawHeaders,
    /// `[upstreams.NAME]`: upstream pools, in file order.
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// `[[routes]]`: routing rules.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// `[limits.NAME]`: rate limits and login lockouts.
    #[serde(default)]
    pub limits: BTreeMap<String, RawLimit>,
    /// `[cors.NAME]`: CORS policies.
    #[serde(default)]
    pub cors: BTreeMap<String, RawCors>,
    /// `[api_keys]`.
    pub api_keys: Option<RawApiKeys>,
    /// `[jwt]`.
    pub jwt: Option<RawJwt>,
    /// `[csrf]`.
    pub csrf: Option<RawCsrf>,
    /// `[csp_report]`: the CSP violation report endpoint.
    pub csp_report: Option<RawCspReport>,
    /// `[admin]`: the admin listener; off unless the section is present.
    pub admin: Option<crate::ops::RawAdmin>,
    /// `[logging]`: access and audit logs, PII masking.
    pub logging: Option<crate::ops::RawLogging>,
    /// `[[dependencies]]`: services `/ready` waits for.
    #[serde(default)]
    pub dependencies: Vec<crate::ops::RawDependency>,
    /// `[preflight]`.
    pub preflight: Option<crate::posture::RawPreflight>,
    /// `[state]`: local or shared (Redis) state for a fleet.
    pub state: Option<crate::state::RawState>,
    /// `[integrity]`: the signed manifest of the files served.
    pub integrity: Option<crate::integrity::RawIntegrity>,
    /// `[license]`: the vendor's license token.
    pub license: Option<crate::license::RawLicense>,
    /// `[[backups]]`: scheduled database backups.
    #[serde(default)]
    pub backups: Vec<crate::backups::RawBackup>,
    /// `[tracing]`: one OpenTelemetry span per request, exported over OTLP/HTTP.
    pub tracing: Option<crate::ops::RawTracing>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Plain HTTP listener; redirect-only when `[tls]` is set.
    pub http: Option<ListenAddr>,
    /// HTTPS listener; requires `[tls]`.
    pub https: Option<ListenAddr>,
    /// Worker threads (default: the cores this process may use).
    pub workers: Option<usize>,
    /// Peers whose `X-Forwarded-*` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Client networks refused on every request, before routing: 403 `ip_denied`.
    #[serde(default)]
    pub deny: Vec<Cidr>,
    /// Hosts this edge answers for; others get 421 (or a closed connection).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// `"421"` (default) or `"close"`: what a request for another host gets.
    pub misdirected: Option<String>,
    /// Path prefixes the plain listener serves instead of redirecting.
    #[serde(default)]
    pub redirect_exempt: Vec<String>,
    /// Port written into redirects to HTTPS (default: the HTTPS listener's port).
    pub https_port: Option<u16>,
    /// Where generated state (the dev certificate) is kept.
    pub state_dir: Option<String>,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Option<Duration>,
    /// Longest time to receive a request's headers (slow-loris guard).
    pub header_read_timeout: Option<Duration>,
    /// Longest time a connection may sit idle between requests.
    pub idle_timeout: Option<Duration>,
    /// Quiet time after which an idle HTTP/1.1 connection's buffers are freed.
    pub park_after: Option<Duration>,
    /// Longest time for a TLS handshake.
    pub tls_handshake_timeout: Option<Duration>,
    /// Largest request head (request line plus headers).
    pub max_header_size: Option<Size>,
    /// Most request headers.
    pub max_headers: Option<usize>,
    /// Most open client connections; further ones wait in the kernel's backlog.
    pub max_connections: Option<usize>,
    /// Accept HTTP/2 with prior knowledge (h2c) on the plain listener (default false).
    pub h2c: Option<bool>,
    /// Answer simple HTTP/1.1 requests (GET/HEAD without a body) on rampart's own fast
    /// path rather than hyper's (default true).
    pub h1_fast_path: Option<bool>,
    /// Reload when the config file changes (checked every 2 seconds; default false).
    pub watch_config: Option<bool>,
    /// `"production"` enforces the preflight checks at start and reload.
    pub environment: Option<String>,
    /// A `.env` file `${VAR}` reads first.
    pub env_file: Option<String>,
    /// HTTP/2 streams open at once per connection.
    pub h2_max_concurrent_streams: Option<u32>,
    /// HTTP/2 streams a client may reset before being answered (rapid-reset guard).
    pub h2_max_pending_reset_streams: Option<usize>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain, leaf first.
    pub cert: Option<String>,
    /// PEM private key (PKCS#8, RSA or EC).
    pub key: Option<String>,
    /// More certificates, chosen by SNI.
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    /// Generate (once, kept in `state_dir`) a self-signed certificate for these names.
    pub self_signed: Option<Vec<String>>,
    /// `"1.2"` (default) or `"1.3"`.
    pub min_version: Option<String>,
    /// Mozilla's profile: `"intermediate"` (default: TLS 1.2 + 1.3) or `"modern"` (1.3 only).
    pub profile: Option<String>,
    /// TLS 1.2 suites offered, in OpenSSL (`ECDHE-ECDSA-AES128-GCM-SHA256`, as nginx's
    /// `ssl_ciphers`, one string with `:` or a list) or IANA names. Default: all six
    /// forward-secret AEAD suites.
    pub ciphers: Option<OneOrMany>,
    /// Stateless session tickets (default on; session IDs are always on).
    pub session_tickets: Option<bool>,
    /// `[tls.acme]`: obtain and renew the certificate from an ACME CA.
    pub acme: Option<crate::acme::RawAcme>,
    /// Choose the cipher suite by the server's order (`ciphers`), not the client's
    /// (nginx `ssl_prefer_server_ciphers`; default false, as Mozilla advises for
    /// intermediate, where every suite offered is strong).
    pub prefer_server_order: Option<bool>,
    /// Offer and prefer the hybrid post-quantum key exchange X25519MLKEM768 (default true;
    /// X25519, P-256 and P-384 stay for older clients).
    pub post_quantum: Option<bool>,
    /// Staple OCSP responses for certificates that name a responder (default true).
    pub ocsp_stapling: Option<bool>,
}

/// One entry of `[[tls.certificates]]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM certificate chain, leaf first.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
}

/// `[headers]`, and a route's `headers = { … }` overrides.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    /// `Strict-Transport-Security` (HTTPS responses only).
    pub hsts: Option<Toggle>,
    /// Append `preload` to HSTS.
    pub hsts_preload: Option<bool>,
    /// `Content-Security-Policy`.
    pub csp: Option<Toggle>,
    /// `X-Content-Type-Options`.
    pub content_type_options: Option<Toggle>,
    /// `X-Frame-Options`.
    pub frame_options: Option<Toggle>,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<Toggle>,
    /// `Permissions-Policy`.
    pub permissions_policy: Option<Toggle>,
    /// `Cross-Origin-Opener-Policy`.
    pub coop: Option<Toggle>,
    /// `Cross-Origin-Resource-Policy`.
    pub corp: Option<Toggle>,
    /// `Cross-Origin-Embedder-Policy` (off by default: it breaks most third-party embeds).
    pub coep: Option<Toggle>,
    /// Remove banner headers (`Server`, `X-Powered-By`, …) from upstream responses.
    pub hide_banners: Option<bool>,
    /// More response headers to remove.
    pub remove: Option<Vec<String>>,
    /// Response headers to set (replacing any upstream value).
    pub set: Option<BTreeMap<String, String>>,
}

/// `[upstreams.NAME]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `host:port` of each server.
    #[serde(default)]
    pub servers: Vec<String>,
    /// `"round_robin"` (default) or `"least_conn"`.
    pub balance: Option<String>,
    /// Failures within `fail_timeout` that take a server out.
    pub max_fails: Option<u32>,
    /// The failure window, and how long a failed server stays out.
    pub fail_timeout: Option<Duration>,
    /// Longest time to open a connection.
    pub connect_timeout: Option<Duration>,
    /// Longest time from request sent to response headers received.
    pub response_timeout: Option<Duration>,
    /// How long an unused keep-alive connection is kept.
    pub idle_timeout: Option<Duration>,
    /// Most idle keep-alive connections kept per server.
    pub max_idle: Option<usize>,
    /// Retry once on another server when a connection cannot be made (default true).
    pub retry: Option<bool>,
    /// Active health check: `{ path, status, interval, timeout, rise, fall, host }`.
    pub health_check: Option<crate::ops::RawHealthCheck>,
    /// Whether `/ready` needs a healthy server in this pool (default true).
    pub required: Option<bool>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// A name for logs and metrics (default: derived from host and path).
    pub name: Option<String>,
    /// Host to match: `example.com` or `*.example.com`.
    pub host: Option<String>,
    /// Several hosts to match.
    pub hosts: Option<Vec<String>>,
    /// Path prefix to match (default `/`).
    pub path: Option<String>,
    /// Match the path exactly instead of as a prefix.
    pub exact: Option<bool>,
    /// Match the path by a regular expression instead of a prefix (nginx's `location ~`;
    /// `(?i)` for `~*`). Checked in config order after the longest prefix is found, and
    /// the first match wins over it, as nginx does.
    pub path_regex: Option<String>,
    /// When this prefix is the longest match, regex routes are not consulted (nginx's
    /// `location ^~`).
    pub prefix_priority: Option<bool>,
    /// Remove the matched prefix before forwarding.
    pub strip_prefix: Option<bool>,
    /// Headers set on the request sent upstream (nginx's `proxy_set_header`, Caddy's
    /// `header_up`); an empty value removes the client's. Upstream routes only; the
    /// forwarding headers rampart sets itself cannot be named.
    pub request_headers: Option<std::collections::BTreeMap<String, String>>,
    /// Send to this upstream pool.
    pub upstream: Option<String>,
    /// Serve files from this directory.
    #[serde(rename = "static")]
    pub static_dir: Option<String>,
    /// Index file for directories (default `index.html`).
    pub index: Option<String>,
    /// File served for navigation requests that match no file (SPA routing).
    pub spa_fallback: Option<String>,
    /// Answer with a redirect to this URL.
    pub redirect: Option<String>,
    /// Status of that redirect (301, 302, 303, 307, 308; default 301).
    pub redirect_status: Option<u16>,
    /// Append the request path and query to the redirect URL.
    pub redirect_keep_path: Option<bool>,
    /// Answer with a fixed response.
    pub respond: Option<RawRespond>,
    /// Security header overrides for this route.
    pub headers: Option<RawHeaders>,

    /// Rate limits applying to this route (names of `[limits.NAME]`).
    pub limit: Option<OneOrMany>,
    /// Accepted authentication methods: `jwt`, `api_key`.
    pub auth: Option<Vec<String>>,
    /// Let unauthenticated requests through (identity still forwarded when present).
    pub auth_optional: Option<bool>,
    /// Largest request body (default 10MB).
    pub body_limit: Option<Size>,
    /// Only these client networks may use the route.
    pub allow: Option<Vec<Cidr>>,
    /// These client networks may not.
    pub deny: Option<Vec<Cidr>>,
    /// Allowed methods (others get 405 with `Allow`).
    pub methods: Option<Vec<String>>,
    /// CORS policy name (`[cors.NAME]`).
    pub cors: Option<String>,
    /// Double-submit CSRF check on unsafe methods.
    pub csrf: Option<bool>,
    /// Remove `Authorization` and the API key header before the upstream, once the edge
    /// has authenticated the request (the identity still goes as `X-Auth-*`).
    pub strip_credentials: Option<bool>,
    /// Require a tenant header.
    pub tenant: Option<RawTenant>,
    /// `Cache-Control` rules for static files, first match wins.
    pub cache: Option<Vec<RawCacheRule>>,
    /// `Cache-Control` of HTML files (default `no-cache`).
    pub html_cache: Option<String>,
    /// Compress responses (default: on for `static`, off for `upstream`).
    pub compress: Option<bool>,
    /// Smallest body compressed (default 1KB).
    pub compress_min_size: Option<Size>,
    /// Serve dotfiles from a static root (default false; `/.well-known/` always is).
    pub dotfiles: Option<bool>,
    /// Follow symlinks that lead out of the static root (default false).
    pub follow_symlinks: Option<bool>,
    /// How long a file kept in memory is served before it is checked again (default 1s).
    pub revalidate_after: Option<Duration>,
    /// A fresh CSP nonce on every HTML response, added to its tags and to the policy.
    pub csp_nonce: Option<bool>,
    /// Send the policy as `Content-Security-Policy-Report-Only`.
    pub csp_report_only: Option<bool>,
    /// Cookie hardening overrides (`cookies = false` is written `cookies = { secure = false, … }`).
    pub cookies: Option<RawCookies>,
    /// Served only when `[license]` grants this feature (else 403 or 402).
    pub requires_feature: Option<String>,
}

/// A fixed response.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    /// Status code (default 200).
    pub status: Option<u16>,
    /// Body text.
    pub body: Option<String>,
    /// `Content-Type` (default `text/plain; charset=utf-8`).
    pub content_type: Option<String>,
}

/// One `[[routes.cache]]` rule.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCacheRule {
    /// File glob (`*.pdf`, `/static/**/*.js`, `*.{woff,woff2}`).
    pub glob: String,
    /// `Cache-Control` value for matching files.
    pub control: String,
}

/// `[csp_report]`.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCspReport {
    /// On unless false.
    pub enabled: Option<bool>,
    /// Path answered on every host (default `/csp-report`).
    pub path: Option<String>,
    /// Largest report body (default 64KB).
    pub max_body: Option<Size>,
    /// Reports per client IP (default `10/s`).
    pub rate: Option<String>,
    /// Burst above the rate (default 20).
    pub burst: Option<u32>,
    /// Also name the endpoint for the Reporting API (`report-to`, `Reporting-Endpoints`);
    /// default true. Browsers that support it send reports there, batched, instead of
    /// `report-uri` at once.
    pub report_to: Option<bool>,
}

// === request policies (`[limits.NAME]`, `[cors.NAME]`, `[api_keys]`, `[jwt]`, `[csrf]`) ===

/// `[limits.NAME]`: a rate limit, optionally with a login lockout.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    /// `10/s`, `5/m`, `500/h`, `1000/d`.
    pub rate: Option<String>,
    /// Requests allowed above the steady rate at once (nginx `burst`; default: the rate's
    /// count less one, so `N/period` admits N at once).
    pub burst: Option<u32>,
    /// `ip` (default), `user`, `api_key`, `user_or_ip`, or `header:NAME`.
    pub key: Option<String>,
    /// Only requests with these methods count (a method class); default all.
    pub methods: Option<Vec<String>>,
    /// Refuse excess at once (default true); false delays requests within the burst
    /// to the steady rate, like nginx `limit_req` without `nodelay`.
    pub nodelay: Option<bool>,
    /// Most keys tracked at once (default 100000); see the README for the policy when full.
    pub max_keys: Option<usize>,
    /// Lock an account after repeated failed logins on the routes using this limit.
    pub lockout: Option<RawLockout>,
    /// With `[state] backend = "redis"`: what the limit does while Redis cannot be
    /// reached: `local` (default: `rate / fleet_size` on each instance), `allow`, `deny`.
    pub on_state_error: Option<String>,
    /// With `[state] backend = "redis"`: tokens an instance takes from Redis at once for a
    /// key, spending the rest locally (default 1: every request asks Redis).
    pub lease: Option<u32>,
}

/// `lockout = { … }` in a limit.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    /// Failed attempts that lock (default 5).
    pub failures: Option<u32>,
    /// How long a key stays locked (default 15m).
    #[serde(rename = "for")]
    pub lock_for: Option<RawDuration>,
    /// The window the failures are counted in (default: `for`).
    pub window: Option<RawDuration>,
    /// JSON or form field naming the account (default `username`); the client IP when
    /// the body has none.
    pub field: Option<String>,
    /// Upstream statuses that count as a failure (default 401 and 403).
    pub statuses: Option<Vec<u16>>,
    /// Status of the refusal while locked: 429 (default) or 423.
    pub status: Option<u16>,
}

/// `[api_keys]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    /// Request header carrying the key (default `X-API-Key`).
    pub header: Option<String>,
    /// The keys; several may be valid at once (rotation).
    #[serde(default, deserialize_with = "api_key_entries")]
    pub keys: Vec<RawApiKey>,
}

/// One API key: a table, or the key alone as a string (`keys = ["${API_KEYS:list}"]`, named
/// `key0`, `key1`… in logs).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// Shown in logs instead of the key.
    pub name: Option<String>,
    /// The key itself (use `key_file` or `${ENV}`, never a literal in a reviewed file).
    pub key: Option<String>,
    /// Or its SHA-256, hex.
    pub sha256: Option<String>,
    /// The key it replaces, accepted under the same name while clients move over
    /// (`rampart secrets rotate` writes `KEY_PREVIOUS`: `previous = "${KEY_PREVIOUS:-}"`).
    /// Empty means none.
    pub previous: Option<String>,
}

/// `keys` items: a `{ name, key… }` table or a bare key string.
fn api_key_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RawApiKey>, D::Error> {
    struct Item(RawApiKey);
    impl<'de> Deserialize<'de> for Item {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = RawApiKey;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a key string or a { name, key } table")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawApiKey, E> {
                    Ok(RawApiKey {
                        key: Some(v.to_owned()),
                        ..RawApiKey::default()
                    })
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    map: A,
                ) -> Result<RawApiKey, A::Error> {
                    RawApiKey::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                }
            }
            d.deserialize_any(V).map(Item)
        }
    }
    Ok(Vec::<Item>::deserialize(d)?
        .into_iter()
        .map(|i| i.0)
        .collect())
}

/// `[jwt]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// The one accepted algorithm: HS256/384/512, RS256/384/512, ES256, EdDSA.
    pub alg: Option<String>,
    /// HMAC secret (HS*), at least 32 bytes.
    pub secret: Option<String>,
    /// The HMAC secret it replaces, still accepted during a rotation
    /// (`secret_previous = "${JWT_SECRET_PREVIOUS:-}"`). Empty means none.
    pub secret_previous: Option<String>,
    /// PEM public key (RS*, ES256, EdDSA); `public_key_file` reads it from a file.
    pub public_key: Option<String>,
    /// A JWKS document (JSON); `jwks_file` reads it from a file.
    pub jwks: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match).
    pub audience: Option<Vec<String>>,
    /// Clock leeway for `exp` and `nbf` (default 30s).
    pub leeway: Option<RawDuration>,
    /// Tokens issued (`iat`) before this RFC 3339 instant are refused.
    pub revoke_before: Option<String>,
    /// Longest accepted lifetime (`exp - iat`); tokens without both claims, or issued in
    /// the future, are refused when set.
    pub max_lifetime: Option<RawDuration>,
    /// Claims forwarded to the upstream: claim name → header name. `sub` goes to
    /// `X-Auth-Subject` by default.
    pub forward: Option<BTreeMap<String, String>>,
}

/// `[cors.NAME]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Exact origins (`https://app.example.com`), or `*` (not with credentials).
    #[serde(default)]
    pub origins: Vec<String>,
    /// Allowed methods (default GET, HEAD, POST).
    pub methods: Option<Vec<String>>,
    /// Allowed request headers (default none beyond the CORS-safelisted ones).
    pub headers: Option<Vec<String>>,
    /// Allow credentials (cookies, `Authorization`).
    pub credentials: Option<bool>,
    /// How long a browser may cache a preflight (default 10m).
    pub max_age: Option<RawDuration>,
    /// Response headers exposed to scripts.
    pub expose: Option<Vec<String>>,
}

/// `[csrf]`: settings shared by routes with `csrf = true`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCsrf {
    /// Cookie name (default `csrf_token`).
    pub cookie: Option<String>,
    /// Header that must echo it (default `X-CSRF-Token`).
    pub header: Option<String>,
    /// Origins allowed to send unsafe requests (besides the request's own host).
    pub allowed_origins: Option<Vec<String>>,
    /// Requests with `Authorization: Bearer …` pass without the token (default false).
    pub exempt_bearer: Option<bool>,
}

/// A route's `tenant = { … }`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// Header carrying the tenant (default `X-Tenant-ID`).
    pub header: Option<String>,
    /// Regular expression the whole value must match (default `[A-Za-z0-9_-]{1,64}`).
    pub pattern: Option<String>,
    /// A JWT claim that must equal the header.
    pub claim: Option<String>,
}

/// A route's `cookies = { … }` (cookie hardening of upstream `Set-Cookie`).
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCookies {
    /// Add `Secure` (default true).
    pub secure: Option<bool>,
    /// Add `HttpOnly` (default true) except to cookies in `script_readable`.
    pub httponly: Option<bool>,
    /// `SameSite` added when missing: `Lax` (default), `Strict`, `None`, or `off`.
    pub samesite: Option<String>,
    /// Cookies scripts must read (no `HttpOnly` added). The CSRF cookie always is.
    pub script_readable: Option<Vec<String>>,
}

/// A string or a list of strings (`limit = "api"` or `limit = ["reads", "writes"]`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, in order.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}
