//! Request policies, in DESIGN.md's order, each optional per route:
//!
//! ```text
//! ip allow/deny → IP- and header-keyed rate limits → CORS (preflight answered here)
//!   → method allow-list → body limit → login lockout
//!   → auth (api key / jwt; identity headers forwarded, client copies stripped)
//!   → user-keyed rate limits → tenant → CSRF
//! ```
//! Cheap refusals that need no secret come first: a flood of bad credentials meets the
//! IP limits and the lockout before any signature is checked, and a request whose
//! credentials are refused still counts against the user-keyed limits (by its anonymous
//! key: the IP for `user_or_ip`), so guessing keys or tokens is throttled too.
//! and after the handler: lockout accounting, CORS and `RateLimit-*` headers, the CSRF
//! cookie, cookie hardening. A refused request never reaches the upstream; the caller
//! turns a refusal into its JSON answer and an audit event.

pub mod auth;
pub mod headers;
pub mod limiter;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rampart_config::policy::{AuthMethod, LimitKey, RoutePolicy};
use rampart_config::runtime::{Action, Config, Route};
use rampart_config::ConfigError;

use crate::wire::body::Body;
use crate::wire::refusal::Refusal;
use auth::{AuthError, Identity, JwtVerifier};
use limiter::{Decision, Store};

const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
const X_AUTH_METHOD: HeaderName = HeaderName::from_static("x-auth-method");
/// Largest login body read to find the account name.
const LOGIN_BODY_MAX: usize = 64 * 1024;

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
    /// Per route: compiled tenant pattern.
    tenants: Vec<Option<regex_lite::Regex>>,
    /// Per route: whether any request policy beyond the body limit applies.
    active: Vec<bool>,
    /// Per CORS policy: its list headers, joined once.
    cors_values: Vec<CorsValues>,
    /// The CSP report endpoint's per-IP limit.
    pub(crate) csp_limit: Option<Store>,
    clock: Instant,
    rng: ring::rand::SystemRandom,
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
            .map(|r| {
                r.policy.tenant.as_ref().and_then(|t| {
                    // Validated when the config was read.
                    regex_lite::Regex::new(&format!("^(?:{})$", t.pattern)).ok()
                })
            })
            .collect();
        let active = config.routes.iter().map(|r| is_active(&r.policy)).collect();
        let cors_values = p.cors.iter().map(CorsValues::new).collect();
        Ok(Self {
            limits: p.limits.iter().map(|l| Arc::new(Store::new(l))).collect(),
            lockouts: p
                .limits
                .iter()
                .map(|l| {
                    l.lockout.as_ref().map(|lo| {
                        Arc::new(Lockouts {
                            map: Mutex::default(),
                            window: u64::try_from(lo.window.as_nanos()).unwrap_or(u64::MAX),
                        })
                    })
                })
                .collect(),
            identity_headers: auth::identity_headers(p.jwt.as_ref()),
            jwt,
            tenants,
            active,
            cors_values,
            csp_limit: config.csp_report.as_ref().map(|r| Store::new(&r.limit)),
            clock: Instant::now(),
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// Nanoseconds on the policies' monotonic clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Drops expired limiter and lockout state (called every few seconds).
    pub fn sweep(&self) {
        let now = self.now();
        for l in self.limits.iter().map(|l| &**l).chain(&self.csp_limit) {
            l.sweep(now);
        }
        for l in self.lockouts.iter().flatten() {
            l.sweep(now);
        }
    }

    /// Whether route `i` has request policies beyond the body limit.
    pub fn is_active(&self, i: usize) -> bool {
        self.active[i]
    }
}

/// A CORS policy's list-valued headers, joined at build time rather than per request.
#[derive(Debug)]
struct CorsValues {
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
}

impl CorsValues {
    fn new(c: &rampart_config::policy::Cors) -> Self {
        fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
            let v: Vec<&str> = items.collect();
            if v.is_empty() {
                return None;
            }
            HeaderValue::from_str(&v.join(", ")).ok()
        }
        Self {
            methods: join(c.methods.iter().map(Method::as_str)),
            headers: join(c.headers.iter().map(HeaderName::as_str)),
            expose: join(c.expose.iter().map(HeaderName::as_str)),
        }
    }
}

/// `Access-Control-Allow-Origin` (the origin, or `*` for an any-origin policy without
/// credentials) and `Access-Control-Allow-Credentials`.
fn allow_origin(h: &mut http::HeaderMap, cors: &rampart_config::policy::Cors, origin: HeaderValue) {
    let any = cors.any_origin && !cors.credentials;
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        if any {
            HeaderValue::from_static("*")
        } else {
            origin
        },
    );
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
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

