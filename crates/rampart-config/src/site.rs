//! What a route serves to browsers: static-file options (caching rules, dotfiles, symlinks),
//! compression, CSP nonces and the CSP report endpoint. Raw forms live in [`crate::raw`];
//! this module validates them and builds the runtime values.

use std::path::PathBuf;

use http::HeaderValue;

use crate::raw::{RawCacheRule, RawCspReport};

/// A file-name glob: `*` (any run of characters except `/`), `**` (any run, `/` included),
/// `?` (one character except `/`), `{a,b}` (alternatives) and `[abc]`/`[a-z]` (a class).
/// A pattern without `/` matches the last path segment; one with `/` matches the whole path
/// relative to the route (a leading `/` is ignored).
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<Tok>,
    whole_path: bool,
    source: String,
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    Any,
    AnyDeep,
    One,
    Class(Vec<(char, char)>, bool),
    Alt(Vec<Vec<Tok>>),
}

impl Glob {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// An unbalanced `[` or `{`, or an empty pattern.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let p = pattern.trim_start_matches('/');
        if p.is_empty() {
            return Err("empty pattern".into());
        }
        let chars: Vec<char> = p.chars().collect();
        let (tokens, rest) = parse_tokens(&chars, false)?;
        if !rest.is_empty() {
            return Err(format!("unexpected {:?}", rest[0]));
        }
        Ok(Self {
            tokens,
            whole_path: p.contains('/') || p.contains("**"),
            source: pattern.to_owned(),
        })
    }

    /// Whether `path` (relative to the route, with or without a leading `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        let s: Vec<char> = subject.chars().collect();
        match_here(&self.tokens, &s)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Parses until the end, or (inside `{…}`) until `,` or `}`.
fn parse_tokens(c: &[char], in_alt: bool) -> Result<(Vec<Tok>, &[char]), String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            ',' | '}' if in_alt => return Ok((out, &c[i..])),
            '*' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                if c.get(i) == Some(&'/') {
                    // `**/` also matches no directory at all.
                    i += 1;
                    out.push(Tok::Alt(vec![vec![], vec![Tok::AnyDeep, Tok::Lit('/')]]));
                } else {
                    out.push(Tok::AnyDeep);
                }
            }
            '*' => {
                out.push(Tok::Any);
                i += 1;
            }
            '?' => {
                out.push(Tok::One);
                i += 1;
            }
            '[' => {
                let end = c[i + 1..]
                    .iter()
                    .position(|&x| x == ']')
                    .ok_or("unclosed '['")?
                    + i
                    + 1;
                let mut body = &c[i + 1..end];
                let negate = matches!(body.first(), Some('!' | '^'));
                if negate {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    if body.get(j + 1) == Some(&'-') && j + 2 < body.len() {
                        ranges.push((body[j], body[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((body[j], body[j]));
                        j += 1;
                    }
                }
                if ranges.is_empty() {
                    return Err("empty '[]'".into());
                }
                out.push(Tok::Class(ranges, negate));
                i = end + 1;
            }
            '{' => {
                let mut alts = Vec::new();
                let mut rest = &c[i + 1..];
                loop {
                    let (t, r) = parse_tokens(rest, true)?;
                    alts.push(t);
                    match r.first() {
                        Some(',') => rest = &r[1..],
                        Some('}') => {
                            rest = &r[1..];
                            break;
                        }
                        _ => return Err("unclosed '{'".into()),
                    }
                }
                out.push(Tok::Alt(alts));
                i = c.len() - rest.len();
            }
            ch => {
                out.push(Tok::Lit(ch));
                i += 1;
            }
        }
    }
    if in_alt {
        return Err("unclosed '{'".into());
    }
    Ok((out, &c[c.len()..]))
}

