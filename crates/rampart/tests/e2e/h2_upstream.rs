//! rampart's own HTTP/2 client to upstreams, against an upstream that answers frame by
//! frame as the test says: answers a server library would never send (a body longer than
//! its `Content-Length`, no `:status`, connection-specific fields) are a 502 to the client
//! and a reset stream upstream, while the connection goes on for the next request; a 103
//! before the answer and trailers after it pass; answers larger than the connection's
//! window get their window back as they are read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::start;

use crate::harness::h2raw::{
    block, frame, ACK, DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, RST_STREAM, SETTINGS,
};

/// How the upstream answers one stream: the frames it writes for stream `id`.
type Answer = Box<dyn Fn(u32) -> Vec<u8> + Send>;

fn answer(fields: &[(&str, &str)], body: &[u8]) -> Answer {
    let head = block(fields);
    let body = body.to_vec();
    Box::new(move |id| {
        let mut out = Vec::new();
        if body.is_empty() {
            frame(&mut out, HEADERS, END_HEADERS | END_STREAM, id, &head);
            return out;
        }
        frame(&mut out, HEADERS, END_HEADERS, id, &head);
        let mut chunks = body.chunks(16384).peekable();
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            frame(&mut out, DATA, if last { END_STREAM } else { 0 }, id, c);
        }
        out
    })
}

fn good() -> Answer {
    answer(&[(":status", "200"), ("content-length", "2")], b"ok")
}

/// What the upstream saw: connections accepted, and the streams rampart reset with
/// their codes.
#[derive(Default)]
struct Seen {
    conns: usize,
    resets: Vec<(u32, u32)>,
    /// Each request's fields as the upstream decoded them.
    heads: Vec<Vec<(String, String)>>,
}

