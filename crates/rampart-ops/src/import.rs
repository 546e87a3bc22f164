//! `rampart import nginx`: an nginx config (parsed by `nginx-lint-parser`, `include`s
//! followed) translated into a `rampart.toml`. Each translated block carries a comment
//! naming its source line; every directive that is not translated is listed with its
//! line and why, in the output and in the report: nothing is dropped silently.
//!
//! Translated: `upstream` (servers, `least_conn`, `max_fails`, `fail_timeout`, `backup`
//! noted), `limit_req_zone` keyed by the client address and `limit_req` (burst, nodelay),
//! `server` (`listen` with `ssl`, `server_name`, `ssl_certificate(_key)`,
//! `ssl_protocols`, `ssl_ciphers`, `ssl_prefer_server_ciphers`, `add_header`,
//! `client_max_body_size`, `return 301/302`), `location` (prefix and `=`; `proxy_pass` to
//! an upstream or an address, `root`/`alias` with `try_files … /index.html`, `index`,
//! `allow`/`deny`, `return`, `limit_req`, `client_max_body_size`, `add_header`,
//! `proxy_read_timeout`, `proxy_connect_timeout`, `expires`), and the directives rampart
//! does by itself (`proxy_set_header` of the forwarding headers, WebSocket upgrade
//! headers, `proxy_http_version`, `gzip`, `ssl_session_*`, `ssl_stapling*`, `http2`).

use std::collections::BTreeMap;
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
}

/// A directive with where it came from.
struct Seen<'a> {
    d: &'a Directive,
    file: &'a str,
}

impl Seen<'_> {
    fn at(&self) -> String {
        format!("{}:{}", self.file, self.d.span.start.line)
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
    fn raw_args(&self) -> String {
        self.words().join(" ")
    }
}

/// A parsed file and the files it includes, kept alive together.
struct Tree {
    files: Vec<(String, nginx_lint_parser::ast::Config)>,
}

fn load(path: &Path, tree: &mut Tree, depth: usize) -> Result<usize, String> {
    if depth > 16 {
        return Err(format!("{}: includes nest deeper than 16", path.display()));
    }
    let cfg =
        nginx_lint_parser::parse_config(path).map_err(|e| format!("{}: {e}", path.display()))?;
    tree.files.push((path.display().to_string(), cfg));
    Ok(tree.files.len() - 1)
}

/// Everything an import collects before writing.
#[derive(Default)]
struct Out {
    /// Where relative `include`s are found (the main file's directory).
    base: PathBuf,
    header: Vec<String>,
    server: BTreeMap<&'static str, String>,
    hosts: Vec<String>,
    tls: Vec<String>,
    headers: Vec<(String, String, String)>,
    set_headers: Vec<(String, String)>,
    upstreams: Vec<String>,
    upstream_names: Vec<String>,
    limits: Vec<String>,
    zones: BTreeMap<String, (String, String)>,
    routes: Vec<String>,
    route_keys: Vec<String>,
    server_body_limit: Option<String>,
    untranslated: Vec<(String, String, String)>,
    builtin: Vec<(String, String, String)>,
    anon: usize,
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
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

/// nginx times (`60s`, `1m`, `120`) as rampart durations.
fn time(s: &str) -> Option<String> {
    if s.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("{s}s"));
    }
    let (n, u) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    n.parse::<u64>().ok()?;
    matches!(u, "ms" | "s" | "m" | "h" | "d").then(|| format!("{n}{u}"))
}

impl Out {
    fn skip(&mut self, s: &Seen<'_>, why: &str) {
        self.untranslated.push((
            s.at(),
            format!("{} {}", s.d.name, s.raw_args()).trim().to_owned(),
            why.to_owned(),
        ));
    }
    fn builtin(&mut self, s: &Seen<'_>, note: &str) {
        self.builtin.push((
            s.at(),
            format!("{} {}", s.d.name, s.raw_args()).trim().to_owned(),
            note.to_owned(),
        ));
    }

