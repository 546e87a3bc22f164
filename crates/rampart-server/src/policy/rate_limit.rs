//! Rate limits per route (`limit = "NAME"` or a list, `[limits.NAME]`): GCRA per key (the
//! client IP, a header, the user, the API key, or user-or-IP), state in [`super::limiter`].
//! Limits that need no identity run before authentication, the others after it; an
//! exceeded limit answers 429 with `Retry-After`, an allowed request carries
//! `RateLimit-Limit`/`-Remaining`/`-Reset` of its tightest limit. A limit without
//! `nodelay` delays a request within its burst instead of refusing it.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::Request;
use rampart_config::policy::{Limit, LimitKey};
use rampart_config::state::OnStateError;

use super::auth::Identity;
use super::limiter::{key_hash, Decision, Gcra, Leases, Store};
use super::refused::{nanos_to_secs_ceil, refuse, Refused};
use crate::state::fleet::Want;
use crate::state::Fleet;
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// Who a request is, for keying limits.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The request (for header keys).
    pub req: &'a Request<Body>,
    /// Its identity, once authenticated.
    pub id: Option<&'a Identity>,
    /// The client address (after `trusted_proxies`).
    pub ip: IpAddr,
}

/// What the limits a request passed leave for its response.
#[derive(Debug, Default, Clone, Copy)]
pub struct Passed {
    /// The tightest limit: (quota, remaining, seconds to reset).
    pub rate: Option<(u32, u32, u64)>,
    /// The longest delay a limit without `nodelay` asks for (nanoseconds).
    pub delay: u64,
}

/// Checks the route's limits (`route`, indexes into `limits` and `stores`) of one phase:
/// those keyed by identity when `identified`, the others when not.
///
/// # Errors
/// 429 `rate_limited` with `Retry-After` (audit `ratelimit.refused`).
pub fn check(
    route: &[usize],
    limits: &[Limit],
    stores: &[Arc<Store>],
    who: Who<'_>,
    identified: bool,
    now: u64,
    passed: &mut Passed,
) -> Result<(), Refused> {
    // Limits counting by the same key (several per-IP windows, say) share its string and
    // its hash: built and hashed once per request.
    let mut keyed: Option<(&LimitKey, String, u64)> = None;
    for &li in route {
        let limit = &limits[li];
        if limit.key.needs_identity() != identified || !limit.applies_to(who.req.method()) {
            continue;
        }
        let (_, key, hash) = match keyed {
            Some(ref k) if *k.0 == limit.key => k,
            _ => {
                let k = key(&limit.key, who);
                let h = key_hash(&k);
                keyed.insert((&limit.key, k, h))
            }
        };
        let store = &stores[li];
        let decision = store.check_hashed(key, *hash, now);
        settle(decision, limit, store.quota(), key, passed)?;
    }
    Ok(())
}

/// The limits of one phase that apply to a request, each with its key.
pub type Due = smallvec::SmallVec<[(usize, String); 4]>;

/// The route's limits of one phase that apply to the request (by method), with their keys:
/// what [`check_shared`] sends, taken before it awaits (the request is not held across).
pub fn due(route: &[usize], limits: &[Limit], who: Who<'_>, identified: bool) -> Due {
    let mut due = Due::new();
    for &li in route {
        let limit = &limits[li];
        if limit.key.needs_identity() == identified && limit.applies_to(who.req.method()) {
            due.push((li, key(&limit.key, who)));
        }
    }
    due
}

