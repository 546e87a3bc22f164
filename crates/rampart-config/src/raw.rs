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
    /// `[api_keys]`: keys accepted by routes with `auth = ["api_key"]`.
    pub api_keys: Option<RawApiKeys>,
    /// `[jwt]`: how bearer tokens are verified on routes with `auth = ["jwt"]`.
    pub jwt: Option<RawJwt>,
    /// `[csrf]`: the double-submit check of routes with `csrf = true`.
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
    /// `[preflight]`: the production checks (`rampart preflight`, and at start and reload
    /// with `environment = "production"`).
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
    /// Plain HTTP listener, `IP:PORT` (`":80"` = all IPv4). When `[tls]` is set it only
    /// redirects to HTTPS (301 for GET/HEAD, 308 otherwise, same host, path and query).
    pub http: Option<ListenAddr>,
    /// HTTPS listener; needs `[tls]`. At least one of `http`/`https` is required.
    pub https: Option<ListenAddr>,
    /// Runtime worker threads (1 = a single-threaded runtime).
    pub workers: Option<usize>,
    /// CIDRs whose `X-Forwarded-For`/`-Proto`/`-Host` are believed. From anyone else they
    /// are replaced. The client IP is the right-most untrusted `X-Forwarded-For` entry.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Client networks refused on every request before routing (routes, the HTTPS redirect,
    /// public admin mounts): 403 `ip_denied` and an `acl.refused` audit event; the client
    /// is the one `trusted_proxies` vouch for. Per-route lists are `allow`/`deny` on
    /// routes.
    #[serde(default)]
    pub deny: Vec<Cidr>,
    /// Hosts answered (`example.com`, `*.example.com` = any subdomain depth). Others never
    /// reach an upstream.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// What another host gets: `"421"` (JSON refusal) or `"close"` (connection closed
    /// without an answer, like nginx's 444).
    pub misdirected: Option<String>,
    /// Path prefixes the plain listener serves instead of redirecting (e.g.
    /// `/.well-known/acme-challenge/`).
    #[serde(default)]
    pub redirect_exempt: Vec<String>,
    /// Port written into HTTPS redirects (set it when a load balancer maps 443 elsewhere).
    pub https_port: Option<u16>,
    /// Where generated state (the development certificate) is kept.
    pub state_dir: Option<String>,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Option<Duration>,
    /// Time to receive a request head from its first byte (slow-loris guard), also across
    /// parks.
    pub header_read_timeout: Option<Duration>,
    /// A connection with no bytes moving and no request in flight is closed gracefully
    /// (keep-alive HTTP/1.1 between requests, HTTP/2, and connections that never send a
    /// byte).
    pub idle_timeout: Option<Duration>,
    /// An HTTP/1.1 connection quiet this long (nothing in flight, everything written) gives
    /// back its buffers and keeps only its socket until the client sends again; a plain
    /// (not TLS) one then waits with no task of its own, its socket in one epoll set for
    /// all such connections (`rampart_lot_connections`): ~0.5 KiB per idle keep-alive
    /// connection, not ~28. A busy connection is never parked; a parked one pays a fresh
    /// HTTP/1.1 state on its next request.
    pub park_after: Option<Duration>,
    /// Time to complete a TLS handshake.
    pub tls_handshake_timeout: Option<Duration>,
    /// Largest request head in bytes (request line, header lines and the blank line that
    /// ends them), byte-exact on every HTTP/1.1 path; larger gets 431. HTTP/2 counts its
    /// header list as RFC 9113 does (names + values + 32 per field).
    pub max_header_size: Option<Size>,
    /// Most request headers; more gets 431.
    pub max_headers: Option<usize>,
    /// Open client connections; further clients wait in the kernel's accept queue.
    pub max_connections: Option<usize>,
    /// Accept HTTP/2 with prior knowledge on the plain listener (behind a load balancer
    /// that speaks h2c): a connection opening with the HTTP/2 preface speaks HTTP/2, any
    /// other speaks HTTP/1.1 as without it. HTTPS always offers HTTP/2 by ALPN.
    pub h2c: Option<bool>,
    /// Answer simple HTTP/1.1 requests (GET or HEAD, no body, no `Expect`, no upgrade) on
    /// rampart's own path: httparse, one buffer for the response head, one `writev` with
    /// the first body bytes. Every other request, and a malformed one, goes to hyper with
    /// the bytes already read, and hyper serves the connection until it next parks. `false`
    /// sends everything through hyper (to compare, or to rule the fast path out).
    pub h1_fast_path: Option<bool>,
    /// Reload when the config file changes (size or modification time, checked every 2 s;
    /// works with ConfigMap symlink swaps). A broken edit is refused like any reload.
    pub watch_config: Option<bool>,
    /// `"production"` runs the preflight checks at start and on every reload and refuses on
    /// any error finding (`RAMPART_ENV` overrides the file). In development they run too
    /// and only report (`/health`, `/metrics`, one log line).
    pub environment: Option<String>,
    /// A `.env` file `${VAR}` reads first.
    pub env_file: Option<String>,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: Option<u32>,
    /// HTTP/2 streams per second a client may reset before they are answered, beyond a
    /// burst of `h2_max_concurrent_streams` (rapid-reset guard: past it, GOAWAY
    /// ENHANCE_YOUR_CALM).
    pub h2_max_pending_reset_streams: Option<usize>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain (leaf first) and private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    /// The key must match the certificate. This is the default certificate.
    pub cert: Option<String>,
    /// PEM certificate chain (leaf first) and private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    /// The key must match the certificate. This is the default certificate.
    pub key: Option<String>,
    /// More certificates, chosen by SNI.
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    /// PEM file of the CA certificates client certificates must chain to (mutual TLS).
    /// Routes choose with `client_cert`; the certificate is asked for in the handshake of
    /// the hosts that have such routes only (a browser elsewhere is never prompted).
    pub client_ca: Option<String>,
    /// Certificate revocation lists (PEM or DER files) of `client_ca`: a revoked client
    /// certificate fails the handshake. Read again on every reload.
    #[serde(default)]
    pub client_crl: Vec<String>,
    /// Names for a self-signed ECDSA certificate generated into `state_dir/tls/` (kept
    /// across restarts, renewed 30 days before its one-year expiry). For development only.
    pub self_signed: Option<Vec<String>>,
    /// `"1.2"` or `"1.3"`. Nothing older is ever offered.
    pub min_version: Option<String>,
    /// Mozilla's server-side TLS profile: `"intermediate"` (TLS 1.2 + 1.3) or `"modern"`
    /// (TLS 1.3 only).
    pub profile: Option<String>,
    /// The TLS 1.2 suites offered, as nginx's `ssl_ciphers` (one `:`-separated string,
    /// pasted as is) or a list, OpenSSL or IANA names:
    /// `ECDHE-{ECDSA,RSA}-AES128-GCM-SHA256`, `…-AES256-GCM-SHA384`, `…-CHACHA20-POLY1305`.
    /// Anything else (CBC, static RSA) is an error, since it is never offered. TLS 1.3's
    /// three suites are always on.
    pub ciphers: Option<OneOrMany>,
    /// Stateless resumption tickets (a session-ID cache is always on). TLS 1.3 clients get
    /// one ticket (or session ID) per handshake, resumed ones too.
    pub session_tickets: Option<bool>,
    /// `[tls.acme]`: obtain and renew the certificate from an ACME CA.
    pub acme: Option<crate::acme::RawAcme>,
    /// Choose the suite by `ciphers`' order, not the client's (nginx
    /// `ssl_prefer_server_ciphers on`); off by default, as Mozilla advises when every suite
    /// offered is strong.
    pub prefer_server_order: Option<bool>,
    /// Offer and prefer the hybrid post-quantum key exchange X25519MLKEM768 (what Chrome,
    /// Firefox, Cloudflare and Caddy use); X25519, P-256 and P-384 stay for older clients.
    /// `false` offers only the classical groups.
    pub post_quantum: Option<bool>,
    /// Staple OCSP responses for certificates whose leaf names a responder (file or ACME
    /// certificates; the issuer must follow the leaf in the chain file). See [OCSP
    /// stapling](../README.md#ocsp-stapling).
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
    /// `["host:port", …]` (a name is looked up when connecting and its addresses kept for `dns_ttl`). `https://host[:port]`
    /// (443 by default) speaks TLS to the server, verified (see `tls`); `http://host[:port]`
    /// is plain. One pool is all TLS or all plain.
    #[serde(default)]
    pub servers: Vec<String>,
    /// TLS to the servers (implied by `https://` servers): `{ ca = "internal-ca.pem",
    /// server_name = "api.internal", cert = "client.pem", key = "client.key", min_version =
    /// "1.3" }`. The certificate is always verified unless `insecure_skip_verify`.
    pub tls: Option<RawUpstreamTls>,
    /// `"http1"`, `"h2"` (HTTP/2: over TLS by ALPN, else h2c with prior knowledge; needed
    /// for gRPC) or `"auto"` (TLS only: HTTP/2 when the server's ALPN picks it, else
    /// HTTP/1.1).
    pub protocol: Option<String>,
    /// Or `"least_conn"` (fewest requests in flight).
    pub balance: Option<String>,
    /// Failures (connect error, timeout, broken response) within `fail_timeout` that take a
    /// server out for `fail_timeout`; `0` disables. If every server is out, all are tried
    /// anyway. Only what the upstream did counts: a client's malformed or over-limit body
    /// is a 400/413 to that client, a client body that stalls past `response_timeout` a
    /// 408.
    pub max_fails: Option<u32>,
    /// The failure window and how long a failed server stays out.
    pub fail_timeout: Option<Duration>,
    /// Time to open a connection.
    pub connect_timeout: Option<Duration>,
    /// How long a server name's addresses are used before they are looked up again
    /// (`0s`: on every new connection). Only a name's first lookup is waited for (by one
    /// connect; a burst waits for that one answer); after that the answer held stays in
    /// use while a background lookup refreshes it, and is kept when the resolver fails or
    /// hangs. A connect that reaches none of the addresses, or times out, starts that
    /// refresh at once.
    /// Like HAProxy's `hold valid`; nginx resolves once at start.
    pub dns_ttl: Option<Duration>,
    /// Time from sending the request to the response head; past it the client gets 504.
    pub response_timeout: Option<Duration>,
    /// How long an unused keep-alive connection to the upstream is kept.
    pub idle_timeout: Option<Duration>,
    /// Idle keep-alive connections kept per server (they still close after `idle_timeout`).
    /// A low cap makes HTTP/2 clients, whose many concurrent streams each need an upstream
    /// HTTP/1.1 connection, open and close connections per request.
    pub max_idle: Option<usize>,
    /// When a connection cannot be made, try one other server. Whatever this says: a pooled
    /// connection the upstream closed while idle (its keep-alive ended) is never a failure;
    /// the request goes on another pooled or a fresh connection. Retried after being
    /// written: only GET and HEAD that got no byte of an answer (the close crossed the
    /// request); any other method is retried only when none of it was written. The
    /// upstream's `Keep-Alive: timeout=N` is learnt: its idle connections are dropped a
    /// second before N.
    pub retry: Option<bool>,
    /// Active check: `{ path = "/health", status = 200, interval = "5s", timeout = "2s",
    /// rise = 2, fall = 3, host = "…" }` (defaults shown; `status` unset = any 2xx). `fall`
    /// failed checks take a server out, `rise` passes bring it back; the first check runs
    /// at start. Works with passive health: a server is used only when neither has it out.
    pub health_check: Option<crate::ops::RawHealthCheck>,
    /// Whether `/ready` needs a server of this pool up.
    pub required: Option<bool>,
}

