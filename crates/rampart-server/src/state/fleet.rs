//! The shared backend: a Redis-protocol server (Redis, Valkey; one server, Sentinel or
//! Cluster) through redis-rs.
//!
//! # Key layout (every key and channel starts with `[state] prefix`, default `rampart:`)
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `rl:LIMIT:KEY` | string | the GCRA theoretical arrival time (µs, the server's clock) | when that time passes |
//! | `lf:LIMIT:{ACCOUNT}` | string | failed logins in the current window | with the window |
//! | `lk:LIMIT:{ACCOUNT}` | string | present while the account is locked | when the lock ends |
//! | `control` | hash | operator changes: `weight:POOL:SERVER` → weight, `route:ROUTE` → pool, `revoke:JTI` → expiry, `revoke_before` → cut-off | revoked ids are removed once expired (at each connect) |
//! | `control` (channel) | pub/sub | each change as it is made, for the other instances | – |
//! | `acme:STORE` | hash | `[tls.acme]`: the certificate chain and its key (`cert`, `key`), for every instance | never (replaced at each renewal) |
//! | `acme:STORE:lock` | string | the instance ordering now | 10 minutes, or deleted when done |
//! | `license:LICENSE:seats` | sorted set | `[license]` with `max_instances`: each serving instance's id, scored by its last heartbeat (ms, the server's clock) | members after 3 missed heartbeats; the key with the last one |
//!
//! # Decisions
//! A rate-limit decision is one `EVALSHA` of [`GCRA`] for every limit of one phase of a
//! request (loaded once; redis-rs loads it again on `NOSCRIPT`), timed by the server's
//! clock so instances need no clock agreement. On a cluster the keys of one request may
//! live on different nodes: each limit is then its own script call, all sent at once, and
//! a later limit is charged even when an earlier one refuses.
//!
//! # Failure
//! Every command has `[state] timeout`; errors and timeouts feed the [`Breaker`]. While it is
//! open, callers fall back (each limit's `on_state_error`) without waiting, and a keeper
//! task reconnects (asking the sentinels again for the master) every `breaker_open`; its
//! first success closes the breaker, re-reads the control hash and resubscribes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt as _;
use rampart_config::state::{Redis, Topology};
use redis::aio::ConnectionManager;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, Script};
use tokio_util::sync::CancellationToken;

use super::breaker::{Breaker, Transition};

