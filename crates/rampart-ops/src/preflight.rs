//! `rampart preflight`: the checks of catalog part B1 (PF-*) over the edge config, the
//! application's environment and the deployment's files, with text, JSON and JUnit output.
//!
//! Every check that runs is recorded (passed, failed, or skipped with the reason), so a
//! report says what was looked at, not only what was wrong.

mod backups;
mod edge;
mod env;
pub(crate) mod files;
pub(crate) mod output;
mod trust;

use std::path::PathBuf;
use std::time::SystemTime;

use rampart_config::dotenv::EnvFile;
use rampart_config::Config;

pub use crate::findings::{Check, Finding, Severity};
pub use output::{json, junit, text};

use crate::findings::Sink;

/// The application's environment: a `.env` file and/or a process environment.
#[derive(Debug, Clone)]
pub struct EnvSource {
    /// `.env` path or `process environment`, for subjects.
    pub name: String,
    /// The parsed file (for line numbers and lint), when it is a file.
    pub file: Option<EnvFile>,
    /// `(key, value, line)`.
    pub vars: Vec<(String, String, Option<usize>)>,
}

impl EnvSource {
    /// A parsed `.env` file.
    pub fn from_file(name: &str, file: EnvFile) -> Self {
        let mut vars: Vec<(String, String, Option<usize>)> = Vec::new();
        for l in &file.lines {
            if let Some(e) = l.entry.as_ref().filter(|e| !e.no_equals) {
                vars.retain(|(k, _, _)| *k != e.key);
                vars.push((e.key.clone(), e.value.clone(), Some(l.number)));
            }
        }
        Self {
            name: name.to_owned(),
            file: Some(file),
            vars,
        }
    }

    /// The process environment.
    pub fn process() -> Self {
        let mut vars: Vec<_> = std::env::vars().map(|(k, v)| (k, v, None)).collect();
        vars.sort();
        Self {
            name: "process environment".into(),
            file: None,
            vars,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    fn subject(&self, key: &str, line: Option<usize>) -> String {
        match line {
            Some(n) => format!("{}:{n} {key}", self.name),
            None => format!("{} {key}", self.name),
        }
    }
}

/// What a run looks at.
pub struct Inputs<'a> {
    /// The validated edge config, if there is one.
    pub config: Option<&'a Config>,
    /// The application's environment.
    pub env: Vec<EnvSource>,
    /// Required keys (config `[preflight] required` and `--require`).
    pub required: Vec<(String, rampart_config::posture::Requirement)>,
    /// The git repository, if any.
    pub repo: Option<PathBuf>,
    /// Extra trusted CAs (PEM file).
    pub ca_file: Option<PathBuf>,
    /// Commits of history scanned.
    pub history_depth: usize,
    /// Accepted findings: `(rule, subject)`.
    pub allow: Vec<(String, Option<String>)>,
    /// The user id the edge runs as (owner rule of PF-KEY-01).
    pub uid: u32,
    /// Now (certificates' remaining life).
    pub now: SystemTime,
}

/// The result of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Checks run or skipped.
    pub checks: Vec<Check>,
}

impl Report {
    /// Errors not accepted by `allow`.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }
    /// Warnings.
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warn)
    }
    fn count(&self, s: Severity) -> usize {
        crate::findings::count(&self.findings, s)
    }
    /// The summary kept on the config for `/health` and `/metrics`.
    pub fn posture(&self) -> rampart_config::posture::Posture {
        rampart_config::posture::Posture {
            errors: self.errors(),
            warnings: self.warnings(),
            infos: self.count(Severity::Info),
            allowed: self
                .findings
                .iter()
                .filter(|f| f.allowed)
                .map(|f| format!("{} {}", f.id, f.subject))
                .collect(),
        }
    }
    /// Whether a check found anything (for JUnit and JSON).
    pub fn check_status(&self, id: &str) -> &'static str {
        crate::findings::check_status(&self.checks, &self.findings, id)
    }
}

/// Runs every check that applies.
pub fn run(inputs: &Inputs<'_>) -> Report {
    let mut s = Sink {
        findings: Vec::new(),
        checks: Vec::new(),
    };
    match inputs.config {
        Some(c) => {
            edge::check(c, &mut s);
            files::certificates(c, inputs, &mut s);
            files::client_auth(c, inputs, &mut s);
            files::key_files(c, inputs.uid, &mut s);
            let now = inputs
                .now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            trust::check(c, now, &mut s);
            backups::check(c, &mut s);
        }
        None => {
            for (id, title) in edge::CHECKS
                .iter()
                .chain(files::CERT_CHECKS)
                .chain(trust::CHECKS)
                .chain(&[("PF-BAK-01", "backups private and encrypted")])
            {
                s.skip(id, title, "no rampart config given");
            }
        }
    }
    env::check(inputs, &mut s);
    files::git(inputs, &mut s);
    let mut findings = merge_routes(s.findings);
    for f in &mut findings {
        f.allowed = f.severity == Severity::Error
            && inputs.allow.iter().any(|(rule, subject)| {
                rule == f.id
                    && subject.as_deref().is_none_or(|want| {
                        f.subject
                            .split(", ")
                            .any(|one| one == want || one.starts_with(&format!("{want} ")))
                    })
            });
    }
    s.findings = findings;
    s.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.id.cmp(b.id))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    s.checks.sort_by(|a, b| a.id.cmp(b.id));
    Report {
        findings: s.findings,
        checks: s.checks,
    }
}

/// The same finding on several routes (a global header setting) is reported once, naming
/// every route.
fn merge_routes(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        let same = out.iter_mut().find(|o| {
            o.subject.starts_with("routes[")
                && f.subject.starts_with("routes[")
                && o.id == f.id
                && o.severity == f.severity
                && o.why == f.why
        });
        match same {
            Some(o) => {
                o.subject.push_str(", ");
                o.subject.push_str(&f.subject);
            }
            None => out.push(f),
        }
    }
    out
}

/// The effective user id of this process (from `/proc/self/status`; 0 elsewhere).
pub fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(0)
}
