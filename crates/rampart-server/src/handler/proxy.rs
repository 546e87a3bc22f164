//! The reverse proxy: upstream pools, their keep-alive connections, balancing, passive
//! health, retries, header rewriting and WebSocket tunnels.
//!
//! # How a request is forwarded
//! 1. A server is picked (round robin or least in-flight), skipping servers that failed
//!    `max_fails` times within `fail_timeout` (they stay out for `fail_timeout`). If every
//!    server is out, all are tried anyway (Envoy's "panic mode"): a guess beats a certain 502.
//! 2. An idle keep-alive connection to it is reused (most recently used first) or a new one
//!    is opened within `connect_timeout`.
//! 3. A connection that cannot be made counts as a failure and the request goes to one other
//!    server (`retry = true`, the default). Nothing has been sent then, so this is safe for
//!    every method. A pooled connection that the upstream closed while idle is its
//!    keep-alive ending, never a failure: hyper hands back a request it could not write
//!    (`try_send_request`) and it goes on the next pooled or a fresh connection; rampart's
//!    own client (GET and HEAD only) also retries a request that was written and got no
//!    byte back. Any other request that was (partly) written is never retried. An
//!    upstream's `Keep-Alive: timeout=N` is learnt, so its connections leave the pool first.
//! 4. A failure of the client's own request body (malformed chunked framing, over the
//!    route's limit, a stall past `response_timeout`) is the client's: 400/413/408, and
//!    nothing is counted against the upstream.
//! 5. The response head must arrive within `response_timeout` (504 otherwise). Bodies stream
//!    in both directions without being buffered whole.
//! 6. When the response body has been read to its end the connection returns to the pool
//!    (the body wrapper does it, so no task is spawned per request). A body dropped before
//!    its end takes its connection with it, since the rest of it is still on the wire.
//!
//! # Security
//! Hop-by-hop headers (RFC 9110 §7.6.1 and any named in `Connection`) are removed both ways.
//! `X-Forwarded-*` values sent by a client are believed only when the peer is one of
//! `trusted_proxies`; otherwise they are replaced.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rampart_config::runtime::{Balance, Upstream, UpstreamProtocol};
use tokio::net::TcpStream;

mod h2;
mod h2conn;
pub mod health;
mod origin;
mod resolve;
mod tls;
#[cfg(any(test, feature = "fuzzing"))]
pub use origin::fuzz_response;
pub use origin::OriginBody;

