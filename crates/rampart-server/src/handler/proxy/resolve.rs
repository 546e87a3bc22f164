//! Upstream server names, looked up once per `dns_ttl` rather than on every new connection.
//!
//! tokio resolves a `host:port` with `getaddrinfo` on its blocking pool, one thread per
//! lookup: a cold burst of new upstream connections to `app:8000` became as many
//! blocking-pool threads and resolver calls at once. A server's addresses are now looked
//! up once and kept for the pool's `dns_ttl`. The first lookup is waited for (by one
//! caller; the others wait for its answer). After that no connect waits for the resolver:
//! past `dns_ttl` the answer held is used while one background lookup refreshes it, and a
//! lookup that fails or hangs (a resolver outage) leaves it in use (asked again a second
//! later). A connect that reaches none of the addresses, or times out, starts that refresh
//! at once, so a server that moved (a container recreated with a new IP) is found by the
//! next connects.
//! A name that never resolved answers its error for a second without a lookup. IP
//! literals are never looked up; `dns_ttl = "0s"` looks up on every new connection,
//! concurrently, keeping nothing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a failed lookup's error is answered, and how long a stale answer is used
/// before the next lookup, in ms.
const RETRY_MS: u64 = 1000;

/// A background lookup that has not answered by then counts as failed (glibc's own
/// retries can take longer).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

type Addrs = Arc<[SocketAddr]>;

/// One server's `host:port` and what it resolved to.
#[derive(Debug)]
pub(crate) struct Resolver {
    /// Its address when the host is an IP literal: never looked up.
    literal: Option<Addrs>,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The authority as written (`host:port`).
    name: String,
    cache: Mutex<Cached>,
    /// Held by the caller doing the first lookup (no answer yet): the others wait.
    first: tokio::sync::Mutex<()>,
    /// A background refresh is under way.
    refreshing: AtomicBool,
    /// Lookups that gave addresses.
    lookups: AtomicU64,
    /// Lookups that failed (no such name, resolver down or too slow, no address).
    failures: AtomicU64,
}

#[derive(Debug, Default)]
struct Cached {
    /// The last answer that gave addresses.
    addrs: Option<Addrs>,
    /// Until when (ms of the proxy's clock) `addrs` is used without a lookup, or the
    /// error answered without one.
    until: u64,
    /// The last lookup's error (cleared by an answer).
    error: Option<String>,
}

/// The system resolver, as tokio calls it.
async fn system(name: String) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host(name).await?.collect())
}

