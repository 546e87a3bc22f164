//! Checks of the edge config itself: TLS, HSTS, the header set, CSP, cookies, CORS, hosts,
//! limits on login routes, admin exposure, rampart's own secrets.

use rampart_config::runtime::{Action, HostPattern, Route};
use rampart_config::Config;

use super::{Severity, Sink};
use crate::csp;

pub(crate) const CHECKS: &[(&str, &str)] = &[
    ("PF-TLS-01", "edge protocols: TLS 1.2 and 1.3 only"),
    (
        "PF-TLS-02",
        "edge cipher suites and groups: ECDHE + AEAD only",
    ),
    (
        "PF-HSTS-01",
        "Strict-Transport-Security on every HTTPS route",
    ),
    (
        "PF-HDR-01",
        "security header set and HTTP to HTTPS redirect",
    ),
    ("PF-CSP-01", "Content-Security-Policy (Observatory rules)"),
    ("PF-COOK-01", "cookie hardening: Secure, HttpOnly, SameSite"),
    ("PF-CORS-01", "CORS allow-lists"),
    ("PF-HOST-01", "allowed hosts"),
    ("PF-LIM-01", "rate limit and lockout on login routes"),
    ("PF-ADM-01", "admin API and metrics not public"),
    ("PF-LOG-02", "personal data masked in logs"),
    (
        "PF-STATE-01",
        "shared state (Redis) over TLS, its password not in the file",
    ),
    ("PF-UPS-01", "upstream TLS certificates verified"),
];

fn route_subject(i: usize, r: &Route) -> String {
    format!("routes[{i}] ({})", r.name)
}

fn header<'a>(r: &'a Route, name: &str) -> Option<&'a str> {
    r.headers
        .set
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

pub(crate) fn check(c: &Config, s: &mut Sink) {
    for (id, t) in CHECKS {
        s.check(id, t);
    }
    tls(c, s);
    let https = c.tls.is_some() && c.server.https.is_some();
    for (i, r) in c.routes.iter().enumerate() {
        if matches!(r.action, Action::Redirect { .. }) {
            continue;
        }
        let subject = route_subject(i, r);
        if https {
            hsts(r, &subject, s);
        }
        headers(r, &subject, s);
        content_security_policy(r, &subject, s);
        cookies(r, &subject, s);
        login_limits(c, r, &subject, s);
    }
    if !c.routes.iter().any(|r| is_login_path(&r.path)) {
        s.nothing_to_check("PF-LIM-01", "no route looks like a login route");
    }
    if https && c.server.http.is_some() {
        for p in &c.server.redirect_exempt {
            if !p.starts_with("/.well-known/acme-challenge") {
                s.add(
                    "PF-HDR-01",
                    Severity::Warn,
                    "server.redirect_exempt",
                    format!("{p} is served over plain HTTP instead of redirecting"),
                    "keep only ACME challenge paths in redirect_exempt",
                );
            }
        }
    }
    cors(c, s);
    hosts(c, s);
    admin(c, s);
    state(c, s);
    upstream_tls(c, s);
    if !c.logging.mask_pii {
        s.add(
            "PF-LOG-02",
            Severity::Warn,
            "logging.mask_pii",
            "personal data (e-mail, phone, card numbers, tokens) is written to the logs unmasked",
            "remove `mask_pii = false`",
        );
    }
    for (key, w) in &c.secret_issues {
        s.check(w.rule, super::env::title(w.rule));
        s.add(
            w.rule,
            Severity::Error,
            key.clone(),
            w.why.clone(),
            "generate one with `rampart secrets generate` and read it with `${VAR}` or `*_file`",
        );
    }
}

fn tls(c: &Config, s: &mut Sink) {
    match (&c.tls, c.server.https) {
        (Some(t), Some(_)) => {
            if !t.self_signed.is_empty() {
                s.check("PF-CRT-02", super::files::title("PF-CRT-02"));
                s.add(
                    "PF-CRT-02",
                    Severity::Error,
                    "tls.self_signed",
                    "the edge serves a self-signed development certificate",
                    "set tls.cert and tls.key to a certificate from a public CA (or your private CA)",
                );
            }
            // rustls offers only TLS 1.2 and 1.3, and only ECDHE key exchange with AEAD
            // suites (the Mozilla intermediate list); groups X25519, P-256, P-384. Nothing
            // in the config can weaken that, so PF-TLS-01 and -02 pass by construction.
        }
        _ => s.add(
            "PF-TLS-01",
            Severity::Error,
            "server.https",
            "the edge serves plain HTTP only",
            "add [tls] with a certificate and server.https",
        ),
    }
}

