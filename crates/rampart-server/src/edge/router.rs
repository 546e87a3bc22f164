//! Routing: host first, then the longest path prefix, compiled once per config.
//!
//! Precedence follows nginx: the most specific host group wins (exact host, then the
//! longest wildcard suffix, then routes without a host), and within it the longest path
//! (an exact-match route before a prefix route of the same path). Prefixes match whole
//! segments: `/api` matches `/api` and `/api/x`, not `/apix`; a prefix ending in `/`
//! matches anything below it.
//!
//! Paths are matched after [`normalize_path`], and the normalised path is what the upstream
//! receives, so what was matched is what is served.

use std::borrow::Cow;

use rampart_config::runtime::{HostPattern, Route};

/// Tables of at most this many entries are scanned in order: for a few routes a scan is
/// cheaper than hashing the path's prefixes.
const SCAN_MAX: usize = 8;

type Map<V> = std::collections::HashMap<Box<str>, V, foldhash::fast::FixedState>;

/// The compiled route table: a path table per exact host (found by hash), per wildcard
/// suffix (found by hashing each of the host's dot-suffixes, longest first) and one for
/// routes without a host. The cost of a lookup does not grow with the number of routes.
#[derive(Debug)]
pub struct Router {
    exact_hosts: Map<Table>,
    /// Keyed by the suffix with its dot (`*.example.com` is `.example.com`).
    wildcards: Map<Table>,
    any: Table,
    /// Regex routes in config order (nginx checks `location ~` in the order written).
    regexes: Vec<RegexEntry>,
}

#[derive(Debug)]
struct Entry {
    route: usize,
    host_rank: (u8, usize),
    path: String,
    exact: bool,
    /// nginx's `^~`: regexes are not consulted when this prefix is the longest match.
    final_match: bool,
}

/// One host group's routes: the longest matching path wins, an exact route before a
/// prefix route of the same path, then the first in config order.
#[derive(Debug, Default)]
struct Table {
    /// In precedence order (longest path first, exact first, config order).
    entries: Vec<Entry>,
    /// Over [`SCAN_MAX`] entries: the first entry for each exact path and each prefix.
    index: Option<Index>,
}

#[derive(Debug)]
struct Index {
    exact: Map<usize>,
    prefixes: Map<usize>,
    /// `has_len[n]`: some prefix is `n` bytes long (only those lengths are looked up).
    has_len: Vec<bool>,
}

impl Table {
    fn seal(&mut self) {
        self.entries
            .sort_by_key(|e| (usize::MAX - e.path.len(), !e.exact, e.route));
        if self.entries.len() <= SCAN_MAX {
            return;
        }
        let mut index = Index {
            exact: Map::default(),
            prefixes: Map::default(),
            has_len: Vec::new(),
        };
        for (i, e) in self.entries.iter().enumerate() {
            let map = if e.exact {
                &mut index.exact
            } else {
                let n = e.path.len();
                if index.has_len.len() <= n {
                    index.has_len.resize(n + 1, false);
                }
                index.has_len[n] = true;
                &mut index.prefixes
            };
            map.entry(e.path.as_str().into()).or_insert(i);
        }
        self.index = Some(index);
    }

    fn find(&self, path: &str) -> Option<&Entry> {
        let Some(index) = &self.index else {
            return self
                .entries
                .iter()
                .find(|e| path_matches(&e.path, e.exact, path));
        };
        if let Some(&i) = index.exact.get(path) {
            return Some(&self.entries[i]);
        }
        // A prefix matches whole segments: it ends where the path does, before a `/`, or
        // with a `/` of its own. Those lengths only, longest first.
        let bytes = path.as_bytes();
        let longest = bytes.len().min(index.has_len.len().saturating_sub(1));
        (1..=longest).rev().find_map(|n| {
            let boundary = n == bytes.len() || bytes[n] == b'/' || bytes[n - 1] == b'/';
            if !boundary || !index.has_len[n] || !path.is_char_boundary(n) {
                return None;
            }
            let e = &self.entries[*index.prefixes.get(&path[..n])?];
            path_matches(&e.path, false, path).then_some(e)
        })
    }
}

#[derive(Debug)]
struct RegexEntry {
    route: usize,
    host: Option<HostPattern>,
    host_rank: (u8, usize),
    regex: regex_lite::Regex,
}

