//! Request policies: named blocks (`[limits.NAME]`, `[cors.NAME]`, `[api_keys]`, `[jwt]`,
//! `[csrf]`) and the per-route keys that use them. The file shape, the runtime form and
//! the rules live together here because each policy is small and read as a whole.
//!
//! Key material for JWT is checked for presence and shape here; parsing PEM keys and JWKS
//! documents happens in `rampart-server` (as for TLS certificates), with errors naming the
//! same keys.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use ipnet::IpNet;

use crate::error::did_you_mean;
use crate::raw::{OneOrMany, RawApiKeys, RawCors, RawCsrf, RawJwt, RawLimit};
use crate::secret::Weakness;

// === runtime form ===

/// Every named policy, shared by routes.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Rate limits, in name order; routes refer by index.
    pub limits: Vec<Limit>,
    /// CORS policies, in name order; routes refer by index.
    pub cors: Vec<Cors>,
    /// API keys, when configured.
    pub api_keys: Option<ApiKeys>,
    /// JWT verification, when configured.
    pub jwt: Option<Jwt>,
    /// CSRF settings.
    pub csrf: Csrf,
}

/// A rate limit.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Its name, for logs and metrics.
    pub name: String,
    /// Requests allowed per `per`.
    pub count: u32,
    /// The period of `count`.
    pub per: Duration,
    /// Extra requests allowed at once.
    pub burst: u32,
    /// What identifies a client.
    pub key: LimitKey,
    /// Methods counted; empty means all.
    pub methods: Vec<Method>,
    /// Refuse excess at once rather than delaying it.
    pub nodelay: bool,
    /// Most keys tracked.
    pub max_keys: usize,
    /// Login lockout.
    pub lockout: Option<Lockout>,
    /// What the limit does while the shared state is unreachable.
    pub on_state_error: crate::state::OnStateError,
    /// Tokens taken from the shared state at once per key (1: no leasing).
    pub lease: u32,
}

impl Limit {
    /// Whether requests with `m` count against this limit.
    pub fn applies_to(&self, m: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(m)
    }
}

impl LimitKey {
    /// Whether the key is the authenticated identity (or falls back to one bucket or the IP
    /// without one): such limits run after authentication. The others (IP, a header) need
    /// no secret checked and run before it, so a flood of bad credentials is throttled
    /// before any signature is verified.
    pub fn needs_identity(&self) -> bool {
        matches!(self, LimitKey::User | LimitKey::ApiKey | LimitKey::UserOrIp)
    }
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// Client IP (after `trusted_proxies`).
    Ip,
    /// Authenticated subject (JWT `sub` or API key name); unauthenticated requests share
    /// one bucket.
    User,
    /// API key name; requests without one share one bucket.
    ApiKey,
    /// Authenticated subject when there is one, else the client IP.
    UserOrIp,
    /// A request header's value; requests without it are counted by IP.
    Header(HeaderName),
    /// The verified client certificate (its SHA-256); requests without one by IP.
    ClientCert,
}

/// Login lockout.
#[derive(Debug, Clone)]
pub struct Lockout {
    /// Failures that lock.
    pub failures: u32,
    /// Lock duration.
    pub lock_for: Duration,
    /// Failure counting window.
    pub window: Duration,
    /// Body field naming the account.
    pub field: String,
    /// Upstream statuses that count as failures.
    pub statuses: Vec<u16>,
    /// Refusal status while locked (429 or 423).
    pub status: u16,
}

/// API keys.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    /// The header carrying a key.
    pub header: HeaderName,
    /// (name, SHA-256 of the key).
    pub keys: Vec<(String, [u8; 32])>,
}

/// JWT algorithm (pinned by config, never taken from a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    /// HMAC SHA-256.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSA PKCS#1 v1.5 SHA-256.
    RS256,
    /// RSA PKCS#1 v1.5 SHA-384.
    RS384,
    /// RSA PKCS#1 v1.5 SHA-512.
    RS512,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl JwtAlg {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "ES256" => Self::ES256,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }
    /// Whether the key is a shared secret.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// Where JWT keys come from.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// HMAC secret bytes, and the previous secret still accepted during a rotation.
    Secret(Vec<u8>, Option<Vec<u8>>),
    /// PEM public key text.
    PublicKeyPem(String),
    /// JWKS JSON text.
    Jwks(String),
}