/// `max-age` of an HSTS value, and its flags.
fn parse_hsts(v: &str) -> Option<(u64, bool, bool)> {
    let mut age = None;
    let (mut sub, mut preload) = (false, false);
    for part in v.split(';') {
        let p = part.trim();
        let lower = p.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n.trim_matches('"').parse().ok();
        } else if lower == "includesubdomains" {
            sub = true;
        } else if lower == "preload" {
            preload = true;
        }
    }
    age.map(|a| (a, sub, preload))
}

fn hsts(r: &Route, subject: &str, s: &mut Sink) {
    let id = "PF-HSTS-01";
    let fix = "keep the default (`headers.hsts` unset: max-age=63072000; includeSubDomains)";
    let Some(v) = r.headers.hsts.as_ref().and_then(|v| v.to_str().ok()) else {
        s.add(
            id,
            Severity::Error,
            subject,
            "no Strict-Transport-Security",
            fix,
        );
        return;
    };
    let Some((age, sub, preload)) = parse_hsts(v) else {
        s.add(
            id,
            Severity::Error,
            subject,
            format!("HSTS {v:?} has no max-age"),
            fix,
        );
        return;
    };
    if age < 15_552_000 {
        s.add(
            id,
            Severity::Error,
            subject,
            format!("HSTS max-age={age} is under six months (15552000)"),
            fix,
        );
    } else if age < 63_072_000 {
        s.add(
            id,
            Severity::Warn,
            subject,
            format!("HSTS max-age={age} is under two years (63072000, Mozilla and OWASP)"),
            fix,
        );
    }
    if !sub {
        s.add(
            id,
            Severity::Warn,
            subject,
            "HSTS without includeSubDomains",
            "add includeSubDomains once every subdomain serves HTTPS",
        );
    }
    if preload && (age < 31_536_000 || !sub) {
        s.add(
            id,
            Severity::Error,
            subject,
            "HSTS preload needs max-age of at least 31536000 and includeSubDomains",
            "raise max-age and add includeSubDomains, or drop preload",
        );
    }
}

const REFERRER_PRIVATE: &[&str] = &[
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
];
const REFERRER_UNSAFE: &[&str] = &[
    "origin",
    "origin-when-cross-origin",
    "unsafe-url",
    "no-referrer-when-downgrade",
];

fn headers(r: &Route, subject: &str, s: &mut Sink) {
    let id = "PF-HDR-01";
    let default = "keep rampart's default (remove the key that turns it off)";
    match header(r, "x-content-type-options") {
        Some(v) if v.trim().eq_ignore_ascii_case("nosniff") => {}
        other => s.add(
            id,
            Severity::Error,
            subject,
            format!("X-Content-Type-Options is {} (want nosniff)", shown(other)),
            default,
        ),
    }
    let csp = header(r, "content-security-policy");
    let frame_ancestors = csp
        .and_then(csp::parse)
        .is_some_and(|(d, _)| d.contains_key("frame-ancestors"));
    match header(r, "x-frame-options") {
        Some(v) if v.trim().eq_ignore_ascii_case("deny") => {}
        Some(v) if v.trim().eq_ignore_ascii_case("sameorigin") => {}
        _ if frame_ancestors => {}
        other => s.add(
            id,
            Severity::Error,
            subject,
            format!(
                "X-Frame-Options is {} and the CSP has no frame-ancestors: the page can be framed (clickjacking)",
                shown(other)
            ),
            default,
        ),
    }
    match header(r, "referrer-policy") {
        None => s.add(
            id,
            Severity::Error,
            subject,
            "no Referrer-Policy: full URLs leak to other sites on older browsers",
            default,
        ),
        Some(v) => {
            let last = v
                .split(',')
                .rev()
                .map(|t| t.trim().to_ascii_lowercase())
                .find(|t| {
                    REFERRER_PRIVATE.contains(&t.as_str()) || REFERRER_UNSAFE.contains(&t.as_str())
                });
            match last {
                Some(t) if REFERRER_PRIVATE.contains(&t.as_str()) => {}
                Some(t) => s.add(
                    id,
                    Severity::Error,
                    subject,
                    format!("Referrer-Policy {t} sends URLs to other origins"),
                    "use strict-origin-when-cross-origin or no-referrer",
                ),
                None => s.add(
                    id,
                    Severity::Error,
                    subject,
                    format!("Referrer-Policy {v:?} has no valid token"),
                    "use strict-origin-when-cross-origin or no-referrer",
                ),
            }
        }
    }
    if let Some(v) = header(r, "cross-origin-opener-policy") {
        const VALID: &[&str] = &[
            "same-origin",
            "same-origin-allow-popups",
            "unsafe-none",
            "noopener-allow-popups",
        ];
        if !VALID.contains(&v.trim()) {
            s.add(
                id,
                Severity::Error,
                subject,
                format!("Cross-Origin-Opener-Policy {v:?} is not a valid value"),
                "use same-origin",
            );
        }
    }
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
}

