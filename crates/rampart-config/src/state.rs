//! `[state]`: where the state a fleet shares lives (rate-limit counters, lockouts, token
//! revocations, operator changes). `local` (the default) keeps it in the process (and,
//! where it must survive a restart, under `server.state_dir`); `redis` shares it through a
//! Redis-protocol server (Redis, Valkey), one URL:
//!
//! - `redis://host:6379/0`, `rediss://host:6380` (TLS; `ca` names the CA file),
//! - `redis+sentinel://s1:26379,s2:26379/MASTER[/DB]` (Sentinel finds the master),
//! - `redis+cluster://n1:7000,n2:7001` (Cluster; `rediss+…` for TLS in both).
//!
//! Credentials go in `username` and `password` (`${VAR}` or `password_file`), never in
//! the URL of a reviewed file: preflight flags a password written inline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::Duration as RawDuration;

/// `[state]` as written.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `local`: in the process; operator changes and active lockouts are also saved under
    /// `server.state_dir` (`control.json`, `lockouts.json`, 0600, atomic) and restored at
    /// start. `redis`: shared by every instance through Redis or Valkey.
    pub backend: Option<String>,
    /// `redis://host:6379/0`, `rediss://host:6380` (TLS),
    /// `redis+sentinel://s1:26379,s2:26379/MASTER[/DB]`, `redis+cluster://n1:7000,n2:7001`
    /// (`rediss+…` for TLS).
    pub redis: Option<String>,
    /// PEM file of the CA that signed the server's certificate (`rediss`).
    pub ca: Option<String>,
    /// ACL credentials; write `password = "${REDIS_PASSWORD}"` or `password_file =
    /// "/run/secrets/redis"` (preflight PF-STATE-01 flags a password inside the URL).
    pub username: Option<String>,
    /// ACL credentials; write `password = "${REDIS_PASSWORD}"` or `password_file =
    /// "/run/secrets/redis"` (preflight PF-STATE-01 flags a password inside the URL).
    pub password: Option<String>,
    /// Prepended to every key and channel: several fleets on one server.
    pub prefix: Option<String>,
    /// Connections per instance, each multiplexed (1–64).
    pub pool_size: Option<usize>,
    /// Per command; a slower answer counts as a failure (1ms–10s).
    pub timeout: Option<RawDuration>,
    /// Instances in the fleet: the `local` fallback divides each limit by it.
    pub fleet_size: Option<u32>,
    /// Consecutive failures (errors or timeouts) that open the circuit breaker.
    pub breaker_failures: Option<u32>,
    /// How long it stays open before Redis is tried again (a background probe; requests
    /// never wait on a dead server).
    pub breaker_open: Option<RawDuration>,
}

/// How a Redis URL names its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    Single,
    /// Sentinels (`nodes`) that name the master of `master`, and its database.
    Sentinel {
        /// The monitored master's name.
        master: String,
        /// Database number.
        db: i64,
    },
    /// Cluster seed nodes.
    Cluster,
}

/// `[state] backend = "redis"`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Redis {
    /// The URL as written (for messages; it holds no password unless written inline).
    pub url: String,
    /// TLS to the server (`rediss`).
    pub tls: bool,
    /// `host:port` of each node (the server, the sentinels or the cluster seeds).
    pub nodes: Vec<String>,
    /// How the nodes are used.
    pub topology: Topology,
    /// Database number (single server).
    pub db: i64,
    /// CA file.
    pub ca: Option<PathBuf>,
    /// ACL user.
    pub username: Option<String>,
    /// Password (from the URL when written inline there, else `password`).
    pub password: Option<String>,
    /// Whether the URL itself carries a password (a preflight finding).
    pub inline_password: bool,
    /// Key and channel prefix.
    pub prefix: String,
    /// Connections.
    pub pool_size: usize,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Failures that open the breaker.
    pub breaker_failures: u32,
    /// Breaker open time.
    pub breaker_open: Duration,
}

/// `[state]`, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// The shared backend; `None` is local.
    pub redis: Option<Redis>,
    /// Instances in the fleet (local fallback divides limits by it).
    pub fleet_size: u32,
}