/// Failed-login state of one limit: account → (failures in window, window start, locked
/// until; 0 when not locked). `window` is the counting window in nanoseconds.
#[derive(Debug, Default)]
struct Lockouts {
    map: Mutex<HashMap<String, (u32, u64, u64)>>,
    window: u64,
}

impl Lockouts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, u64, u64)>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn locked_for(&self, account: &str, now: u64) -> Option<u64> {
        self.lock()
            .get(account)
            .and_then(|(_, _, until)| (*until > now).then(|| *until - now))
    }
    /// Drops ended locks and failure counts whose window has passed, so a flood of
    /// distinct account names cannot grow the table without bound.
    fn sweep(&self, now: u64) {
        let window = self.window;
        self.lock()
            .retain(|_, (_, start, until)| *until > now || now.saturating_sub(*start) <= window);
    }
}

/// What the request phase leaves for the response phase.
#[derive(Debug, Default)]
pub struct Ctx {
    cors_origin: Option<HeaderValue>,
    cors: Option<usize>,
    set_csrf: bool,
    lockout: Option<(usize, String)>,
    rate: Option<(u32, u32, u64)>,
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

/// A refusal with what the audit log needs.
#[derive(Debug)]
pub struct Refused {
    /// The answer.
    pub refusal: Refusal,
    /// Audit event name.
    pub event: &'static str,
    /// Why, for operators.
    pub reason: String,
}

fn refuse(refusal: Refusal, event: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        refusal,
        event,
        reason: reason.into(),
    }
}

fn nanos_to_secs_ceil(n: u64) -> u64 {
    n.div_ceil(1_000_000_000)
}