fn content_security_policy(r: &Route, subject: &str, s: &mut Sink) {
    let id = "PF-CSP-01";
    let enforced = header(r, "content-security-policy");
    let report_only = header(r, "content-security-policy-report-only").is_some();
    let a = csp::analyse(enforced);
    // rampart's stricter items make one finding per route.
    let strict: Vec<&str> = a
        .issues
        .iter()
        .filter(|i| i.id.starts_with("rampart-"))
        .map(|i| i.message.as_str())
        .collect();
    if !strict.is_empty() {
        s.add(
            id,
            Severity::Warn,
            subject,
            format!("stricter than Observatory: {}", strict.join("; ")),
            "add frame-ancestors 'none', base-uri 'self', form-action 'self' and object-src 'none'",
        );
    }
    for issue in a.issues.iter().filter(|i| !i.id.starts_with("rampart-")) {
        let (severity, fix) = match issue.modifier {
            m if m <= -20 => (
                Severity::Error,
                if report_only && enforced.is_none() {
                    "the policy is report-only: enforce it (`csp_report_only = false`) once reports are clean, or allow PF-CSP-01 for the rollout"
                } else {
                    "use nonces (`csp_nonce = true`) or hashes instead of 'unsafe-inline', and https: sources only"
                },
            ),
            m if m < 0 => (Severity::Warn, "remove 'unsafe-eval' and http: sources"),
            _ => (Severity::Info, "give each directive once"),
        };
        s.add(
            id,
            severity,
            subject,
            format!(
                "{} ({}, Observatory {:+})",
                issue.message, issue.id, issue.modifier
            ),
            fix,
        );
    }
}

fn cookies(r: &Route, subject: &str, s: &mut Sink) {
    let id = "PF-COOK-01";
    let c = &r.policy.cookies;
    if !matches!(r.action, Action::Upstream(_)) {
        return;
    }
    if !c.secure {
        s.add(
            id,
            Severity::Error,
            subject,
            "cookies from the upstream are not forced Secure",
            "remove `cookies.secure = false`",
        );
    }
    if !c.httponly {
        s.add(
            id,
            Severity::Error,
            subject,
            "cookies from the upstream are not forced HttpOnly",
            "remove `cookies.httponly = false`; list cookies scripts must read in `script_readable`",
        );
    }
    match c.samesite.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("lax") || v.eq_ignore_ascii_case("strict") => {}
        other => s.add(
            id,
            Severity::Error,
            subject,
            format!(
                "cookies get SameSite={} (want Lax or Strict)",
                other.unwrap_or("absent")
            ),
            "set `cookies.samesite = \"Lax\"` (the default)",
        ),
    }
    for name in &c.script_readable {
        let n = name.to_ascii_lowercase();
        if ["sess", "login", "auth", "token", "jwt", "sid"]
            .iter()
            .any(|w| n.contains(w))
        {
            s.add(
                id,
                Severity::Error,
                subject,
                format!("cookie {name:?} looks like a session cookie and is readable by scripts"),
                "remove it from `cookies.script_readable`",
            );
        }
    }
}

fn is_login_path(path: &str) -> bool {
    const LOGIN: &[&str] = &[
        "login", "signin", "sign-in", "sign_in", "logon", "token", "password", "passwd",
        "register", "signup", "sign-up", "session", "otp", "2fa", "mfa",
    ];
    let p = path.to_ascii_lowercase();
    LOGIN.iter().any(|w| p.contains(w))
}

fn login_limits(c: &Config, r: &Route, subject: &str, s: &mut Sink) {
    if !is_login_path(&r.path) {
        return;
    }
    let limits: Vec<_> = r
        .policy
        .limits
        .iter()
        .filter_map(|i| c.policies.limits.get(*i))
        .collect();
    if limits.is_empty() {
        s.add(
            "PF-LIM-01",
            Severity::Error,
            subject,
            format!("{} looks like a login route and has no rate limit", r.path),
            "add a limit with a lockout, e.g. `limit = \"login\"` with [limits.login] rate = \"5/m\" and lockout",
        );
    } else if limits.iter().all(|l| l.lockout.is_none()) {
        s.add(
            "PF-LIM-01",
            Severity::Warn,
            subject,
            format!("{} looks like a login route and has no lockout", r.path),
            "add `lockout = { failures = 5, for = \"15m\" }` to its limit",
        );
    }
}

