//! HTTP checks (VF-RED, HSTS, CSP, XFO, XCTO, REF, PP, XO, INFO, XXP, CK, CORS, AUTH, MET,
//! SRI, HLTH) and the `--active` probes (login limit, body limit, WebSocket).

use super::client::{Req, Resp};
use super::observatory::{self, Cookie, Observed, Redirect};
use super::state::{Health, Run};
use crate::csp;
use crate::findings::Severity;

/// Headers that tell an attacker what runs behind (OWASP Secure Headers remove list, the
/// common ones).
const BANNERS: &[&str] = &[
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    "x-runtime",
    "x-version",
    "x-php-version",
    "x-redirect-by",
    "x-drupal-cache",
    "x-drupal-dynamic-cache",
    "x-nextjs-cache",
    "x-varnish",
    "x-envoy-upstream-service-time",
    "x-kong-upstream-latency",
    "x-kong-proxy-latency",
    "sourcemap",
    "x-sourcemap",
];

/// Features whose permission should be off unless a site needs them.
const SENSITIVE_FEATURES: &[&str] = &["camera", "microphone", "geolocation", "payment", "usb"];

/// Metrics and debug endpoints that must not be public.
const METRICS_PATHS: &[&str] = &[
    "/metrics",
    "/debug/vars",
    "/actuator/prometheus",
    "/actuator/env",
];

const CHECKS: [(&str, &str); 16] = [
    ("VF-RED-01", "HTTP redirects to HTTPS"),
    ("VF-HSTS-01", "Strict-Transport-Security"),
    ("VF-CSP-01", "Content-Security-Policy quality"),
    ("VF-XFO-01", "framing protection"),
    ("VF-XCTO-01", "X-Content-Type-Options"),
    ("VF-REF-01", "Referrer-Policy"),
    ("VF-PP-01", "Permissions-Policy"),
    ("VF-XO-01", "COOP / CORP / COEP"),
    ("VF-INFO-01", "banner headers"),
    ("VF-XXP-01", "X-XSS-Protection"),
    ("VF-CK-01", "cookies on every probed path"),
    ("VF-CORS-01", "CORS with a foreign origin"),
    ("VF-AUTH-01", "protected paths refuse anonymous requests"),
    (
        "VF-MTLS-01",
        "mutual-TLS paths refuse a client without a certificate",
    ),
    ("VF-MET-01", "metrics and debug endpoints not public"),
    ("VF-SRI-01", "subresource integrity of external scripts"),
];

/// Every passive HTTP check.
pub(crate) fn all(run: &mut Run<'_>, main: &Resp, observed: &mut Observed) {
    // The redirect and auth checks register themselves: they may be skipped.
    for (id, title) in CHECKS {
        if !matches!(id, "VF-RED-01" | "VF-AUTH-01" | "VF-MTLS-01") {
            run.sink.check(id, title);
        }
    }
    if !run.target.tls {
        run.sink.add(
            "VF-TLS-01",
            Severity::Error,
            run.subject("/"),
            "the site was given as http://: nothing is encrypted",
            "serve the site over HTTPS and verify https://",
        );
    }
    run.o.step("HTTP: redirect");
    observed.redirect = redirect(run);
    headers(run, "/", main);
    let mut paths: Vec<String> = run.o.paths.clone();
    if let Some(l) = &run.o.login {
        paths.push(l.clone());
    }
    paths.push("/robots.txt".into());
    let mut cookie_sources = vec![("/".to_owned(), main.clone())];
    for p in paths {
        run.o.step(&format!("HTTP: {p}"));
        match run.get("GET", &p, &[]) {
            Ok(r) => {
                if p != "/robots.txt" {
                    headers(run, &p, &r);
                }
                cookie_sources.push((p, r));
            }
            Err(e) => run.sink.add(
                "VF-CONN-01",
                Severity::Warn,
                run.subject(&p),
                format!("no answer: {e}"),
                "check the path",
            ),
        }
    }
    for (p, r) in &cookie_sources {
        cookies(run, p, r);
    }
    run.o.step("HTTP: CORS");
    observed.cors_origin = foreign_origin();
    cors(run, observed);
    auth(run);
    mtls(run);
    metrics(run);
    if let Some(html) = observed.html.clone() {
        sri(run, &html);
    }
}