fn match_here(t: &[Tok], s: &[char]) -> bool {
    let Some(first) = t.first() else {
        return s.is_empty();
    };
    let rest = &t[1..];
    match first {
        Tok::Lit(ch) => s.first() == Some(ch) && match_here(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|c| *c != '/') && match_here(rest, &s[1..]),
        Tok::Class(ranges, negate) => {
            s.first().is_some_and(|c| {
                *c != '/' && (ranges.iter().any(|(a, b)| (*a..=*b).contains(c)) != *negate)
            }) && match_here(rest, &s[1..])
        }
        Tok::Any => {
            for k in 0..=s.len() {
                if match_here(rest, &s[k..]) {
                    return true;
                }
                if s.get(k) == Some(&'/') {
                    return false;
                }
            }
            false
        }
        Tok::AnyDeep => (0..=s.len()).any(|k| match_here(rest, &s[k..])),
        Tok::Alt(alts) => alts.iter().any(|a| {
            let mut joined = a.clone();
            joined.extend_from_slice(rest);
            match_here(&joined, s)
        }),
    }
}

/// The `Referrer-Policy` values browsers know.
pub const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

/// Default `Cache-Control` for content-hashed assets.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Default `Cache-Control` for HTML and files that are neither hashed nor matched by a rule.
pub const REVALIDATE: &str = "no-cache";

/// Options of a static route.
#[derive(Debug, Clone)]
pub struct StaticSite {
    /// Root directory (canonical).
    pub dir: PathBuf,
    /// Index file name.
    pub index: String,
    /// File for unmatched navigation requests.
    pub spa_fallback: Option<String>,
    /// `cache` rules in order; the first match wins.
    pub cache: Vec<(Glob, HeaderValue)>,
    /// `Cache-Control` of HTML files no rule matched.
    pub html_cache: HeaderValue,
    /// `Cache-Control` of content-hashed files no rule matched.
    pub hashed_cache: HeaderValue,
    /// `Cache-Control` of other files no rule matched.
    pub other_cache: HeaderValue,
    /// Serve files whose path has a segment starting with `.` (`/.well-known/` always is).
    pub dotfiles: bool,
    /// Follow symlinks that lead out of the root.
    pub follow_symlinks: bool,
    /// A file kept in memory is served this long before its path is `stat`ed again.
    pub revalidate_after: std::time::Duration,
}

impl StaticSite {
    /// `Cache-Control` for `rel` (path relative to the route) whose content type is `html`.
    pub fn cache_control(&self, rel: &str, html: bool) -> &HeaderValue {
        if let Some((_, v)) = self.cache.iter().find(|(g, _)| g.matches(rel)) {
            return v;
        }
        if html {
            &self.html_cache
        } else if is_hashed(rel) {
            &self.hashed_cache
        } else {
            &self.other_cache
        }
    }
}

/// A content-hashed build output: a file name with a hash part (`main.3f2a1b9c.js`,
/// `index-BnNmW0n4.css`, `app.abc123def456.chunk.js`): 8–64 characters of hex, or of
/// `[A-Za-z0-9_]` with at least one digit and one letter. The directory does not count:
/// an unhashed `assets/app.js` is replaced in place by a deploy, so a year of `immutable`
/// would keep browsers on the old one.
pub fn is_hashed(rel: &str) -> bool {
    let rel = rel.trim_start_matches('/');
    let name = rel.rsplit('/').next().unwrap_or(rel);
    // Only the parts between the first and the last dot: the stem's tail after `-` or `.`.
    let Some((stem, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    stem.split(['.', '-'])
        .skip(1)
        .chain(stem.rsplit_once('-').map(|(_, h)| h))
        .any(|part| {
            let n = part.len();
            if !(8..=64).contains(&n) {
                return false;
            }
            let hex = part.bytes().all(|b| b.is_ascii_hexdigit());
            let word = part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let digit = part.bytes().any(|b| b.is_ascii_digit());
            let alpha = part.bytes().any(|b| b.is_ascii_alphabetic());
            hex || (word && digit && alpha)
        })
}

/// Builds the cache rules of a route, naming bad entries.
pub fn cache_rules(
    rules: &[RawCacheRule],
    key: &str,
    sink: &mut dyn FnMut(String, String),
) -> Vec<(Glob, HeaderValue)> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let glob = match Glob::new(&r.glob) {
            Ok(g) => g,
            Err(e) => {
                sink(
                    format!("{key}.cache[{i}].glob"),
                    format!("bad pattern {:?}: {e}", r.glob),
                );
                continue;
            }
        };
        match header_value(&r.control) {
            Some(v) => out.push((glob, v)),
            None => sink(
                format!("{key}.cache[{i}].control"),
                format!("{:?} is not a valid Cache-Control value", r.control),
            ),
        }
    }
    out
}