/// `tls = { … }` of an upstream pool.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// PEM file of the CA certificates the servers' certificates must chain to (a private
    /// CA); without it, the system's roots.
    pub ca: Option<String>,
    /// The name sent as SNI and verified in the server's certificate, for every server of
    /// the pool (when servers are addressed by IP or by another name than their
    /// certificate's).
    pub server_name: Option<String>,
    /// PEM certificate chain presented to servers that require a client certificate
    /// (mutual TLS); with `key`.
    pub cert: Option<String>,
    /// PEM private key of `cert`.
    pub key: Option<String>,
    /// `"1.2"` or `"1.3"`: the oldest version accepted from the servers.
    pub min_version: Option<String>,
    /// Accept any certificate (still encrypted, not authenticated: anyone on the path can
    /// pose as the server). A preflight error in production (PF-UPS-01); never use it
    /// beyond a test bench.
    pub insecure_skip_verify: Option<bool>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Name for logs.
    pub name: Option<String>,
    /// `example.com` or `*.example.com`.
    pub host: Option<String>,
    /// `example.com` or `*.example.com`.
    pub hosts: Option<Vec<String>>,
    /// Path prefix. Prefixes match whole segments: `/api` matches `/api` and `/api/x`, not
    /// `/apix`.
    pub path: Option<String>,
    /// Match the path exactly.
    pub exact: Option<bool>,
    /// Match the normalised path by a regular expression instead of `path` (nginx's
    /// `location ~`; start it with `(?i)` for `~*`). Not anchored: write `^` and `$`. A
    /// static route serves `root + path` (nginx's `root`). No look-around or
    /// back-references (linear-time matching).
    pub path_regex: Option<String>,
    /// When this prefix is the longest match, regex routes are not tried (nginx's `location
    /// ^~`).
    pub prefix_priority: Option<bool>,
    /// Remove the matched prefix before forwarding (`/api/users` → `/users`); upstream
    /// routes only.
    pub strip_prefix: Option<bool>,
    /// Headers set on the request sent upstream, replacing a client's of the same name; an
    /// empty value removes the client's: `{ "X-Forwarded-Ssl" = "on", "X-Debug" = "" }`
    /// (nginx's `proxy_set_header`, Caddy's `header_up`). Upstream routes only; the
    /// framing, hop-by-hop and forwarding headers rampart sets (`Host`, `X-Forwarded-*`,
    /// `X-Real-IP`, `X-Request-ID`, `traceparent`…) cannot be named. No cost on routes
    /// without it.
    pub request_headers: Option<std::collections::BTreeMap<String, String>>,
    /// Proxy to `[upstreams.NAME]`.
    pub upstream: Option<String>,
    /// Serve files from this directory (the route prefix is removed from the path).
    /// Directories without a trailing slash are redirected; never a listing; `..`, `.`, `\`
    /// and NUL are refused before and after percent-decoding. `ETag` and `Last-Modified`
    /// with `If-None-Match`/`If-Modified-Since` → 304; one `Range` → 206 (`If-Range`
    /// honoured; several ranges get the whole file; outside → 416 with `Content-Range:
    /// bytes */LEN`); HEAD. Files up to 1 MiB are kept in memory (64 MiB in all) with their
    /// response headers; a changed file (inode, size or time) is reloaded (see
    /// `revalidate_after`).
    #[serde(rename = "static")]
    pub static_dir: Option<String>,
    /// Index file for directories (`static` routes).
    pub index: Option<String>,
    /// File served for navigation requests that match no file (`Accept: text/html` or
    /// `Sec-Fetch-Mode: navigate`); a missing `/assets/app.js` stays a 404.
    pub spa_fallback: Option<String>,
    /// Redirect to this URL (absolute `http(s)://…` or a path).
    pub redirect: Option<String>,
    /// 301, 302, 303, 307 or 308.
    pub redirect_status: Option<u16>,
    /// Append the path below the prefix and the query.
    pub redirect_keep_path: Option<bool>,
    /// Fixed response `{ status = 200, body = "…", content_type = "text/plain;
    /// charset=utf-8" }`.
    pub respond: Option<RawRespond>,
    /// Per-route overrides of `[headers]`.
    pub headers: Option<RawHeaders>,

    /// A `[limits.NAME]` or a list of them (all apply; each counts only its `methods`).
    pub limit: Option<OneOrMany>,
    /// `"required"`: a request without a verified client certificate (`[tls] client_ca`)
    /// gets 403 `client_cert_required`, on HTTP/1.1 and HTTP/2 alike; `"optional"`: let
    /// through either way; `"off"`. With a certificate, the upstream gets
    /// `X-Client-Cert-Subject`, `-San`, `-Fingerprint` (SHA-256, hex) and `-Verified:
    /// SUCCESS` (client copies are always removed while `client_ca` is set).
    pub client_cert: Option<String>,
    /// PEM file of the CA certificates this route's client certificates must chain to,
    /// instead of `[tls] client_ca` (different CAs for different routes on one host: the
    /// handshake trusts every CA of the host's routes, then each route checks the
    /// certificate against its own; one chaining only to another route's CA gets 403
    /// `client_cert_untrusted`). Needs `client_cert`.
    pub client_ca: Option<String>,
    /// Accepted methods, any of `["jwt", "api_key", "mtls"]`: none sent → 401 with
    /// `WWW-Authenticate`, wrong → 403 `invalid_credentials`. The upstream gets
    /// `X-Auth-Subject` (JWT `sub`, the key's name, or the client certificate's common
    /// name, else its first SAN), `X-Auth-Method` and the claims in `jwt.forward`;
    /// client-sent copies of these headers are removed on every route.
    pub auth: Option<Vec<String>>,
    /// Let requests without credentials through (wrong credentials are still refused).
    pub auth_optional: Option<bool>,
    /// Largest request body: 413 up front on `Content-Length`, and for chunked bodies as
    /// they arrive (the upstream request is aborted, never truncated).
    pub body_limit: Option<Size>,
    /// Client networks (CIDRs, v4 and v6) allowed on / refused from the route: 403
    /// `ip_denied`. The client is the TCP peer unless it is in `server.trusted_proxies`; an
    /// IPv4-mapped IPv6 address counts as IPv4.
    pub allow: Option<Vec<Cidr>>,
    /// Client networks (CIDRs, v4 and v6) allowed on / refused from the route: 403
    /// `ip_denied`. The client is the TCP peer unless it is in `server.trusted_proxies`; an
    /// IPv4-mapped IPv6 address counts as IPv4.
    pub deny: Option<Vec<Cidr>>,
    /// Allowed methods; others get 405 with `Allow` (`GET` implies `HEAD`).
    pub methods: Option<Vec<String>>,
    /// Name of a `[cors.NAME]` policy.
    pub cors: Option<String>,
    /// Double-submit check: `POST`/`PUT`/`PATCH`/`DELETE` need `X-CSRF-Token` equal to the
    /// `csrf_token` cookie (set by the edge on responses to requests without one: `Secure`,
    /// `SameSite=Lax`, readable by scripts) and an `Origin`/`Referer` of the request's own
    /// host or `csrf.allowed_origins`; else 403 `csrf_failed` / `csrf_origin`. Requests
    /// authenticated by a bearer token or an API key are exempt.
    pub csrf: Option<bool>,
    /// Remove `Authorization` and the API key header from the request before the upstream
    /// once the edge has authenticated it; the upstream gets the identity as
    /// `X-Auth-Subject`/`X-Auth-Method` and forwarded claims only.
    pub strip_credentials: Option<bool>,
    /// `{ header = "X-Tenant-ID", pattern = "[A-Za-z0-9_-]{1,64}", claim = "tenant" }`:
    /// missing → 400 `tenant_required`, not matching the whole pattern → 400
    /// `tenant_invalid`, not equal to the JWT claim (when `claim` is set) → 403
    /// `tenant_mismatch`.
    pub tenant: Option<RawTenant>,
    /// `[[routes.cache]]` rules `{ glob = "*.pdf", control = "public, max-age=86400" }`,
    /// first match wins (`*`, `**`, `?`, `[a-z]`, `{js,css}`; a glob without `/` matches
    /// the file name). Then the defaults: content-hashed files (a name like
    /// `main.3f2a1b9c.js` / `index-BnNmW0n4.css`, wherever they live; an unhashed
    /// `assets/app.js` is not one) get `public, max-age=31536000, immutable`; HTML gets
    /// `html_cache`; the rest `no-cache`.
    pub cache: Option<Vec<RawCacheRule>>,
    /// `Cache-Control` of HTML files (`no-cache`: revalidate every time; or e.g.
    /// `max-age=3600`).
    pub html_cache: Option<String>,
    /// Gzip or brotli by `Accept-Encoding` q-values (brotli on a tie; `*` counts) for text,
    /// JSON, JS, XML, SVG, wasm and uncompressed fonts; never for `Range` answers,
    /// already-encoded bodies, `Cache-Control: no-transform`, `text/event-stream` or other
    /// types. Static files: a precompressed `app.js.br`/`app.js.gz` sibling (not older than
    /// the file) first, else compressed once and kept; each coding has its own `ETag`;
    /// `Vary: Accept-Encoding`. Off by default for upstreams: compressing responses that
    /// mix secrets with reflected input over TLS enables BREACH; turn it on where that
    /// cannot happen.
    pub compress: Option<bool>,
    /// Smaller bodies (by `Content-Length`) are sent as they are.
    pub compress_min_size: Option<Size>,
    /// Serve paths with a segment starting with `.` (`/.well-known/` is always served).
    pub dotfiles: Option<bool>,
    /// Serve symlinks that lead out of the `static` directory.
    pub follow_symlinks: Option<bool>,
    /// A file kept in memory is served this long before its path is `stat`ed again (nginx's
    /// `open_file_cache_valid`); a changed file shows within this time. `"0s"` checks on
    /// every request.
    pub revalidate_after: Option<Duration>,
    /// Each HTML response gets a fresh 128-bit nonce: added as `nonce="…"` to every
    /// `<script>`, `<style>`, `<link rel=stylesheet>` and script/style preload, and as
    /// `'nonce-…'` to `script-src` and `style-src` (created from `default-src` when
    /// missing). The rewrite streams (lol_html), also through gzip/brotli from the upstream
    /// (decoded, rewritten, re-encoded). The upstream receives the nonce in `X-CSP-Nonce`
    /// (a client's value is replaced). Such pages lose `ETag`/`Last-Modified` and get
    /// `Cache-Control: no-cache, private` (a cached page would replay its nonce).
    pub csp_nonce: Option<bool>,
    /// Send the policy as `Content-Security-Policy-Report-Only` (roll a new policy out by
    /// watching the reports first).
    pub csp_report_only: Option<bool>,
    /// Hardening of upstream `Set-Cookie`: `{ secure = true, httponly = true, samesite =
    /// "Lax", script_readable = ["ui_prefs"] }`; missing attributes are added, present ones
    /// kept. `samesite = "off"` adds none.
    pub cookies: Option<RawCookies>,
    /// Served only when `[license]` grants this feature; otherwise `feature_not_licensed`
    /// (403, or `license.feature_status`).
    pub requires_feature: Option<String>,
}

