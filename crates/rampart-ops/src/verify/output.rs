//! Report formats. JSON (version 1) is stable:
//!
//! ```json
//! {"version": 1, "tool": "rampart verify", "url": "https://example.com",
//!  "status": "passed|failed", "min_grade": "A",
//!  "http": {"score": 105, "grade": "A+",
//!           "tests": [{"test": "strict-transport-security",
//!                      "result": "hsts-implemented-max-age-at-least-six-months", "modifier": 0}]},
//!  "tls": {"grade": "A+", "score": 96, "protocol": 100, "key_exchange": 100, "cipher": 90,
//!          "caps": [{"cap": "B", "reason": "TLS 1.0 offered"}], "warnings": ["…"],
//!          "protocols": ["TLSv1.2", "TLSv1.3"],
//!          "suites": [{"protocol": "TLSv1.2", "name": "ECDHE-ECDSA-AES128-GCM-SHA256"}],
//!          "negotiated": {"protocol": "TLSv1.3", "suite": "…", "group": "X25519"},
//!          "certificate": {"subject": "…", "issuer": "…", "names": "…", "valid": "…",
//!                          "key": "EC 256 bits", "signature": "…", "chain": "…"}} | null,
//!  "health": {"path": "/health", "statuses": [200], "median_ms": 1.2, "worst_ms": 3.4} | null,
//!  "summary": {"errors": 0, "warnings": 1, "infos": 2, "requests": 180, "seconds": 1.4},
//!  "findings": [{"id": "VF-HSTS-01", "severity": "warn", "subject": "https://host/",
//!                "why": "…", "fix": "…"}],
//!  "checks": [{"id": "VF-HSTS-01", "title": "…", "status": "failed|warning|passed|skipped",
//!              "skipped": null}]}
//! ```

use std::fmt::Write as _;

use super::state::Report;
use crate::findings::Severity;