/// JWT verification.
#[derive(Debug, Clone)]
pub struct Jwt {
    /// The accepted algorithm.
    pub alg: JwtAlg,
    /// The key.
    pub key: JwtKey,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Accepted audiences.
    pub audience: Vec<String>,
    /// Clock leeway.
    pub leeway: Duration,
    /// Tokens with `iat` before this (seconds since the epoch) are refused.
    pub revoke_before: Option<u64>,
    /// Longest accepted `exp - iat`.
    pub max_lifetime: Option<Duration>,
    /// Claim → header forwarded upstream.
    pub forward: Vec<(String, HeaderName)>,
}

/// A CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Its name.
    pub name: String,
    /// Exact allowed origins.
    pub origins: Vec<String>,
    /// `*`: any origin (never with credentials).
    pub any_origin: bool,
    /// `Access-Control-Allow-Methods`.
    pub methods: Vec<Method>,
    /// Allowed request headers (lowercase).
    pub headers: Vec<HeaderName>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age`.
    pub max_age: Duration,
    /// `Access-Control-Expose-Headers`.
    pub expose: Vec<HeaderName>,
}

/// CSRF settings.
#[derive(Debug, Clone)]
pub struct Csrf {
    /// Cookie name.
    pub cookie: String,
    /// Header name.
    pub header: HeaderName,
    /// Origins allowed besides the request's own.
    pub allowed_origins: Vec<String>,
    /// Requests with `Authorization: Bearer …` pass without the token, verified by the
    /// edge or not (the application checks it): a browser never sends that header on its
    /// own, and a cross-site page cannot add it without a CORS preflight.
    pub exempt_bearer: bool,
}

impl Default for Csrf {
    fn default() -> Self {
        Self {
            cookie: crate::defaults::auth::CSRF_COOKIE.into(),
            header: HeaderName::from_static(crate::defaults::auth::CSRF_HEADER),
            allowed_origins: Vec::new(),
            exempt_bearer: crate::defaults::auth::CSRF_EXEMPT_BEARER,
        }
    }
}

/// Authentication methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Bearer` JWT.
    Jwt,
    /// API key header.
    ApiKey,
    /// A verified client certificate (mutual TLS).
    Mtls,
}

/// The policies of one route.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicy {
    /// Indices into [`Policies::limits`].
    pub limits: Vec<usize>,
    /// Accepted methods; empty means no authentication.
    pub auth: Vec<AuthMethod>,
    /// Unauthenticated requests pass.
    pub auth_optional: bool,
    /// Largest request body in bytes.
    pub body_limit: u64,
    /// Allowed client networks (empty: any).
    pub allow: Vec<IpNet>,
    /// Denied client networks.
    pub deny: Vec<IpNet>,
    /// Allowed methods (empty: any), and the `Allow` value.
    pub methods: Vec<Method>,
    /// `Allow` header value for 405s.
    pub allow_header: Option<HeaderValue>,
    /// Index into [`Policies::cors`].
    pub cors: Option<usize>,
    /// CSRF check on.
    pub csrf: bool,
    /// `Authorization` and the API key header are not forwarded.
    pub strip_credentials: bool,
    /// Tenant header requirement.
    pub tenant: Option<Tenant>,
    /// Cookie hardening.
    pub cookies: Cookies,
}

/// Tenant header requirement.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The header.
    pub header: HeaderName,
    /// Whole-value pattern (anchored when compiled).
    pub pattern: String,
    /// JWT claim that must match.
    pub claim: Option<String>,
}

