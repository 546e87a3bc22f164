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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = edge.http();
    let third = tokio::spawn(async move {
        client::raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    assert!(
        t.elapsed() >= Duration::from_millis(400),
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