fn host_rank(host: Option<&HostPattern>) -> (u8, usize) {
    match host {
        Some(HostPattern::Exact(_)) => (0, 0),
        Some(HostPattern::Wildcard(s)) => (1, usize::MAX - s.len()),
        None => (2, 0),
    }
}

impl Router {
    /// Compiles `routes`.
    pub fn new(routes: &[Route]) -> Self {
        let mut router = Router {
            exact_hosts: Map::default(),
            wildcards: Map::default(),
            any: Table::default(),
            regexes: Vec::new(),
        };
        for (i, r) in routes.iter().enumerate() {
            let hosts: Vec<Option<HostPattern>> = if r.hosts.is_empty() {
                vec![None]
            } else {
                r.hosts.iter().cloned().map(Some).collect()
            };
            for host in hosts {
                let host_rank = host_rank(host.as_ref());
                if let Some(regex) = &r.path_regex {
                    router.regexes.push(RegexEntry {
                        route: i,
                        host,
                        host_rank,
                        regex: regex.clone(),
                    });
                    continue;
                }
                let table = match &host {
                    Some(HostPattern::Exact(h)) => {
                        router.exact_hosts.entry(h.as_str().into()).or_default()
                    }
                    Some(HostPattern::Wildcard(s)) => {
                        router.wildcards.entry(s.as_str().into()).or_default()
                    }
                    None => &mut router.any,
                };
                table.entries.push(Entry {
                    route: i,
                    host_rank,
                    path: r.path.clone(),
                    exact: r.exact,
                    final_match: r.prefix_priority,
                });
            }
        }
        router.exact_hosts.values_mut().for_each(Table::seal);
        router.wildcards.values_mut().for_each(Table::seal);
        router.any.seal();
        router
    }

    /// The prefix (or exact) route for `host` and `path`: the exact host's table, then
    /// the wildcards' from the longest suffix, then the routes without a host. A host
    /// group with no route for the path falls through to less specific groups (a known
    /// host still reaches a catch-all route).
    fn find_prefix(&self, host: &str, path: &str) -> Option<&Entry> {
        if !self.exact_hosts.is_empty() {
            if let Some(e) = self.exact_hosts.get(host).and_then(|t| t.find(path)) {
                return Some(e);
            }
        }
        if !self.wildcards.is_empty() {
            let dots = host.bytes().enumerate().skip(1).filter(|(_, b)| *b == b'.');
            for (i, _) in dots {
                if let Some(e) = self.wildcards.get(&host[i..]).and_then(|t| t.find(path)) {
                    return Some(e);
                }
            }
        }
        self.any.find(path)
    }

    /// The route for `host` (lowercase, no port) and a normalised `path`.
    ///
    /// The most specific host group's longest path wins (see [`Router::find_prefix`]).
    /// Then, as nginx does, regex routes are tried in config order unless the prefix
    /// match is exact or has `prefix_priority`; the first that matches wins, if its host
    /// group is at least as specific as the prefix match's. A config without regex routes
    /// never looks at them.
    pub fn find(&self, host: &str, path: &str) -> Option<usize> {
        let prefix = self.find_prefix(host, path);
        if self.regexes.is_empty() {
            return prefix.map(|e| e.route);
        }
        let rank = match prefix {
            Some(e) if e.exact || e.final_match => return Some(e.route),
            Some(e) => e.host_rank,
            None => (u8::MAX, 0),
        };
        self.regexes
            .iter()
            .find(|r| {
                r.host_rank <= rank
                    && r.host.as_ref().is_none_or(|h| h.matches(host))
                    && r.regex.is_match(path)
            })
            .map(|r| r.route)
            .or(prefix.map(|e| e.route))
    }
}

