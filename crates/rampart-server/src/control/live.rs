//! The running edge's live state: the current [`Edge`] (swapped whole on reload), the
//! listeners, and what survives reloads.
//!
//! # Reload
//! A reload builds the new edge to the side (config read and validated, certificates
//! loaded, policies compiled), binds any listener whose address changed, and only then
//! swaps. Each request uses the edge that was current when it started, so in-flight
//! requests finish on the old config and the next ones see the new one; connections (and
//! upgraded WebSocket tunnels) are not touched. Upstream pools whose config is unchanged
//! are carried over with their keep-alive connections and health, and rate-limit and
//! lockout state carries over for limits whose config is unchanged. A failed reload
//! changes nothing: the old edge keeps serving, the error is logged and counted.
//!
//! Settings that shape the process rather than requests (`server.workers`,
//! `server.max_connections`, `server.state_dir`) take effect at the next start; a reload
//! that changes them says so in its log line.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rampart_config::{Config, ConfigErrors};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::conn::server::{accept_loop, bind, Kind};
use crate::conn::serving::Serving;
use crate::edge::Edge;
use crate::handler::proxy::Pool;
use crate::observe::audit;
use crate::observe::process::Process;
use crate::state::{Change, Fleet, Revocations};

/// Reads and validates the config again (the file, with command-line overrides applied).
pub type Loader = Box<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

/// Serves the admin API on a listener until its token is cancelled. Live keeps the admin
/// listener bound across reloads; what it serves is the admin API, which sits above live
/// (it reloads and switches through it) and is handed in at start.
pub(crate) type AdminServer = fn(TcpListener, Arc<Live>, CancellationToken) -> BoxFuture;

/// A task to spawn.
pub(crate) type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One bound listener.
#[derive(Debug)]
struct Slot {
    /// The address the config asked for (port 0 stays 0).
    configured: SocketAddr,
    /// The address bound.
    bound: SocketAddr,
    stop: CancellationToken,
}

/// Runtime changes made through the admin API.
#[derive(Debug, Default)]
struct Overrides {
    /// (pool, server) → weight.
    weights: Vec<((String, String), u32)>,
    /// route → pool.
    routes: Vec<(String, String)>,
}

/// The live state of a started edge.
pub struct Live {
    /// What the listeners and connections share (the current edge among it).
    pub serving: Arc<Serving>,
    /// Draining, reload counts, connections: handed from edge to edge.
    pub process: Arc<Process>,
    loader: Mutex<Option<Loader>>,
    admin_server: AdminServer,
    reloading: tokio::sync::Mutex<()>,
    listeners: Mutex<[Option<Slot>; 2]>,
    admin: Mutex<Option<Slot>>,
    /// Admin API changes, re-applied after every reload while what they name exists.
    overrides: Mutex<Overrides>,
    /// The fleet's shared state, when `[state] backend = "redis"`.
    fleet: Mutex<Option<Arc<Fleet>>>,
    /// Token revocations made at runtime, handed to every edge.
    pub revocations: Arc<Revocations>,
    /// The `[tls.acme]` renewal task running, with the config it runs for.
    acme: Mutex<Option<(rampart_config::acme::Acme, CancellationToken)>>,
    /// Per certificate (source and names): the expiry warning level already audited
    /// (1: within 30 days, 2: within 7 days, 3: expired).
    expiry_warned: Mutex<std::collections::HashMap<String, u8>>,
    /// Wakes the OCSP task (control::ocsp) after a reload.
    pub(crate) ocsp_wake: Arc<tokio::sync::Notify>,
    /// Wakes the license task after a reload (a new token has new boundaries).
    pub(crate) license_wake: Arc<tokio::sync::Notify>,
    /// Wakes the backup scheduler after a reload.
    pub(crate) backups_wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

/// What a successful reload changed.
#[derive(Debug, Clone, Default)]
pub struct Reloaded {
    /// Listeners re-bound (`server.http`, `server.https`).
    pub rebound: Vec<&'static str>,
    /// Upstream pools carried over unchanged (connections and health kept).
    pub pools_kept: Vec<String>,
    /// Keys that changed but apply only at the next start.
    pub needs_restart: Vec<&'static str>,
}

pub(crate) fn bind_key(key: &str, addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => {
            if let Some(l) = take_inherited(key, a) {
                return Ok(Some(l));
            }
            Ok(Some(
                bind(a).with_context(|| format!("{key}: cannot listen on {a}"))?,
            ))
        }
        None => Ok(None),
    }
}