/// Cookie hardening of upstream `Set-Cookie`.
#[derive(Debug, Clone)]
pub struct Cookies {
    /// Add `Secure`.
    pub secure: bool,
    /// Add `HttpOnly`.
    pub httponly: bool,
    /// `SameSite` value added when missing.
    pub samesite: Option<String>,
    /// Cookies without `HttpOnly`.
    pub script_readable: Vec<String>,
}

impl Cookies {
    /// Whether hardening does anything.
    pub fn is_active(&self) -> bool {
        self.secure || self.httponly || self.samesite.is_some()
    }
}

impl Default for Cookies {
    fn default() -> Self {
        Self {
            secure: true,
            httponly: true,
            samesite: Some("Lax".into()),
            script_readable: Vec::new(),
        }
    }
}

/// Default `body_limit`: 10 MB.
pub const DEFAULT_BODY_LIMIT: u64 = crate::defaults::route::BODY_LIMIT;

// === rules ===

/// Errors go through this (key, message) sink.
pub(crate) type Sink<'a> = &'a mut dyn FnMut(String, String);

/// Parses `10/s`-style rates into (count, period).
///
/// # Errors
/// A message naming the expected shape.
pub fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let bad = || {
        format!("invalid rate {text:?}: expected a count and a period such as \"10/s\", \"5/m\", \"500/h\", \"1000/d\"")
    };
    let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!(
            "invalid rate {text:?}: the count must be at least 1"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        _ => return Err(bad()),
    };
    Ok((n, per))
}

fn header_name(s: &str, key: &str, err: Sink<'_>) -> Option<HeaderName> {
    match HeaderName::from_bytes(s.trim().as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            err(key.into(), format!("{s:?} is not a valid header name"));
            None
        }
    }
}

fn methods(list: &[String], key: &str, err: Sink<'_>) -> Vec<Method> {
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let up = m.trim().to_ascii_uppercase();
        match Method::from_bytes(up.as_bytes()) {
            Ok(m) if !up.is_empty() => out.push(m),
            _ => err(
                format!("{key}[{i}]"),
                format!("{m:?} is not an HTTP method"),
            ),
        }
    }
    out
}

