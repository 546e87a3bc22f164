//! rampart's own HTTP/2 server, spoken to frame by frame over h2c: what a well-behaved
//! client library would never send (malformed heads, floods, broken HPACK) is refused
//! the way RFC 9113 says, and the connection (or the edge) goes on.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::start;

use crate::harness::h2raw::{
    block, frame, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, PREFACE,
    RST_STREAM, SETTINGS,
};

struct Frame {
    ty: u8,
    flags: u8,
    id: u32,
    payload: Vec<u8>,
    /// A HEADERS frame's `:status` (every block is decoded as it comes: the table).
    status: Option<String>,
}

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
    /// The edge's answers index fields: one table for the connection.
    dec: rampart_server::wire::hpack::Decoder,
}

impl Raw {
    async fn open(edge: &crate::harness::TestEdge) -> Self {
        let mut s = TcpStream::connect(edge.http()).await.unwrap();
        s.write_all(PREFACE).await.unwrap();
        let mut r = Self {
            s,
            buf: Vec::new(),
            dec: rampart_server::wire::hpack::Decoder::default(),
        };
        r.send(SETTINGS, 0, 0, &[]).await;
        r
    }

    async fn send(&mut self, ty: u8, flags: u8, id: u32, payload: &[u8]) {
        let mut f = Vec::new();
        frame(&mut f, ty, flags, id, payload);
        self.s.write_all(&f).await.unwrap();
    }