impl Resolver {
    pub(crate) fn new(authority: &str) -> Self {
        let literal = authority
            .parse::<SocketAddr>()
            .ok()
            .map(|a| Arc::from([a].as_slice()));
        Self {
            literal,
            inner: Arc::new(Inner {
                name: authority.to_owned(),
                cache: Mutex::new(Cached::default()),
                first: tokio::sync::Mutex::new(()),
                refreshing: AtomicBool::new(false),
                lookups: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// Whether the server is a name (looked up), not an IP literal.
    pub(crate) fn is_name(&self) -> bool {
        self.literal.is_none()
    }

    /// Lookups that gave addresses, and that failed.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.inner.lookups.load(Ordering::Relaxed),
            self.inner.failures.load(Ordering::Relaxed),
        )
    }

    /// The server's addresses at `now` (ms of the proxy's clock): the answer held while it
    /// is younger than `ttl_ms`, else that answer while a background lookup refreshes it;
    /// only a name never resolved is waited for.
    pub(crate) async fn addrs(&self, now: u64, ttl_ms: u64) -> std::io::Result<Addrs> {
        if let Some(a) = &self.literal {
            return Ok(a.clone());
        }
        if ttl_ms == 0 {
            // Every new connection looks up (concurrently, as tokio does): nothing kept.
            let found = system(self.inner.name.clone()).await;
            return self.inner.counted(found);
        }
        self.addrs_with(now, ttl_ms, system).await
    }

    /// [`Resolver::addrs`] with the lookup given: the cache's rules apart from the system
    /// resolver.
    async fn addrs_with<L, F>(&self, now: u64, ttl_ms: u64, lookup: L) -> std::io::Result<Addrs>
    where
        L: Fn(String) -> F + Send + 'static,
        F: Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        let inner = &self.inner;
        if let Some(answer) = inner.held(now) {
            if answer.as_ref().is_ok_and(|(_, fresh)| !fresh) {
                inner.refresh(now, ttl_ms, lookup);
            }
            return answer.map(|(a, _)| a);
        }
        // Never resolved (or its error has been answered for a second): one caller looks
        // up, the others wait for its answer.
        let _first = inner.first.lock().await;
        if let Some(answer) = inner.held(now) {
            return answer.map(|(a, _)| a);
        }
        let found = inner.counted(lookup(inner.name.clone()).await);
        inner.store(now, ttl_ms, &found);
        found
    }

    /// What the name resolved to last (`None` for an IP literal): the addresses in use
    /// (empty before the first answer), the last lookup's error when it failed, and
    /// whether a lookup is under way.
    pub(crate) fn state(&self) -> Option<(Vec<SocketAddr>, Option<String>, bool)> {
        if self.literal.is_some() {
            return None;
        }
        let busy =
            self.inner.refreshing.load(Ordering::Relaxed) || self.inner.first.try_lock().is_err();
        let c = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some((
            c.addrs
                .as_deref()
                .map(<[SocketAddr]>::to_vec)
                .unwrap_or_default(),
            c.error.clone(),
            busy,
        ))
    }

    /// After a connect reached none of `addrs`: the next connect starts a refresh (the
    /// answer is still used until one comes).
    pub(crate) fn forget(&self, addrs: &Addrs) {
        self.expire_if(|held| Arc::ptr_eq(held, addrs));
    }

    /// After a connect that timed out: as [`Resolver::forget`], whatever answer is held.
    pub(crate) fn expire(&self) {
        self.expire_if(|_| true);
    }

    fn expire_if(&self, held: impl Fn(&Addrs) -> bool) {
        if self.literal.is_some() {
            return;
        }
        let mut c = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.addrs.as_ref().is_some_and(held) {
            c.until = 0;
        }
    }
}

impl Inner {
    /// What the cache answers at `now` without a lookup: the addresses (and whether they
    /// are fresh), or the error of a lookup that failed within the last second; `None`
    /// when a lookup is needed first.
    fn held(&self, now: u64) -> Option<std::io::Result<(Addrs, bool)>> {
        let c = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = &c.addrs {
            return Some(Ok((a.clone(), now < c.until)));
        }
        match &c.error {
            Some(e) if now < c.until => Some(Err(std::io::Error::other(e.clone()))),
            _ => None,
        }
    }

    /// Counts a lookup's result; an empty answer is an error.
    fn counted(&self, found: std::io::Result<Vec<SocketAddr>>) -> std::io::Result<Addrs> {
        let found = match found {
            Ok(a) if a.is_empty() => Err(format!("{} resolved to no address", self.name)),
            Ok(a) => Ok(Addrs::from(a)),
            Err(e) => Err(format!("cannot resolve {}: {e}", self.name)),
        };
        match found {
            Ok(a) => {
                self.lookups.fetch_add(1, Ordering::Relaxed);
                Ok(a)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(std::io::Error::other(e))
            }
        }
    }

    /// Keeps a lookup's result: an answer for `ttl_ms`; a failure keeps the answer held
    /// (or, with none, is answered) for a second.
    fn store(&self, now: u64, ttl_ms: u64, found: &std::io::Result<Addrs>) {
        let mut c = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match found {
            Ok(a) => {
                if c.addrs.as_deref() != Some(&**a) {
                    tracing::info!(server = %self.name, addresses = ?a, "upstream server resolved");
                }
                *c = Cached {
                    addrs: Some(a.clone()),
                    until: now.saturating_add(ttl_ms),
                    error: None,
                };
            }
            Err(e) => {
                match &c.addrs {
                    Some(a) => {
                        tracing::warn!(server = %self.name, error = %e, addresses = ?a, "upstream lookup failed; the last answer stays in use")
                    }
                    None => {
                        tracing::warn!(server = %self.name, error = %e, "upstream lookup failed")
                    }
                }
                c.until = now.saturating_add(RETRY_MS);
                c.error = Some(e.to_string());
            }
        }
    }