    /// Directives rampart does itself, in any context; true when handled.
    fn common(&mut self, s: &Seen<'_>) -> bool {
        let name = s.d.name.as_str();
        let note = match name {
            "proxy_set_header" => {
                let h = s.words().first().map(|h| h.to_ascii_lowercase()).unwrap_or_default();
                match h.as_str() {
                    "host" | "x-real-ip" | "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" => {
                        "rampart sets Host (kept), X-Real-IP and X-Forwarded-* itself"
                    }
                    "upgrade" | "connection" => "WebSocket upgrades are tunnelled on upstream routes by themselves",
                    _ => return false,
                }
            }
            "proxy_http_version" => "rampart speaks HTTP/1.1 with keep-alive to upstreams",
            "gzip" | "gzip_types" | "gzip_vary" | "gzip_proxied" | "gzip_comp_level" | "gzip_min_length" => {
                "static routes compress (gzip and brotli) by default; `compress = true` on an upstream route"
            }
            "ssl_session_cache" | "ssl_session_timeout" | "ssl_session_tickets" => {
                "TLS session resumption (cache and tickets) is on by default"
            }
            "ssl_stapling" | "ssl_stapling_verify" | "ssl_trusted_certificate" | "resolver" => {
                "OCSP stapling is on by default for certificates that name a responder"
            }
            "http2" => "HTTPS offers HTTP/2 by ALPN",
            "server_tokens" => "rampart's Server header carries no version",
            "access_log" | "error_log" | "log_format" => "`[logging]`: JSON access and audit logs",
            "sendfile" | "tcp_nopush" | "tcp_nodelay" | "keepalive_timeout" | "worker_connections"
            | "worker_processes" | "types_hash_max_size" | "default_type" | "charset" => {
                "rampart tunes its own sockets and workers"
            }
            _ => return false,
        };
        self.builtin(s, note);
        true
    }