/// Validates `[state]`; errors go to `err` with their key.
pub(crate) fn state(
    raw: Option<&RawState>,
    base: &Path,
    err: &mut dyn FnMut(String, String),
) -> State {
    let Some(r) = raw else {
        return State {
            redis: None,
            fleet_size: 1,
        };
    };
    let fleet_size = r.fleet_size.unwrap_or(crate::defaults::state::FLEET_SIZE);
    if !(1..=1000).contains(&fleet_size) {
        err(
            "state.fleet_size".into(),
            format!("expected 1 to 1000 instances, got {fleet_size}"),
        );
    }
    let backend = r
        .backend
        .as_deref()
        .unwrap_or(if r.redis.is_some() { "redis" } else { "local" });
    let redis = match backend {
        "local" => {
            if r.redis.is_some() {
                err(
                    "state.redis".into(),
                    "set, but backend is \"local\": remove it or set backend = \"redis\"".into(),
                );
            }
            None
        }
        "redis" => match r.redis.as_deref() {
            Some(url) => redis(url, r, base, err),
            None => {
                err(
                    "state.redis".into(),
                    "missing: backend \"redis\" needs a URL such as \"rediss://redis.internal:6380\"".into(),
                );
                None
            }
        },
        other => {
            err(
                "state.backend".into(),
                format!("unknown backend {other:?}: expected \"local\" or \"redis\""),
            );
            None
        }
    };
    State {
        redis,
        fleet_size: fleet_size.clamp(1, 1000),
    }
}

fn redis(
    url: &str,
    r: &RawState,
    base: &Path,
    err: &mut dyn FnMut(String, String),
) -> Option<Redis> {
    let mut bad = |m: String| err("state.redis".into(), m);
    let Some((scheme, rest)) = url.split_once("://") else {
        bad(format!("{url:?} is not a URL: expected redis://, rediss://, redis+sentinel:// or redis+cluster://"));
        return None;
    };
    let (tls, kind) = match scheme {
        "redis" => (false, ""),
        "rediss" => (true, ""),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        other => {
            bad(format!(
                "unknown scheme {other:?}: expected redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster"
            ));
            return None;
        }
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (url_user, url_pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                (!user.is_empty()).then(|| user.to_owned()),
                Some(pass.to_owned()),
            ),
            None => ((!u.is_empty()).then(|| u.to_owned()), None),
        },
        None => (None, None),
    };
    let mut nodes = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        let ok = h.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        let node = if ok {
            h.to_owned()
        } else if !h.is_empty() && !h.contains(':') {
            format!("{h}:{}", if kind == "sentinel" { 26379 } else { 6379 })
        } else {
            bad(format!("{h:?} is not host:port"));
            return None;
        };
        nodes.push(node);
    }
    if kind.is_empty() && nodes.len() != 1 {
        bad(
            "one server per redis:// URL: use redis+sentinel:// or redis+cluster:// for several"
                .into(),
        );
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let db_of = |s: Option<&&str>, bad: &mut dyn FnMut(String)| match s {
        None => 0,
        Some(d) => d.parse::<i64>().unwrap_or_else(|_| {
            bad(format!("database {d:?} is not a number"));
            0
        }),
    };
    let (topology, db) = match kind {
        "sentinel" => {
            let Some(master) = segments.first() else {
                bad(
                    "a sentinel URL names the master: redis+sentinel://s1:26379,s2:26379/mymaster"
                        .into(),
                );
                return None;
            };
            let db = db_of(segments.get(1), &mut bad);
            (
                Topology::Sentinel {
                    master: (*master).to_owned(),
                    db,
                },
                db,
            )
        }
        "cluster" => {
            if !segments.is_empty() {
                bad("a cluster has no database number: drop the path".into());
            }
            (Topology::Cluster, 0)
        }
        _ => (Topology::Single, db_of(segments.first(), &mut bad)),
    };
    let prefix = r
        .prefix
        .clone()
        .unwrap_or_else(|| crate::defaults::state::PREFIX.into());
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        err(
            "state.prefix".into(),
            "no spaces or control characters".into(),
        );
    }
    let pool_size = r.pool_size.unwrap_or(crate::defaults::state::POOL_SIZE);
    if !(1..=64).contains(&pool_size) {
        err(
            "state.pool_size".into(),
            format!("expected 1 to 64 connections, got {pool_size}"),
        );
    }
    let timeout = r.timeout.map_or(crate::defaults::state::TIMEOUT, |d| d.0);
    if timeout < Duration::from_millis(1) || timeout > Duration::from_secs(10) {
        err("state.timeout".into(), "expected 1ms to 10s".into());
    }
    let breaker_failures = r
        .breaker_failures
        .unwrap_or(crate::defaults::state::BREAKER_FAILURES);
    if !(1..=1000).contains(&breaker_failures) {
        err(
            "state.breaker_failures".into(),
            format!("expected 1 to 1000, got {breaker_failures}"),
        );
    }
    let breaker_open = r
        .breaker_open
        .map_or(crate::defaults::state::BREAKER_OPEN, |d| d.0);
    if breaker_open < Duration::from_millis(10) || breaker_open > Duration::from_secs(600) {
        err("state.breaker_open".into(), "expected 10ms to 10m".into());
    }
    let ca = r.ca.as_ref().map(|c| base.join(c));
    if let Some(c) = &ca {
        if !tls {
            err(
                "state.ca".into(),
                "set, but the URL is not rediss:// (TLS)".into(),
            );
        } else if !c.is_file() {
            err("state.ca".into(), format!("{} is not a file", c.display()));
        }
    }
    if url_pass.is_some() && r.password.is_some() {
        err(
            "state.password".into(),
            "the URL already carries a password: keep one (in password, from ${VAR} or password_file)".into(),
        );
    }
    Some(Redis {
        url: url.to_owned(),
        tls,
        nodes,
        topology,
        db,
        ca,
        username: r.username.clone().or(url_user),
        inline_password: url_pass.is_some(),
        password: r.password.clone().or(url_pass),
        prefix,
        pool_size: pool_size.clamp(1, 64),
        timeout,
        breaker_failures: breaker_failures.max(1),
        breaker_open,
    })
}