/// A non-empty, valid header value.
pub fn header_value(s: &str) -> Option<HeaderValue> {
    if s.trim().is_empty() {
        return None;
    }
    HeaderValue::from_str(s).ok()
}

/// Compression of a route's responses.
#[derive(Debug, Clone, Copy)]
pub struct Compress {
    /// Bodies smaller than this (when their length is known) are sent as they are.
    pub min_size: u64,
}

/// Default smallest body worth compressing.
pub const DEFAULT_COMPRESS_MIN: u64 = crate::defaults::route::COMPRESS_MIN_SIZE;

/// The built-in CSP violation report endpoint.
#[derive(Debug, Clone)]
pub struct CspReport {
    /// Its path, answered on every host.
    pub path: String,
    /// Largest report body.
    pub max_body: u64,
    /// Reports per client IP.
    pub limit: crate::policy::Limit,
    /// Also advertise the endpoint to the Reporting API.
    pub report_to: bool,
}

/// Reporting API endpoint name used in `report-to` and `Reporting-Endpoints`.
pub const REPORT_GROUP: &str = "csp-endpoint";

/// Builds `[csp_report]`: on unless `enabled = false`.
pub fn csp_report(
    r: Option<&RawCspReport>,
    sink: &mut dyn FnMut(String, String),
) -> Option<CspReport> {
    let default = RawCspReport::default();
    let r = r.unwrap_or(&default);
    if r.enabled == Some(false) {
        return None;
    }
    let path = r
        .path
        .clone()
        .unwrap_or_else(|| crate::defaults::auth::CSP_REPORT_PATH.into());
    if !path.starts_with('/') || path.contains(['?', '#', ' ', '"', ';', ',']) {
        sink(
            "csp_report.path".into(),
            format!(
                "{path:?} must be a path starting with '/', without '?', '#', quotes, ';' or ','"
            ),
        );
    }
    let rate = r
        .rate
        .as_deref()
        .unwrap_or(crate::defaults::auth::CSP_REPORT_RATE);
    let (count, per) = crate::policy::parse_rate(rate).unwrap_or_else(|e| {
        sink("csp_report.rate".into(), e);
        (10, std::time::Duration::from_secs(1))
    });
    Some(CspReport {
        path,
        max_body: r
            .max_body
            .map_or(crate::defaults::auth::CSP_REPORT_MAX_BODY, |s| s.0),
        limit: crate::policy::Limit {
            name: "csp_report".into(),
            count,
            per,
            burst: r.burst.unwrap_or(crate::defaults::auth::CSP_REPORT_BURST),
            key: crate::policy::LimitKey::Ip,
            methods: Vec::new(),
            nodelay: true,
            max_keys: 10_000,
            lockout: None,
            on_state_error: crate::state::OnStateError::Local,
            lease: 1,
        },
        report_to: r.report_to.unwrap_or(crate::defaults::auth::CSP_REPORT_TO),
    })
}