/// A fixed response.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    /// Status code.
    pub status: Option<u16>,
    /// Body text.
    pub body: Option<String>,
    /// `Content-Type`.
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
    /// `false` removes the endpoint and the reporting directives.
    pub enabled: Option<bool>,
    /// Its path.
    pub path: Option<String>,
    /// Larger reports → 413.
    pub max_body: Option<Size>,
    /// Per client IP; over → 429 with `Retry-After`.
    pub rate: Option<String>,
    /// Per client IP; over → 429 with `Retry-After`.
    pub burst: Option<u32>,
    /// Also advertise the endpoint to the Reporting API. Chromium then sends reports there
    /// in batches (about a minute late) instead of `report-uri` at once.
    pub report_to: Option<bool>,
}

// === request policies (`[limits.NAME]`, `[cors.NAME]`, `[api_keys]`, `[jwt]`, `[csrf]`) ===

/// `[limits.NAME]`: a rate limit, optionally with a login lockout.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    /// `10/s`, `30/m` (or `/min`, `/minute`), `500/h`, `1000/d`: N per period, N at once
    /// (see below).
    pub rate: Option<String>,
    /// Requests allowed at once above the first (nginx `burst`); `0` spaces requests
    /// strictly, one per period/N.
    pub burst: Option<u32>,
    /// `ip`, `user` (authenticated subject; anonymous requests share one bucket),
    /// `api_key`, `user_or_ip`, `client_cert` (the verified client certificate's SHA-256;
    /// requests without one count by IP), or `header:X-Tenant-ID` (requests without it
    /// count by IP).
    pub key: Option<String>,
    /// Only these methods count: `[limits.reads] methods = ["GET", "HEAD"]` and
    /// `[limits.writes] methods = ["POST", "PUT", "PATCH", "DELETE"]` on one route give
    /// per-class limits.
    pub methods: Option<Vec<String>>,
    /// Refuse excess at once; `false` holds requests within the burst until their slot,
    /// like nginx `limit_req` without `nodelay`.
    pub nodelay: Option<bool>,
    /// Keys tracked at once, exactly. Idle keys expire; a new key in a full table takes
    /// over an expired key's slot (a clock hand looks at no more than 4 slots), and when
    /// the table is full of live keys new keys share one overflow bucket under the same
    /// limit, so a flood of addresses can neither grow memory nor escape limiting, and
    /// costs the same per request whatever the table holds.
    pub max_keys: Option<usize>,
    /// Login lockout: `{ failures = 5, for = "15m", window = "15m", field = "username",
    /// statuses = [401, 403], status = 429 }`. The account is the JSON or form field
    /// `field` of the request body (else the client IP); upstream answers with a status in
    /// `statuses` count as failures; `failures` within `window` lock the account for `for`
    /// (429 or 423 with `Retry-After`, the upstream not called); a 2xx resets the count. A
    /// single instance saves active locks under `state_dir` (a restart does not unlock
    /// them); a fleet keeps them in Redis.
    pub lockout: Option<RawLockout>,
    /// With `[state] backend = "redis"`, what the limit does while Redis cannot answer:
    /// `local` (this instance enforces `rate / fleet_size` and `quota / fleet_size` alone),
    /// `allow` (no limit), `deny` (503 `state_unavailable` with `Retry-After: 1`). Never a
    /// 500.
    pub on_state_error: Option<String>,
    /// With `[state] backend = "redis"`: tokens an instance takes from Redis at once for a
    /// key (1–1000); the next requests with that key spend them locally, without a round
    /// trip, until they lapse (1 s after the grant; an instance holds at most `lease − 1`).
    /// See [Running a fleet](../README.md#running-a-fleet) for the trade-off.
    pub lease: Option<u32>,
}

