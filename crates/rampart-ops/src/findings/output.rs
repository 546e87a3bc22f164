//! The report formats every findings report shares: text groups by severity, the JSON
//! `checks` array, JUnit XML.

use std::fmt::Write as _;

use super::{Check, Finding, Severity};

/// `s` in the ANSI colour `code` when `colour`.
pub(crate) fn paint(colour: bool, code: &str, s: &str) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// The findings not allowed, grouped by severity (errors, warnings, notes), each with its
/// evidence and fix.
pub(crate) fn finding_groups(out: &mut String, findings: &[Finding], colour: bool) {
    for (sev, label, code) in [
        (Severity::Error, "ERRORS", "1;31"),
        (Severity::Warn, "WARNINGS", "1;33"),
        (Severity::Info, "NOTES", "1;36"),
    ] {
        let group: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == sev && !f.allowed)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{} ({})", paint(colour, code, label), group.len());
        for f in group {
            let _ = writeln!(out, "  {} {}", paint(colour, code, f.id), f.subject);
            let _ = writeln!(out, "      {}", f.why);
            let _ = writeln!(out, "      fix: {}", f.fix);
        }
        out.push('\n');
    }
}

/// The `checks` array of a JSON report.
pub(crate) fn checks_json(
    checks: &[Check],
    status: impl Fn(&str) -> &'static str,
) -> Vec<serde_json::Value> {
    checks
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "title": c.title,
                "status": status(c.id),
                "skipped": c.skipped,
            })
        })
        .collect()
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML for any checks and findings (`status` says failed / skipped / … per check).
pub(crate) fn junit_of(
    tool: &str,
    suite: &str,
    checks: &[Check],
    findings: &[Finding],
    status: impl Fn(&str) -> &'static str,
) -> String {
    let failures = checks.iter().filter(|c| status(c.id) == "failed").count();
    let skipped = checks.iter().filter(|c| c.skipped.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{tool}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        checks.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        checks.len()
    );
    for c in checks {
        let _ = write!(
            out,
            "    <testcase classname=\"{suite}\" name=\"{} {}\"",
            c.id,
            xml(c.title)
        );
        let findings: Vec<_> = findings.iter().filter(|f| f.id == c.id).collect();
        if c.skipped.is_none() && findings.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        if let Some(why) = &c.skipped {
            let _ = writeln!(out, "      <skipped message=\"{}\"/>", xml(why));
        }
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !f.allowed)
            .collect();
        if let Some(first) = errors.first() {
            let body: Vec<String> = errors
                .iter()
                .map(|f| format!("{}: {} (fix: {})", f.subject, f.why, f.fix))
                .collect();
            let _ = writeln!(
                out,
                "      <failure message=\"{}: {}\" type=\"error\">{}</failure>",
                xml(&first.subject),
                xml(&first.why),
                xml(&body.join("\n"))
            );
        }
        let rest: Vec<String> = findings
            .iter()
            .filter(|f| f.severity != Severity::Error || f.allowed)
            .map(|f| {
                format!(
                    "{}{}: {}: {}",
                    if f.allowed { "allowed " } else { "" },
                    f.severity.as_str(),
                    f.subject,
                    f.why
                )
            })
            .collect();
        if !rest.is_empty() {
            let _ = writeln!(
                out,
                "      <system-out>{}</system-out>",
                xml(&rest.join("\n"))
            );
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