/// Adds `'nonce-{nonce}'` to `script-src` and `style-src` of a CSP. A missing directive is
/// created from `default-src` (so it restricts no more than before, plus the nonce); with
/// neither, the policy restricts no scripts and is left alone.
pub fn csp_with_nonce(csp: &str, nonce: &str) -> String {
    let directives: Vec<&str> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let find = |name: &str| {
        directives.iter().position(|d| {
            d.split_ascii_whitespace()
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let default_src = find("default-src").map(|i| {
        directives[i]
            .split_ascii_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    });
    let mut out: Vec<String> = directives.iter().map(|d| (*d).to_owned()).collect();
    for name in ["script-src", "style-src"] {
        match find(name) {
            Some(i) => {
                let d = &mut out[i];
                // 'none' cannot be combined with a source.
                let kept: Vec<&str> = d
                    .split_ascii_whitespace()
                    .filter(|s| !s.eq_ignore_ascii_case("'none'"))
                    .collect();
                *d = format!("{} 'nonce-{nonce}'", kept.join(" "));
            }
            None => {
                if let Some(def) = &default_src {
                    let def: Vec<&str> = def
                        .split_ascii_whitespace()
                        .filter(|s| !s.eq_ignore_ascii_case("'none'"))
                        .collect();
                    let sources = if def.is_empty() {
                        String::new()
                    } else {
                        format!("{} ", def.join(" "))
                    };
                    out.push(format!("{name} {sources}'nonce-{nonce}'"));
                }
            }
        }
    }
    out.join("; ")
}

/// Appends `report-uri` (and `report-to` with `report_to`) to a CSP that has neither.
pub fn csp_with_reporting(csp: &str, path: &str, report_to: bool) -> String {
    let lower = csp.to_ascii_lowercase();
    if lower.contains("report-uri") || lower.contains("report-to") {
        return csp.to_owned();
    }
    let base = csp.trim_end_matches([';', ' ']);
    if report_to {
        format!("{base}; report-uri {path}; report-to {REPORT_GROUP}")
    } else {
        format!("{base}; report-uri {path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(g("*.js").matches("/static/app.js"));
        assert!(!g("*.js").matches("/static/app.json"));
        assert!(g("*.{js,css}").matches("a/b.css"));
        assert!(g("/static/*.js").matches("static/app.js"));
        assert!(!g("/static/*.js").matches("static/x/app.js"));
        assert!(g("static/**/*.js").matches("static/x/y/app.js"));
        assert!(g("static/**/*.js").matches("static/app.js"));
        assert!(g("**/*.pdf").matches("a.pdf"));
        assert!(g("img-?.png").matches("img-1.png"));
        assert!(g("[a-c]*.txt").matches("b.txt"));
        assert!(!g("[!a-c]*.txt").matches("b.txt"));
        assert!(Glob::new("[abc").is_err());
        assert!(Glob::new("{a,b").is_err());
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn only_content_hashed_names_are_immutable_wherever_they_live() {
        for h in [
            "/assets/logo.5f8a2c11.svg",
            "assets/index-BnNmW0n4.js",
            "static/js/main.3f2a1b9c.js",
            "index-BnNmW0n4.css",
            "app.abc123def456.chunk.js",
            "fonts/inter.5f8a2c11.woff2",
        ] {
            assert!(is_hashed(h), "{h}");
        }
        for n in [
            "index.html",
            "app.js",
            "favicon.ico",
            "robots.txt",
            "my-favourite-picture.png",
            "report-final.pdf",
            "/assets/app.js",
            "assets/logo.svg",
            "static/assets/vendor.js",
        ] {
            assert!(!is_hashed(n), "{n}");
        }
    }

    #[test]
    fn nonce_added_to_script_and_style() {
        assert_eq!(
            csp_with_nonce("default-src 'self'; script-src 'self' https://cdn.example", "N"),
            "default-src 'self'; script-src 'self' https://cdn.example 'nonce-N'; style-src 'self' 'nonce-N'"
        );
        assert_eq!(
            csp_with_nonce("default-src 'none'", "N"),
            "default-src 'none'; script-src 'nonce-N'; style-src 'nonce-N'"
        );
        assert_eq!(
            csp_with_nonce("frame-ancestors 'none'", "N"),
            "frame-ancestors 'none'"
        );
        assert_eq!(
            csp_with_reporting("default-src 'self';", "/csp-report", true),
            "default-src 'self'; report-uri /csp-report; report-to csp-endpoint"
        );
        assert_eq!(
            csp_with_reporting("x; report-uri /r", "/csp-report", true),
            "x; report-uri /r"
        );
    }
}