/// Sockets the service manager passed (`LISTEN_FDS`: socket activation), read once. They
/// are marked close-on-exec here, so a backup tool started later does not inherit them.
fn inherited() -> &'static Mutex<Vec<std::net::TcpListener>> {
    static SOCKETS: std::sync::OnceLock<Mutex<Vec<std::net::TcpListener>>> =
        std::sync::OnceLock::new();
    SOCKETS.get_or_init(|| {
        let mut fds = listenfd::ListenFd::from_env();
        let list = (0..fds.len())
            .filter_map(|i| fds.take_tcp_listener(i).ok().flatten())
            .filter_map(|l| {
                let s = socket2::Socket::from(l);
                s.set_cloexec(true).ok()?;
                Some(std::net::TcpListener::from(s))
            })
            .collect();
        Mutex::new(list)
    })
}

/// The inherited socket for the listener at `a`: the one on the same port (and the same
/// address, or either unspecified). systemd holds it across restarts, so a restart never
/// refuses a connection.
fn take_inherited(key: &str, a: SocketAddr) -> Option<TcpListener> {
    if a.port() == 0 {
        return None;
    }
    let mut list = inherited()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let i = list.iter().position(|l| {
        l.local_addr().is_ok_and(|l| {
            l.port() == a.port()
                && (l.ip() == a.ip() || l.ip().is_unspecified() || a.ip().is_unspecified())
        })
    })?;
    let l = list.remove(i);
    let at = l.local_addr().ok()?;
    l.set_nonblocking(true).ok()?;
    let l = TcpListener::from_std(l).ok()?;
    tracing::info!(listener = key, addr = %at, "socket from the service manager (socket activation)");
    Some(l)
}

impl Live {
    pub(crate) fn new(edge: Edge, admin_server: AdminServer) -> Arc<Self> {
        let process = edge.process.clone();
        let revocations = edge.policies.revocations().clone();
        process.reloads.stamp();
        let max = edge.config.server.max_connections;
        Arc::new(Self {
            serving: Arc::new(Serving::new(edge, max)),
            process,
            loader: Mutex::new(None),
            admin_server,
            reloading: tokio::sync::Mutex::new(()),
            listeners: Mutex::new([None, None]),
            admin: Mutex::new(None),
            overrides: Mutex::new(Overrides::default()),
            fleet: Mutex::new(None),
            revocations,
            acme: Mutex::new(None),
            expiry_warned: Mutex::default(),
            ocsp_wake: Arc::default(),
            license_wake: Arc::default(),
            backups_wake: Arc::default(),
        })
    }

    /// Audits each certificate once as it comes within 30 days of expiry, within 7, and
    /// when it has expired (`tls.cert.expiring`, `tls.cert.expired`); a renewed
    /// certificate starts over.
    pub(crate) fn check_expiry(&self) {
        let edge = self.edge();
        let now = i64::try_from(crate::state::persist::unix_ms() / 1000).unwrap_or(0);
        let mut warned = self
            .expiry_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in edge.certificates_now() {
            let id = format!("{} {}", c.source, c.names.join(","));
            let left = c.not_after - now;
            let level = match left {
                l if l <= 0 => 3,
                l if l <= 7 * 86_400 => 2,
                l if l <= 30 * 86_400 => 1,
                _ => 0,
            };
            let before = warned.insert(id, level).unwrap_or(0);
            if level <= before {
                continue;
            }
            let (event, severity) = match level {
                3 => ("tls.cert.expired", "critical"),
                2 => ("tls.cert.expiring", "critical"),
                _ => ("tls.cert.expiring", "warning"),
            };
            let what = format!(
                "certificate for {} ({}) {}",
                c.names.join(", "),
                c.source,
                if left <= 0 {
                    "has expired".to_owned()
                } else {
                    format!("expires in {} days", left.div_euclid(86_400))
                }
            );
            audit::system(&*edge, event, severity, &what);
            tracing::warn!(event, reason = %what, "certificate expiry");
        }
    }