    /// Starts one background lookup (none when one is under way); until it answers the
    /// held addresses stay in use.
    fn refresh<L, F>(self: &Arc<Self>, now: u64, ttl_ms: u64, lookup: L)
    where
        L: Fn(String) -> F + Send + 'static,
        F: Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let found =
                match tokio::time::timeout(REFRESH_TIMEOUT, lookup(inner.name.clone())).await {
                    Ok(found) => found,
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {REFRESH_TIMEOUT:?}"),
                    )),
                };
            let found = inner.counted(found);
            inner.store(now, ttl_ms, &found);
            inner.refreshing.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A lookup that answers `answers[n]` on its n-th call (the last one after that; an
    /// empty string fails), counting its calls.
    fn scripted(
        answers: &'static [&'static str],
    ) -> (
        Arc<AtomicUsize>,
        impl Fn(String) -> std::future::Ready<std::io::Result<Vec<SocketAddr>>> + Send + Clone + 'static,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let lookup = move |_name: String| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            let a = answers[n.min(answers.len() - 1)];
            std::future::ready(if a.is_empty() {
                Err(std::io::Error::other("no such host"))
            } else {
                Ok(vec![addr(a)])
            })
        };
        (calls, lookup)
    }

    /// Lets a spawned refresh run to its end.
    async fn settle(r: &Resolver) {
        for _ in 0..100 {
            if !r.inner.refreshing.load(Ordering::Acquire) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the refresh never ended");
    }

    #[tokio::test]
    async fn an_answer_is_kept_for_the_ttl_then_refreshed_without_waiting() {
        let r = Resolver::new("app:8000");
        assert!(r.is_name());
        let (calls, lookup) = scripted(&["10.0.0.1:8000", "10.0.0.2:8000"]);
        let a = r.addrs_with(10, 1000, lookup.clone()).await.unwrap();
        assert_eq!(&*a, &[addr("10.0.0.1:8000")]);
        // Within the TTL: no lookup.
        let kept = r.addrs_with(1009, 1000, lookup.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&a, &kept));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Past it: the held answer at once, a refresh behind it, the new one next time.
        let stale = r.addrs_with(1010, 1000, lookup.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&a, &stale));
        settle(&r).await;
        let moved = r.addrs_with(1011, 1000, lookup).await.unwrap();
        assert_eq!(&*moved, &[addr("10.0.0.2:8000")]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(r.counts(), (2, 0));
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_answer_and_asks_again_a_second_later() {
        let r = Resolver::new("app:8000");
        let (calls, lookup) = scripted(&["10.0.0.1:8000", "", "10.0.0.9:8000"]);
        let a = r.addrs_with(0, 100, lookup.clone()).await.unwrap();
        let stale = r.addrs_with(200, 100, lookup.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&a, &stale));
        settle(&r).await;
        assert_eq!(r.counts(), (1, 1));
        let (addrs, error, busy) = r.state().unwrap();
        assert_eq!(addrs, a.to_vec());
        assert!(error.unwrap().contains("cannot resolve app:8000"));
        assert!(!busy);
        // Within the retry second: the held answer, no lookup.
        let again = r.addrs_with(1199, 100, lookup.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Then a refresh, whose answer replaces it and clears the error.
        r.addrs_with(1200, 100, lookup.clone()).await.unwrap();
        settle(&r).await;
        let fresh = r.addrs_with(1201, 100, lookup).await.unwrap();
        assert_eq!(&*fresh, &[addr("10.0.0.9:8000")]);
        assert_eq!(r.state().unwrap().1, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_resolver_never_holds_up_a_connect_once_a_name_resolved() {
        let r = Resolver::new("app:8000");
        let (_, lookup) = scripted(&["10.0.0.1:8000"]);
        let a = r.addrs_with(0, 100, lookup).await.unwrap();
        // The resolver stops answering: every connect still gets the held answer at once.
        let hung = |_name: String| std::future::pending::<std::io::Result<Vec<SocketAddr>>>();
        for now in [200, 300, 5_000] {
            let held = tokio::time::timeout(Duration::from_millis(1), r.addrs_with(now, 100, hung))
                .await
                .expect("waited for the resolver")
                .unwrap();
            assert!(Arc::ptr_eq(&a, &held));
        }
        // One refresh at a time; past REFRESH_TIMEOUT it counts as failed.
        assert!(r.state().unwrap().2);
        tokio::time::sleep(REFRESH_TIMEOUT + Duration::from_secs(1)).await;
        settle(&r).await;
        assert_eq!(r.counts(), (1, 1));
        assert!(r.state().unwrap().1.unwrap().contains("no answer within"));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_fails_for_a_second_without_a_lookup() {
        let r = Resolver::new("nope.invalid:80");
        let (calls, lookup) = scripted(&["", "10.0.0.1:80"]);
        let e = r.addrs_with(0, 100, lookup.clone()).await.unwrap_err();
        assert!(
            e.to_string().contains("cannot resolve nope.invalid:80"),
            "{e}"
        );
        let e2 = r.addrs_with(999, 100, lookup.clone()).await.unwrap_err();
        assert_eq!(e.to_string(), e2.to_string());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(r.addrs_with(1000, 100, lookup).await.is_ok());
        let empty = Resolver::new("empty:80");
        let none = |_name: String| std::future::ready(Ok(Vec::new()));
        let e = empty.addrs_with(0, 100, none).await.unwrap_err();
        assert!(e.to_string().contains("no address"), "{e}");
    }

    #[tokio::test]
    async fn concurrent_first_connects_share_one_lookup() {
        let r = Arc::new(Resolver::new("app:8000"));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (r, calls) = (r.clone(), calls.clone());
                tokio::spawn(async move {
                    let lookup = move |_name: String| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async {
                            tokio::task::yield_now().await;
                            Ok(vec![addr("10.0.0.1:8000")])
                        }
                    };
                    r.addrs_with(0, 60_000, lookup).await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(&*t.await.unwrap(), &[addr("10.0.0.1:8000")]);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn forgetting_after_a_failed_connect_refreshes_on_the_next() {
        let r = Resolver::new("app:8000");
        let (_, lookup) = scripted(&["10.0.0.1:8000", "10.0.0.2:8000"]);
        let a = r.addrs_with(0, 60_000, lookup.clone()).await.unwrap();
        r.forget(&a);
        // The next connect still gets the held answer, and starts the refresh.
        let held = r.addrs_with(1, 60_000, lookup.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&a, &held));
        settle(&r).await;
        let b = r.addrs_with(2, 60_000, lookup.clone()).await.unwrap();
        assert_eq!(&*b, &[addr("10.0.0.2:8000")]);
        // Forgetting an answer already replaced does nothing.
        r.forget(&a);
        let kept = r.addrs_with(3, 60_000, lookup.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&b, &kept));
        // A connect that timed out expires whatever is held.
        r.expire();
        r.addrs_with(4, 60_000, lookup).await.unwrap();
        settle(&r).await;
        assert_eq!(r.counts(), (3, 0));
    }

    #[tokio::test]
    async fn ip_literals_are_never_looked_up() {
        for lit in ["127.0.0.1:80", "[::1]:8443"] {
            let r = Resolver::new(lit);
            assert!(!r.is_name());
            assert!(r.state().is_none());
            let a = r.addrs(0, 0).await.unwrap();
            assert_eq!(&*a, &[addr(lit)]);
        }
    }
}