/// Runs the request policies of `route` on `req`.
///
/// # Errors
/// The refusal, when a policy refuses.
pub async fn before(
    edge: &Env<'_>,
    route_idx: usize,
    req: &mut Request<Body>,
    client_ip: IpAddr,
) -> Result<Before, Refused> {
    let config = &edge.config;
    let route = &config.routes[route_idx];
    let p = &route.policy;
    let pol = &edge.policies;
    let mut ctx = Ctx::default();
    let upstream = matches!(route.action, Action::Upstream(_));
    if upstream {
        for h in &pol.identity_headers {
            req.headers_mut().remove(h);
        }
    }
    if !pol.is_active(route_idx) {
        body_limit(p.body_limit, req, &mut ctx)?;
        return Ok(Before::Continue(ctx));
    }
    // IP allow/deny. IPv4-mapped IPv6 addresses count as IPv4.
    let ip = client_ip.to_canonical();
    if p.deny.iter().any(|n| n.contains(&ip))
        || (!p.allow.is_empty() && !p.allow.iter().any(|n| n.contains(&ip)))
    {
        return Err(refuse(
            Refusal::Forbidden("ip_denied"),
            "acl.refused",
            format!("client {ip} not allowed on this route"),
        ));
    }
    // Rate limits that need no identity (IP, header).
    let now = pol.now();
    let mut delay = 0;
    rate_limits(edge, p, req, None, ip, now, false, &mut ctx, &mut delay)?;
    // CORS.
    if let Some(ci) = p.cors {
        ctx.cors = Some(ci);
        let cors = &config.policies.cors[ci];
        let origin = req.headers().get(header::ORIGIN).cloned();
        let allowed = origin.as_ref().filter(|o| {
            cors.any_origin
                || o.to_str()
                    .is_ok_and(|o| cors.origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
        });
        if req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return preflight(cors, &pol.cors_values[ci], req, allowed.cloned())
                .map(Before::Answer);
        }
        ctx.cors_origin = allowed.cloned();
    }
    if !p.methods.is_empty() && !p.methods.contains(req.method()) {
        let allow = p
            .allow_header
            .clone()
            .unwrap_or(HeaderValue::from_static("GET, HEAD"));
        return Err(refuse(
            Refusal::MethodNotAllowed(allow),
            "method.denied",
            format!("method {} not allowed", req.method()),
        ));
    }
    body_limit(p.body_limit, req, &mut ctx)?;
    // Login lockout: before the credentials are looked at.
    for &li in &p.limits {
        let (Some(lo), Some(store)) = (&config.policies.limits[li].lockout, &pol.lockouts[li])
        else {
            continue;
        };
        let account = match login_account(req, &lo.field, p.body_limit).await {
            Ok(Some(a)) => format!("account:{a}"),
            Ok(None) => format!("ip:{ip}"),
            Err(r) => return Err(r),
        };
        if let Some(left) = store.locked_for(&account, now) {
            return Err(refuse(
                Refusal::Locked {
                    status: lo.status,
                    retry_after: nanos_to_secs_ceil(left).max(1),
                },
                "auth.locked",
                format!("{account} is locked after failed logins"),
            ));
        }
        ctx.lockout = Some((li, account));
        break;
    }
    // Authentication. A refused attempt still counts against the user-keyed limits (by
    // its anonymous key), and a limit it exceeds answers instead of the auth refusal.
    let authenticated = authenticate(edge, p, req);
    let id = authenticated.as_ref().ok().and_then(Option::as_ref);
    rate_limits(edge, p, req, id, ip, now, true, &mut ctx, &mut delay)?;
    let identity = authenticated?;
    if let (Some(id), true) = (&identity, upstream) {
        let h = req.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&id.subject) {
            h.insert(X_AUTH_SUBJECT, v);
        }
        h.insert(X_AUTH_METHOD, HeaderValue::from_static(id.method));
        if let Some(jwt) = pol.jwt.as_ref().filter(|_| id.method == "jwt") {
            for (claim, name) in &jwt.config().forward {
                if claim == "sub" && *name == X_AUTH_SUBJECT {
                    continue;
                }
                if let Some(v) = id
                    .claims
                    .get(claim)
                    .and_then(auth::claim_text)
                    .and_then(|t| HeaderValue::from_str(&t).ok())
                {
                    h.insert(name.clone(), v);
                }
            }
        }
    }
    // Tenant.
    if let Some(t) = &p.tenant {
        let value = match req.headers().get(&t.header).map(HeaderValue::to_str) {
            None => {
                return Err(refuse(
                    Refusal::BadRequest("tenant_required"),
                    "tenant.missing",
                    format!("no {} header", t.header),
                ))
            }
            Some(Err(_)) => "\u{0}",
            Some(Ok(v)) => v,
        };
        let ok = pol.tenants[route_idx]
            .as_ref()
            .is_some_and(|re| re.is_match(value));
        if !ok {
            return Err(refuse(
                Refusal::BadRequest("tenant_invalid"),
                "tenant.invalid",
                format!("{} does not match its pattern", t.header),
            ));
        }
        if let Some(claim) = &t.claim {
            let from_token = identity
                .as_ref()
                .and_then(|i| i.claims.get(claim))
                .and_then(auth::claim_text);
            if from_token.as_deref() != Some(value) {
                return Err(refuse(
                    Refusal::Forbidden("tenant_mismatch"),
                    "tenant.mismatch",
                    format!("{} does not match the token's {claim:?} claim", t.header),
                ));
            }
        }
    }
    // CSRF (double-submit cookie).
    if p.csrf {
        csrf(edge, req, identity.as_ref(), &mut ctx)?;
    }
    if p.strip_credentials && upstream {
        req.headers_mut().remove(header::AUTHORIZATION);
        if let Some(k) = &config.policies.api_keys {
            req.headers_mut().remove(&k.header);
        }
    }
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_nanos(delay)).await;
    }
    Ok(Before::Continue(ctx))
}

/// Checks the route's rate limits of one phase: those keyed by identity (`identified`,
/// after authentication, with `id` when it succeeded) or the others (before it). The
/// lowest remaining quota is kept for the `RateLimit-*` headers; `delay` is the longest
/// wait a limit without `nodelay` asks for.
#[allow(clippy::too_many_arguments)]
fn rate_limits(
    edge: &Env<'_>,
    p: &RoutePolicy,
    req: &Request<Body>,
    id: Option<&Identity>,
    ip: IpAddr,
    now: u64,
    identified: bool,
    ctx: &mut Ctx,
    delay: &mut u64,
) -> Result<(), Refused> {
    for &li in &p.limits {
        let limit = &edge.config.policies.limits[li];
        if limit.key.needs_identity() != identified || !limit.applies_to(req.method()) {
            continue;
        }
        let key = limit_key(&limit.key, req, id, ip);
        let store = &edge.policies.limits[li];
        match store.check(&key, now) {
            Decision::Allow {
                delay: d,
                remaining,
                reset,
            } => {
                *delay = (*delay).max(d);
                let r = (store.quota(), remaining, nanos_to_secs_ceil(reset));
                if ctx.rate.is_none_or(|(_, rem, _)| remaining < rem) {
                    ctx.rate = Some(r);
                }
            }
            Decision::Refuse { retry_after, reset } => {
                return Err(refuse(
                    Refusal::RateLimited {
                        retry_after: nanos_to_secs_ceil(retry_after).max(1),
                        limit: store.quota(),
                        reset: nanos_to_secs_ceil(reset),
                    },
                    "ratelimit.refused",
                    format!("limit {:?} exceeded by {key}", limit.name),
                ));
            }
        }
    }
    Ok(())
}

