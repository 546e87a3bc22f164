//! The built edge: a validated config plus everything compiled from it (routes, pools, TLS).
//! Built once per config, off to the side, so a reload can swap it whole.
//!
//! The layer between the handlers and the request spine: it compiles (routes, pools,
//! policies, certificates) and holds; it answers no request itself.

use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use rampart_config::runtime::{Config, HeaderPolicy};
use rampart_config::ConfigErrors;
use rustls::ServerConfig;

use crate::handler::files::FileCache;
use crate::handler::proxy::Pool;
use crate::observe::{logs::Logs, metrics, process::Process};
use crate::policy::Policies;
use router::Router;
use tls::LoadedCert;

pub mod acme;
pub mod cert;
pub mod ocsp;
pub mod router;
pub mod tls;

/// A runnable edge.
#[derive(Debug)]
pub struct Edge {
    /// The config it was built from.
    pub config: Config,
    pub(crate) router: Router,
    pub(crate) pools: Vec<Arc<Pool>>,
    /// Header policy for answers that match no route (404, 421, HTTPS redirects).
    pub(crate) default_headers: HeaderPolicy,
    /// TLS server config, when HTTPS is served.
    pub tls: Option<Arc<ServerConfig>>,
    /// Mutual TLS: the config asking for client certificates, and the hosts it is for.
    pub client_auth: Option<tls::ClientAuth>,
    /// The certificates loaded, for reports.
    pub certificates: Vec<LoadedCert>,
    /// Compiled request policies and their state.
    pub policies: Policies,
    /// Static files kept in memory, per route.
    pub(crate) files: Vec<FileCache>,
    /// Metric families (one set per process: a reload hands them on).
    pub metrics: Arc<metrics::Metrics>,
    /// Access and audit log writers.
    pub logs: Logs,
    /// Route names as metric labels, and `none` last (requests no route matched).
    pub(crate) route_labels: Vec<Arc<str>>,
    /// Per route (and one for no route): cached metric series.
    pub(crate) route_series: Vec<metrics::RouteSeries>,
    /// Per route: the pool it proxies to (`usize::MAX` for other actions). Atomic so the
    /// admin API can switch a route between pools (blue-green) without a rebuild.
    route_pools: Vec<std::sync::atomic::AtomicUsize>,
    /// The process this edge serves in (handed on by a reload, like the metrics).
    pub process: Arc<Process>,
    /// `[tls.acme]`: the issued certificate and pending challenges.
    pub acme: Option<Arc<acme::AcmeState>>,
    /// `[tracing] otlp`: the span exporter (its thread ends with this edge).
    pub(crate) spans: Option<crate::observe::otlp::Spans>,
}

impl crate::observe::audit::Sinks for Edge {
    fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }
    fn logs(&self) -> &Logs {
        &self.logs
    }
}

