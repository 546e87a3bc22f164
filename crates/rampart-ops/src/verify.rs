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
mod tls;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub use client::{Client, Req, Resp};
pub use output::{json, junit, text};

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
        self.findings.iter().filter(|f| f.severity == s).count()
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
