//! Prometheus metrics (prometheus-client, OpenMetrics text). The families live as long as
//! the process (a reload keeps them); gauges that describe the current state (connections,
//! server health, reloads) are read when scraped.
//!
//! Label cardinality is bounded: `route` is a configured route name (or `none`), `method`
//! one of nine names (else `OTHER`), `status` a number, `tenant` only on routes with a
//! tenant policy and only for the first [`MAX_TENANTS`] values seen (then `other`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::observe::process::Process;

/// Distinct tenant label values kept before the rest are counted as `other`.
pub const MAX_TENANTS: usize = 200;

/// A shared name (route, tenant) as a label value without copying it per request.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Name,
    status: u16,
    tenant: Option<Name>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    route: Name,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    upstream: Name,
    server: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DnsLabels {
    upstream: Name,
    server: Name,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    policy: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectiveLabels {
    directive: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogLabels {
    log: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The edge's metric families.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: Histograms<DurationLabels>,
    upstream_duration: Histograms<ServerLabels>,
    tls: Family<ResultLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    csp: Family<DirectiveLabels, Counter>,
    log_dropped: Family<LogLabels, Counter>,
    tenants: Mutex<HashSet<Arc<str>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(request_buckets),
            upstream_duration: Family::new_with_constructor(request_buckets),
            tls: Family::default(),
            refusals: Family::default(),
            csp: Family::default(),
            log_dropped: Family::default(),
            tenants: Mutex::new(HashSet::new()),
        };
        // Series whose labels are known in advance exist from the start at 0, so an alert
        // on them can tell "none yet" from "not scraped".
        for log in ["access", "audit"] {
            let _ = m.log_dropped.get_or_create(&LogLabels { log });
        }
        for result in ["ok", "failed", "timeout"] {
            let _ = m.tls.get_or_create(&ResultLabels { result });
        }
        m
    }
}

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// Per-route handles to the request counters and histograms, so the request path finds
/// its series without hashing label sets (one per route; built lazily).
#[derive(Debug, Default)]
pub struct RouteSeries {
    duration: [std::sync::OnceLock<Histogram>; 10],
    counters: Mutex<Vec<(u8, u16, Counter)>>,
}