    fn header(&mut self, s: &Seen<'_>, route: Option<&mut Vec<String>>) {
        let a_w = s.words();
        let a: Vec<&str> = a_w.iter().map(String::as_str).collect();
        let (Some(name), Some(value)) = (a.first(), a.get(1)) else {
            self.skip(s, "add_header needs a name and a value");
            return;
        };
        let key = match name.to_ascii_lowercase().as_str() {
            "strict-transport-security" => Some("hsts"),
            "x-frame-options" => Some("frame_options"),
            "x-content-type-options" => Some("content_type_options"),
            "referrer-policy" => Some("referrer_policy"),
            "permissions-policy" => Some("permissions_policy"),
            "content-security-policy" => Some("csp"),
            "cross-origin-opener-policy" => Some("coop"),
            "cross-origin-resource-policy" => Some("corp"),
            "cross-origin-embedder-policy" => Some("coep"),
            "x-xss-protection" => {
                self.builtin(
                    s,
                    "not sent: browsers removed the XSS filter; the CSP replaces it",
                );
                return;
            }
            _ => None,
        };
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let line = match key {
            Some("hsts") if value.contains("preload") => format!(
                "hsts = {}\nhsts_preload = true",
                q(value
                    .replace("; preload", "")
                    .replace(";preload", "")
                    .trim())
            ),
            Some(k) => format!("{k} = {}", q(&value)),
            None => {
                if route.is_none() {
                    self.set_headers.push((name.to_string(), value));
                    return;
                }
                format!("set = {{ {} = {} }}", q(name), q(&value))
            }
        };
        match route {
            Some(r) => r.extend(line.lines().map(str::to_owned)),
            None => {
                let k = key.unwrap_or("set").to_owned();
                match self.headers.iter().position(|(hk, _, _)| *hk == k) {
                    Some(i) if self.headers[i].2 == line => {
                        self.builtin(s, "repeated in another server block");
                    }
                    Some(i) => {
                        self.skip(
                            s,
                            "another server block sets a different value: the later one is kept",
                        );
                        self.headers[i] = (k, s.at(), line);
                    }
                    None => self.headers.push((k, s.at(), line)),
                }
            }
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
                    servers.push(q(addr));
                    for p in &a[1..] {
                        if let Some(v) = p.strip_prefix("max_fails=") {
                            extra.push(format!("max_fails = {v}"));
                        } else if let Some(v) = p.strip_prefix("fail_timeout=") {
                            if let Some(t) = time(v) {
                                extra.push(format!("fail_timeout = {}", q(&t)));
                            }
                        } else if *p == "backup" {
                            self.skip(&c, "backup servers: rampart balances over every server; put the spare in its own pool and switch with the admin API");
                        } else if p.starts_with("weight=") {
                            self.builtin(&c, "weights are set at run time (admin API `weight`)");
                        }
                    }
                }
                "least_conn" => extra.push("balance = \"least_conn\"".into()),
                "keepalive" | "keepalive_timeout" | "keepalive_requests" => {
                    self.builtin(
                        &c,
                        "upstream keep-alive pooling is on by default (`max_idle`, `idle_timeout`)",
                    );
                }
                _ => self.skip(&c, "not translated in an upstream block"),
            }
        }
        extra.sort();
        extra.dedup();
        let mut t = format!(
            "# {}\n[upstreams.{name}]\nservers = [{}]\n",
            s.at(),
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

    fn route(&mut self, s: &Seen<'_>, server_body: Option<&str>, server_root: Option<&str>) {
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
        if modifier == "~" || modifier == "~*" {
            self.skip(s, "regex locations: rampart matches path prefixes and exact paths (write one route per prefix)");
            return;
        }
        let mut lines = vec![
            format!("# {}", s.at()),
            "[[routes]]".to_owned(),
            format!("path = {}", q(path)),
        ];
        if modifier == "=" {
            lines.push("exact = true".into());
        }
        let key = lines[2..]
            .iter()
            .take_while(|l| l.starts_with("path") || l.starts_with("exact"))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        if self.route_keys.contains(&key) {
            self.builtin(s, "the same location in another server block: one route serves both listeners (the plain one redirects)");
            return;
        }
        self.route_keys.push(key);
        let mut action: Option<String> = None;
        let mut root: Option<String> = server_root.map(|r| under(r, path));
        let mut spa = false;
        let mut allow = Vec::new();
        let mut deny_all = false;
        let mut deny = Vec::new();
        let mut body = server_body.map(str::to_owned);
        let mut route_headers: Vec<String> = Vec::new();
        let mut timeouts: Vec<(&'static str, String, String)> = Vec::new();
        for (d, file) in &self.expand(s.d, s.file, 0) {
            let c = Seen { d, file };
            if self.common(&c) {
                continue;
            }
            let ca_w = c.words();
            let ca: Vec<&str> = ca_w.iter().map(String::as_str).collect();
            match d.name.as_str() {
                "proxy_pass" => {
                    let Some(url) = ca.first() else { continue };
                    let rest = url
                        .strip_prefix("http://")
                        .or_else(|| url.strip_prefix("https://"));
                    let Some(rest) = rest else {
                        self.skip(&c, "only http:// and https:// upstreams");
                        continue;
                    };
                    let (authority, uri) = rest.split_once('/').map_or((rest, ""), |(a, u)| (a, u));
                    if url.starts_with("https://") {
                        self.skip(&c, "TLS to the upstream is not supported yet (issue 26); proxied over plain HTTP");
                    }
                    if !uri.is_empty() && format!("/{uri}") != path {
                        self.skip(&c, "proxy_pass with a different URI replaces the prefix: use strip_prefix or change the upstream's paths");
                    } else if !uri.is_empty() && format!("/{uri}") == path {
                        self.builtin(
                            &c,
                            "the same URI as the location: the path is forwarded as is",
                        );
                    }
                    let pool = if self.upstream_names.iter().any(|n| n == authority) {
                        authority.to_owned()
                    } else {
                        self.anon += 1;
                        let name = format!("backend{}", self.anon);
                        self.upstreams.push(format!(
                            "# {}\n[upstreams.{name}]\nservers = [{}]\n",
                            c.at(),
                            q(authority)
                        ));
                        self.upstream_names.push(name.clone());
                        name
                    };
                    action = Some(format!("upstream = {}", q(&pool)));
                }
                // nginx's root appends the whole URI; alias (and rampart's static) the part
                // after the location.
                "root" => root = ca.first().map(|r| under(r, path)),
                "alias" => root = ca.first().map(|r| r.trim_end_matches('/').to_string()),
                "index" => {
                    if ca.first() != Some(&"index.html") {
                        lines.push(format!(
                            "index = {}",
                            q(ca.first().unwrap_or(&"index.html"))
                        ));
                    }
                }
                "try_files" => {
                    if ca.last().is_some_and(|l| l.ends_with(".html")) {
                        spa = true;
                    } else if ca.last().is_some_and(|l| *l == "=404") {
                        self.builtin(&c, "a missing file is a 404");
                    } else {
                        self.skip(&c, "try_files other than `… /index.html` or `=404`");
                    }
                }
                "return" => match ca.as_slice() {
                    [code, url] if matches!(*code, "301" | "302" | "303" | "307" | "308") => {
                        let keep = url.contains("$request_uri");
                        let target = url.replace("$request_uri", "").replace("$host", "HOST");
                        if target.contains('$') || target.contains("HOST") {
                            self.skip(&c, "a redirect built from variables other than $request_uri; write the URL");
                        } else {
                            action = Some(format!(
                                "redirect = {}\nredirect_status = {code}{}",
                                q(&target),
                                if keep {
                                    "\nredirect_keep_path = true"
                                } else {
                                    ""
                                }
                            ));
                        }
                    }
                    [code, ..] if code.parse::<u16>().is_ok() => {
                        let body = ca.get(1).map(|b| b.to_string()).unwrap_or_default();
                        action = Some(format!(
                            "respond = {{ status = {code}, body = {} }}",
                            q(&body)
                        ));
                    }
                    _ => self.skip(&c, "return without a status"),
                },
                "allow" => {
                    if let Some(x) = ca.first() {
                        if *x != "all" {
                            allow.push(q(&if x.contains('/') {
                                x.to_string()
                            } else if x.contains(':') {
                                format!("{x}/128")
                            } else {
                                format!("{x}/32")
                            }));
                        }
                    }
                }
                "deny" => {
                    if ca.first() == Some(&"all") {
                        deny_all = true;
                    } else if let Some(x) = ca.first() {
                        deny.push(q(&if x.contains('/') {
                            x.to_string()
                        } else if x.contains(':') {
                            format!("{x}/128")
                        } else {
                            format!("{x}/32")
                        }));
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
                            let nodelay = ca.contains(&"nodelay");
                            let name =
                                format!("{z}_b{burst}{}", if nodelay { "" } else { "_delay" });
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
                            lines.push(format!("limit = {}", q(&name)));
                        }
                        _ => self.skip(&c, "limit_req of a zone that did not translate"),
                    }
                }
                "client_max_body_size" => body = ca.first().and_then(|s| size(s)),
                "add_header" => self.header(&c, Some(&mut route_headers)),
                "proxy_read_timeout" | "proxy_connect_timeout" => {
                    match ca.first().and_then(|t| time(t)) {
                        Some(t) => {
                            let key = if d.name == "proxy_read_timeout" {
                                "response_timeout"
                            } else {
                                "connect_timeout"
                            };
                            timeouts.push((key, t, c.at()));
                        }
                        None => self.skip(&c, "a timeout rampart cannot read"),
                    }
                }
                "proxy_send_timeout" => {
                    self.builtin(&c, "sending to the upstream is bounded by the client's own timeouts");
                }
                "limit_conn" => self.skip(
                    &c,
                    "rampart limits request rates per key, not concurrent connections per key (server.max_connections is global)",
                ),
                "expires" => {
                    if let Some(t) = ca
                        .first()
                        .and_then(|t| time(t).or_else(|| (*t == "max").then(|| "10y".into())))
                    {
                        let secs = rampart_config::units::parse_duration(&t)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        lines.push(format!(
                            "cache = [{{ glob = \"**\", control = \"public, max-age={secs}\" }}]"
                        ));
                    } else {
                        self.skip(&c, "expires other than a time");
                    }
                }
                _ => self.skip(&c, "not translated in a location"),
            }
        }
        // A location's proxy timeouts are its pool's (rampart sets them per pool).
        let pool = action
            .as_deref()
            .and_then(|a| a.strip_prefix("upstream = "))
            .map(|p| p.trim_matches('"').to_owned());
        for (key, t, at) in timeouts {
            let why = match &pool {
                Some(pool) => {
                    let head = format!("[upstreams.{pool}]\n");
                    match self.upstreams.iter_mut().find(|u| u.contains(&head)) {
                        Some(u) if !u.contains(&format!("\n{key} = ")) => {
                            let _ = writeln!(u, "# {at}\n{key} = {}", q(&t));
                            continue;
                        }
                        _ => format!("pool {pool} already has a {key} from another location: the first is kept"),
                    }
                }
                None => "a timeout on a location that does not proxy".to_owned(),
            };
            self.untranslated.push((at, format!("{key} {t}"), why));
        }
        match (action, root) {
            (Some(a), _) => lines.push(a),
            (None, Some(r)) => {
                lines.push(format!("static = {}", q(&r)));
                if spa {
                    lines.push("spa_fallback = \"index.html\"".into());
                }
            }
            (None, None) => {
                self.skip(
                    s,
                    "a location with neither proxy_pass, root nor return: nothing to serve",
                );
                return;
            }
        }
        if !route_headers.is_empty() {
            lines.push(format!("headers = {{ {} }}", route_headers.join(", ")));
        }
        if !allow.is_empty() {
            lines.push(format!("allow = [{}]", allow.join(", ")));
        } else if deny_all {
            deny = vec![q("0.0.0.0/0"), q("::/0")];
        }
        if !deny.is_empty() {
            lines.push(format!("deny = [{}]", deny.join(", ")));
        }
        if let Some(b) = body {
            lines.push(format!("body_limit = {}", q(&b)));
        }
        self.routes.push(lines.join("\n") + "\n");
    }

    /// A block's directives with its `include`s replaced by the included files'
    /// directives (each with its own file name); an include that matches nothing is
    /// listed.
    fn expand(&mut self, block: &Directive, file: &str, depth: usize) -> Vec<(Directive, String)> {
        let mut out = Vec::new();
        for d in block.block.iter().flat_map(|b| b.directives()) {
            if d.name != "include" {
                out.push((d.clone(), file.to_owned()));
                continue;
            }
            let pattern = d.first_arg().unwrap_or_default();
            let full = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                self.base.join(pattern)
            };
            let mut any = false;
            for p in glob::glob(&full.display().to_string())
                .into_iter()
                .flatten()
                .flatten()
            {
                any = true;
                let s = Seen { d, file };
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
            if !any {
                self.skip(&Seen { d, file }, "no file matches");
            }
        }
        out
    }

    fn server(&mut self, s: &Seen<'_>) {
        let expanded = self.expand(s.d, s.file, 0);
        let items: Vec<&Directive> = expanded.iter().map(|(d, _)| d).collect();
        let tls = items.iter().any(|d| d.name == "ssl_certificate")
            || items
                .iter()
                .any(|d| d.name == "listen" && d.args.iter().any(|a| a.as_str() == "ssl"));
        let body = items
            .iter()
            .find(|d| d.name == "client_max_body_size")
            .and_then(|d| d.first_arg())
            .and_then(size);
        if let Some(b) = &body {
            self.server_body_limit = Some(b.clone());
        }
        let root = items
            .iter()
            .find(|d| d.name == "root")
            .and_then(|d| d.first_arg())
            .map(str::to_owned);
        for (d, file) in &expanded {
            let c = Seen { d, file };
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
                    } else {
                        addr.to_owned()
                    };
                    let key = if a.contains(&"ssl") || tls && !addr.ends_with(":80") {
                        "https"
                    } else {
                        "http"
                    };
                    self.server
                        .insert(key, format!("# {}\n{key} = {}", c.at(), q(&addr)));
                }
                "server_name" => {
                    for h in a.iter().filter(|h| **h != "_" && !h.is_empty()) {
                        if !self.hosts.contains(&h.to_string()) {
                            self.hosts.push(h.to_string());
                        }
                    }
                }
                "ssl_certificate" => self.tls.push(format!(
                    "# {}\ncert = {}",
                    c.at(),
                    q(a.first().unwrap_or(&""))
                )),
                "ssl_certificate_key" => self.tls.push(format!(
                    "# {}\nkey = {}",
                    c.at(),
                    q(a.first().unwrap_or(&""))
                )),
                "ssl_protocols" => {
                    if a.iter().all(|p| *p == "TLSv1.3") {
                        self.tls
                            .push(format!("# {}\nmin_version = \"1.3\"", c.at()));
                    } else if a
                        .iter()
                        .any(|p| matches!(*p, "TLSv1" | "TLSv1.1" | "SSLv3"))
                    {
                        self.builtin(
                            &c,
                            "TLS 1.0 and 1.1 are never offered: TLS 1.2 and 1.3 only",
                        );
                    } else {
                        self.builtin(&c, "TLS 1.2 and 1.3, as rampart's default");
                    }
                }
                "ssl_ciphers" => self.tls.push(format!(
                    "# {}\nciphers = {}",
                    c.at(),
                    q(a.first().unwrap_or(&""))
                )),
                "ssl_prefer_server_ciphers" => {
                    if a.first() == Some(&"on") {
                        self.tls
                            .push(format!("# {}\nprefer_server_order = true", c.at()));
                    } else {
                        self.builtin(&c, "the client's order, as rampart's default");
                    }
                }
                "add_header" => self.header(&c, None),
                "client_max_body_size" => {}
                "return" => {
                    let is_https_redirect = a
                        .first()
                        .is_some_and(|x| matches!(*x, "301" | "302" | "308"))
                        && a.get(1).is_some_and(|u| u.starts_with("https://"));
                    if is_https_redirect {
                        self.builtin(
                            &c,
                            "with [tls], the plain listener redirects every request to HTTPS",
                        );
                    } else {
                        self.skip(&c, "a server-wide return other than the HTTPS redirect");
                    }
                }
                "location" => self.route(&c, body.as_deref(), root.as_deref()),
                "root" => self.builtin(&c, "the static root of the locations below"),
                "index" => self.builtin(&c, "index.html is the default index"),
                _ => self.skip(&c, "not translated in a server block"),
            }
        }
    }

    fn walk(&mut self, items: &[ConfigItem], file: &str, base: &Path) {
        for item in items {
            let ConfigItem::Directive(d) = item else {
                continue;
            };
            let s = Seen { d, file };
            match d.name.as_str() {
                "http" if d.block.is_some() => {
                    self.walk(
                        &d.block
                            .as_ref()
                            .map(|b| b.items.clone())
                            .unwrap_or_default(),
                        file,
                        base,
                    );
                }
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
                "server" => self.server(&s),
                "include" => {
                    let pattern = d.first_arg().unwrap_or_default();
                    let full = if Path::new(pattern).is_absolute() {
                        PathBuf::from(pattern)
                    } else {
                        base.join(pattern)
                    };
                    let mut any = false;
                    for p in glob::glob(&full.display().to_string())
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        any = true;
                        match nginx_lint_parser::parse_config(&p) {
                            Ok(cfg) => {
                                let name = p.display().to_string();
                                self.walk(&cfg.items, &name, base);
                            }
                            Err(e) => self.skip(&s, &format!("cannot parse {}: {e}", p.display())),
                        }
                    }
                    if !any {
                        self.skip(&s, "no file matches");
                    }
                }
                _ => {
                    if !self.common(&s) {
                        self.skip(&s, "not translated at this level");
                    }
                }
            }
        }
    }
}

