//! Content-Security-Policy analysis with the MDN HTTP Observatory rules (check catalog A1,
//! `csp.js` of mdn-http-observatory v1.6.3), plus rampart's stricter items (catalog
//! VF-CSP-01 "beat": `frame-ancestors`, `base-uri`, `form-action`, `object-src 'none'`).

use std::collections::BTreeMap;

/// Sources Observatory calls broad.
const BROAD: &[&str] = &[
    "ftp:",
    "http:",
    "https:",
    "*",
    "http://*",
    "http://*.*",
    "https://*",
    "https://*.*",
];
/// Directives that load passive content (images, media): `http:` there costs less.
const PASSIVE: &[&str] = &["img-src", "media-src"];

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Observatory result id, or `rampart-…` for the stricter items.
    pub id: &'static str,
    /// Observatory's score modifier for this result (0 for rampart's own items).
    pub modifier: i32,
    /// What is wrong, naming the directive.
    pub message: String,
}

/// The analysis of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The Observatory result (`csp-implemented-with-no-unsafe`, …).
    pub result: &'static str,
    /// Its score modifier.
    pub modifier: i32,
    /// Every problem found (the result is the worst of them by Observatory's order).
    pub issues: Vec<Issue>,
}

/// Directive name → its sources.
pub type Directives = BTreeMap<String, Vec<String>>;

/// Parses a policy into directive → sources (first occurrence wins, as browsers do);
/// `None` when it has no directive at all. Also returns the directives given twice.
pub fn parse(policy: &str) -> Option<(Directives, Vec<String>)> {
    let mut map = BTreeMap::new();
    let mut dups = Vec::new();
    for part in policy.split(';') {
        let mut words = part.split_ascii_whitespace();
        let Some(name) = words.next() else { continue };
        let name = name.to_ascii_lowercase();
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        let sources: Vec<String> = words
            .map(|w| {
                if w.starts_with('\'') {
                    w.to_ascii_lowercase()
                } else {
                    w.to_owned()
                }
            })
            .collect();
        match map.entry(name) {
            std::collections::btree_map::Entry::Occupied(e) => dups.push(e.key().clone()),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(sources);
            }
        }
    }
    (!map.is_empty()).then_some((map, dups))
}

/// Analyses `policy` (an enforcing `Content-Security-Policy`) for an HTTPS site.
/// `None` (no enforcing policy) is Observatory's `csp-not-implemented`.
pub fn analyse(policy: Option<&str>) -> Analysis {
    let Some(policy) = policy else {
        return single(
            "csp-not-implemented",
            -25,
            "no enforcing Content-Security-Policy (Report-Only alone does not count)".into(),
        );
    };
    let Some((d, dups)) = parse(policy) else {
        return single(
            "csp-header-invalid",
            -25,
            "the policy does not parse".into(),
        );
    };
    let get = |name: &str| d.get(name).map(Vec::as_slice);
    let default_src = get("default-src");
    let fallback = |name: &str| get(name).or(default_src);
    let star = ["*".to_owned()];
    let mut script: Vec<String> = fallback("script-src").unwrap_or(&star).to_vec();
    let has_nonce_or_hash = script.iter().any(|s| {
        s.starts_with("'nonce-")
            || s.starts_with("'sha256-")
            || s.starts_with("'sha384-")
            || s.starts_with("'sha512-")
    });
    let strict_dynamic = script.iter().any(|s| s == "'strict-dynamic'");
    let mut issues = Vec::new();
    let mut add = |id, modifier, message: String| {
        issues.push(Issue {
            id,
            modifier,
            message,
        });
    };
    if strict_dynamic && !has_nonce_or_hash {
        add(
            "csp-header-invalid",
            -25,
            "'strict-dynamic' without a nonce or hash blocks every script".into(),
        );
    }
    if has_nonce_or_hash {
        script.retain(|s| s != "'unsafe-inline'");
        if strict_dynamic {
            script.retain(|s| !(s == "'self'" || is_scheme(s)));
        }
    }
    let broad = |s: &String| BROAD.contains(&s.as_str());
    if let Some(bad) = script
        .iter()
        .find(|s| *s == "'unsafe-inline'" || *s == "data:" || broad(s))
    {
        add(
            "csp-implemented-with-unsafe-inline",
            -20,
            format!("script-src allows {bad}: any injected script runs"),
        );
    }
    let object = fallback("object-src").unwrap_or(&star);
    let object_broad = object.iter().find(|s| broad(s)).cloned();
    if let Some(bad) = &object_broad {
        add(
            "csp-implemented-with-unsafe-inline",
            -20,
            format!("object-src allows {bad}: plugins can run script"),
        );
    }
    let mut active_http = None;
    let mut passive_http = None;
    for (name, sources) in &d {
        if name.starts_with("report-") || name == "upgrade-insecure-requests" {
            continue;
        }
        if let Some(s) = sources
            .iter()
            .find(|s| s.starts_with("http:") || s.starts_with("ftp:"))
        {
            if PASSIVE.contains(&name.as_str()) {
                passive_http.get_or_insert((name.clone(), s.clone()));
            } else if name == "default-src" {
                // default-src covers both; Observatory counts it as active when a script
                // or object directive falls back to it.
                if get("script-src").is_none() || get("object-src").is_none() {
                    active_http.get_or_insert((name.clone(), s.clone()));
                } else {
                    passive_http.get_or_insert((name.clone(), s.clone()));
                }
            } else {
                active_http.get_or_insert((name.clone(), s.clone()));
            }
        }
    }
    if let Some((n, s)) = active_http {
        add(
            "csp-implemented-with-insecure-scheme",
            -20,
            format!("{n} allows {s}: active content over plain HTTP"),
        );
    }
    let style = fallback("style-src").unwrap_or(&star);
    if script
        .iter()
        .chain(style.iter())
        .any(|s| s == "'unsafe-eval'")
    {
        add(
            "csp-implemented-with-unsafe-eval",
            -10,
            "'unsafe-eval' lets strings run as code".into(),
        );
    }
    if let Some((n, s)) = passive_http {
        add(
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
            -10,
            format!("{n} allows {s}: images or media over plain HTTP"),
        );
    }
    // rampart's stricter items (no Observatory modifier).
    let fa = get("frame-ancestors");
    match fa {
        None => add(
            "rampart-csp-no-frame-ancestors",
            0,
            "no frame-ancestors: framing is not restricted by the policy".into(),
        ),
        Some(s) if s.iter().any(broad) => add(
            "rampart-csp-broad-frame-ancestors",
            0,
            "frame-ancestors is broad".into(),
        ),
        _ => {}
    }
    match get("base-uri") {
        None => add(
            "rampart-csp-no-base-uri",
            0,
            "no base-uri: an injected <base> can redirect relative scripts".into(),
        ),
        Some(s) if s.iter().any(broad) => {
            add("rampart-csp-broad-base-uri", 0, "base-uri is broad".into())
        }
        _ => {}
    }
    match get("form-action") {
        Some(s) if s.iter().any(broad) => add(
            "rampart-csp-broad-form-action",
            0,
            "form-action is broad".into(),
        ),
        None => add(
            "rampart-csp-no-form-action",
            0,
            "no form-action: forms may post anywhere (it does not fall back to default-src)".into(),
        ),
        _ => {}
    }
    if object != ["'none'"] && object_broad.is_none() {
        add(
            "rampart-csp-object-src-not-none",
            0,
            "object-src is not 'none'".into(),
        );
    }
    for dup in dups {
        add(
            "csp-implemented-but-duplicate-directives",
            0,
            format!("{dup} is given twice; browsers use the first"),
        );
    }
    // Observatory reports one result: the first failing one in this order.
    const ORDER: &[&str] = &[
        "csp-header-invalid",
        "csp-implemented-with-unsafe-inline",
        "csp-implemented-with-insecure-scheme",
        "csp-implemented-with-unsafe-eval",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    ];
    let worst = ORDER
        .iter()
        .find_map(|id| issues.iter().find(|i| i.id == *id));
    let (result, modifier) = match worst {
        Some(i) => (i.id, i.modifier),
        None if style
            .iter()
            .any(|s| s == "'unsafe-inline'" || s == "data:" || broad(s)) =>
        {
            ("csp-implemented-with-unsafe-inline-in-style-src-only", 0)
        }
        None if default_src == Some(&["'none'".to_owned()][..]) => {
            ("csp-implemented-with-no-unsafe-default-src-none", 10)
        }
        None => ("csp-implemented-with-no-unsafe", 5),
    };
    Analysis {
        result,
        modifier,
        issues,
    }
}

