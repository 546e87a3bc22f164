//! The MDN HTTP Observatory score (check catalog A1: mdn-http-observatory v1.6.3, algorithm
//! version 6): twelve tests, each one result with a modifier, summed from 100; bonuses
//! count only when the score without them is at least 90.

use crate::csp;

/// What Observatory looks at, as verify saw it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The site answered over HTTPS.
    pub https: bool,
    /// Its certificate chain verified.
    pub cert_valid: bool,
    /// Headers of the HTTPS answer to `GET /` (names lower-case, duplicates kept).
    pub headers: Vec<(String, String)>,
    /// The body, when it is HTML.
    pub html: Option<String>,
    /// The host scanned (same-origin scripts).
    pub host: String,
    /// What `http://host/` did.
    pub redirect: Redirect,
    /// `Access-Control-Allow-Origin` and `-Credentials` of the preflight with a foreign
    /// origin, when the site answered it.
    pub cors_preflight: Option<(Option<String>, Option<String>)>,
    /// The foreign origin sent.
    pub cors_origin: String,
}

/// The HTTP → HTTPS redirection, as Observatory classifies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Redirect {
    /// First hop to `https://` on the same host, ending on HTTPS.
    #[default]
    ToHttps,
    /// Port 80 does not answer.
    NoHttp,
    /// The first hop goes to HTTPS on another host.
    OffHost,
    /// The first hop stays on HTTP, a later one reaches HTTPS.
    NotToHttpsFirst,
    /// No redirect, or it never reaches HTTPS.
    Missing,
    /// The HTTPS end has a certificate that does not verify.
    InvalidCert,
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Test name (`content-security-policy`).
    pub test: &'static str,
    /// Result id (`csp-implemented-with-no-unsafe`).
    pub result: &'static str,
    /// Score modifier.
    pub modifier: i32,
}

/// The score and grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    /// Final score (may exceed 100).
    pub score: i32,
    /// Letter grade.
    pub grade: &'static str,
    /// Per test.
    pub tests: Vec<TestResult>,
}

/// Observatory's grade for a score.
pub fn grade(score: i32) -> &'static str {
    match (score.max(0) / 5 * 5).min(100) {
        100 => "A+",
        90 | 95 => "A",
        85 => "A-",
        80 => "B+",
        70 | 75 => "B",
        65 => "B-",
        60 => "C+",
        50 | 55 => "C",
        45 => "C-",
        40 => "D+",
        30 | 35 => "D",
        25 => "D-",
        _ => "F",
    }
}

/// Scores `o`.
pub fn score(o: &Observed) -> Score {
    let mut tests = Vec::new();
    let mut t = |test, (result, modifier)| {
        tests.push(TestResult {
            test,
            result,
            modifier,
        })
    };
    let csp = enforcing_csp(o);
    let hsts = hsts(o);
    // Observatory's HSTS test "passes" with six months or more.
    let hsts_pass = hsts.0 == "hsts-implemented-max-age-at-least-six-months";
    let csp_a = csp::analyse(csp.as_deref());
    t("content-security-policy", (csp_a.result, csp_a.modifier));
    t("cookies", cookies(o, hsts_pass));
    t("cross-origin-resource-sharing", cors(o));
    t("redirection", redirection(o));
    t("referrer-policy", referrer(o));
    t("strict-transport-security", hsts);
    t("subresource-integrity", sri(o));
    t("x-content-type-options", xcto(o));
    t("x-frame-options", xfo(o));
    t("cross-origin-resource-policy", corp(o));
    t("cross-origin-opener-policy", coop(o));
    t("cross-origin-embedder-policy", coep(o));
    let uncurved = 100 + tests.iter().map(|r| r.modifier.min(0)).sum::<i32>();
    let all = 100 + tests.iter().map(|r| r.modifier).sum::<i32>();
    let score = if uncurved >= 90 { all } else { uncurved }.max(0);
    Score {
        score,
        grade: grade(score),
        tests,
    }
}