/// Translates the nginx config at `path`.
///
/// # Errors
/// The file cannot be read or is not valid nginx syntax.
pub fn nginx(path: &Path) -> Result<Imported, String> {
    let mut tree = Tree { files: Vec::new() };
    let root = load(path, &mut tree, 0)?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut out = Out {
        base: base.clone(),
        ..Out::default()
    };
    let (file, cfg) = &tree.files[root];
    out.walk(&cfg.items, file, &base);
    // In reading order: by file, then line.
    let order = |at: &str| {
        let (f, l) = at.rsplit_once(':').unwrap_or((at, "0"));
        (f.to_owned(), l.parse::<usize>().unwrap_or(0))
    };
    out.untranslated.sort_by_key(|(at, _, _)| order(at));
    out.builtin.sort_by_key(|(at, _, _)| order(at));
    out.header.push(format!(
        "# Imported from {} by `rampart import nginx`.",
        path.display()
    ));
    let mut t = String::new();
    for h in &out.header {
        let _ = writeln!(t, "{h}");
    }
    t.push_str("\n[server]\n");
    for v in out.server.values() {
        let _ = writeln!(t, "{v}");
    }
    if !out.hosts.is_empty() {
        let hosts: Vec<String> = out.hosts.iter().map(|h| q(h)).collect();
        let _ = writeln!(t, "allowed_hosts = [{}]", hosts.join(", "));
    }
    if !out.tls.is_empty() {
        t.push_str("\n[tls]\n");
        for v in &out.tls {
            let _ = writeln!(t, "{v}");
        }
    }
    if !out.headers.is_empty() || !out.set_headers.is_empty() {
        t.push_str("\n[headers]\n");
        for (_, at, line) in &out.headers {
            let _ = writeln!(t, "# {at}\n{line}");
        }
        if !out.set_headers.is_empty() {
            let set: Vec<String> = out
                .set_headers
                .iter()
                .map(|(k, v)| format!("{} = {}", q(k), q(v)))
                .collect();
            let _ = writeln!(t, "set = {{ {} }}", set.join(", "));
        }
    }
    for u in &out.upstreams {
        let _ = write!(t, "\n{u}");
    }
    for l in &out.limits {
        let _ = write!(t, "\n{l}");
    }
    // More specific routes first reads best; rampart picks the longest prefix anyway.
    for r in &out.routes {
        let _ = write!(t, "\n{r}");
    }
    if !out.builtin.is_empty() {
        t.push_str("\n# Done by rampart itself:\n");
        for (at, d, why) in &out.builtin {
            let _ = writeln!(t, "#   {at}: {d} ({why})");
        }
    }
    if !out.untranslated.is_empty() {
        t.push_str("\n# NOT TRANSLATED:\n");
        for (at, d, why) in &out.untranslated {
            let _ = writeln!(t, "#   {at}: {d} ({why})");
        }
    }
    Ok(Imported {
        toml: t,
        untranslated: out.untranslated,
        builtin: out.builtin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "7 location ~ \\.php$",
                "8 mirror /m",
                "9 include nothing-here/*.conf",
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