/// GCRA for several keys in one call. `KEYS[i]` is a limit's key; `ARGV[3i-2]`,
/// `ARGV[3i-1]` and `ARGV[3i]` its interval and burst tolerance in µs and the tokens wanted
/// (1, or a lease). Returns, for each key checked, how far its TAT was ahead of now and the
/// tokens granted: as many as wanted that fit within the tolerance, at least one, or none
/// (refused, its TAT unchanged), where it stops, exactly as the local limiter does. A key
/// expires when its TAT passes.
pub const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local want = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local ahead = tat - now
  out[2 * i - 1] = ahead
  if ahead > tolerance then
    out[2 * i] = 0
    return out
  end
  local k = math.min(want, math.floor((tolerance - ahead) / interval) + 1)
  out[2 * i] = k
  local new = tat + k * interval
  redis.call('SET', key, string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
end
return out
";

/// [`GCRA`] for several requests in one call (what the batcher sends): `ARGV[1]` is the
/// number of requests; then, per request, its number of keys and each key's interval,
/// tolerance and tokens wanted; `KEYS` are all keys in order. Each request stops at its
/// first refused key, as alone; its later keys answer `0, 0` and are left unchanged.
/// A key several requests of the batch share (one busy client, one hot API key) is read
/// once and written once: the decisions are the same as one call each, in order, at the
/// same instant, for two server calls per distinct key instead of two per request.
pub const GCRA_BATCH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local tats = {}
local dirty = {}
local a = 2
local k = 1
for j = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local stopped = false
  for i = 1, n do
    local interval = tonumber(ARGV[a])
    local tolerance = tonumber(ARGV[a + 1])
    local want = tonumber(ARGV[a + 2])
    a = a + 3
    local key = KEYS[k]
    k = k + 1
    if stopped then
      out[#out + 1] = 0
      out[#out + 1] = 0
    else
      local tat = tats[key]
      if tat == nil then
        tat = tonumber(redis.call('GET', key)) or now
        if tat < now then tat = now end
        tats[key] = tat
      end
      local ahead = tat - now
      out[#out + 1] = ahead
      if ahead > tolerance then
        out[#out + 1] = 0
        stopped = true
      else
        local g = math.min(want, math.floor((tolerance - ahead) / interval) + 1)
        out[#out + 1] = g
        tats[key] = tat + g * interval
        dirty[key] = true
      end
    end
  end
end
for key in pairs(dirty) do
  local new = tats[key]
  redis.call('SET', key, string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
end
return out
";

/// Most requests one batched call decides.
const BATCH: usize = 128;

/// One request's decision waiting for the batcher.
struct Job {
    keys: Vec<Want>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<(u64, u32)>, StateError>>,
}

/// A failed login: `KEYS[1]` counts failures in the window, `KEYS[2]` is the lock. `ARGV`:
/// failures that lock, window ms, lock ms. Returns 1 when this failure locks the account.
pub const LOCK_FAILURE: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Why a shared operation gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The breaker is open: the caller falls back without trying.
    #[error("shared state unavailable (circuit open)")]
    Open,
    /// The command took longer than `[state] timeout`.
    #[error("shared state timed out")]
    Timeout,
    /// The server or the connection failed.
    #[error("shared state error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// An operator change shared with the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A server's weight (0: draining).
    Weight {
        /// Pool.
        pool: String,
        /// Server authority.
        server: String,
        /// New weight.
        weight: u32,
    },
    /// A route switched to another pool (blue-green).
    Route {
        /// Route name.
        route: String,
        /// Pool name.
        pool: String,
    },
    /// A token id revoked until its expiry (Unix seconds).
    Revoke {
        /// The token's `jti`.
        jti: String,
        /// When the entry can be dropped.
        expires: u64,
    },
    /// Every token issued before `at` (Unix seconds) revoked.
    RevokeBefore {
        /// The cut-off.
        at: u64,
    },
    /// A TLS-ALPN-01 validation the instance that orders is waiting for: the CA may
    /// connect to any instance, so each answers it (announced, never stored).
    AcmeAlpn {
        /// The name validated.
        name: String,
        /// SHA-256 of the key authorization, hex.
        digest: String,
        /// Unix seconds after which the challenge is dropped.
        until: u64,
    },
}

impl Change {
    /// The field in the control hash.
    fn field(&self) -> String {
        match self {
            Change::Weight { pool, server, .. } => format!("weight:{pool}:{server}"),
            Change::Route { route, .. } => format!("route:{route}"),
            Change::Revoke { jti, .. } => format!("revoke:{jti}"),
            Change::RevokeBefore { .. } => "revoke_before".into(),
            Change::AcmeAlpn { name, .. } => format!("acme-alpn:{name}"),
        }
    }

    /// The hash value / message body: `{"origin", …}` as JSON.
    pub(crate) fn to_json(&self, origin: &str) -> String {
        let v = match self {
            Change::Weight {
                pool,
                server,
                weight,
            } => {
                serde_json::json!({"kind": "weight", "pool": pool, "server": server, "weight": weight, "origin": origin})
            }
            Change::Route { route, pool } => {
                serde_json::json!({"kind": "route", "route": route, "pool": pool, "origin": origin})
            }
            Change::Revoke { jti, expires } => {
                serde_json::json!({"kind": "revoke", "jti": jti, "expires": expires, "origin": origin})
            }
            Change::RevokeBefore { at } => {
                serde_json::json!({"kind": "revoke_before", "at": at, "origin": origin})
            }
            Change::AcmeAlpn {
                name,
                digest,
                until,
            } => {
                serde_json::json!({"kind": "acme_alpn", "name": name, "digest": digest, "until": until, "origin": origin})
            }
        };
        v.to_string()
    }

    /// Parses a message; returns the change and the instance it came from.
    pub fn from_json(text: &str) -> Option<(Change, String)> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let origin = s("origin").unwrap_or_default();
        let change = match v.get("kind")?.as_str()? {
            "weight" => Change::Weight {
                pool: s("pool")?,
                server: s("server")?,
                weight: u32::try_from(v.get("weight")?.as_u64()?).ok()?,
            },
            "route" => Change::Route {
                route: s("route")?,
                pool: s("pool")?,
            },
            "revoke" => Change::Revoke {
                jti: s("jti")?,
                expires: v.get("expires")?.as_u64()?,
            },
            "revoke_before" => Change::RevokeBefore {
                at: v.get("at")?.as_u64()?,
            },
            "acme_alpn" => Change::AcmeAlpn {
                name: s("name")?,
                digest: s("digest")?,
                until: v.get("until")?.as_u64()?,
            },
            _ => return None,
        };
        Some((change, origin))
    }
}

/// Called when the breaker opens or closes, with the reason.
pub type OnTransition = Box<dyn Fn(Transition, &str) + Send + Sync>;

/// Called with an operator change another instance made (or one read at connect).
pub type OnChange = Box<dyn Fn(&Change) + Send + Sync>;

/// What the fleet tells the process above it.
pub struct Hooks {
    /// The breaker opened or closed: audit it.
    pub transition: OnTransition,
    /// Apply a change from the fleet.
    pub change: OnChange,
}

/// Counters for `/metrics` and `/health`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commands that failed or timed out.
    pub errors: AtomicU64,
    /// Decisions made without the shared state (fallback), by any limit.
    pub fallbacks: AtomicU64,
    /// Times the breaker opened.
    pub opened: AtomicU64,
    /// Times it closed again (shared mode resumed; the first connect counts).
    pub closed: AtomicU64,
    /// Decisions made from a leased token, without a round trip.
    pub leased: AtomicU64,
}

#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// A connection to the shared state, shared by every edge until `[state]` changes.
pub struct Fleet {
    /// The config it was made from (a reload with the same `[state]` keeps this fleet).
    pub config: Redis,
    conns: ArcSwapOption<Vec<Conn>>,
    next: AtomicUsize,
    /// The circuit breaker.
    pub breaker: Breaker,
    /// Counters.
    pub stats: Stats,
    gcra: Script,
    gcra_batch: Script,
    /// Decisions waiting for the batcher (one server call for every request that arrived
    /// while the previous call was out).
    jobs: OnceLock<tokio::sync::mpsc::Sender<Job>>,
    lock_failure: Script,
    /// This instance's id (its own pub/sub messages are skipped).
    pub id: String,
    hooks: OnceLock<Hooks>,
    stop: CancellationToken,
    last_error: std::sync::Mutex<String>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &self.config.url)
            .field("closed", &self.breaker.is_closed())
            .finish_non_exhaustive()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Fleet {
    /// A fleet for `config`; nothing is connected until [`Fleet::start`].
    pub fn new(config: Redis) -> Arc<Self> {
        let id = {
            let mut b = [0u8; 8];
            let _ =
                aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        Arc::new(Self {
            breaker: Breaker::new(config.breaker_failures),
            config,
            conns: ArcSwapOption::empty(),
            next: AtomicUsize::new(0),
            stats: Stats::default(),
            gcra: Script::new(GCRA),
            gcra_batch: Script::new(GCRA_BATCH),
            jobs: OnceLock::new(),
            lock_failure: Script::new(LOCK_FAILURE),
            id,
            hooks: OnceLock::new(),
            stop: CancellationToken::new(),
            last_error: std::sync::Mutex::new("not connected yet".into()),
        })
    }

    /// Sets the hooks (once) and starts the keeper and the subscriber.
    pub fn start(self: &Arc<Self>, hooks: Hooks) {
        let _ = self.hooks.set(hooks);
        tokio::spawn(keeper(Arc::downgrade(self), self.stop.clone()));
        tokio::spawn(subscriber(Arc::downgrade(self), self.stop.clone()));
        if !self.is_cluster() {
            let (tx, rx) = tokio::sync::mpsc::channel(4096);
            let _ = self.jobs.set(tx);
            tokio::spawn(batcher(Arc::downgrade(self), rx, self.stop.clone()));
        }
    }

    /// Waits up to `within` for the shared state to answer (at start it connects in the
    /// background). Returns whether it does.
    pub async fn wait_shared(&self, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        while !self.breaker.is_closed() {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        true
    }

    /// A key with the prefix.
    pub fn key(&self, rest: &str) -> String {
        let mut k = String::with_capacity(self.config.prefix.len() + rest.len());
        k.push_str(&self.config.prefix);
        k.push_str(rest);
        k
    }

    /// Whether this is a cluster (one script call per key).
    pub fn is_cluster(&self) -> bool {
        self.config.topology == Topology::Cluster
    }

    /// The last error seen, for `/health`.
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn conn(&self) -> Result<Conn, StateError> {
        if !self.breaker.is_closed() {
            return Err(StateError::Open);
        }
        let conns = self.conns.load();
        let list = conns.as_ref().ok_or(StateError::Open)?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % list.len().max(1);
        list.get(i).cloned().ok_or(StateError::Open)
    }

    fn note(&self, t: Option<Transition>, why: &str) {
        if let Some(t) = t {
            let counter = match t {
                Transition::Opened => &self.stats.opened,
                Transition::Closed => &self.stats.closed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some(h) = self.hooks.get() {
                (h.transition)(t, why);
            }
        }
    }

    fn failed(&self, e: &StateError) {
        if matches!(e, StateError::Open) {
            return;
        }
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let why = e.to_string();
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = why.clone();
        let t = self.breaker.failure();
        self.note(t, &why);
    }

    /// Runs `f` on a connection within the timeout, feeding the breaker.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StateError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn()?;
        let out = match tokio::time::timeout(self.config.timeout, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StateError::Redis(e)),
            Err(_) => Err(StateError::Timeout),
        };
        match &out {
            Ok(_) => {
                let t = self.breaker.success();
                self.note(t, "shared state answering again");
            }
            Err(e) => self.failed(e),
        }
        out
    }

    /// GCRA for `keys` (full keys with their interval and tolerance in µs and the tokens
    /// wanted), in order: how far each key's TAT was ahead of the server's now and the
    /// tokens granted (0: refused), up to the first refused one.
    ///
    /// # Errors
    /// The breaker is open, a timeout, or a Redis error.
    pub async fn gcra(&self, keys: Vec<Want>) -> Result<Vec<(u64, u32)>, StateError> {
        // Batched: requests that arrive while a call is out share the next one, so a busy
        // instance makes one round trip (and Redis runs one script) for many requests.
        if let Some(jobs) = self.jobs.get() {
            if !self.breaker.is_closed() {
                return Err(StateError::Open);
            }
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job = Job { keys, reply };
            if jobs.try_send(job).is_err() {
                return Err(StateError::Timeout);
            }
            return match tokio::time::timeout(self.config.timeout, answer).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(StateError::Open),
                Err(_) => Err(StateError::Timeout),
            };
        }
        let script = &self.gcra;
        let cluster = self.is_cluster();
        let keys = &keys;
        self.run(|conn| async move {
            if cluster && keys.len() > 1 {
                let calls = keys.iter().map(|w| {
                    let mut conn = conn.clone();
                    async move {
                        let mut inv = script.prepare_invoke();
                        inv.key(&w.key)
                            .arg(w.interval)
                            .arg(w.tolerance)
                            .arg(w.tokens);
                        invoke::<Vec<u64>>(&mut conn, &inv).await
                    }
                });
                let all = futures_util::future::join_all(calls).await;
                let mut flat = Vec::with_capacity(keys.len() * 2);
                for r in all {
                    flat.extend(r?);
                }
                return Ok(pairs(&flat));
            }
            let mut inv = script.prepare_invoke();
            for w in keys {
                inv.key(&w.key)
                    .arg(w.interval)
                    .arg(w.tolerance)
                    .arg(w.tokens);
            }
            let mut conn = conn;
            Ok(pairs(&invoke::<Vec<u64>>(&mut conn, &inv).await?))
        })
        .await
    }

    /// Milliseconds `lock` (a full key) has left, when the account is locked.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn locked_for(&self, lock: &str) -> Result<Option<u64>, StateError> {
        self.run(|mut conn| async move {
            let ms: i64 = query(&mut conn, redis::cmd("PTTL").arg(lock)).await?;
            Ok(u64::try_from(ms).ok().filter(|&m| m > 0))
        })
        .await
    }

    /// Counts a failed login; `true` when it locks the account now.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn lock_failure(
        &self,
        fails: &str,
        lock: &str,
        failures: u32,
        window: Duration,
        lock_for: Duration,
    ) -> Result<bool, StateError> {
        let script = &self.lock_failure;
        self.run(|mut conn| async move {
            let mut inv = script.prepare_invoke();
            inv.key(fails)
                .key(lock)
                .arg(failures)
                .arg(millis(window))
                .arg(millis(lock_for));
            Ok(invoke::<i64>(&mut conn, &inv).await? == 1)
        })
        .await
    }

    /// Clears an account's failures (a successful login).
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn clear(&self, fails: &str) -> Result<(), StateError> {
        self.run(|mut conn| async move {
            let _: i64 = query(&mut conn, redis::cmd("DEL").arg(fails)).await?;
            Ok(())
        })
        .await
    }

    /// Stores an operator change and tells the other instances.
    ///
    /// # Errors
    /// As [`Fleet::gcra`]; the change is still made on this instance.
    pub async fn publish(&self, change: &Change) -> Result<(), StateError> {
        let hash = self.key("control");
        let body = change.to_json(&self.id);
        let field = change.field();
        self.run(|mut conn| async move {
            let _: i64 = query(
                &mut conn,
                redis::cmd("HSET").arg(&hash).arg(&field).arg(&body),
            )
            .await?;
            let _: i64 = query(&mut conn, redis::cmd("PUBLISH").arg(&hash).arg(&body)).await?;
            Ok(())
        })
        .await
    }

    /// Tells the other instances of a passing event (not stored: an instance that is not
    /// listening now never learns of it). Returns how many listeners received it.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn announce(&self, change: &Change) -> Result<u64, StateError> {
        let channel = self.key("control");
        let body = change.to_json(&self.id);
        self.run(|mut conn| async move {
            let n: u64 = query(&mut conn, redis::cmd("PUBLISH").arg(&channel).arg(&body)).await?;
            Ok(n)
        })
        .await
    }

    /// Sets `key` (a full key) to `value` for `ttl` unless it exists: `true` when set.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StateError> {
        self.run(|mut conn| async move {
            let r: Option<String> = query(
                &mut conn,
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
            Ok(r.is_some())
        })
        .await
    }

    /// Takes or keeps a seat for this instance in `key` (a sorted set of instances by
    /// last heartbeat) when fewer than `max` other live instances hold one; members not
    /// seen for `ttl` are dropped first. Returns whether this instance holds a seat and
    /// how many are held.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn seat(
        &self,
        key: &str,
        ttl: Duration,
        max: u64,
    ) -> Result<(bool, u64), StateError> {
        const SEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, redis.call('ZCARD', KEYS[1])}
end
return {0, redis.call('ZCARD', KEYS[1])}
";
        let id = self.id.clone();
        self.run(|mut conn| async move {
            let (held, n): (i64, u64) = query(
                &mut conn,
                redis::cmd("EVAL")
                    .arg(SEAT)
                    .arg(1)
                    .arg(key)
                    .arg(&id)
                    .arg(millis(ttl))
                    .arg(max),
            )
            .await?;
            Ok((held == 1, n))
        })
        .await
    }

    /// Gives this instance's seat in `key` back (a clean stop).
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn unseat(&self, key: &str) -> Result<(), StateError> {
        let id = self.id.clone();
        self.run(|mut conn| async move {
            let _: i64 = query(&mut conn, redis::cmd("ZREM").arg(key).arg(&id)).await?;
            Ok(())
        })
        .await
    }

    /// The value of `key`, when set.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        self.run(|mut conn| async move { query(&mut conn, redis::cmd("GET").arg(key)).await })
            .await
    }

    /// Deletes `key` when it still holds `value` (a lock released by its holder only).
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn del_if(&self, key: &str, value: &str) -> Result<(), StateError> {
        const DEL_IF: &str =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
        self.run(|mut conn| async move {
            let _: i64 = query(
                &mut conn,
                redis::cmd("EVAL").arg(DEL_IF).arg(1).arg(key).arg(value),
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// The fields of hash `key`.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn hash(&self, key: &str) -> Result<Vec<(String, String)>, StateError> {
        self.run(|mut conn| async move { query(&mut conn, redis::cmd("HGETALL").arg(key)).await })
            .await
    }

    /// Sets fields of hash `key` at once.
    ///
    /// # Errors
    /// As [`Fleet::gcra`].
    pub async fn set_hash(&self, key: &str, fields: &[(&str, &str)]) -> Result<(), StateError> {
        self.run(|mut conn| async move {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(key);
            for (f, v) in fields {
                cmd.arg(*f).arg(*v);
            }
            let _: i64 = query(&mut conn, &cmd).await?;
            Ok(())
        })
        .await
    }

    /// Reads every stored operator change (at connect and after a resubscribe), and
    /// removes revoked token ids whose tokens have expired.
    async fn load_changes(&self) -> Result<Vec<Change>, StateError> {
        let hash = self.key("control");
        let all: Vec<(String, String)> = self
            .run(|mut conn| {
                let hash = hash.clone();
                async move { query(&mut conn, redis::cmd("HGETALL").arg(&hash)).await }
            })
            .await?;
        let now = super::persist::unix_ms() / 1000;
        let mut expired = Vec::new();
        let mut changes = Vec::new();
        for (field, v) in all {
            match Change::from_json(&v) {
                Some((Change::Revoke { expires, .. }, _)) if expires <= now => expired.push(field),
                Some((c, _)) => changes.push(c),
                None => {}
            }
        }
        if !expired.is_empty() {
            let _ = self
                .run(|mut conn| async move {
                    let _: i64 =
                        query(&mut conn, redis::cmd("HDEL").arg(&hash).arg(&expired)).await?;
                    Ok(())
                })
                .await;
        }
        Ok(changes)
    }

    fn apply(&self, change: &Change) {
        if let Some(h) = self.hooks.get() {
            (h.change)(change);
        }
    }

    /// Connects (again): every connection of the pool, then a `PING`.
    async fn connect(&self) -> redis::RedisResult<Vec<Conn>> {
        let c = &self.config;
        let timeout = c.timeout.max(Duration::from_millis(250));
        // The one timeout is ours, around each command (`run`): a second timer inside the
        // connection costs ~1.1k instructions per command (callgrind).
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1);
        let conns = match &c.topology {
            Topology::Cluster => {
                let nodes = c
                    .nodes
                    .iter()
                    .map(|n| node_info(n, c.tls, settings(c)))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                let mut b = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(c.timeout);
                if let Some(u) = &c.username {
                    b = b.username(u);
                }
                if let Some(p) = &c.password {
                    b = b.password(p);
                }
                if c.tls {
                    b = b.tls(redis::TlsMode::Secure).certs(certs(c)?);
                }
                let client = b.build()?;
                vec![Conn::Cluster(client.get_async_connection().await?)]
            }
            _ => managers(server_client(c).await?, c.pool_size, manager_config).await?,
        };
        for conn in &conns {
            let mut conn = conn.clone();
            let _: String = query(&mut conn, &redis::cmd("PING")).await?;
        }
        Ok(conns)
    }

    /// A client for pub/sub (the server, the current master, or the first cluster node).
    async fn pubsub_client(&self) -> redis::RedisResult<redis::Client> {
        server_client(&self.config).await
    }
}

/// One key of a rate-limit decision.
#[derive(Debug, Clone)]
pub struct Want {
    /// The full key.
    pub key: String,
    /// µs between requests.
    pub interval: u64,
    /// Burst tolerance, µs.
    pub tolerance: u64,
    /// Tokens wanted (1, or the limit's lease).
    pub tokens: u32,
}

/// The script's flat `[ahead, granted, …]` as pairs.
fn pairs(flat: &[u64]) -> Vec<(u64, u32)> {
    flat.chunks(2)
        .map(|c| {
            (
                c[0],
                c.get(1)
                    .map_or(0, |&g| u32::try_from(g).unwrap_or(u32::MAX)),
            )
        })
        .collect()
}

/// The CA of `[state] ca` for `rediss` (system roots without one).
fn certs(c: &Redis) -> redis::RedisResult<redis::TlsCertificates> {
    let root_cert = match &c.ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Io, "cannot read state.ca", e.to_string()))
        })?),
        None => None,
    };
    Ok(redis::TlsCertificates {
        client_tls: None,
        root_cert,
    })
}

