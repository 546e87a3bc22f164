//! Day-2 operations: hot reload without a dropped request, listeners re-bound only when
//! their address changes, a bad reload keeping the old config, SIGHUP on the binary.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_config::{load_str, Source};
use rampart_server::Edge;
use rampart_test_support::client::{self, get};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;

use crate::harness::{serve, start_in};

fn respond_toml(http: &str, body: &str, upstream: &str) -> String {
    format!(
        "[server]\nhttp = \"{http}\"\n\n[upstreams.app]\nservers = [\"{upstream}\"]\n\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"root\"\npath = \"/\"\nrespond = {{ body = \"{body}\" }}\n"
    )
}

fn build(dir: &TempDir, toml: &str) -> Edge {
    let mut config = load_str(
        toml,
        &Source {
            name: "reload.toml".into(),
            base_dir: dir.path().to_path_buf(),
            env: &rampart_config::process_env,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config.server.state_dir = dir.path().join("state");
    config.logging.access = rampart_config::ops::LogTarget::Off;
    Edge::build(config, "reload.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// Clients hammer the edge (keep-alive and fresh connections, proxied and answered
/// routes) while it reloads twenty times: every request gets a 200, and requests after
/// the last reload see its config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing_and_new_requests_see_the_new_config() {
    let up = Upstream::start("app").await;
    let dir = TempDir::new("reload");
    let edge = start_in(
        TempDir::new("reload-edge"),
        &respond_toml("127.0.0.1:0", "v0", &up.authority()),
    )
    .await;
    let addr = edge.http();
    let live = edge.running.as_ref().unwrap().live.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (stop, ok) = (stop.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut conn = client::Conn::plain(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let path = if i % 2 == 0 { "/api/x" } else { "/" };
                // Odd tasks also open a fresh connection for every request.
                let r = if i >= 2 {
                    Ok(client::plain(addr, get("x", path)).await)
                } else {
                    conn.send(get("x", path)).await
                };
                match r {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("{path}: {}", r.status)),
                    Err(e) => failures.push(format!("{path}: {e}")),
                }
            }
            failures
        }));
    }
    for n in 1..=20 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let next = build(
            &dir,
            &respond_toml("127.0.0.1:0", &format!("v{n}"), &up.authority()),
        );
        let done = live.reload(next).await.unwrap();
        assert!(done.rebound.is_empty(), "{done:?}");
        assert_eq!(done.pools_kept, vec!["app".to_owned()]);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let failures = t.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(ok.load(Ordering::Relaxed) > 100);
    let r = client::plain(addr, get("x", "/")).await;
    assert_eq!(r.text(), "v20");
    assert_eq!(live.process.reloads.ok.load(Ordering::Relaxed), 20);
}

/// A changed listener address is bound before the swap and the old one stops accepting;
/// an address already in use refuses the whole reload and the old config keeps serving.
#[tokio::test]
async fn listener_moves_only_when_its_address_changes_and_a_busy_port_refuses_the_reload() {
    let up = Upstream::start("app").await;
    let dir = TempDir::new("rebind");
    let edge = start_in(
        TempDir::new("rebind-edge"),
        &respond_toml("127.0.0.1:0", "old", &up.authority()),
    )
    .await;
    let live = edge.running.as_ref().unwrap().live.clone();
    let old_addr = edge.http();

    // Busy port: refused, nothing changes.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let err = live
        .reload(build(
            &dir,
            &respond_toml(&busy_addr.to_string(), "new", &up.authority()),
        ))
        .await
        .unwrap_err();
    assert!(err.contains("server.http"), "{err}");
    assert_eq!(client::plain(old_addr, get("x", "/")).await.text(), "old");
    assert_eq!(live.process.reloads.failed.load(Ordering::Relaxed), 1);
    drop(busy);

    // A free port: the listener moves.
    let free = SocketAddr::from(([127, 0, 0, 1], rampart_test_support::free_port()));
    let done = live
        .reload(build(
            &dir,
            &respond_toml(&free.to_string(), "moved", &up.authority()),
        ))
        .await
        .unwrap();
    assert_eq!(done.rebound, vec!["server.http"]);
    assert_eq!(live.addrs().0, Some(free));
    assert_eq!(client::plain(free, get("x", "/")).await.text(), "moved");
    let refused = rampart_test_support::eventually(Duration::from_secs(3), || {
        std::net::TcpStream::connect_timeout(&old_addr, Duration::from_millis(200))
            .is_err()
            .then_some(())
    })
    .await;
    assert!(refused.is_some(), "old listener still accepts");
}