/// An h2c upstream answering its streams in order with `answers`.
async fn upstream(answers: Vec<Answer>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            s.lock().unwrap().conns += 1;
            let (s, answers) = (s.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut out = Vec::new();
                frame(&mut out, SETTINGS, 0, 0, &[]);
                c.write_all(&out).await.unwrap();
                let mut preface = false;
                let mut dec = rampart_server::wire::hpack::Decoder::default();
                loop {
                    let mut chunk = [0u8; 65536];
                    let n = c.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if !preface {
                        if buf.len() < PREFACE.len() {
                            continue;
                        }
                        assert_eq!(&buf[..PREFACE.len()], PREFACE);
                        buf.drain(..PREFACE.len());
                        preface = true;
                    }
                    let mut out = Vec::new();
                    while buf.len() >= 9 {
                        let len = (usize::from(buf[0]) << 16)
                            | (usize::from(buf[1]) << 8)
                            | usize::from(buf[2]);
                        if buf.len() < 9 + len {
                            break;
                        }
                        let (ty, flags) = (buf[3], buf[4]);
                        let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
                        let p = buf[9..9 + len].to_vec();
                        buf.drain(..9 + len);
                        match ty {
                            SETTINGS if flags & ACK == 0 => frame(&mut out, SETTINGS, ACK, 0, &[]),
                            HEADERS => {
                                use rampart_server::wire::hpack::Field;
                                let mut head = Vec::new();
                                dec.decode(&p.clone().into(), |f, _| match f {
                                    Field::Pseudo(n, v) => head.push((
                                        format!("{n:?}"),
                                        String::from_utf8_lossy(&v).into_owned(),
                                    )),
                                    Field::Header(n, v) => head.push((
                                        n.to_string(),
                                        v.to_str().unwrap_or("?").to_owned(),
                                    )),
                                    Field::Malformed(why) => head.push(("!".into(), why.into())),
                                })
                                .expect("the edge's header block decodes");
                                s.lock().unwrap().heads.push(head);
                                let a = answers.lock().unwrap().next();
                                if let Some(a) = a {
                                    out.extend_from_slice(&a(id));
                                }
                            }
                            RST_STREAM => s
                                .lock()
                                .unwrap()
                                .resets
                                .push((id, u32::from_be_bytes(p[..4].try_into().unwrap()))),
                            _ => {}
                        }
                    }
                    if !out.is_empty() && c.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn edge(up: SocketAddr) -> crate::harness::TestEdge {
    start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\
         [upstreams.u]\nservers = [\"{up}\"]\nprotocol = \"h2\"\nmax_fails = 0\n\
         [[routes]]\nupstream = \"u\"\n"
    ))
    .await
}

/// Status and body of a GET on a fresh connection.
async fn get(edge: &crate::harness::TestEdge) -> (u16, Vec<u8>) {
    get_with(edge, &[]).await
}

async fn get_with(edge: &crate::harness::TestEdge, fields: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut req = Request::get("/").header("host", "app");
    for (n, v) in fields {
        req = req.header(*n, *v);
    }
    let req = req
        .body(rampart_test_support::client::ReqBody::default())
        .unwrap();
    let mut c = rampart_test_support::client::Conn::plain(edge.http()).await;
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_streaming(req))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_answers_are_502_and_the_connection_goes_on() {
    let (up, seen) = upstream(vec![
        good(),
        // Longer than its Content-Length.
        answer(&[(":status", "200"), ("content-length", "2")], b"too long"),
        good(),
        // No :status.
        answer(&[("content-length", "0")], b""),
        good(),
        // A connection-specific field.
        answer(&[(":status", "200"), ("connection", "close")], b"x"),
        good(),
        // A pseudo-header after a field.
        answer(&[("x-a", "1"), (":status", "200")], b"x"),
        good(),
    ])
    .await;
    let edge = edge(up).await;
    let mut got = Vec::new();
    for _ in 0..9 {
        got.push(get(&edge).await.0);
    }
    assert_eq!(got, [200, 502, 200, 502, 200, 502, 200, 502, 200]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.conns, 1, "every request on one upstream connection");
    // Each malformed answer's stream was reset with PROTOCOL_ERROR.
    let protocol: Vec<u32> = seen
        .resets
        .iter()
        .filter(|(_, code)| *code == 1)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(protocol, [3, 7, 11, 15], "{:?}", seen.resets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_answers_trailers_and_windows_given_back() {
    let big = vec![b'z'; 1536 * 1024];
    let with_103: Answer = Box::new(|id| {
        let mut out = Vec::new();
        frame(
            &mut out,
            HEADERS,
            END_HEADERS,
            id,
            &block(&[(":status", "103"), ("link", "</a.css>")]),
        );
        frame(
            &mut out,
            HEADERS,
            END_HEADERS,
            id,
            &block(&[(":status", "200")]),
        );
        frame(&mut out, DATA, 0, id, b"hi");
        frame(
            &mut out,
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &block(&[("x-t", "1")]),
        );
        out
    });
    let mut answers = vec![with_103];
    // 4 answers of 1.5 MiB: 6 MiB on one connection, more than its 5 MiB window, which
    // the upstream here sends without waiting: a window not given back as answers are
    // read would be a flow-control error on the last.
    for _ in 0..4 {
        answers.push(answer(&[(":status", "200")], &big));
    }
    let (up, seen) = upstream(answers).await;
    let edge = edge(up).await;
    assert_eq!(get(&edge).await, (200, b"hi".to_vec()));
    for i in 0..4 {
        let (status, body) = get(&edge).await;
        assert_eq!(status, 200, "answer {i}");
        assert!(
            body.len() == big.len() && body == big,
            "answer {i}: {} bytes",
            body.len()
        );
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.conns, 1);
    assert!(seen.resets.is_empty(), "{:?}", seen.resets);
}

/// The forwarding headers reach an HTTP/2 upstream once each, the client's copies of them
/// replaced (a well-formed `X-Request-ID` is kept, once), its other fields kept, and
/// `TE: trailers` passed on; `Host` is `:authority`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_replace_the_clients_on_http2() {
    let (up, seen) = upstream(vec![good(), good()]).await;
    let edge = edge(up).await;
    let spoofed = [
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-host", "evil.example"),
        ("te", "trailers"),
        ("x-app", "kept"),
    ];
    let with_id = [spoofed.as_slice(), &[("x-request-id", "trace-1234")]].concat();
    assert_eq!(get_with(&edge, &with_id).await.0, 200);
    assert_eq!(get_with(&edge, &spoofed).await.0, 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.heads.len(), 2);
    let mut ids = Vec::new();
    for head in &seen.heads {
        let all = |n: &str| -> Vec<&str> {
            head.iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(all("x-real-ip"), ["127.0.0.1"], "{head:?}");
        assert_eq!(all("x-forwarded-for"), ["127.0.0.1"], "{head:?}");
        assert_eq!(all("x-forwarded-proto"), ["http"], "{head:?}");
        assert_eq!(all("x-forwarded-host"), ["app"], "{head:?}");
        assert_eq!(all("te"), ["trailers"], "{head:?}");
        assert_eq!(all("x-app"), ["kept"], "{head:?}");
        assert_eq!(all("traceparent").len(), 1, "{head:?}");
        assert!(all("host").is_empty(), "{head:?}");
        assert_eq!(all("Authority"), ["app"], "{head:?}");
        assert!(all("!").is_empty(), "{head:?}");
        let id = all("x-request-id");
        assert_eq!(id.len(), 1, "{head:?}");
        ids.push(id[0].to_owned());
    }
    assert_eq!(ids[0], "trace-1234", "the client's well-formed id is kept");
    assert_ne!(ids[1], "trace-1234", "a request id per request");
}