fn foreign_origin() -> String {
    let mut b = [0u8; 6];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("https://{hex}.invalid")
}

/// VF-RED-01: `http://host/` answers with a permanent redirect to `https://` on the same
/// host.
fn redirect(run: &mut Run<'_>) -> Redirect {
    let port = match run.o.http_port {
        Some(p) => p,
        None if run.target.port == 443 || !run.target.tls => 80,
        None => {
            run.sink.skip(
                "VF-RED-01",
                "HTTP redirects to HTTPS",
                "the HTTPS port is not 443: give the plain port with --http-port",
            );
            return Redirect::NoHttp;
        }
    };
    run.sink.check("VF-RED-01", "HTTP redirects to HTTPS");
    if !run.target.tls {
        return Redirect::Missing;
    }
    let subject = format!("http://{}/", run.client.host_header(port, false));
    let first = run.send(&Req {
        tls: false,
        port,
        method: "GET",
        path: "/",
        headers: &[],
        body: None,
    });
    let r = match first {
        Ok(r) => r,
        Err(_) => return Redirect::NoHttp,
    };
    let location = r.header("location").map(str::to_owned);
    let result = match (r.status, location.as_deref()) {
        (301 | 302 | 303 | 307 | 308, Some(loc)) => {
            if let Some(rest) = loc.strip_prefix("https://") {
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                let name = super::state::Target::parse(&format!("https://{host}"))
                    .map(|t| t.host)
                    .unwrap_or_default();
                if name == run.target.host {
                    if !matches!(r.status, 301 | 308) {
                        run.sink.add(
                            "VF-RED-01",
                            Severity::Warn,
                            subject.clone(),
                            format!("{} {loc}: a temporary redirect (browsers and caches do not keep it)", r.status),
                            "answer 301 (or 308)",
                        );
                    }
                    Redirect::ToHttps
                } else {
                    Redirect::OffHost
                }
            } else if loc.starts_with("http://") || loc.starts_with('/') {
                Redirect::NotToHttpsFirst
            } else {
                Redirect::Missing
            }
        }
        _ => Redirect::Missing,
    };
    let why = match &result {
        Redirect::ToHttps | Redirect::NoHttp => None,
        Redirect::OffHost => Some(format!(
            "{} to {}: the first hop changes host, so HSTS cannot be set for this one",
            r.status,
            location.unwrap_or_default()
        )),
        Redirect::NotToHttpsFirst => Some(format!(
            "{} to {}: the first hop stays on plain HTTP",
            r.status,
            location.unwrap_or_default()
        )),
        Redirect::Missing | Redirect::InvalidCert => Some(format!(
            "answered {} without a redirect to https://",
            r.status
        )),
    };
    if let Some(why) = why {
        run.sink.add(
            "VF-RED-01",
            Severity::Error,
            subject,
            why,
            "redirect every plain-HTTP request with 301 to https:// on the same host",
        );
    }
    if result == Redirect::ToHttps && !run.cert_ok {
        return Redirect::InvalidCert;
    }
    result
}