use crate::wire::body::{Body, BodyWatch};

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No connection could be made to any server tried.
    #[error("no upstream server could be reached")]
    Connect,
    /// The response head did not arrive within `response_timeout`.
    #[error("upstream did not answer in time")]
    Timeout,
    /// The connection failed after the request was sent.
    #[error("upstream connection failed")]
    Upstream(#[source] hyper::Error),
    /// The same, on rampart's own clients (HTTP/1.1 and HTTP/2).
    #[error("upstream connection failed")]
    Io(#[source] std::io::Error),
    /// The client's request body failed (malformed chunked framing, over the route's
    /// limit, the client gone): the client's fault, never counted against the upstream.
    #[error("client request body failed")]
    ClientBody,
    /// The client's request body stalled past `response_timeout`: the client's fault too.
    #[error("client request body too slow")]
    ClientTimeout,
    /// The upstream switched protocols to something other than the WebSocket asked for.
    #[error("upstream switched protocols unasked")]
    Protocol,
    /// A gRPC call's own deadline (`grpc-timeout`) passed before the answer: 504, and not
    /// held against the server.
    #[error("the call's deadline passed")]
    Deadline,
}

impl ProxyError {
    /// The answer the client gets: 504 for an upstream too slow, 400 `bad_body` / 408 when
    /// the client's own body failed (a body over the route's limit is turned into 413 by
    /// the spine, which holds the limit's flag), 502 otherwise.
    pub fn refusal(&self) -> crate::wire::refusal::Refusal {
        use crate::wire::refusal::Refusal;
        match self {
            ProxyError::Timeout | ProxyError::Deadline => Refusal::GatewayTimeout,
            ProxyError::ClientBody => Refusal::BadRequest("bad_body"),
            ProxyError::ClientTimeout => Refusal::RequestTimeout,
            ProxyError::Connect
            | ProxyError::Upstream(_)
            | ProxyError::Io(_)
            | ProxyError::Protocol => Refusal::BadGateway,
        }
    }
}

fn clock() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    // Offset by one so that 0 can mean "never".
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// An upstream pool.
#[derive(Debug)]
pub struct Pool {
    /// The pool's config name.
    pub name: String,
    /// The name as a metric label.
    pub(crate) label: Arc<str>,
    servers: Vec<Arc<Server>>,
    balance: Balance,
    next: AtomicUsize,
    max_fails: u32,
    fail_timeout_ms: u64,
    connect_timeout: Duration,
    dns_ttl_ms: u64,
    response_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    retry: bool,
    /// GET and HEAD go through rampart's own client (`server.h1_fast_path`).
    own_client: bool,
    /// TLS to the servers.
    tls: Option<tls::Client>,
    /// An `auto` pool whose server chose HTTP/1.1 by ALPN: it speaks HTTP/1.1 from then on.
    alpn_h1: std::sync::atomic::AtomicBool,
    /// The config it was built from: a reload keeps the pool when this is unchanged.
    pub(crate) config: Upstream,
    /// Passive mark-downs not yet reported ([`Pool::take_downs`]).
    downs: Mutex<Vec<String>>,
    /// Servers whose certificate failed verification, not yet audited
    /// ([`Pool::take_tls_failures`]).
    tls_events: Mutex<Vec<String>>,
}

/// One upstream server and its connections.
#[derive(Debug)]
pub struct Server {
    /// `host:port`.
    pub authority: String,
    /// Its addresses: looked up once per `dns_ttl` when `authority` names a host.
    resolver: resolve::Resolver,
    /// The authority as a metric label.
    pub(crate) label: Arc<str>,
    inflight: AtomicUsize,
    down_until: AtomicU64,
    /// Failed exchanges (connect, timeout, broken), for metrics.
    errors: AtomicU64,
    /// TLS handshakes that failed on the server's certificate, for metrics.
    tls_failures: AtomicU64,
    /// When the last certificate failure was audited (ms of [`clock`]), so a broken
    /// server makes one audit line a second, not one per request.
    tls_audited: AtomicU64,
    /// What the last TLS handshakes with it showed (TLS pools).
    pub(crate) tls_seen: Mutex<tls::Seen>,
    /// Taken out by the active health check.
    pub(crate) check_down: std::sync::atomic::AtomicBool,
    /// Balancing weight; 0 drains the server (no new requests, in-flight ones finish).
    weight: std::sync::atomic::AtomicU32,
    /// Its series of `rampart_upstream_request_duration_seconds`, found once.
    pub(crate) latency: OnceLock<prometheus_client::metrics::histogram::Histogram>,
    fails: Mutex<FailWindow>,
    idle: Mutex<Vec<IdleConn>>,
    /// Idle connections of rampart's own client (GET and HEAD).
    raw_idle: Mutex<Vec<origin::RawConn>>,
    /// The HTTP/2 connections (`protocol = "h2"` / `"auto"`).
    h2: Mutex<Vec<h2::Conn>>,
    /// An HTTP/2 connection to it is being opened (by one request; the others wait).
    h2_connecting: std::sync::atomic::AtomicBool,
    /// Wakes every request that waited for that connect, all at once.
    h2_connected: tokio::sync::Notify,
}

impl Server {
    /// Failed exchanges so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed on its certificate so far.
    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    /// For a server named by host: the addresses in use, the last lookup's error when it
    /// failed, and whether a lookup is under way. `None` for an IP literal.
    pub fn dns_state(&self) -> Option<(Vec<std::net::SocketAddr>, Option<String>, bool)> {
        self.resolver.state()
    }

    /// Name lookups (that gave addresses, that failed) so far; `None` for an IP literal.
    pub fn dns_lookups(&self) -> Option<(u64, u64)> {
        self.resolver.is_name().then(|| self.resolver.counts())
    }

    /// Balancing weight (0: draining).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Sets the balancing weight; 0 drains.
    pub fn set_weight(&self, w: u32) {
        self.weight.store(w, Ordering::Relaxed);
    }

    /// Whether the active health check has it out.
    pub fn check_failed(&self) -> bool {
        self.check_down.load(Ordering::Relaxed)
    }

    /// Whether passive health (failures) has it out now.
    pub fn passive_down(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) > clock()
    }

    /// Whether it takes new requests at `now` (a [`clock`] reading): not failed actively or
    /// passively, not draining.
    fn available(&self, now: u64) -> bool {
        self.down_until.load(Ordering::Relaxed) <= now
            && !self.check_down.load(Ordering::Relaxed)
            && self.weight.load(Ordering::Relaxed) > 0
    }
}

#[derive(Debug, Default)]
struct FailWindow {
    count: u32,
    since: u64,
}

#[derive(Debug)]
struct IdleConn {
    sender: SendRequest<Body>,
    since: Instant,
    /// The upstream's keep-alive, less a margin ([`keep_alive_timeout`]).
    keep: Option<Duration>,
}

impl IdleConn {
    fn fresh(&self, idle_timeout: Duration) -> bool {
        !self.sender.is_closed()
            && self.since.elapsed() < self.keep.map_or(idle_timeout, |k| k.min(idle_timeout))
    }
}

/// Counts a request in flight on a server until dropped (for `least_conn`).
#[derive(Debug)]
struct Inflight(Arc<Server>);