    /// Starts, keeps or stops the `[tls.acme]` renewal task to match the current edge.
    pub(crate) fn sync_acme(self: &Arc<Self>) {
        let edge = self.edge();
        let want = edge
            .config
            .tls
            .as_ref()
            .and_then(|t| t.acme.clone())
            .zip(edge.acme.clone());
        let mut slot = self
            .acme
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some((running, _)), Some((cfg, _))) = (slot.as_ref(), want.as_ref()) {
            if running == cfg {
                return;
            }
        }
        if let Some((_, stop)) = slot.take() {
            stop.cancel();
        }
        let Some((cfg, state)) = want else { return };
        let stop = self.serving.token.child_token();
        let live = Arc::downgrade(self);
        let report: super::acme::Report = Arc::new(move |event, severity, what: &str| {
            if let Some(live) = live.upgrade() {
                audit::system(&*live.edge(), event, severity, what);
            }
        });
        tokio::spawn(super::acme::run(
            cfg.clone(),
            state,
            report,
            stop.clone(),
            self.fleet(),
        ));
        *slot = Some((cfg, stop));
    }

    /// Revokes token id `jti` until `expires` (Unix seconds) on every instance.
    pub fn revoke(&self, jti: &str, expires: u64) {
        let edge = self.edge();
        self.revocations.revoke(jti, expires);
        let what = format!("token id {jti} revoked (until {expires})");
        audit::system(&*edge, "auth.revoke", "warning", &what);
        self.share(
            &edge,
            Change::Revoke {
                jti: jti.to_owned(),
                expires,
            },
        );
    }

    /// Revokes every token issued before `at` (Unix seconds) on every instance.
    pub fn revoke_before(&self, at: u64) {
        let edge = self.edge();
        self.revocations.revoke_before(at);
        let what = format!("tokens issued before {at} revoked");
        audit::system(&*edge, "auth.revoke", "warning", &what);
        self.share(&edge, Change::RevokeBefore { at });
    }

    /// The fleet's shared state now.
    pub fn fleet(&self) -> Option<Arc<Fleet>> {
        self.fleet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The shared state `edge` needs: the current one when its `[state]` is unchanged, a
    /// new one (started, with hooks into this live state) when it changed, none for local.
    pub(crate) fn fleet_for(self: &Arc<Self>, edge: &Edge) -> Option<Arc<Fleet>> {
        let mut slot = self
            .fleet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(want) = edge.config.state.redis.as_ref() else {
            // Back to local: the old fleet stops once the last edge using it is gone.
            *slot = None;
            return None;
        };
        if let Some(f) = slot.as_ref().filter(|f| f.config == *want) {
            return Some(f.clone());
        }
        let fleet = Fleet::new(want.clone());
        drop(slot);
        self.start_fleet(&fleet);
        Some(fleet)
    }

    /// Starts `fleet` with hooks into this live state and keeps it.
    pub(crate) fn start_fleet(self: &Arc<Self>, fleet: &Arc<Fleet>) {
        let (a, b) = (Arc::downgrade(self), Arc::downgrade(self));
        fleet.start(crate::state::fleet::Hooks {
            transition: Box::new(move |t, why| {
                if let Some(live) = a.upgrade() {
                    live.state_transition(t, why);
                }
            }),
            change: Box::new(move |c| {
                if let Some(live) = b.upgrade() {
                    live.apply_remote(c);
                }
            }),
        });
        *self
            .fleet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fleet.clone());
    }

    fn state_transition(&self, t: crate::state::breaker::Transition, why: &str) {
        let edge = self.edge();
        let (event, severity, what) = match t {
            crate::state::breaker::Transition::Opened => (
                "state.degraded",
                "critical",
                format!("shared state unreachable ({why}): limits fall back to on_state_error"),
            ),
            crate::state::breaker::Transition::Closed => (
                "state.restored",
                "info",
                format!("shared state answering ({why}): limits are shared again"),
            ),
        };
        audit::system(&*edge, event, severity, &what);
        tracing::warn!(event, reason = %what, "shared state");
    }

    /// A change another instance made (or one read from the shared state at connect).
    fn apply_remote(&self, change: &Change) {
        let edge = self.edge();
        let done = match change {
            Change::Weight {
                pool,
                server,
                weight,
            } => self
                .set_weight_only(&edge, pool, server, *weight)
                .map(|before| {
                    (before != *weight).then(|| {
                        format!("{pool} {server}: weight {before} -> {weight} (from the fleet)")
                    })
                }),
            Change::Revoke { jti, expires } => Ok(self
                .revocations
                .revoke(jti, *expires)
                .then(|| format!("token id {jti} revoked (from the fleet)"))),
            Change::RevokeBefore { at } => Ok(self
                .revocations
                .revoke_before(*at)
                .then(|| format!("tokens issued before {at} revoked (from the fleet)"))),
            Change::AcmeAlpn {
                name,
                digest,
                until,
            } => {
                if let Some(acme) = &edge.acme {
                    if super::acme::adopt_alpn(acme, name, digest, *until) {
                        tracing::info!(name = %name, "answering a TLS-ALPN-01 challenge another instance ordered");
                    }
                }
                Ok(None)
            }
            Change::Route { route, pool } => {
                let now = edge.route_index(route).and_then(|i| edge.route_pool(i));
                if now.is_some() && now == edge.pool_index(pool) {
                    Ok(None)
                } else {
                    edge.set_route_pools(&[(route.as_str(), pool.as_str())])
                        .map(|names| {
                            self.remember_route(&names[0], pool);
                            Some(format!(
                                "route {}: now to upstream {pool} (from the fleet)",
                                names[0]
                            ))
                        })
                }
            }
        };
        match done {
            Ok(Some(what)) => {
                self.save_control(&edge);
                audit::system(&*edge, "admin.change", "warning", &what);
                tracing::info!(change = %what, "admin change from the fleet");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "a fleet change names what this config lacks"),
        }
    }

    /// Shares a change made here: saved under `state_dir`, and with a fleet stored in and
    /// published through the shared state.
    fn share(&self, edge: &Edge, change: Change) {
        self.save_control(edge);
        if let Some(fleet) = self.fleet() {
            tokio::spawn(async move {
                if let Err(e) = fleet.publish(&change).await {
                    tracing::warn!(error = %e, "operator change made here only: the shared state did not take it");
                }
            });
        }
    }

    fn save_control(&self, edge: &Edge) {
        let changes = {
            let o = self
                .overrides
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            o.weights
                .iter()
                .map(|((pool, server), w)| Change::Weight {
                    pool: pool.clone(),
                    server: server.clone(),
                    weight: *w,
                })
                .chain(o.routes.iter().map(|(route, pool)| Change::Route {
                    route: route.clone(),
                    pool: pool.clone(),
                }))
                .chain(
                    self.revocations
                        .ids()
                        .into_iter()
                        .map(|(jti, expires)| Change::Revoke { jti, expires }),
                )
                .chain(
                    Some(self.revocations.before())
                        .filter(|&at| at > 0)
                        .map(|at| Change::RevokeBefore { at }),
                )
                .collect::<Vec<_>>()
        };
        let dir = edge.config.server.state_dir.clone();
        let write = move || {
            if let Err(e) = crate::state::persist::save_control(&dir, &changes) {
                tracing::warn!(error = %e, "cannot save operator changes under state_dir");
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(write);
        } else {
            write();
        }
    }

    /// Re-applies the operator changes a previous run saved under `state_dir` (at start).
    pub(crate) fn restore_control(&self) {
        let edge = self.edge();
        for c in crate::state::persist::load_control(&edge.config.server.state_dir) {
            match &c {
                Change::Weight {
                    pool,
                    server,
                    weight,
                } => {
                    let _ = self.set_weight_only(&edge, pool, server, *weight);
                }
                Change::Revoke { jti, expires } => {
                    if *expires > crate::state::persist::unix_ms() / 1000 {
                        self.revocations.revoke(jti, *expires);
                    }
                }
                Change::RevokeBefore { at } => {
                    self.revocations.revoke_before(*at);
                }
                // Announced only, never saved.
                Change::AcmeAlpn { .. } => {}
                Change::Route { route, pool } => {
                    if let Ok(names) = edge.set_route_pools(&[(route.as_str(), pool.as_str())]) {
                        self.remember_route(&names[0], pool);
                        audit::system(
                            &*edge,
                            "admin.change",
                            "info",
                            &format!(
                                "route {}: to upstream {pool} (restored from state_dir)",
                                names[0]
                            ),
                        );
                    }
                }
            }
        }
    }

    fn remember_route(&self, route: &str, pool: &str) {
        let mut o = self
            .overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.routes.retain(|(r, _)| r != route);
        o.routes.push((route.to_owned(), pool.to_owned()));
    }

    /// The current edge.
    pub fn edge(&self) -> Arc<Edge> {
        self.serving.edge()
    }

    /// The bound (plain, HTTPS) addresses now.
    pub fn addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let l = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            l[0].as_ref().map(|s| s.bound),
            l[1].as_ref().map(|s| s.bound),
        )
    }

    /// Sets how [`Live::reload_from_source`] reads the config.
    pub fn set_loader(&self, loader: Loader) {
        *self
            .loader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(loader);
    }

    /// Starts accept loops on freshly bound listeners (replacing those slots).
    pub(crate) fn install_listeners(
        self: &Arc<Self>,
        http: Option<TcpListener>,
        https: Option<TcpListener>,
    ) {
        let edge = self.edge();
        let configured = [edge.config.server.http, edge.config.server.https];
        let mut slots = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, l) in [http, https].into_iter().enumerate() {
            let Some(l) = l else { continue };
            let (Ok(bound), Some(configured)) = (l.local_addr(), configured[i]) else {
                continue;
            };
            if let Some(old) = slots[i].take() {
                old.stop.cancel();
            }
            let stop = self.serving.token.child_token();
            let kind = if i == 0 { Kind::Plain } else { Kind::Tls };
            self.serving
                .tracker
                .spawn(accept_loop(l, kind, self.serving.clone(), stop.clone()));
            slots[i] = Some(Slot {
                configured,
                bound,
                stop,
            });
        }
        // Listeners the config no longer has.
        for (i, c) in configured.iter().enumerate() {
            if c.is_none() {
                if let Some(old) = slots[i].take() {
                    old.stop.cancel();
                }
            }
        }
        let port = match (&edge.tls, &slots[1]) {
            (Some(_), Some(s)) => edge.config.server.https_port.unwrap_or(s.bound.port()),
            _ => 0,
        };
        self.serving.set_redirect_port(port);
    }

    /// Starts the active health checks of `pools`.
    pub(crate) fn start_checks(self: &Arc<Self>, pools: &[Arc<Pool>]) {
        for p in pools {
            let live = Arc::downgrade(self);
            let report = move |event: &'static str, reason: &str| {
                if let Some(live) = live.upgrade() {
                    audit::system(&*live.edge(), event, "warning", reason);
                }
            };
            crate::handler::proxy::health::spawn(p, &self.serving.token, Arc::new(report));
        }
    }

    /// Starts the admin API on `listener` (bound by the caller), or stops it when the
    /// current config has no `[admin]`.
    pub(crate) fn install_admin(self: &Arc<Self>, listener: Option<TcpListener>) {
        let edge = self.edge();
        let mut slot = self
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (&edge.config.admin, listener) {
            (Some(a), Some(l)) => {
                if let Some(old) = slot.take() {
                    old.stop.cancel();
                }
                let Ok(bound) = l.local_addr() else { return };
                let stop = self.serving.token.child_token();
                tokio::spawn((self.admin_server)(l, self.clone(), stop.clone()));
                *slot = Some(Slot {
                    configured: a.listen,
                    bound,
                    stop,
                });
            }
            (None, _) => {
                if let Some(old) = slot.take() {
                    old.stop.cancel();
                }
            }
            (Some(_), None) => {}
        }
    }

    /// The admin listener's address, when on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|s| s.bound)
    }

    /// Sets a server's weight (0 drains it), now and after reloads.
    ///
    /// # Errors
    /// No such pool or server.
    pub fn set_weight(&self, pool: &str, server: &str, weight: u32) -> Result<(), String> {
        let edge = self.edge();
        let before = self.set_weight_only(&edge, pool, server, weight)?;
        self.share(
            &edge,
            Change::Weight {
                pool: pool.to_owned(),
                server: server.to_owned(),
                weight,
            },
        );
        let what = if weight == 0 {
            format!("{pool} {server}: draining (weight {before} -> 0)")
        } else {
            format!("{pool} {server}: weight {before} -> {weight}")
        };
        audit::system(&*edge, "admin.change", "warning", &what);
        tracing::info!(change = %what, "admin change");
        Ok(())
    }

    /// Sets a server's weight and remembers it for reloads; returns the weight before.
    fn set_weight_only(
        &self,
        edge: &Edge,
        pool: &str,
        server: &str,
        weight: u32,
    ) -> Result<u32, String> {
        let p = edge
            .pools()
            .iter()
            .find(|p| p.name == pool)
            .ok_or_else(|| format!("no upstream named {pool:?}"))?;
        let s = p
            .servers()
            .iter()
            .find(|s| s.authority == server)
            .ok_or_else(|| format!("upstream {pool:?} has no server {server:?}"))?;
        let before = s.weight();
        s.set_weight(weight);
        let mut o = self
            .overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (pool.to_owned(), server.to_owned());
        o.weights.retain(|(k, _)| *k != key);
        if weight != 1 {
            o.weights.push((key, weight));
        }
        Ok(before)
    }

    /// Points a route at another pool, now and after reloads.
    ///
    /// # Errors
    /// No such route or pool, or the route does not proxy.
    pub fn switch_route(&self, route: &str, pool: &str) -> Result<(), String> {
        self.switch_routes(&[(route, pool)]).map(|_| ())
    }

    /// Switches several routes at once, all or none (a blue-green cut-over in one call).
    /// Returns the routes' names.
    ///
    /// # Errors
    /// A route or pool that does not exist, or a route that does not proxy; nothing changed.
    pub fn switch_routes(&self, changes: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let edge = self.edge();
        let names = edge.set_route_pools(changes)?;
        for (name, (_, pool)) in names.iter().zip(changes) {
            self.remember_route(name, pool);
            let what = format!("route {name}: now to upstream {pool}");
            audit::system(&*edge, "admin.change", "warning", &what);
            tracing::info!(change = %what, "admin change");
        }
        for (name, (_, pool)) in names.iter().zip(changes) {
            self.share(
                &edge,
                Change::Route {
                    route: name.clone(),
                    pool: (*pool).to_owned(),
                },
            );
        }
        Ok(names)
    }

    fn apply_overrides(&self, edge: &Edge) {
        let o = self
            .overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((pool, server), w) in &o.weights {
            if let Some(s) = edge
                .pools()
                .iter()
                .find(|p| &p.name == pool)
                .and_then(|p| p.servers().iter().find(|s| &s.authority == server))
            {
                s.set_weight(*w);
            }
        }
        for (route, pool) in &o.routes {
            let _ = edge.set_route_pools(&[(route.as_str(), pool.as_str())]);
        }
    }

    /// Reads the config again through the loader set by [`Live::set_loader`] and reloads.
    ///
    /// # Errors
    /// The config's errors (each naming its key) or a listener that cannot be bound; the
    /// old edge keeps serving.
    pub async fn reload_from_source(self: &Arc<Self>) -> Result<Reloaded, String> {
        let loaded = {
            let loader = self
                .loader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match loader.as_ref() {
                Some(f) => f(),
                None => {
                    return Err("this edge was not started from a config file".into());
                }
            }
        };
        let built = loaded.and_then(|c| {
            let source = "reload".to_owned();
            Edge::build(c, &source)
        });
        match built {
            Ok(edge) => self.reload(edge).await,
            Err(errors) => {
                let text = errors
                    .errors
                    .iter()
                    .map(|e| format!("{}: {e}", errors.source))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(self.rejected(text))
            }
        }
    }

    fn rejected(&self, why: String) -> String {
        self.process
            .reloads
            .failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        audit::system(&*self.edge(), "config.rejected", "critical", &why);
        tracing::error!(error = %why, "config reload refused; the old config keeps serving");
        why
    }

    /// Swaps in `new` (built to the side), re-binding listeners whose address changed.
    ///
    /// # Errors
    /// A listener that cannot be bound; nothing changes then.
    pub async fn reload(self: &Arc<Self>, mut new: Edge) -> Result<Reloaded, String> {
        let _one_at_a_time = self.reloading.lock().await;
        // The new config's [integrity], checked before anything is swapped.
        let integrity = match new.config.integrity.clone() {
            Some(cfg) => {
                let r = tokio::task::spawn_blocking(move || super::integrity::check(&cfg, None))
                    .await
                    .map_err(|e| self.rejected(format!("integrity check failed: {e}")))?;
                if let Some(why) = super::integrity::refuses(&new.config, &r) {
                    return Err(self.rejected(why));
                }
                Some(r)
            }
            None => None,
        };
        let license = match &new.config.license {
            Some(cfg) => {
                let st = super::license::check(cfg, &new.config.server.state_dir);
                if let Some(why) = super::license::refuses(cfg, &st) {
                    return Err(self.rejected(why));
                }
                Some(st)
            }
            None => None,
        };
        let old = self.edge();
        let mut out = Reloaded::default();
        let (o, n) = (&old.config.server, &new.config.server);
        if o.workers != n.workers {
            out.needs_restart.push("server.workers");
        }
        if o.max_connections != n.max_connections {
            out.needs_restart.push("server.max_connections");
        }
        if o.state_dir != n.state_dir {
            out.needs_restart.push("server.state_dir");
        }
        let current: [Option<SocketAddr>; 2] = {
            let l = self
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            [
                l[0].as_ref().map(|s| s.configured),
                l[1].as_ref().map(|s| s.configured),
            ]
        };
        let wanted = [n.http, n.https];
        let keys = ["server.http", "server.https"];
        let mut fresh: [Option<TcpListener>; 2] = [None, None];
        for i in 0..2 {
            if wanted[i].is_some() && wanted[i] != current[i] {
                // Bound before the swap: an address in use refuses the whole reload.
                match bind_key(keys[i], wanted[i]) {
                    Ok(l) => fresh[i] = l,
                    Err(e) => return Err(self.rejected(format!("{e:#}"))),
                }
                out.rebound.push(keys[i]);
            } else if wanted[i].is_none() && current[i].is_some() {
                out.rebound.push(keys[i]);
            }
        }
        let admin_now = self
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|s| s.configured);
        let admin_wanted = new.config.admin.as_ref().map(|a| a.listen);
        let admin_listener = match admin_wanted {
            Some(a) if Some(a) != admin_now => match bind_key("admin.listen", Some(a)) {
                Ok(l) => {
                    out.rebound.push("admin.listen");
                    l
                }
                Err(e) => return Err(self.rejected(format!("{e:#}"))),
            },
            _ => None,
        };
        out.pools_kept = new.adopt(&old);
        let fleet = self.fleet_for(&new);
        new.policies.attach(fleet, self.revocations.clone());
        self.apply_overrides(&new);
        let fresh_pools: Vec<_> = new
            .pools()
            .iter()
            .filter(|p| !out.pools_kept.contains(&p.name))
            .cloned()
            .collect();
        self.serving.swap(Arc::new(new));
        self.sync_acme();
        match integrity {
            Some(r) => super::integrity::record(&self.process, &self.edge(), r),
            None => {
                self.process.set_integrity(None);
            }
        }
        match license {
            Some(st) => {
                let edge = self.edge();
                let st = super::license::seat(&edge, st).await;
                super::license::record(&self.process, &edge, st);
            }
            None => {
                self.process.license.store(None);
                self.process
                    .license_blocked
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.ocsp_wake.notify_one();
        self.license_wake.notify_one();
        self.backups_wake.notify_one();
        self.start_checks(&fresh_pools);
        let [http, https] = fresh;
        self.install_listeners(http, https);
        if admin_wanted.is_none() || admin_listener.is_some() {
            self.install_admin(admin_listener);
        }
        self.process.reloads.reloaded();
        let summary = format!(
            "rebound: [{}]; pools kept: [{}]; needs restart: [{}]",
            out.rebound.join(", "),
            out.pools_kept.join(", "),
            out.needs_restart.join(", ")
        );
        audit::system(&*self.edge(), "config.reload", "info", &summary);
        tracing::info!(
            rebound = ?out.rebound,
            pools_kept = ?out.pools_kept,
            needs_restart = ?out.needs_restart,
            "config reloaded"
        );
        Ok(out)
    }

    /// How long the process has run.
    pub fn uptime(&self) -> Duration {
        self.process.uptime()
    }
}