/// The header checks on one answer.
fn headers(run: &mut Run<'_>, path: &str, r: &Resp) {
    let subject = run.subject(path);
    let add = |run: &mut Run<'_>, id, sev, why: String, fix: &str| {
        run.sink.add(id, sev, subject.clone(), why, fix);
    };
    if run.target.tls {
        let hsts = r.all("strict-transport-security");
        match hsts.as_slice() {
            [] => add(
                run,
                "VF-HSTS-01",
                Severity::Error,
                "no Strict-Transport-Security".into(),
                "send Strict-Transport-Security: max-age=63072000; includeSubDomains",
            ),
            [v] => match observatory::hsts_max_age(v) {
                None => add(
                    run,
                    "VF-HSTS-01",
                    Severity::Error,
                    format!("Strict-Transport-Security: {v} does not parse (max-age)"),
                    "send max-age=63072000; includeSubDomains",
                ),
                Some(a) if a < 15_552_000 => add(
                    run,
                    "VF-HSTS-01",
                    Severity::Error,
                    format!("Strict-Transport-Security: {v}: max-age under 15552000 (180 days)"),
                    "max-age=63072000 (two years)",
                ),
                Some(a) => {
                    if a < 63_072_000 {
                        add(
                            run,
                            "VF-HSTS-01",
                            Severity::Warn,
                            format!("Strict-Transport-Security: {v}: max-age under 63072000 (Mozilla, OWASP)"),
                            "max-age=63072000 (two years)",
                        );
                    }
                    if !v.to_ascii_lowercase().contains("includesubdomains") {
                        add(
                            run,
                            "VF-HSTS-01",
                            Severity::Warn,
                            format!("Strict-Transport-Security: {v}: no includeSubDomains"),
                            "add includeSubDomains once every subdomain serves HTTPS",
                        );
                    }
                }
            },
            many => add(
                run,
                "VF-HSTS-01",
                Severity::Error,
                format!(
                    "Strict-Transport-Security sent {} times: {}",
                    many.len(),
                    many.join(" | ")
                ),
                "send it once (the app and the proxy both set it)",
            ),
        }
    }
    let csp_header = r.header("content-security-policy");
    let a = csp::analyse(csp_header);
    for i in &a.issues {
        let sev = if i.modifier < 0 {
            Severity::Error
        } else {
            Severity::Warn
        };
        let evidence = csp_header.map_or_else(
            || match r.header("content-security-policy-report-only") {
                Some(ro) => format!(" (only Content-Security-Policy-Report-Only: {ro})"),
                None => String::new(),
            },
            |v| format!(" (Content-Security-Policy: {v})"),
        );
        add(
            run,
            "VF-CSP-01",
            sev,
            format!("{}: {}{evidence}", i.id, i.message),
            "start from default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
        );
    }
    let fa_ok = csp_header
        .and_then(csp::parse)
        .and_then(|(d, _)| d.get("frame-ancestors").cloned())
        .is_some_and(|s| !s.iter().any(|x| x == "*" || x == "https:" || x == "http:"));
    let xfo = r.header("x-frame-options").map(str::to_ascii_lowercase);
    if !fa_ok && !matches!(xfo.as_deref().map(str::trim), Some("deny" | "sameorigin")) {
        add(
            run,
            "VF-XFO-01",
            Severity::Error,
            format!(
                "no framing protection (X-Frame-Options: {}, no restrictive frame-ancestors)",
                xfo.as_deref().unwrap_or("absent")
            ),
            "send X-Frame-Options: DENY and CSP frame-ancestors 'none'",
        );
    }
    match r.header("x-content-type-options") {
        Some(v) if v.trim().eq_ignore_ascii_case("nosniff") => {}
        other => add(
            run,
            "VF-XCTO-01",
            Severity::Warn,
            format!("X-Content-Type-Options: {}", other.unwrap_or("absent")),
            "send X-Content-Type-Options: nosniff",
        ),
    }
    let refs = r.all("referrer-policy");
    if refs.is_empty() {
        add(
            run,
            "VF-REF-01",
            Severity::Warn,
            "no Referrer-Policy (browsers default to strict-origin-when-cross-origin; old ones leak full URLs)".into(),
            "send Referrer-Policy: strict-origin-when-cross-origin (or no-referrer)",
        );
    } else {
        let joined = refs.join(",");
        match observatory::referrer_token(&joined).as_deref() {
            Some(
                "no-referrer" | "same-origin" | "strict-origin" | "strict-origin-when-cross-origin",
            ) => {}
            Some(t) => add(
                run,
                "VF-REF-01",
                Severity::Warn,
                format!("Referrer-Policy: {joined} ({t} sends the URL to other origins)"),
                "send Referrer-Policy: strict-origin-when-cross-origin",
            ),
            None => add(
                run,
                "VF-REF-01",
                Severity::Warn,
                format!("Referrer-Policy: {joined} has no valid token"),
                "send Referrer-Policy: strict-origin-when-cross-origin",
            ),
        }
    }
    match r.header("permissions-policy") {
        None => add(
            run,
            "VF-PP-01",
            Severity::Warn,
            "no Permissions-Policy".into(),
            "send Permissions-Policy: camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ),
        Some(v) => {
            let mut open = Vec::new();
            let mut bad = false;
            let items: Vec<(String, String)> = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .filter_map(|item| {
                    let (k, val) = item.split_once('=')?;
                    Some((k.trim().to_ascii_lowercase(), val.trim().to_owned()))
                })
                .collect();
            if items.len() != v.split(',').filter(|s| !s.trim().is_empty()).count() {
                bad = true;
            }
            for f in SENSITIVE_FEATURES {
                match items.iter().find(|(k, _)| k == f) {
                    Some((_, val)) if val == "()" => {}
                    _ => open.push(*f),
                }
            }
            if bad {
                add(
                    run,
                    "VF-PP-01",
                    Severity::Warn,
                    format!("Permissions-Policy: {v} does not parse (feature=(allowlist), …)"),
                    "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
                );
            } else if !open.is_empty() {
                add(
                    run,
                    "VF-PP-01",
                    Severity::Warn,
                    format!("Permissions-Policy: {v}: {} not disabled", open.join(", ")),
                    "give each feature the site does not use an empty allowlist: feature=()",
                );
            }
        }
    }
    for (name, good) in [
        (
            "cross-origin-opener-policy",
            &[
                "same-origin",
                "same-origin-allow-popups",
                "noopener-allow-popups",
                "unsafe-none",
            ][..],
        ),
        (
            "cross-origin-resource-policy",
            &["same-origin", "same-site", "cross-origin"][..],
        ),
        (
            "cross-origin-embedder-policy",
            &["require-corp", "credentialless", "unsafe-none"][..],
        ),
    ] {
        let all = r.all(name);
        let token = |v: &str| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        match all.as_slice() {
            [] if name != "cross-origin-embedder-policy" => add(
                run,
                "VF-XO-01",
                Severity::Info,
                format!("no {name} (+10 in Observatory when set)"),
                "send it (same-origin)",
            ),
            [] => {}
            [v] if good.contains(&token(v).as_str()) => {}
            vals => add(
                run,
                "VF-XO-01",
                Severity::Warn,
                format!("{name}: {} is not a valid value", vals.join(" | ")),
                "send one valid token",
            ),
        }
    }
    let mut banners: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| BANNERS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if let Some(s) = r.header("server") {
        if s.contains('/') || s.bytes().any(|b| b.is_ascii_digit()) {
            banners.insert(0, format!("server: {s}"));
        }
    }
    if !banners.is_empty() {
        add(
            run,
            "VF-INFO-01",
            Severity::Warn,
            format!("banner headers name the software: {}", banners.join("; ")),
            "remove them (rampart does by default: headers.hide_banners)",
        );
    }
    match r.header("x-xss-protection").map(str::trim) {
        None | Some("0") => {}
        Some(v) => add(
            run,
            "VF-XXP-01",
            Severity::Info,
            format!("X-XSS-Protection: {v} (the filter is gone from browsers and could be abused)"),
            "send X-XSS-Protection: 0 or nothing, and rely on the CSP",
        ),
    }
}

