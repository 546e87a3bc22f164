//! What one `verify` run knows: its options, the target, the state its probes share
//! ([`Run`]), and the report they fill. Below the probes (`http_checks`, `tls`, `expect`)
//! and the output, which all read it; [`super`] only orchestrates.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::client::{Client, Req, Resp};
use super::{observatory, ssllabs};
use crate::findings::{Check, Finding, Severity, Sink};

/// A progress callback: told what is being probed.
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

/// What to probe and how.
pub struct Options {
    /// `https://host[:port]` (or `http://` for a site without TLS).
    pub url: String,
    /// The plain-HTTP port for the redirect check (default 80 when the URL uses 443).
    pub http_port: Option<u16>,
    /// Extra paths whose headers and cookies are checked.
    pub paths: Vec<String>,
    /// Paths that must refuse anonymous requests.
    pub protected: Vec<String>,
    /// Paths that must refuse a client without a certificate (mutual TLS).
    pub mtls: Vec<String>,
    /// The login route (cookies checked; with `active`, its lockout is probed).
    pub login: Option<String>,
    /// The health endpoint (`/health` when not given; then a 404 skips the check).
    pub health: Option<String>,
    /// Health probes.
    pub health_probes: usize,
    /// Slowest acceptable health answer.
    pub health_max: Duration,
    /// A WebSocket path (probed with `active`).
    pub websocket: Option<String>,
    /// Probes that change state on the target.
    pub active: bool,
    /// Wrong login attempts to send with `active` (the limit is expected before the last).
    pub login_attempts: usize,
    /// A rampart config the live site must match.
    pub expect: Option<rampart_config::Config>,
    /// Extra trusted CAs (PEM).
    pub ca_file: Option<PathBuf>,
    /// Grade even when the chain does not verify (the fact is reported).
    pub insecure: bool,
    /// Per-probe timeout.
    pub timeout: Duration,
    /// The least grade that passes (both grades).
    pub min_grade: String,
    /// Now (certificate life).
    pub now: SystemTime,
    /// Called with what is being probed.
    pub progress: Option<Progress>,
}

impl Options {
    /// Defaults for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http_port: None,
            paths: Vec::new(),
            protected: Vec::new(),
            mtls: Vec::new(),
            login: None,
            health: None,
            health_probes: 5,
            health_max: Duration::from_secs(1),
            websocket: None,
            active: false,
            login_attempts: 11,
            expect: None,
            ca_file: None,
            insecure: false,
            timeout: Duration::from_secs(5),
            min_grade: "A".into(),
            now: SystemTime::now(),
            progress: None,
        }
    }

    pub(crate) fn step(&self, what: &str) {
        if let Some(p) = &self.progress {
            p(what);
        }
    }
}

/// The target, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https` or `http`.
    pub tls: bool,
    /// Host name or IP literal (no brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Target {
    /// Parses `https://host[:port][/…]`.
    ///
    /// # Errors
    /// Not an http(s) URL, or a bad port.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url}: give an https:// (or http://) URL"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: no host"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed ["))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url}: bad port {p}"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self {
            tls,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The TLS side of a report.
#[derive(Debug, Clone, Default)]
pub struct TlsReport {
    /// Versions offered, by name.
    pub protocols: Vec<&'static str>,
    /// Suites accepted: (version, OpenSSL or IANA name).
    pub suites: Vec<(&'static str, String)>,
    /// The negotiated answer to a modern client: version, suite, group.
    pub negotiated: Option<(String, String, String)>,
    /// Whether a TLS 1.3 hello offering only X25519MLKEM768 is taken (`None`: not asked).
    pub post_quantum: Option<bool>,
    /// Certificate summary lines (subject, issuer, validity, key, signature, names).
    pub certificate: Vec<(String, String)>,
    /// The grade.
    pub grade: Option<ssllabs::Grade>,
}

/// Health probe figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Path probed.
    pub path: String,
    /// Statuses seen.
    pub statuses: Vec<u16>,
    /// Median latency.
    pub median: Duration,
    /// Worst latency.
    pub worst: Duration,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The URL given.
    pub url: String,
    /// The HTTP grade.
    pub http: observatory::Score,
    /// TLS facts and grade (`None` for an `http://` target).
    pub tls: Option<TlsReport>,
    /// Health figures.
    pub health: Option<Health>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Checks run or skipped.
    pub checks: Vec<Check>,
    /// The least grade that passes.
    pub min_grade: String,
    /// Trust of the chain was not checked (`--insecure`).
    pub insecure: bool,
    /// Requests sent.
    pub requests: usize,
    /// How long it took.
    pub elapsed: Duration,
}

impl Report {
    /// Errors.
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
    /// The TLS grade letter, when there is one.
    pub fn tls_grade(&self) -> Option<&str> {
        self.tls
            .as_ref()
            .and_then(|t| t.grade.as_ref())
            .map(|g| g.grade.as_str())
    }
    /// Both grades meet the minimum and there is no error.
    pub fn passed(&self) -> bool {
        self.errors() == 0
            && meets(self.http.grade, &self.min_grade)
            && self.tls_grade().is_none_or(|g| meets(g, &self.min_grade))
    }
    /// Like [`crate::preflight::Report::check_status`].
    pub fn check_status(&self, id: &str) -> &'static str {
        crate::findings::check_status(&self.checks, &self.findings, id)
    }
}

/// Grades from best to worst (Observatory's and SSL Labs' letters on one scale; `T` and
/// `M` rank with `F`).
const SCALE: &[&str] = &[
    "A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "E", "F",
];

/// Whether `grade` is at least `min`.
pub fn meets(grade: &str, min: &str) -> bool {
    let r = |g: &str| SCALE.iter().position(|x| *x == g).unwrap_or(SCALE.len());
    r(grade) <= r(min)
}

/// Whether `g` is a grade `--min-grade` accepts.
pub fn is_grade(g: &str) -> bool {
    SCALE.contains(&g)
}

/// Shared state of one run.
pub(crate) struct Run<'a> {
    pub(crate) o: &'a Options,
    pub(crate) target: Target,
    pub(crate) client: Client,
    pub(crate) sink: Sink,
    pub(crate) requests: std::sync::atomic::AtomicUsize,
    /// The HTTPS chain verified (or `insecure`).
    pub(crate) cert_ok: bool,
}

impl Run<'_> {
    /// One request to the target's own port.
    pub(crate) fn get(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        self.send(&Req {
            tls: self.target.tls,
            port: self.target.port,
            method,
            path,
            headers,
            body: None,
        })
    }

    pub(crate) fn send(&self, r: &Req<'_>) -> Result<Resp, String> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.client.send(r).map(|(resp, _)| resp)
    }

    pub(crate) fn subject(&self, path: &str) -> String {
        format!(
            "{}://{}{path}",
            if self.target.tls { "https" } else { "http" },
            self.client.host_header(self.target.port, self.target.tls)
        )
    }
}