pub(crate) fn limit(name: &str, r: &RawLimit, err: Sink<'_>) -> Limit {
    let key = format!("limits.{name}");
    let (count, per) = match r.rate.as_deref() {
        Some(s) => parse_rate(s).unwrap_or_else(|e| {
            err(format!("{key}.rate"), e);
            (1, Duration::from_secs(1))
        }),
        None => {
            err(
                format!("{key}.rate"),
                "missing: a rate such as \"10/s\"".into(),
            );
            (1, Duration::from_secs(1))
        }
    };
    let lk = match r.key.as_deref().unwrap_or(crate::defaults::limit::KEY) {
        "ip" => LimitKey::Ip,
        "user" => LimitKey::User,
        "api_key" => LimitKey::ApiKey,
        "user_or_ip" => LimitKey::UserOrIp,
        "client_cert" => LimitKey::ClientCert,
        other => match other.strip_prefix("header:") {
            Some(h) => {
                header_name(h, &format!("{key}.key"), err).map_or(LimitKey::Ip, LimitKey::Header)
            }
            None => {
                let hint = did_you_mean(
                    other,
                    ["ip", "user", "api_key", "user_or_ip", "client_cert"],
                )
                .map(|c| format!(", did you mean {c:?}?"))
                .unwrap_or_default();
                err(
                    format!("{key}.key"),
                    format!("unknown key {other:?}: expected ip, user, api_key, user_or_ip, client_cert or header:NAME{hint}"),
                );
                LimitKey::Ip
            }
        },
    };
    let max_keys = r.max_keys.unwrap_or(crate::defaults::limit::MAX_KEYS);
    let mut bound = |k: &str, v: u64, range| {
        if let Err(m) = crate::bounds::check(v, range) {
            err(format!("{key}.{k}"), m);
        }
    };
    bound(
        "max_keys",
        u64::try_from(max_keys).unwrap_or(u64::MAX),
        &crate::bounds::MAX_KEYS,
    );
    bound("rate", u64::from(count), &crate::bounds::RATE_COUNT);
    if let Some(b) = r.burst {
        bound("burst", u64::from(b), &crate::bounds::BURST);
    }
    let lockout = r.lockout.as_ref().map(|l| {
        let status = l.status.unwrap_or(crate::defaults::limit::LOCKOUT_STATUS);
        if status != 429 && status != 423 {
            err(
                format!("{key}.lockout.status"),
                format!("expected 429 or 423, got {status}"),
            );
        }
        let failures = l
            .failures
            .unwrap_or(crate::defaults::limit::LOCKOUT_FAILURES);
        if let Err(m) = crate::bounds::check(u64::from(failures), &crate::bounds::LOCKOUT_FAILURES)
        {
            err(format!("{key}.lockout.failures"), m);
        }
        let lock_for = l
            .lock_for
            .map_or(crate::defaults::limit::LOCKOUT_FOR, |d| d.0);
        let statuses = l
            .statuses
            .clone()
            .unwrap_or_else(|| crate::defaults::limit::LOCKOUT_STATUSES.to_vec());
        for (i, s) in statuses.iter().enumerate() {
            if !(400..=599).contains(s) {
                err(
                    format!("{key}.lockout.statuses[{i}]"),
                    format!("expected an error status (400-599), got {s}"),
                );
            }
        }
        Lockout {
            failures,
            lock_for,
            window: l.window.map_or(lock_for, |d| d.0),
            field: l
                .field
                .clone()
                .unwrap_or_else(|| crate::defaults::limit::LOCKOUT_FIELD.into()),
            statuses,
            status,
        }
    });
    Limit {
        name: name.to_owned(),
        count,
        per,
        // `N/period` admits N at once, as every guide's `5/minute` means (slowapi,
        // Flask-Limiter); `burst = 0` keeps nginx's strict spacing.
        burst: r.burst.unwrap_or(count.saturating_sub(1)),
        key: lk,
        methods: methods(
            r.methods.as_deref().unwrap_or(&[]),
            &format!("{key}.methods"),
            err,
        ),
        nodelay: r.nodelay.unwrap_or(crate::defaults::limit::NODELAY),
        max_keys: max_keys.max(1),
        lockout,
        lease: {
            let lease = r.lease.unwrap_or(crate::defaults::limit::LEASE);
            if !(1..=1000).contains(&lease) {
                err(
                    format!("{key}.lease"),
                    format!("expected 1 to 1000 tokens, got {lease}"),
                );
            }
            lease.clamp(1, 1000)
        },
        on_state_error: r.on_state_error.as_deref().map_or(
            crate::state::OnStateError::Local,
            |s| {
                crate::state::OnStateError::parse(s).unwrap_or_else(|m| {
                    err(format!("{key}.on_state_error"), m);
                    crate::state::OnStateError::Local
                })
            },
        ),
    }
}