/// The route's limits of one phase, decided by the fleet's shared state in one round trip
/// (see [`crate::state::fleet`]). While the state cannot answer (the breaker is open, an
/// error, a timeout) each limit does what its `on_state_error` says: `local` checks
/// `fallbacks` (the limit divided by `[state] fleet_size`), `allow` lets the request
/// through, `deny` refuses 503. Returns whether the fallback was used.
///
/// # Errors
/// As [`check`], and 503 `state_unavailable` from a `deny` limit during an outage.
#[allow(clippy::too_many_arguments)]
pub async fn check_shared(
    fleet: &Fleet,
    due: &Due,
    limits: &[Limit],
    stores: &[Arc<Store>],
    fallbacks: &[Arc<Store>],
    leases: &[Option<Arc<Leases>>],
    now: u64,
    passed: &mut Passed,
) -> Result<bool, Refused> {
    if due.is_empty() {
        return Ok(false);
    }
    // Keys holding a leased token spend it here; the others ask the shared state.
    let mut ask: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
    for (i, (li, k)) in due.iter().enumerate() {
        let lease = leases.get(*li).and_then(Option::as_ref);
        match lease.and_then(|l| l.take(k, now)) {
            Some((remaining, reset)) => {
                fleet
                    .stats
                    .leased
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = Decision::Allow {
                    delay: 0,
                    remaining,
                    reset,
                };
                settle(d, &limits[*li], stores[*li].quota(), k, passed)?;
            }
            None => ask.push(i),
        }
    }
    if ask.is_empty() {
        return Ok(false);
    }
    let keys: Vec<Want> = ask
        .iter()
        .map(|&i| {
            let (li, k) = &due[i];
            let g = stores[*li].gcra().micros();
            Want {
                key: fleet.key(&format!("rl:{}:{k}", limits[*li].name)),
                interval: g.interval,
                tolerance: g.tolerance,
                tokens: match leases.get(*li).and_then(Option::as_ref) {
                    Some(l) if l.claim(k, now) => limits[*li].lease,
                    _ => 1,
                },
            }
        })
        .collect();
    match fleet.gcra(keys).await {
        Ok(granted) => {
            for (&i, (ahead, tokens)) in ask.iter().zip(granted) {
                let (li, k) = &due[i];
                let store = &stores[*li];
                let g = store.gcra().micros();
                let g = Gcra {
                    interval: g.interval * 1000,
                    tolerance: g.tolerance * 1000,
                };
                let d = g.decide(ahead.saturating_mul(1000), store.nodelay());
                if let (
                    Decision::Allow {
                        remaining, reset, ..
                    },
                    true,
                    Some(l),
                ) = (d, tokens > 1, leases.get(*li).and_then(Option::as_ref))
                {
                    // The extra tokens are held at most `lease - 1` at a time and lapse a
                    // second after the grant, so none is spent long after it was counted.
                    l.put(
                        k,
                        tokens - 1,
                        limits[*li].lease - 1,
                        now + 1_000_000_000,
                        remaining.saturating_sub(tokens - 1),
                        reset,
                    );
                }
                settle(d, &limits[*li], store.quota(), k, passed)?;
            }
            Ok(false)
        }
        Err(_) => {
            fleet
                .stats
                .fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (li, k) in due {
                let limit = &limits[*li];
                match limit.on_state_error {
                    OnStateError::Allow => {}
                    OnStateError::Deny => {
                        return Err(refuse(
                            Refusal::StateUnavailable,
                            "ratelimit.unavailable",
                            format!(
                                "limit {:?}: shared state unreachable, on_state_error = \"deny\"",
                                limit.name
                            ),
                        ))
                    }
                    OnStateError::Local => {
                        let store = &fallbacks[*li];
                        settle(store.check(k, now), limit, store.quota(), k, passed)?;
                    }
                }
            }
            Ok(true)
        }
    }
}

/// One limit's decision: an allowed request notes its headers and delay, a refused one
/// answers 429.
fn settle(
    d: Decision,
    limit: &Limit,
    quota: u32,
    key: &str,
    passed: &mut Passed,
) -> Result<(), Refused> {
    match d {
        Decision::Allow {
            delay,
            remaining,
            reset,
        } => {
            passed.delay = passed.delay.max(delay);
            if passed.rate.is_none_or(|(_, rem, _)| remaining < rem) {
                passed.rate = Some((quota, remaining, nanos_to_secs_ceil(reset)));
            }
            Ok(())
        }
        Decision::Refuse { retry_after, reset } => Err(refuse(
            Refusal::RateLimited {
                retry_after: nanos_to_secs_ceil(retry_after).max(1),
                limit: quota,
                reset: nanos_to_secs_ceil(reset),
            },
            "ratelimit.refused",
            format!("limit {:?} exceeded by {key}", limit.name),
        )),
    }
}

/// The `RateLimit-Limit`, `-Remaining` and `-Reset` of the tightest limit passed (quota,
/// remaining, seconds to reset). The HTTP/1.1 fast path writes them as bytes with the
/// response head ([`RateHeaders::write`]); other writers get them in the header map
/// ([`RateHeaders::apply`]). Three map inserts and their values cost ~1.3k instructions
/// per request (callgrind), the bytes ~0.1k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders(pub (u32, u32, u64));

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl RateHeaders {
    /// Sets them in `h`, replacing any the upstream sent.
    pub fn apply(self, h: &mut http::HeaderMap) {
        let (limit, remaining, reset) = self.0;
        h.insert(LIMIT, HeaderValue::from(limit));
        h.insert(REMAINING, HeaderValue::from(remaining));
        h.insert(RESET, HeaderValue::from(reset));
    }

    /// Whether an upstream's header `name` is replaced by these (left out by a writer).
    pub fn overrides(name: &HeaderName) -> bool {
        name == LIMIT || name == REMAINING || name == RESET
    }

    /// Their header lines, appended to `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        let (limit, remaining, reset) = self.0;
        out.extend_from_slice(b"ratelimit-limit: ");
        crate::wire::decimal::push(out, u64::from(limit));
        out.extend_from_slice(b"\r\nratelimit-remaining: ");
        crate::wire::decimal::push(out, u64::from(remaining));
        out.extend_from_slice(b"\r\nratelimit-reset: ");
        crate::wire::decimal::push(out, reset);
        out.extend_from_slice(b"\r\n");
    }
}