impl Inflight {
    fn new(s: &Arc<Server>) -> Self {
        s.inflight.fetch_add(1, Ordering::Relaxed);
        Inflight(s.clone())
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// A pool from validated config; `own_client` sends GET and HEAD through rampart's own
    /// HTTP/1.1 client rather than hyper's (HTTP/1.1 pools, plain or TLS).
    ///
    /// # Errors
    /// The pool's TLS files cannot be read or used (named).
    pub fn new(u: &Upstream, own_client: bool) -> Result<Self, String> {
        let tls = u
            .tls
            .as_ref()
            .map(|t| tls::Client::new(t, u.protocol))
            .transpose()?;
        let own_client = own_client && u.protocol == UpstreamProtocol::Http1;
        Ok(Self {
            name: u.name.clone(),
            label: Arc::from(u.name.as_str()),
            servers: u
                .servers
                .iter()
                .map(|a| {
                    Arc::new(Server {
                        authority: a.clone(),
                        resolver: resolve::Resolver::new(a),
                        label: Arc::from(a.as_str()),
                        inflight: AtomicUsize::new(0),
                        down_until: AtomicU64::new(0),
                        errors: AtomicU64::new(0),
                        tls_failures: AtomicU64::new(0),
                        tls_audited: AtomicU64::new(0),
                        tls_seen: Mutex::default(),
                        check_down: std::sync::atomic::AtomicBool::new(false),
                        weight: std::sync::atomic::AtomicU32::new(1),
                        latency: OnceLock::new(),
                        fails: Mutex::new(FailWindow::default()),
                        idle: Mutex::new(Vec::new()),
                        raw_idle: Mutex::new(Vec::new()),
                        h2: Mutex::new(Vec::new()),
                        h2_connecting: std::sync::atomic::AtomicBool::new(false),
                        h2_connected: tokio::sync::Notify::new(),
                    })
                })
                .collect(),
            balance: u.balance,
            next: AtomicUsize::new(0),
            max_fails: u.max_fails,
            fail_timeout_ms: u.fail_timeout.as_millis() as u64,
            connect_timeout: u.connect_timeout,
            dns_ttl_ms: u.dns_ttl.as_millis() as u64,
            response_timeout: u.response_timeout,
            idle_timeout: u.idle_timeout,
            max_idle: u.max_idle,
            retry: u.retry,
            own_client,
            tls,
            alpn_h1: std::sync::atomic::AtomicBool::new(false),
            config: u.clone(),
            downs: Mutex::new(Vec::new()),
            tls_events: Mutex::new(Vec::new()),
        })
    }

    /// Notes that this `auto` pool's servers speak HTTP/1.1.
    fn learn_h1(&self) {
        self.alpn_h1.store(true, Ordering::Relaxed);
    }

    /// Whether a reload may keep this pool for `other`: same config, same client, and the
    /// same TLS files' contents.
    pub(crate) fn same_as(&self, other: &Pool) -> bool {
        self.name == other.name
            && self.config == other.config
            && self.own_client == other.own_client
            && self.tls.as_ref().map(|t| t.digest) == other.tls.as_ref().map(|t| t.digest)
    }

    /// The servers, for status reports.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// Drops idle connections older than `idle_timeout` or closed by the upstream.
    pub fn reap_idle(&self) {
        for s in &self.servers {
            if let Ok(mut idle) = s.idle.lock() {
                idle.retain(|c| c.fresh(self.idle_timeout));
            }
            if let Ok(mut idle) = s.raw_idle.lock() {
                idle.retain(|c| c.fresh(self.idle_timeout));
            }
        }
    }

    /// Whether `s` takes new requests: not failed (actively or passively), not draining.
    pub fn is_up(&self, s: &Server) -> bool {
        s.available(clock())
    }

    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = clock();
        let order = (0..n)
            .map(|i| (start.wrapping_add(i)) % n)
            .filter(|i| !tried.contains(i));
        let up = |i: &usize| self.servers[*i].available(now);
        // Every server out: a draining one is still never picked; a failed one may be
        // (Envoy's panic mode: a guess beats a certain 502).
        let fallback = |i: &usize| self.servers[*i].weight.load(Ordering::Relaxed) > 0;
        match self.balance {
            Balance::RoundRobin => {
                let weighted = self
                    .servers
                    .iter()
                    .any(|s| s.weight.load(Ordering::Relaxed) > 1);
                if weighted {
                    if let Some(i) = self.pick_weighted(start, tried, &up) {
                        return Some(i);
                    }
                }
                order
                    .clone()
                    .find(up)
                    .or_else(|| order.clone().find(fallback))
            }
            Balance::LeastConn => {
                // Fewest in flight per unit of weight.
                let load = |i: &usize| {
                    let s = &self.servers[*i];
                    s.inflight.load(Ordering::Relaxed) * 1000
                        / s.weight.load(Ordering::Relaxed).max(1) as usize
                };
                order
                    .clone()
                    .filter(up)
                    .min_by_key(load)
                    .or_else(|| order.clone().filter(fallback).min_by_key(load))
            }
        }
    }

    /// Weighted round robin: the counter walks a cycle of total-weight slots.
    fn pick_weighted(
        &self,
        start: usize,
        tried: &[usize],
        up: &dyn Fn(&usize) -> bool,
    ) -> Option<usize> {
        let total: usize = (0..self.servers.len())
            .filter(|i| up(i) && !tried.contains(i))
            .map(|i| self.servers[i].weight.load(Ordering::Relaxed) as usize)
            .sum();
        if total == 0 {
            return None;
        }
        let mut slot = start % total;
        for i in 0..self.servers.len() {
            if !up(&i) || tried.contains(&i) {
                continue;
            }
            let w = self.servers[i].weight.load(Ordering::Relaxed) as usize;
            if slot < w {
                return Some(i);
            }
            slot -= w;
        }
        None
    }

    /// The servers one request may try: a second one after a failed connect when
    /// `retry` is on.
    pub(super) fn attempts(&self) -> Attempts {
        Attempts {
            tried: Vec::new(),
            max: if self.retry {
                self.servers.len().min(2)
            } else {
                1
            },
        }
    }