pub(crate) fn api_keys(r: &RawApiKeys, err: Sink<'_>) -> ApiKeys {
    let header = r
        .header
        .as_deref()
        .and_then(|h| header_name(h, "api_keys.header", err))
        .unwrap_or(HeaderName::from_static(
            crate::defaults::auth::API_KEY_HEADER,
        ));
    let mut keys = Vec::new();
    if r.keys.is_empty() {
        err(
            "api_keys.keys".into(),
            "no keys: add keys = [{ name = \"…\", key_file = \"…\" }]".into(),
        );
    }
    for (i, k) in r.keys.iter().enumerate() {
        let key = format!("api_keys.keys[{i}]");
        let name = k.name.clone().unwrap_or_else(|| format!("key{i}"));
        let hash = match (&k.key, &k.sha256) {
            (Some(secret), None) => {
                if secret.is_empty() {
                    err(format!("{key}.key"), "is empty".into());
                    continue;
                }
                if secret.chars().any(char::is_whitespace) {
                    err(
                        format!("{key}.key"),
                        "contains whitespace (a stray newline from a file?)".into(),
                    );
                    continue;
                }
                if secret.len() < 16 {
                    err(
                        format!("{key}.key"),
                        "is shorter than 16 characters: generate one with `rampart secrets`".into(),
                    );
                }
                sha256(secret.as_bytes())
            }
            (None, Some(hex)) => match decode_hex32(hex) {
                Some(h) => h,
                None => {
                    err(
                        format!("{key}.sha256"),
                        "expected 64 hex digits (a SHA-256)".into(),
                    );
                    continue;
                }
            },
            _ => {
                err(
                    key,
                    "needs exactly one of `key` (or `key_file`) and `sha256`".into(),
                );
                continue;
            }
        };
        if keys.iter().any(|(n, _)| *n == name) {
            err(
                format!("{key}.name"),
                format!("name {name:?} is used twice"),
            );
        }
        if let Some(p) = k.previous.as_deref().filter(|p| !p.is_empty()) {
            if p.len() < 16 || p.chars().any(char::is_whitespace) {
                err(
                    format!("{key}.previous"),
                    "is shorter than 16 characters or contains whitespace".into(),
                );
            }
            keys.push((name.clone(), sha256(p.as_bytes())));
        }
        keys.push((name, hash));
    }
    ApiKeys { header, keys }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn jwt(r: &RawJwt, err: Sink<'_>) -> Option<Jwt> {
    let alg = match r.alg.as_deref() {
        Some(a) => match JwtAlg::parse(a) {
            Some(alg) => alg,
            None => {
                let msg = if a.eq_ignore_ascii_case("none") {
                    "\"none\" is never accepted".to_owned()
                } else {
                    format!("unknown algorithm {a:?}: expected HS256, HS384, HS512, RS256, RS384, RS512, ES256 or EdDSA")
                };
                err("jwt.alg".into(), msg);
                return None;
            }
        },
        None => {
            err(
                "jwt.alg".into(),
                "missing: pin the one algorithm tokens must use (e.g. \"RS256\")".into(),
            );
            return None;
        }
    };
    let given = [r.secret.is_some(), r.public_key.is_some(), r.jwks.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given != 1 {
        err(
            "jwt".into(),
            "needs exactly one of `secret` (`secret_file`), `public_key` (`public_key_file`), `jwks` (`jwks_file`)".into(),
        );
        return None;
    }
    let key = if let Some(s) = &r.secret {
        if !alg.is_hmac() {
            err(
                "jwt.secret".into(),
                format!("{alg:?} needs `public_key` or `jwks`, not a secret"),
            );
            return None;
        }
        if s.len() < 32 {
            err(
                "jwt.secret".into(),
                "is shorter than 32 bytes: generate one with `rampart secrets`".into(),
            );
        }
        let previous = r.secret_previous.as_deref().filter(|p| !p.is_empty());
        if previous.is_some_and(|p| p.len() < 32) {
            err(
                "jwt.secret_previous".into(),
                "is shorter than 32 bytes".into(),
            );
        }
        JwtKey::Secret(
            s.as_bytes().to_vec(),
            previous.map(|p| p.as_bytes().to_vec()),
        )
    } else if alg.is_hmac() {
        err(
            "jwt.secret".into(),
            format!("{alg:?} is an HMAC algorithm: it needs `secret`"),
        );
        return None;
    } else if let Some(p) = &r.public_key {
        JwtKey::PublicKeyPem(p.clone())
    } else {
        JwtKey::Jwks(r.jwks.clone().unwrap_or_default())
    };
    let revoke_before = r.revoke_before.as_deref().and_then(|s| {
        parse_rfc3339(s).or_else(|| {
            err(
                "jwt.revoke_before".into(),
                format!("invalid instant {s:?}: expected RFC 3339, e.g. \"2026-11-01T00:00:00Z\""),
            );
            None
        })
    });
    let mut forward = Vec::new();
    let mut fw = r.forward.clone().unwrap_or_default();
    fw.entry("sub".into())
        .or_insert_with(|| "X-Auth-Subject".into());
    for (claim, h) in &fw {
        if let Some(h) = header_name(h, &format!("jwt.forward.{claim}"), err) {
            forward.push((claim.clone(), h));
        }
    }
    Some(Jwt {
        alg,
        key,
        issuer: r.issuer.clone(),
        audience: r.audience.clone().unwrap_or_default(),
        leeway: r.leeway.map_or(crate::defaults::auth::JWT_LEEWAY, |d| d.0),
        revoke_before,
        max_lifetime: r.max_lifetime.map(|d| d.0),
        forward,
    })
}

/// Seconds since the epoch of an RFC 3339 UTC instant (`2026-11-01T00:00:00Z`, offsets
/// allowed).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let da: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0i64)
    } else {
        let pos = rest.rfind(['+', '-'])?;
        let (t, o) = rest.split_at(pos);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':')?;
        (
            t,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = crate::civil::to_days(y, mo, da);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se - offset).ok()
}

