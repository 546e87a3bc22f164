//! OpenTelemetry export (`[tracing] otlp`): one span per request, kind SERVER, in the
//! request's W3C trace (the client's when it sent a `traceparent`, its span the parent;
//! rampart's span id is the one the upstream is told), with the request's method, route,
//! path, status, client address (masked as in the access log) and upstream server.
//!
//! The request path only builds a small [`Span`] and hands it to a bounded queue
//! (`try_send`; a full queue drops it and counts it): no lock, no I/O, no protobuf. A
//! thread of its own batches them (up to [`BATCH`] spans or [`INTERVAL`]), encodes OTLP
//! protobuf (`opentelemetry-proto`'s types, the collector's own schema) and POSTs it to
//! `…/v1/traces` over HTTP/1.1 (TLS verified against the system roots for `https://`).
//! A collector that is down costs dropped batches and one warning a minute, never a
//! request. Off (no `otlp`), nothing is built and the request path pays one branch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, Status};
use rampart_config::ops::Otlp;

use super::pii::Masker;

/// Spans queued for the exporter before new ones are dropped.
pub const QUEUE: usize = 8192;
/// Most spans in one export.
pub const BATCH: usize = 512;
/// The longest a span waits for its batch.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// One export's deadline (connect, send, answer).
const TIMEOUT: Duration = Duration::from_secs(10);

/// One request, as exported.
#[derive(Debug)]
pub struct Span {
    /// Trace id, rampart's span id, the client's span id.
    pub ids: ([u8; 16], [u8; 8], Option<[u8; 8]>),
    /// W3C flags.
    pub flags: u8,
    /// Route name (`none` when no route matched).
    pub route: Arc<str>,
    /// Request method.
    pub method: http::Method,
    /// Path as received (the access log's).
    pub path: Option<String>,
    /// Response status.
    pub status: u16,
    /// Client address, masked as the access log masks it.
    pub client: String,
    /// The upstream server that answered.
    pub upstream: Option<Arc<str>>,
    /// Start and end, nanoseconds since the Unix epoch.
    pub times: (u64, u64),
}

/// Spans the collector accepted, and spans dropped (queue full or export failed), in
/// this process (reloads included): `rampart_otlp_spans_total{result}`.
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// (exported, dropped) so far.
pub fn counts() -> (u64, u64) {
    (
        EXPORTED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    )
}

/// The request path's end of the exporter.
#[derive(Debug)]
pub struct Spans {
    tx: SyncSender<Span>,
}

impl Spans {
    /// Starts the exporter thread for `otlp`; it ends (after a last export) when the
    /// returned value is dropped, as on a reload.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(otlp: &Otlp, masker: Arc<Masker>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let otlp = otlp.clone();
        std::thread::Builder::new()
            .name("rampart-otlp".into())
            .spawn(move || export_loop(&otlp, &rx, &masker))?;
        Ok(Self { tx })
    }

    /// Queues a span; never blocks.
    pub fn record(&self, span: Span) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(span) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Nanoseconds since the Unix epoch of `started` (an `Instant` of the request) and now.
pub fn times(started: Instant) -> (u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let end = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(0);
    (end.saturating_sub(took), end)
}