    /// The next server to try, and an idle pooled connection to it (`reused`) when there
    /// is one; else the server, for [`Pool::fresh`]. Synchronous, so the common case (a
    /// pooled connection) builds no connect future: a nested one costs ~260 instructions
    /// of moves per request (callgrind).
    pub(super) fn idle<C>(
        &self,
        a: &Attempts,
        checkout: impl Fn(&Server) -> Option<C>,
    ) -> Result<Picked<C>, ProxyError> {
        let idx = self.pick(&a.tried).ok_or(ProxyError::Connect)?;
        let server = self.servers[idx].clone();
        Ok(match checkout(&server) {
            Some(c) => Picked::Idle((idx, server, c, true)),
            None => Picked::Miss(idx, server),
        })
    }

    /// A fresh connection to the server [`Pool::idle`] picked, else to the next one: a
    /// failed connect is logged and counted against its server, and the next server (and
    /// its idle connections) tried while `a` allows. With `idle`, the one pick loop of both
    /// upstream clients (hyper's and rampart's own), whose connections are `C`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fresh<C, Fut>(
        &self,
        a: &mut Attempts,
        (mut idx, mut server): (usize, Arc<Server>),
        checkout: impl Fn(&Server) -> Option<C>,
        connect: impl Fn(Arc<Server>) -> Fut,
        request_id: &str,
        path: &str,
    ) -> Result<Conn<C>, ProxyError>
    where
        Fut: std::future::Future<Output = std::io::Result<C>>,
    {
        loop {
            match connect(server.clone()).await {
                Ok(c) => return Ok((idx, server, c, false)),
                Err(e) => {
                    tracing::warn!(upstream = %self.name, server = %server.authority, request_id, path, error = %e, "upstream connect failed");
                    self.next_server(&server, idx, a)?;
                }
            }
            match self.idle(a, &checkout)? {
                Picked::Idle(found) => return Ok(found),
                Picked::Miss(i, s) => (idx, server) = (i, s),
            }
        }
    }

    /// Counts a failure on server `idx` and marks it tried: `Ok` when another server may
    /// still be tried (`a`), else the error to give up with.
    pub(super) fn next_server(
        &self,
        server: &Server,
        idx: usize,
        a: &mut Attempts,
    ) -> Result<(), ProxyError> {
        self.record_failure(server);
        a.tried.push(idx);
        if a.tried.len() < a.max {
            Ok(())
        } else {
            Err(ProxyError::Connect)
        }
    }

    /// Logs and counts a response timeout.
    fn timed_out(&self, server: &Server, request_id: &str) -> ProxyError {
        tracing::warn!(upstream = %self.name, server = %server.authority, request_id, timeout_ms = self.response_timeout.as_millis() as u64, "upstream response timed out");
        self.record_failure(server);
        ProxyError::Timeout
    }

    fn record_failure(&self, s: &Server) {
        s.errors.fetch_add(1, Ordering::Relaxed);
        if self.max_fails == 0 {
            return;
        }
        let now = clock();
        let Ok(mut w) = s.fails.lock() else { return };
        if now.saturating_sub(w.since) > self.fail_timeout_ms {
            *w = FailWindow {
                count: 0,
                since: now,
            };
        }
        w.count += 1;
        // A server already out is not marked again: one transition, one event, however
        // many requests in flight fail with it.
        if w.count >= self.max_fails && s.down_until.load(Ordering::Relaxed) <= now {
            s.down_until
                .store(now + self.fail_timeout_ms, Ordering::Relaxed);
            *w = FailWindow::default();
            tracing::warn!(upstream = %self.name, server = %s.authority, for_ms = self.fail_timeout_ms, "upstream server marked down");
            if let Ok(mut downs) = self.downs.lock() {
                downs.push(format!(
                    "{} {}: {} failures within {} ms; out for {} ms",
                    self.name,
                    s.authority,
                    self.max_fails,
                    self.fail_timeout_ms,
                    self.fail_timeout_ms
                ));
            }
        }
    }

    /// Servers passive health took out since the last call, as audit reasons: the request
    /// path reports them (`upstream.down`) after a failed forward.
    pub fn take_downs(&self) -> Vec<String> {
        self.downs
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    /// Certificate verification failures since the last call, as audit reasons
    /// (`upstream.tls_failed`).
    pub fn take_tls_failures(&self) -> Vec<String> {
        self.tls_events
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    fn checkout(&self, s: &Server) -> Option<SendRequest<Body>> {
        let mut idle = s.idle.lock().ok()?;
        while let Some(c) = idle.pop() {
            // A connection returned at the end of a body may not have signalled readiness
            // yet; `forward` waits for that. A closed or expired one is dropped here.
            if c.fresh(self.idle_timeout) {
                return Some(c.sender);
            }
        }
        None
    }

    /// A TCP connection to `s` within `connect_timeout` (its name looked up as
    /// [`resolve`] says, each address tried in turn), Nagle off.
    pub(crate) async fn tcp(&self, s: &Server) -> std::io::Result<TcpStream> {
        let stream = tokio::time::timeout(self.connect_timeout, self.tcp_to(s))
            .await
            .map_err(|_| {
                // A server that moved often shows as a connect that never completes.
                s.resolver.expire();
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn tcp_to(&self, s: &Server) -> std::io::Result<TcpStream> {
        let addrs = s.resolver.addrs(clock(), self.dns_ttl_ms).await?;
        let mut last = None;
        for a in addrs.iter() {
            match TcpStream::connect(a).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        s.resolver.forget(&addrs);
        Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
    }

    /// A fresh hyper HTTP/1.1 connection to `s` (upgrades allowed, for WebSockets), over
    /// TLS when the pool has it.
    async fn connect(&self, s: &Server) -> std::io::Result<SendRequest<Body>> {
        let stream = self.tcp(s).await?;
        if let Some(tls) = &self.tls {
            let stream = self.handshake(tls, stream, s, true).await?;
            return handshake_h1(stream).await;
        }
        handshake_h1(stream).await
    }

    /// The TLS handshake with `s` within `connect_timeout`; a certificate that does not
    /// verify is counted on the server and audited (at most once a second per server).
    async fn handshake(
        &self,
        tls: &tls::Client,
        stream: TcpStream,
        s: &Server,
        h1: bool,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let connect = tls.connect(stream, &s.authority, h1);
        let done = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })?;
        if let Ok(mut seen) = s.tls_seen.lock() {
            seen.record(
                &done,
                !h1 || self.config.protocol == UpstreamProtocol::Http1,
            );
        }
        done.inspect_err(|e| {
            if let Some(why) = tls::verify_failure(e) {
                s.tls_failures.fetch_add(1, Ordering::Relaxed);
                let now = clock();
                let last = s.tls_audited.load(Ordering::Relaxed);
                // 0: never audited ([`clock`] starts at 1).
                if (last == 0 || now.saturating_sub(last) >= 1000)
                    && s.tls_audited
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    if let Ok(mut events) = self.tls_events.lock() {
                        events.push(format!("{} {}: {why}", self.name, s.authority));
                    }
                }
            }
        })
    }

    /// Sends `req` (already rewritten by [`prepare_request`]) with the forwarding headers
    /// `fwd` to a server of this pool.
    ///
    /// # Errors
    /// [`ProxyError`] when no answer could be had; the caller maps it to 502/504.
    pub async fn forward(
        self: &Arc<Self>,
        req: Request<Body>,
        fwd: Forwarding,
    ) -> Result<(Response<Body>, Arc<Server>), ProxyError> {
        if self.own_client && origin::eligible(&req) {
            return self.forward_raw(req, &fwd).await;
        }
        let (mut req, fwd) = if self.config.protocol != UpstreamProtocol::Http1
            && !self.alpn_h1.load(Ordering::Relaxed)
            && !is_upgrade(req.headers())
        {
            // Boxed: its 2.6 KiB state would otherwise widen every request's state, the
            // HTTP/1.1 ones' too (held while they wait on their upstream).
            match Box::pin(self.forward_h2(req, fwd)).await? {
                Ok(done) => return Ok(done),
                Err(back) => back,
            }
        } else {
            (req, fwd)
        };
        // For log lines of this request (a reference-counted clone).
        let rid = fwd.request_id.clone();
        let rid = rid.to_str().unwrap_or_default();
        fwd.apply(req.headers_mut());
        let client_upgrade = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        // A request body is watched: when it fails or stalls, the client is to blame.
        let watch = (!http_body::Body::is_end_stream(req.body())).then(|| {
            let w = Arc::new(BodyWatch::default());
            let inner = std::mem::take(req.body_mut());
            *req.body_mut() = Body::Watched(Box::new(inner), w.clone());
            w
        });
        let mut attempts = self.attempts();
        loop {
            let (idx, server, mut sender, reused) = match self
                .idle(&attempts, |s| self.checkout(s))?
            {
                Picked::Idle(found) => found,
                Picked::Miss(idx, server) => {
                    // Boxed (as every connect is): a TLS handshake's state is kilobytes,
                    // and an unboxed one would be part of every request's future, copied
                    // whole where the request's future is boxed, connecting or not.
                    let connect = |s: Arc<Server>| async move { Box::pin(self.connect(&s)).await };
                    let path = req.uri().path();
                    Box::pin(self.fresh(
                        &mut attempts,
                        (idx, server),
                        |s| self.checkout(s),
                        connect,
                        rid,
                        path,
                    ))
                    .await?
                }
            };
            if reused && !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            let inflight = Inflight::new(&server);
            let sent =
                tokio::time::timeout(self.response_timeout, sender.try_send_request(req)).await;
            let mut resp = match sent {
                Ok(Ok(resp)) => resp,
                Ok(Err(mut e)) => {
                    if let Some(unsent) = e.take_message() {
                        // Nothing reached the upstream. A pooled connection the upstream
                        // closed while idle is its keep-alive ending, not a failure: the
                        // next idle one, or a fresh one, is tried (each pooled connection
                        // at most once). A fresh connection that fails so is a failure.
                        req = unsent;
                        if reused {
                            continue;
                        }
                        self.next_server(&server, idx, &mut attempts)?;
                        continue;
                    }
                    let err = e.into_error();
                    if watch.as_ref().is_some_and(|w| w.failed()) || err.is_user() {
                        // The request body (the client's) failed, not the upstream.
                        return Err(ProxyError::ClientBody);
                    }
                    tracing::warn!(upstream = %self.name, server = %server.authority, request_id = rid, error = %err, "upstream request failed");
                    self.record_failure(&server);
                    return Err(ProxyError::Upstream(err));
                }
                Err(_) if watch.as_ref().is_some_and(|w| !w.done()) => {
                    // The upstream may rightly wait for the whole body before answering.
                    return Err(ProxyError::ClientTimeout);
                }
                Err(_) => return Err(self.timed_out(&server, rid)),
            };
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let websocket = resp
                    .headers()
                    .get(header::UPGRADE)
                    .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
                if client_upgrade.is_none() || !websocket {
                    tracing::warn!(upstream = %self.name, server = %server.authority, request_id = rid, "upstream switched protocols to something not asked for");
                    return Err(ProxyError::Protocol);
                }
                if let Some(client_upgrade) = client_upgrade {
                    let upstream_upgrade = hyper::upgrade::on(&mut resp);
                    tokio::spawn(async move {
                        let _inflight = inflight;
                        if let (Ok(c), Ok(u)) = (client_upgrade.await, upstream_upgrade.await) {
                            let _ = tokio::io::copy_bidirectional(
                                &mut TokioIo::new(c),
                                &mut TokioIo::new(u),
                            )
                            .await;
                        }
                    });
                }
                strip_hop_by_hop(resp.headers_mut(), true);
                return Ok((resp.map(Body::from), server));
            }
            let keep = resp
                .headers()
                .get(&KEEP_ALIVE)
                .and_then(|v| keep_alive_timeout(v.as_bytes()));
            strip_hop_by_hop(resp.headers_mut(), false);
            let back = PoolReturn {
                sender,
                server: server.clone(),
                max_idle: self.max_idle,
                keep,
                _inflight: inflight,
            };
            let resp = resp.map(|inner| {
                Body::stream(UpstreamBody {
                    inner,
                    back: Some(back),
                })
            });
            return Ok((resp, server));
        }
    }
}

/// hyper's HTTP/1.1 client on `io` (upgrades allowed), its connection driven by a task.
async fn handshake_h1<T>(io: T) -> std::io::Result<SendRequest<Body>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// A server and a connection to it: (index, server, connection, whether it was pooled).
pub(super) type Conn<C> = (usize, Arc<Server>, C, bool);

/// What [`Pool::idle`] found.
pub(super) enum Picked<C> {
    /// A pooled connection.
    Idle(Conn<C>),
    /// None: the server to connect to.
    Miss(usize, Arc<Server>),
}

/// The servers one request has tried, and how many it may.
#[derive(Debug)]
pub(super) struct Attempts {
    tried: Vec<usize>,
    max: usize,
}

/// An upstream response body that hands its connection back to the pool once read to its
/// end, and holds the server's in-flight count until then.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: hyper::body::Incoming,
    back: Option<PoolReturn>,
}