fn body_limit(limit: u64, req: &mut Request<Body>, ctx: &mut Ctx) -> Result<(), Refused> {
    if http_body::Body::is_end_stream(req.body()) {
        return Ok(());
    }
    match req.headers().get(header::CONTENT_LENGTH) {
        Some(cl) => {
            // hyper has checked the value; a body cannot exceed its Content-Length.
            let n: u64 = cl.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            if n > limit {
                return Err(refuse(
                    Refusal::PayloadTooLarge,
                    "request.too_large",
                    format!("Content-Length {n} over the route's limit of {limit}"),
                ));
            }
        }
        None => {
            let flag = Arc::new(AtomicBool::new(false));
            let inner = std::mem::take(req.body_mut());
            *req.body_mut() = Body::Limited(Box::new(inner), limit, flag.clone());
            ctx.exceeded = Some(flag);
        }
    }
    Ok(())
}

fn preflight(
    cors: &rampart_config::policy::Cors,
    values: &CorsValues,
    req: &Request<Body>,
    origin: Option<HeaderValue>,
) -> Result<Response<Body>, Refused> {
    let denied = |why: String| refuse(Refusal::Forbidden("cors_denied"), "cors.refused", why);
    let Some(origin) = origin else {
        return Err(denied("preflight from an origin not allowed".into()));
    };
    let method = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    if !method.is_some_and(|m| cors.methods.contains(&m)) {
        return Err(denied("preflight for a method not allowed".into()));
    }
    let mut asked = Vec::new();
    for v in req
        .headers()
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        for h in v.to_str().unwrap_or("\u{0}").split(',') {
            let h = h.trim();
            if h.is_empty() {
                continue;
            }
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) if cors.headers.contains(&n) => asked.push(n),
                _ => return Err(denied(format!("preflight asks for header {h:?}"))),
            }
        }
    }
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    allow_origin(h, cors, origin);
    if let Some(v) = &values.methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    if let Some(v) = &values.headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(resp)
}

fn authenticate(
    edge: &Env<'_>,
    p: &RoutePolicy,
    req: &Request<Body>,
) -> Result<Option<Identity>, Refused> {
    if p.auth.is_empty() {
        return Ok(None);
    }
    let pol = &edge.policies;
    let mut invalid = None;
    for m in &p.auth {
        let r = match m {
            AuthMethod::Jwt => match &pol.jwt {
                Some(j) => j.verify(req.headers()),
                None => Err(AuthError::Missing),
            },
            AuthMethod::ApiKey => match &edge.config.policies.api_keys {
                Some(k) => auth::api_key(k, req.headers()),
                None => Err(AuthError::Missing),
            },
        };
        match r {
            Ok(id) => return Ok(Some(id)),
            Err(AuthError::Invalid(why)) => invalid = Some((m, why)),
            Err(AuthError::Missing) => {}
        }
    }
    if let Some((m, why)) = invalid {
        let what = match m {
            AuthMethod::Jwt => "token",
            AuthMethod::ApiKey => "api key",
        };
        return Err(refuse(
            Refusal::Forbidden("invalid_credentials"),
            "auth.failure",
            format!("{what}: {why}"),
        ));
    }
    if p.auth_optional {
        return Ok(None);
    }
    let challenge = if p.auth.contains(&AuthMethod::Jwt) {
        HeaderValue::from_static("Bearer realm=\"rampart\"")
    } else {
        let header = edge
            .config
            .policies
            .api_keys
            .as_ref()
            .map_or("X-API-Key", |k| k.header.as_str());
        HeaderValue::from_str(&format!("ApiKey header=\"{header}\""))
            .unwrap_or(HeaderValue::from_static("ApiKey"))
    };
    Err(refuse(
        Refusal::Unauthorized(challenge),
        "auth.failure",
        "no credentials",
    ))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

fn same_origin(origin: &str, req: &Request<Body>, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = req
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        });
    let Some(host) = host else { return false };
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    rest.eq_ignore_ascii_case(host)
}

