//! `--expect-config`: the live site matches what a rampart config promises, route by
//! route (VF-CFG-01): the headers it sets and removes, HSTS, authentication, rate-limit
//! headers, CORS origins, and the HTTP → HTTPS redirect.

use rampart_config::runtime::HostPattern;
use rampart_config::Config;

use super::state::Run;
use crate::findings::Severity;

const ID: &str = "VF-CFG-01";

/// Compares every route reachable with the target's host name.
pub(crate) fn check(run: &mut Run<'_>, c: &Config) {
    run.sink.check(ID, "the live site matches --expect-config");
    let host = run.target.host.clone();
    let mut probed = 0;
    for route in &c.routes {
        let matches_host = route.hosts.is_empty()
            || route.hosts.iter().any(|h| match h {
                HostPattern::Exact(e) => *e == host,
                HostPattern::Wildcard(w) => host.ends_with(w.as_str()),
            });
        // A regex route names no one path to ask for.
        if !matches_host || route.path_regex.is_some() {
            continue;
        }
        probed += 1;
        let path = route.path.clone();
        let subject = format!("{} (route {})", run.subject(&path), route.name);
        let Ok(r) = run.get("GET", &path, &[]) else {
            run.sink.add(
                ID,
                Severity::Error,
                subject,
                "no answer",
                "check that the config is the one deployed",
            );
            continue;
        };
        let mut miss = Vec::new();
        for (name, value) in &route.headers.set {
            let want = value.to_str().unwrap_or_default();
            match r.header(name.as_str()) {
                // A per-response nonce makes the CSP differ; its directives stay.
                Some(got) if got == want => {}
                Some(got)
                    if route.csp_nonce.is_some()
                        && name.as_str().starts_with("content-security-policy")
                        && nonce_of(got).is_some_and(|n| {
                            got == rampart_config::site::csp_with_nonce(want, n)
                        }) => {}
                Some(got) => miss.push(format!("{name}: {got} (config: {want})")),
                None if route.policy.auth.is_empty() || r.status != 401 => {
                    miss.push(format!("{name} missing (config: {want})"))
                }
                None => {}
            }
        }
        if run.target.tls {
            if let Some(h) = &route.headers.hsts {
                let want = h.to_str().unwrap_or_default();
                if r.header("strict-transport-security") != Some(want) {
                    miss.push(format!(
                        "strict-transport-security: {} (config: {want})",
                        r.header("strict-transport-security").unwrap_or("absent")
                    ));
                }
            }
        }
        for name in &route.headers.remove {
            if let Some(v) = r.header(name.as_str()) {
                if name.as_str() != "server" || v != "rampart" {
                    miss.push(format!("{name}: {v} present (config removes it)"));
                }
            }
        }
        if !route.policy.auth.is_empty()
            && !route.policy.auth_optional
            && !matches!(r.status, 401 | 403)
        {
            miss.push(format!(
                "answered {} without credentials (config: auth {:?})",
                r.status, route.policy.auth
            ));
        }
        if !route.policy.limits.is_empty()
            && (200..300).contains(&r.status)
            && r.header("ratelimit-limit").is_none()
        {
            miss.push("no RateLimit-Limit header (config: a rate limit on this route)".into());
        }
        if let Some(ci) = route.policy.cors {
            let cors = &c.policies.cors[ci];
            // A method both the policy and the route take (a POST-only login route
            // refuses a GET preflight, rightly).
            let method = cors
                .methods
                .iter()
                .find(|m| route.policy.methods.is_empty() || route.policy.methods.contains(m))
                .map(|m| m.as_str().to_owned());
            if let (Some(allowed), Some(method)) = (cors.origins.first(), method) {
                let pre = run.get(
                    "OPTIONS",
                    &path,
                    &[
                        ("Origin", allowed),
                        ("Access-Control-Request-Method", &method),
                    ],
                );
                // A preflight is a request like any other to the route's IP limits: when
                // an earlier check (the active login attempts) spent them, its 429 says
                // nothing about CORS.
                let limited = pre.as_ref().is_ok_and(|p| p.status == 429);
                let got = pre
                    .ok()
                    .and_then(|p| p.header("access-control-allow-origin").map(str::to_owned));
                if !limited && got.as_deref() != Some(allowed.as_str()) {
                    miss.push(format!(
                        "CORS preflight from {allowed}: Access-Control-Allow-Origin {} (config allows it)",
                        got.as_deref().unwrap_or("absent")
                    ));
                }
            }
        }
        if !miss.is_empty() {
            run.sink.add(
                ID,
                Severity::Error,
                subject,
                miss.join("; "),
                "deploy the reviewed config (rampart reload) or correct the config",
            );
        }
    }
    if run.target.tls && c.server.http.is_some() && c.tls.is_some() {
        let redirect_failed = run
            .sink
            .findings
            .iter()
            .any(|f| f.id == "VF-RED-01" && f.severity == Severity::Error);
        if redirect_failed {
            run.sink.add(
                ID,
                Severity::Error,
                run.subject("/"),
                "the config redirects plain HTTP to HTTPS; the live site does not",
                "check that plain HTTP reaches rampart's listener",
            );
        }
    }
    if probed == 0 {
        run.sink.add(
            ID,
            Severity::Warn,
            run.subject("/"),
            format!("no route of the config serves the host {host}"),
            "verify the host the config serves",
        );
    }
}

/// The nonce in a served policy (`'nonce-XYZ'` → `XYZ`).
fn nonce_of(csp: &str) -> Option<&str> {
    let at = csp.find("'nonce-")? + "'nonce-".len();
    csp[at..].split('\'').next()
}