struct PoolReturn {
    sender: SendRequest<Body>,
    server: Arc<Server>,
    max_idle: usize,
    keep: Option<Duration>,
    _inflight: Inflight,
}

impl std::fmt::Debug for PoolReturn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolReturn")
            .field("server", &self.server.authority)
            .finish_non_exhaustive()
    }
}

impl PoolReturn {
    fn finish(self) {
        if let Ok(mut idle) = self.server.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(IdleConn {
                    sender: self.sender,
                    since: Instant::now(),
                    keep: self.keep,
                });
            }
        }
    }
}

impl UpstreamBody {
    fn finish(&mut self) {
        if let Some(b) = self.back.take() {
            b.finish();
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = crate::wire::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            std::task::Poll::Ready(None) => self.finish(),
            std::task::Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            std::task::Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        r.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        use http_body::Body as _;
        // An empty body (HEAD, 204, 304) may never be polled.
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}

impl Server {
    /// Whether passive health checks currently have this server out.
    pub fn is_down(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) > clock()
    }

    /// Requests in flight.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }
}

/// `Keep-Alive`.
pub(crate) const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// An upstream's `Keep-Alive: timeout=N` as how long rampart keeps the connection idle:
/// one second less than N (at least half of it), so the pool drops it before the upstream
/// closes it under a request.
pub(crate) fn keep_alive_timeout(v: &[u8]) -> Option<Duration> {
    let secs = v.split(|b| *b == b',').find_map(|p| {
        let p = p.trim_ascii();
        let (k, v) = p.split_at(p.iter().position(|b| *b == b'=')?);
        if !k.trim_ascii().eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        std::str::from_utf8(&v[1..])
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    })?;
    let ms = secs.saturating_mul(1000);
    Some(Duration::from_millis(ms.saturating_sub(1000).max(ms / 2)))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and `Proxy`, removed in both directions.
pub(crate) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    // Not hop-by-hop, but never forwarded either way: a request's `Proxy` becomes
    // `HTTP_PROXY` in CGI/WSGI environments (httpoxy, CVE-2016-5385).
    HeaderName::from_static("proxy"),
];

/// Whether `n` is one of [`HOP_BY_HOP`]: by length first, since every field of every
/// answer passes here and only six lengths can be one (a scan of the nine names per
/// field was ~700 instructions per proxied gRPC call).
pub(crate) fn is_hop_by_hop(n: &HeaderName) -> bool {
    match n.as_str().len() {
        2 => *n == header::TE,
        5 => *n == HOP_BY_HOP[8],
        7 => *n == header::TRAILER || *n == header::UPGRADE,
        10 => *n == header::CONNECTION || *n == KEEP_ALIVE,
        16 => *n == HOP_BY_HOP[2],
        17 => *n == header::TRANSFER_ENCODING,
        18 => *n == header::PROXY_AUTHENTICATE,
        _ => false,
    }
}

/// Whether a request asks for a WebSocket upgrade (`Upgrade: websocket` named in
/// `Connection`). No other upgrade is ever tunnelled: `Upgrade: h2c` (or anything else)
/// is stripped like any hop-by-hop header, so an upstream that would switch protocols
/// cannot open a tunnel that later requests bypass the edge's policies through.
pub fn is_upgrade(h: &HeaderMap) -> bool {
    let mut upgrades = h.get_all(header::UPGRADE).iter();
    let websocket = upgrades
        .next()
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    websocket
        && upgrades.next().is_none()
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Removes hop-by-hop headers; with `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay.
pub fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names first: hop-by-hop headers are rare, and a removal costs a
    // hash lookup each (measured: unconditional removals were ~3% of a proxied request).
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
    let upgrade = if keep_upgrade {
        h.get(header::UPGRADE).cloned()
    } else {
        None
    };
    if h.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .map(str::trim)
            // `keep-alive`, `close`, `upgrade`…: hop-by-hop names (or none) handled below;
            // skipping them avoids building (allocating) a header name per request.
            .filter(|t| {
                !t.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        if h.keys().any(|k| k == n) {
            h.remove(n);
        }
    }
    if let Some(u) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, u);
    }
}

/// What the edge knows about the client, for `X-Forwarded-*`.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The peer's IP as a header value (formatted once per connection).
    pub peer_value: HeaderValue,
    /// Whether the peer is one of `trusted_proxies`.
    pub peer_trusted: bool,
    /// The client as best known: the peer, or from a trusted proxy's `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// Whether the client reached us over TLS.
    pub tls: bool,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(
    headers: &HeaderMap,
    peer: IpAddr,
    is_trusted: impl Fn(IpAddr) -> bool,
) -> (IpAddr, bool) {
    if !is_trusted(peer) {
        return (peer, false);
    }
    let mut client = peer;
    let hops = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return (ip, true),
            Err(_) => break,
        }
    }
    (client, true)
}

