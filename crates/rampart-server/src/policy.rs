//! Request and response policies, one module each, run in DESIGN.md's order:
//!
//! ```text
//! acl (ip allow/deny) → rate_limit (IP- and header-keyed) → cors (preflight answered here)
//!   → methods → body_limit → lockout
//!   → auth (api key / jwt; identity headers forwarded, client copies stripped)
//!   → rate_limit (user-keyed) → tenant → csrf
//! ```
//! Cheap refusals that need no secret come first: a flood of bad credentials meets the
//! IP limits and the lockout before any signature is checked, and a request whose
//! credentials are refused still counts against the user-keyed limits (by its anonymous
//! key: the IP for `user_or_ip`), so guessing keys or tokens is throttled too.
//! After the handler: lockout accounting, CORS and `RateLimit-*` headers, the CSRF
//! cookie, cookie hardening ([`cookies`]); [`headers`] are the security headers every
//! answer carries. A refused request never reaches the upstream; the spine turns a
//! [`Refused`] into its JSON answer and an audit event.
//!
//! Each module holds its rule's compiled form and `check` (and `after` where the response
//! is touched), and is unit-tested alone; this file only keeps their state together
//! ([`Policies`]) and calls them in order. Plain function calls, not tower layers: the
//! order reads in one place and nothing is boxed per step (measured cheaper).

pub mod acl;
pub mod auth;
pub mod body_limit;
pub mod cookies;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod limiter;
pub mod lockout;
pub mod methods;
pub mod rate_limit;
mod refused;
pub mod tenant;

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderName};
use http::{Request, Response};
use rampart_config::policy::RoutePolicy;
use rampart_config::runtime::{Action, Config, Route};
use rampart_config::ConfigError;

use crate::wire::body::Body;
use crate::wire::client_cert::ClientCert;
use crate::wire::refusal::Refusal;
pub use refused::{refuse, Refused};

use auth::JwtVerifier;
use cors::CorsValues;
use limiter::{Leases, Store};
use lockout::Lockouts;
use rate_limit::{Passed, Who};

use crate::state::{Fleet, Revocations};

/// What a policy reads besides the request: the config, the compiled policies and their
/// state, and where audit events go. Borrowed from the edge for one request.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The running config.
    pub config: &'a rampart_config::runtime::Config,
    /// The compiled policies and their state.
    pub policies: &'a Policies,
    /// Metric families (refusal counts).
    pub metrics: &'a crate::observe::metrics::Metrics,
    /// Log writers (audit events).
    pub logs: &'a crate::observe::logs::Logs,
}

impl crate::observe::audit::Sinks for Env<'_> {
    fn metrics(&self) -> &crate::observe::metrics::Metrics {
        self.metrics
    }
    fn logs(&self) -> &crate::observe::logs::Logs {
        self.logs
    }
}