/// `lockout = { … }` in a limit.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    /// Failed attempts that lock.
    pub failures: Option<u32>,
    /// How long a key stays locked.
    #[serde(rename = "for")]
    pub lock_for: Option<RawDuration>,
    /// The window the failures are counted in.
    pub window: Option<RawDuration>,
    /// JSON or form field naming the account; the client IP when
    /// the body has none.
    pub field: Option<String>,
    /// Upstream statuses that count as a failure.
    pub statuses: Option<Vec<u16>>,
    /// Status of the refusal while locked: 429 or 423.
    pub status: Option<u16>,
}

/// `[api_keys]`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    /// Request header carrying the key.
    pub header: Option<String>,
    /// The keys: `[{ name = "ci", key_file = "/run/secrets/ci_key" }, { name = "old", sha256 = "…"
    /// }]`: several valid at once, so rotation is add → deploy clients → remove. Keys are
    /// kept only as SHA-256 digests and compared in constant time; logs show the name. A
    /// key must be at least 16 characters with no whitespace (`rampart secrets` makes
    /// them).
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
    /// The key it replaces, accepted under the same name during a rotation: `previous =
    /// "${CI_KEY_PREVIOUS:-}"` (empty = none).
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
    /// The one accepted algorithm: `HS256`, `HS384`, `HS512`, `RS256`, `RS384`, `RS512`,
    /// `ES256`, `EdDSA`. Never taken from the token; `none` is always refused.
    pub alg: Option<String>,
    /// HMAC secret (HS*), at least 32 bytes.
    pub secret: Option<String>,
    /// The HMAC secret being rotated out, still accepted: `secret_previous =
    /// "${JWT_SECRET_PREVIOUS:-}"` (empty = none). `rampart secrets rotate JWT_SECRET`
    /// fills it.
    pub secret_previous: Option<String>,
    /// PEM public key (RS*, ES256, EdDSA).
    pub public_key: Option<String>,
    /// A JWKS document; the token's `kid` picks the key.
    pub jwks: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values.
    pub audience: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf` (`exp` is required).
    pub leeway: Option<RawDuration>,
    /// RFC 3339 instant: tokens issued (`iat`) earlier are refused, so "log everyone out"
    /// after a leak is one reload.
    pub revoke_before: Option<String>,
    /// Longest accepted `exp - iat` (`"30m"`): a longer-lived token, one without
    /// `iat`/`exp`, or one issued in the future (beyond `leeway`) is refused 403
    /// `invalid_credentials`.
    pub max_lifetime: Option<RawDuration>,
    /// Claims sent to the upstream as headers, e.g. `{ tenant = "X-Auth-Tenant" }`.
    pub forward: Option<BTreeMap<String, String>>,
}

/// `[cors.NAME]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Exact origins (`https://app.example.com`); `*` only without credentials.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Allowed methods.
    pub methods: Option<Vec<String>>,
    /// Allowed request headers.
    pub headers: Option<Vec<String>>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: Option<bool>,
    /// Preflight cache time.
    pub max_age: Option<RawDuration>,
    /// Response headers scripts may read.
    pub expose: Option<Vec<String>>,
}