/// Database and credentials.
fn settings(c: &Redis) -> RedisConnectionInfo {
    let mut s = RedisConnectionInfo::default().set_db(c.db);
    if let Some(u) = &c.username {
        s = s.set_username(u);
    }
    if let Some(p) = &c.password {
        s = s.set_password(p);
    }
    s
}

/// A client for the one server: the configured one, the master the sentinels name now, or
/// a cluster's first node.
async fn server_client(c: &Redis) -> redis::RedisResult<redis::Client> {
    if let Topology::Sentinel { master, db } = &c.topology {
        let addrs = c.nodes.iter().map(|n| {
            let (host, port) = split(n);
            if c.tls {
                ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host, port)
            }
        });
        let mut b = redis::sentinel::SentinelClientBuilder::new(
            addrs,
            master,
            redis::sentinel::SentinelServerType::Master,
        )?
        .set_client_to_redis_db(*db);
        if let Some(u) = &c.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &c.password {
            b = b.set_client_to_redis_password(p);
        }
        if c.tls {
            b = b
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                .set_client_to_redis_certificates(certs(c)?);
        }
        return b.build()?.async_get_client().await;
    }
    let info = node_info(&c.nodes[0], c.tls, settings(c))?;
    if c.tls {
        redis::Client::build_with_tls(info, certs(c)?)
    } else {
        redis::Client::open(info)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn split(node: &str) -> (String, u16) {
    let (h, p) = node.rsplit_once(':').unwrap_or((node, "6379"));
    (
        h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        p.parse().unwrap_or(6379),
    )
}

fn node_info(
    node: &str,
    tls: bool,
    settings: RedisConnectionInfo,
) -> redis::RedisResult<ConnectionInfo> {
    let (host, port) = split(node);
    let addr = if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    };
    addr.into_connection_info()
        .map(|i| i.set_redis_settings(settings))
}

