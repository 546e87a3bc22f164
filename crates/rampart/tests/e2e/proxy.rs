//! Reverse proxy: forwarding, headers, balancing, passive health, retries, timeouts,
//! streaming, WebSocket.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use rampart_test_support::client::{self, get, Conn};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::{dead_addr, eventually};

use crate::harness::{proxy_toml, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_and_sets_forwarding_headers_replacing_spoofed_ones() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let req = Request::get("/hello?q=1")
        .header("host", "app.example")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-real-ip", "6.6.6.6")
        .body(client::empty())
        .unwrap();
    let resp = client::plain(edge.http(), req).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "upstream a");
    let seen = &up.seen()[0];
    assert_eq!(seen.uri, "/hello?q=1");
    assert_eq!(seen.version, http::Version::HTTP_11);
    let h = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("host").as_deref(), Some("app.example"), "Host is kept");
    assert_eq!(
        h("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "client XFF is not believed"
    );
    assert_eq!(h("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(h("x-forwarded-host").as_deref(), Some("app.example"));
    assert_eq!(h("x-real-ip").as_deref(), Some("127.0.0.1"));
    let rid = h("x-request-id").expect("request id forwarded");
    assert_eq!(
        resp.header("x-request-id"),
        Some(rid.as_str()),
        "same id returned to the client"
    );
    let once = |seen: &rampart_test_support::upstream::Seen| {
        for n in FORWARDING {
            let n_sent = seen.headers.get_all(n).iter().count();
            assert_eq!(n_sent, 1, "{n} sent {n_sent} times: {:?}", seen.headers);
        }
    };
    once(seen);
    // The same over the other upstream client (a request with a body goes through hyper).
    let post = Request::post("/hello")
        .header("host", "app.example")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-real-ip", "6.6.6.6")
        .header("x-request-id", "bad id")
        .body(client::full("x"))
        .unwrap();
    assert_eq!(client::plain(edge.http(), post).await.status, 200);
    let seen = &up.seen()[1];
    assert_eq!(seen.method, "POST");
    once(seen);
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "app.example");
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    assert_ne!(seen.headers["x-request-id"], "bad id");
}

/// The headers the edge sets on every upstream request.
const FORWARDING: [&str; 6] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_forwarding_headers_are_extended() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    ))
    .await;
    let req = Request::get("/")
        .header("host", "app.example")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .body(client::empty())
        .unwrap();
    client::plain(edge.http(), req).await;
    let seen = &up.seen()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["x-real-ip"], "203.0.113.7");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_propagated_when_well_formed_and_replaced_otherwise() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let ok = Request::get("/")
        .header("host", "h")
        .header("x-request-id", "trace-42.a")
        .body(client::empty())
        .unwrap();
    let r = client::plain(edge.http(), ok).await;
    assert_eq!(r.header("x-request-id"), Some("trace-42.a"));
    let bad = Request::get("/")
        .header("host", "h")
        .header("x-request-id", "<script>")
        .body(client::empty())
        .unwrap();
    let r = client::plain(edge.http(), bad).await;
    let id = r.header("x-request-id").unwrap();
    assert_ne!(id, "<script>");
    assert_eq!(id.len(), 32);
    assert_eq!(up.seen()[1].headers["x-request-id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let req = Request::get("/banner")
        .header("host", "h")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .body(client::empty())
        .unwrap();
    let resp = client::plain(edge.http(), req).await;
    let seen = &up.seen()[0];
    for h in ["x-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            !seen.headers.contains_key(h),
            "{h} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert!(resp.header("x-resp-hop").is_none(), "{:?}", resp.headers);
    assert_eq!(resp.header("x-app-header"), Some("kept"));
}

/// httpoxy (CVE-2016-5385): a client's `Proxy` header would become `HTTP_PROXY` in a CGI
/// or WSGI environment and send the application's own outgoing requests through the
/// attacker. nginx's guides add `proxy_set_header Proxy ""`; rampart never forwards it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_header_never_reaches_the_upstream() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    for path in ["/a", "/b"] {
        let req = Request::post(path)
            .header("host", "h")
            .header("proxy", "http://attacker.test:8080")
            .body(client::full("x"))
            .unwrap();
        let r = client::plain(edge.http(), req).await;
        assert_eq!(r.status, 200);
    }
    for seen in up.seen() {
        assert!(!seen.headers.contains_key("proxy"), "{:?}", seen.headers);
    }
}