/// The forwarding headers of one upstream request, decided from the client's request by
/// [`prepare_request`]. rampart's HTTP/1.1 client (GET and HEAD) writes them while
/// serializing the head, and its HTTP/2 client encodes them into the header block
/// ([`h2conn::Extra`]), both skipping the client's copies; every other path inserts them
/// into the map ([`Forwarding::apply`]). Per proxied request the map insertions were ~5 %
/// of rampart's instructions on HTTP/1.1 and ~6 % on a gRPC call (callgrind).
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// `Host` from the URI's authority, when the client sent none (HTTP/2).
    host: Option<HeaderValue>,
    /// `X-Forwarded-For`; `None` keeps the client's.
    xff: Option<HeaderValue>,
    /// `X-Forwarded-Proto`; `None` keeps a trusted proxy's.
    xfp: Option<HeaderValue>,
    /// `X-Forwarded-Host`: kept (`None`), replaced (`Some(Some)`) or removed (`Some(None)`).
    xfh: Option<Option<HeaderValue>>,
    real_ip: HeaderValue,
    request_id: HeaderValue,
    /// `traceparent`: the request's trace with rampart's span (none outside a request).
    traceparent: Option<[u8; 55]>,
    /// The client sent `TE: trailers` (gRPC does): an HTTP/2 upstream is told so too.
    te_trailers: bool,
}