fn origin_ok(o: &str) -> bool {
    match o.parse::<http::Uri>() {
        Ok(u) => {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some()
                && (u.path() == "/" || u.path().is_empty())
                && !o.ends_with('/')
                && u.query().is_none()
        }
        Err(_) => false,
    }
}

pub(crate) fn cors(name: &str, r: &RawCors, err: Sink<'_>) -> Cors {
    let key = format!("cors.{name}");
    let credentials = r
        .credentials
        .unwrap_or(crate::defaults::auth::CORS_CREDENTIALS);
    let mut origins = Vec::new();
    let mut any_origin = false;
    if r.origins.is_empty() {
        err(
            format!("{key}.origins"),
            "no origins: list the exact origins allowed".into(),
        );
    }
    for (i, o) in r.origins.iter().enumerate() {
        if o == "*" {
            any_origin = true;
            if credentials {
                err(
                    format!("{key}.origins[{i}]"),
                    "\"*\" cannot be combined with credentials = true: list the exact origins"
                        .into(),
                );
            }
        } else if origin_ok(o) {
            origins.push(o.to_ascii_lowercase());
        } else {
            err(
                format!("{key}.origins[{i}]"),
                format!("{o:?} is not an origin: expected scheme://host[:port] without a path, e.g. \"https://app.example.com\""),
            );
        }
    }
    let default_methods = crate::defaults::auth::CORS_METHODS.map(String::from);
    let m = methods(
        r.methods.as_deref().unwrap_or(&default_methods),
        &format!("{key}.methods"),
        err,
    );
    let headers = r
        .headers
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, h)| header_name(h, &format!("{key}.headers[{i}]"), err))
        .collect();
    let expose = r
        .expose
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, h)| header_name(h, &format!("{key}.expose[{i}]"), err))
        .collect();
    Cors {
        name: name.to_owned(),
        origins,
        any_origin,
        methods: m,
        headers,
        credentials,
        max_age: r
            .max_age
            .map_or(crate::defaults::auth::CORS_MAX_AGE, |d| d.0),
        expose,
    }
}

pub(crate) fn csrf(r: &RawCsrf, err: Sink<'_>) -> Csrf {
    let mut c = Csrf::default();
    if let Some(name) = &r.cookie {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            err(
                "csrf.cookie".into(),
                format!("{name:?} is not a valid cookie name"),
            );
        } else {
            c.cookie = name.clone();
        }
    }
    if let Some(h) = r
        .header
        .as_deref()
        .and_then(|h| header_name(h, "csrf.header", err))
    {
        c.header = h;
    }
    c.exempt_bearer = r
        .exempt_bearer
        .unwrap_or(crate::defaults::auth::CSRF_EXEMPT_BEARER);
    for (i, o) in r.allowed_origins.iter().flatten().enumerate() {
        if origin_ok(o) {
            c.allowed_origins.push(o.to_ascii_lowercase());
        } else {
            err(
                format!("csrf.allowed_origins[{i}]"),
                format!("{o:?} is not an origin (scheme://host[:port])"),
            );
        }
    }
    c
}