fn csrf(
    edge: &Env<'_>,
    req: &Request<Body>,
    identity: Option<&Identity>,
    ctx: &mut Ctx,
) -> Result<(), Refused> {
    let c = &edge.config.policies.csrf;
    let cookie_value = cookie(req.headers(), &c.cookie);
    ctx.set_csrf = cookie_value.is_none_or(str::is_empty);
    let unsafe_method = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    // Requests authenticated by a bearer token or an API key carry no ambient credential
    // a third-party page could borrow.
    if !unsafe_method || identity.is_some() {
        return Ok(());
    }
    let denied = |code: &'static str, why: &str| {
        refuse(Refusal::Forbidden(code), "csrf.refused", why.to_owned())
    };
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let r = req.headers().get(header::REFERER)?.to_str().ok()?;
            let u: http::Uri = r.parse().ok()?;
            Some(format!("{}://{}", u.scheme_str()?, u.authority()?))
        });
    if let Some(o) = origin {
        if o != "null" && !same_origin(&o, req, &c.allowed_origins) {
            return Err(denied("csrf_origin", "cross-origin unsafe request"));
        }
        if o == "null" {
            return Err(denied("csrf_origin", "opaque origin"));
        }
    }
    let Some(cookie_value) = cookie_value.filter(|v| !v.is_empty()) else {
        return Err(denied("csrf_failed", "no CSRF cookie"));
    };
    let Some(sent) = req.headers().get(&c.header) else {
        return Err(denied("csrf_failed", "no CSRF header"));
    };
    if !auth::ct_eq(sent.as_bytes(), cookie_value.as_bytes()) {
        return Err(denied(
            "csrf_failed",
            "CSRF header does not match the cookie",
        ));
    }
    Ok(())
}

fn limit_key(key: &LimitKey, req: &Request<Body>, id: Option<&Identity>, ip: IpAddr) -> String {
    match key {
        LimitKey::Ip => ip_key(ip),
        LimitKey::User => match id {
            Some(i) => format!("user:{}", i.subject),
            None => "user:-".into(),
        },
        LimitKey::ApiKey => match id.filter(|i| i.method == "api_key") {
            Some(i) => format!("key:{}", i.subject),
            None => "key:-".into(),
        },
        LimitKey::UserOrIp => match id {
            Some(i) => format!("user:{}", i.subject),
            None => ip_key(ip),
        },
        LimitKey::Header(h) => match req.headers().get(h).and_then(|v| v.to_str().ok()) {
            Some(v) => format!("h:{v}"),
            None => ip_key(ip),
        },
    }
}

/// `ip:ADDRESS`. IPv4 is formatted by hand: `Display` for an address costs more than
/// the limiter's decision (measured, callgrind: ~1.4k instructions).
fn ip_key(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return format!("ip:{ip}");
    };
    let mut s = String::with_capacity(18);
    s.push_str("ip:");
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

/// Reads a login request's body (it is small) to find the account it names, then puts
/// the body back for the upstream.
async fn login_account(
    req: &mut Request<Body>,
    field: &str,
    body_limit: u64,
) -> Result<Option<String>, Refused> {
    if http_body::Body::is_end_stream(req.body()) {
        return Ok(None);
    }
    let max = usize::try_from(body_limit)
        .unwrap_or(usize::MAX)
        .min(LOGIN_BODY_MAX);
    let body = std::mem::take(req.body_mut());
    let bytes: Bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(refuse(
                Refusal::PayloadTooLarge,
                "request.too_large",
                format!("login body over {max} bytes"),
            ))
        }
    };
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let account = if ct.starts_with("application/json") || ct.contains("+json") {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get(field).and_then(auth::claim_text))
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        std::str::from_utf8(&bytes).ok().and_then(|s| {
            s.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (url_decode(k) == field).then(|| url_decode(v))
            })
        })
    } else {
        None
    };
    *req.body_mut() = Body::full(bytes);
    Ok(account
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty()))
}

