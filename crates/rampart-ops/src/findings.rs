//! Findings: what `preflight` and `verify` report. A check (catalog id and title) runs or
//! is skipped with a reason; what it finds is a [`Finding`] with a severity, the subject, the
//! evidence and the fix. A [`Sink`] collects one run; [`output`] writes the shared formats.

pub(crate) mod output;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A note.
    Info,
    /// Reported; does not refuse.
    Warn,
    /// Refuses a production start.
    Error,
}

impl Severity {
    /// `error`, `warn`, `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Catalog id (`PF-HSTS-01`).
    pub id: &'static str,
    /// Severity.
    pub severity: Severity,
    /// The config key, variable, file or host it concerns (`headers.hsts`, `.env:3 DEBUG`).
    pub subject: String,
    /// What is wrong, with the evidence (never a secret's value).
    pub why: String,
    /// How to fix it.
    pub fix: String,
    /// An error accepted by `allow` / `--allow` (it no longer refuses).
    pub allowed: bool,
}

/// A check that was run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Catalog id.
    pub id: &'static str,
    /// What it tests.
    pub title: &'static str,
    /// Why it did not run, when it did not.
    pub skipped: Option<String>,
}

/// Findings of severity `s` that count (not accepted by `allow`).
pub fn count(findings: &[Finding], s: Severity) -> usize {
    findings
        .iter()
        .filter(|f| f.severity == s && !f.allowed)
        .count()
}

/// A check's status for JUnit and JSON: `skipped`, else by its worst finding not allowed:
/// `failed` (an error), `warning`, or `passed`.
pub(crate) fn check_status(checks: &[Check], findings: &[Finding], id: &str) -> &'static str {
    if checks.iter().any(|c| c.id == id && c.skipped.is_some()) {
        return "skipped";
    }
    let worst = findings
        .iter()
        .filter(|f| f.id == id && !f.allowed)
        .map(|f| f.severity)
        .max();
    match worst {
        Some(Severity::Error) => "failed",
        Some(Severity::Warn) => "warning",
        _ => "passed",
    }
}

/// Collects findings for one run.
pub(crate) struct Sink {
    pub(crate) findings: Vec<Finding>,
    pub(crate) checks: Vec<Check>,
}

impl Sink {
    pub(crate) fn check(&mut self, id: &'static str, title: &'static str) {
        if !self.checks.iter().any(|c| c.id == id) {
            self.checks.push(Check {
                id,
                title,
                skipped: None,
            });
        }
    }
    pub(crate) fn skip(&mut self, id: &'static str, title: &'static str, why: &str) {
        if !self.checks.iter().any(|c| c.id == id) {
            self.checks.push(Check {
                id,
                title,
                skipped: Some(why.to_owned()),
            });
        }
    }
    /// A check that ran but found nothing to look at is reported skipped, not passed.
    pub(crate) fn nothing_to_check(&mut self, id: &'static str, why: &str) {
        if self.findings.iter().any(|f| f.id == id) {
            return;
        }
        if let Some(c) = self
            .checks
            .iter_mut()
            .find(|c| c.id == id && c.skipped.is_none())
        {
            c.skipped = Some(why.to_owned());
        }
    }
    pub(crate) fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        subject: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let f = Finding {
            id,
            severity,
            subject: subject.into(),
            why: why.into(),
            fix: fix.into(),
            allowed: false,
        };
        if !self.findings.contains(&f) {
            self.findings.push(f);
        }
    }
}
