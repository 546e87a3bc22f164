//! Upstream server names, looked up once per `dns_ttl` rather than on every new connection.
//!
//! tokio resolves a `host:port` with `getaddrinfo` on its blocking pool, one thread per
//! lookup: a cold burst of new upstream connections to `app:8000` became as many
//! blocking-pool threads and resolver calls at once. A server's addresses are now looked
//! up by one caller at a time (the others wait for that answer), kept for the pool's
//! `dns_ttl`, and kept past it when a lookup fails (an old answer beats none; asked again
//! a second later). A connect that reaches none of the addresses forgets them, so a server
//! that moved (a container recreated with a new IP) is looked up again on the next
//! connect. A name that does not resolve answers the same error for a second without a
//! lookup. IP literals are never looked up; `dns_ttl = "0s"` looks up on every new
//! connection, concurrently, keeping nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How long a failed lookup's error is answered, and how long a stale answer is used
/// before the next lookup, in ms.
const RETRY_MS: u64 = 1000;

/// One server's `host:port` and what it resolved to.
#[derive(Debug)]
pub(crate) struct Resolver {
    /// The authority as written (`host:port`).
    name: String,
    /// Its address when the host is an IP literal: never looked up.
    literal: Option<Arc<[SocketAddr]>>,
    cache: tokio::sync::Mutex<Cached>,
    /// Lookups that gave addresses.
    pub(crate) lookups: AtomicU64,
    /// Lookups that failed (no such name, resolver down, no address).
    pub(crate) failures: AtomicU64,
}

#[derive(Debug, Default)]
struct Cached {
    /// The last answer that gave addresses.
    addrs: Option<Arc<[SocketAddr]>>,
    /// Until when (ms of the proxy's clock) `addrs` is used without a lookup.
    until: u64,
    /// The last lookup's error, answered until `until` when there is no answer to use.
    error: Option<String>,
}