async fn managers(
    client: redis::Client,
    n: usize,
    config: redis::aio::ConnectionManagerConfig,
) -> redis::RedisResult<Vec<Conn>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(Conn::Manager(
            ConnectionManager::new_with_config(client.clone(), config.clone()).await?,
        ));
    }
    Ok(out)
}

async fn invoke<T: redis::FromRedisValue>(
    conn: &mut Conn,
    inv: &redis::ScriptInvocation<'_>,
) -> redis::RedisResult<T> {
    match conn {
        Conn::Manager(c) => inv.invoke_async(c).await,
        Conn::Cluster(c) => inv.invoke_async(c).await,
    }
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut Conn,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    match conn {
        Conn::Manager(c) => cmd.query_async(c).await,
        Conn::Cluster(c) => cmd.query_async(c).await,
    }
}

/// Sends the waiting decisions: the first job, and every one queued behind it (up to
/// [`BATCH`]), in one script call; the next call leaves when this one is answered.
async fn batcher(
    fleet: Weak<Fleet>,
    mut rx: tokio::sync::mpsc::Receiver<Job>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            j = rx.recv() => match j { Some(j) => j, None => return },
            () = stop.cancelled() => return,
        };
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A request that gave up waiting is not charged.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let Some(f) = fleet.upgrade() else { return };
        let script = &f.gcra_batch;
        let plan = coalesce(&jobs);
        let (work, plan_ref) = (&jobs, &plan);
        let r = f
            .run(|mut conn| async move {
                let mut inv = script.prepare_invoke();
                inv.arg(plan_ref.len());
                for entry in plan_ref {
                    match entry {
                        Entry::Job(i) => {
                            let j = &work[*i];
                            inv.arg(j.keys.len());
                            for w in &j.keys {
                                inv.key(&w.key)
                                    .arg(w.interval)
                                    .arg(w.tolerance)
                                    .arg(w.tokens);
                            }
                        }
                        Entry::Group(members) => {
                            let w = &work[members[0]].keys[0];
                            inv.arg(1)
                                .key(&w.key)
                                .arg(w.interval)
                                .arg(w.tolerance)
                                .arg(members.len());
                        }
                    }
                }
                invoke::<Vec<u64>>(&mut conn, &inv).await
            })
            .await;
        drop(f);
        match r {
            Ok(flat) => {
                let all = pairs(&flat);
                let mut replies: Vec<Option<Vec<(u64, u32)>>> = vec![None; jobs.len()];
                let mut at = 0;
                for entry in &plan {
                    match entry {
                        Entry::Job(i) => {
                            let n = jobs[*i].keys.len();
                            replies[*i] = all.get(at..at + n).map(<[(u64, u32)]>::to_vec);
                            at += n;
                        }
                        Entry::Group(members) => {
                            // As one call each, in turn: the first `granted` pass, each a
                            // step further ahead; the rest are refused where they stop.
                            if let Some(&(ahead, granted)) = all.get(at) {
                                let step = jobs[members[0]].keys[0].interval;
                                for (n, m) in members.iter().enumerate() {
                                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                                    let pass = n < granted;
                                    let a = ahead + step * u64::from(n.min(granted));
                                    replies[*m] = Some(vec![(a, u32::from(pass))]);
                                }
                            }
                            at += 1;
                        }
                    }
                }
                for (j, mine) in jobs.into_iter().zip(replies) {
                    let _ = j.reply.send(mine.ok_or(StateError::Open));
                }
            }
            Err(e) => {
                let open = matches!(e, StateError::Open);
                for j in jobs {
                    let _ = j.reply.send(Err(if open {
                        StateError::Open
                    } else {
                        StateError::Timeout
                    }));
                }
            }
        }
    }
}