impl Edge {
    /// What the policies read: the config, their compiled state, and the audit sinks.
    pub fn policy_env(&self) -> crate::policy::Env<'_> {
        crate::policy::Env {
            config: &self.config,
            policies: &self.policies,
            metrics: &self.metrics,
            logs: &self.logs,
        }
    }

    /// Builds an edge from a validated config: loads certificates (creating the
    /// self-signed one if asked), compiles routes and pools.
    ///
    /// # Errors
    /// Certificate problems, each naming its key.
    pub fn build(config: Config, source: &str) -> Result<Self, ConfigErrors> {
        let (tls, certificates, acme, mtls) = match &config.tls {
            Some(t) => {
                let (cfg, certs, acme, mtls) = tls::server_config(t, &config.server.state_dir)
                    .map_err(|errors| ConfigErrors {
                        source: source.to_owned(),
                        errors,
                    })?;
                (Some(cfg), certs, acme, mtls)
            }
            None => (None, Vec::new(), None, None),
        };
        let policies = Policies::build(&config).map_err(|errors| ConfigErrors {
            source: source.to_owned(),
            errors,
        })?;
        let logs = Logs::start(&config.logging).map_err(|e| ConfigErrors {
            source: source.to_owned(),
            errors: vec![rampart_config::ConfigError::new("logging", e)],
        })?;
        let route_labels = config
            .routes
            .iter()
            .map(|r| Arc::from(r.name.as_str()))
            .chain(std::iter::once(Arc::from("none")))
            .collect();
        let route_pools = config
            .routes
            .iter()
            .map(|r| {
                std::sync::atomic::AtomicUsize::new(match r.action {
                    rampart_config::runtime::Action::Upstream(i) => i,
                    _ => usize::MAX,
                })
            })
            .collect();
        let router = Router::new(&config.routes);
        let spans = config.otlp.as_ref().and_then(|o| {
            crate::observe::otlp::Spans::start(o, logs.masker())
                .map_err(|e| tracing::warn!(error = %e, "OTLP exporter not started"))
                .ok()
        });
        let n_routes = config.routes.len();
        let pools = config
            .upstreams
            .iter()
            .map(|u| {
                Pool::new(u, config.server.h1_fast_path)
                    .map(Arc::new)
                    .map_err(|e| {
                        rampart_config::ConfigError::new(format!("upstreams.{}.tls", u.name), e)
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigErrors {
                source: source.to_owned(),
                errors: vec![e],
            })?;
        let default_headers = config
            .routes
            .iter()
            .find(|r| r.path == "/" && r.hosts.is_empty())
            .or(config.routes.first())
            .map(|r| r.headers.clone())
            .unwrap_or_default();
        let client_auth = mtls.and_then(|c| tls::ClientAuth::new(c, &config.routes));
        Ok(Self {
            config,
            router,
            pools,
            default_headers,
            tls,
            client_auth,
            certificates,
            policies,
            files: (0..n_routes).map(|_| FileCache::default()).collect(),
            metrics: Arc::default(),
            logs,
            route_series: (0..=n_routes)
                .map(|_| metrics::RouteSeries::default())
                .collect(),
            route_labels,
            route_pools,
            process: Arc::default(),
            acme,
            spans,
        })
    }

    /// Loads, validates and builds the config file at `path`.
    ///
    /// # Errors
    /// Every problem in the file, each naming its key.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let config = rampart_config::load(path)?;
        Self::build(config, &path.display().to_string())
    }

    /// Carries over from `old` (the edge a reload replaces) what must outlive a config:
    /// upstream pools whose config is unchanged (their keep-alive connections and health)
    /// and the state of unchanged rate limits and lockouts. Returns the pools kept.
    pub(crate) fn adopt(&mut self, old: &Edge) -> Vec<String> {
        self.metrics = old.metrics.clone();
        self.process = old.process.clone();
        self.logs.carry_recent(&old.logs);
        let mut kept = Vec::new();
        for p in &mut self.pools {
            if let Some(o) = old.pools.iter().find(|o| o.same_as(p)) {
                *p = o.clone();
                kept.push(p.name.clone());
            }
        }
        let _ = self
            .policies
            .adopt(&self.config, &old.policies, &old.config);
        kept
    }

    /// Every certificate served now: the files' and the ACME one.
    pub fn certificates_now(&self) -> Vec<LoadedCert> {
        let mut all = self.certificates.clone();
        if let Some(c) = self.acme.as_ref().and_then(|a| a.cert.load_full()) {
            all.push((*c).clone());
        }
        all
    }

    /// The pool route `i` proxies to now.
    pub(crate) fn route_pool(&self, i: usize) -> Option<usize> {
        match self.route_pools[i].load(std::sync::atomic::Ordering::Relaxed) {
            usize::MAX => None,
            p => Some(p),
        }
    }

    /// The index of the pool named `name`.
    pub(crate) fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// The route named `route`, or (for a route without a `name`) its index in the file.
    pub(crate) fn route_index(&self, route: &str) -> Option<usize> {
        let routes = &self.config.routes;
        routes
            .iter()
            .position(|r| r.name == route)
            .or_else(|| route.parse::<usize>().ok().filter(|i| *i < routes.len()))
    }

    /// Points proxying routes at other pools, all or none: every `(route, pool)` is checked
    /// before any is changed. Returns the routes' names. `Err` names what does not exist.
    pub(crate) fn set_route_pools(&self, changes: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let mut resolved = Vec::with_capacity(changes.len());
        for (route, pool) in changes {
            let r = self.route_index(route).ok_or_else(|| {
                format!("no route named {route:?} (unnamed routes: their index, 0 for the first)")
            })?;
            if self.route_pool(r).is_none() {
                return Err(format!("route {route:?} does not proxy to an upstream"));
            }
            let p = self
                .pool_index(pool)
                .ok_or_else(|| format!("no upstream named {pool:?}"))?;
            resolved.push((r, p));
        }
        for (r, p) in &resolved {
            self.route_pools[*r].store(*p, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(resolved
            .iter()
            .map(|(r, _)| self.config.routes[*r].name.clone())
            .collect())
    }

    /// Whether some route proxies to pool `p` now (an unused pool decides no readiness).
    pub(crate) fn pool_in_use(&self, p: usize) -> bool {
        (0..self.route_pools.len()).any(|r| self.route_pool(r) == Some(p))
    }

    pub(crate) fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        let proxies: &[IpNet] = &self.config.server.trusted_proxies;
        !proxies.is_empty() && proxies.iter().any(|n| n.contains(&ip))
    }

    /// Upstream pools, for status reports.
    pub fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }
}