impl h2conn::Extra for Forwarding {
    fn replaces(&self, n: &HeaderName) -> bool {
        Forwarding::replaces(self, n) || (self.te_trailers && *n == header::TE)
    }

    fn fields(&self, add: &mut dyn FnMut(&HeaderName, &[u8], bool)) {
        self.h2_fields(add);
    }
}

impl Forwarding {
    /// Inserts the headers into `h`.
    pub fn apply(self, h: &mut HeaderMap) {
        h.reserve(5);
        if let Some(v) = self.host {
            h.insert(header::HOST, v);
        }
        if let Some(v) = self.xff {
            h.insert(X_FORWARDED_FOR, v);
        }
        if let Some(v) = self.xfp {
            h.insert(X_FORWARDED_PROTO, v);
        }
        match self.xfh {
            Some(Some(v)) => {
                h.insert(X_FORWARDED_HOST, v);
            }
            Some(None) => {
                h.remove(&X_FORWARDED_HOST);
            }
            None => {}
        }
        h.insert(X_REAL_IP, self.real_ip);
        // Unique per request: over HTTP/2 they go as never-indexed literals, so they do not
        // churn the connection's HPACK table (each new one would evict the headers every
        // request repeats, which are then sent and decoded in full again).
        let mut id = self.request_id;
        id.set_sensitive(true);
        h.insert(crate::wire::request_id::X_REQUEST_ID, id);
        if let Some(mut v) = self
            .traceparent
            .and_then(|t| HeaderValue::from_bytes(&t).ok())
        {
            v.set_sensitive(true);
            h.insert(crate::wire::trace_context::TRACEPARENT, v);
        }
    }

    /// Whether a client header named `name` is replaced (or removed) by these.
    pub(crate) fn replaces(&self, name: &HeaderName) -> bool {
        // The length first: most names are none of the five.
        match name.as_str().len() {
            9 => *name == X_REAL_IP,
            11 => self.traceparent.is_some() && *name == crate::wire::trace_context::TRACEPARENT,
            12 => *name == crate::wire::request_id::X_REQUEST_ID,
            15 => self.xff.is_some() && *name == X_FORWARDED_FOR,
            16 => self.xfh.is_some() && *name == X_FORWARDED_HOST,
            17 => self.xfp.is_some() && *name == X_FORWARDED_PROTO,
            _ => false,
        }
    }