/// VF-CK-01 for one answer's cookies.
fn cookies(run: &mut Run<'_>, path: &str, r: &Resp) {
    let subject = run.subject(path);
    for raw in r.all("set-cookie") {
        let Some(c) = Cookie::parse(raw) else {
            continue;
        };
        let name = &c.name;
        let session = c.is_session()
            || name.to_ascii_lowercase().contains("token")
            || name.to_ascii_lowercase().contains("auth");
        let csrf = name.to_ascii_lowercase().contains("csrf")
            || name.to_ascii_lowercase().contains("xsrf");
        let mut errors = Vec::new();
        if !c.secure && run.target.tls {
            errors.push("no Secure");
        }
        if session && !c.http_only {
            errors.push("a session cookie without HttpOnly");
        }
        if !c.same_site_valid() {
            errors.push("SameSite invalid (or None without Secure)");
        }
        if csrf && c.same_site.is_none() {
            errors.push("a CSRF cookie without SameSite");
        }
        if !errors.is_empty() {
            run.sink.add(
                "VF-CK-01",
                Severity::Error,
                subject.clone(),
                format!("cookie {name}: {} (Set-Cookie: {raw})", errors.join(", ")),
                "set Secure; HttpOnly; SameSite=Lax (rampart: [cookies] hardening)",
            );
        } else if c.same_site.is_none() {
            run.sink.add(
                "VF-CK-01",
                Severity::Warn,
                subject.clone(),
                format!("cookie {name}: no SameSite (Set-Cookie: {raw})"),
                "add SameSite=Lax",
            );
        }
    }
}