fn path_matches(prefix: &str, exact: bool, path: &str) -> bool {
    if exact {
        return path == prefix;
    }
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// The path with the route prefix removed, for `strip_prefix` routes and static roots.
pub fn strip<'a>(prefix: &str, path: &'a str) -> &'a str {
    let p = prefix.trim_end_matches('/');
    let rest = path.get(p.len()..).unwrap_or("");
    if rest.is_empty() {
        "/"
    } else {
        rest
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPath;

/// Normalises a request path as nginx does before matching: percent-encoded unreserved
/// characters are decoded, `.` and `..` segments are resolved, and repeated slashes are
/// merged. Other escapes are kept (with upper-case hex). A path that climbs above the root,
/// holds an encoded `/` or NUL, or does not start with `/` is refused.
///
/// # Errors
/// [`BadPath`] for a path that cannot be served.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath);
    }
    let needs_work = raw.contains('%') || raw.contains("//") || raw.contains("/.");
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    // 1. decode unreserved escapes.
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BadPath)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).map_err(|_| BadPath)?, 16)
                .map_err(|_| BadPath)?;
            if v == 0 || v == b'/' || v == b'\\' {
                return Err(BadPath);
            }
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                decoded.push(v as char);
            } else {
                decoded.push('%');
                decoded.push_str(
                    &std::str::from_utf8(hex)
                        .map_err(|_| BadPath)?
                        .to_ascii_uppercase(),
                );
            }
            i += 3;
        } else {
            decoded.push(bytes[i] as char);
            i += 1;
        }
    }
    // 2. resolve dot segments and merge slashes.
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(BadPath);
                }
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing || s.is_empty() {
        s.push('/');
    }
    Ok(Cow::Owned(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::runtime::{Action, HeaderPolicy};

    fn route(host: Option<&str>, path: &str, exact: bool) -> Route {
        Route {
            name: format!("{host:?}{path}"),
            hosts: host
                .map(|h| match h.strip_prefix("*") {
                    Some(s) => HostPattern::Wildcard(s.into()),
                    None => HostPattern::Exact(h.into()),
                })
                .into_iter()
                .collect(),
            path: path.into(),
            exact,
            path_regex: None,
            prefix_priority: false,
            client_cert: Default::default(),
            client_ca: 0,
            strip_prefix: false,
            request_headers: Vec::new(),
            action: Action::Respond {
                status: 200,
                body: String::new(),
                content_type: http::HeaderValue::from_static("text/plain"),
            },
            headers: HeaderPolicy::default(),
            policy: Default::default(),
            compress: None,
            csp_nonce: None,
            requires_feature: None,
        }
    }

    /// The router before it was indexed: every entry in precedence order, first match.
    fn scan(routes: &[Route], host: &str, path: &str) -> Option<usize> {
        let mut all: Vec<(usize, Option<&HostPattern>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            if r.hosts.is_empty() {
                all.push((i, None));
            }
            all.extend(r.hosts.iter().map(|h| (i, Some(h))));
        }
        all.sort_by_key(|(i, h)| {
            let r = &routes[*i];
            (host_rank(*h), usize::MAX - r.path.len(), !r.exact, *i)
        });
        all.iter()
            .find(|(i, h)| {
                h.is_none_or(|h| h.matches(host))
                    && path_matches(&routes[*i].path, routes[*i].exact, path)
            })
            .map(|(i, _)| *i)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// The indexed tables choose what a scan of every route in precedence order
        /// chooses, for small tables (scanned) and large ones (hashed) alike.
        #[test]
        fn the_index_chooses_what_a_scan_chooses(
            spec in proptest::collection::vec(
                (0usize..6, 0usize..9, proptest::bool::ANY), 0..40),
            queries in proptest::collection::vec((0usize..6, 0usize..10), 1..30),
        ) {
            const HOSTS: [Option<&str>; 6] =
                [None, Some("a.com"), Some("b.a.com"), Some("*.a.com"), Some("*.b.a.com"), Some("*.com")];
            const PATHS: [&str; 9] = ["/", "/a", "/a/", "/a/b", "/ab", "/a/b/", "/b", "/a/bc", "/a/b/c"];
            let routes: Vec<Route> =
                spec.iter().map(|&(h, p, e)| route(HOSTS[h], PATHS[p], e)).collect();
            let r = Router::new(&routes);
            const ASKED: [&str; 6] = ["a.com", "b.a.com", "x.b.a.com", "q.a.com", "c.com", "com"];
            const ASKED_PATHS: [&str; 10] =
                ["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/abc", "/a/bc/d", "/b/a", "/c"];
            for (h, p) in queries {
                let (host, path) = (ASKED[h], ASKED_PATHS[p]);
                proptest::prop_assert_eq!(r.find(host, path), scan(&routes, host, path), "{} {}", host, path);
            }
        }
    }

    #[test]
    fn longest_prefix_wins_within_host_group() {
        let routes = vec![
            route(None, "/", false),
            route(None, "/api/", false),
            route(None, "/api/auth/login", true),
            route(Some("example.com"), "/", false),
            route(Some("*.example.com"), "/", false),
            route(Some("*.eu.example.com"), "/", false),
            route(None, "/docs", false),
        ];
        let r = Router::new(&routes);
        assert_eq!(r.find("other.org", "/"), Some(0));
        assert_eq!(r.find("other.org", "/api/users"), Some(1));
        assert_eq!(r.find("other.org", "/api/auth/login"), Some(2));
        assert_eq!(r.find("other.org", "/api/auth/login/x"), Some(1));
        assert_eq!(r.find("example.com", "/api/users"), Some(3));
        assert_eq!(r.find("a.example.com", "/"), Some(4));
        assert_eq!(r.find("a.eu.example.com", "/"), Some(5));
        assert_eq!(r.find("other.org", "/docs"), Some(6));
        assert_eq!(r.find("other.org", "/docs/x"), Some(6));
        assert_eq!(r.find("other.org", "/docsx"), Some(0));
    }

    fn regex(host: Option<&str>, re: &str) -> Route {
        Route {
            path: String::new(),
            path_regex: Some(regex_lite::Regex::new(re).unwrap()),
            ..route(host, "", false)
        }
    }

    /// nginx's order: the longest prefix is found, then regexes in config order; the first
    /// regex that matches wins unless the prefix is exact or `^~` (`prefix_priority`).
    #[test]
    fn regex_routes_follow_nginx_order() {
        let mut assets = route(None, "/assets/", false);
        assets.prefix_priority = true;
        let routes = vec![
            route(None, "/", false),
            regex(None, r"(?i)\.(png|css)$"),
            regex(None, r"\.css$"),
            route(None, "/health", true),
            assets,
            regex(Some("admin.test"), r"^/secret"),
            route(Some("app.test"), "/", false),
        ];
        let r = Router::new(&routes);
        assert_eq!(r.find("x.test", "/img/a.PNG"), Some(1));
        assert_eq!(r.find("x.test", "/a.css"), Some(1), "first regex in order");
        assert_eq!(r.find("x.test", "/a.js"), Some(0), "no regex: the prefix");
        assert_eq!(r.find("x.test", "/health"), Some(3), "exact beats regex");
        assert_eq!(r.find("x.test", "/assets/a.css"), Some(4), "^~ beats regex");
        assert_eq!(r.find("x.test", "/secret"), Some(0), "another host's regex");
        assert_eq!(r.find("admin.test", "/secret"), Some(5));
        // A host-less regex does not override a more specific host's prefix.
        assert_eq!(r.find("app.test", "/a.css"), Some(6));
        // Regex routes alone, no prefix at all.
        let only = vec![regex(None, r"^/api/v[0-9]+/")];
        let r = Router::new(&only);
        assert_eq!(r.find("x", "/api/v2/users"), Some(0));
        assert_eq!(r.find("x", "/api/vx/users"), None);
    }

    #[test]
    fn host_group_without_matching_path_falls_through() {
        let routes = vec![
            route(Some("example.com"), "/admin/", false),
            route(None, "/", false),
        ];
        let r = Router::new(&routes);
        assert_eq!(r.find("example.com", "/admin/x"), Some(0));
        assert_eq!(r.find("example.com", "/other"), Some(1));
        let only = vec![route(Some("example.com"), "/", false)];
        assert_eq!(Router::new(&only).find("other.org", "/"), None);
    }

    #[test]
    fn normalization_resolves_tricks() {
        let n = |p: &str| normalize_path(p).map(|c| c.into_owned());
        assert_eq!(n("/a/b").unwrap(), "/a/b");
        assert_eq!(n("/%61pi/x").unwrap(), "/api/x");
        assert_eq!(n("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(n("/a//b///").unwrap(), "/a/b/");
        assert_eq!(n("/a/%2e%2e/b").unwrap(), "/b");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert_eq!(n("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/.."), Err(BadPath));
        assert_eq!(n("/%2e%2e/etc/passwd"), Err(BadPath));
        assert_eq!(n("/a%2fb"), Err(BadPath));
        assert_eq!(n("/a%00"), Err(BadPath));
        assert_eq!(n("/a%zz"), Err(BadPath));
        assert_eq!(n("/a%5c..%5c"), Err(BadPath));
        assert_eq!(n("a"), Err(BadPath));
    }

    #[test]
    fn strip_prefix_keeps_a_rooted_path() {
        assert_eq!(strip("/api/", "/api/users"), "/users");
        assert_eq!(strip("/api", "/api"), "/");
        assert_eq!(strip("/api", "/api/x"), "/x");
        assert_eq!(strip("/", "/x"), "/x");
    }
}
