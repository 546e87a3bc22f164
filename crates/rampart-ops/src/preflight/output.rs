//! Report formats. JSON (version 1) is stable:
//!
//! ```json
//! {"version": 1, "tool": "rampart preflight", "status": "failed|warnings|passed",
//!  "summary": {"errors": 1, "warnings": 0, "infos": 0, "allowed": 0},
//!  "findings": [{"id": "PF-HSTS-01", "severity": "error", "subject": "routes[0] (app)",
//!                "why": "…", "fix": "…", "allowed": false}],
//!  "checks": [{"id": "PF-HSTS-01", "title": "…", "status": "failed|warning|passed|skipped",
//!              "skipped": null}]}
//! ```

use std::fmt::Write as _;

use super::Report;
use crate::findings::output::{checks_json, finding_groups, junit_of, paint};

/// The report as text for a person: findings grouped by severity, with colour when `colour`.
pub fn text(r: &Report, colour: bool) -> String {
    let paint = |code: &str, s: &str| paint(colour, code, s);
    let mut out = String::new();
    finding_groups(&mut out, &r.findings, colour);
    let allowed: Vec<_> = r.findings.iter().filter(|f| f.allowed).collect();
    if !allowed.is_empty() {
        let _ = writeln!(out, "{} ({})", paint("1;35", "ALLOWED"), allowed.len());
        for f in allowed {
            let _ = writeln!(out, "  {} {}: {}", f.id, f.subject, f.why);
        }
        out.push('\n');
    }
    let skipped: Vec<_> = r.checks.iter().filter(|c| c.skipped.is_some()).collect();
    let passed = r
        .checks
        .iter()
        .filter(|c| r.check_status(c.id) == "passed")
        .count();
    for c in &skipped {
        let _ = writeln!(
            out,
            "skipped {} ({}): {}",
            c.id,
            c.title,
            c.skipped.as_deref().unwrap_or("")
        );
    }
    let status = status(r);
    let _ = writeln!(
        out,
        "preflight {}: {} errors, {} warnings, {} checks passed, {} skipped",
        match status {
            "failed" => paint("1;31", "FAILED"),
            "warnings" => paint("1;33", "passed with warnings"),
            _ => paint("1;32", "passed"),
        },
        r.errors(),
        r.warnings(),
        passed,
        skipped.len()
    );
    out
}

fn status(r: &Report) -> &'static str {
    r.posture().status()
}

/// The report as JSON (see the module docs for the shape).
pub fn json(r: &Report) -> serde_json::Value {
    let p = r.posture();
    serde_json::json!({
        "version": 1,
        "tool": "rampart preflight",
        "status": status(r),
        "summary": {
            "errors": p.errors,
            "warnings": p.warnings,
            "infos": p.infos,
            "allowed": p.allowed.len(),
        },
        "findings": r.findings.iter().map(|f| serde_json::json!({
            "id": f.id,
            "severity": f.severity.as_str(),
            "subject": f.subject,
            "why": f.why,
            "fix": f.fix,
            "allowed": f.allowed,
        })).collect::<Vec<_>>(),
        "checks": checks_json(&r.checks, |id| r.check_status(id)),
    })
}

/// The report as JUnit XML: one test case per check; an error finding is a failure, a
/// skipped check is skipped, warnings go to `system-out`.
pub fn junit(r: &Report) -> String {
    junit_of(
        "rampart preflight",
        "preflight",
        &r.checks,
        &r.findings,
        |id| r.check_status(id),
    )
}