/// What a limit does while the shared state cannot be reached (`on_state_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStateError {
    /// Enforce `limit / fleet_size` on this instance alone (default).
    #[default]
    Local,
    /// Let requests through unlimited.
    Allow,
    /// Refuse with 503 `state_unavailable`.
    Deny,
}

impl OnStateError {
    /// Parses the key's value.
    ///
    /// # Errors
    /// Anything but `local`, `allow`, `deny`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Self::Local),
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            other => Err(format!(
                "unknown value {other:?}: expected \"local\", \"allow\" or \"deny\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> (Option<Redis>, Vec<(String, String)>) {
        let raw = RawState {
            redis: Some(url.into()),
            ..RawState::default()
        };
        let mut errs = Vec::new();
        let s = state(Some(&raw), Path::new("."), &mut |k, m| errs.push((k, m)));
        (s.redis, errs)
    }

    #[test]
    fn urls_of_every_topology() {
        let (r, e) = parse("rediss://app:s3cret@redis.internal:6380/2");
        assert!(e.is_empty(), "{e:?}");
        let r = r.unwrap();
        assert!(r.tls && r.inline_password);
        assert_eq!(r.nodes, ["redis.internal:6380"]);
        assert_eq!((r.db, r.username.as_deref()), (2, Some("app")));
        assert_eq!(r.password.as_deref(), Some("s3cret"));
        assert_eq!(r.prefix, "rampart:");
        assert_eq!(r.timeout, Duration::from_millis(50));

        let (r, e) = parse("redis+sentinel://s1:26379,s2/mymaster/1");
        assert!(e.is_empty(), "{e:?}");
        let r = r.unwrap();
        assert_eq!(r.nodes, ["s1:26379", "s2:26379"]);
        assert_eq!(
            r.topology,
            Topology::Sentinel {
                master: "mymaster".into(),
                db: 1
            }
        );
        let (r, e) = parse("redis+cluster://n1:7000,n2:7001");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r.unwrap().topology, Topology::Cluster);
        let (r, _) = parse("redis://localhost");
        assert_eq!(r.unwrap().nodes, ["localhost:6379"]);
    }

    #[test]
    fn bad_urls_name_the_problem() {
        for (url, want) in [
            ("localhost:6379", "not a URL"),
            ("http://x:1", "unknown scheme"),
            ("redis://a:1,b:2", "one server"),
            ("redis+sentinel://s1:26379", "names the master"),
            ("redis://x:notaport", "not host:port"),
            ("redis://x:6379/zero", "not a number"),
        ] {
            let (_, e) = parse(url);
            assert!(
                e.iter()
                    .any(|(k, m)| k == "state.redis" && m.contains(want)),
                "{url}: {e:?}"
            );
        }
    }

    #[test]
    fn backend_and_bounds() {
        let mut errs = Vec::new();
        let raw = RawState {
            backend: Some("etcd".into()),
            fleet_size: Some(0),
            ..RawState::default()
        };
        let s = state(Some(&raw), Path::new("."), &mut |k, m| errs.push((k, m)));
        assert!(s.redis.is_none());
        let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["state.fleet_size", "state.backend"]);
        let mut errs = Vec::new();
        let raw = RawState {
            backend: Some("redis".into()),
            ..RawState::default()
        };
        state(Some(&raw), Path::new("."), &mut |k, m| errs.push((k, m)));
        assert_eq!(errs[0].0, "state.redis");
        assert_eq!(OnStateError::parse("deny"), Ok(OnStateError::Deny));
        assert!(OnStateError::parse("fail").is_err());
    }
}
