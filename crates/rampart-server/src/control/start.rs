//! Starting and stopping: bind the configured listeners (a taken address fails the start
//! naming its key), then serve until [`Running::drain`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::live::{bind_key, Live};
use crate::edge::Edge;

/// A started edge.
#[derive(Debug)]
pub struct Running {
    /// Bound plain HTTP address (at start; [`Live::addrs`] after a reload).
    pub http_addr: Option<SocketAddr>,
    /// Bound HTTPS address (at start).
    pub https_addr: Option<SocketAddr>,
    /// The live state: the current edge, reloads, listeners.
    pub live: Arc<Live>,
    grace: Duration,
}

impl Running {
    /// Stops accepting and asks every connection to finish its in-flight requests.
    pub fn shutdown(&self) {
        self.live.process.draining.store(true, Ordering::Relaxed);
        self.live.serving.token.cancel();
    }

    /// How long [`Running::drain`] waits.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Shuts down and waits up to the grace period for connections to drain. Returns
    /// whether every connection finished in time.
    pub async fn drain(self) -> bool {
        self.shutdown();
        self.live.serving.tracker.close();
        tokio::time::timeout(self.grace, self.live.serving.tracker.wait())
            .await
            .is_ok()
    }
}

/// Binds the configured listeners and starts serving.
///
/// # Errors
/// A production `[integrity]` mismatch (each file named), a blocked `[license]` with
/// `on_expired = "refuse"`, or a listener address that
/// cannot be bound (in use, no permission), naming the key.
pub async fn start(edge: Edge) -> anyhow::Result<Running> {
    // Before any port is bound: a production start on tampered files is refused.
    let integrity = match edge.config.integrity.clone() {
        Some(cfg) => {
            let r =
                tokio::task::spawn_blocking(move || super::integrity::check(&cfg, None)).await?;
            if let Some(why) = super::integrity::refuses(&edge.config, &r) {
                anyhow::bail!(why);
            }
            Some(r)
        }
        None => None,
    };
    // The license likewise: with on_expired = "refuse", a blocked license binds nothing.
    let license = match &edge.config.license {
        Some(cfg) => {
            let st = super::license::check(cfg, &edge.config.server.state_dir);
            if let Some(why) = super::license::refuses(cfg, &st) {
                anyhow::bail!(why);
            }
            Some(st)
        }
        None => None,
    };
    let server = &edge.config.server;
    let http = bind_key("server.http", server.http)?;
    let https = bind_key("server.https", server.https)?;
    let admin = bind_key("admin.listen", edge.config.admin.as_ref().map(|a| a.listen))?;
    crate::request::rescue::install_hook();
    crate::conn::fd_limit::raise_for(server.max_connections);
    let grace = server.shutdown_grace;
    let (park_after, idle) = (server.park_after, server.idle_timeout);
    let mut edge = edge;
    // Locks a previous run saved (single instance; a fleet's are in the shared state).
    if edge.config.state.redis.is_none() {
        crate::policy::restore_locks(&edge.policies, &edge.config);
    }
    let fleet = edge
        .config
        .state
        .redis
        .clone()
        .map(crate::state::Fleet::new);
    edge.policies.attach(fleet.clone(), Arc::default());
    let live = Live::new(edge, |l, live, stop| {
        Box::pin(super::admin::serve(l, live, stop))
    });
    if let Some(f) = &fleet {
        live.start_fleet(f);
    }
    live.restore_control();
    live.sync_acme();
    if let Some(r) = integrity {
        super::integrity::record(&live.process, &live.edge(), r);
    }
    if let Some(st) = license {
        super::license::record(&live.process, &live.edge(), st);
    }
    tokio::spawn(super::watch::integrity(
        Arc::downgrade(&live),
        live.serving.token.clone(),
    ));
    tokio::spawn(super::backups::run(
        Arc::downgrade(&live),
        live.backups_wake.clone(),
        live.serving.token.clone(),
    ));
    tokio::spawn(super::watch::license(
        Arc::downgrade(&live),
        live.license_wake.clone(),
        live.serving.token.clone(),
    ));
    tokio::spawn(super::ocsp::run(
        Arc::downgrade(&live),
        live.ocsp_wake.clone(),
        live.serving.token.clone(),
    ));
    spawn_pool_reaper(&live);
    tokio::spawn(crate::conn::server::run_lot(live.serving.clone()));
    tokio::spawn(crate::conn::server::sweep(
        live.process.conns.clone(),
        park_after,
        idle,
        live.serving.token.clone(),
    ));
    live.install_listeners(http, https);
    live.install_admin(admin);
    live.start_checks(live.edge().pools());
    let (http_addr, https_addr) = live.addrs();
    Ok(Running {
        http_addr,
        https_addr,
        live,
        grace,
    })
}

fn spawn_pool_reaper(live: &Arc<Live>) {
    let weak = Arc::downgrade(live);
    let token = live.serving.token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = token.cancelled() => return,
            }
            let Some(live) = weak.upgrade() else { return };
            let edge = live.edge();
            for p in edge.pools() {
                p.reap_idle();
            }
            edge.policies.sweep();
            live.check_expiry();
        }
    });
}