/// `[csrf]`: settings shared by routes with `csrf = true`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCsrf {
    /// Cookie name.
    pub cookie: Option<String>,
    /// Header that must echo it.
    pub header: Option<String>,
    /// Origins allowed to send unsafe requests besides the request's own host.
    pub allowed_origins: Option<Vec<String>>,
    /// Requests carrying `Authorization: Bearer …` pass without the token even when the
    /// edge does not verify it (the application does): a browser never sends that header by
    /// itself and a cross-site page cannot add it without a CORS preflight. Requests the
    /// edge authenticated (`auth = ["jwt"]`, `["api_key"]`) are always exempt.
    pub exempt_bearer: Option<bool>,
}

/// A route's `tenant = { … }`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// Header carrying the tenant.
    pub header: Option<String>,
    /// Regular expression the whole value must match.
    pub pattern: Option<String>,
    /// A JWT claim that must equal the header.
    pub claim: Option<String>,
}

/// A route's `cookies = { … }` (cookie hardening of upstream `Set-Cookie`).
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCookies {
    /// Add `Secure`.
    pub secure: Option<bool>,
    /// Add `HttpOnly` except to cookies in `script_readable`.
    pub httponly: Option<bool>,
    /// `SameSite` added when missing: `Lax`, `Strict`, `None`, or `off`.
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