/// VF-CORS-01: a foreign origin must not be echoed, and `*` must not go with credentials.
fn cors(run: &mut Run<'_>, observed: &mut Observed) {
    let origin = observed.cors_origin.clone();
    let pre = run.get(
        "OPTIONS",
        "/",
        &[
            ("Origin", &origin),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    if let Ok(r) = &pre {
        observed.cors_preflight = Some((
            r.header("access-control-allow-origin").map(str::to_owned),
            r.header("access-control-allow-credentials")
                .map(str::to_owned),
        ));
    }
    let mut paths = vec!["/".to_owned()];
    paths.extend(run.o.protected.iter().cloned());
    for (i, p) in paths.iter().enumerate() {
        let simple = run.get("GET", p, &[("Origin", &origin)]);
        let answers = [
            (if i == 0 { pre.as_ref().ok() } else { None }, "preflight"),
            (simple.as_ref().ok(), "GET"),
        ];
        for (r, kind) in answers {
            let Some(r) = r else { continue };
            let acao = r.header("access-control-allow-origin").map(str::trim);
            let acac = r
                .header("access-control-allow-credentials")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let why = match acao {
                Some(a) if a == origin => Some(format!(
                    "{kind} from the foreign origin {origin} is allowed: Access-Control-Allow-Origin echoes it{}",
                    if acac { ", with credentials" } else { "" }
                )),
                Some("*") if acac => Some(format!(
                    "{kind}: Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true"
                )),
                Some("*") if i > 0 => Some(format!(
                    "{kind} on a protected path: Access-Control-Allow-Origin: *"
                )),
                _ => None,
            };
            if let Some(why) = why {
                run.sink.add(
                    "VF-CORS-01",
                    Severity::Error,
                    run.subject(p),
                    why,
                    "allow-list the origins that need access (rampart: [cors.NAME] origins)",
                );
            }
        }
    }
}

/// VF-AUTH-01: protected paths refuse anonymous requests.
fn auth(run: &mut Run<'_>) {
    if run.o.protected.is_empty() {
        run.sink.skip(
            "VF-AUTH-01",
            "protected paths refuse anonymous requests",
            "no --protected path given",
        );
        return;
    }
    run.sink
        .check("VF-AUTH-01", "protected paths refuse anonymous requests");
    for p in run.o.protected.clone() {
        run.o.step(&format!("HTTP: protected {p}"));
        match run.get("GET", &p, &[]) {
            Ok(r) if (200..300).contains(&r.status) => run.sink.add(
                "VF-AUTH-01",
                Severity::Error,
                run.subject(&p),
                format!("answered {} to a request without credentials ({} bytes)", r.status, r.body.len()),
                "require authentication on this path (rampart: auth = [\"jwt\"] or [\"api_key\"] on the route)",
            ),
            Ok(r) if matches!(r.status, 401 | 403) || (300..400).contains(&r.status) => {}
            Ok(r) => run.sink.add(
                "VF-AUTH-01",
                Severity::Warn,
                run.subject(&p),
                format!("answered {} (not 401/403): is the path right?", r.status),
                "give a path that exists",
            ),
            Err(e) => run.sink.add(
                "VF-AUTH-01",
                Severity::Warn,
                run.subject(&p),
                format!("no answer: {e}"),
                "check the path",
            ),
        }
    }
}

/// VF-MTLS-01: every `--mtls` path, and with `--expect-config` every route of the target's
/// host with `client_cert = "required"`, refuses a client that presents no certificate: a
/// 401/403, or a handshake the server ends (TLS 1.3 sends its verdict after the client's
/// side is done, so the refusal shows as the request failing).
fn mtls(run: &mut Run<'_>) {
    const ID: &str = "VF-MTLS-01";
    const TITLE: &str = "mutual-TLS paths refuse a client without a certificate";
    let mut paths = run.o.mtls.clone();
    if let Some(c) = &run.o.expect {
        let host = run.target.host.clone();
        for r in &c.routes {
            let serves_host = r.hosts.is_empty() || r.hosts.iter().any(|h| h.matches(&host));
            if r.client_cert == rampart_config::runtime::ClientCertMode::Required
                && serves_host
                && r.path_regex.is_none()
                && !paths.contains(&r.path)
            {
                paths.push(r.path.clone());
            }
        }
    }
    if paths.is_empty() {
        run.sink.skip(
            ID,
            TITLE,
            "no --mtls path (and no required client_cert route in --expect-config)",
        );
        return;
    }
    run.sink.check(ID, TITLE);
    for p in paths {
        run.o.step(&format!("TLS: client certificate on {p}"));
        if !run.target.tls {
            run.sink.add(
                ID,
                Severity::Error,
                run.subject(&p),
                "a client certificate needs HTTPS; the site was given as http://",
                "verify the https:// URL",
            );
            continue;
        }
        match run.get("GET", &p, &[]) {
            Ok(r) if matches!(r.status, 401 | 403) => {}
            Ok(r) if (200..300).contains(&r.status) || (300..400).contains(&r.status) => {
                run.sink.add(
                    ID,
                    Severity::Error,
                    run.subject(&p),
                    format!(
                        "answered {} to a client without a certificate ({} bytes)",
                        r.status,
                        r.body.len()
                    ),
                    "require a client certificate on this path (rampart: client_cert = \"required\" on the route, [tls] client_ca)",
                );
            }
            Ok(r) => run.sink.add(
                ID,
                Severity::Warn,
                run.subject(&p),
                format!("answered {} (not 403): is the path right?", r.status),
                "give a path that exists",
            ),
            // The server ended the handshake: refused before any HTTP.
            Err(e) if is_certificate_refusal(&e) => {}
            Err(e) => run.sink.add(
                ID,
                Severity::Warn,
                run.subject(&p),
                format!("no answer: {e}"),
                "check the path and that the site is up",
            ),
        }
    }
}

/// A handshake the server ended for want of a client certificate (the alert's name as
/// rustls spells it, or the connection closed right after the handshake).
fn is_certificate_refusal(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    e.contains("certificaterequired")
        || e.contains("certificate required")
        || e.contains("handshakefailure")
        || e.contains("badcertificate")
}

/// VF-MET-01: no exposition text or actuator data for anonymous requests.
fn metrics(run: &mut Run<'_>) {
    for p in METRICS_PATHS {
        let Ok(r) = run.get("GET", p, &[]) else {
            continue;
        };
        let body = String::from_utf8_lossy(&r.body);
        let exposed = r.status == 200
            && (body.contains("# TYPE ")
                || body.contains("# HELP ")
                || body.contains("\"_links\"")
                || body.contains("\"propertySources\"")
                || body.contains("\"memstats\""));
        if !exposed {
            continue;
        }
        // With --expect-config: a path the config restricts to an allow list answered
        // because this host is on it (verify runs on the scraper's host); others are refused.
        if let Some(nets) = run.o.expect.as_ref().and_then(|c| allow_list_for(c, p)) {
            run.sink.add(
                "VF-MET-01",
                Severity::Info,
                run.subject(p),
                format!(
                    "answers 200 to this host, which the config's allow list ({}) includes; other clients are refused",
                    nets.join(", ")
                ),
                "run verify from outside the allow list to see the refusal",
            );
            continue;
        }
        run.sink.add(
            "VF-MET-01",
            Severity::Error,
            run.subject(p),
            format!(
                "answers 200 with internal data to anyone ({} bytes)",
                r.body.len()
            ),
            "serve metrics on an internal listener or allow-list the scraper (rampart: [admin])",
        );
    }
}

/// The networks the config allows on `path`, when it restricts them (not to everyone):
/// the public admin mount's `public_allow`, or the matching route's `allow`.
fn allow_list_for(c: &rampart_config::Config, path: &str) -> Option<Vec<String>> {
    let open = |nets: &[ipnet::IpNet]| nets.is_empty() || nets.iter().any(|n| n.prefix_len() == 0);
    let shown = |nets: &[ipnet::IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
    if let Some(p) = c.admin.as_ref().and_then(|a| a.public.as_ref()) {
        if let Some(rest) = path.strip_prefix(p.path.as_str()) {
            if p.mounts(rest) {
                return (!open(&p.allow)).then(|| shown(&p.allow));
            }
        }
    }
    let route = c
        .routes
        .iter()
        .filter(|r| r.path_regex.is_none() && path.starts_with(r.path.as_str()))
        .max_by_key(|r| r.path.len())?;
    (!open(&route.policy.allow)).then(|| shown(&route.policy.allow))
}

/// VF-SRI-01: external scripts load over HTTPS with `integrity`.
fn sri(run: &mut Run<'_>, html: &str) {
    for (src, integrity) in observatory::scripts(html) {
        let (external, secure) = observatory::script_origin(&src, &run.target.host);
        if !external {
            continue;
        }
        if !secure {
            run.sink.add(
                "VF-SRI-01",
                Severity::Error,
                run.subject("/"),
                format!("<script src=\"{src}\"> loads over plain HTTP"),
                "load it over https:// with an integrity attribute",
            );
        } else if !integrity {
            run.sink.add(
                "VF-SRI-01",
                Severity::Warn,
                run.subject("/"),
                format!("<script src=\"{src}\"> has no integrity attribute"),
                "add integrity=\"sha384-…\" crossorigin=\"anonymous\"",
            );
        }
    }
}

/// VF-HLTH-01: the health endpoint answers 200, median and worst latency of N probes.
pub(crate) fn health(run: &mut Run<'_>) -> Option<Health> {
    const TITLE: &str = "health endpoint status and latency";
    let given = run.o.health.is_some();
    let path = run.o.health.clone().unwrap_or_else(|| "/health".into());
    run.o.step(&format!("HTTP: health {path}"));
    let mut statuses = Vec::new();
    let mut times = Vec::new();
    for i in 0..run.o.health_probes.max(1) {
        match run.get("GET", &path, &[]) {
            Ok(r) => {
                if i == 0 && r.status == 404 && !given {
                    run.sink
                        .skip("VF-HLTH-01", TITLE, "no /health here (give --health PATH)");
                    return None;
                }
                statuses.push(r.status);
                times.push(r.elapsed);
            }
            Err(e) => {
                run.sink.check("VF-HLTH-01", TITLE);
                run.sink.add(
                    "VF-HLTH-01",
                    Severity::Error,
                    run.subject(&path),
                    format!("probe {} got no answer: {e}", i + 1),
                    "check the health endpoint",
                );
                return None;
            }
        }
    }
    run.sink.check("VF-HLTH-01", TITLE);
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    let bad: Vec<u16> = statuses.iter().copied().filter(|s| *s != 200).collect();
    if !bad.is_empty() {
        run.sink.add(
            "VF-HLTH-01",
            Severity::Error,
            run.subject(&path),
            format!("statuses {statuses:?} (not all 200)"),
            "the health endpoint must answer 200 while the site is up",
        );
    }
    if worst > run.o.health_max {
        run.sink.add(
            "VF-HLTH-01",
            Severity::Warn,
            run.subject(&path),
            format!(
                "slowest of {} probes took {} ms (limit {} ms)",
                times.len(),
                worst.as_millis(),
                run.o.health_max.as_millis()
            ),
            "find what the health check waits on",
        );
    }
    Some(Health {
        path,
        statuses,
        median,
        worst,
    })
}

/// The probes that change state: login limit, body limit, WebSocket upgrade.
pub(crate) fn active(run: &mut Run<'_>) {
    const LOGIN: &str = "login lockout or limit answers 429 (--active)";
    const BODY: &str = "oversized body answers 413 (--active)";
    const WS: &str = "WebSocket upgrade works (--active)";
    run.sink.check("VF-ACT-02", BODY);
    run.o.step("active: oversized body");
    // Before the login probe: a login route's rate limit (which runs before the body
    // limit) is not used up yet.
    let path = run.o.login.clone().unwrap_or_else(|| "/".to_owned());
    let r = run.send(&Req {
        tls: run.target.tls,
        port: run.target.port,
        method: "POST",
        path: &path,
        headers: &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "1073741824"),
        ],
        body: None,
    });
    match r {
        Ok(r) if r.status == 413 => {}
        Ok(r) if r.status == 429 => run.sink.add(
            "VF-ACT-02",
            Severity::Info,
            run.subject(&path),
            "a request declaring a 1 GiB body was rate limited (429) before its size was judged"
                .to_owned(),
            "run verify again once the rate limit has refilled",
        ),
        Ok(r) => run.sink.add(
            "VF-ACT-02",
            Severity::Error,
            run.subject(&path),
            format!("a request declaring a 1 GiB body got {}, not 413", r.status),
            "limit request bodies (rampart: body_limit)",
        ),
        Err(e) => run.sink.add(
            "VF-ACT-02",
            Severity::Warn,
            run.subject(&path),
            format!(
                "a request declaring a 1 GiB body got no answer ({e}): the limit is not stated"
            ),
            "refuse an oversized Content-Length at once with 413",
        ),
    }
    match run.o.login.clone() {
        None => run.sink.skip("VF-ACT-01", LOGIN, "no --login path"),
        Some(p) => {
            run.sink.check("VF-ACT-01", LOGIN);
            run.o.step(&format!(
                "active: {} wrong logins on {p}",
                run.o.login_attempts
            ));
            let mut seen = Vec::new();
            let mut limited = false;
            // As a browser (or an attacker) would: a CSRF-protected form's token comes from
            // the page first (rampart's `csrf_token`, Django's `csrftoken`).
            let mut headers: Vec<(String, String)> =
                vec![("Content-Type".into(), "application/json".into())];
            if let Ok(page) = run.get("GET", &p, &[]) {
                let token = page.all("set-cookie").into_iter().find_map(|c| {
                    let (name, rest) = c.split_once('=')?;
                    let value = rest.split(';').next()?.to_owned();
                    match name.trim() {
                        "csrf_token" => Some(("X-CSRF-Token", name.trim().to_owned(), value)),
                        "csrftoken" => Some(("X-CSRFToken", name.trim().to_owned(), value)),
                        _ => None,
                    }
                });
                if let Some((header, cookie, value)) = token {
                    let scheme = if run.target.tls { "https" } else { "http" };
                    headers.push(("Cookie".into(), format!("{cookie}={value}")));
                    headers.push((header.into(), value));
                    let authority = run.client.host_header(run.target.port, run.target.tls);
                    headers.push(("Origin".into(), format!("{scheme}://{authority}")));
                }
            }
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for i in 0..run.o.login_attempts.max(1) {
                let body =
                    format!("{{\"username\":\"rampart-verify\",\"password\":\"wrong-{i}\"}}");
                let r = run.send(&Req {
                    tls: run.target.tls,
                    port: run.target.port,
                    method: "POST",
                    path: &p,
                    headers: &headers,
                    body: Some(body.as_bytes()),
                });
                match r {
                    Ok(r) => {
                        seen.push(r.status);
                        // 429, or 423 from a lockout configured to say Locked.
                        if r.status == 429 || r.status == 423 {
                            limited = true;
                            break;
                        }
                    }
                    Err(_) => seen.push(0),
                }
            }
            if !limited {
                run.sink.add(
                    "VF-ACT-01",
                    Severity::Error,
                    run.subject(&p),
                    format!(
                        "{} wrong logins, never a 429 or 423 (statuses {seen:?})",
                        seen.len()
                    ),
                    "limit login attempts per IP and per account (rampart: lockout on the route)",
                );
            }
        }
    }
    match run.o.websocket.clone() {
        None => run.sink.skip("VF-ACT-03", WS, "no --websocket path"),
        Some(p) => {
            run.sink.check("VF-ACT-03", WS);
            run.o.step(&format!("active: WebSocket {p}"));
            let key = "dGhlIHNhbXBsZSBub25jZQ==";
            let r = run.send(&Req {
                tls: run.target.tls,
                port: run.target.port,
                method: "GET",
                path: &p,
                headers: &[
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", key),
                    ("Sec-WebSocket-Version", "13"),
                ],
                body: None,
            });
            // RFC 6455's example key and its accept value.
            let want = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
            match r {
                Ok(r) if r.status == 101 && r.header("sec-websocket-accept") == Some(want) => {}
                Ok(r) => run.sink.add(
                    "VF-ACT-03",
                    Severity::Error,
                    run.subject(&p),
                    format!(
                        "upgrade answered {} (Sec-WebSocket-Accept: {})",
                        r.status,
                        r.header("sec-websocket-accept").unwrap_or("absent")
                    ),
                    "pass WebSocket upgrades through on this path",
                ),
                Err(e) => run.sink.add(
                    "VF-ACT-03",
                    Severity::Error,
                    run.subject(&p),
                    format!("upgrade got no answer: {e}"),
                    "pass WebSocket upgrades through on this path",
                ),
            }
        }
    }
}