/// Validates a route's policy keys. `limit_names` and `cors_names` are the defined
/// blocks, in index order.
pub(crate) fn route_policy(
    r: &crate::raw::RawRoute,
    key: &str,
    limit_names: &[&String],
    cors_names: &[&String],
    have: (bool, bool, bool),
    err: Sink<'_>,
) -> RoutePolicy {
    let mut p = RoutePolicy {
        body_limit: r.body_limit.map_or(DEFAULT_BODY_LIMIT, |s| s.0),
        ..RoutePolicy::default()
    };
    let lookup = |name: &str, names: &[&String], what: &str, k: String, err: Sink<'_>| {
        names.iter().position(|n| n.as_str() == name).or_else(|| {
            let hint = did_you_mean(name, names.iter().map(|s| s.as_str()))
                .map(|c| format!(", did you mean {c:?}?"))
                .unwrap_or_default();
            err(k, format!("unknown {what} {name:?}{hint}"));
            None
        })
    };
    if let Some(l) = &r.limit {
        let many = matches!(l, OneOrMany::Many(_));
        for (i, name) in l.values().iter().enumerate() {
            let k = if many {
                format!("{key}.limit[{i}]")
            } else {
                format!("{key}.limit")
            };
            p.limits.extend(lookup(name, limit_names, "limit", k, err));
        }
    }
    for (i, a) in r.auth.iter().flatten().enumerate() {
        let k = format!("{key}.auth[{i}]");
        match a.as_str() {
            "jwt" if have.0 => p.auth.push(AuthMethod::Jwt),
            "jwt" => err(k, "\"jwt\" needs a [jwt] section".into()),
            "api_key" if have.1 => p.auth.push(AuthMethod::ApiKey),
            "api_key" => err(k, "\"api_key\" needs an [api_keys] section".into()),
            "mtls" if have.2 => p.auth.push(AuthMethod::Mtls),
            "mtls" => err(
                k,
                "\"mtls\" needs [tls] client_ca or the route's client_ca".into(),
            ),
            other => {
                let hint = did_you_mean(other, ["jwt", "api_key", "mtls"])
                    .map(|c| format!(", did you mean {c:?}?"))
                    .unwrap_or_default();
                err(
                    k,
                    format!("unknown method {other:?}: expected jwt, api_key or mtls{hint}"),
                );
            }
        }
    }
    p.auth_optional = r.auth_optional.unwrap_or(false);
    if p.auth_optional && r.auth.as_ref().is_none_or(Vec::is_empty) {
        err(
            format!("{key}.auth_optional"),
            "needs `auth` (the methods tried)".into(),
        );
    }
    p.allow = r.allow.iter().flatten().map(|c| c.0).collect();
    p.deny = r.deny.iter().flatten().map(|c| c.0).collect();
    if let Some(m) = &r.methods {
        p.methods = methods(m, &format!("{key}.methods"), err);
        if p.methods.is_empty() {
            err(
                format!("{key}.methods"),
                "empty: list at least one method".into(),
            );
        }
        if p.methods.contains(&Method::GET) && !p.methods.contains(&Method::HEAD) {
            p.methods.push(Method::HEAD);
        }
        let allow: Vec<&str> = p.methods.iter().map(Method::as_str).collect();
        p.allow_header = HeaderValue::from_str(&allow.join(", ")).ok();
    }
    if let Some(c) = &r.cors {
        p.cors = lookup(c, cors_names, "cors policy", format!("{key}.cors"), err);
    }
    p.csrf = r.csrf.unwrap_or(false);
    p.strip_credentials = r.strip_credentials.unwrap_or(false);
    if let Some(t) = &r.tenant {
        let header = t
            .header
            .as_deref()
            .and_then(|h| header_name(h, &format!("{key}.tenant.header"), err))
            .unwrap_or(HeaderName::from_static(
                crate::defaults::route::TENANT_HEADER,
            ));
        let pattern = t
            .pattern
            .clone()
            .unwrap_or_else(|| crate::defaults::route::TENANT_PATTERN.into());
        if let Err(e) = regex_lite::Regex::new(&format!("^(?:{pattern})$")) {
            err(
                format!("{key}.tenant.pattern"),
                format!("invalid regular expression: {e}"),
            );
        }
        if t.claim.is_some() && !have.0 {
            err(
                format!("{key}.tenant.claim"),
                "needs a [jwt] section".into(),
            );
        }
        p.tenant = Some(Tenant {
            header,
            pattern,
            claim: t.claim.clone(),
        });
    }
    if let Some(c) = &r.cookies {
        let samesite = match c.samesite.as_deref() {
            None | Some("Lax" | "lax") => Some(crate::defaults::route::COOKIE_SAMESITE.to_owned()),
            Some("Strict" | "strict") => Some("Strict".to_owned()),
            Some("None" | "none") => Some("None".to_owned()),
            Some("off") => None,
            Some(other) => {
                err(
                    format!("{key}.cookies.samesite"),
                    format!("expected Lax, Strict, None or off, got {other:?}"),
                );
                None
            }
        };
        p.cookies = Cookies {
            secure: c.secure.unwrap_or(true),
            httponly: c.httponly.unwrap_or(true),
            samesite,
            script_readable: c.script_readable.clone().unwrap_or_default(),
        };
    }
    p
}