fn is_scheme(s: &str) -> bool {
    s.ends_with(':') && !s.starts_with('\'')
}

fn single(id: &'static str, modifier: i32, message: String) -> Analysis {
    Analysis {
        result: id,
        modifier,
        issues: vec![Issue {
            id,
            modifier,
            message,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observatory_results() {
        let r = |p: Option<&str>| analyse(p).result;
        assert_eq!(r(None), "csp-not-implemented");
        assert_eq!(
            r(Some(
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            )),
            "csp-implemented-with-no-unsafe-default-src-none"
        );
        assert_eq!(
            r(Some(rampart_config::DEFAULT_CSP)),
            "csp-implemented-with-no-unsafe"
        );
        assert_eq!(
            r(Some(
                "default-src 'self'; script-src 'self' 'unsafe-inline'"
            )),
            "csp-implemented-with-unsafe-inline"
        );
        assert_eq!(
            r(Some(
                "default-src 'self'; script-src 'nonce-abc' 'unsafe-inline' 'strict-dynamic'"
            )),
            "csp-implemented-with-no-unsafe"
        );
        assert_eq!(
            r(Some("default-src 'self'; script-src 'strict-dynamic'")),
            "csp-header-invalid"
        );
        assert_eq!(
            r(Some("default-src 'self'; script-src 'self' 'unsafe-eval'")),
            "csp-implemented-with-unsafe-eval"
        );
        assert_eq!(
            r(Some("default-src 'self'; img-src http:")),
            "csp-implemented-with-insecure-scheme-in-passive-content-only"
        );
        assert_eq!(
            r(Some("default-src 'self'; script-src http://cdn.example")),
            "csp-implemented-with-insecure-scheme"
        );
        assert_eq!(
            r(Some("default-src 'self'; style-src 'self' 'unsafe-inline'")),
            "csp-implemented-with-unsafe-inline-in-style-src-only"
        );
        assert_eq!(
            r(Some("img-src 'self'")),
            "csp-implemented-with-unsafe-inline"
        );
    }

    #[test]
    fn stricter_items() {
        let ids: Vec<&str> = analyse(Some("default-src 'self'"))
            .issues
            .iter()
            .map(|i| i.id)
            .collect();
        assert!(ids.contains(&"rampart-csp-no-frame-ancestors"));
        assert!(ids.contains(&"rampart-csp-no-base-uri"));
        assert!(ids.contains(&"rampart-csp-no-form-action"));
        assert!(ids.contains(&"rampart-csp-object-src-not-none"));
    }
}