fn cors(c: &Config, s: &mut Sink) {
    for p in &c.policies.cors {
        let key = format!("cors.{}", p.name);
        if p.any_origin {
            s.add(
                "PF-CORS-01",
                Severity::Error,
                format!("{key}.origins"),
                "allows every origin (\"*\")",
                "list the exact https:// origins of your front ends",
            );
        }
        for o in &p.origins {
            if let Some(why) = super::env::origin_problem(o) {
                s.add(
                    "PF-CORS-01",
                    Severity::Error,
                    format!("{key}.origins"),
                    format!("{o} {why}"),
                    "list the exact https:// origins of your front ends",
                );
            }
        }
    }
}

fn hosts(c: &Config, s: &mut Sink) {
    if c.server.allowed_hosts.is_empty() {
        s.add(
            "PF-HOST-01",
            Severity::Error,
            "server.allowed_hosts",
            "empty: the edge answers any Host header (host-header injection, DNS rebinding)",
            "list the names you serve: allowed_hosts = [\"example.com\"]",
        );
    }
    for h in &c.server.allowed_hosts {
        if let HostPattern::Wildcard(suffix) = h {
            if suffix.matches('.').count() < 2 {
                s.add(
                    "PF-HOST-01",
                    Severity::Error,
                    "server.allowed_hosts",
                    format!("*{suffix} covers a whole top-level domain"),
                    "list the names you serve",
                );
            }
        }
    }
}

/// Upstream pools over TLS verify their servers' certificates: `insecure_skip_verify`
/// encrypts to whoever answers, so anyone on the path can read and change the traffic.
fn upstream_tls(c: &Config, s: &mut Sink) {
    let production = matches!(
        c.server.environment,
        rampart_config::posture::Environment::Production
    );
    for u in &c.upstreams {
        if u.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
            s.add(
                "PF-UPS-01",
                if production {
                    Severity::Error
                } else {
                    Severity::Warn
                },
                format!("upstreams.{}.tls", u.name),
                "insecure_skip_verify: the servers' certificates are not verified, so anyone on the path can pose as them",
                "give the pool its CA (`tls.ca`) and, for servers addressed by IP, `tls.server_name`",
            );
        }
    }
}

/// `[state]`: counters, lockouts and operator changes travel to Redis; in production
/// they go over TLS unless the server is on this host, and the password is read from
/// `${VAR}` or `password_file`, never written in the URL.
fn state(c: &Config, s: &mut Sink) {
    // Local state never leaves the process: nothing to protect in transit.
    let Some(r) = &c.state.redis else {
        return;
    };
    let local = r.nodes.iter().all(|n| {
        let host = n.rsplit_once(':').map_or(n.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if !r.tls && !local {
        let production = matches!(
            c.server.environment,
            rampart_config::posture::Environment::Production
        );
        s.add(
            "PF-STATE-01",
            if production {
                Severity::Error
            } else {
                Severity::Warn
            },
            "state.redis",
            format!(
                "the shared state travels unencrypted to {} (redis://)",
                r.nodes.join(", ")
            ),
            "use rediss:// (TLS; `ca` names a private CA's file)",
        );
    }
    if r.inline_password {
        s.add(
            "PF-STATE-01",
            Severity::Error,
            "state.redis",
            "the Redis URL carries its password in the config file",
            "drop it from the URL and set password = \"${REDIS_PASSWORD}\" or password_file",
        );
    }
}

fn admin(c: &Config, s: &mut Sink) {
    let Some(a) = &c.admin else { return };
    if !a.listen.ip().is_loopback() {
        s.add(
            "PF-ADM-01",
            Severity::Warn,
            "admin.listen",
            format!("the admin API listens on {} (token-protected)", a.listen),
            "listen on 127.0.0.1 and scrape through a private network or public_path",
        );
    }
    if let Some(p) = &a.public {
        if p.metrics && p.allow.iter().any(|n| n.prefix_len() == 0) {
            s.add(
                "PF-ADM-01",
                Severity::Error,
                "admin.public_allow",
                format!("{}/metrics is open to every address", p.path),
                "allow only your monitoring networks, or mount only health and ready for everyone: public_endpoints = [\"health\", \"ready\"]",
            );
        }
    }
}
