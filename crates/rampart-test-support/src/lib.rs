//! Test helpers for rampart: real upstream HTTP servers on ephemeral loopback ports that
//! record what they received, a throw-away PKI, HTTP/1.1 and HTTP/2 clients over rustls,
//! temporary directories, and deadline polling. Nothing here mocks the network.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod pki;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rampart-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns `Some` or `within` passes.
pub async fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An address where nothing listens and nothing ever will while this test process runs,
/// for "dead upstream" tests: the port stays bound (not listening, without
/// `SO_REUSEADDR`) to a socket held until the process exits, so a connect is refused and
/// no other test's listener, edge or outgoing connection can be given the port. A port
/// only released (as [`free_port`]) was taken by parallel tests' edges in CI: requests
/// meant to be refused reached another edge, and round-robin counts went off by one.
pub fn dead_addr() -> std::net::SocketAddr {
    static HELD: std::sync::Mutex<Vec<socket2::Socket>> = std::sync::Mutex::new(Vec::new());
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&any.into()).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    addr
}

/// A port free now, for a process or listener that binds it later (pebble, Redis,
/// PostgreSQL, a listener a reload moves to). Racy by nature (another test may be given
/// it in between); where nothing must answer, use [`dead_addr`].
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Raises this test process's soft open-file limit to its hard one (once): the e2e suite
/// runs many edges, upstreams and clients at once, and a CI runner's soft limit of 1024
/// is below what they hold together at peak.
pub fn raise_open_files() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_address_refuses_and_is_never_given_to_another_listener() {
        let dead = dead_addr();
        let refused = std::net::TcpStream::connect_timeout(&dead, Duration::from_secs(2));
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        // A listener asking for that very port (std sets SO_REUSEADDR, as tokio's and
        // rampart's do) does not get it.
        assert!(std::net::TcpListener::bind(dead).is_err());
        // Nor does one asking for any port, however many ask.
        let many: Vec<_> = (0..200)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        assert!(many.iter().all(|l| l.local_addr().unwrap() != dead));
    }
}
