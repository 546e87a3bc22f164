//! Hardening of the server itself: slow-loris, oversized heads, connection caps, idle
//! connections.

use std::time::{Duration, Instant};

use rampart_test_support::client::{self, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::start;

const RESPOND: &str = "[[routes]]\nrespond = { body = \"ok\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_byte_by_byte_is_cut_off() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nheader_read_timeout = \"1s\"\n{RESPOND}"
    ))
    .await;
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    let t = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            // A timeout answer (408) or a close: either way the slow client is cut off.
            let _ = n;
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow client was allowed to finish its head");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        t.elapsed()
    );
    // The edge still serves others.
    assert_eq!(client::plain(edge.http(), get("h", "/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_too_many_headers_are_refused() {
    let edge = start(&format!("[server]\nhttp = \"127.0.0.1:0\"\nmax_header_size = \"16KiB\"\nmax_headers = 20\n{RESPOND}")).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(40_000)
    );
    let out = client::raw(edge.http(), big.as_bytes(), Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let out = client::raw(edge.http(), many.as_bytes(), Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    assert_eq!(
        client::plain(edge.http(), get("h", "/")).await.status,
        200,
        "the edge stays up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nmax_connections = 2\n{RESPOND}"
    ))
    .await;
    let hold1 = TcpStream::connect(edge.http()).await.unwrap();
    let _hold2 = TcpStream::connect(edge.http()).await.unwrap();
    let addr = edge.http();
    // Both taken by the edge: its listening socket's accept queue is empty.
    wait_for_accept_queue(addr, 0).await;
    let third = tokio::spawn(async move {
        client::raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        )
        .await
    });
    // The third waits in the kernel's accept queue: seen there, not a fixed pause.
    wait_for_accept_queue(addr, 1).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past max_connections = 2"
    );
    drop(hold1);
    let out = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// Polls (to a deadline) until the listening socket at `addr` has `want` connections
/// in its accept queue, read from /proc/net/tcp (a listener's rx_queue is that count).
async fn wait_for_accept_queue(addr: std::net::SocketAddr, want: u64) {
    let local = format!("0100007F:{:04X}", addr.port());
    let queued = || -> Option<u64> {
        let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
        table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local address, state 0A (LISTEN), tx_queue:rx_queue
            if f.get(1) != Some(&local.as_str()) || f.get(3) != Some(&"0A") {
                return None;
            }
            let rx = f.get(4)?.split(':').nth(1)?;
            u64::from_str_radix(rx, 16).ok()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = queued();
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "accept queue of {addr}: {now:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let edge = start(&format!("[server]\nhttp = \"127.0.0.1:0\"\nidle_timeout = \"500ms\"\nheader_read_timeout = \"600ms\"\n{RESPOND}")).await;
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(edge.http()).await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("not closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Never before the idle timeout: a connection accepted just before the idle sweep's
    // tick once counted that tick as quiet time, and closed up to a tick (here 250 ms)
    // early; with `idle_timeout = "1ms"` a client lost its first request that way.
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "closed too early: {:?}",
        t.elapsed()
    );
    // A keep-alive connection after its request.
    let mut ka = TcpStream::connect(edge.http()).await.unwrap();
    ka.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let mut out = vec![0u8; 4096];
    let n = ka.read(&mut out).await.unwrap();
    assert!(String::from_utf8_lossy(&out[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), ka.read(&mut out))
        .await
        .expect("keep-alive not closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t.elapsed() < Duration::from_secs(3));
}

async fn h2_edge(extra: &str) -> (crate::harness::TestEdge, rampart_test_support::pki::Pki) {
    let pki = rampart_test_support::pki::Pki::new();
    let leaf = pki.leaf("h2", &["localhost"]);
    let toml = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\n{extra}\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n{RESPOND}",
        leaf.cert.display(),
        leaf.key.display()
    );
    (start(&toml).await, pki)
}

async fn h2_connect(
    edge: &crate::harness::TestEdge,
    pki: &rampart_test_support::pki::Pki,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    h2::client::Connection<tokio_rustls::client::TlsStream<TcpStream>, bytes::Bytes>,
) {
    let cfg = client::tls_config(std::slice::from_ref(&pki.ca_der), &[b"h2"]);
    let tls = client::tls_connect(edge.https(), cfg, "localhost")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2::client::handshake(tls).await.unwrap()
}

fn h2_get() -> http::Request<()> {
    http::Request::get("https://localhost/").body(()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_advertises_the_configured_stream_limit() {
    let (edge, pki) = h2_edge("h2_max_concurrent_streams = 7").await;
    let (mut client, mut conn) = h2_connect(&edge, &pki).await;
    let (resp, _) = client.send_request(h2_get(), true).unwrap();
    let resp = tokio::select! {
        r = resp => r.unwrap(),
        r = &mut conn => panic!("connection ended: {r:?}"),
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(client.current_max_send_streams(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_flood_is_cut_off() {
    let (edge, pki) = h2_edge("h2_max_pending_reset_streams = 10").await;
    let (mut client, conn) = h2_connect(&edge, &pki).await;
    let driver = tokio::spawn(conn);
    let mut sent = 0;
    for _ in 0..5000 {
        let Ok((_resp, mut stream)) = client.send_request(h2_get(), false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
        if sent % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the flooding connection was never closed");
    let err = ended
        .unwrap()
        .expect_err("the flood should end in a GOAWAY error");
    eprintln!("flood ended after {sent} streams: {err:?}");
    assert!(err.is_go_away() || err.is_io(), "{err:?}");
    // Others are still served.
    let (mut c2, conn2) = h2_connect(&edge, &pki).await;
    tokio::spawn(conn2);
    let (resp, _) = c2.send_request(h2_get(), true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_keep_alive_connections_resume_and_lose_no_bytes() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"200ms\"\nidle_timeout = \"30s\"\nheader_read_timeout = \"10s\"\n{RESPOND}"
    ))
    .await;
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for round in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "round {round}"
        );
        // Quiet for longer than park_after: the connection is parked, then resumed.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // Half a request, then a pause long enough to park: the bytes already read must be
    // replayed into the resumed connection.
    s.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(b"st: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_tls_connections_resume() {
    let pki = rampart_test_support::pki::Pki::new();
    let leaf = pki.leaf("park", &["localhost"]);
    let toml = format!(
        "[server]\nhttps = \"127.0.0.1:0\"\npark_after = \"200ms\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n{RESPOND}",
        leaf.cert.display(),
        leaf.key.display()
    );
    let edge = start(&toml).await;
    let cfg = client::tls_config(std::slice::from_ref(&pki.ca_der), &[b"http/1.1"]);
    let mut conn = client::Conn::tls(edge.https(), cfg, "localhost").await;
    let live = edge.running.as_ref().unwrap().live.clone();
    for _ in 0..3 {
        assert_eq!(conn.send(get("localhost", "/")).await.unwrap().status, 200);
        // The connection is seen parked before it is used again.
        let live = live.clone();
        let parked = rampart_test_support::eventually(Duration::from_secs(5), move || {
            let text = rampart_server::request::status::metrics_text(&live.edge());
            text.contains("rampart_parked_connections 1").then_some(())
        })
        .await;
        assert!(parked.is_some(), "the TLS connection was never parked");
    }
}

/// Whether the edge's metrics show `line` within 5 s.
async fn metrics_show(edge: &crate::harness::TestEdge, line: &str) -> bool {
    let live = edge.running.as_ref().unwrap().live.clone();
    let line = line.to_string();
    rampart_test_support::eventually(Duration::from_secs(5), move || {
        let text = rampart_server::request::status::metrics_text(&live.edge());
        text.lines().any(|l| l == line).then_some(())
    })
    .await
    .is_some()
}

/// One keep-alive GET on `s`, answered 200.
async fn ask(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let out = read_responses(s, 1).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_plain_connections_wait_in_the_lot_and_come_back() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"100ms\"\nidle_timeout = \"30s\"\nmax_connections = 2\n{RESPOND}"
    ))
    .await;
    let mut a = TcpStream::connect(edge.http()).await.unwrap();
    let mut b = TcpStream::connect(edge.http()).await.unwrap();
    ask(&mut a).await;
    ask(&mut b).await;
    assert!(
        metrics_show(&edge, "rampart_lot_connections 2").await,
        "the quiet connections never reached the lot"
    );
    assert!(metrics_show(&edge, "rampart_parked_connections 2").await);
    // Out of the lot by a request; by two pipelined ones cut in the middle of the first.
    ask(&mut a).await;
    let two = "GET / HTTP/1.1\r\nHost: h\r\n\r\n".repeat(2);
    b.write_all(&two.as_bytes()[..7]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    b.write_all(&two.as_bytes()[7..]).await.unwrap();
    let out = read_responses(&mut b, 2).await;
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(
        metrics_show(&edge, "rampart_lot_connections 2").await,
        "the connections did not go back to the lot"
    );
    // A client leaving while in the lot frees its place: with max_connections = 2 a third
    // client is served only once the edge has seen the close.
    drop(a);
    let mut c = TcpStream::connect(edge.http()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), ask(&mut c))
        .await
        .expect("the closed connection kept its place");
    ask(&mut b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_leave_the_lot_at_once_and_all_are_answered() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"100ms\"\nidle_timeout = \"30s\"\n{RESPOND}"
    ))
    .await;
    let mut conns = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(edge.http()).await.unwrap();
        ask(&mut s).await;
        conns.push(s);
    }
    assert!(metrics_show(&edge, "rampart_lot_connections 200").await);
    for round in 0..2 {
        let mut all = tokio::task::JoinSet::new();
        for mut s in conns.drain(..) {
            all.spawn(async move {
                ask(&mut s).await;
                s
            });
        }
        while let Some(s) = all.join_next().await {
            conns.push(s.unwrap_or_else(|e| panic!("round {round}: {e}")));
        }
        assert!(
            metrics_show(&edge, "rampart_lot_connections 200").await,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_the_lot_close_when_idle_and_at_shutdown() {
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"100ms\"\nidle_timeout = \"1500ms\"\n{RESPOND}"
    ))
    .await;
    let mut idle = TcpStream::connect(edge.http()).await.unwrap();
    ask(&mut idle).await;
    let t = Instant::now();
    assert!(metrics_show(&edge, "rampart_lot_connections 1").await);
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("a connection in the lot was never closed when idle")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        t.elapsed()
    );
    assert!(metrics_show(&edge, "rampart_active_connections 0").await);
    // At shutdown every connection in the lot closes at once (nothing is in flight).
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    ask(&mut s).await;
    assert!(metrics_show(&edge, "rampart_lot_connections 1").await);
    let t = Instant::now();
    edge.running.as_ref().unwrap().shutdown();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("a connection in the lot outlived shutdown")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_still_close_when_idle() {
    let edge = start(&format!("[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"100ms\"\nidle_timeout = \"800ms\"\n{RESPOND}")).await;
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = s.read(&mut buf).await.unwrap();
    let t = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("never closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(600) && t.elapsed() < Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_not_parked_in_the_middle_of_a_response() {
    let up = rampart_test_support::upstream::Upstream::start("big").await;
    let toml = crate::harness::proxy_toml(&[up.authority()], "", "").replace(
        "[server]\n",
        "[server]\npark_after = \"200ms\"\nidle_timeout = \"30s\"\n",
    );
    let edge = start(&toml).await;
    let size = 16 << 20;
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    s.write_all(
        format!("GET /big/{size} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut got = vec![0u8; 64 * 1024];
    let n = s.read(&mut got).await.unwrap();
    assert!(n > 0);
    // Stop reading long enough for the edge to see no bytes move.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let whole = String::from_utf8_lossy(&got[..n]).to_string();
    let head_len = whole.find("\r\n\r\n").unwrap() + 4;
    let mut body = got[head_len..n].to_vec();
    body.extend_from_slice(&rest);
    assert_eq!(body.len(), size, "the response was cut short");
    assert!(
        body == rampart_test_support::upstream::pattern(size),
        "the response arrived altered"
    );
}

/// Reads from `s` until `count` complete "ok" responses arrived (or EOF), returning the text.
async fn read_responses(s: &mut TcpStream, count: usize) -> String {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while String::from_utf8_lossy(&out).matches("HTTP/1.1 ").count() < count
        || !String::from_utf8_lossy(&out).ends_with("ok")
    {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_survive_parking_between_them() {
    // Connections park as soon as they are idle at a request boundary; pipelined requests,
    // whole or cut anywhere, must all be answered in order.
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"100ms\"\n{RESPOND}"
    ))
    .await;
    let one = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    s.write_all(one.repeat(3).as_bytes()).await.unwrap();
    let out = read_responses(&mut s, 3).await;
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    // A second request cut at every position, with pauses long enough to park.
    let two = one.repeat(2);
    for cut in [1, 10, one.len(), one.len() + 5, two.len() - 1] {
        s.write_all(&two.as_bytes()[..cut]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        s.write_all(&two.as_bytes()[cut..]).await.unwrap();
        let out = read_responses(&mut s, 2).await;
        assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "cut {cut}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_still_arriving_after_its_answer_is_not_read_as_a_request() {
    // The upstream answers after the first chunk; the rest of the body comes after a pause
    // longer than park_after. The body must go to the upstream, never be parsed as the
    // next request (which would be a request the client never sent).
    let up = rampart_test_support::upstream::Upstream::start("a").await;
    let toml = crate::harness::proxy_toml(&[up.authority()], "", "").replace(
        "[server]\n",
        "[server]\npark_after = \"100ms\"\nidle_timeout = \"30s\"\n",
    );
    let edge = start(&toml).await;
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let head = format!(
        "POST /first-chunk HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        10 + smuggled.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"0123456789").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(smuggled.as_bytes()).await.unwrap();
    // A real next request on the same connection is the barrier: once the upstream has
    // it, anything the body bytes could have become was parsed before it.
    s.write_all(b"GET /barrier HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let up2 = &up;
    let barrier = rampart_test_support::eventually(Duration::from_secs(5), || {
        up2.seen()
            .iter()
            .any(|r| r.uri.contains("barrier"))
            .then_some(())
    })
    .await;
    assert!(barrier.is_some(), "the next request never arrived");
    assert!(
        !up.seen().iter().any(|r| r.uri.contains("smuggled")),
        "body bytes were served as a request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_across_parks_is_still_cut_off() {
    // Each pause is longer than park_after, so the connection parks with part of a head;
    // the header_read_timeout must count from the head's start, not restart per park.
    let edge = start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\npark_after = \"100ms\"\nheader_read_timeout = \"1s\"\n{RESPOND}"
    ))
    .await;
    let mut s = TcpStream::connect(edge.http()).await.unwrap();
    let t = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut buf = [0u8; 256];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            let _ = r;
            cut = true;
            break;
        }
    }
    assert!(cut, "the trickling client was allowed to finish its head");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "cut off after {:?}",
        t.elapsed()
    );
}