/// The report for a person: the two grades side by side, then findings by severity.
pub fn text(r: &Report, colour: bool) -> String {
    let paint = |code: &str, s: &str| crate::findings::output::paint(colour, code, s);
    let grade_colour = |g: &str| match g.chars().next() {
        Some('A') => "1;32",
        Some('B' | 'C') => "1;33",
        _ => "1;31",
    };
    let mut out = String::new();
    let _ = writeln!(out, "rampart verify {}\n", r.url);
    let tls = r.tls.as_ref().and_then(|t| t.grade.as_ref());
    let _ = writeln!(
        out,
        "  HTTP (MDN Observatory)  {:<4} score {}",
        paint(grade_colour(r.http.grade), r.http.grade),
        r.http.score
    );
    match tls {
        Some(g) => {
            let _ = writeln!(
                out,
                "  TLS  (SSL Labs rating)  {:<4} score {} = 0.3 x protocol {} + 0.3 x key exchange {} + 0.4 x cipher {}",
                paint(grade_colour(&g.grade), &g.grade),
                g.score,
                g.protocol,
                g.key_exchange,
                g.cipher
            );
            for (cap, why) in &g.caps {
                let _ = writeln!(out, "       capped at {cap}: {why}");
            }
            for w in &g.warnings {
                let _ = writeln!(out, "       warning: {w}");
            }
        }
        None => {
            let _ = writeln!(out, "  TLS  (SSL Labs rating)  n/a");
        }
    }
    if r.insecure {
        let _ = writeln!(out, "  (--insecure: certificate trust was not required)");
    }
    out.push('\n');
    if let Some(t) = &r.tls {
        if !t.protocols.is_empty() {
            let _ = writeln!(out, "  protocols: {}", t.protocols.join(", "));
        }
        if let Some((v, s, g)) = &t.negotiated {
            let _ = writeln!(out, "  negotiated: {v} {s} {g}");
        }
        if let Some(pq) = t.post_quantum {
            let _ = writeln!(
                out,
                "  post-quantum key exchange (X25519MLKEM768): {}",
                if pq { "offered" } else { "not offered" }
            );
        }
        let old: Vec<String> = t.suites.iter().map(|(v, s)| format!("{v} {s}")).collect();
        if !old.is_empty() {
            let _ = writeln!(out, "  suites: {}", old.join(", "));
        }
        for (k, v) in &t.certificate {
            let _ = writeln!(out, "  certificate {k}: {v}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "  Observatory tests:");
    for t in &r.http.tests {
        let _ = writeln!(
            out,
            "    {:>4}  {:<31} {}",
            format!("{:+}", t.modifier),
            t.test,
            t.result
        );
    }
    if let Some(h) = &r.health {
        let _ = writeln!(
            out,
            "\n  health {}: {} probes, median {:.1} ms, worst {:.1} ms",
            h.path,
            h.statuses.len(),
            h.median.as_secs_f64() * 1e3,
            h.worst.as_secs_f64() * 1e3
        );
    }
    out.push('\n');
    // verify has no `allow`: every finding is listed.
    crate::findings::output::finding_groups(&mut out, &r.findings, colour);
    let skipped: Vec<_> = r.checks.iter().filter(|c| c.skipped.is_some()).collect();
    for c in &skipped {
        let _ = writeln!(
            out,
            "  skipped {} {}: {}",
            c.id,
            c.title,
            c.skipped.as_deref().unwrap_or_default()
        );
    }
    let verdict = if r.passed() {
        paint("1;32", "verify PASSED")
    } else {
        paint("1;31", "verify FAILED")
    };
    let _ = writeln!(
        out,
        "\n{verdict}: HTTP {} / TLS {} (minimum {}), {} errors, {} warnings; {} requests in {:.1} s",
        r.http.grade,
        r.tls_grade().unwrap_or("n/a"),
        r.min_grade,
        r.errors(),
        r.warnings(),
        r.requests,
        r.elapsed.as_secs_f64()
    );
    out
}

/// The report as JSON (format above).
pub fn json(r: &Report) -> serde_json::Value {
    let tls = r.tls.as_ref().map(|t| {
        let g = t.grade.as_ref();
        serde_json::json!({
            "grade": g.map(|g| g.grade.clone()),
            "score": g.map(|g| g.score),
            "protocol": g.map(|g| g.protocol),
            "key_exchange": g.map(|g| g.key_exchange),
            "cipher": g.map(|g| g.cipher),
            "caps": g.map(|g| g.caps.iter().map(|(c, why)| serde_json::json!({"cap": c, "reason": why})).collect::<Vec<_>>()).unwrap_or_default(),
            "warnings": g.map(|g| g.warnings.clone()).unwrap_or_default(),
            "protocols": t.protocols,
            "suites": t.suites.iter().map(|(v, s)| serde_json::json!({"protocol": v, "name": s})).collect::<Vec<_>>(),
            "negotiated": t.negotiated.as_ref().map(|(v, s, g)| serde_json::json!({"protocol": v, "suite": s, "group": g})),
            "post_quantum": t.post_quantum,
            "certificate": t.certificate.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        })
    });
    serde_json::json!({
        "version": 1,
        "tool": "rampart verify",
        "url": r.url,
        "status": if r.passed() { "passed" } else { "failed" },
        "min_grade": r.min_grade,
        "http": {
            "score": r.http.score,
            "grade": r.http.grade,
            "tests": r.http.tests.iter().map(|t| serde_json::json!({
                "test": t.test, "result": t.result, "modifier": t.modifier,
            })).collect::<Vec<_>>(),
        },
        "tls": tls,
        "health": r.health.as_ref().map(|h| serde_json::json!({
            "path": h.path,
            "statuses": h.statuses,
            "median_ms": h.median.as_secs_f64() * 1e3,
            "worst_ms": h.worst.as_secs_f64() * 1e3,
        })),
        "summary": {
            "errors": r.errors(),
            "warnings": r.warnings(),
            "infos": r.findings.iter().filter(|f| f.severity == Severity::Info).count(),
            "requests": r.requests,
            "seconds": r.elapsed.as_secs_f64(),
        },
        "findings": r.findings.iter().map(|f| serde_json::json!({
            "id": f.id,
            "severity": f.severity.as_str(),
            "subject": f.subject,
            "why": f.why,
            "fix": f.fix,
        })).collect::<Vec<_>>(),
        "checks": crate::findings::output::checks_json(&r.checks, |id| r.check_status(id)),
    })
}

/// The report as JUnit XML: one test case per check.
pub fn junit(r: &Report) -> String {
    crate::findings::output::junit_of("rampart verify", "verify", &r.checks, &r.findings, |id| {
        r.check_status(id)
    })
}