fn url_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the response policies.
pub fn after(edge: &Env<'_>, route: &Route, ctx: Ctx, resp: &mut Response<Body>) {
    let pol = &edge.policies;
    if let Some((li, account)) = &ctx.lockout {
        if let (Some(lo), Some(store)) = (
            &edge.config.policies.limits[*li].lockout,
            &pol.lockouts[*li],
        ) {
            let status = resp.status().as_u16();
            let now = pol.now();
            let mut map = store.lock();
            if lo.statuses.contains(&status) {
                let e = map.entry(account.clone()).or_insert((0, now, 0));
                if now.saturating_sub(e.1) > store.window {
                    *e = (0, now, 0);
                }
                e.0 += 1;
                if e.0 >= lo.failures {
                    e.2 = now + u64::try_from(lo.lock_for.as_nanos()).unwrap_or(u64::MAX / 2);
                    e.0 = 0;
                    let mut m = crate::observe::audit::line(edge, "auth.lockout", "warning");
                    m.insert("account", account.clone().into());
                    m.insert("route", route.name.clone().into());
                    m.insert("reason", "account locked after failed logins".into());
                    crate::observe::audit::send(edge, m);
                }
            } else if resp.status().is_success() {
                map.remove(account);
            }
        }
    }
    let h = resp.headers_mut();
    if let Some(ci) = ctx.cors {
        let cors = &edge.config.policies.cors[ci];
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = ctx.cors_origin {
            allow_origin(h, cors, origin);
            if let Some(v) = &pol.cors_values[ci].expose {
                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
        }
    }
    if let Some((limit, remaining, reset)) = ctx.rate {
        const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
        const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
        const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
        h.insert(LIMIT, HeaderValue::from(limit));
        h.insert(REMAINING, HeaderValue::from(remaining));
        h.insert(RESET, HeaderValue::from(reset));
    }
    let c = &edge.config.policies.csrf;
    if ctx.set_csrf {
        let mut token = [0u8; 32];
        if ring::rand::SecureRandom::fill(&pol.rng, &mut token).is_ok() {
            let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
            let v = format!("{}={hex}; Path=/; Secure; SameSite=Lax", c.cookie);
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.append(header::SET_COOKIE, v);
            }
        }
    }
    if matches!(route.action, Action::Upstream(_)) && route.policy.cookies.is_active() {
        harden_cookies(h, &route.policy.cookies, &c.cookie);
    }
}

/// Adds missing `Secure`, `HttpOnly` and `SameSite` attributes to upstream cookies.
fn harden_cookies(
    h: &mut http::HeaderMap,
    cfg: &rampart_config::policy::Cookies,
    csrf_cookie: &str,
) {
    if !h.contains_key(header::SET_COOKIE) {
        return;
    }
    let old: Vec<HeaderValue> = match h.entry(header::SET_COOKIE) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return,
    };
    for v in old {
        let Ok(s) = v.to_str() else {
            h.append(header::SET_COOKIE, v);
            continue;
        };
        let name = s.split(['=', ';']).next().unwrap_or("").trim();
        let attrs: Vec<String> = s
            .split(';')
            .skip(1)
            .map(|a| {
                a.split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        let has = |a: &str| attrs.iter().any(|x| x == a);
        let mut out = s.trim_end_matches([';', ' ']).to_owned();
        if cfg.secure && !has("secure") {
            out.push_str("; Secure");
        }
        let readable = name == csrf_cookie || cfg.script_readable.iter().any(|n| n == name);
        if cfg.httponly && !readable && !has("httponly") {
            out.push_str("; HttpOnly");
        }
        if let Some(ss) = &cfg.samesite {
            if !has("samesite") {
                out.push_str("; SameSite=");
                out.push_str(ss);
            }
        }
        h.append(header::SET_COOKIE, HeaderValue::from_str(&out).unwrap_or(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_match_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "192.168.9.99",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_key(ip), format!("ip:{ip}"));
        }
    }

    #[test]
    fn cookies_are_hardened_without_duplicating_attributes() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("sid=abc; Path=/"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("pref=1; secure; HttpOnly; SameSite=Strict"),
        );
        h.append(header::SET_COOKIE, HeaderValue::from_static("csrf_token=x"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("ui=dark"));
        let cfg = rampart_config::policy::Cookies {
            script_readable: vec!["ui".into()],
            ..Default::default()
        };
        harden_cookies(&mut h, &cfg, "csrf_token");
        let got: Vec<&str> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax",
                "pref=1; secure; HttpOnly; SameSite=Strict",
                "csrf_token=x; Secure; SameSite=Lax",
                "ui=dark; Secure; SameSite=Lax",
            ]
        );
    }

    #[test]
    fn form_fields_decode() {
        assert_eq!(url_decode("a%40b.c+d"), "a@b.c d");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
    }
}