/// The binary reloads on SIGHUP; a broken file is refused with its key named, the old
/// config keeps serving, and a later good file is taken.
#[test]
fn sighup_reloads_the_file_and_a_broken_file_keeps_the_old_config() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start("app"));
    let dir = TempDir::new("sighup");
    let cfg = dir.write(
        "rampart.toml",
        respond_toml("127.0.0.1:0", "first", &up.authority()),
    );
    let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let addr = p.http.unwrap();
    let body =
        |rt: &tokio::runtime::Runtime| rt.block_on(client::plain(addr, get("x", "/"))).text();
    assert_eq!(body(&rt), "first");
    let hup = |p: &crate::harness::Proc| {
        assert!(bin_kill("-HUP", p.child.id()));
    };

    std::fs::write(
        &cfg,
        respond_toml("127.0.0.1:0", "second", &up.authority()).replace(
            "[[routes]]\nname = \"api\"",
            "[[routes]]\nname = \"api\"\nbody_limt = \"1MB\"",
        ),
    )
    .unwrap();
    hup(&p);
    let line = p
        .wait_for_line("config reload refused", Duration::from_secs(10))
        .expect("no refusal logged");
    assert!(line.contains("body_limt"), "{line}");
    assert_eq!(body(&rt), "first");

    std::fs::write(&cfg, respond_toml("127.0.0.1:0", "second", &up.authority())).unwrap();
    hup(&p);
    p.wait_for_line("config reloaded", Duration::from_secs(10))
        .expect("no reload logged");
    assert_eq!(body(&rt), "second");
}

fn bin_kill(sig: &str, pid: u32) -> bool {
    std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success()
}

/// `server.watch_config`: editing the file reloads it, a broken edit is refused and the
/// old config keeps serving.
#[test]
fn watched_config_file_reloads_on_change() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start("app"));
    let dir = TempDir::new("watch");
    let toml = |body: &str| {
        respond_toml("127.0.0.1:0", body, &up.authority())
            .replace("[server]\n", "[server]\nwatch_config = true\n")
    };
    let cfg = dir.write("rampart.toml", toml("one"));
    let mut p = serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let addr = p.http.unwrap();
    let body = || rt.block_on(client::plain(addr, get("x", "/"))).text();
    assert_eq!(body(), "one");
    std::fs::write(&cfg, toml("two") + "\n[bogus]\n").unwrap();
    p.wait_for_line("config reload refused", Duration::from_secs(10))
        .expect("broken edit not refused");
    assert_eq!(body(), "one");
    std::fs::write(&cfg, toml("three")).unwrap();
    p.wait_for_line("config reloaded", Duration::from_secs(10))
        .expect("edit not picked up");
    assert_eq!(body(), "three");
}

/// A reload loads certificates again (new handshakes get the new one) and leaves open
/// connections alone: a TLS keep-alive connection made before keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_a_renewed_certificate_and_keeps_open_connections() {
    use rampart_test_support::client::{tls_config, tls_connect, Conn};
    use rampart_test_support::pki::Pki;
    let pki = Pki::new();
    let dir = TempDir::new("certreload");
    let old = pki.leaf("old", &["a.test"]);
    let (cert, key) = (dir.path().join("site.crt"), dir.path().join("site.key"));
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let toml = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[routes]]\nrespond = {{ body = \"hi\" }}\n",
        cert.display(),
        key.display()
    );
    let edge = start_in(TempDir::new("certreload-edge"), &toml).await;
    let addr = edge.https();
    let cfg = tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]);
    let mut before = Conn::tls(addr, cfg.clone(), "a.test").await;
    assert_eq!(before.send(get("a.test", "/")).await.unwrap().text(), "hi");
    assert!(tls_connect(addr, cfg.clone(), "b.test").await.is_err());

    let renewed = pki.leaf("new", &["a.test", "b.test"]);
    std::fs::copy(&renewed.cert, &cert).unwrap();
    std::fs::copy(&renewed.key, &key).unwrap();
    let live = edge.running.as_ref().unwrap().live.clone();
    live.reload(build(&dir, &toml)).await.unwrap();

    assert!(
        tls_connect(addr, cfg.clone(), "b.test").await.is_ok(),
        "new certificate not served"
    );
    assert_eq!(
        before.send(get("a.test", "/")).await.unwrap().text(),
        "hi",
        "a connection from before the reload was closed"
    );
}
