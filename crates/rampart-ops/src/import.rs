//! `rampart import nginx`: an nginx config (parsed by `nginx-lint-parser`, `include`s
//! followed as nginx does) translated into a `rampart.toml`. Each translated block carries
//! a comment naming its source line; every directive is accounted for: translated, done by
//! rampart itself (listed with how), behaving differently (listed with how), or not
//! translated (listed with its line and why). Nothing is dropped silently.
//!
//! Translated: `upstream` (servers, `least_conn`, `max_fails`, `fail_timeout`),
//! `limit_req_zone` keyed by the client address and `limit_req` (burst, nodelay),
//! `set_real_ip_from` (trusted proxies), `server` (`listen` with `ssl`, `server_name`,
//! `ssl_certificate(_key)` or ACME when there is none, `ssl_protocols`, `ssl_ciphers`,
//! `ssl_prefer_server_ciphers`, `add_header`, `client_max_body_size`, the HTTPS redirect,
//! `return 444` as `misdirected = "close"`), and `location` in all its forms: prefix,
//! `=`, `^~`, `~` and `~*` (as `path_regex`), nested (flattened with nginx's inheritance)
//! and named (`@name`, merged where `try_files` or the `error_page … = @name` idiom uses
//! it), with `proxy_pass`, `root`/`alias`, `try_files`, `index`, `allow`/`deny`,
//! `return`, `internal`, `limit_req`, `client_max_body_size`, `add_header`,
//! `proxy_hide_header`, `proxy_read_timeout`, `proxy_connect_timeout` and `expires`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nginx_lint_parser::ast::{ConfigItem, Directive};

/// What the import made.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// The rampart config.
    pub toml: String,
    /// Directives not translated: `(file:line, directive, why)`.
    pub untranslated: Vec<(String, String, String)>,
    /// Directives rampart does by itself: `(file:line, directive, note)`.
    pub builtin: Vec<(String, String, String)>,
    /// Directives translated, where rampart behaves differently: `(file:line, directive, how)`.
    pub differs: Vec<(String, String, String)>,
}

/// A directive with where it came from.
struct Seen<'a> {
    d: &'a Directive,
    file: &'a str,
}

impl Seen<'_> {
    fn at(&self) -> String {
        one_line(&format!("{}:{}", self.file, self.d.span.start.line))
    }
    /// The arguments as nginx sees them: one word each, variables written in place
    /// (`https://$host$request_uri` is one word, not three), quotes removed.
    fn words(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut end = usize::MAX;
        for a in &self.d.args {
            let text = match &a.value {
                nginx_lint_parser::ast::ArgumentValue::Variable(_) => a.raw.clone(),
                _ => a.as_str().to_owned(),
            };
            match out.last_mut() {
                Some(last) if a.span.start.offset == end => last.push_str(&text),
                _ => out.push(text),
            }
            end = a.span.end.offset;
        }
        out
    }
    fn text(&self) -> String {
        one_line(format!("{} {}", self.d.name, self.words().join(" ")).trim())
    }
}

/// A block's directives, includes expanded, each with its file.
type Items = Vec<(Directive, String)>;

/// How a location matches.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Prefix,
    /// `^~`: a prefix that stops the regex search.
    Priority,
    Exact,
    Regex(String),
}

/// What a location inherits from its server and the locations around it (nginx's rules:
/// `root`, `client_max_body_size`, `proxy_*_timeout` and `add_header` are inherited;
/// `proxy_pass` is not; a level with its own `add_header` inherits none).
#[derive(Clone, Default)]
struct Scope {
    root: Option<String>,
    body: Option<String>,
    timeouts: Vec<(&'static str, String, String)>,
    /// `add_header` lines in effect from enclosing locations.
    loc_headers: Vec<(Directive, String)>,
    /// Whether the server (or http level) sends headers of its own.
    server_headers: bool,
    /// The enclosing location: its kind and path.
    parent: Option<(Kind, String)>,
    /// `proxy_set_header` of the levels above (a level with its own inherits none).
    request_headers: Vec<(String, String)>,
}

/// A route being built from one location.
#[derive(Default)]
struct Draft {
    action: Option<String>,
    root: Option<String>,
    alias: Option<String>,
    spa: bool,
    internal: bool,
    allow: Vec<String>,
    deny: Vec<String>,
    deny_all: bool,
    body: Option<String>,
    headers: Vec<String>,
    set: Vec<(String, String)>,
    remove: Vec<String>,
    own_headers: bool,
    cache_control: Option<String>,
    expires: Option<u64>,
    timeouts: Vec<(&'static str, String, String)>,
    limits: Vec<String>,
    index: Option<String>,
    /// `proxy_set_header` with constant values: (name, value; empty removes).
    request_headers: Vec<(String, String)>,
    merged: Vec<String>,
    /// `error_page CODE = @name`: the named location answering CODE.
    error_named: Vec<(u16, String)>,
}

/// Everything an import collects before writing.
#[derive(Default)]
struct Out {
    /// Where relative `include`s are found (nginx's configuration prefix).
    base: PathBuf,
    server: BTreeMap<&'static str, String>,
    hosts: Vec<String>,
    tls: Vec<String>,
    acme: bool,
    trusted: Vec<String>,
    headers: Vec<(String, String, String)>,
    set_headers: Vec<(String, String)>,
    upstreams: Vec<String>,
    upstream_names: Vec<String>,
    limits: Vec<String>,
    zones: BTreeMap<String, (String, String)>,
    routes: Vec<String>,
    route_keys: Vec<String>,
    /// `client_max_body_size` and proxy timeouts of the `http` block.
    http_scope: Scope,
    untranslated: Vec<(String, String, String)>,
    builtin: Vec<(String, String, String)>,
    differs: Vec<(String, String, String)>,
    anon: usize,
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a `#` comment: one line, control characters shown as spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// nginx sizes (`10m`, `100M`, `1g`, `512k`, bytes) as rampart sizes.
fn size(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let (n, unit) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], "KiB"),
        'm' => (&lower[..lower.len() - 1], "MiB"),
        'g' => (&lower[..lower.len() - 1], "GiB"),
        c if c.is_ascii_digit() => (lower.as_str(), ""),
        _ => return None,
    };
    let n: u64 = n.parse().ok()?;
    Some(if unit.is_empty() {
        n.to_string()
    } else {
        format!("{n}{unit}")
    })
}

/// nginx's `root DIR` in `location PATH`: files are looked up at DIR + PATH.
fn under(root: &str, path: &str) -> String {
    let sub = path.trim_matches('/');
    if sub.is_empty() {
        root.to_owned()
    } else {
        format!("{}/{sub}", root.trim_end_matches('/'))
    }
}

/// nginx times (`60s`, `1m`, `120`, `1h30m`, `1w`, `1M`, `1y`) as rampart durations.
fn time(s: &str) -> Option<String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("{s}s"));
    }
    if let Some(n) = s.strip_suffix('M').and_then(|n| n.parse::<u64>().ok()) {
        return Some(format!("{}d", n * 30));
    }
    rampart_config::units::parse_duration(s).ok()?;
    Some(s.to_owned())
}

fn seconds(t: &str) -> u64 {
    rampart_config::units::parse_duration(t).map_or(0, |d| d.as_secs())
}