    /// The next frame, `None` when the edge closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        ty: self.buf[3],
                        flags: self.buf[4],
                        id: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]),
                        payload: self.buf[9..9 + len].to_vec(),
                        status: None,
                    };
                    self.buf.drain(..9 + len);
                    let mut f = f;
                    if f.ty == HEADERS {
                        let mut status = None;
                        self.dec
                            .decode(&f.payload.clone().into(), |field, _| {
                                if let rampart_server::wire::hpack::Field::Pseudo(_, v) = field {
                                    status = Some(String::from_utf8_lossy(&v).into_owned());
                                }
                            })
                            .unwrap();
                        f.status = status;
                    }
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk))
                .await
                .expect("the edge sent nothing for 5 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// How stream `id` ended: its status (and body), or its reset's code.
    async fn outcome(&mut self, id: u32) -> Outcome {
        let mut status = None;
        let mut body = Vec::new();
        loop {
            let f = self.next().await.expect("connection closed");
            if f.ty == GOAWAY {
                panic!("GOAWAY {:?}", String::from_utf8_lossy(&f.payload[8..]));
            }
            if f.id != id {
                continue;
            }
            match f.ty {
                RST_STREAM => {
                    return Outcome::Reset(u32::from_be_bytes(f.payload[..4].try_into().unwrap()))
                }
                HEADERS => status = f.status.clone().or(status),
                DATA => body.extend_from_slice(&f.payload),
                _ => {}
            }
            if f.flags & END_STREAM != 0 && (f.ty == HEADERS || f.ty == DATA) {
                return Outcome::Answered(
                    status.unwrap_or_default(),
                    String::from_utf8_lossy(&body).into_owned(),
                );
            }
        }
    }

    /// The code of the RST_STREAM that ends stream `id` (an answer sent before it, to a
    /// route that answers without reading the body, is skipped).
    async fn reset_code(&mut self, id: u32) -> u32 {
        loop {
            let f = self.next().await.expect("connection closed");
            if f.ty == RST_STREAM && f.id == id {
                return u32::from_be_bytes(f.payload[..4].try_into().unwrap());
            }
        }
    }

    /// The GOAWAY's code, once the edge sends one (frames before it skipped).
    async fn goaway(&mut self) -> u32 {
        loop {
            let f = self.next().await.expect("closed without GOAWAY");
            if f.ty == GOAWAY {
                return u32::from_be_bytes(f.payload[4..8].try_into().unwrap());
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Answered(String, String),
    Reset(u32),
}

fn get(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut f = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "h"),
    ];
    f.extend_from_slice(extra);
    f
}

async fn edge(extra: &str) -> crate::harness::TestEdge {
    start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nh2c = true\n{extra}\n[[routes]]\nrespond = {{ body = \"ok\" }}\n"
    ))
    .await
}

fn ok() -> Outcome {
    Outcome::Answered("200".into(), "ok".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http2_requests_are_reset_and_the_connection_goes_on() {
    let edge = edge("").await;
    let mut c = Raw::open(&edge).await;
    let post = |len: &'static str| {
        vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "h"),
            ("content-length", len),
        ]
    };
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("uppercase name", get(&[("X-Up", "1")])),
        (
            "connection-specific field",
            get(&[("connection", "keep-alive")]),
        ),
        ("TE other than trailers", get(&[("te", "gzip")])),
        (
            "no :path",
            vec![(":method", "GET"), (":scheme", "http"), (":authority", "h")],
        ),
        (
            "pseudo-header after a field",
            vec![
                (":method", "GET"),
                ("x-a", "1"),
                (":scheme", "http"),
                (":path", "/"),
            ],
        ),
        ("repeated pseudo-header", get(&[(":path", "/again")])),
        (":status in a request", get(&[(":status", "200")])),
        ("value with surrounding space", get(&[("x-a", " padded")])),
        ("content-length and no body", post("10")),
    ];
    let mut id = 1;
    for (what, fields) in &cases {
        c.send(HEADERS, END_HEADERS | END_STREAM, id, &block(fields))
            .await;
        assert_eq!(c.outcome(id).await, Outcome::Reset(1), "{what}");
        id += 2;
    }
    // A body longer than its Content-Length, and one shorter.
    c.send(HEADERS, END_HEADERS, id, &block(&post("3"))).await;
    c.send(DATA, END_STREAM, id, b"12345").await;
    assert_eq!(c.reset_code(id).await, 1, "body over its length");
    id += 2;
    c.send(HEADERS, END_HEADERS, id, &block(&post("8"))).await;
    c.send(DATA, END_STREAM, id, b"123").await;
    assert_eq!(c.reset_code(id).await, 1, "body under its length");
    id += 2;
    // The connection still serves, a body of the right length included.
    c.send(HEADERS, END_HEADERS | END_STREAM, id, &block(&get(&[])))
        .await;
    assert_eq!(c.outcome(id).await, ok());
    id += 2;
    c.send(HEADERS, END_HEADERS, id, &block(&post("5"))).await;
    c.send(DATA, END_STREAM, id, b"12345").await;
    assert_eq!(c.outcome(id).await, ok());
    // PING is answered with its own payload.
    c.send(PING, 0, 0, b"12345678").await;
    loop {
        let f = c.next().await.unwrap();
        if f.ty == PING {
            assert_eq!((f.flags, &f.payload[..]), (1, &b"12345678"[..]));
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_header_list_and_stream_limits() {
    let edge = edge("max_header_size = 8192\nh2_max_concurrent_streams = 2").await;
    let mut c = Raw::open(&edge).await;
    // A head over the header list limit gets 431, the connection goes on.
    let big = "v".repeat(100);
    let mut fields = get(&[]);
    let names: Vec<String> = (0..100).map(|i| format!("x-big-{i}")).collect();
    let names: Vec<&'static str> = names
        .into_iter()
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .collect();
    let big: &'static str = Box::leak(big.into_boxed_str());
    for n in &names {
        fields.push((n, big));
    }
    c.send(HEADERS, END_HEADERS | END_STREAM, 1, &block(&fields))
        .await;
    assert_eq!(
        c.outcome(1).await,
        Outcome::Answered("431".into(), String::new())
    );
    // Three streams at once on a limit of two: the third is refused, the others answered.
    let mut burst = Vec::new();
    for id in [3, 5, 7] {
        frame(
            &mut burst,
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &block(&get(&[])),
        );
    }
    c.s.write_all(&burst).await.unwrap();
    // Read in whatever order they come.
    let (mut got, mut bodies) = (std::collections::BTreeMap::new(), Vec::new());
    while got.len() < 3 {
        let f = c.next().await.expect("connection closed");
        match f.ty {
            RST_STREAM => {
                got.insert(f.id, format!("reset {}", f.payload[3]));
            }
            HEADERS => got
                .insert(f.id, f.status.unwrap_or_default())
                .map_or((), drop),
            DATA => bodies.push(f.payload),
            _ => {}
        }
    }
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        [(3, "200".into()), (5, "200".into()), (7, "reset 7".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_continuation_flood_and_broken_hpack_end_the_connection() {
    let edge = edge("").await;
    // CONTINUATION frames without end (CVE-2024-27316 and kin): cut off, not buffered.
    let mut c = Raw::open(&edge).await;
    c.send(HEADERS, 0, 1, &block(&get(&[]))).await;
    let mut filler = Vec::new();
    frame(&mut filler, CONTINUATION, 0, 1, &[0u8; 16384]);
    let mut sent = 0;
    let code = loop {
        if c.s.write_all(&filler).await.is_err() {
            break c.goaway().await;
        }
        sent += filler.len();
        if sent > 4 * 1024 * 1024 {
            panic!("4 MiB of CONTINUATION accepted");
        }
        // The edge answers with GOAWAY once the block is over its cap.
        if sent >= 256 * 1024 {
            break c.goaway().await;
        }
    };
    assert_eq!(code, 11, "ENHANCE_YOUR_CALM");
    assert!(c.next().await.is_none(), "connection not closed");
    // An index 0 (RFC 7541 §6.1): COMPRESSION_ERROR.
    let mut c = Raw::open(&edge).await;
    c.send(HEADERS, END_HEADERS | END_STREAM, 1, &[0x80]).await;
    assert_eq!(c.goaway().await, 9);
    // A frame over the advertised size: FRAME_SIZE_ERROR.
    let mut c = Raw::open(&edge).await;
    c.send(PING, 0, 0, &vec![0u8; 20000]).await;
    assert_eq!(c.goaway().await, 6);
    // The edge still serves.
    let mut c = Raw::open(&edge).await;
    c.send(HEADERS, END_HEADERS | END_STREAM, 1, &block(&get(&[])))
        .await;
    assert_eq!(c.outcome(1).await, ok());
}
