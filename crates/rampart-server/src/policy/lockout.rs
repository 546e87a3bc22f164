//! Login lockout (`lockout = { failures, for, window, field, statuses, status }` on a
//! limit): the account a login names (from its JSON or form body, else the client's IP)
//! is refused for `for` after `failures` failed answers (`statuses`) within `window`, with
//! `status` (423 or 429) and `Retry-After`. Checked before the credentials are looked at,
//! so a locked account costs no signature check; a success clears the count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::BodyExt as _;
use rampart_config::policy::Lockout;

use super::auth;
use super::refused::{nanos_to_secs_ceil, refuse, Refused};
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// Largest login body read to find the account name.
const LOGIN_BODY_MAX: usize = 64 * 1024;

/// Failed-login state of one limit: account → (failures in window, window start, locked
/// until; 0 when not locked). `window` is the counting window in nanoseconds.
#[derive(Debug, Default)]
pub struct Lockouts {
    map: Mutex<HashMap<String, (u32, u64, u64)>>,
    window: u64,
}

impl Lockouts {
    /// Empty state for `lockout`.
    pub fn new(lockout: &Lockout) -> Self {
        Self {
            map: Mutex::default(),
            window: u64::try_from(lockout.window.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, u64, u64)>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `account` stays locked (nanoseconds), when it is.
    pub fn locked_for(&self, account: &str, now: u64) -> Option<u64> {
        self.lock()
            .get(account)
            .and_then(|(_, _, until)| (*until > now).then(|| *until - now))
    }

    /// The accounts locked now, with the time each has left (ns).
    pub fn active(&self, now: u64) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .filter(|(_, (_, _, until))| *until > now)
            .map(|(k, (_, _, until))| (k.clone(), until - now))
            .collect()
    }

    /// Locks `account` until `until` (a lock restored at start).
    pub fn lock_until(&self, account: &str, until: u64) {
        let mut map = self.lock();
        let e = map.entry(account.to_owned()).or_insert((0, until, 0));
        e.2 = e.2.max(until);
    }

    /// Drops ended locks and failure counts whose window has passed, so a flood of
    /// distinct account names cannot grow the table without bound.
    pub fn sweep(&self, now: u64) {
        let window = self.window;
        self.lock()
            .retain(|_, (_, start, until)| *until > now || now.saturating_sub(*start) <= window);
    }

    /// Records the answer a login got: a failure counts (and returns `true` when it
    /// locks the account now), a success clears the count.
    pub fn record(&self, lockout: &Lockout, account: &str, status: u16, now: u64) -> bool {
        let mut map = self.lock();
        if lockout.statuses.contains(&status) {
            let e = map.entry(account.to_owned()).or_insert((0, now, 0));
            if now.saturating_sub(e.1) > self.window {
                *e = (0, now, 0);
            }
            e.0 += 1;
            if e.0 >= lockout.failures {
                e.2 = now + u64::try_from(lockout.lock_for.as_nanos()).unwrap_or(u64::MAX / 2);
                e.0 = 0;
                return true;
            }
        } else if (200..300).contains(&status) {
            map.remove(account);
        }
        false
    }
}

/// The key a login is counted under: `account:NAME` (from the body's `field`, trimmed and
/// lowercased) or `ip:ADDRESS` when the body names none.
///
/// # Errors
/// 413 for a login body over 64 KiB (or the route's limit).
pub async fn account(
    req: &mut Request<Body>,
    field: &str,
    body_limit: u64,
    ip: IpAddr,
) -> Result<String, Refused> {
    Ok(match login_account(req, field, body_limit).await? {
        Some(a) => format!("account:{a}"),
        None => format!("ip:{ip}"),
    })
}

/// Refuses a locked account.
///
/// # Errors
/// `lockout.status` with `Retry-After` (audit `auth.locked`).
pub fn check(lockout: &Lockout, state: &Lockouts, account: &str, now: u64) -> Result<(), Refused> {
    match state.locked_for(account, now) {
        Some(left) => Err(refuse(
            Refusal::Locked {
                status: lockout.status,
                retry_after: nanos_to_secs_ceil(left).max(1),
            },
            "auth.locked",
            format!("{account} is locked after failed logins"),
        )),
        None => Ok(()),
    }
}

/// Refuses a locked account, asking the fleet's shared state (a lock made through any
/// instance counts); while the state cannot answer, this instance's own record decides.
///
/// # Errors
/// As [`check`].
pub async fn check_shared(
    fleet: &crate::state::Fleet,
    limit: &str,
    lockout: &Lockout,
    state: &Lockouts,
    account: &str,
    now: u64,
) -> Result<(), Refused> {
    match fleet.locked_for(&lock_key(fleet, limit, account)).await {
        Ok(Some(ms)) => Err(refuse(
            Refusal::Locked {
                status: lockout.status,
                retry_after: ms.div_ceil(1000).max(1),
            },
            "auth.locked",
            format!("{account} is locked after failed logins"),
        )),
        Ok(None) => Ok(()),
        Err(_) => check(lockout, state, account, now),
    }
}

/// The shared key of an account's lock (`lk:LIMIT:{ACCOUNT}`; the braces keep an
/// account's two keys on one cluster node).
pub fn lock_key(fleet: &crate::state::Fleet, limit: &str, account: &str) -> String {
    fleet.key(&format!("lk:{limit}:{{{account}}}"))
}

/// The shared key of an account's failure count (`lf:LIMIT:{ACCOUNT}`).
pub fn failures_key(fleet: &crate::state::Fleet, limit: &str, account: &str) -> String {
    fleet.key(&format!("lf:{limit}:{{{account}}}"))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn rule() -> Lockout {
        Lockout {
            failures: 3,
            lock_for: Duration::from_secs(60),
            window: Duration::from_secs(300),
            field: "username".into(),
            statuses: vec![401, 403],
            status: 423,
        }
    }

    fn login(ct: &str, body: &'static str) -> Request<Body> {
        Request::post("/login")
            .header(header::CONTENT_TYPE, ct)
            .body(Body::full(body))
            .unwrap()
    }

    #[tokio::test]
    async fn the_account_comes_from_json_or_form_and_the_body_is_kept() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut req = login("application/json", r#"{"username":" Alice@Example.com "}"#);
        let a = account(&mut req, "username", 1 << 20, ip).await.unwrap();
        assert_eq!(a, "account:alice@example.com");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"username":" Alice@Example.com "}"#);
        let mut req = login(
            "application/x-www-form-urlencoded",
            "x=1&username=bob%40b.c+d",
        );
        assert_eq!(
            account(&mut req, "username", 1 << 20, ip).await.unwrap(),
            "account:bob@b.c d"
        );
        // No such field, another type, or no body: the client's address.
        for mut req in [
            login("application/json", r#"{"user":"x"}"#),
            login("text/plain", "username=x"),
            Request::post("/login").body(Body::Empty).unwrap(),
        ] {
            assert_eq!(
                account(&mut req, "username", 1 << 20, ip).await.unwrap(),
                "ip:192.0.2.1"
            );
        }
    }

    #[tokio::test]
    async fn a_login_body_over_the_cap_is_refused() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut req = login("application/json", r#"{"username":"alice"}"#);
        let r = account(&mut req, "username", 5, ip).await.unwrap_err();
        assert_eq!(r.refusal, Refusal::PayloadTooLarge);
        // Malformed JSON names no account, it does not fail.
        let mut req = login("application/json", "{\"username\":");
        assert_eq!(
            account(&mut req, "username", 1 << 20, ip).await.unwrap(),
            "ip:192.0.2.1"
        );
    }

    #[test]
    fn failures_lock_then_the_lock_ends_and_success_clears() {
        let (r, s) = (rule(), Lockouts::new(&rule()));
        assert!(!s.record(&r, "account:a", 401, 0));
        assert!(!s.record(&r, "account:a", 200, SEC)); // success clears
        assert!(!s.record(&r, "account:a", 401, 2 * SEC));
        assert!(!s.record(&r, "account:a", 403, 3 * SEC));
        assert!(check(&r, &s, "account:a", 3 * SEC).is_ok());
        assert!(s.record(&r, "account:a", 401, 4 * SEC));
        let refused = check(&r, &s, "account:a", 5 * SEC).unwrap_err();
        assert_eq!(
            refused.refusal,
            Refusal::Locked {
                status: 423,
                retry_after: 59
            }
        );
        assert_eq!(refused.event, "auth.locked");
        // Another account is not touched; the lock ends after `for`.
        assert!(check(&r, &s, "account:b", 5 * SEC).is_ok());
        assert!(check(&r, &s, "account:a", 64 * SEC).is_ok());
        // Other statuses (a 500) neither count nor clear.
        assert!(!s.record(&r, "account:c", 500, 0));
        assert!(s.locked_for("account:c", 0).is_none());
    }

    #[test]
    fn failures_outside_the_window_start_over_and_the_sweep_forgets() {
        let (r, s) = (rule(), Lockouts::new(&rule()));
        s.record(&r, "account:a", 401, 0);
        s.record(&r, "account:a", 401, SEC);
        // The third failure comes after the window: the count restarts at 1.
        assert!(!s.record(&r, "account:a", 401, 400 * SEC));
        s.sweep(800 * SEC);
        assert!(s.lock().is_empty());
    }

    #[test]
    fn form_fields_decode() {
        assert_eq!(url_decode("a%40b.c+d"), "a@b.c d");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
    }
}