fn export_loop(otlp: &Otlp, rx: &Receiver<Span>, masker: &Masker) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let mut warned: Option<Instant> = None;
    let mut open = true;
    while open {
        // The first span of a batch waits as long as it takes; the rest up to INTERVAL.
        let Ok(first) = rx.recv() else {
            return;
        };
        let deadline = Instant::now() + INTERVAL;
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(s) => batch.push(s),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let n = batch.len() as u64;
        let body = encode(otlp, batch, masker);
        match rt.block_on(async { tokio::time::timeout(TIMEOUT, post(otlp, body)).await }) {
            Ok(Ok(())) => {
                EXPORTED.fetch_add(n, Ordering::Relaxed);
            }
            failed => {
                DROPPED.fetch_add(n, Ordering::Relaxed);
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "timed out".into(),
                };
                if warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warned = Some(Instant::now());
                    tracing::warn!(collector = %otlp.url, error = %why, spans = n,
                        "OTLP export failed; spans dropped (warned at most once a minute)");
                }
            }
        }
    }
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The export request for `spans`, protobuf-encoded; paths masked as the access log
/// masks them (personal data, `[logging] mask` rules).
pub fn encode(otlp: &Otlp, spans: Vec<Span>, masker: &Masker) -> Vec<u8> {
    let spans: Vec<opentelemetry_proto::tonic::trace::v1::Span> = spans
        .into_iter()
        .map(|s| {
            let mut attributes = vec![
                text("http.request.method", s.method.as_str()),
                text("http.route", &*s.route),
                text("client.address", s.client),
                KeyValue {
                    key: "http.response.status_code".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(i64::from(s.status))),
                    }),
                    ..Default::default()
                },
            ];
            if let Some(p) = s.path {
                attributes.push(text("url.path", masker.mask(&p).unwrap_or(p)));
            }
            if let Some(u) = &s.upstream {
                attributes.push(text("rampart.upstream", &**u));
            }
            // OpenTelemetry's HTTP conventions: a server span is an error for 5xx only.
            let code = if s.status >= 500 {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            };
            opentelemetry_proto::tonic::trace::v1::Span {
                trace_id: s.ids.0.to_vec(),
                span_id: s.ids.1.to_vec(),
                parent_span_id: s.ids.2.map(|p| p.to_vec()).unwrap_or_default(),
                flags: u32::from(s.flags) | 0x100 | if s.ids.2.is_some() { 0x200 } else { 0 },
                name: format!("{} {}", s.method, s.route),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: s.times.0,
                end_time_unix_nano: s.times.1,
                attributes,
                status: Some(Status {
                    message: String::new(),
                    code: code as i32,
                }),
                ..Default::default()
            }
        })
        .collect();
    // The request is `resource_spans { resource, scope_spans { scope, spans… } }`. Framed by
    // hand around spans encoded once each: prost's nested `encode` recomputes every inner
    // message's length at each level (four passes over all spans; callgrind: 7.8k
    // instructions per span before, 6.6k after, see bench/README.md).
    use prost::encoding::{encode_key, encode_varint, message, WireType};
    let mut inner = Vec::new();
    let scope = InstrumentationScope {
        name: "rampart".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    message::encode(1, &scope, &mut inner);
    for span in &spans {
        message::encode(2, span, &mut inner);
    }
    let resource = Resource {
        attributes: vec![text("service.name", &otlp.service_name)],
        ..Default::default()
    };
    let mut rs = Vec::with_capacity(inner.len() + 64);
    message::encode(1, &resource, &mut rs);
    encode_key(2, WireType::LengthDelimited, &mut rs);
    encode_varint(inner.len() as u64, &mut rs);
    rs.extend_from_slice(&inner);
    let mut out = Vec::with_capacity(rs.len() + 8);
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(rs.len() as u64, &mut out);
    out.extend_from_slice(&rs);
    out
}

async fn post(otlp: &Otlp, body: Vec<u8>) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect((otlp.host.as_str(), otlp.port))
        .await
        .map_err(|e| format!("connect {}:{}: {e}", otlp.host, otlp.port))?;
    let _ = tcp.set_nodelay(true);
    if otlp.tls {
        let config = super::deps::client_config(None)?;
        let name = rustls::pki_types::ServerName::try_from(otlp.host.clone())
            .map_err(|e| format!("{}: {e}", otlp.host))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(otlp, TokioIo::new(tls), body).await
    } else {
        send(otlp, TokioIo::new(tcp), body).await
    }
}

async fn send<T>(otlp: &Otlp, io: T, body: Vec<u8>) -> Result<(), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::post(otlp.url.path())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .header(
            http::header::USER_AGENT,
            concat!("rampart/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let authority = otlp
        .url
        .authority()
        .map_or(otlp.host.as_str(), |a| a.as_str());
    if let Ok(host) = HeaderValue::from_str(authority) {
        req.headers_mut().insert(http::header::HOST, host);
    }
    for (k, v) in &otlp.headers {
        req.headers_mut().insert(k, v.clone());
    }
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    // Read whole: a partial-success answer names rejected spans, kept for the error.
    let answer = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "collector answered {status}: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    /// The hand-framed request decodes as the same message prost would have encoded.
    #[test]
    fn the_framing_is_protobufs() {
        let otlp = Otlp {
            url: "http://c:4318/v1/traces".parse().unwrap(),
            host: "c".into(),
            port: 4318,
            tls: false,
            service_name: "svc".into(),
            headers: Vec::new(),
        };
        let span = |n: u8| Span {
            ids: ([n; 16], [n; 8], n.is_multiple_of(2).then_some([7; 8])),
            flags: 1,
            route: "api".into(),
            method: http::Method::GET,
            path: Some(format!("/x/{n}")),
            status: 200 + u16::from(n),
            client: "192.0.2.1".into(),
            upstream: None,
            times: (1, 2),
        };
        let masker = Masker::new(true, &[]);
        let bytes = encode(&otlp, (1..=3).map(span).collect(), &masker);
        let req = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(
            req.encode_to_vec(),
            bytes,
            "same bytes as prost's own encoding"
        );
        let rs = &req.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let spans = &rs.scope_spans[0].spans;
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[1].trace_id, vec![2; 16]);
        assert_eq!(spans[1].parent_span_id, vec![7; 8]);
        assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "rampart");
    }
}