/// `request_headers` (nginx's `proxy_set_header`): set on the request sent upstream,
/// replacing a client's header of the name; an empty value removes the client's. On both
/// upstream clients (rampart's own for a GET, hyper's for a POST with a body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_are_set_and_removed_upstream() {
    let up = Upstream::start("a").await;
    let toml = format!(
        "{}request_headers = {{ \"X-Forwarded-Ssl\" = \"on\", \"X-Debug\" = \"\" }}\n",
        proxy_toml(&[up.authority()], "", "")
    );
    let edge = start(&toml).await;
    for method in ["GET", "POST"] {
        let req = Request::builder()
            .method(method)
            .uri("/x")
            .header("host", "h")
            .header("x-forwarded-ssl", "off")
            .header("x-debug", "1")
            .header("x-kept", "yes")
            .body(client::full(if method == "POST" { "b" } else { "" }))
            .unwrap();
        assert_eq!(client::plain(edge.http(), req).await.status, 200);
    }
    for seen in up.seen() {
        let h = &seen.headers;
        assert_eq!(h.get_all("x-forwarded-ssl").iter().count(), 1, "{h:?}");
        assert_eq!(h["x-forwarded-ssl"], "on", "{h:?}");
        assert!(!h.contains_key("x-debug"), "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_is_502_json_with_request_id() {
    let edge = start(&proxy_toml(&[dead_addr().to_string()], "", "")).await;
    let r = client::plain(edge.http(), get("h", "/x")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["error"], "bad_gateway");
    assert_eq!(j["request_id"], r.header("x-request-id").unwrap());
    assert!(
        !r.text().contains("127.0.0.1"),
        "no upstream address leaks: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504_and_the_edge_keeps_serving() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(
        &[up.authority()],
        "response_timeout = \"300ms\"",
        "",
    ))
    .await;
    let t = Instant::now();
    let r = client::plain(edge.http(), get("h", "/slow/3000")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["error"], "gateway_timeout");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    let r = client::plain(edge.http(), get("h", "/fine")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_and_keeps_upstream_connections_alive() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let edge = start(&proxy_toml(&[a.authority(), b.authority()], "", "")).await;
    let mut conn = Conn::plain(edge.http()).await;
    let mut order = Vec::new();
    for _ in 0..6 {
        let r = conn.send(get("h", "/")).await.unwrap();
        order.push(r.header("x-upstream").unwrap().to_owned());
    }
    assert_eq!(order.iter().filter(|s| *s == "a").count(), 3, "{order:?}");
    assert!(order.windows(2).all(|w| w[0] != w[1]), "{order:?}");
    // Sequential requests reuse one upstream connection per server.
    for up in [&a, &b] {
        let ports: std::collections::HashSet<u16> =
            up.seen().iter().map(|s| s.peer.port()).collect();
        assert_eq!(ports.len(), 1, "{} saw connections from {ports:?}", up.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_avoids_the_busy_server() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let edge = start(&proxy_toml(
        &[a.authority(), b.authority()],
        "balance = \"least_conn\"",
        "",
    ))
    .await;
    let addr = edge.http();
    let slow = tokio::spawn(async move { client::plain(addr, get("h", "/slow/1500")).await });
    let busy = eventually(Duration::from_secs(2), || {
        a.seen()
            .iter()
            .chain(b.seen().iter())
            .find(|s| s.uri.starts_with("/slow"))
            .map(|_| ())
    })
    .await;
    assert!(busy.is_some());
    let busy_name = if a.seen().iter().any(|s| s.uri.starts_with("/slow")) {
        "a"
    } else {
        "b"
    };
    for _ in 0..4 {
        let r = client::plain(addr, get("h", "/quick")).await;
        assert_ne!(
            r.header("x-upstream"),
            Some(busy_name),
            "least_conn sent a request to the busy server"
        );
    }
    assert_eq!(slow.await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_on_another_server_and_the_dead_one_is_taken_out() {
    let live = Upstream::start("live").await;
    let dead = dead_addr().to_string();
    let edge = start(&proxy_toml(
        &[dead, live.authority()],
        "max_fails = 1\nfail_timeout = \"30s\"",
        "",
    ))
    .await;
    for i in 0..6 {
        let r = client::plain(
            edge.http(),
            Request::post("/write")
                .header("host", "h")
                .body(client::full("x"))
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.status, 200,
            "request {i}: a connect failure is safe to retry, even for POST"
        );
    }
    assert_eq!(live.count(), 6);
    // The dead one is taken out: it is marked down and no longer tried first.
    let pool = &edge.running.as_ref().unwrap().live.edge().pools()[0].clone();
    let dead_server = pool
        .servers()
        .iter()
        .find(|s| s.authority.as_ref() != live.authority())
        .unwrap()
        .clone();
    assert!(
        !pool.is_up(&dead_server),
        "the dead server is still in rotation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_health_without_retry_fails_once_then_avoids_the_server() {
    let live = Upstream::start("live").await;
    let dead = dead_addr().to_string();
    let edge = start(&proxy_toml(
        &[dead, live.authority()],
        "max_fails = 1\nfail_timeout = \"30s\"\nretry = false",
        "",
    ))
    .await;
    let mut failures = 0;
    for _ in 0..8 {
        let r = client::plain(edge.http(), get("h", "/")).await;
        if r.status == StatusCode::BAD_GATEWAY {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 1,
        "the dead server is out after its first failure"
    );
    assert_eq!(live.count(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_was_sent_is_never_retried() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let edge = start(&proxy_toml(&[a.authority(), b.authority()], "", "")).await;
    let r = client::plain(
        edge.http(),
        Request::post("/drop")
            .header("host", "h")
            .body(client::full("payload"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let total = a.count() + b.count();
    assert_eq!(total, 1, "the POST reached exactly one upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_streams_to_the_upstream_without_buffering() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let mut conn = Conn::plain(edge.http()).await;
    let (tx, body) = client::channel();
    let req = Request::post("/first-chunk")
        .header("host", "h")
        .body(body)
        .unwrap();
    tx.send(Bytes::from(vec![b'a'; 1000])).await.unwrap();
    // The rest of the body is held back until the answer arrives: an edge that buffered
    // the whole body would never answer.
    let resp = tokio::time::timeout(Duration::from_secs(5), conn.send_streaming(req))
        .await
        .expect("edge buffered the request body")
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(tx);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "first=1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_pass_both_ways() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    // Compared whole, not by length: a lost, doubled or reordered chunk shows.
    let sent = rampart_test_support::upstream::pattern(8 << 20);
    let want = format!(
        "len={} fnv={:016x}",
        sent.len(),
        rampart_test_support::upstream::fnv(&sent)
    );
    let r = client::plain(
        edge.http(),
        Request::post("/digest-body")
            .header("host", "h")
            .body(client::full(sent))
            .unwrap(),
    )
    .await;
    assert_eq!(r.text(), want);
    let r = client::plain(edge.http(), get("h", "/big/5000000")).await;
    assert!(
        r.body[..] == rampart_test_support::upstream::pattern(5_000_000)[..],
        "the 5 MB response arrived altered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_body_streams_to_the_client() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let mut conn = Conn::plain(edge.http()).await;
    let t = Instant::now();
    let resp = conn.send_streaming(get("h", "/stream")).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "first chunk took {:?}",
        t.elapsed()
    );
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_prefix_forwards_the_rest_of_the_path() {
    let up = Upstream::start("a").await;
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/api/\"\nupstream = \"app\"\nstrip_prefix = true\n",
        up.authority()
    );
    let edge = start(&toml).await;
    client::plain(edge.http(), get("h", "/api/users/7?x=1")).await;
    client::plain(edge.http(), get("h", "/api/")).await;
    let uris: Vec<String> = up.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(uris, ["/users/7?x=1", "/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_is_tunnelled_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let tcp = tokio::net::TcpStream::connect(edge.http()).await.unwrap();
    let url = format!("ws://{}/ws", edge.http());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "world"] {
        ws.send(Message::text(msg)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap(), msg);
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back.into_data().as_ref(), &[1u8, 2, 3]);
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_responses_also_return_their_connection_to_the_pool() {
    let up = Upstream::start("a").await;
    let edge = start(&proxy_toml(&[up.authority()], "", "")).await;
    let mut conn = Conn::plain(edge.http()).await;
    for req in [
        Request::head("/x")
            .header("host", "h")
            .body(client::empty())
            .unwrap(),
        get("h", "/status/204"),
        get("h", "/status/304"),
        get("h", "/"),
        Request::head("/y")
            .header("host", "h")
            .body(client::empty())
            .unwrap(),
    ] {
        conn.send(req).await.unwrap();
    }
    let ports: std::collections::HashSet<u16> = up.seen().iter().map(|s| s.peer.port()).collect();
    assert_eq!(
        ports.len(),
        1,
        "each bodiless answer opened a new upstream connection: {ports:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_only_when_enabled() {
    let up = Upstream::start("a").await;
    let toml =
        proxy_toml(&[up.authority()], "", "").replace("[server]\n", "[server]\nh2c = true\n");
    let edge = start(&toml).await;
    let tcp = tokio::net::TcpStream::connect(edge.http()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://h2c.example/z")
        .body(client::empty())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(
        (resp.status(), resp.version()),
        (StatusCode::OK, http::Version::HTTP_2)
    );
    let seen = &up.seen()[0];
    assert_eq!(seen.headers["host"], "h2c.example");
    assert_eq!(seen.headers["x-forwarded-host"], "h2c.example");
    for n in FORWARDING {
        assert_eq!(seen.headers.get_all(n).iter().count(), 1, "{n}");
    }
    // Without h2c the preface is not HTTP/1.1: the connection is refused, not misread.
    let off = start(&proxy_toml(&[up.authority()], "", "")).await;
    let tcp = tokio::net::TcpStream::connect(off.http()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://h2c.example/z")
        .body(client::empty())
        .unwrap();
    assert!(sender.send_request(req).await.is_err());
    assert_eq!(up.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_mark_down_is_one_transition_and_one_audit_event() {
    let dead = dead_addr();
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[logging]\naccess = \"off\"\naudit = \"audit.log\"\n[upstreams.app]\nservers = [\"{dead}\"]\nmax_fails = 3\nretry = false\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n"
    ))
    .await;
    let at = edge.http();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        tasks.push(tokio::spawn(async move {
            client::plain(at, get("h", "/")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::BAD_GATEWAY);
    }
    let audit = edge.dir.path().join("audit.log");
    let downs = eventually(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(&audit).ok()?;
        let n = t
            .lines()
            .filter(|l| l.contains("\"upstream.down\""))
            .count();
        (n > 0).then_some(t)
    })
    .await
    .expect("no upstream.down event");
    // The writer batches for a few ms: give a second event the chance to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("\"upstream.down\""))
        .collect();
    assert_eq!(events.len(), 1, "{downs}");
    assert!(events[0].contains(&dead.to_string()), "{}", events[0]);
}

/// The edge's `rampart_upstream_dns_lookups` for `result` ("ok" or "failed").
fn dns_lookups(edge: &crate::harness::TestEdge, result: &str) -> u64 {
    let live = edge.running.as_ref().unwrap().live.clone();
    let text = rampart_server::request::status::metrics_text(&live.edge());
    let want = format!("result=\"{result}\"");
    text.lines()
        .find(|l| l.starts_with("rampart_upstream_dns_lookups_total{") && l.contains(&want))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no dns lookups series for {result}:\n{text}"))
}

/// A server named by host is looked up once per `dns_ttl`, not on every new connection
/// (`max_idle = 0`: each request opens one), and `0s` looks it up every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_is_looked_up_once_per_dns_ttl_not_per_connection() {
    let up = Upstream::start("named").await;
    let named = format!("localhost:{}", up.addr.port());
    for (ttl, want) in [("10s", 1), ("0s", 8)] {
        let edge = start(&proxy_toml(
            std::slice::from_ref(&named),
            &format!("max_idle = 0\ndns_ttl = \"{ttl}\""),
            "",
        ))
        .await;
        for i in 0..8 {
            let r = client::plain(edge.http(), get("h", &format!("/{ttl}/{i}"))).await;
            assert_eq!(r.status, 200, "{ttl} request {i}");
            assert_eq!(r.header("x-upstream"), Some("named"));
        }
        assert_eq!(dns_lookups(&edge, "ok"), want, "dns_ttl = {ttl}");
        assert_eq!(dns_lookups(&edge, "failed"), 0);
    }
    // A burst of new connections at once shares one lookup.
    let edge = start(&proxy_toml(
        std::slice::from_ref(&named),
        "max_idle = 0",
        "[admin]\nlisten = \"127.0.0.1:0\"",
    ))
    .await;
    let at = edge.http();
    let burst: Vec<_> = (0..32)
        .map(|i| {
            tokio::spawn(
                async move { client::plain(at, get("h", &format!("/b/{i}"))).await.status },
            )
        })
        .collect();
    for b in burst {
        assert_eq!(b.await.unwrap(), 200);
    }
    assert_eq!(dns_lookups(&edge, "ok"), 1);
    let ups = crate::harness::admin_get(edge.running.as_ref().unwrap(), "/upstreams")
        .await
        .json();
    let dns = &ups["upstreams"][0]["servers"][0]["dns"];
    let addrs: Vec<&str> = dns["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(addrs.contains(&up.authority().as_str()), "{ups}");
    assert_eq!(dns["error"], serde_json::Value::Null);
}

/// A name that does not resolve is a 502 with the reason logged, counted, and not looked
/// up again for every request; the edge stays up and other routes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_that_does_not_resolve_is_a_502_and_counted() {
    let edge = start(&proxy_toml(
        &["no-such-host.invalid:8080".to_owned()],
        "retry = false\nmax_fails = 0",
        "[admin]\nlisten = \"127.0.0.1:0\"",
    ))
    .await;
    for i in 0..5 {
        let r = client::plain(edge.http(), get("h", &format!("/{i}"))).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "request {i}");
    }
    let failed = dns_lookups(&edge, "failed");
    assert!(
        (1..=2).contains(&failed),
        "{failed} lookups for 5 requests within a second"
    );
    assert_eq!(dns_lookups(&edge, "ok"), 0);
    let r = client::plain(edge.http(), get("h", "/again")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // The admin API says why.
    let ups = crate::harness::admin_get(edge.running.as_ref().unwrap(), "/upstreams")
        .await
        .json();
    let dns = &ups["upstreams"][0]["servers"][0]["dns"];
    assert_eq!(dns["addresses"], serde_json::json!([]), "{ups}");
    let error = dns["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot resolve no-such-host.invalid:8080"),
        "{ups}"
    );
}

/// On an `h2c` listener the first bytes choose: the HTTP/2 preface, even trickled a byte
/// at a time, is HTTP/2; anything else is HTTP/1.1 on its usual path (kept alive and
/// parked when quiet); a connection that sends nothing closes at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_listener_tells_http2_from_http1_by_the_first_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("a").await;
    let toml = proxy_toml(&[up.authority()], "", "").replace(
        "[server]\n",
        "[server]\nh2c = true\npark_after = \"100ms\"\nidle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\n",
    );
    let edge = start(&toml).await;
    // The preface in single bytes, then an HTTP/2 exchange.
    let mut tcp = tokio::net::TcpStream::connect(edge.http()).await.unwrap();
    for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
        tcp.write_all(&[*b]).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut sender, conn) = h2::client::Builder::new()
        .handshake::<_, Bytes>(SkipPreface(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (resp, _) = sender
        .send_request(Request::get("http://h/trickled").body(()).unwrap(), true)
        .unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("date"));
    // HTTP/1.1, two requests on one connection, then parked while quiet.
    let mut conn = Conn::plain(edge.http()).await;
    for i in 0..2 {
        let r = conn.send(get("h", &format!("/one/{i}"))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
    }
    let live = edge.running.as_ref().unwrap().live.clone();
    let parked = eventually(Duration::from_secs(3), || {
        let text = rampart_server::request::status::metrics_text(&live.edge());
        text.lines()
            .any(|l| l.starts_with("rampart_parked_connections ") && !l.ends_with(" 0"))
            .then_some(())
    })
    .await;
    assert!(parked.is_some(), "the HTTP/1.1 connection was never parked");
    let r = conn.send(get("h", "/one/after-park")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    // Silent: closed by the idle timeout, not held forever.
    let mut silent = tokio::net::TcpStream::connect(edge.http()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("a silent connection was held past the idle timeout");
    assert_eq!(n.unwrap_or(0), 0);
}

/// Part of the HTTP/2 preface and then nothing: closed at the header read timeout (from
/// its first byte, as a partial HTTP/1.1 head is), not held until the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_h2c_preface_is_cut_off_at_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("a").await;
    let toml = proxy_toml(&[up.authority()], "", "").replace(
        "[server]\n",
        "[server]\nh2c = true\nidle_timeout = \"30s\"\nheader_read_timeout = \"1s\"\n",
    );
    let edge = start(&toml).await;
    let mut tcp = tokio::net::TcpStream::connect(edge.http()).await.unwrap();
    tcp.write_all(b"PRI * HT").await.unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("a partial preface was held past the header read timeout");
    assert_eq!(n.unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// A stream that already sent the preface: the h2 client writes it again, so the test
/// drops the client's copy (the edge reads one preface).
struct SkipPreface(tokio::net::TcpStream);

impl tokio::io::AsyncRead for SkipPreface {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SkipPreface {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        if let Some(rest) = buf.strip_prefix(PREFACE) {
            return match std::pin::Pin::new(&mut self.0).poll_write(cx, rest) {
                std::task::Poll::Ready(Ok(n)) => std::task::Poll::Ready(Ok(n + PREFACE.len())),
                other => other,
            };
        }
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// An HTTP/2 request body of known length reaches an HTTP/1.1 upstream with that
/// `Content-Length`, not chunked (WSGI servers mishandle chunked bodies); a body without
/// one is chunked; a stream the client resets before its answer ends nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_request_bodies_keep_their_length_upstream() {
    let up = Upstream::start("a").await;
    let toml =
        proxy_toml(&[up.authority()], "", "").replace("[server]\n", "[server]\nh2c = true\n");
    let edge = start(&toml).await;
    let tcp = tokio::net::TcpStream::connect(edge.http()).await.unwrap();
    let (mut sender, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let post = |len: Option<usize>| {
        let mut b = Request::post("http://h/echo-body");
        if let Some(n) = len {
            b = b.header("content-length", n.to_string());
        }
        b.body(()).unwrap()
    };
    for (i, len) in [Some(5000usize), None].into_iter().enumerate() {
        let (resp, mut body) = sender.send_request(post(len), false).unwrap();
        body.send_data(Bytes::from(vec![b'x'; 3000]), false)
            .unwrap();
        body.send_data(Bytes::from(vec![b'y'; 2000]), true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.into_body().collect_all().await;
        assert_eq!(text, "len=5000");
        let seen = &up.seen()[i];
        match len {
            Some(_) => {
                assert_eq!(seen.headers["content-length"], "5000");
                assert!(!seen.headers.contains_key("transfer-encoding"));
            }
            None => assert_eq!(seen.headers["transfer-encoding"], "chunked"),
        }
    }
    // A reset stream (its upstream answer still pending) leaves the connection serving.
    let (resp, mut body) = sender
        .send_request(Request::get("http://h/slow/2000").body(()).unwrap(), false)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    body.send_reset(h2::Reason::CANCEL);
    assert!(resp.await.is_err());
    let (resp, _) = sender
        .send_request(Request::get("http://h/after-reset").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(resp.await.unwrap().status(), StatusCode::OK);
}

trait CollectAll {
    async fn collect_all(self) -> String;
}

impl CollectAll for h2::RecvStream {
    async fn collect_all(mut self) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = self.data().await {
            let chunk = chunk.unwrap();
            let _ = self.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).unwrap()
    }
}

/// A client that sends the first byte of the HTTP/2 preface and stops costs the edge no
/// CPU while it waits (a peek that found bytes left the socket marked readable, and the
/// wait spun on a core until the idle timeout); the rest of the preface, when it comes,
/// is still noticed at once.
#[test]
fn a_partial_h2c_preface_is_waited_for_without_spinning() {
    use std::io::{Read, Write};
    let dir = rampart_test_support::TempDir::new("h2c-partial");
    let cfg = dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\nh2c = true\nidle_timeout = \"30s\"\n[[routes]]\npath = \"/\"\nrespond = { body = \"ok\" }\n",
    );
    let p = crate::harness::serve(dir.path(), &["-c", cfg.to_str().unwrap()], 1);
    let pid = p.child.id();
    let cpu_ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let mut s = std::net::TcpStream::connect(p.http.unwrap()).unwrap();
    s.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_ticks() - before;
    assert!(
        used < 30,
        "{used} clock ticks of CPU in 1.5 s for one waiting client"
    );
    // The rest of the preface, an empty SETTINGS frame, then the edge's SETTINGS back.
    s.write_all(b"RI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head)
        .expect("no answer to the completed preface");
    assert_eq!(head[3], 4, "the first frame is SETTINGS: {head:?}");
}