fn values<'a>(o: &'a Observed, name: &str) -> Vec<&'a str> {
    o.headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(o: &'a Observed, name: &str) -> Option<&'a str> {
    values(o, name).first().copied()
}

/// The enforcing CSP: the header (several are joined, as a browser enforces them all:
/// the first is scored, as Observatory parses the first), else a `<meta>` in the page.
fn enforcing_csp(o: &Observed) -> Option<String> {
    if let Some(v) = one(o, "content-security-policy") {
        return Some(v.to_owned());
    }
    let html = o.html.as_deref()?;
    meta_csp(html)
}

/// `<meta http-equiv="Content-Security-Policy" content="…">`.
fn meta_csp(html: &str) -> Option<String> {
    for tag in tags(html, "meta") {
        let eq = attr(tag, "http-equiv")?;
        if eq.eq_ignore_ascii_case("content-security-policy") {
            return attr(tag, "content");
        }
    }
    None
}

/// The `<name …>` tags of a page (their attribute text).
pub fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open) {
        let start = from + i + open.len();
        let next = lower.as_bytes().get(start).copied();
        if !matches!(next, Some(b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/')) {
            from = start;
            continue;
        }
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        out.push(&html[start..end]);
        from = end;
    }
    out
}

/// An attribute's value in a tag's text (quoted or bare).
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let vstart = tag.len() - rest.len() + 1;
        let v = tag[vstart..].trim_start();
        return Some(match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or("").to_owned(),
            _ => v
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }
    None
}

