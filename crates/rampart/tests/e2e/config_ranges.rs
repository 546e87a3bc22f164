//! Every numeric and duration key has a range that validation enforces: a config that
//! `check` accepts starts and serves, whatever its values. Arbitrary values (zero, one,
//! the extremes of every integer type, durations of ten thousand years) are loaded,
//! built into an edge, started, and sent a request; nothing may panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunConfig, TestRunner};
use rampart_config::{load_str, Source};
use rampart_server::Edge;
use rampart_test_support::client::{self, get};
use rampart_test_support::TempDir;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on any thread (the edge's tasks included), then reports as usual.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Often unset (`""`: the key is left out, its default applies), else a value from the
/// edges of its type.
fn or_unset(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![8 => Just(String::new()), 1 => s]
}

fn int() -> impl Strategy<Value = String> {
    or_unset(
        prop_oneof![
            Just("0"),
            Just("1"),
            Just("2"),
            Just("7"),
            Just("100"),
            Just("65535"),
            Just("65536"),
            Just("4294967295"),
            Just("4294967296"),
            Just("2305843009213693952"),
            Just("9223372036854775807"),
        ]
        .prop_map(str::to_owned),
    )
}

fn dur() -> impl Strategy<Value = String> {
    or_unset(
        prop_oneof![
            Just("0s"),
            Just("1ms"),
            Just("1s"),
            Just("30s"),
            Just("2h"),
            Just("400d"),
            Just("10000y"),
            Just("18446744073709551615s"),
        ]
        .prop_map(|s| format!("\"{s}\"")),
    )
}

fn size() -> impl Strategy<Value = String> {
    or_unset(
        prop_oneof![
            Just("0"),
            Just("1"),
            Just("8KiB"),
            Just("64KiB"),
            Just("1MiB"),
            Just("4GiB"),
            Just("18446744073709551615"),
        ]
        .prop_map(|s| format!("\"{s}\"")),
    )
}

/// `(key path, value)` pairs for one config: every numeric and duration key there is.
fn values() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let server = (
        (dur(), dur(), dur(), dur(), dur()),
        (size(), int(), int(), int(), int(), int()),
    );
    let upstream = (
        (int(), dur(), dur(), dur(), dur(), int()),
        (dur(), dur(), int(), int()),
    );
    let route = (size(), size(), int(), int(), dur());
    let limit = (int(), int(), int(), int(), dur(), dur(), dur(), int());
    (server, upstream, route, limit).prop_map(|(s, u, r, l)| {
        let ((a, b, c, d, e), (f, g, h, i, j, k)) = s;
        let ((m, n, o, p, q, w), (x, y, z, aa)) = u;
        vec![
            ("server.shutdown_grace", a),
            ("server.header_read_timeout", b),
            ("server.idle_timeout", c),
            ("server.park_after", d),
            ("server.tls_handshake_timeout", e),
            ("server.max_header_size", f),
            ("server.max_headers", g),
            ("server.max_connections", h),
            ("server.h2_max_concurrent_streams", i),
            ("server.h2_max_pending_reset_streams", j),
            ("server.https_port", k),
            ("upstream.max_fails", m),
            ("upstream.fail_timeout", n),
            ("upstream.connect_timeout", o),
            ("upstream.response_timeout", p),
            ("upstream.idle_timeout", q),
            ("upstream.max_idle", w),
            ("health.interval", x),
            ("health.timeout", y),
            ("health.rise", z),
            ("health.fall", aa),
            ("route.body_limit", r.0),
            ("route.compress_min_size", r.1),
            ("respond.status", r.2),
            ("logging.queue", r.3),
            ("cors.max_age", r.4),
            ("limit.count", l.0),
            ("limit.burst", l.1),
            ("limit.max_keys", l.2),
            ("lockout.failures", l.3),
            ("lockout.for", l.4),
            ("lockout.window", l.5),
            ("dependency.timeout", l.6),
            ("lockout.status", l.7),
        ]
    })
}