/// Policies compiled from a config: limiter state, JWT keys, tenant patterns.
#[derive(Debug)]
pub struct Policies {
    limits: Vec<Arc<Store>>,
    lockouts: Vec<Option<Arc<Lockouts>>>,
    jwt: Option<JwtVerifier>,
    identity_headers: Vec<HeaderName>,
    /// Per route: its tenant rule, compiled.
    tenants: Vec<Option<tenant::Compiled>>,
    /// Per route: whether any request policy beyond the body limit applies.
    active: Vec<bool>,
    /// Per CORS policy: its list headers, joined once.
    cors_values: Vec<CorsValues>,
    /// The CSP report endpoint's per-IP limit.
    pub(crate) csp_limit: Option<Store>,
    /// The fleet's shared state (`[state] backend = "redis"`), attached at start.
    shared: Option<Arc<Fleet>>,
    /// Token revocations made at runtime (one table per process, attached at start).
    revocations: Arc<Revocations>,
    /// With a shared state: each limit divided by `fleet_size`, for `on_state_error =
    /// "local"` while the state is unreachable.
    fallbacks: Vec<Arc<Store>>,
    /// With a shared state: the tokens leased per limit (limits with `lease` > 1).
    leases: Vec<Option<Arc<Leases>>>,
    clock: Instant,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl Policies {
    /// Takes over the counters of `old` (the edge being replaced by a reload) for every
    /// limit whose config is unchanged, so a reload neither forgives a locked-out client
    /// nor resets a rate limit. Returns the names of the limits kept.
    pub(crate) fn adopt(
        &mut self,
        config: &Config,
        old: &Policies,
        old_config: &Config,
    ) -> Vec<String> {
        // One time base, or the carried timestamps would mean something else.
        self.clock = old.clock;
        let mut kept = Vec::new();
        for (i, l) in config.policies.limits.iter().enumerate() {
            let Some(j) = old_config
                .policies
                .limits
                .iter()
                .position(|o| o.name == l.name && format!("{o:?}") == format!("{l:?}"))
            else {
                continue;
            };
            self.limits[i] = old.limits[j].clone();
            self.lockouts[i] = old.lockouts[j].clone();
            if let (Some(f), Some(o)) = (self.fallbacks.get_mut(i), old.fallbacks.get(j)) {
                *f = o.clone();
            }
            if let (Some(f), Some(o)) = (self.leases.get_mut(i), old.leases.get(j)) {
                *f = o.clone();
            }
            kept.push(l.name.clone());
        }
        kept
    }

    /// Compiles the policies of `config`.
    ///
    /// # Errors
    /// JWT keys that do not parse, naming their key.
    pub fn build(config: &Config) -> Result<Self, Vec<ConfigError>> {
        let p = &config.policies;
        let jwt = match &p.jwt {
            Some(j) => Some(JwtVerifier::new(j).map_err(|e| vec![e])?),
            None => None,
        };
        let tenants = config
            .routes
            .iter()
            .map(|r| r.policy.tenant.as_ref().map(tenant::Compiled::new))
            .collect();
        let active = config.routes.iter().map(|r| is_active(&r.policy)).collect();
        let cors_values = p.cors.iter().map(CorsValues::new).collect();
        Ok(Self {
            limits: p.limits.iter().map(|l| Arc::new(Store::new(l))).collect(),
            lockouts: p
                .limits
                .iter()
                .map(|l| l.lockout.as_ref().map(|lo| Arc::new(Lockouts::new(lo))))
                .collect(),
            identity_headers: auth::identity_headers(
                p.jwt.as_ref(),
                config
                    .tls
                    .as_ref()
                    .is_some_and(|t| !t.client_cas.is_empty()),
            ),
            jwt,
            tenants,
            active,
            cors_values,
            csp_limit: config.csp_report.as_ref().map(|r| Store::new(&r.limit)),
            shared: None,
            revocations: Arc::default(),
            leases: match &config.state.redis {
                Some(_) => p
                    .limits
                    .iter()
                    .map(|l| (l.lease > 1).then(|| Arc::new(Leases::new(l.max_keys))))
                    .collect(),
                None => Vec::new(),
            },
            fallbacks: match &config.state.redis {
                Some(_) => p
                    .limits
                    .iter()
                    .map(|l| Arc::new(Store::new(&fallback(l, config.state.fleet_size))))
                    .collect(),
                None => Vec::new(),
            },
            clock: Instant::now(),
            rng: aws_lc_rs::rand::SystemRandom::new(),
        })
    }

    /// Attaches the process's runtime state: the fleet's shared state (when there is one)
    /// and the revocation table (at start, and to each edge a reload builds).
    pub fn attach(&mut self, fleet: Option<Arc<Fleet>>, revocations: Arc<Revocations>) {
        self.shared = fleet;
        self.revocations = revocations;
    }

    /// Token revocations made at runtime.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// The shared state, when the fleet has one.
    pub fn shared(&self) -> Option<&Arc<Fleet>> {
        self.shared.as_ref()
    }

    /// Nanoseconds on the policies' monotonic clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Drops expired limiter and lockout state (called every few seconds).
    pub fn sweep(&self) {
        let now = self.now();
        for l in self
            .limits
            .iter()
            .chain(&self.fallbacks)
            .map(|l| &**l)
            .chain(&self.csp_limit)
        {
            l.sweep(now);
        }
        for l in self.lockouts.iter().flatten() {
            l.sweep(now);
        }
        for l in self.leases.iter().flatten() {
            l.sweep(now);
        }
        self.revocations
            .sweep(crate::state::persist::unix_ms() / 1000);
    }

    /// Whether route `i` has request policies beyond the body limit.
    pub fn is_active(&self, i: usize) -> bool {
        self.active[i]
    }
}

/// A limit as one instance of `fleet_size` enforces it alone: its rate and its quota
/// (burst + 1) divided, at least one request per period.
fn fallback(l: &rampart_config::policy::Limit, fleet_size: u32) -> rampart_config::policy::Limit {
    let n = fleet_size.max(1);
    rampart_config::policy::Limit {
        count: (l.count / n).max(1),
        burst: ((l.burst.saturating_add(1)) / n).max(1) - 1,
        ..l.clone()
    }
}

fn is_active(p: &RoutePolicy) -> bool {
    !(p.limits.is_empty()
        && p.auth.is_empty()
        && p.allow.is_empty()
        && p.deny.is_empty()
        && p.methods.is_empty()
        && p.cors.is_none()
        && !p.csrf
        && !p.strip_credentials
        && p.tenant.is_none())
}

/// What the request phase leaves for the response phase.
#[derive(Debug, Default)]
pub struct Ctx {
    cors_origin: Option<http::HeaderValue>,
    cors: Option<usize>,
    set_csrf: bool,
    lockout: Option<(usize, String)>,
    passed: Passed,
    /// Set when a streamed body went over the limit.
    pub exceeded: Option<Arc<AtomicBool>>,
}

/// The request phase's outcome.
#[derive(Debug)]
pub enum Before {
    /// Go on to the handler.
    Continue(Ctx),
    /// Answered here (a CORS preflight).
    Answer(Response<Body>),
}
/// A route's `client_cert`: `required` refuses a request whose connection verified no
/// client certificate (403 `client_cert_required`, audited); on an upstream route the
/// certificate that was verified is forwarded in the `X-Client-Cert-*` headers.
fn client_cert(
    route: &rampart_config::runtime::Route,
    req: &mut Request<Body>,
    upstream: bool,
) -> Result<(), Refused> {
    use rampart_config::runtime::ClientCertMode;
    if route.client_cert == ClientCertMode::Off {
        return Ok(());
    }
    match req.extensions().get::<Arc<ClientCert>>().cloned() {
        Some(c) if c.trusted_by & (1 << route.client_ca) == 0 => Err(refused::refuse(
            Refusal::Forbidden("client_cert_untrusted"),
            "auth.failure",
            "client certificate not issued by the route's client_ca",
        )),
        Some(c) => {
            if upstream {
                auth::forward_client_cert(&c, req.headers_mut());
            }
            Ok(())
        }
        None if route.client_cert == ClientCertMode::Required => Err(refused::refuse(
            Refusal::Forbidden("client_cert_required"),
            "auth.failure",
            "no verified client certificate",
        )),
        None => Ok(()),
    }
}

/// Runs the request policies of route `route_idx` on `req`, in order.
///
/// # Errors
/// The refusal, when a policy refuses.
pub async fn before(
    env: &Env<'_>,
    route_idx: usize,
    req: &mut Request<Body>,
    client_ip: IpAddr,
) -> Result<Before, Refused> {
    let config = env.config;
    let route = &config.routes[route_idx];
    let p = &route.policy;
    let pol = env.policies;
    let mut ctx = Ctx::default();
    let upstream = matches!(route.action, Action::Upstream(_));
    if upstream {
        for h in &pol.identity_headers {
            req.headers_mut().remove(h);
        }
    }
    if !pol.is_active(route_idx) {
        client_cert(route, req, upstream)?;
        ctx.exceeded = body_limit::check(p.body_limit, req)?;
        return Ok(Before::Continue(ctx));
    }
    let limits = &config.policies.limits;
    let ip = client_ip.to_canonical();
    let now = pol.now();
    // 1. IP allow/deny, then the client certificate (neither needs a secret).
    acl::check(&p.allow, &p.deny, ip)?;
    client_cert(route, req, upstream)?;
    // 2. Rate limits that need no identity (IP, header).
    let who = Who { req, id: None, ip };
    match &pol.shared {
        None => rate_limit::check(
            &p.limits,
            limits,
            &pol.limits,
            who,
            false,
            now,
            &mut ctx.passed,
        )?,
        Some(fleet) => {
            let due = rate_limit::due(&p.limits, limits, who, false);
            rate_limit::check_shared(
                fleet,
                &due,
                limits,
                &pol.limits,
                &pol.fallbacks,
                &pol.leases,
                now,
                &mut ctx.passed,
            )
            .await?;
        }
    }
    // 3. CORS: a preflight is answered here.
    if let Some(ci) = p.cors {
        ctx.cors = Some(ci);
        match cors::check(&config.policies.cors[ci], &pol.cors_values[ci], req)? {
            cors::Outcome::Preflight(resp) => return Ok(Before::Answer(resp)),
            cors::Outcome::Continue(origin) => ctx.cors_origin = origin,
        }
    }
    // 4. Methods, 5. body limit.
    methods::check(&p.methods, p.allow_header.as_ref(), req.method())?;
    ctx.exceeded = body_limit::check(p.body_limit, req)?;
    // 6. Login lockout: before the credentials are looked at (the first limit with one).
    let lockout = p.limits.iter().find_map(|&li| {
        let (Some(lo), Some(state)) = (&limits[li].lockout, &pol.lockouts[li]) else {
            return None;
        };
        Some((li, lo, state))
    });
    if let Some((li, lo, state)) = lockout {
        let account = lockout::account(req, &lo.field, p.body_limit, ip).await?;
        match &pol.shared {
            Some(fleet) => {
                lockout::check_shared(fleet, &limits[li].name, lo, state, &account, now).await?
            }
            None => lockout::check(lo, state, &account, now)?,
        }
        ctx.lockout = Some((li, account));
    }
    // 7. Authentication. A refused attempt still counts against the user-keyed limits (by
    // its anonymous key), and a limit it exceeds answers instead of the auth refusal.
    let verifiers = auth::Verifiers {
        jwt: pol.jwt.as_ref(),
        api_keys: config.policies.api_keys.as_ref(),
        revoked: &pol.revocations,
    };
    // Only a certificate of the route's own CA is an identity here.
    let cert = req
        .extensions()
        .get::<Arc<ClientCert>>()
        .filter(|c| c.trusted_by & (1 << route.client_ca) != 0)
        .cloned();
    let authenticated = auth::authenticate(
        verifiers,
        &p.auth,
        p.auth_optional,
        req.headers(),
        cert.as_deref(),
    );
    // 8. User-keyed rate limits.
    let id = authenticated.as_ref().ok().and_then(Option::as_ref);
    let who = Who { req, id, ip };
    match &pol.shared {
        None => rate_limit::check(
            &p.limits,
            limits,
            &pol.limits,
            who,
            true,
            now,
            &mut ctx.passed,
        )?,
        Some(fleet) => {
            let due = rate_limit::due(&p.limits, limits, who, true);
            rate_limit::check_shared(
                fleet,
                &due,
                limits,
                &pol.limits,
                &pol.fallbacks,
                &pol.leases,
                now,
                &mut ctx.passed,
            )
            .await?;
        }
    }
    let identity = authenticated?;
    if let (Some(id), true) = (&identity, upstream) {
        auth::forward(id, pol.jwt.as_ref(), req.headers_mut());
    }
    // 9. Tenant.
    if let Some(t) = &pol.tenants[route_idx] {
        t.check(req, identity.as_ref())?;
    }
    // 10. CSRF (double-submit cookie).
    if p.csrf {
        ctx.set_csrf = csrf::check(&config.policies.csrf, req, identity.as_ref())?;
    }
    if p.strip_credentials && upstream {
        req.headers_mut().remove(header::AUTHORIZATION);
        if let Some(k) = &config.policies.api_keys {
            req.headers_mut().remove(&k.header);
        }
    }
    if ctx.passed.delay > 0 {
        tokio::time::sleep(std::time::Duration::from_nanos(ctx.passed.delay)).await;
    }
    Ok(Before::Continue(ctx))
}

/// Whether the request went through a login lockout: [`record_login`] then counts its
/// answer.
pub fn is_login(ctx: &Ctx) -> bool {
    ctx.lockout.is_some()
}

/// Counts a login's answer against its account: a failure counts (and may lock the
/// account, audited `auth.lockout`), a success clears the count. With a shared state the
/// count is the fleet's (one round trip, before the answer leaves, so the next attempt
/// through any instance sees it); this instance keeps its own too, for when the state
/// cannot answer. A single instance saves its active locks under `state_dir`, so a
/// restart does not unlock them.
pub async fn record_login(env: &Env<'_>, route: &Route, ctx: &Ctx, status: u16) {
    let Some((li, account)) = &ctx.lockout else {
        return;
    };
    let pol = env.policies;
    let limit = &env.config.policies.limits[*li];
    let (Some(lo), Some(state)) = (&limit.lockout, &pol.lockouts[*li]) else {
        return;
    };
    let mut locked = state.record(lo, account, status, pol.now());
    match &pol.shared {
        Some(fleet) => {
            let fails = lockout::failures_key(fleet, &limit.name, account);
            if lo.statuses.contains(&status) {
                let lock = lockout::lock_key(fleet, &limit.name, account);
                if let Ok(now_locked) = fleet
                    .lock_failure(&fails, &lock, lo.failures, lo.window, lo.lock_for)
                    .await
                {
                    locked = now_locked;
                }
            } else if (200..300).contains(&status) {
                let _ = fleet.clear(&fails).await;
            }
        }
        None if locked => save_locks(env),
        None => {}
    }
    if locked {
        let mut m = crate::observe::audit::line(env, "auth.lockout", "warning");
        m.insert("account", account.clone().into());
        m.insert("route", route.name.clone().into());
        m.insert("reason", "account locked after failed logins".into());
        crate::observe::audit::send(env, m);
    }
}

/// Writes every active lock to `state_dir` (off the runtime's threads).
fn save_locks(env: &Env<'_>) {
    let pol = env.policies;
    let now = pol.now();
    let unix = crate::state::persist::unix_ms();
    let mut locks = crate::state::persist::Locks::new();
    for (l, state) in env.config.policies.limits.iter().zip(&pol.lockouts) {
        let Some(state) = state else { continue };
        for (account, left) in state.active(now) {
            locks
                .entry(l.name.clone())
                .or_default()
                .insert(account, unix + left / 1_000_000);
        }
    }
    let dir = env.config.server.state_dir.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = crate::state::persist::save_lockouts(&dir, &locks) {
            tracing::warn!(error = %e, "cannot save active lockouts under state_dir");
        }
    });
}