/// A method as a bounded label.
pub fn method_label(m: &http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

impl Metrics {
    /// Counts one answered request through the route's cached handles (no tenant label).
    pub fn request_cached(
        &self,
        series: &RouteSeries,
        method: &'static str,
        route: &Arc<str>,
        status: u16,
        seconds: f64,
    ) {
        let m = METHODS.iter().position(|x| *x == method).unwrap_or(9);
        series.duration[m]
            .get_or_init(|| {
                self.duration.get_or_create_owned(&DurationLabels {
                    route: Name(route.clone()),
                    method,
                })
            })
            .observe(seconds);
        let mut c = series
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let idx = u8::try_from(m).unwrap_or(9);
        if let Some((_, _, counter)) = c.iter().find(|(mi, st, _)| *mi == idx && *st == status) {
            counter.inc();
            return;
        }
        let counter = self.requests.get_or_create_owned(&RequestLabels {
            method,
            route: Name(route.clone()),
            status,
            tenant: None,
        });
        counter.inc();
        // A route sees a handful of (method, status) pairs; the rest go the slow way.
        if c.len() < 32 {
            c.push((idx, status, counter));
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        method: &'static str,
        route: &Arc<str>,
        status: u16,
        tenant: Option<&str>,
        seconds: f64,
    ) {
        let route = Name(route.clone());
        let tenant = tenant.map(|t| Name(self.tenant(t)));
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status,
                tenant,
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels { route, method })
            .observe(seconds);
    }

    fn tenant(&self, t: &str) -> Arc<str> {
        let mut seen = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = seen.get(t) {
            return v.clone();
        }
        if seen.len() >= MAX_TENANTS {
            return Arc::from("other");
        }
        let v: Arc<str> = Arc::from(t);
        seen.insert(v.clone());
        v
    }

    /// One upstream exchange (to response head).
    /// `series` is the server's own cache of its histogram (one lookup per server, not
    /// per request).
    pub fn upstream(
        &self,
        upstream: &Arc<str>,
        server: &Arc<str>,
        series: &std::sync::OnceLock<Histogram>,
        seconds: f64,
    ) {
        series
            .get_or_init(|| {
                self.upstream_duration.get_or_create_owned(&ServerLabels {
                    upstream: Name(upstream.clone()),
                    server: Name(server.clone()),
                })
            })
            .observe(seconds);
    }

    /// A TLS handshake: `ok`, `failed` or `timeout`.
    pub fn tls_handshake(&self, result: &'static str) {
        self.tls.get_or_create(&ResultLabels { result }).inc();
    }

    /// A refusal by a policy (the audit event name) and reason (the error code).
    pub fn refusal(&self, policy: &'static str, reason: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels { policy, reason })
            .inc();
    }

    /// A CSP violation report, by directive (a bounded set).
    pub fn csp_violation(&self, directive: &'static str) {
        self.csp.get_or_create(&DirectiveLabels { directive }).inc();
    }

    /// Log lines dropped because the writer fell behind.
    pub fn log_dropped(&self, log: &'static str) {
        self.log_dropped.get_or_create(&LogLabels { log }).inc();
    }

    /// The OpenMetrics text of every family, with the state in `now`.
    pub fn render(&self, now: &Snapshot<'_>) -> String {
        let live = now.process;
        let mut r = Registry::default();
        r.register(
            "http_requests",
            "Requests answered, by method, route, status and tenant",
            self.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from request head to response head",
            self.duration.clone(),
        );
        r.register(
            "rampart_upstream_request_duration_seconds",
            "Time from request sent upstream to response head, per server",
            self.upstream_duration.clone(),
        );
        r.register(
            "rampart_tls_handshakes",
            "TLS handshakes by result",
            self.tls.clone(),
        );
        r.register(
            "rampart_refusals",
            "Requests refused by a policy, by policy (audit event) and reason (error code)",
            self.refusals.clone(),
        );
        r.register(
            "rampart_csp_violations",
            "CSP violation reports received, by directive",
            self.csp.clone(),
        );
        r.register(
            "rampart_log_lines_dropped",
            "Log lines dropped because the writer fell behind",
            self.log_dropped.clone(),
        );
        if let Some((exported, dropped)) = now.spans {
            let spans: Family<ResultLabels, Counter> = Family::default();
            spans
                .get_or_create(&ResultLabels { result: "exported" })
                .inc_by(exported);
            spans
                .get_or_create(&ResultLabels { result: "dropped" })
                .inc_by(dropped);
            r.register(
                "rampart_otlp_spans",
                "Request spans sent to the OTLP collector, or dropped (queue full, export failed)",
                spans,
            );
        }
        let panics = Counter::<u64>::default();
        panics.inc_by(now.panics);
        r.register(
            "rampart_panics",
            "Panics caught (a request answered 500, or one connection ended); each is logged with its cause",
            panics,
        );
        let active = Gauge::<i64>::default();
        active.set(i64::try_from(live.conns.len()).unwrap_or(i64::MAX));
        r.register(
            "rampart_active_connections",
            "Open client connections",
            active,
        );
        let (all, lot) = live.conns.parked();
        let parked = Gauge::<i64>::default();
        parked.set(i64::try_from(all).unwrap_or(i64::MAX));
        r.register(
            "rampart_parked_connections",
            "Idle HTTP/1.1 keep-alive connections parked (only the socket held)",
            parked,
        );
        let in_lot = Gauge::<i64>::default();
        in_lot.set(i64::try_from(lot).unwrap_or(i64::MAX));
        r.register(
            "rampart_lot_connections",
            "Parked plain connections held in the lot (no task: the socket and a small record)",
            in_lot,
        );
        let health: Family<ServerLabels, Gauge> = Family::default();
        let inflight: Family<ServerLabels, Gauge> = Family::default();
        let weight: Family<ServerLabels, Gauge> = Family::default();
        let errors: Family<ServerLabels, Counter> = Family::default();
        let tls_failures: Family<ServerLabels, Counter> = Family::default();
        let dns: Family<DnsLabels, Counter> = Family::default();
        for st in &now.servers {
            let l = ServerLabels {
                upstream: Name(st.upstream.clone()),
                server: Name(st.server.clone()),
            };
            health.get_or_create(&l).set(i64::from(st.up));
            inflight
                .get_or_create(&l)
                .set(i64::try_from(st.inflight).unwrap_or(i64::MAX));
            weight.get_or_create(&l).set(i64::from(st.weight));
            errors.get_or_create(&l).inc_by(st.errors);
            if st.tls_failures > 0 {
                tls_failures.get_or_create(&l).inc_by(st.tls_failures);
            }
            if let Some((ok, failed)) = st.dns_lookups {
                for (result, n) in [("ok", ok), ("failed", failed)] {
                    dns.get_or_create(&DnsLabels {
                        upstream: Name(st.upstream.clone()),
                        server: Name(st.server.clone()),
                        result,
                    })
                    .inc_by(n);
                }
            }
        }
        r.register(
            "rampart_upstream_server_up",
            "1 when the server takes requests (health checks, passive failures, drain)",
            health,
        );
        r.register(
            "rampart_upstream_server_inflight",
            "Requests in flight per server",
            inflight,
        );
        r.register(
            "rampart_upstream_errors",
            "Failed upstream exchanges (connect, timeout, broken), per server",
            errors,
        );
        r.register(
            "rampart_upstream_tls_verify_failures",
            "TLS handshakes to the server refused because its certificate did not verify",
            tls_failures,
        );
        r.register(
            "rampart_upstream_dns_lookups",
            "Lookups of upstream server names by result (a name's addresses are kept for the pool's dns_ttl)",
            dns,
        );
        r.register(
            "rampart_upstream_server_weight",
            "Balancing weight per server (0: draining)",
            weight,
        );
        let reloads: Family<ResultLabels, Counter> = Family::default();
        reloads
            .get_or_create(&ResultLabels { result: "ok" })
            .inc_by(live.reloads.ok.load(Ordering::Relaxed));
        reloads
            .get_or_create(&ResultLabels { result: "failed" })
            .inc_by(live.reloads.failed.load(Ordering::Relaxed));
        r.register(
            "rampart_config_reloads",
            "Config reloads by result",
            reloads,
        );
        let last = Gauge::<i64>::default();
        last.set(i64::try_from(live.reloads.last_success.load(Ordering::Relaxed)).unwrap_or(0));
        r.register(
            "rampart_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load (start or reload)",
            last,
        );
        if let Some(p) = now.posture {
            #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
            struct Severity {
                severity: &'static str,
            }
            let findings: Family<Severity, Gauge> = Family::default();
            for (s, n) in [
                ("error", p.errors),
                ("warn", p.warnings),
                ("info", p.infos),
                ("allowed", p.allowed.len()),
            ] {
                findings
                    .get_or_create(&Severity { severity: s })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            r.register(
                "rampart_preflight_findings",
                "Preflight findings of the running config by severity (allowed: errors accepted by `allow`)",
                findings,
            );
        }
        if !now.certificates.is_empty() {
            #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
            struct Cert {
                name: String,
                source: String,
            }
            let left: Family<Cert, Gauge> = Family::default();
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
            let age: Family<Cert, Gauge> = Family::default();
            for (name, source, not_after, stapled) in &now.certificates {
                let label = Cert {
                    name: name.clone(),
                    source: source.clone(),
                };
                left.get_or_create(&label).set(not_after - unix);
                if let Some(this_update) = stapled {
                    age.get_or_create(&label)
                        .set(unix - i64::try_from(*this_update).unwrap_or(unix));
                }
            }
            r.register(
                "rampart_tls_cert_expiry_seconds",
                "Seconds until each served certificate expires (negative: expired), by its first name and config source",
                left,
            );
            r.register(
                "rampart_tls_ocsp_staple_age_seconds",
                "Seconds since the thisUpdate of the OCSP response stapled to each certificate (absent: nothing stapled)",
                age,
            );
        }
        if let Some(ir) = now.process.integrity() {
            let ok = Gauge::<i64>::default();
            ok.set(i64::from(ir.ok()));
            r.register(
                "rampart_integrity_ok",
                "1 when the last [integrity] check found the signature good and every file as the manifest lists it",
                ok,
            );
            let problems = Gauge::<i64>::default();
            problems.set(i64::try_from(ir.problems.len()).unwrap_or(i64::MAX));
            r.register(
                "rampart_integrity_problems",
                "Problems the last [integrity] check found (bad signature, changed, missing and extra files)",
                problems,
            );
            let at = Gauge::<i64>::default();
            at.set(i64::try_from(ir.checked_at).unwrap_or(0));
            r.register(
                "rampart_integrity_last_check_timestamp_seconds",
                "When the last [integrity] check finished (Unix seconds)",
                at,
            );
            let took = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            took.set(ir.took.as_secs_f64());
            r.register(
                "rampart_integrity_check_duration_seconds",
                "How long the last [integrity] check took (the periodic one is paced by read_rate)",
                took,
            );
        }
        let backups = now
            .process
            .backups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !backups.is_empty() {
            #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
            struct Named {
                backup: String,
            }
            let last: Family<Named, Gauge> = Family::default();
            let took: Family<Named, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
            let size: Family<Named, Gauge> = Family::default();
            let failures: Family<Named, Gauge> = Family::default();
            for (name, s) in &backups {
                let l = Named {
                    backup: name.clone(),
                };
                last.get_or_create(&l).set(s.last_success.unwrap_or(0));
                took.get_or_create(&l).set(s.last_duration.as_secs_f64());
                size.get_or_create(&l)
                    .set(i64::try_from(s.last_size).unwrap_or(i64::MAX));
                failures
                    .get_or_create(&l)
                    .set(i64::try_from(s.failures).unwrap_or(i64::MAX));
            }
            r.register(
                "rampart_backup_last_success_timestamp_seconds",
                "When the last successful backup started (Unix seconds; 0: none yet)",
                last,
            );
            r.register(
                "rampart_backup_duration_seconds",
                "How long the last successful backup took",
                took,
            );
            r.register(
                "rampart_backup_size_bytes",
                "Size of the last successful backup file",
                size,
            );
            r.register(
                "rampart_backup_failures",
                "Failed backups since start",
                failures,
            );
        }
        if let Some(st) = now.process.license.load_full() {
            let valid = Gauge::<i64>::default();
            valid.set(i64::from(!st.state.blocks()));
            r.register(
                "rampart_license_valid",
                "1 while the license lets requests through (valid, expiring or in grace); 0 when expired, invalid or tampered with",
                valid,
            );
            if let Some(l) = &st.license {
                let days = Gauge::<i64>::default();
                days.set(l.days_left(st.judged_at));
                r.register(
                    "rampart_license_days_remaining",
                    "Whole days until the license expires (negative once past)",
                    days,
                );
                let exp = Gauge::<i64>::default();
                exp.set(l.expires_at);
                r.register(
                    "rampart_license_expiry_timestamp_seconds",
                    "When the license expires (Unix seconds)",
                    exp,
                );
            }
        }
        if let Some(st) = now.state {
            let up = Gauge::<i64>::default();
            up.set(i64::from(st.shared));
            r.register(
                "rampart_state_shared",
                "1 while limits and lockouts are decided by the shared state (Redis); 0 in fallback",
                up,
            );
            for (name, help, v) in [
                ("rampart_state_errors", "Shared-state commands that failed or timed out", st.errors),
                ("rampart_state_fallback_decisions", "Requests whose limits were decided by on_state_error (the shared state unreachable)", st.fallbacks),
                ("rampart_state_breaker_opened", "Times the shared state's circuit breaker opened (fallback engaged)", st.opened),
                ("rampart_state_breaker_closed", "Times the shared state's circuit breaker closed (shared mode resumed; the first connect counts)", st.closed),
                ("rampart_state_lease_decisions", "Requests admitted from a token leased earlier (limits with lease > 1), without a round trip", st.leased),
            ] {
                let c = Counter::<u64>::default();
                c.inc_by(v);
                r.register(name, help, c);
            }
        }
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Build {
            version: &'static str,
        }
        let build: Family<Build, Gauge> = Family::default();
        build
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("rampart_build_info", "Build information", build);
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

/// What [`Metrics::render`] reports besides its own families: the state of the process and
/// of each upstream server at the moment of the scrape.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Connections, reloads.
    pub process: &'a Process,
    /// Panics caught so far.
    pub panics: u64,
    /// With `[tracing] otlp`: spans (exported, dropped) so far.
    pub spans: Option<(u64, u64)>,
    /// Every upstream server.
    pub servers: Vec<ServerStat>,
    /// The running config's preflight result.
    pub posture: Option<&'a rampart_config::posture::Posture>,
    /// The shared state, when the fleet has one.
    pub state: Option<StateStat>,
    /// Each certificate served: (its first name, its source, Unix seconds it expires, the
    /// thisUpdate of its fresh OCSP staple).
    pub certificates: Vec<(String, String, i64, Option<u64>)>,
}

/// The shared state's condition at a scrape.
#[derive(Debug, Clone, Copy)]
pub struct StateStat {
    /// Whether decisions are shared now (the breaker is closed).
    pub shared: bool,
    /// Commands that failed or timed out.
    pub errors: u64,
    /// Decisions made by the fallback.
    pub fallbacks: u64,
    /// Times the breaker opened.
    pub opened: u64,
    /// Times it closed (the first connect counts).
    pub closed: u64,
    /// Decisions made from a leased token.
    pub leased: u64,
}

/// One upstream server's state.
#[derive(Debug)]
pub struct ServerStat {
    /// The pool's label.
    pub upstream: Arc<str>,
    /// The server's label.
    pub server: Arc<str>,
    /// Whether it takes requests.
    pub up: bool,
    /// Requests in flight.
    pub inflight: usize,
    /// Balancing weight (0: draining).
    pub weight: u32,
    /// Failed exchanges so far.
    pub errors: u64,
    /// TLS handshakes refused on the server's certificate.
    pub tls_failures: u64,
    /// Name lookups that gave addresses and that failed (`None`: an IP literal).
    pub dns_lookups: Option<(u64, u64)>,
}