/// The key a request is counted under.
fn key(key: &LimitKey, who: Who<'_>) -> String {
    let Who { req, id, ip } = who;
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
        LimitKey::ClientCert => {
            match req
                .extensions()
                .get::<std::sync::Arc<crate::wire::client_cert::ClientCert>>()
            {
                Some(c) => format!("cert:{}", c.fingerprint.to_str().unwrap_or_default()),
                None => ip_key(ip),
            }
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Method;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn limit(key: LimitKey, count: u32, nodelay: bool) -> Limit {
        Limit {
            name: "l".into(),
            count,
            per: Duration::from_secs(60),
            burst: 0,
            key,
            methods: Vec::new(),
            nodelay,
            max_keys: 100,
            lockout: None,
            on_state_error: rampart_config::state::OnStateError::Local,
            lease: 1,
        }
    }

    fn run(
        limits: &[Limit],
        stores: &[Arc<Store>],
        who: Who<'_>,
        identified: bool,
        now: u64,
    ) -> Result<Passed, Refused> {
        let route: Vec<usize> = (0..limits.len()).collect();
        let mut passed = Passed::default();
        check(&route, limits, stores, who, identified, now, &mut passed).map(|()| passed)
    }

    #[test]
    fn allowed_within_the_quota_with_headers_and_refused_past_it() {
        let limits = [limit(LimitKey::Ip, 2, true)];
        let stores = [Arc::new(Store::new(&limits[0]))];
        let req = Request::get("/").body(Body::Empty).unwrap();
        let who = Who {
            req: &req,
            id: None,
            ip: "192.0.2.1".parse().unwrap(),
        };
        let p = run(&limits, &stores, who, false, 0).unwrap();
        assert_eq!(p.rate.map(|r| (r.0, r.1)), Some((1, 0)));
        let mut h = http::HeaderMap::new();
        let rate = RateHeaders(p.rate.unwrap());
        rate.apply(&mut h);
        assert_eq!(h["ratelimit-limit"], "1");
        let mut lines = Vec::new();
        rate.write(&mut lines);
        let want = format!(
            "ratelimit-limit: 1\r\nratelimit-remaining: 0\r\nratelimit-reset: {}\r\n",
            h["ratelimit-reset"].to_str().unwrap()
        );
        assert_eq!(String::from_utf8(lines).unwrap(), want);
        let r = run(&limits, &stores, who, false, SEC).unwrap_err();
        assert!(matches!(r.refusal, Refusal::RateLimited { limit: 1, .. }));
        assert_eq!(r.event, "ratelimit.refused");
        assert!(r.reason.contains("ip:192.0.2.1"), "{}", r.reason);
        // Another client has its own bucket; identity-keyed limits wait for their phase.
        let other = Who {
            ip: "192.0.2.2".parse().unwrap(),
            ..who
        };
        assert!(run(&limits, &stores, other, false, SEC).is_ok());
        assert!(run(&limits, &stores, who, true, SEC)
            .unwrap()
            .rate
            .is_none());
    }

    #[test]
    fn keys_follow_the_identity_the_header_or_the_address() {
        let req = Request::get("/")
            .header("x-client", "c1")
            .body(Body::Empty)
            .unwrap();
        let ip: IpAddr = "2001:db8::7".parse().unwrap();
        let id = Identity {
            method: "api_key",
            subject: "ci".into(),
            claims: serde_json::Map::new(),
        };
        let anon = Who {
            req: &req,
            id: None,
            ip,
        };
        let known = Who {
            id: Some(&id),
            ..anon
        };
        assert_eq!(key(&LimitKey::UserOrIp, anon), "ip:2001:db8::7");
        assert_eq!(key(&LimitKey::UserOrIp, known), "user:ci");
        assert_eq!(key(&LimitKey::ApiKey, known), "key:ci");
        assert_eq!(key(&LimitKey::User, anon), "user:-");
        let h = LimitKey::Header(HeaderName::from_static("x-client"));
        assert_eq!(key(&h, anon), "h:c1");
        // A header that is absent or not text falls back to the address.
        let mut odd = Request::get("/").body(Body::Empty).unwrap();
        odd.headers_mut()
            .insert("x-client", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(
            key(
                &h,
                Who {
                    req: &odd,
                    id: None,
                    ip
                }
            ),
            "ip:2001:db8::7"
        );
    }

    #[test]
    fn a_limit_for_other_methods_does_not_count() {
        let mut l = limit(LimitKey::Ip, 1, true);
        l.methods = vec![Method::POST];
        let limits = [l];
        let stores = [Arc::new(Store::new(&limits[0]))];
        let req = Request::get("/").body(Body::Empty).unwrap();
        let who = Who {
            req: &req,
            id: None,
            ip: "192.0.2.1".parse().unwrap(),
        };
        for t in 0..5 {
            assert!(run(&limits, &stores, who, false, t).unwrap().rate.is_none());
        }
    }

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
}