/// Restores the locks a previous run saved under `state_dir` (single instance).
pub fn restore_locks(policies: &Policies, config: &Config) {
    let saved = crate::state::persist::load_lockouts(&config.server.state_dir);
    let now = policies.now();
    let unix = crate::state::persist::unix_ms();
    for (l, state) in config.policies.limits.iter().zip(&policies.lockouts) {
        let (Some(state), Some(accounts)) = (state, saved.get(&l.name)) else {
            continue;
        };
        for (account, until) in accounts {
            state.lock_until(
                account,
                now + until.saturating_sub(unix).saturating_mul(1_000_000),
            );
        }
    }
}

/// Runs the response policies. The `RateLimit-*` values of the tightest limit passed are
/// returned, not set: the writer serializes them (see [`rate_limit::RateHeaders`]).
pub fn after(
    env: &Env<'_>,
    route: &Route,
    ctx: Ctx,
    resp: &mut Response<Body>,
) -> Option<rate_limit::RateHeaders> {
    let pol = env.policies;
    let config = env.config;
    let h = resp.headers_mut();
    if let Some(ci) = ctx.cors {
        cors::after(
            h,
            &config.policies.cors[ci],
            &pol.cors_values[ci],
            ctx.cors_origin,
        );
    }
    let c = &config.policies.csrf;
    if ctx.set_csrf {
        csrf::issue(h, c, &pol.rng);
    }
    if matches!(route.action, Action::Upstream(_)) && route.policy.cookies.is_active() {
        cookies::harden(h, &route.policy.cookies, &c.cookie);
    }
    ctx.passed.rate.map(rate_limit::RateHeaders)
}
