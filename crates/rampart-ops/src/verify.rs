//! `rampart verify URL`: grades a live deployment from the outside (check catalog B2,
//! VF-*), for any site, not only one behind rampart. Two grades side by side, the MDN
//! HTTP Observatory score (A1) and the SSL Labs rating as testssl.sh computes it (A2), then
//! rampart's own stricter findings.
//!
//! Without `active`, only GET, HEAD and OPTIONS are sent.

mod client;
mod expect;
pub mod hello;
mod http_checks;
pub mod observatory;
mod output;
pub mod ssllabs;
mod state;
mod tls;

pub use client::{Client, Req, Resp};
pub use output::{json, junit, text};
use state::Run;
pub use state::{is_grade, meets, Health, Options, Progress, Report, Target, TlsReport};

use crate::findings::{Severity, Sink};

/// Probes the target and grades it.
///
/// # Errors
/// The URL does not parse or the host does not resolve (an unreachable host is a finding).
pub fn run(o: &Options) -> Result<Report, String> {
    let started = std::time::Instant::now();
    let target = Target::parse(&o.url)?;
    let client = Client::new(&target.host, target.port, o.timeout)?;
    let mut run = Run {
        o,
        target: target.clone(),
        client,
        sink: Sink {
            findings: Vec::new(),
            checks: Vec::new(),
        },
        requests: std::sync::atomic::AtomicUsize::new(0),
        cert_ok: true,
    };
    let mut tls_report = None;
    let mut facts = ssllabs::Facts::default();
    if target.tls {
        o.step("TLS: certificate");
        let (report, f, cert_ok) = tls::probe(&mut run);
        run.cert_ok = cert_ok;
        tls_report = Some(report);
        facts = f;
    }
    o.step("HTTP: headers");
    let main = run.get("GET", "/", &[]);
    let mut observed = observatory::Observed {
        https: target.tls && main.is_ok(),
        cert_valid: run.cert_ok,
        host: target.host.clone(),
        ..observatory::Observed::default()
    };
    let mut health = None;
    match &main {
        Ok(resp) => {
            observed.headers = resp.headers.clone();
            if resp
                .header("content-type")
                .is_some_and(|c| c.to_ascii_lowercase().contains("html"))
            {
                observed.html = Some(String::from_utf8_lossy(&resp.body).into_owned());
            }
            http_checks::all(&mut run, resp, &mut observed);
            health = http_checks::health(&mut run);
            if o.active {
                http_checks::active(&mut run);
            }
            if let Some(c) = &o.expect {
                o.step("comparing with the config");
                expect::check(&mut run, c);
            }
        }
        Err(e) => {
            run.sink.add(
                "VF-CONN-01",
                Severity::Error,
                run.subject("/"),
                format!("no answer: {e}"),
                "check the URL, the port and that the site is up",
            );
        }
    }
    // Observatory aborts a scan of a site that does not answer: no score.
    let http = if main.is_ok() {
        observatory::score(&observed)
    } else {
        observatory::Score {
            score: 0,
            grade: "F",
            tests: Vec::new(),
        }
    };
    if let Some(t) = tls_report.as_mut() {
        facts.hsts_max_age = observed
            .headers
            .iter()
            .find(|(k, _)| k == "strict-transport-security")
            .and_then(|(_, v)| observatory::hsts_max_age(v));
        if !t.protocols.is_empty() {
            t.grade = Some(ssllabs::rate(&facts));
        }
    }
    run.sink.check("VF-GRADE", "both grades meet --min-grade");
    for (kind, g) in [
        ("HTTP (Observatory)", Some(http.grade)),
        (
            "TLS (SSL Labs)",
            tls_report
                .as_ref()
                .and_then(|t| t.grade.as_ref())
                .map(|g| g.grade.as_str()),
        ),
    ] {
        if let Some(g) = g.filter(|g| !meets(g, &o.min_grade)) {
            run.sink.add(
                "VF-GRADE",
                Severity::Error,
                o.url.clone(),
                format!("{kind} grade {g} is below the minimum {}", o.min_grade),
                "fix the findings above (each names what costs points)",
            );
        }
    }
    let Run { sink, requests, .. } = run;
    let mut findings = sink.findings;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(Report {
        url: o.url.clone(),
        http,
        tls: tls_report,
        health,
        findings,
        checks: sink.checks,
        min_grade: o.min_grade.clone(),
        insecure: o.insecure,
        requests: requests.into_inner(),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("https://Example.com").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "example.com", 443));
        let t = Target::parse("https://127.0.0.1:8443/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8443));
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "::1", 8080));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("https://x:0").is_err());
        assert!(Target::parse("https://x:99999").is_err());
        assert!(Target::parse("https://").is_err());
    }

    #[test]
    fn grades_compare() {
        assert!(meets("A+", "A"));
        assert!(meets("A", "A"));
        assert!(!meets("A-", "A"));
        assert!(!meets("T", "F"));
        assert!(meets("B", "B"));
        assert!(!meets("M", "C"));
    }
}