/// One parsed `Set-Cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Name.
    pub name: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite` value, if the attribute is there.
    pub same_site: Option<String>,
}

impl Cookie {
    /// Parses a `Set-Cookie` value.
    pub fn parse(v: &str) -> Option<Self> {
        let mut parts = v.split(';');
        let (name, _) = parts.next()?.split_once('=')?;
        let mut c = Self {
            name: name.trim().to_owned(),
            secure: false,
            http_only: false,
            same_site: None,
        };
        for p in parts {
            let (k, val) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "secure" => c.secure = true,
                "httponly" => c.http_only = true,
                "samesite" => c.same_site = Some(val.trim().to_owned()),
                _ => {}
            }
        }
        Some(c)
    }

    /// Observatory's session-cookie rule: the name contains `login` or `sess`.
    pub fn is_session(&self) -> bool {
        let n = self.name.to_ascii_lowercase();
        n.contains("login") || n.contains("sess")
    }

    /// `SameSite` is one of lax/strict/none, and `None` comes with `Secure`.
    pub fn same_site_valid(&self) -> bool {
        match self
            .same_site
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => true,
            Some("lax" | "strict") => true,
            Some("none") => self.secure,
            Some(_) => false,
        }
    }
}

fn cookies(o: &Observed, hsts_pass: bool) -> (&'static str, i32) {
    let cookies: Vec<Cookie> = values(o, "set-cookie")
        .into_iter()
        .filter_map(Cookie::parse)
        .collect();
    if cookies.is_empty() {
        return ("cookies-not-found", 0);
    }
    // The worst result any cookie earns.
    let mut worst = ("cookies-secure-with-httponly-sessions-and-samesite", 5);
    let mut take = |r: (&'static str, i32)| {
        if r.1 < worst.1 {
            worst = r;
        }
    };
    for c in &cookies {
        if c.same_site.is_some() && !c.same_site_valid() {
            take(("cookies-samesite-flag-invalid", -20));
        }
        if c.same_site.is_none() {
            if c.name.to_ascii_lowercase().contains("csrf") {
                take(("cookies-anticsrf-without-samesite-flag", -20));
            }
            take(("cookies-secure-with-httponly-sessions", 0));
        }
        if c.is_session() && !c.http_only {
            take(("cookies-session-without-httponly-flag", -30));
        }
        if !c.secure {
            take(match (c.is_session(), hsts_pass) {
                (true, true) => (
                    "cookies-session-without-secure-flag-but-protected-by-hsts",
                    -10,
                ),
                (true, false) => ("cookies-session-without-secure-flag", -40),
                (false, true) => ("cookies-without-secure-flag-but-protected-by-hsts", -5),
                (false, false) => ("cookies-without-secure-flag", -20),
            });
        }
    }
    worst
}

fn cors(o: &Observed) -> (&'static str, i32) {
    if let Some((Some(acao), acac)) = &o.cors_preflight {
        if acao.trim() == o.cors_origin
            && acac
                .as_deref()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return (
                "cross-origin-resource-sharing-implemented-with-universal-access",
                -50,
            );
        }
    }
    match one(o, "access-control-allow-origin").map(str::trim) {
        None => ("cross-origin-resource-sharing-not-implemented", 0),
        Some("*") => (
            "cross-origin-resource-sharing-implemented-with-public-access",
            0,
        ),
        Some(_) => (
            "cross-origin-resource-sharing-implemented-with-restricted-access",
            0,
        ),
    }
}

fn redirection(o: &Observed) -> (&'static str, i32) {
    match o.redirect {
        Redirect::ToHttps => ("redirection-to-https", 0),
        Redirect::NoHttp => ("redirection-not-needed-no-http", 0),
        Redirect::OffHost => ("redirection-off-host-from-http", -5),
        Redirect::NotToHttpsFirst => ("redirection-not-to-https-on-initial-redirection", -10),
        Redirect::Missing => ("redirection-missing", -20),
        Redirect::InvalidCert => ("redirection-invalid-cert", -20),
    }
}

/// The policy a browser applies: the last token it knows.
pub fn referrer_token(v: &str) -> Option<String> {
    v.split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .rfind(|t| rampart_config::site::REFERRER_POLICIES.contains(&t.as_str()))
}

fn referrer(o: &Observed) -> (&'static str, i32) {
    let all = values(o, "referrer-policy");
    if all.is_empty() {
        return ("referrer-policy-not-implemented", 0);
    }
    match referrer_token(&all.join(",")).as_deref() {
        Some(
            "no-referrer" | "same-origin" | "strict-origin" | "strict-origin-when-cross-origin",
        ) => ("referrer-policy-private", 5),
        Some(_) => ("referrer-policy-unsafe", -5),
        None => ("referrer-policy-header-invalid", -5),
    }
}

/// `max-age` of an HSTS value, `None` when it does not parse (no max-age, a `,`).
pub fn hsts_max_age(v: &str) -> Option<u64> {
    if v.contains(',') {
        return None;
    }
    let mut age = None;
    for d in v.split(';') {
        let (k, val) = d.split_once('=').unwrap_or((d, ""));
        if k.trim().eq_ignore_ascii_case("max-age") {
            age = Some(val.trim().trim_matches('"').parse::<u64>().ok()?);
        }
    }
    age
}

fn hsts(o: &Observed) -> (&'static str, i32) {
    if !o.https {
        return ("hsts-not-implemented-no-https", -20);
    }
    if !o.cert_valid {
        return ("hsts-invalid-cert", -20);
    }
    let all = values(o, "strict-transport-security");
    let Some(first) = all.first() else {
        return ("hsts-not-implemented", -20);
    };
    // Two headers reach Observatory as one value joined with ", ".
    let joined = all.join(", ");
    match hsts_max_age(if all.len() > 1 { &joined } else { first }) {
        None => ("hsts-header-invalid", -20),
        Some(a) if a < 15_552_000 => ("hsts-implemented-max-age-less-than-six-months", -10),
        Some(_) => ("hsts-implemented-max-age-at-least-six-months", 0),
    }
}

/// The page's `<script src>` sources, with their `integrity`.
pub fn scripts(html: &str) -> Vec<(String, bool)> {
    tags(html, "script")
        .into_iter()
        .filter_map(|t| attr(t, "src").map(|s| (s, attr(t, "integrity").is_some())))
        .collect()
}

/// Whether a script source is on another origin, and whether it loads over HTTPS.
pub fn script_origin(src: &str, host: &str) -> (bool, bool) {
    let s = src.trim();
    let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = s.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = s.strip_prefix("//") {
        ("https", r)
    } else {
        return (false, true);
    };
    let h = rest.split(['/', '?', '#']).next().unwrap_or("");
    let h = h.rsplit_once('@').map_or(h, |(_, h)| h);
    let name = h.split(':').next().unwrap_or(h);
    let external = !name.eq_ignore_ascii_case(host.split(':').next().unwrap_or(host));
    (external, scheme == "https")
}

fn sri(o: &Observed) -> (&'static str, i32) {
    let is_html = one(o, "content-type").is_some_and(|c| c.to_ascii_lowercase().contains("html"));
    let Some(html) = o.html.as_deref().filter(|_| is_html) else {
        return ("sri-not-implemented-response-not-html", 0);
    };
    let scripts = scripts(html);
    if scripts.is_empty() {
        return ("sri-not-implemented-but-no-scripts-loaded", 0);
    }
    let external: Vec<(bool, bool)> = scripts
        .iter()
        .filter_map(|(src, integrity)| {
            let (ext, secure) = script_origin(src, &o.host);
            ext.then_some((*integrity, secure))
        })
        .collect();
    if external.is_empty() {
        return (
            "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
            0,
        );
    }
    let all_sri = external.iter().all(|(i, _)| *i);
    let any_sri = external.iter().any(|(i, _)| *i);
    let all_secure = external.iter().all(|(_, s)| *s);
    match (all_sri, any_sri, all_secure) {
        (true, _, true) => ("sri-implemented-and-external-scripts-loaded-securely", 5),
        (_, true, false) => (
            "sri-implemented-but-external-scripts-not-loaded-securely",
            -20,
        ),
        (_, false, false) => (
            "sri-not-implemented-and-external-scripts-not-loaded-securely",
            -50,
        ),
        _ => (
            "sri-not-implemented-but-external-scripts-loaded-securely",
            -5,
        ),
    }
}

fn xcto(o: &Observed) -> (&'static str, i32) {
    match one(o, "x-content-type-options") {
        None => ("x-content-type-options-not-implemented", -5),
        Some(v) if v.trim().eq_ignore_ascii_case("nosniff") => {
            ("x-content-type-options-nosniff", 0)
        }
        Some(_) => ("x-content-type-options-header-invalid", -5),
    }
}

fn xfo(o: &Observed) -> (&'static str, i32) {
    // Only a header CSP counts (frame-ancestors is ignored in <meta>).
    if one(o, "content-security-policy")
        .and_then(csp::parse)
        .is_some_and(|(d, _)| d.contains_key("frame-ancestors"))
    {
        return ("x-frame-options-implemented-via-csp", 5);
    }
    match one(o, "x-frame-options").map(|v| v.trim().to_ascii_lowercase()) {
        None => ("x-frame-options-not-implemented", -20),
        Some(v) if v == "deny" || v == "sameorigin" => ("x-frame-options-sameorigin-or-deny", 5),
        Some(v) if v.starts_with("allow-from") => ("x-frame-options-allow-from-origin", 0),
        Some(_) => ("x-frame-options-header-invalid", -20),
    }
}

/// A structured-field token, `None` when several headers were sent or it is not one.
fn token(o: &Observed, name: &str) -> Result<Option<String>, ()> {
    let all = values(o, name);
    match all.as_slice() {
        [] => Ok(None),
        [v] => {
            let t = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                Ok(Some(t))
            } else {
                Err(())
            }
        }
        _ => Err(()),
    }
}

fn corp(o: &Observed) -> (&'static str, i32) {
    match token(o, "cross-origin-resource-policy") {
        Ok(None) => ("corp-not-implemented", 0),
        Ok(Some(t)) if t == "same-origin" => ("corp-implemented-with-same-origin", 10),
        Ok(Some(t)) if t == "same-site" => ("corp-implemented-with-same-site", 10),
        Ok(Some(t)) if t == "cross-origin" => ("corp-implemented-with-cross-origin", 0),
        _ => ("corp-header-invalid", -5),
    }
}

fn coop(o: &Observed) -> (&'static str, i32) {
    match token(o, "cross-origin-opener-policy") {
        Ok(None) => ("coop-not-implemented", 0),
        Ok(Some(t)) if t == "same-origin" => ("coop-implemented-with-same-origin", 10),
        Ok(Some(t)) if t == "same-origin-allow-popups" => {
            ("coop-implemented-with-same-origin-allow-popups", 10)
        }
        Ok(Some(t)) if t == "noopener-allow-popups" => {
            ("coop-implemented-with-noopener-allow-popups", 10)
        }
        Ok(Some(t)) if t == "unsafe-none" => ("coop-implemented-with-unsafe-none", 0),
        _ => ("coop-header-invalid", -5),
    }
}

fn coep(o: &Observed) -> (&'static str, i32) {
    match token(o, "cross-origin-embedder-policy") {
        Ok(None) => ("coep-not-implemented", 0),
        Ok(Some(t)) if t == "require-corp" => ("coep-implemented-with-require-corp", 10),
        Ok(Some(t)) if t == "credentialless" => ("coep-implemented-with-credentialless", 10),
        Ok(Some(t)) if t == "unsafe-none" => ("coep-implemented-with-unsafe-none", 0),
        _ => ("coep-header-invalid", -5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(headers: &[(&str, &str)]) -> Observed {
        Observed {
            https: true,
            cert_valid: true,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
            host: "example.com".into(),
            cors_origin: "https://abc.invalid".into(),
            ..Observed::default()
        }
    }

    fn results(s: &Score) -> Vec<(&'static str, i32)> {
        s.tests.iter().map(|t| (t.result, t.modifier)).collect()
    }

    /// rampart's default header set (its strict defaults).
    const RAMPART: &[(&str, &str)] = &[
        ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
        ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ];

    #[test]
    fn no_headers_at_all() {
        // csp-not-implemented -25, hsts-not-implemented -20, xcto -5, xfo -20; the rest 0.
        // 100 - 70 = 30 (no bonus to drop) -> D.
        let s = score(&site(&[]));
        assert_eq!(s.score, 30);
        assert_eq!(s.grade, "D");
    }

    #[test]
    fn owasp_recommended_set() {
        // Catalog A5 (OWASP Secure Headers): csp no-unsafe +5, xfo via frame-ancestors +5,
        // referrer no-referrer +5, corp/coop/coep +10 each; no negatives, so the
        // uncurved score is 100 (>= 90) and the bonuses count: 100 + 45 = 145 -> A+.
        let s = score(&site(&[
            ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
            ("Content-Security-Policy", "default-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; upgrade-insecure-requests"),
            ("X-Frame-Options", "deny"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Cross-Origin-Embedder-Policy", "require-corp"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
        ]));
        assert_eq!(s.score, 145);
        assert_eq!(s.grade, "A+");
    }

    #[test]
    fn rampart_defaults() {
        // csp +5, referrer private +5, xfo via csp +5, corp +10, coop +10 = +35 -> 135 A+.
        let s = score(&site(RAMPART));
        assert_eq!(s.score, 135);
        assert_eq!(s.grade, "A+");
        assert!(results(&s).contains(&("x-frame-options-implemented-via-csp", 5)));
    }

    #[test]
    fn a_weak_site() {
        // csp unsafe-inline -20; hsts one day -10; xfo SAMEORIGIN +5; referrer unsafe-url
        // -5; cookie sessionid without Secure (HSTS does not pass) -40 (worse than the
        // missing HttpOnly, -30). Uncurved 100 - 75 = 25 < 90, so the +5 is dropped: 25 -> D-.
        let s = score(&site(&[
            ("Strict-Transport-Security", "max-age=86400"),
            (
                "Content-Security-Policy",
                "default-src 'self' 'unsafe-inline'",
            ),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("Referrer-Policy", "unsafe-url"),
            ("Set-Cookie", "sessionid=abc; Path=/"),
        ]));
        assert_eq!(
            results(&s)
                .into_iter()
                .filter(|(_, m)| *m != 0)
                .collect::<Vec<_>>(),
            [
                ("csp-implemented-with-unsafe-inline", -20),
                ("cookies-session-without-secure-flag", -40),
                ("referrer-policy-unsafe", -5),
                ("hsts-implemented-max-age-less-than-six-months", -10),
                ("x-frame-options-sameorigin-or-deny", 5),
            ]
        );
        assert_eq!(s.score, 25);
        assert_eq!(s.grade, "D-");
    }

    #[test]
    fn universal_cors_drops_the_bonuses() {
        // rampart's headers, but the preflight echoes any origin with credentials: -50.
        // Uncurved 100 - 50 = 50 < 90: the +35 is not counted -> 50, C.
        let mut o = site(RAMPART);
        o.cors_preflight = Some((Some("https://abc.invalid".into()), Some("true".into())));
        let s = score(&o);
        assert_eq!(s.score, 50);
        assert_eq!(s.grade, "C");
    }

    #[test]
    fn the_curve_at_ninety() {
        // unsafe-eval -10 (uncurved 90, so bonuses count), xfo DENY +5 (no frame-ancestors),
        // referrer absent 0: 100 - 10 + 5 = 95 -> A.
        let s = score(&site(&[
            ("Strict-Transport-Security", "max-age=31536000"),
            (
                "Content-Security-Policy",
                "default-src 'self'; script-src 'self' 'unsafe-eval'",
            ),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
        ]));
        assert_eq!(s.score, 95);
        assert_eq!(s.grade, "A");
        // Two HSTS headers are one invalid value (-20): 100 - 30 = 70 < 90 -> 70, B.
        let s = score(&site(&[
            ("Strict-Transport-Security", "max-age=31536000"),
            ("Strict-Transport-Security", "max-age=31536000"),
            (
                "Content-Security-Policy",
                "default-src 'self'; script-src 'self' 'unsafe-eval'",
            ),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
        ]));
        assert_eq!(s.score, 70);
        assert_eq!(s.grade, "B");
    }

    #[test]
    fn cookies_and_scripts() {
        let c = Cookie::parse("__Host-sess=1; Secure; HttpOnly; SameSite=None").unwrap();
        assert!(c.is_session() && c.same_site_valid());
        assert!(!Cookie::parse("a=1; SameSite=None")
            .unwrap()
            .same_site_valid());
        assert!(!Cookie::parse("a=1; SameSite=Sometimes; Secure")
            .unwrap()
            .same_site_valid());
        let html = r#"<html><script src="/app.js"></script><SCRIPT integrity="sha384-x" src="https://cdn.test/x.js"></SCRIPT><script>inline()</script><script src='http://cdn.test/y.js'></script>"#;
        assert_eq!(
            scripts(html),
            [
                ("/app.js".to_owned(), false),
                ("https://cdn.test/x.js".to_owned(), true),
                ("http://cdn.test/y.js".to_owned(), false)
            ]
        );
        assert_eq!(
            script_origin("https://cdn.test/x.js", "example.com"),
            (true, true)
        );
        assert_eq!(
            script_origin("//example.com/x.js", "example.com"),
            (false, true)
        );
        let mut o = site(RAMPART);
        o.headers.push(("content-type".into(), "text/html".into()));
        o.html = Some(html.into());
        // One external script over http without integrity, one with: -20.
        assert_eq!(
            sri(&o),
            (
                "sri-implemented-but-external-scripts-not-loaded-securely",
                -20
            )
        );
        assert_eq!(
            meta_csp(r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'">"#)
                .as_deref(),
            Some("default-src 'none'")
        );
    }
}