/// One request of a batched call: a job as it came, or jobs that want one token of the
/// same single limit key (one busy client), sent as one request for as many tokens.
#[derive(Debug, PartialEq)]
enum Entry {
    Job(usize),
    Group(Vec<usize>),
}

/// Groups the batch's single-key, one-token decisions by key and limit: the server then
/// parses and loops once per busy key, not once per request. Exact: within a call every
/// decision is taken at one instant, and GCRA granting `n` tokens at once grants exactly
/// the first `n` of `n` requests made one by one.
fn coalesce(jobs: &[Job]) -> Vec<Entry> {
    let mut plan: Vec<Entry> = Vec::with_capacity(jobs.len());
    let mut groups: std::collections::HashMap<(&str, u64, u64), usize> =
        std::collections::HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        match j.keys.as_slice() {
            [w] if w.tokens == 1 => match groups.entry((w.key.as_str(), w.interval, w.tolerance)) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    if let Entry::Group(m) = &mut plan[*o.get()] {
                        m.push(i);
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(plan.len());
                    plan.push(Entry::Group(vec![i]));
                }
            },
            _ => plan.push(Entry::Job(i)),
        }
    }
    plan
}

/// Keeps the connections: connects while the breaker is open (at start, after failures),
/// then re-reads the stored operator changes.
async fn keeper(fleet: Weak<Fleet>, stop: CancellationToken) {
    loop {
        let Some(f) = fleet.upgrade() else { return };
        let wait = f.config.breaker_open;
        if !f.breaker.is_closed() {
            let attempt = tokio::time::timeout(
                f.config.timeout.max(Duration::from_millis(250)) * 4,
                f.connect(),
            )
            .await;
            match attempt {
                Ok(Ok(conns)) => {
                    f.conns.store(Some(Arc::new(conns)));
                    let t = f.breaker.success();
                    f.note(t, "connected to the shared state");
                    if let Ok(changes) = f.load_changes().await {
                        for c in &changes {
                            f.apply(c);
                        }
                    }
                }
                Ok(Err(e)) => f.failed(&StateError::Redis(e)),
                Err(_) => f.failed(&StateError::Timeout),
            }
        }
        drop(f);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Listens for the other instances' operator changes; resubscribes after a lost
/// connection and then re-reads the hash (a change made meanwhile is not lost).
async fn subscriber(fleet: Weak<Fleet>, stop: CancellationToken) {
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = stop.cancelled() => return,
            }
        }
        first = false;
        let Some(f) = fleet.upgrade() else { return };
        let channel = f.key("control");
        let id = f.id.clone();
        let client = match f.pubsub_client().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let Ok(Ok(mut pubsub)) =
            tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await
        else {
            continue;
        };
        if pubsub.subscribe(&channel).await.is_err() {
            continue;
        }
        // Changes made while unsubscribed.
        if let Ok(changes) = f.load_changes().await {
            for c in &changes {
                f.apply(c);
            }
        }
        drop(f);
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                () = stop.cancelled() => return,
            };
            let Some(msg) = msg else { break };
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            let Some((change, origin)) = Change::from_json(&text) else {
                continue;
            };
            if origin == id {
                continue;
            }
            let Some(f) = fleet.upgrade() else { return };
            f.apply(&change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_decisions_of_a_key_are_grouped_and_others_kept() {
        let job = |keys: &[(&str, u32)]| Job {
            keys: keys
                .iter()
                .map(|(k, t)| Want {
                    key: (*k).to_owned(),
                    interval: 1000,
                    tolerance: 5000,
                    tokens: *t,
                })
                .collect(),
            reply: tokio::sync::oneshot::channel().0,
        };
        let jobs = vec![
            job(&[("ip:a", 1)]),
            job(&[("ip:b", 1)]),
            job(&[("ip:a", 1)]),
            job(&[("ip:a", 10)]),
            job(&[("ip:a", 1), ("user:x", 1)]),
            job(&[("ip:a", 1)]),
        ];
        assert_eq!(
            coalesce(&jobs),
            [
                Entry::Group(vec![0, 2, 5]),
                Entry::Group(vec![1]),
                Entry::Job(3),
                Entry::Job(4),
            ]
        );
    }

    #[test]
    fn changes_round_trip_through_json() {
        for c in [
            Change::Weight {
                pool: "api".into(),
                server: "10.0.0.1:80".into(),
                weight: 0,
            },
            Change::Route {
                route: "/api/".into(),
                pool: "green".into(),
            },
        ] {
            let (back, origin) = Change::from_json(&c.to_json("me")).unwrap();
            assert_eq!((back, origin.as_str()), (c, "me"));
        }
        assert!(Change::from_json("{\"kind\":\"weight\"}").is_none());
        assert!(Change::from_json("not json").is_none());
    }

    #[test]
    fn nodes_split_into_host_and_port() {
        assert_eq!(
            split("redis.internal:6380"),
            ("redis.internal".into(), 6380)
        );
        assert_eq!(split("[::1]:7000"), ("::1".into(), 7000));
    }
}