/// Rampart's own secrets judged by the PF-SEC rules (their values are not kept): JWT HMAC
/// secrets, API keys given as values, the admin token; and one value used for two of them
/// (PF-SEC-05).
pub(crate) fn secret_issues(raw: &crate::raw::RawConfig) -> Vec<(String, Weakness)> {
    use crate::secret::{weaknesses, SecretKind};
    let mut found: Vec<(String, SecretKind, &str)> = Vec::new();
    if let Some(j) = &raw.jwt {
        if j.alg
            .as_deref()
            .and_then(JwtAlg::parse)
            .is_some_and(JwtAlg::is_hmac)
        {
            if let Some(s) = &j.secret {
                found.push(("jwt.secret".into(), SecretKind::Jwt, s));
            }
            if let Some(s) = j.secret_previous.as_deref().filter(|s| !s.is_empty()) {
                found.push(("jwt.secret_previous".into(), SecretKind::Jwt, s));
            }
        }
    }
    if let Some(a) = &raw.api_keys {
        for (i, k) in a.keys.iter().enumerate() {
            if let Some(s) = &k.key {
                found.push((format!("api_keys.keys[{i}].key"), SecretKind::Token, s));
            }
            if let Some(s) = k.previous.as_deref().filter(|s| !s.is_empty()) {
                found.push((format!("api_keys.keys[{i}].previous"), SecretKind::Token, s));
            }
        }
    }
    if let Some(t) = raw.admin.as_ref().and_then(|a| a.token.as_deref()) {
        found.push(("admin.token".into(), SecretKind::Token, t));
    }
    let mut out = Vec::new();
    for (i, (key, kind, value)) in found.iter().enumerate() {
        for w in weaknesses(*kind, value) {
            out.push((key.clone(), w));
        }
        if let Some((other, _, _)) = found[..i].iter().find(|(_, _, v)| v == value) {
            out.push((
                key.clone(),
                Weakness {
                    rule: "PF-SEC-05",
                    why: format!("is the same value as {other}: each secret needs its own"),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("10/s").unwrap(), (10, Duration::from_secs(1)));
        assert_eq!(parse_rate(" 5/m").unwrap(), (5, Duration::from_secs(60)));
        assert_eq!(
            parse_rate("500/hour").unwrap(),
            (500, Duration::from_secs(3600))
        );
        for bad in ["10", "0/s", "x/s", "10/fortnight", "/s", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-01T00:00:00Z"), Some(1_793_491_200));
        assert_eq!(
            parse_rfc3339("2026-11-01T01:00:00+01:00"),
            Some(1_793_491_200)
        );
        assert_eq!(parse_rfc3339("2026-11-01T00:00:00.5Z"), Some(1_793_491_200));
        for bad in [
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-11-01",
            "2026-11-01T25:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