fn toml_of(v: &[(&str, String)]) -> String {
    // `key = value` lines (or inline-table items) of the set keys under `prefix`.
    let items = |prefix: &str| -> Vec<String> {
        v.iter()
            .filter(|(k, val)| k.starts_with(prefix) && !val.is_empty())
            .map(|(k, val)| format!("{} = {val}", &k[prefix.len()..]))
            .collect()
    };
    let lines = |prefix: &str| items(prefix).join("\n");
    let inline = |first: &str, prefix: &str| {
        let mut all = vec![first.to_owned()];
        all.extend(items(prefix));
        all.join(", ")
    };
    let count = v
        .iter()
        .find(|(k, val)| *k == "limit.count" && !val.is_empty())
        .map_or("10", |(_, val)| val.as_str());
    format!(
        r#"
[server]
http = "127.0.0.1:0"
{server}
[upstreams.app]
servers = ["127.0.0.1:9"]
health_check = {{ {health} }}
{upstream}
[limits.l]
rate = "{count}/s"
{limit}
lockout = {{ {lockout} }}
[cors.c]
{cors}
[logging]
{logging}
[[dependencies]]
name = "db"
kind = "tcp"
address = "127.0.0.1:9"
required = false
{dependency}
[[routes]]
path = "/api"
upstream = "app"
limit = "l"
cors = "c"
{route}
[[routes]]
path = "/"
respond = {{ {respond} }}
"#,
        server = lines("server."),
        health = inline("path = \"/\"", "health."),
        upstream = lines("upstream."),
        limit = lines("limit.").replace("count = ", "# count = "),
        lockout = inline("field = \"username\"", "lockout."),
        cors = {
            let mut c = vec!["origins = [\"https://a.test\"]".to_owned()];
            c.extend(items("cors."));
            c.join("\n")
        },
        logging = lines("logging."),
        dependency = lines("dependency."),
        route = lines("route."),
        respond = inline("body = \"ok\"", "respond."),
    )
}

#[test]
fn any_config_check_accepts_starts_and_serves_without_panicking() {
    count_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new("ranges");
    let mut runner = TestRunner::new(RunConfig {
        cases: 256,
        failure_persistence: None,
        ..RunConfig::default()
    });
    let (accepted, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&values(), |v| {
            let toml = toml_of(&v);
            let loaded = load_str(
                &toml,
                &Source {
                    name: "ranges.toml".into(),
                    base_dir: dir.path().to_path_buf(),
                    env: &|_| None,
                },
            );
            let mut config = match loaded {
                Ok(c) => c,
                Err(errors) => {
                    // Refused is fine: each error names a key and says why.
                    for e in &errors.errors {
                        prop_assert!(!e.key.is_empty() && !e.message.is_empty(), "{e}");
                    }
                    refused.set(refused.get() + 1);
                    return Ok(());
                }
            };
            accepted.set(accepted.get() + 1);
            config.server.state_dir = dir.path().join("state");
            config.logging.access = rampart_config::ops::LogTarget::Off;
            let before = PANICS.load(Ordering::SeqCst);
            let served = rt.block_on(async {
                let edge = Edge::build(config, "ranges.toml").map_err(|e| e.to_string())?;
                let running = rampart_server::start(edge)
                    .await
                    .map_err(|e| e.to_string())?;
                let addr = running.http_addr.unwrap();
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    client::Conn::plain(addr).await.send(get("h", "/")),
                )
                .await;
                running.shutdown();
                Ok::<_, String>(r.map(|r| r.map(|r| r.status.as_u16())))
            });
            prop_assert_eq!(
                PANICS.load(Ordering::SeqCst),
                before,
                "a panic with an accepted config:\n{}",
                toml
            );
            let served = served.map_err(|e| TestCaseError::fail(format!("{e}\n{toml}")))?;
            prop_assert!(
                matches!(served, Ok(Ok(_))),
                "no answer ({served:?}) with an accepted config:\n{}",
                toml
            );
            Ok(())
        })
        .unwrap();
    let (accepted, refused) = (accepted.get(), refused.get());
    eprintln!("{accepted} configs accepted and served, {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn values_that_crashed_serve_are_refused_by_check_with_their_range() {
    for (key, toml, says) in [
        (
            "server.max_connections",
            "[server]\nhttp = \"127.0.0.1:0\"\nmax_connections = 2305843009213693952\n",
            "must be between 1 and 1000000",
        ),
        (
            "server.header_read_timeout",
            "[server]\nhttp = \"127.0.0.1:0\"\nheader_read_timeout = \"18446744073709551615s\"\n",
            "longer than the longest any key takes",
        ),
        (
            "server.h2_max_concurrent_streams",
            "[server]\nhttp = \"127.0.0.1:0\"\nh2_max_concurrent_streams = 4294967295\n",
            "must be between 1 and 10000",
        ),
    ] {
        let toml = format!("{toml}[[routes]]\nrespond = {{ body = \"ok\" }}\n");
        let errors = load_str(
            &toml,
            &Source {
                name: "t.toml".into(),
                base_dir: std::env::temp_dir(),
                env: &|_| None,
            },
        )
        .expect_err(key);
        let text = errors.to_string();
        assert!(text.contains(key) && text.contains(says), "{key}: {text}");
    }
}