    /// The headers as HTTP/2 fields (the `Host` is `:authority` there).
    fn h2_fields(&self, add: &mut dyn FnMut(&HeaderName, &[u8], bool)) {
        if let Some(v) = &self.xff {
            add(&X_FORWARDED_FOR, v.as_bytes(), false);
        }
        if let Some(v) = &self.xfp {
            add(&X_FORWARDED_PROTO, v.as_bytes(), false);
        }
        if let Some(Some(v)) = &self.xfh {
            add(&X_FORWARDED_HOST, v.as_bytes(), false);
        }
        add(&X_REAL_IP, self.real_ip.as_bytes(), false);
        // Unique per request: never indexed (see `apply`).
        add(
            &crate::wire::request_id::X_REQUEST_ID,
            self.request_id.as_bytes(),
            true,
        );
        if let Some(t) = &self.traceparent {
            add(&crate::wire::trace_context::TRACEPARENT, t, true);
        }
        if self.te_trailers {
            add(&header::TE, b"trailers", false);
        }
    }

    /// The headers as HTTP/1.1 lines.
    pub(crate) fn write_lines(&self, b: &mut Vec<u8>) {
        let mut line = |name: &[u8], v: &HeaderValue| {
            b.extend_from_slice(name);
            b.extend_from_slice(v.as_bytes());
            b.extend_from_slice(b"\r\n");
        };
        if let Some(v) = &self.host {
            line(b"host: ", v);
        }
        if let Some(v) = &self.xff {
            line(b"x-forwarded-for: ", v);
        }
        if let Some(v) = &self.xfp {
            line(b"x-forwarded-proto: ", v);
        }
        if let Some(Some(v)) = &self.xfh {
            line(b"x-forwarded-host: ", v);
        }
        line(b"x-real-ip: ", &self.real_ip);
        line(b"x-request-id: ", &self.request_id);
        if let Some(t) = &self.traceparent {
            b.extend_from_slice(b"traceparent: ");
            b.extend_from_slice(t);
            b.extend_from_slice(b"\r\n");
        }
    }
}

/// Rewrites a client request for the upstream: origin-form URI with `path_and_query`,
/// HTTP/1.1, hop-by-hop headers removed; returns the forwarding headers to add: `Host`
/// (from the authority for HTTP/2 clients), `X-Forwarded-*`, `X-Real-IP`, `X-Request-ID`.
/// Works on the request in place (no move of its parts: measured).
pub fn prepare_request<B>(
    req: &mut Request<B>,
    path_and_query: Option<&str>,
    info: &ClientInfo,
    (request_id, context): (&HeaderValue, &crate::wire::trace_context::TraceContext),
) -> Forwarding {
    let upgrade = req.version() == Version::HTTP_11 && is_upgrade(req.headers());
    let te_trailers = req.headers().get(header::TE).is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    });
    strip_hop_by_hop(req.headers_mut(), upgrade);
    if context.drop_state {
        req.headers_mut()
            .remove(crate::wire::trace_context::TRACESTATE);
    }
    let client_host = req.headers().get(header::HOST).cloned();
    let host = match client_host {
        Some(_) => None,
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    // Origin form. The client's path and query are reused (no copy) when unchanged.
    let origin_form = match path_and_query {
        Some(pq) => Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/")),
        None => {
            let mut p = http::uri::Parts::default();
            p.path_and_query = req.uri().path_and_query().cloned();
            Uri::from_parts(p).unwrap_or_else(|_| Uri::from_static("/"))
        }
    };
    *req.version_mut() = Version::HTTP_11;
    *req.uri_mut() = origin_form;
    let h = req.headers();
    let peer = info.peer_value.clone();
    let xff = match (
        info.peer_trusted,
        h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(prev)) if !prev.is_empty() => {
            HeaderValue::from_str(&format!("{prev}, {}", info.peer)).ok()
        }
        _ => Some(peer.clone()),
    };
    let xfp = (!(info.peer_trusted && h.contains_key(&X_FORWARDED_PROTO)))
        .then(|| HeaderValue::from_static(if info.tls { "https" } else { "http" }));
    let xfh = (!(info.peer_trusted && h.contains_key(&X_FORWARDED_HOST)))
        .then(|| client_host.or_else(|| host.clone()));
    let real_ip = if info.client_ip == info.peer {
        peer
    } else {
        ip_value(info.client_ip)
    };
    Forwarding {
        host,
        xff,
        xfp,
        xfh,
        real_ip,
        request_id: request_id.clone(),
        traceparent: Some(context.child()),
        te_trailers,
    }
}

/// An IP address as a header value.
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    // INVARIANT: an IP address's text is a valid header value.
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_hop_by_hop_is_the_list() {
        for n in &HOP_BY_HOP {
            assert!(is_hop_by_hop(n), "{n}");
        }
        // Names of the same lengths that are not on it.
        for n in [
            "tk",
            "range",
            "expires",
            "set-cookie",
            "content-location",
            "www-authenticate2",
            "x-forwarded-proto2",
            "x-request-id",
        ] {
            let n = HeaderName::from_bytes(n.as_bytes()).unwrap();
            assert!(!is_hop_by_hop(&n), "{n}");
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(&h, peer, trusted).0.to_string(), "203.0.113.9");
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(&h, outsider, trusted).0, outsider);
    }
}
