//! `[server] environment`, `[preflight]`, and the posture summary a preflight run leaves on
//! the config for `/health` and `/metrics`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `[preflight]`: what `rampart preflight` (and `serve` in production) checks besides the
/// config itself.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPreflight {
    /// Findings accepted knowingly: a rule id (`"PF-CRT-02"`) or a rule and its subject
    /// (`"PF-CSP-01:routes[1]"`, `"PF-DBG-01:.env:4"`). Allowed errors do not refuse; each
    /// is audited (`preflight.allowed`) at start.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The application's repository (PF-GIT-01).
    pub repo: Option<String>,
    /// Extra trusted CA certificates (PEM) for the certificate chain check.
    pub ca_file: Option<String>,
    /// Keys the application's environment must have, with a type: `{ DATABASE_URL = "url",
    /// WORKERS = "int", SECRET_KEY = "secret" }` (`string`, `secret`, `url`, `int`, `bool`,
    /// `email`), optionally with the value it must have: `{ ENFORCE_HTTPS = "bool=true",
    /// REQUIRE_AUTHENTICATION = "bool=true", MASK_PII_IN_LOGS = "bool=true" }` (a
    /// switched-off safety flag is then an error; `bool` accepts true/1/yes/on). `--require
    /// KEY:bool=true` does the same.
    #[serde(default)]
    pub required: BTreeMap<String, String>,
    /// Also check rampart's own process environment as the application's (one container,
    /// one environment).
    pub process_env: Option<bool>,
    /// Commits of git history scanned for committed `.env` files and secrets.
    pub history_depth: Option<usize>,
}

/// How `serve` treats findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Findings are reported, never enforced.
    #[default]
    Development,
    /// Any error finding refuses a start or a reload.
    Production,
}

/// A value type for `[preflight] required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Any non-empty value.
    String,
    /// A secret: the strength rules apply.
    Secret,
    /// An absolute URL with a scheme and host.
    Url,
    /// An integer.
    Int,
    /// `true/false/1/0/yes/no/on/off`.
    Bool,
    /// `local@domain`.
    Email,
}

impl ValueType {
    /// Parses `string`, `secret`, `url`, `int`, `bool` or `email`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "secret" => Self::Secret,
            "url" => Self::Url,
            "int" => Self::Int,
            "bool" => Self::Bool,
            "email" => Self::Email,
            _ => return None,
        })
    }
}

/// One `[preflight] required` entry: a type, and optionally the value it must have
/// (`"bool=true"`: `ENFORCE_HTTPS=false` is then an error, not a valid bool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The value's type.
    pub ty: ValueType,
    /// The value it must equal (for `bool`, any spelling of the same truth value).
    pub equals: Option<String>,
}

impl Requirement {
    /// Parses `TYPE` or `TYPE=VALUE`.
    pub fn parse(s: &str) -> Option<Self> {
        let (t, equals) = match s.split_once('=') {
            Some((t, v)) => (t, Some(v.to_owned())),
            None => (s, None),
        };
        let ty = ValueType::parse(t.trim())?;
        if ty == ValueType::Bool {
            if let Some(v) = &equals {
                truthy(v)?;
            }
        }
        if ty == ValueType::Secret && equals.is_some() {
            return None;
        }
        Some(Self { ty, equals })
    }

    /// Whether `v` is the required value (types are checked separately).
    pub fn holds(&self, v: &str) -> bool {
        match (&self.equals, self.ty) {
            (None, _) => true,
            (Some(want), ValueType::Bool) => truthy(want) == truthy(v),
            (Some(want), ValueType::Int) => {
                want.trim().parse::<i64>().ok() == v.trim().parse::<i64>().ok()
            }
            (Some(want), _) => want == v,
        }
    }
}

/// `true/1/yes/on` and `false/0/no/off`, any case.
pub fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `[preflight]`, validated.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// Accepted findings: `(rule, subject)`; no subject accepts the rule everywhere.
    pub allow: Vec<(String, Option<String>)>,
    /// The repository to scan.
    pub repo: Option<PathBuf>,
    /// Extra trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// Required keys.
    pub required: Vec<(String, Requirement)>,
    /// Check the process environment too.
    pub process_env: bool,
    /// Commits of history scanned.
    pub history_depth: usize,
}

/// Parses an allowance (`PF-CRT-02` or `PF-CSP-01:routes[1]`).
pub fn parse_allow(s: &str) -> Option<(String, Option<String>)> {
    let (rule, subject) = match s.split_once(':') {
        Some((r, s)) => (r, Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        None => (s, None),
    };
    let rule = rule.trim().to_ascii_uppercase();
    let ok = rule.starts_with("PF-")
        && rule.len() > 3
        && rule[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some((rule, subject))
}

/// Validates `[preflight]`.
pub fn preflight(
    r: Option<&RawPreflight>,
    base: &std::path::Path,
    sink: &mut dyn FnMut(String, String),
) -> Preflight {
    let Some(r) = r else {
        return Preflight {
            history_depth: 1000,
            ..Preflight::default()
        };
    };
    let mut allow = Vec::new();
    for (i, a) in r.allow.iter().enumerate() {
        match parse_allow(a) {
            Some(x) => allow.push(x),
            None => sink(
                format!("preflight.allow[{i}]"),
                format!("{a:?} is not a rule id like \"PF-CRT-02\" or \"PF-CSP-01:routes[1]\""),
            ),
        }
    }
    let mut required = Vec::new();
    for (k, t) in &r.required {
        match Requirement::parse(t) {
            Some(t) => required.push((k.clone(), t)),
            None => sink(
                format!("preflight.required.{k}"),
                format!("{t:?}: expected a type (string, secret, url, int, bool or email), optionally with the value it must have: \"bool=true\""),
            ),
        }
    }
    Preflight {
        allow,
        repo: r.repo.as_ref().map(|p| base.join(p)),
        ca_file: r.ca_file.as_ref().map(|p| base.join(p)),
        required,
        process_env: r.process_env.unwrap_or(crate::defaults::ops::PROCESS_ENV),
        history_depth: r
            .history_depth
            .unwrap_or(crate::defaults::ops::HISTORY_DEPTH),
    }
}

/// What the last preflight run found, for `/health` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Posture {
    /// Error findings not allowed.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Notes.
    pub infos: usize,
    /// Error findings accepted by `allow`, as `RULE subject`.
    pub allowed: Vec<String>,
}

impl Posture {
    /// `passed`, `warnings` or `failed`.
    pub fn status(&self) -> &'static str {
        if self.errors > 0 {
            "failed"
        } else if self.warnings > 0 {
            "warnings"
        } else {
            "passed"
        }
    }
}