/// A host name rampart accepts in `allowed_hosts` (nginx also takes placeholders and
/// regexes there).
fn host_ok(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A CIDR from nginx's `allow`/`deny`/`set_real_ip_from` argument.
fn cidr(x: &str) -> String {
    if x.contains('/') {
        x.to_owned()
    } else if x.contains(':') {
        format!("{x}/128")
    } else {
        format!("{x}/32")
    }
}

/// The files an `include` names, as nginx finds them: relative to the configuration
/// prefix, glob patterns sorted, names starting with a dot not matched by a wildcard.
fn include_paths(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let opts = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    let mut found: Vec<PathBuf> = glob::glob_with(&full.display().to_string(), opts)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    found.sort();
    found
}

impl Out {
    fn skip(&mut self, s: &Seen<'_>, why: &str) {
        self.untranslated.push((s.at(), s.text(), one_line(why)));
    }
    fn builtin(&mut self, s: &Seen<'_>, note: &str) {
        self.builtin.push((s.at(), s.text(), one_line(note)));
    }
    fn differs(&mut self, s: &Seen<'_>, how: &str) {
        self.differs.push((s.at(), s.text(), one_line(how)));
    }

    /// One `[tls]` key: several server blocks often repeat the same one; a different
    /// value is named (rampart has one certificate and one TLS policy).
    fn tls_set(&mut self, c: &Seen<'_>, key: &str, value: String) {
        let line = format!("{key} = {value}");
        match self.tls.iter().position(|l| l.ends_with(&format!("\n{line}"))) {
            Some(_) => self.builtin(c, "the same in another server block"),
            None if self.tls.iter().any(|l| l.contains(&format!("\n{key} = "))) => self.skip(
                c,
                "another server block sets a different one: rampart has one TLS policy and certificate (the first is kept)",
            ),
            None => self.tls.push(format!("# {}\n{line}", c.at())),
        }
    }

    /// A server- or http-level `proxy_set_header` the locations below inherit.
    fn inherited_header(&mut self, c: &Seen<'_>) -> Option<(String, String)> {
        let a = c.words();
        if self.variables(c) {
            return None;
        }
        let name = a.first()?.clone();
        if rampart_sets(&name) {
            self.skip(c, "a framing or forwarding header rampart sets itself");
            return None;
        }
        self.builtin(
            c,
            "inherited by the locations below (`request_headers` on their routes)",
        );
        Some((name, a.get(1).cloned().unwrap_or_default()))
    }

    /// `ssl_ciphers`: the suites rampart offers (forward-secret AEAD) kept in their order;
    /// the others named as never offered; OpenSSL classes (`HIGH`, `EECDH+AES`, `!aNULL`)
    /// leave rampart's default list.
    fn ciphers(&mut self, c: &Seen<'_>, list: &str) {
        let tokens: Vec<&str> = list
            .split([':', ' ', ','])
            .filter(|t| !t.is_empty())
            .collect();
        let concrete = |t: &str| {
            !t.starts_with(['!', '-', '+', '@'])
                && !t.contains('+')
                && t.contains('-')
                && t.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        };
        let offered: Vec<&str> = tokens
            .iter()
            .copied()
            .filter(|t| rampart_config::TLS12_SUITES.iter().any(|(n, _)| n == t))
            .collect();
        let dropped: Vec<&str> = tokens
            .iter()
            .copied()
            .filter(|t| concrete(t) && !offered.contains(t))
            .collect();
        if offered.is_empty() {
            self.builtin(c, "OpenSSL cipher classes: rampart offers forward-secret AEAD suites only, in its default order");
            return;
        }
        if !dropped.is_empty() {
            self.differs(
                c,
                &format!(
                    "never offered (not forward-secret AEAD): {}",
                    dropped.join(", ")
                ),
            );
        }
        self.tls_set(c, "ciphers", q(&offered.join(":")));
    }

    /// The files nginx packages ship, whose content rampart knows: not read (they differ
    /// from machine to machine), accounted for by name.
    fn known_include(&mut self, s: &Seen<'_>, pattern: &str) -> bool {
        let file = Path::new(pattern)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match file.as_str() {
            "mime.types" => self.builtin(s, "rampart's own media type table"),
            "fastcgi_params" | "fastcgi.conf" | "uwsgi_params" | "scgi_params" => self.skip(
                s,
                "a setting of a protocol rampart does not speak (FastCGI, uwsgi, SCGI)",
            ),
            _ => return false,
        }
        true
    }

    /// A directive whose value is built from nginx variables cannot be translated.
    fn variables(&mut self, s: &Seen<'_>) -> bool {
        let words = s.words();
        let Some(v) = words.iter().find(|w| w.contains('$')) else {
            return false;
        };
        self.skip(
            s,
            &format!("built from nginx variables ({v}): rampart's config has no variables"),
        );
        true
    }

    /// Directives rampart does itself, or never translates, in any context; true when
    /// handled.
    fn common(&mut self, s: &Seen<'_>) -> bool {
        let name = s.d.name.as_str();
        let words = s.words();
        let first = words.first().map(String::as_str).unwrap_or_default();
        let note = match name {
            "proxy_set_header" => match first.to_ascii_lowercase().as_str() {
                "host" | "x-real-ip" | "x-forwarded-for" | "x-forwarded-proto"
                | "x-forwarded-host" => "rampart sets Host (kept), X-Real-IP and X-Forwarded-* itself",
                "upgrade" => "WebSocket upgrades are tunnelled on upstream routes by themselves",
                "connection" => {
                    "rampart manages the Connection header: upstream keep-alive, WebSocket upgrades tunnelled"
                }
                "proxy" => "a client's Proxy header is never forwarded (httpoxy)",
                "x-request-id" => "rampart sets X-Request-ID (the client's when well formed)",
                // Others: a location's become its route's `request_headers`.
                _ => return false,
            },
            "proxy_http_version" => "rampart speaks HTTP/1.1 with keep-alive to upstreams",
            "proxy_redirect" if first == "off" => {
                "rampart does not rewrite the upstream's Location headers"
            }
            "proxy_buffering" | "proxy_buffer_size" | "proxy_buffers" | "proxy_busy_buffers_size"
            | "proxy_request_buffering" | "client_body_buffer_size" | "proxy_max_temp_file_size" => {
                "rampart streams request and response bodies as they arrive"
            }
            "proxy_send_timeout" => "sending to the upstream is bounded by the client's own timeouts",
            "gzip_static" => "static routes serve precompressed .br/.gz siblings when present",
            n if n == "gzip" || n.starts_with("gzip_") => {
                "static routes compress (gzip and brotli) by default; `compress = true` on an upstream route"
            }
            "ssl" => "deprecated in nginx: a listener is TLS by its `ssl` flag, here `server.https`",
            "ssl_session_cache" | "ssl_session_timeout" | "ssl_session_tickets" => {
                "TLS session resumption (cache and tickets) is on by default"
            }
            "ssl_stapling" | "ssl_stapling_verify" | "ssl_trusted_certificate" | "resolver"
            | "resolver_timeout" => "OCSP stapling is on by default for certificates that name a responder",
            "ssl_dhparam" => "no finite-field DHE: ECDHE (and X25519MLKEM768) only",
            "ssl_ecdh_curve" => "key exchange groups X25519MLKEM768, X25519, P-256, P-384",
            "ssl_buffer_size" | "ssl_early_data" => "rampart's TLS defaults (no 0-RTT)",
            "http2" | "http3" | "quic" => "HTTPS offers HTTP/2 by ALPN",
            "server_tokens" => "rampart's Server header carries no version",
            "access_log" | "error_log" | "log_format" | "log_not_found" | "log_subrequest" => {
                "`[logging]`: JSON access and audit logs"
            }
            "sendfile" | "tcp_nopush" | "tcp_nodelay" | "keepalive_timeout" | "keepalive_requests"
            | "worker_connections" | "worker_processes" | "worker_rlimit_nofile" | "accept_mutex"
            | "multi_accept" | "use" | "user" | "pid" | "reset_timedout_connection"
            | "server_names_hash_bucket_size" | "server_names_hash_max_size"
            | "types_hash_max_size" | "types_hash_bucket_size" | "variables_hash_max_size"
            | "open_file_cache" | "open_file_cache_valid" | "open_file_cache_min_uses"
            | "open_file_cache_errors" | "aio" | "directio" | "output_buffers"
            | "client_header_buffer_size" | "large_client_header_buffers" | "lingering_close"
            | "client_header_timeout" | "client_body_timeout" | "send_timeout" => {
                "rampart tunes its own sockets, buffers, timeouts and workers (`[server]` limits)"
            }
            "types" | "default_type" | "charset" | "charset_types" | "source_charset" => {
                "rampart's own media type table (UTF-8 for text)"
            }
            "etag" => "static files carry an ETag and Last-Modified",
            "absolute_redirect" | "port_in_redirect" | "server_name_in_redirect" => {
                "rampart's redirects keep the request's host"
            }
            "fastcgi_pass" | "uwsgi_pass" | "scgi_pass" | "grpc_pass" | "memcached_pass" => {
                self.skip(s, "rampart proxies HTTP only: put the application behind an HTTP server (gunicorn, uvicorn, php-fpm behind a small HTTP server or FrankenPHP)");
                return true;
            }
            n if n.starts_with("fastcgi_") || n.starts_with("uwsgi_") || n.starts_with("scgi_") => {
                self.skip(s, "a setting of a protocol rampart does not speak (FastCGI, uwsgi, SCGI)");
                return true;
            }
            n if n.starts_with("proxy_cache") || n == "proxy_ignore_headers" || n == "proxy_no_cache" => {
                self.skip(s, "rampart keeps no response cache: the application's Cache-Control reaches the client");
                return true;
            }
            // `error_page N = @name` hands over to a named location: the location decides.
            "error_page" if words.iter().rev().nth(1).is_some_and(|w| w == "=") => return false,
            "error_page" => {
                self.skip(s, "custom error pages: rampart answers errors itself (JSON for APIs, a short page for browsers)");
                return true;
            }
            "break" => "ends nginx's rewrite processing: rampart has no rewrites",
            "proxy_pass_header" => {
                self.skip(s, "the upstream's Server and Date headers: rampart sends its own");
                return true;
            }
            "rewrite" => {
                self.skip(s, "rewrites: use `strip_prefix` or a redirect route");
                return true;
            }
            "set" => {
                self.skip(s, "variables: rampart's config has no variables");
                return true;
            }
            "if" => {
                self.skip(s, "conditions (`if`): write one route per case");
                return true;
            }
            "auth_basic" | "auth_basic_user_file" | "auth_request" => {
                self.skip(s, "HTTP basic auth and auth subrequests: use `auth = [\"jwt\"]` or `[\"api_key\"]`");
                return true;
            }
            "mirror" | "sub_filter" | "sub_filter_once" | "sub_filter_types" | "ssi" => {
                self.skip(s, "response rewriting and mirroring are not what rampart does");
                return true;
            }
            _ => return false,
        };
        self.builtin(s, note);
        true
    }

    /// `add_header` on the server (`route` = None) or a location.
    fn header(&mut self, s: &Seen<'_>, route: Option<&mut Draft>) {
        let a_w = s.words();
        let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
        let (Some(name), Some(value)) = (a.first(), a.get(1)) else {
            self.skip(s, "add_header needs a name and a value");
            return;
        };
        if self.variables(s) {
            return;
        }
        if value.is_empty() {
            self.builtin(s, "an empty add_header sends nothing");
            return;
        }
        if !a.contains(&"always") {
            self.differs(
                s,
                "sent on every status (nginx without `always` sends it on 2xx and 3xx only)",
            );
        }
        let lower = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let key = match lower.as_str() {
            "strict-transport-security" => "hsts",
            "x-frame-options" => "frame_options",
            "x-content-type-options" => "content_type_options",
            "referrer-policy" => "referrer_policy",
            "permissions-policy" => "permissions_policy",
            "content-security-policy" => "csp",
            "cross-origin-opener-policy" => "coop",
            "cross-origin-resource-policy" => "corp",
            "cross-origin-embedder-policy" => "coep",
            "x-xss-protection" => {
                self.builtin(
                    s,
                    "not sent: browsers removed the XSS filter; the CSP replaces it",
                );
                return;
            }
            _ => "",
        };
        let line = match key {
            "" => None,
            "hsts" if value.contains("preload") => Some(format!(
                "hsts = {}\nhsts_preload = true",
                q(value
                    .replace("; preload", "")
                    .replace(";preload", "")
                    .trim())
            )),
            k => Some(format!("{k} = {}", q(&value))),
        };
        let Some(r) = route else {
            let Some(line) = line else {
                self.set_headers.push((name.to_string(), value));
                return;
            };
            match self.headers.iter().position(|(hk, _, _)| hk == key) {
                Some(i) if self.headers[i].2 == line => {
                    self.builtin(s, "repeated in another server block");
                }
                Some(i) => {
                    self.skip(
                        s,
                        "another server block sets a different value: the later one is kept",
                    );
                    self.headers[i] = (key.to_owned(), s.at(), line);
                }
                None => self.headers.push((key.to_owned(), s.at(), line)),
            }
            return;
        };
        match line {
            Some(line) => {
                // A header set twice in one location: the later line is kept.
                for l in line.lines() {
                    let k = l.split(" = ").next().unwrap_or_default();
                    r.headers.retain(|h| h.split(" = ").next() != Some(k));
                    r.headers.push(l.to_owned());
                }
            }
            None if lower == "cache-control" => r.cache_control = Some(value),
            None => r.set.push((name.to_string(), value)),
        }
    }

    fn upstream(&mut self, s: &Seen<'_>) {
        let Some(name) = s.words().first().cloned() else {
            self.skip(s, "an upstream without a name");
            return;
        };
        if self.upstream_names.contains(&name) {
            self.skip(
                s,
                "an upstream of this name is already defined: the first is kept",
            );
            return;
        }
        let mut servers = Vec::new();
        let mut extra = Vec::new();
        for d in s.d.block.iter().flat_map(|b| b.directives()) {
            let c = Seen { d, file: s.file };
            match d.name.as_str() {
                "server" => {
                    let a_w = c.words();
                    let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
                    let Some(addr) = a.first() else { continue };
                    if addr.starts_with("unix:") {
                        self.skip(&c, "unix sockets: rampart connects over TCP; run the application on 127.0.0.1:PORT and put that address in place of the placeholder 127.0.0.1:8000");
                        if !servers.contains(&q("127.0.0.1:8000")) {
                            servers.push(q("127.0.0.1:8000"));
                        }
                    } else if addr.contains(':') {
                        servers.push(q(addr));
                    } else {
                        servers.push(q(&format!("{addr}:80")));
                    }
                    for p in &a[1..] {
                        if let Some(v) = p.strip_prefix("max_fails=") {
                            match v.parse::<u32>() {
                                Ok(n) => extra.push(format!("max_fails = {n}")),
                                Err(_) => self.skip(&c, "max_fails that is not a number"),
                            }
                        } else if let Some(v) = p.strip_prefix("fail_timeout=") {
                            match time(v) {
                                Some(t) if seconds(&t) > 0 => {
                                    extra.push(format!("fail_timeout = {}", q(&t)))
                                }
                                _ => self.differs(&c, "fail_timeout=0: rampart still takes a failing server out for its default `fail_timeout` (10s), and back in after"),
                            }
                        } else if *p == "backup" {
                            self.skip(&c, "backup servers: rampart balances over every server; put the spare in its own pool and switch with the admin API");
                        } else if p.starts_with("weight=") {
                            self.builtin(&c, "weights are set at run time (admin API `weight`)");
                        } else if *p == "resolve" {
                            self.builtin(&c, "names are resolved on every new upstream connection");
                        } else if *p == "down" {
                            self.skip(
                                &c,
                                "a server marked down: drain it with the admin API instead",
                            );
                        }
                    }
                }
                "least_conn" => extra.push("balance = \"least_conn\"".into()),
                "keepalive" | "keepalive_timeout" | "keepalive_requests" | "zone" => {
                    self.builtin(
                        &c,
                        "upstream keep-alive pooling and shared state are built in (`max_idle`, `idle_timeout`)",
                    );
                }
                _ => self.skip(&c, "not translated in an upstream block"),
            }
        }
        if servers.is_empty() {
            self.skip(s, "an upstream without servers");
            return;
        }
        extra.sort();
        extra.dedup();
        let mut t = format!(
            "# {}\n[upstreams.{}]\nservers = [{}]\n",
            s.at(),
            table_key(&name),
            servers.join(", ")
        );
        for e in extra {
            t.push_str(&e);
            t.push('\n');
        }
        self.upstreams.push(t);
        self.upstream_names.push(name);
    }

    fn zone(&mut self, s: &Seen<'_>) {
        let a_w = s.words();
        let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
        let key = a.first().copied().unwrap_or_default();
        let zone = a
            .iter()
            .find_map(|x| x.strip_prefix("zone="))
            .and_then(|z| z.split(':').next());
        let rate = a.iter().find_map(|x| x.strip_prefix("rate="));
        let (Some(zone), Some(rate)) = (zone, rate) else {
            self.skip(s, "limit_req_zone without zone= and rate=");
            return;
        };
        if !matches!(key, "$binary_remote_addr" | "$remote_addr") {
            self.skip(s, "only zones keyed by the client address translate (rampart keys: ip, user, api_key, header:NAME)");
            return;
        }
        let r = rate.replace("r/s", "/s").replace("r/m", "/m");
        self.zones.insert(zone.to_owned(), (r, s.at()));
    }

    /// The pool a `proxy_pass` URL names (an upstream, or a new pool for an address).
    fn pool(&mut self, c: &Seen<'_>, path: &str, kind: &Kind) -> Option<String> {
        let words = c.words();
        let url = words.first()?;
        if self.variables(c) {
            return None;
        }
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let Some(rest) = rest else {
            self.skip(c, "only http:// and https:// upstreams");
            return None;
        };
        let (authority, uri) = rest.split_once('/').map_or((rest, ""), |(a, u)| (a, u));
        if url.starts_with("https://") {
            self.skip(
                c,
                "TLS to the upstream is not supported yet (issue 26); proxied over plain HTTP",
            );
        } else if !uri.is_empty()
            && (format!("/{uri}") != path || !matches!(kind, Kind::Prefix | Kind::Priority))
        {
            self.skip(c, "proxy_pass with a URI replaces the matched part of the path: use strip_prefix or change the upstream's paths");
        } else if !uri.is_empty() {
            self.builtin(
                c,
                "the same URI as the location: the path is forwarded as is",
            );
        }
        if authority.starts_with("unix:") {
            self.skip(c, "unix sockets: rampart connects over TCP");
            return None;
        }
        if self.upstream_names.iter().any(|n| n == authority) {
            return Some(authority.to_owned());
        }
        let addr = if authority.contains(':') {
            authority.to_owned()
        } else if url.starts_with("https://") {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        };
        let head = format!("servers = [{}]\n", q(&addr));
        if let Some(i) = self
            .upstreams
            .iter()
            .position(|u| u.ends_with(&head) && u.contains("[upstreams.backend"))
        {
            return Some(self.upstream_names[i].clone());
        }
        self.anon += 1;
        let name = format!("backend{}", self.anon);
        self.upstreams
            .push(format!("# {}\n[upstreams.{name}]\n{head}", c.at()));
        self.upstream_names.push(name.clone());
        Some(name)
    }

    /// One directive of a location into the draft. `named` holds the server's named
    /// locations, merged where the location hands over to one.
    #[allow(clippy::too_many_lines)]
    fn location_directive(
        &mut self,
        c: &Seen<'_>,
        path: &str,
        kind: &Kind,
        r: &mut Draft,
        named: &HashMap<String, Items>,
    ) {
        if self.common(c) {
            return;
        }
        let ca_w = c.words();
        let ca: Vec<&str> = ca_w.iter().map(String::as_str).collect();
        match c.d.name.as_str() {
            "proxy_set_header" => {
                if self.variables(c) {
                } else if ca.first().is_some_and(|n| rampart_sets(n)) {
                    self.skip(c, "a framing or forwarding header rampart sets itself");
                } else if let [name, value] = ca.as_slice() {
                    r.request_headers.push(((*name).to_owned(), (*value).to_owned()));
                } else if let [name] = ca.as_slice() {
                    r.request_headers.push(((*name).to_owned(), String::new()));
                } else {
                    self.skip(c, "proxy_set_header needs a name and a value");
                }
            }
            "proxy_pass" => {
                if let Some(pool) = self.pool(c, path, kind) {
                    r.action = Some(format!("upstream = {}", q(&pool)));
                }
            }
            "root" => {
                if !self.variables(c) {
                    r.root = ca.first().map(|x| x.to_string());
                }
            }
            "alias" => {
                if matches!(kind, Kind::Regex(_)) {
                    self.skip(c, "alias in a regex location (it substitutes captures)");
                } else if !self.variables(c) {
                    r.alias = ca.first().map(|x| x.trim_end_matches('/').to_string());
                }
            }
            "index" => match ca.first() {
                Some(i) if i.ends_with(".html") || i.ends_with(".htm") => {
                    if *i == "index.html" {
                        self.builtin(c, "index.html is the default index");
                    } else {
                        r.index = Some(i.to_string());
                    }
                }
                _ => self.skip(c, "an index that is not HTML: rampart serves files, it runs no scripts"),
            },
            "try_files" => {
                let last = ca.last().copied().unwrap_or_default();
                if let Some(name) = last.strip_prefix('@') {
                    if ca.first() == Some(&"$uri") {
                        self.differs(c, "the named location answers every request of this route: files under the root are not looked up first (add a static route for the asset prefix)");
                    }
                    self.merge(c, name, path, kind, r, named);
                } else if last.ends_with(".html") && !last.contains('$') {
                    r.spa = true;
                    self.differs(c, "the page answers navigations only (Accept: text/html); a missing asset or API path is a 404, where nginx sends the page to everything");
                } else if last == "=404" {
                    self.builtin(c, "a missing file is a 404");
                } else {
                    self.skip(c, "try_files other than `… /index.html`, `… =404` or `… @name`");
                }
            }
            "return" => match ca.as_slice() {
                [code, url] if matches!(*code, "301" | "302" | "303" | "307" | "308") => {
                    let keep = url.ends_with("$request_uri");
                    let target = url.strip_suffix("$request_uri").unwrap_or(url);
                    let https_self = ["https://$host", "https://$server_name", "https://$http_host"]
                        .contains(&target);
                    if https_self {
                        r.action = Some("https-redirect".into());
                        self.builtin(c, "with [tls], the plain listener redirects every request to HTTPS");
                    } else if target.contains('$') {
                        self.skip(c, "a redirect built from variables other than $request_uri; write the URL");
                    } else {
                        r.action = Some(format!(
                            "redirect = {}\nredirect_status = {code}{}",
                            q(target),
                            if keep { "\nredirect_keep_path = true" } else { "" }
                        ));
                    }
                }
                [code, rest @ ..] if code.parse::<u16>().is_ok() => {
                    let status: u16 = code.parse().unwrap_or(200);
                    if let Some((_, name)) = r.error_named.iter().find(|(n, _)| *n == status) {
                        let name = name.clone();
                        self.builtin(c, "answered by the named location its error_page names");
                        self.merge(c, &name, path, kind, r, named);
                    } else if status == 444 {
                        self.skip(c, "444 (close without answering) on one location: `misdirected = \"close\"` does it for unknown hosts only");
                    } else if rest.iter().any(|b| b.contains('$')) {
                        self.skip(c, "a body built from variables");
                    } else if !(200..=599).contains(&status) {
                        self.skip(c, "a status rampart cannot send");
                    } else {
                        let body = rest.first().map(|b| b.to_string()).unwrap_or_default();
                        r.action = Some(format!(
                            "respond = {{ status = {code}, body = {} }}",
                            q(&body)
                        ));
                    }
                }
                _ => self.skip(c, "return without a status"),
            },
            "error_page" => {
                // `error_page 418 = @name;` + `return 418;`: GitLab's idiom to reuse a
                // named location. Other error pages are not translated.
                match ca.as_slice() {
                    [codes @ .., "=", target] if target.starts_with('@') => {
                        for code in codes {
                            if let Ok(n) = code.parse::<u16>() {
                                r.error_named.push((n, target[1..].to_owned()));
                            }
                        }
                        self.builtin(c, "names the location that answers the `return` below");
                    }
                    _ => self.skip(c, "custom error pages: rampart answers errors itself (JSON for APIs, a short page for browsers)"),
                }
            }
            "internal" => {
                r.internal = true;
                self.builtin(c, "an internal location: clients get 404");
            }
            "allow" => {
                if let Some(x) = ca.first() {
                    if *x != "all" {
                        r.allow.push(q(&cidr(x)));
                    } else {
                        self.builtin(c, "allowed to all, as by default");
                    }
                }
            }
            "deny" => {
                if ca.first() == Some(&"all") {
                    r.deny_all = true;
                } else if let Some(x) = ca.first() {
                    r.deny.push(q(&cidr(x)));
                }
            }
            "limit_req" => {
                let zone = ca.iter().find_map(|x| x.strip_prefix("zone="));
                match zone {
                    Some(z) if self.zones.contains_key(z) => {
                        let burst = ca
                            .iter()
                            .find_map(|x| x.strip_prefix("burst="))
                            .unwrap_or("0");
                        if burst.parse::<u32>().is_err() {
                            self.skip(c, "a burst that is not a number");
                            return;
                        }
                        let nodelay = ca.contains(&"nodelay");
                        let name = table_key(&format!(
                            "{z}_b{burst}{}",
                            if nodelay { "" } else { "_delay" }
                        ));
                        if !self
                            .limits
                            .iter()
                            .any(|l| l.contains(&format!("[limits.{name}]")))
                        {
                            let (rate, at) = self.zones[z].clone();
                            self.limits.push(format!(
                                "# {at}, used at {}\n[limits.{name}]\nrate = {}\nburst = {burst}\nkey = \"ip\"{}\n",
                                c.at(),
                                q(&rate),
                                if nodelay { "" } else { "\nnodelay = false" }
                            ));
                        }
                        r.limits.push(q(name.trim_matches('"')));
                    }
                    _ => self.skip(c, "limit_req of a zone that did not translate"),
                }
            }
            "client_max_body_size" => match ca.first().and_then(|s| size(s)) {
                Some(b) if b == "0" => self.skip(c, "0 (no limit): rampart always limits bodies; set `body_limit` to the largest upload you accept"),
                Some(b) => r.body = Some(b),
                None => self.skip(c, "a size rampart cannot read"),
            },
            "add_header" => {
                r.own_headers = true;
                self.header(c, Some(r));
            }
            "proxy_hide_header" => match ca.first() {
                Some(h) if !h.contains('$') => r.remove.push(h.to_string()),
                _ => self.skip(c, "proxy_hide_header without a header name"),
            },
            "proxy_read_timeout" | "proxy_connect_timeout" => match ca.first().and_then(|t| time(t)) {
                Some(t) => {
                    let key = if c.d.name == "proxy_read_timeout" {
                        "response_timeout"
                    } else {
                        "connect_timeout"
                    };
                    r.timeouts.retain(|(k, _, _)| *k != key);
                    r.timeouts.push((key, t, c.at()));
                }
                None => self.skip(c, "a timeout rampart cannot read"),
            },
            "limit_conn" => self.skip(
                c,
                "rampart limits request rates per key, not concurrent connections per key (server.max_connections is global)",
            ),
            "expires" => match ca.first().copied() {
                Some("off") => self.builtin(c, "no Cache-Control added, as by default"),
                Some("max") => r.expires = Some(10 * 365 * 86_400),
                Some(t) => match time(t) {
                    Some(t) => r.expires = Some(seconds(&t)),
                    None => self.skip(c, "expires other than a time, `max` or `off`"),
                },
                None => self.skip(c, "expires without a time"),
            },
            "location" => {}
            _ => self.skip(c, "not translated in a location"),
        }
    }

    /// Hands a location over to the named location `name` (`try_files … @name`, or the
    /// `error_page N = @name; return N;` idiom): its directives apply here.
    fn merge(
        &mut self,
        c: &Seen<'_>,
        name: &str,
        path: &str,
        kind: &Kind,
        r: &mut Draft,
        named: &HashMap<String, Items>,
    ) {
        if r.merged.iter().any(|m| m == name) {
            return;
        }
        let Some(items) = named.get(name) else {
            self.skip(c, &format!("no location @{name} in this server"));
            return;
        };
        r.merged.push(name.to_owned());
        for (d, file) in items {
            let s = Seen { d, file };
            self.location_directive(&s, path, kind, r, named);
        }
    }

    /// A `location` block (and the ones nested in it) into routes.
    #[allow(clippy::too_many_lines)]
    fn location(&mut self, s: &Seen<'_>, scope: &Scope, named: &HashMap<String, Items>) {
        let a_w = s.words();
        let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
        let (modifier, path) = match a.as_slice() {
            [p] => ("", *p),
            [m, p] => (*m, *p),
            _ => {
                self.skip(s, "a location without a path");
                return;
            }
        };
        if path.starts_with('@') {
            // Named: merged where used (the server looks for unused ones).
            return;
        }
        let kind = match modifier {
            "" => Kind::Prefix,
            "^~" => Kind::Priority,
            "=" => Kind::Exact,
            "~" | "~*" => {
                let ci = if modifier == "~*" { "(?i)" } else { "" };
                let re = match &scope.parent {
                    Some((Kind::Regex(_), _)) => {
                        self.skip(s, "a regex location inside a regex location: both must match, which one regex cannot say here");
                        return;
                    }
                    Some((_, p)) if p != "/" && !path.starts_with('^') => {
                        format!("{ci}^{}.*(?:{path})", regex_lite::escape(p))
                    }
                    _ => format!("{ci}{path}"),
                };
                if let Err(e) = regex_lite::Regex::new(&re) {
                    self.skip(s, &format!("a regex rampart's linear-time matcher cannot run (look-around or back-references): {e}"));
                    return;
                }
                Kind::Regex(re)
            }
            _ => {
                self.skip(s, "an unknown location modifier");
                return;
            }
        };
        if !path.starts_with('/') && matches!(kind, Kind::Prefix | Kind::Priority | Kind::Exact) {
            self.skip(s, "a location path not starting with /");
            return;
        }
        let expanded = self.expand(s.d, s.file, 0);
        let mut r = Draft {
            body: scope.body.clone(),
            timeouts: scope.timeouts.clone(),
            ..Draft::default()
        };
        for (d, file) in &expanded {
            let c = Seen { d, file };
            self.location_directive(&c, path, &kind, &mut r, named);
        }
        // nginx: a level with its own proxy_set_header inherits none.
        if r.request_headers.is_empty() {
            r.request_headers.clone_from(&scope.request_headers);
        }
        // nginx: a level with its own add_header inherits none.
        if !r.own_headers {
            for (d, file) in &scope.loc_headers {
                let c = Seen { d, file };
                self.header(&c, Some(&mut r));
            }
        } else if scope.server_headers || !scope.loc_headers.is_empty() {
            self.differs(s, "nginx sends only this location's add_header lines here; rampart also sends the server's security headers (this location's win where both set one)");
        }
        let own_root = r
            .root
            .clone()
            .or_else(|| r.alias.clone().map(|a| format!("alias:{a}")));
        let inherited = own_root.clone().or_else(|| scope.root.clone());
        self.emit(s, &kind, path, &mut r, inherited.as_deref());
        // Nested locations: flattened, inheriting this one's settings.
        let mut inner = scope.clone();
        inner.body = r.body.clone();
        inner.timeouts = r.timeouts.clone();
        if let Some(root) = &r.root {
            inner.root = Some(root.clone());
        }
        if r.own_headers {
            inner.loc_headers = expanded
                .iter()
                .filter(|(d, _)| d.name == "add_header")
                .cloned()
                .collect();
        }
        inner.parent = Some((kind.clone(), path.to_owned()));
        inner.request_headers.clone_from(&r.request_headers);
        for (d, file) in &expanded {
            if d.name == "location" {
                self.location(&Seen { d, file }, &inner, named);
            }
        }
    }

    /// Writes one route from a draft.
    fn emit(&mut self, s: &Seen<'_>, kind: &Kind, path: &str, r: &mut Draft, root: Option<&str>) {
        if r.action.as_deref() == Some("https-redirect") {
            // The plain listener's redirect: not a route (the TLS server's routes serve).
            return;
        }
        let mut action = r.action.take();
        if action.is_none() && path.contains("/.well-known/acme-challenge") {
            self.builtin(
                s,
                "rampart answers ACME HTTP-01 challenges itself ([tls.acme]): no webroot needed",
            );
            return;
        }
        if r.internal {
            action = Some("respond = { status = 404, body = \"\" }".into());
        }
        let mut kind = kind.clone();
        let mut static_dir = None;
        if action.is_none() {
            match root {
                Some(root) => {
                    let (dir, alias) = match root.strip_prefix("alias:") {
                        Some(a) => (a.to_owned(), true),
                        None => (root.to_owned(), false),
                    };
                    let dir = match &kind {
                        Kind::Prefix | Kind::Priority if !alias => under(&dir, path),
                        // rampart's static route strips the route's prefix; an exact
                        // location's file is root + path: a regex route serves that.
                        Kind::Exact => {
                            kind = Kind::Regex(format!("^{}$", regex_lite::escape(path)));
                            dir
                        }
                        _ => dir,
                    };
                    static_dir = Some(dir);
                }
                None => {
                    self.skip(
                        s,
                        "a location with neither proxy_pass, root nor return: nothing to serve",
                    );
                    return;
                }
            }
        }
        let mut lines = vec![format!("# {}", s.at()), "[[routes]]".to_owned()];
        let key = match &kind {
            Kind::Prefix => format!("path = {}", q(path)),
            Kind::Priority => format!("path = {}\nprefix_priority = true", q(path)),
            Kind::Exact => format!("path = {}\nexact = true", q(path)),
            Kind::Regex(re) => format!("path_regex = {}", q(re)),
        };
        let dedup = key.lines().next().unwrap_or_default().to_owned();
        if self.route_keys.contains(&dedup) {
            self.builtin(s, "the same location in another server block: one route serves both listeners (the plain one redirects)");
            return;
        }
        self.route_keys.push(dedup);
        lines.extend(key.lines().map(str::to_owned));
        let is_static = static_dir.is_some();
        match (action, static_dir) {
            (Some(a), _) => lines.extend(a.lines().map(str::to_owned)),
            (None, Some(dir)) => {
                lines.push(format!("static = {}", q(&dir)));
                if r.spa {
                    lines.push("spa_fallback = \"index.html\"".into());
                }
                if let Some(i) = &r.index {
                    lines.push(format!("index = {}", q(i)));
                }
            }
            (None, None) => return,
        }
        // Cache-Control: one rule for a static route (nginx sends `expires` and an added
        // Cache-Control as two headers; rampart as one).
        let control = match (r.cache_control.take(), r.expires) {
            (Some(c), Some(e)) => Some(format!("{c}, max-age={e}")),
            (Some(c), None) => Some(c),
            (None, Some(e)) => Some(format!("public, max-age={e}")),
            (None, None) => None,
        };
        if let Some(control) = control {
            if is_static {
                lines.push(format!(
                    "cache = [{{ glob = \"**\", control = {} }}]",
                    q(&control)
                ));
            } else {
                r.set.push(("Cache-Control".into(), control));
            }
        }
        let mut h = r.headers.clone();
        if !r.set.is_empty() {
            let mut set: Vec<String> = Vec::new();
            for (k, v) in &r.set {
                let pair = format!("{} = {}", q(k), q(v));
                if !set.iter().any(|p| p.starts_with(&format!("{} =", q(k)))) {
                    set.push(pair);
                }
            }
            h.push(format!("set = {{ {} }}", set.join(", ")));
        }
        if !r.remove.is_empty() {
            let rm: Vec<String> = r.remove.iter().map(|x| q(x)).collect();
            h.push(format!("remove = [{}]", rm.join(", ")));
        }
        if !h.is_empty() {
            lines.push(format!("headers = {{ {} }}", h.join(", ")));
        }
        let proxied = lines.iter().any(|l| l.starts_with("upstream = "));
        if !r.request_headers.is_empty() && proxied {
            let mut by_name: Vec<(String, String)> = Vec::new();
            for (k, v) in &r.request_headers {
                by_name.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
                by_name.push((k.clone(), v.clone()));
            }
            let set: Vec<String> = by_name
                .iter()
                .map(|(k, v)| format!("{} = {}", q(k), q(v)))
                .collect();
            lines.push(format!("request_headers = {{ {} }}", set.join(", ")));
        }
        if !r.limits.is_empty() {
            r.limits.dedup();
            lines.push(if r.limits.len() == 1 {
                format!("limit = {}", r.limits[0])
            } else {
                format!("limit = [{}]", r.limits.join(", "))
            });
        }
        if !r.allow.is_empty() {
            lines.push(format!("allow = [{}]", r.allow.join(", ")));
        } else if r.deny_all {
            r.deny = vec![q("0.0.0.0/0"), q("::/0")];
        }
        if !r.deny.is_empty() {
            lines.push(format!("deny = [{}]", r.deny.join(", ")));
        }
        if let Some(b) = &r.body {
            lines.push(format!("body_limit = {}", q(b)));
        }
        // A location's proxy timeouts are its pool's (rampart sets them per pool).
        let pool = lines
            .iter()
            .find_map(|l| l.strip_prefix("upstream = "))
            .map(|p| p.trim_matches('"').to_owned());
        for (key, t, at) in r.timeouts.drain(..) {
            let Some(pool) = &pool else { continue };
            let head = format!("[upstreams.{}]\n", table_key(pool));
            let Some(u) = self.upstreams.iter_mut().find(|u| u.contains(&head)) else {
                continue;
            };
            let line = format!("\n{key} = {}\n", q(&t));
            if u.contains(&line) {
                continue;
            }
            if u.contains(&format!("\n{key} = ")) {
                self.untranslated.push((
                    at,
                    format!("{key} {t}"),
                    format!("pool {pool} already has another {key} from another location: the first is kept"),
                ));
                continue;
            }
            let _ = writeln!(u, "# {at}\n{key} = {}", q(&t));
        }
        self.routes.push(lines.join("\n") + "\n");
    }

    /// A block's directives with its `include`s replaced by the included files'
    /// directives (each with its own file name); an include that matches nothing is
    /// listed.
    fn expand(&mut self, block: &Directive, file: &str, depth: usize) -> Items {
        let mut out = Vec::new();
        for d in block.block.iter().flat_map(|b| b.directives()) {
            if d.name != "include" {
                out.push((d.clone(), file.to_owned()));
                continue;
            }
            let s = Seen { d, file };
            let pattern = d.first_arg().unwrap_or_default();
            if self.known_include(&s, pattern) {
                continue;
            }
            let found = include_paths(&self.base, pattern);
            if found.is_empty() {
                self.skip(&s, "no file matches");
            }
            for p in found {
                if depth > 16 {
                    self.skip(&s, "includes nest deeper than 16");
                    break;
                }
                match nginx_lint_parser::parse_config(&p) {
                    Ok(cfg) => {
                        // The included file's top level, as a block of its own.
                        let name = p.display().to_string();
                        let wrapper = Directive {
                            block: Some(nginx_lint_parser::ast::Block {
                                items: cfg.items.clone(),
                                span: d.span,
                                raw_content: None,
                                closing_brace_leading_whitespace: String::new(),
                                trailing_whitespace: String::new(),
                            }),
                            ..d.clone()
                        };
                        out.extend(self.expand(&wrapper, &name, depth + 1));
                    }
                    Err(e) => self.skip(&s, &format!("cannot parse {}: {e}", p.display())),
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    fn server(&mut self, s: &Seen<'_>) {
        let expanded = self.expand(s.d, s.file, 0);
        let has = |name: &str| expanded.iter().any(|(d, _)| d.name == name);
        let tls = has("ssl_certificate")
            || expanded
                .iter()
                .any(|(d, _)| d.name == "listen" && d.args.iter().any(|a| a.as_str() == "ssl"));
        let first = |name: &str| {
            expanded
                .iter()
                .find(|(d, _)| d.name == name)
                .and_then(|(d, _)| d.first_arg())
                .map(str::to_owned)
        };
        let mut scope = self.http_scope.clone();
        if let Some(b) = first("client_max_body_size").and_then(|b| size(&b)) {
            if b != "0" {
                scope.body = Some(b);
            }
        }
        if let Some(r) = first("root").filter(|r| !r.contains('$')) {
            scope.root = Some(r);
        }
        scope.server_headers =
            !self.headers.is_empty() || !self.set_headers.is_empty() || has("add_header");
        let names: Vec<String> = expanded
            .iter()
            .filter(|(d, _)| d.name == "server_name")
            .flat_map(|(d, _)| d.args.iter().map(|a| a.as_str().to_ascii_lowercase()))
            .filter(|h| host_ok(h))
            .collect();
        let mut named: HashMap<String, Items> = HashMap::new();
        for (d, file) in &expanded {
            if d.name == "location" {
                if let Some(n) = d.args.last().and_then(|a| a.as_str().strip_prefix('@')) {
                    let items = self.expand(d, file, 0);
                    named.insert(n.to_owned(), items);
                }
            }
        }
        let catch_all = expanded.iter().any(|(d, _)| {
            d.name == "listen" && d.args.iter().any(|a| a.as_str() == "default_server")
        }) && !expanded.iter().any(|(d, _)| {
            d.name == "server_name"
                && d.args
                    .iter()
                    .any(|a| !matches!(a.as_str(), "_" | "\"\"" | ""))
        });
        let mut own_set_headers = false;
        for (d, file) in &expanded {
            let c = Seen { d, file };
            if d.name == "location" {
                continue;
            }
            if self.common(&c) {
                continue;
            }
            let a_w = c.words();
            let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
            match d.name.as_str() {
                "listen" => {
                    let addr = a.first().copied().unwrap_or("80");
                    let addr = if addr.chars().all(|ch| ch.is_ascii_digit()) {
                        format!("0.0.0.0:{addr}")
                    } else if addr.starts_with('[') || addr.contains(':') {
                        addr.to_owned()
                    } else if addr.contains('.') || addr == "localhost" {
                        format!("{addr}:80")
                    } else {
                        addr.to_owned()
                    };
                    let key = if a.contains(&"ssl") || tls && !addr.ends_with(":80") {
                        "https"
                    } else {
                        "http"
                    };
                    let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
                    match self.server.get(key) {
                        Some(prev) if port_of(prev) == port => {
                            self.builtin(&c, "one listener per scheme: [::] takes IPv4 too (dual stack), 0.0.0.0 IPv4 only");
                            if addr.starts_with("[::]") {
                                self.server.insert(key, format!("# {}\n{key} = {}", c.at(), q(&addr)));
                            }
                        }
                        Some(_) => self.skip(&c, "another port for the same scheme: rampart listens on one HTTP and one HTTPS address"),
                        None => {
                            self.server
                                .insert(key, format!("# {}\n{key} = {}", c.at(), q(&addr)));
                        }
                    }
                }
                "server_name" => {
                    for h in a.iter().filter(|h| **h != "_" && !h.is_empty()) {
                        let h = h.to_ascii_lowercase();
                        let names: Vec<String> = match h.strip_prefix('.') {
                            Some(base) => vec![base.to_owned(), format!("*.{base}")],
                            None => vec![h.clone()],
                        };
                        if names.iter().all(|n| host_ok(n)) {
                            for n in names {
                                if !self.hosts.contains(&n) {
                                    self.hosts.push(n);
                                }
                            }
                        } else {
                            self.skip(&c, &format!("{h} is not a host name (a regex or a placeholder): put the real name in allowed_hosts"));
                        }
                    }
                }
                "ssl_certificate" | "ssl_certificate_key" if self.variables(&c) => {}
                "ssl_certificate" => self.tls_set(&c, "cert", q(a.first().unwrap_or(&""))),
                "ssl_certificate_key" => self.tls_set(&c, "key", q(a.first().unwrap_or(&""))),
                "ssl_protocols" => {
                    if a.iter().all(|p| *p == "TLSv1.3") {
                        self.tls_set(&c, "min_version", q("1.3"));
                    } else if a
                        .iter()
                        .any(|p| matches!(*p, "TLSv1" | "TLSv1.1" | "SSLv3"))
                    {
                        self.differs(
                            &c,
                            "TLS 1.0 and 1.1 are never offered: TLS 1.2 and 1.3 only",
                        );
                    } else {
                        self.builtin(&c, "TLS 1.2 and 1.3, as rampart's default");
                    }
                }
                "ssl_ciphers" => self.ciphers(&c, a.first().copied().unwrap_or_default()),
                "ssl_prefer_server_ciphers" => {
                    if a.first() == Some(&"on") {
                        self.tls_set(&c, "prefer_server_order", "true".into());
                    } else {
                        self.builtin(&c, "the client's order, as rampart's default");
                    }
                }
                "add_header" => self.header(&c, None),
                "client_max_body_size" => {
                    if a.first() == Some(&"0") {
                        self.skip(&c, "0 (no limit): rampart always limits bodies; set `body_limit` to the largest upload you accept");
                    }
                }
                "proxy_read_timeout" | "proxy_connect_timeout" => {
                    match a.first().and_then(|t| time(t)) {
                        Some(t) => {
                            let key = if d.name == "proxy_read_timeout" {
                                "response_timeout"
                            } else {
                                "connect_timeout"
                            };
                            scope.timeouts.retain(|(k, _, _)| *k != key);
                            scope.timeouts.push((key, t, c.at()));
                        }
                        None => self.skip(&c, "a timeout rampart cannot read"),
                    }
                }
                "return" => {
                    let https_redirect = a
                        .first()
                        .is_some_and(|x| matches!(*x, "301" | "302" | "307" | "308"))
                        && a.get(1).is_some_and(|u| u.starts_with("https://"));
                    if https_redirect {
                        self.builtin(
                            &c,
                            "with [tls], the plain listener redirects every request to HTTPS",
                        );
                    } else if let Some(route) = host_redirect(&a, &names, tls, &c) {
                        self.routes.push(route);
                    } else if a.first() == Some(&"444") && catch_all {
                        self.server.insert(
                            "misdirected",
                            format!("# {}\nmisdirected = \"close\"", c.at()),
                        );
                    } else {
                        self.skip(&c, "a server-wide return other than the HTTPS redirect");
                    }
                }
                "root" if a.first().is_some_and(|r| r.contains('$')) => {
                    self.variables(&c);
                }
                "root" => self.builtin(&c, "the static root of the locations below"),
                "index" => match a.first() {
                    Some(&"index.html") => self.builtin(&c, "index.html is the default index"),
                    _ => self.skip(
                        &c,
                        "an index that is not index.html: rampart serves files, it runs no scripts",
                    ),
                },
                "try_files" => {
                    self.skip(&c, "try_files at server level: write it in a location");
                }
                "proxy_set_header" => {
                    if let Some((n, v)) = self.inherited_header(&c) {
                        // nginx: a level with its own proxy_set_header inherits none.
                        if !own_set_headers {
                            scope.request_headers.clear();
                            own_set_headers = true;
                        }
                        scope.request_headers.push((n, v));
                    }
                }
                _ => self.skip(&c, "not translated in a server block"),
            }
        }
        for (d, file) in &expanded {
            if d.name == "location" {
                self.location(&Seen { d, file }, &scope, &named);
            }
        }
        // nginx serves a server's root for the paths no location matches.
        let has_root_location = expanded
            .iter()
            .any(|(d, _)| d.name == "location" && d.args.len() == 1 && d.args[0].as_str() == "/");
        let returns = expanded.iter().any(|(d, _)| d.name == "return");
        if let (Some(root), false, false) = (&scope.root, has_root_location, returns) {
            let at = expanded
                .iter()
                .find(|(d, _)| d.name == "root")
                .map_or_else(|| s.at(), |(d, f)| Seen { d, file: f }.at());
            if !self.route_keys.iter().any(|k| k == "path = \"/\"") {
                self.route_keys.push("path = \"/\"".into());
                let mut route = format!(
                    "# {at} (the server's root, for paths no location matches)\n[[routes]]\npath = \"/\"\nstatic = {}\n",
                    q(root)
                );
                if let Some(b) = &scope.body {
                    let _ = writeln!(route, "body_limit = {}", q(b));
                }
                self.routes.push(route);
            }
        }
        // Named locations no location hands over to.
        for (d, file) in &expanded {
            if d.name != "location" {
                continue;
            }
            if let Some(n) = d.args.last().and_then(|a| a.as_str().strip_prefix('@')) {
                let used = expanded.iter().any(|(o, _)| uses_named(o, n));
                let c = Seen { d, file };
                if used {
                    self.builtin(
                        &c,
                        "a named location: merged into the routes that hand over to it",
                    );
                } else {
                    self.skip(&c, "a named location nothing hands over to");
                }
            }
        }
    }

    /// `http`-level directives (and the top level): pass 1 reads upstreams, zones and maps
    /// so servers may use them whatever their order; pass 2 the rest.
    fn walk(&mut self, items: &[ConfigItem], file: &str, pass: u8, depth: usize) {
        for item in items {
            let ConfigItem::Directive(d) = item else {
                continue;
            };
            let s = Seen { d, file };
            let name = d.name.as_str();
            let first_pass = matches!(
                name,
                "upstream"
                    | "limit_req_zone"
                    | "map"
                    | "set_real_ip_from"
                    | "real_ip_header"
                    | "real_ip_recursive"
                    | "client_max_body_size"
                    | "proxy_read_timeout"
                    | "proxy_connect_timeout"
                    | "proxy_set_header"
            );
            if name == "http" && d.block.is_some() {
                let items = d
                    .block
                    .as_ref()
                    .map(|b| b.items.clone())
                    .unwrap_or_default();
                self.walk(&items, file, pass, depth);
                continue;
            }
            if name == "include" {
                let pattern = d.first_arg().unwrap_or_default();
                if pass == 1 && is_known_include(pattern) {
                    continue;
                }
                if pass == 2 && self.known_include(&s, pattern) {
                    continue;
                }
                let found = include_paths(&self.base, pattern);
                if found.is_empty() && pass == 2 {
                    self.skip(&s, "no file matches");
                }
                if depth > 16 {
                    if pass == 2 {
                        self.skip(&s, "includes nest deeper than 16");
                    }
                    continue;
                }
                for p in found {
                    match nginx_lint_parser::parse_config(&p) {
                        Ok(cfg) => {
                            let name = p.display().to_string();
                            self.walk(&cfg.items, &name, pass, depth + 1);
                        }
                        Err(e) if pass == 2 => {
                            self.skip(&s, &format!("cannot parse {}: {e}", p.display()));
                        }
                        Err(_) => {}
                    }
                }
                continue;
            }
            if (pass == 1) != first_pass {
                continue;
            }
            let a_w = s.words();
            let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
            match name {
                "events" => {
                    for e in d.block.iter().flat_map(|b| b.directives()) {
                        let c = Seen { d: e, file };
                        if !self.common(&c) {
                            self.skip(&c, "not translated in events");
                        }
                    }
                }
                "stream" => self.skip(&s, "TCP/UDP proxying (stream) is not what rampart does"),
                "upstream" => self.upstream(&s),
                "limit_req_zone" => self.zone(&s),
                "limit_conn_zone" => self.skip(
                    &s,
                    "rampart limits request rates per key, not concurrent connections per key (server.max_connections is global)",
                ),
                "map" => {
                    if a.first() == Some(&"$http_upgrade") {
                        self.builtin(&s, "the WebSocket Connection map: rampart tunnels upgrades by itself");
                    } else {
                        self.skip(&s, "variables (`map`): rampart's config has no variables");
                    }
                }
                "set_real_ip_from" => match a.first() {
                    Some(x) if *x != "unix:" => self.trusted.push(format!("# {}\n{}", s.at(), q(&cidr(x)))),
                    _ => self.skip(&s, "unix: peers are not how rampart is reached"),
                },
                "real_ip_header" => match a.first() {
                    Some(h) if h.eq_ignore_ascii_case("x-forwarded-for") => {
                        self.builtin(&s, "X-Forwarded-For from `trusted_proxies` gives the client address")
                    }
                    _ => self.skip(&s, "only X-Forwarded-For names the client (PROXY protocol and X-Real-IP are not read)"),
                },
                "real_ip_recursive" => self.builtin(
                    &s,
                    "the client is the right-most address not in `trusted_proxies`",
                ),
                "client_max_body_size" => match a.first().and_then(|b| size(b)) {
                    Some(b) if b != "0" => self.http_scope.body = Some(b),
                    _ => self.skip(&s, "0 (no limit) or unreadable: rampart always limits bodies"),
                },
                "proxy_read_timeout" | "proxy_connect_timeout" => match a.first().and_then(|t| time(t)) {
                    Some(t) => {
                        let key = if name == "proxy_read_timeout" {
                            "response_timeout"
                        } else {
                            "connect_timeout"
                        };
                        self.http_scope.timeouts.push((key, t, s.at()));
                    }
                    None => self.skip(&s, "a timeout rampart cannot read"),
                },
                "server" => self.server(&s),
                "add_header" => self.header(&s, None),
                "proxy_set_header" => {
                    if !self.common(&s) {
                        if let Some(h) = self.inherited_header(&s) {
                            self.http_scope.request_headers.push(h);
                        }
                    }
                }
                _ => {
                    if !self.common(&s) && !self.variables(&s) {
                        self.skip(&s, "not translated at this level");
                    }
                }
            }
        }
    }
}

/// Request headers rampart sets (framing, hop-by-hop, forwarding): a config cannot name them.
fn rampart_sets(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "proxy-connection"
            | "proxy"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "x-real-ip"
            | "x-request-id"
            | "traceparent"
    )
}

/// An include [`Out::known_include`] accounts for by name.
fn is_known_include(pattern: &str) -> bool {
    Path::new(pattern).file_name().is_some_and(|f| {
        matches!(
            f.to_str(),
            Some("mime.types" | "fastcgi_params" | "fastcgi.conf" | "uwsgi_params" | "scgi_params")
        )
    })
}

/// A server block that only redirects to another host (`return 301
/// $scheme://example.com$request_uri` in the `www` server): a redirect route for its names.
fn host_redirect(a: &[&str], names: &[String], tls: bool, c: &Seen<'_>) -> Option<String> {
    let [code, url] = a else { return None };
    if !matches!(*code, "301" | "302" | "303" | "307" | "308") || names.is_empty() {
        return None;
    }
    let keep = url.ends_with("$request_uri");
    let target = url.strip_suffix("$request_uri").unwrap_or(url);
    let target = match target.strip_prefix("$scheme://") {
        Some(rest) => format!("{}://{rest}", if tls { "https" } else { "http" }),
        None => target.to_owned(),
    };
    if target.contains('$') || !(target.starts_with("https://") || target.starts_with("http://")) {
        return None;
    }
    let hosts: Vec<String> = names.iter().map(|h| q(h)).collect();
    Some(format!(
        "# {}\n[[routes]]\nhosts = [{}]\npath = \"/\"\nredirect = {}\nredirect_status = {code}{}\n",
        c.at(),
        hosts.join(", "),
        q(&target),
        if keep {
            "\nredirect_keep_path = true"
        } else {
            ""
        }
    ))
}

/// The port of a `key = "ADDR"` line.
fn port_of(line: &str) -> String {
    line.trim_end_matches('"')
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether a directive (or one nested in it) hands over to the named location `n`.
fn uses_named(d: &Directive, n: &str) -> bool {
    let target = format!("@{n}");
    let last_is = |d: &Directive| d.args.last().is_some_and(|a| a.as_str() == target);
    if d.name == "location" && last_is(d) {
        return false;
    }
    (matches!(d.name.as_str(), "try_files" | "error_page") && last_is(d))
        || d.block
            .iter()
            .flat_map(|b| b.directives())
            .any(|i| uses_named(i, n))
}

/// A TOML table key: bare when it can be.
fn table_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name.to_owned()
    } else {
        q(name)
    }
}

/// nginx's configuration prefix for `path`: the nearest directory above it holding an
/// `nginx.conf` (so a site file under `/etc/nginx/sites-available/` finds
/// `snippets/…` as nginx does), else the file's own directory.
fn conf_dir(path: &Path) -> PathBuf {
    let own = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let own = if own.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        own
    };
    own.ancestors()
        .find(|d| d.join("nginx.conf").is_file())
        .map_or(own.clone(), Path::to_path_buf)
}

/// Translates the nginx config at `path`, with relative includes found under `prefix`
/// (default: see [`conf_dir`]).
///
/// # Errors
/// The file cannot be read or is not valid nginx syntax.
pub fn nginx_in(path: &Path, prefix: Option<&Path>) -> Result<Imported, String> {
    let cfg =
        nginx_lint_parser::parse_config(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = prefix.map_or_else(|| conf_dir(path), Path::to_path_buf);
    let mut out = Out {
        base,
        ..Out::default()
    };
    let file = path.display().to_string();
    out.walk(&cfg.items, &file, 1, 0);
    out.walk(&cfg.items, &file, 2, 0);
    Ok(out.write(path))
}

/// Translates the nginx config at `path`.
///
/// # Errors
/// The file cannot be read or is not valid nginx syntax.
pub fn nginx(path: &Path) -> Result<Imported, String> {
    nginx_in(path, None)
}

impl Out {
    fn write(mut self, path: &Path) -> Imported {
        // In reading order (file, then line), each once.
        let order = |at: &str| {
            let (f, l) = at.rsplit_once(':').unwrap_or((at, "0"));
            (f.to_owned(), l.parse::<usize>().unwrap_or(0))
        };
        for list in [&mut self.untranslated, &mut self.builtin, &mut self.differs] {
            list.sort_by_key(|(at, _, _)| order(at));
            list.dedup();
        }
        let mut t = format!(
            "# Imported from {} by `rampart import nginx`.\n",
            path.display()
        );
        t.push_str("\n[server]\n");
        for (k, v) in &self.server {
            if *k != "misdirected" {
                let _ = writeln!(t, "{v}");
            }
        }
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self.hosts.iter().map(|h| q(h)).collect();
            let _ = writeln!(t, "allowed_hosts = [{}]", hosts.join(", "));
        }
        if let Some(m) = self.server.get("misdirected") {
            let _ = writeln!(t, "{m}");
        }
        if !self.trusted.is_empty() {
            let _ = writeln!(t, "trusted_proxies = [\n{}\n]", self.trusted.join(",\n"));
        }
        let https = self.server.contains_key("https");
        if https && !self.tls.iter().any(|l| l.contains("\ncert = ")) {
            self.acme = true;
        }
        if !self.tls.is_empty() || self.acme {
            t.push_str("\n[tls]\n");
            for v in &self.tls {
                let _ = writeln!(t, "{v}");
            }
            if self.acme {
                t.push_str("\n# No ssl_certificate: rampart obtains and renews one by ACME (Let's Encrypt)\n# for allowed_hosts. Set `email` for expiry notices.\n[tls.acme]\n");
            }
        }
        if !self.headers.is_empty() || !self.set_headers.is_empty() {
            t.push_str("\n[headers]\n");
            for (_, at, line) in &self.headers {
                let _ = writeln!(t, "# {at}\n{line}");
            }
            if !self.set_headers.is_empty() {
                let mut set: Vec<String> = Vec::new();
                for (k, v) in &self.set_headers {
                    if !set.iter().any(|p| p.starts_with(&format!("{} =", q(k)))) {
                        set.push(format!("{} = {}", q(k), q(v)));
                    }
                }
                let _ = writeln!(t, "set = {{ {} }}", set.join(", "));
            }
        }
        for u in &self.upstreams {
            let _ = write!(t, "\n{u}");
        }
        for l in &self.limits {
            let _ = write!(t, "\n{l}");
        }
        for r in &self.routes {
            let _ = write!(t, "\n{r}");
        }
        if self.routes.is_empty() {
            t.push_str("\n# The nginx config serves no site (no location, root or proxy): rampart needs a\n# route, and this one refuses every request until you add yours.\n[[routes]]\npath = \"/\"\nrespond = { status = 404, body = \"\" }\n");
        }
        for (title, list) in [
            ("Done by rampart itself", &self.builtin),
            ("Translated, behaving differently from nginx", &self.differs),
            ("NOT TRANSLATED", &self.untranslated),
        ] {
            if !list.is_empty() {
                let _ = writeln!(t, "\n# {title}:");
                for (at, d, why) in list {
                    let _ = writeln!(t, "#   {at}: {d} ({why})");
                }
            }
        }
        Imported {
            toml: t,
            untranslated: self.untranslated,
            builtin: self.builtin,
            differs: self.differs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Imports `text` as `site.conf` in a directory of its own (with `files` beside it).
    fn imp(text: &str, files: &[(&str, &str)]) -> Imported {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rampart-imp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let main = dir.join("site.conf");
        std::fs::write(&main, text).unwrap();
        let out = nginx(&main).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // Whatever it says, it is TOML.
        toml::from_str::<toml::Value>(&out.toml).unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
        out
    }

    fn lines(list: &[(String, String, String)]) -> Vec<String> {
        list.iter()
            .map(|(at, d, _)| format!("{} {d}", at.rsplit(':').next().unwrap()))
            .collect()
    }

    /// `~`, `~*`, `^~`, `=` and nested locations, as nginx matches them.
    #[test]
    fn location_forms_translate() {
        let out = imp(
            "server {\n listen 80;\n root /srv/www;\n location / { proxy_pass http://127.0.0.1:8000; }\n location ~* \\.(png|jpg)$ { expires 30d; }\n location ^~ /media/ { proxy_pass http://127.0.0.1:9000; }\n location = /robots.txt { }\n location /app/ {\n  proxy_pass http://127.0.0.1:8000;\n  location ~ \\.json$ { proxy_pass http://127.0.0.1:7000; }\n }\n location ~ ^/(?!x) { return 404; }\n}\n",
            &[],
        );
        let t = &out.toml;
        for want in [
            "path_regex = \"(?i)\\\\.(png|jpg)$\"\nstatic = \"/srv/www\"\ncache = [{ glob = \"**\", control = \"public, max-age=2592000\" }]",
            "path = \"/media/\"\nprefix_priority = true\nupstream = \"backend2\"",
            // An exact static location serves root + path: a regex route does that.
            "path_regex = \"^/robots\\\\.txt$\"\nstatic = \"/srv/www\"",
            // Nested in /app/: only below it.
            "path_regex = \"^/app/.*(?:\\\\.json$)\"\nupstream = \"backend3\"",
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        // Look-around is not something a linear-time matcher runs: named, not dropped.
        assert_eq!(lines(&out.untranslated), ["12 location ~ ^/(?!x)"]);
    }

    /// `try_files $uri @app` and GitLab's `error_page 418 = @x; return 418;` hand over to
    /// the named location; `internal` answers 404; unused named locations are listed.
    #[test]
    fn named_locations_are_merged_where_used() {
        let out = imp(
            "upstream app { server 127.0.0.1:8000 fail_timeout=0; }\nserver {\n listen 80;\n root /srv;\n location / { try_files $uri @app; }\n location ~ ^/git/ { error_page 418 = @work; return 418; }\n location /private/ { internal; }\n location @app { proxy_read_timeout 90; proxy_pass http://app; }\n location @work { proxy_pass http://127.0.0.1:8181; }\n location @unused { return 204; }\n}\n",
            &[],
        );
        let t = &out.toml;
        for want in [
            "path = \"/\"\nupstream = \"app\"",
            "path_regex = \"^/git/\"\nupstream = \"backend1\"",
            "path = \"/private/\"\nrespond = { status = 404, body = \"\" }",
            "response_timeout = \"90s\"",
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        assert_eq!(lines(&out.untranslated), ["10 location @unused"]);
        assert!(lines(&out.differs).contains(&"5 try_files $uri @app".to_owned()));
    }

    /// nginx's inheritance: `root`, body size and timeouts go down; a location with its
    /// own `add_header` drops the server's (named as a difference: rampart keeps them).
    #[test]
    fn inheritance_follows_nginx() {
        let out = imp(
            "http {\n client_max_body_size 5m;\n proxy_read_timeout 30s;\n map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n set_real_ip_from 10.0.0.0/8;\n real_ip_header X-Forwarded-For;\n server {\n  listen 80;\n  add_header X-Frame-Options DENY always;\n  location /api/ { proxy_pass http://127.0.0.1:8000; add_header X-Api yes always; }\n  location / { proxy_pass http://127.0.0.1:8001; }\n }\n}\n",
            &[],
        );
        let t = &out.toml;
        for want in [
            "body_limit = \"5MiB\"",
            "response_timeout = \"30s\"",
            "trusted_proxies = [\n# ",
            "\"10.0.0.0/8\"\n]",
            "headers = { set = { \"X-Api\" = \"yes\" } }",
            "frame_options = \"DENY\"",
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        assert!(out.untranslated.is_empty(), "{:?}", out.untranslated);
        assert_eq!(lines(&out.differs), ["10 location /api/"]);
    }

    /// Several server blocks: the HTTPS redirect is no route, `www` redirects to the apex,
    /// a server with only a root serves it, repeated TLS settings are read once, cipher
    /// classes leave rampart's list, non-AEAD suites are named, and without a certificate
    /// rampart gets one by ACME.
    #[test]
    fn server_blocks_translate() {
        let out = imp(
            "server { listen 80; server_name example.com www.example.com; location / { return 301 https://$host$request_uri; } }\nserver { listen 443 ssl; server_name www.example.com; ssl_ciphers HIGH:!aNULL; return 301 $scheme://example.com$request_uri; }\nserver { listen 443 ssl; server_name example.com; ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA; root /srv/site; }\nserver { listen 80 default_server; return 444; }\n",
            &[],
        );
        let t = &out.toml;
        for want in [
            "hosts = [\"www.example.com\"]\npath = \"/\"\nredirect = \"https://example.com\"\nredirect_status = 301\nredirect_keep_path = true",
            "path = \"/\"\nstatic = \"/srv/site\"",
            "ciphers = \"ECDHE-RSA-AES128-GCM-SHA256\"",
            "[tls.acme]",
            "misdirected = \"close\"",
            "allowed_hosts = [\"example.com\", \"www.example.com\"]",
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        assert!(out.untranslated.is_empty(), "{:?}", out.untranslated);
        assert!(lines(&out.differs)
            .contains(&"3 ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA".to_owned()));
    }

    /// nginx's glob skips dotfiles (`conf.d/.default.conf` is h5bp's way to disable a
    /// file), and a site file finds its includes from the directory holding nginx.conf.
    #[test]
    fn includes_resolve_as_nginx_does() {
        let out = imp(
            "http { include conf.d/*.conf; }\n",
            &[
                (
                    "conf.d/.disabled.conf",
                    "server { listen 80; location /off/ { return 410; } }",
                ),
                (
                    "conf.d/site.conf",
                    "server { listen 80; location /on/ { return 200; } }",
                ),
            ],
        );
        assert!(out.toml.contains("path = \"/on/\""), "{}", out.toml);
        assert!(!out.toml.contains("/off/"), "{}", out.toml);
        let dir = std::env::temp_dir().join(format!("rampart-imp-prefix-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sites-available")).unwrap();
        std::fs::create_dir_all(dir.join("snippets")).unwrap();
        std::fs::write(dir.join("nginx.conf"), "events {}\n").unwrap();
        std::fs::write(
            dir.join("snippets/tls.conf"),
            "ssl_certificate /c.pem;\nssl_certificate_key /k.pem;\n",
        )
        .unwrap();
        let site = dir.join("sites-available/app");
        std::fs::write(&site, "server { listen 443 ssl; include snippets/tls.conf; location / { proxy_pass http://127.0.0.1:1; } }\n").unwrap();
        let out = nginx(&site).unwrap();
        assert!(out.toml.contains("cert = \"/c.pem\""), "{}", out.toml);
        assert!(out.untranslated.is_empty(), "{:?}", out.untranslated);
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Random configs from nginx's grammar (blocks, quotes, escapes, variables,
        /// includes of missing files): the import never panics, always answers with
        /// TOML, and reports at least every top-level directive it did not turn into
        /// config.
        #[test]
        fn random_configs_never_panic(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("listen 80;".to_owned()),
                    proptest::strategy::Just("listen 443 ssl;".to_owned()),
                    "server_name [a-z]{1,8}(\\.[a-z]{2,3})?;",
                    "location (=|~|~\\*|\\^~)? ?/[a-z\\\\.()|$^*?]{0,12} \\{ (return [0-9]{3}|proxy_pass http://127\\.0\\.0\\.1:[0-9]{1,5}|root /[a-z]{1,6}|try_files \\$uri @[a-z]{1,4}|add_header X-[a-z]{1,5} \"[a-z; ]{0,8}\"( always)?|internal|deny all); \\}",
                    "location @[a-z]{1,4} \\{ proxy_pass http://[a-z]{1,6}; \\}",
                    "(add_header|proxy_set_header|set|rewrite|expires|client_max_body_size|ssl_ciphers|include) [a-zA-Z0-9$/_.:!*-]{1,14}( [a-z$\"']{0,6})?;",
                    "if \\(\\$[a-z]{1,6} ~ [a-z]{1,4}\\) \\{ return 403; \\}",
                    "[a-z_]{1,12} [a-z0-9]{0,6};",
                ],
                0..14,
            ),
            wrap in 0u8..3,
        ) {
            let inner = body.join("\n");
            let text = match wrap {
                0 => format!("server {{\n{inner}\n}}\n"),
                1 => format!("http {{\n upstream u {{ server 127.0.0.1:1; }}\n server {{\n{inner}\n }}\n}}\n"),
                _ => inner,
            };
            let dir = std::env::temp_dir().join(format!("rampart-imp-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let main = dir.join("fuzz.conf");
            std::fs::write(&main, &text).unwrap();
            if let Ok(out) = nginx(&main) {
                proptest::prop_assert!(
                    toml::from_str::<toml::Value>(&out.toml).is_ok(),
                    "not TOML for:\n{}\n---\n{}",
                    text,
                    out.toml
                );
            }
        }

        /// Arbitrary bytes (and corrupted real configs) are an error or a translation,
        /// never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let dir = std::env::temp_dir().join(format!("rampart-imp-bytes-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let main = dir.join("bytes.conf");
            let mut text = b"server { listen 80; location / { ".to_vec();
            text.extend_from_slice(&bytes);
            std::fs::write(&main, &text).unwrap();
            let _ = nginx(&main);
            std::fs::write(&main, &bytes).unwrap();
            let _ = nginx(&main);
        }

        /// The real-world corpus with a slice cut out and another repeated elsewhere:
        /// an error or TOML, never a panic.
        #[test]
        fn mutated_corpus_never_panics(pick in 0usize..64, a in 0.0f64..1.0, b in 0.0f64..1.0, len in 0usize..200) {
            let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rampart/tests/nginx");
            let mut files: Vec<PathBuf> = include_paths(&corpus, "*.conf");
            files.extend(include_paths(&corpus, "real/*.conf"));
            let text = std::fs::read(&files[pick % files.len()]).unwrap();
            let cut = (a * text.len() as f64) as usize;
            let at = (b * text.len() as f64) as usize;
            let end = (cut + len).min(text.len());
            let mut m = text[..cut].to_vec();
            m.extend_from_slice(&text[end..]);
            let at = at.min(m.len());
            let piece = text[cut..end].to_vec();
            m.splice(at..at, piece);
            let dir = std::env::temp_dir().join(format!("rampart-imp-mut-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let main = dir.join("mut.conf");
            std::fs::write(&main, &m).unwrap();
            if let Ok(out) = nginx(&main) {
                proptest::prop_assert!(toml::from_str::<toml::Value>(&out.toml).is_ok(), "{}", out.toml);
            }
        }
    }

    #[test]
    fn sizes_times_and_roots() {
        assert_eq!(size("10m").as_deref(), Some("10MiB"));
        assert_eq!(size("100M").as_deref(), Some("100MiB"));
        assert_eq!(size("512k").as_deref(), Some("512KiB"));
        assert_eq!(size("1024").as_deref(), Some("1024"));
        assert_eq!(size("ten"), None);
        assert_eq!(time("120").as_deref(), Some("120s"));
        assert_eq!(time("60s").as_deref(), Some("60s"));
        assert_eq!(time("1m").as_deref(), Some("1m"));
        assert_eq!(time("1x"), None);
        assert_eq!(under("/var/www", "/"), "/var/www");
        assert_eq!(under("/var/www/", "/static/"), "/var/www/static");
    }

    /// `include` inside server and location blocks, as Debian's snippets and
    /// `proxy_params` are used: the included directives are translated with their own
    /// file and line.
    #[test]
    fn includes_in_server_and_location_blocks_are_followed() {
        let dir = std::env::temp_dir().join(format!("rampart-import-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("snippets")).unwrap();
        std::fs::write(
            dir.join("snippets/ssl.conf"),
            "ssl_certificate /etc/ssl/site.pem;\nssl_certificate_key /etc/ssl/site.key;\nssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("proxy_params"),
            "proxy_set_header Host $http_host;\nproxy_set_header X-Real-IP $remote_addr;\n",
        )
        .unwrap();
        let main = dir.join("site.conf");
        std::fs::write(
            &main,
            "server {\n  listen 443 ssl;\n  server_name a.test;\n  include snippets/ssl.conf;\n  location / {\n    include proxy_params;\n    proxy_pass http://127.0.0.1:8000;\n  }\n}\n",
        )
        .unwrap();
        let out = nginx(&main).unwrap();
        assert!(out.untranslated.is_empty(), "{:?}", out.untranslated);
        assert!(
            out.toml.contains("cert = \"/etc/ssl/site.pem\""),
            "{}",
            out.toml
        );
        assert!(
            out.toml
                .contains("ciphers = \"ECDHE-RSA-AES128-GCM-SHA256\""),
            "{}",
            out.toml
        );
        assert!(out.toml.contains("snippets/ssl.conf:1"), "{}", out.toml);
        assert!(
            out.builtin
                .iter()
                .any(|(at, d, _)| at.ends_with("proxy_params:2")
                    && d.starts_with("proxy_set_header X-Real-IP")),
            "{:?}",
            out.builtin
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_input_is_an_error_and_nothing_is_silent() {
        let dir = std::env::temp_dir().join(format!("rampart-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.conf");
        std::fs::write(&bad, "server { listen 80;").unwrap();
        assert!(nginx(&bad).is_err());
        assert!(nginx(&dir.join("missing.conf")).is_err());
        // Unknown directives at every level are listed, never dropped.
        let odd = dir.join("odd.conf");
        std::fs::write(
            &odd,
            "load_module x.so;\nhttp {\n  lua_shared_dict d 1m;\n  server {\n    listen 80;\n    rewrite ^/a /b;\n    location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; }\n    location /x { mirror /m; proxy_pass http://127.0.0.1:1; }\n    include nothing-here/*.conf;\n  }\n}\n",
        )
        .unwrap();
        let out = nginx(&odd).unwrap();
        let lines: Vec<String> = out
            .untranslated
            .iter()
            .map(|(at, d, _)| format!("{} {}", at.rsplit(':').next().unwrap(), d))
            .collect();
        assert_eq!(
            lines,
            [
                "1 load_module x.so",
                "3 lua_shared_dict d 1m",
                "6 rewrite ^/a /b",
                "7 fastcgi_pass 127.0.0.1:9000",
                "7 location ~ \\.php$",
                "8 mirror /m",
                "9 include nothing-here/*.conf",
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