impl Resolver {
    pub(crate) fn new(authority: &str) -> Self {
        let literal = authority
            .parse::<SocketAddr>()
            .ok()
            .map(|a| Arc::from([a].as_slice()));
        Self {
            name: authority.to_owned(),
            literal,
            cache: tokio::sync::Mutex::new(Cached::default()),
            lookups: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether the server is a name (looked up), not an IP literal.
    pub(crate) fn is_name(&self) -> bool {
        self.literal.is_none()
    }

    /// The server's addresses at `now` (ms), looked up when the answer held is older than
    /// `ttl_ms` (or was forgotten).
    pub(crate) async fn addrs(&self, now: u64, ttl_ms: u64) -> std::io::Result<Arc<[SocketAddr]>> {
        if let Some(a) = &self.literal {
            return Ok(a.clone());
        }
        if ttl_ms == 0 {
            // Every new connection looks up (concurrently, as tokio does): nothing kept.
            return match tokio::net::lookup_host(self.name.as_str()).await {
                Ok(found) => {
                    let found: Arc<[SocketAddr]> = found.collect::<Vec<_>>().into();
                    let counter = if found.is_empty() {
                        &self.failures
                    } else {
                        &self.lookups
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    Ok(found)
                }
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    Err(std::io::Error::other(format!(
                        "cannot resolve {}: {e}",
                        self.name
                    )))
                }
            };
        }
        self.resolve(now, ttl_ms, || tokio::net::lookup_host(self.name.as_str()))
            .await
    }

    /// [`Resolver::addrs`] with the lookup given: the cache's rules apart from the system
    /// resolver.
    async fn resolve<F, I>(
        &self,
        now: u64,
        ttl_ms: u64,
        lookup: impl FnOnce() -> F,
    ) -> std::io::Result<Arc<[SocketAddr]>>
    where
        F: std::future::Future<Output = std::io::Result<I>>,
        I: Iterator<Item = SocketAddr>,
    {
        // Held across the lookup: concurrent connects to this server wait for one answer.
        let mut c = self.cache.lock().await;
        if now < c.until {
            if let Some(a) = &c.addrs {
                return Ok(a.clone());
            }
            if let Some(e) = &c.error {
                return Err(std::io::Error::other(e.clone()));
            }
        }
        let found = match lookup().await {
            Ok(found) => {
                let found: Vec<SocketAddr> = found.collect();
                if found.is_empty() {
                    Err(format!("{} resolved to no address", self.name))
                } else {
                    Ok(found)
                }
            }
            Err(e) => Err(format!("cannot resolve {}: {e}", self.name)),
        };
        match found {
            Ok(found) => {
                self.lookups.fetch_add(1, Ordering::Relaxed);
                if c.addrs.as_deref() != Some(found.as_slice()) {
                    tracing::info!(server = %self.name, addresses = ?found, "upstream server resolved");
                }
                let found: Arc<[SocketAddr]> = found.into();
                *c = Cached {
                    addrs: Some(found.clone()),
                    until: now.saturating_add(ttl_ms),
                    error: None,
                };
                Ok(found)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                c.until = now.saturating_add(RETRY_MS);
                c.error = Some(e.clone());
                if let Some(a) = &c.addrs {
                    tracing::warn!(server = %self.name, error = %e, addresses = ?a, "upstream lookup failed; the last answer is used");
                    return Ok(a.clone());
                }
                tracing::warn!(server = %self.name, error = %e, "upstream lookup failed");
                Err(std::io::Error::other(e))
            }
        }
    }

    /// What the name resolved to last (`None` for an IP literal): the addresses in use
    /// (empty before the first lookup) and the last lookup's error when it failed;
    /// `busy` while a lookup holds the answer.
    pub(crate) fn state(&self) -> Option<(Vec<SocketAddr>, Option<String>, bool)> {
        if self.literal.is_some() {
            return None;
        }
        Some(match self.cache.try_lock() {
            Ok(c) => (
                c.addrs
                    .as_deref()
                    .map(<[SocketAddr]>::to_vec)
                    .unwrap_or_default(),
                c.error.clone(),
                false,
            ),
            Err(_) => (Vec::new(), None, true),
        })
    }

    /// After a connect reached none of `addrs`: the next connect looks the name up again
    /// (the answer is still used if that lookup fails).
    pub(crate) fn forget(&self, addrs: &Arc<[SocketAddr]>) {
        if self.literal.is_some() {
            return;
        }
        if let Ok(mut c) = self.cache.try_lock() {
            if c.addrs.as_ref().is_some_and(|a| Arc::ptr_eq(a, addrs)) {
                c.until = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(a: &[&str]) -> std::io::Result<std::vec::IntoIter<SocketAddr>> {
        Ok(a.iter()
            .map(|s| s.parse().unwrap())
            .collect::<Vec<_>>()
            .into_iter())
    }

    fn failed() -> std::io::Result<std::vec::IntoIter<SocketAddr>> {
        Err(std::io::Error::other("no such host"))
    }

    #[tokio::test]
    async fn an_answer_is_kept_for_the_ttl_then_looked_up_again() {
        let r = Resolver::new("app:8000");
        assert!(r.is_name());
        let a = r
            .resolve(10, 1000, || async { answer(&["10.0.0.1:8000"]) })
            .await
            .unwrap();
        assert_eq!(&*a, &["10.0.0.1:8000".parse().unwrap()]);
        // Within the TTL: no lookup (one that would fail is not called).
        let kept = r.resolve(1009, 1000, || async { failed() }).await.unwrap();
        assert!(Arc::ptr_eq(&a, &kept));
        // Past it: looked up again, the new address used.
        let moved = r
            .resolve(1010, 1000, || async { answer(&["10.0.0.2:8000"]) })
            .await
            .unwrap();
        assert_eq!(&*moved, &["10.0.0.2:8000".parse().unwrap()]);
        assert_eq!(r.lookups.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_last_answer_and_asks_again_a_second_later() {
        let r = Resolver::new("app:8000");
        let a = r
            .resolve(0, 100, || async { answer(&["10.0.0.1:8000"]) })
            .await
            .unwrap();
        let stale = r.resolve(200, 100, || async { failed() }).await.unwrap();
        assert!(Arc::ptr_eq(&a, &stale));
        assert_eq!(r.failures.load(Ordering::Relaxed), 1);
        let (addrs, error, busy) = r.state().unwrap();
        assert_eq!(addrs, a.to_vec());
        assert!(error.unwrap().contains("cannot resolve app:8000"));
        assert!(!busy);
        // Within the retry second the stale answer is used without a lookup.
        let again = r
            .resolve(1100, 100, || async { answer(&["10.0.0.9:8000"]) })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let fresh = r
            .resolve(1200, 100, || async { answer(&["10.0.0.9:8000"]) })
            .await
            .unwrap();
        assert_eq!(&*fresh, &["10.0.0.9:8000".parse().unwrap()]);
        assert_eq!(r.state().unwrap().1, None);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_fails_for_a_second_without_a_lookup() {
        let r = Resolver::new("nope.invalid:80");
        let e = r.resolve(0, 100, || async { failed() }).await.unwrap_err();
        assert!(
            e.to_string().contains("cannot resolve nope.invalid:80"),
            "{e}"
        );
        let e2 = r
            .resolve(999, 100, || async { answer(&["10.0.0.1:80"]) })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), e2.to_string());
        assert!(r
            .resolve(1000, 100, || async { answer(&["10.0.0.1:80"]) })
            .await
            .is_ok());
        let empty = Resolver::new("empty:80");
        let e = empty
            .resolve(0, 100, || async { answer(&[]) })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no address"), "{e}");
    }

    #[tokio::test]
    async fn forgetting_after_a_failed_connect_looks_up_on_the_next() {
        let r = Resolver::new("app:8000");
        let a = r
            .resolve(0, 60_000, || async { answer(&["10.0.0.1:8000"]) })
            .await
            .unwrap();
        r.forget(&a);
        let b = r
            .resolve(1, 60_000, || async { answer(&["10.0.0.2:8000"]) })
            .await
            .unwrap();
        assert_eq!(&*b, &["10.0.0.2:8000".parse().unwrap()]);
        // Forgetting an answer already replaced does nothing.
        r.forget(&a);
        let kept = r.resolve(2, 60_000, || async { failed() }).await.unwrap();
        assert!(Arc::ptr_eq(&b, &kept));
    }

    #[tokio::test]
    async fn ip_literals_are_never_looked_up() {
        for lit in ["127.0.0.1:80", "[::1]:8443"] {
            let r = Resolver::new(lit);
            assert!(!r.is_name());
            assert!(r.state().is_none());
            let a = r.addrs(0, 0).await.unwrap();
            assert_eq!(&*a, &[lit.parse().unwrap()]);
        }
    }
}
