//! Response body transforms, streamed frame by frame: content negotiation (`Accept-Encoding`
//! with q-values), gzip/brotli compression, decompression of an upstream's encoding, and the
//! CSP nonce rewrite of HTML (lol_html, a streaming rewriter: memory does not grow with the
//! page).
//!
//! zstd is not offered: its crate builds C sources (a minute on two cores) for a coding
//! every browser that has it also pairs with brotli.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body::Frame;

use crate::wire::body::{Body, BoxError};

/// A content coding rampart produces or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// gzip.
    Gzip,
    /// brotli.
    Brotli,
}

impl Coding {
    /// The `Content-Encoding` value.
    pub fn header(self) -> Option<HeaderValue> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some(HeaderValue::from_static("gzip")),
            Coding::Brotli => Some(HeaderValue::from_static("br")),
        }
    }

    /// Position in per-coding arrays: identity 0, brotli 1, gzip 2.
    pub fn index(self) -> usize {
        match self {
            Coding::Identity => 0,
            Coding::Brotli => 1,
            Coding::Gzip => 2,
        }
    }

    /// File suffix of a precompressed sibling (`app.js.br`).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => ".gz",
            Coding::Brotli => ".br",
        }
    }

    /// Reads a response's `Content-Encoding`; `None` for one rampart cannot decode.
    pub fn of_response(h: &HeaderMap) -> Option<Coding> {
        match h.get(header::CONTENT_ENCODING) {
            None => Some(Coding::Identity),
            Some(v) => match v.to_str().ok()?.trim().to_ascii_lowercase().as_str() {
                "" | "identity" => Some(Coding::Identity),
                "gzip" | "x-gzip" => Some(Coding::Gzip),
                "br" => Some(Coding::Brotli),
                _ => None,
            },
        }
    }
}

/// The best coding the client accepts: the highest q-value among br and gzip (br on a tie),
/// `*` standing for codings not named. Identity when neither is acceptable.
pub fn negotiate(accept: Option<&HeaderValue>) -> Coding {
    let Some(text) = accept.and_then(|v| v.to_str().ok()) else {
        return Coding::Identity;
    };
    let (mut br, mut gz, mut star) = (None, None, None);
    for item in text.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut q = 1.0_f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
        }
        match token.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gz = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    let br = br.or(star).unwrap_or(0.0);
    let gz = gz.or(star).unwrap_or(0.0);
    if br > 0.0 && br >= gz {
        Coding::Brotli
    } else if gz > 0.0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// Whether a type is worth compressing (text, scripts, JSON, XML, SVG, wasm, uncompressed
/// fonts). Images, video, archives and woff/woff2 are compressed already.
pub fn compressible(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "text/event-stream" {
        // A stream of events must reach the client as each is sent.
        return false;
    }
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime.as_str(),
            "application/javascript"
                | "application/x-javascript"
                | "application/json"
                | "application/xml"
                | "application/wasm"
                | "application/manifest+json"
                | "image/svg+xml"
                | "image/x-icon"
                | "image/vnd.microsoft.icon"
                | "font/ttf"
                | "font/otf"
                | "application/vnd.ms-fontobject"
        )
}

/// Whether a response is HTML.
pub fn is_html(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let m = v.split(';').next().unwrap_or_default().trim();
            m.eq_ignore_ascii_case("text/html") || m.eq_ignore_ascii_case("application/xhtml+xml")
        })
}

/// Compresses `data` at once (static files kept in memory compress once).
pub fn compress_all(coding: Coding, data: &[u8]) -> Bytes {
    let mut e = Encoder::new(coding, 9, 11);
    let mut out = e.write(data);
    out.extend_from_slice(&e.finish());
    Bytes::from(out)
}

/// A growable buffer shared between a writer and its reader (brotli's decoder and the HTML
/// rewriter write into one; the body drains it).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
    fn push(&self, b: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(b);
    }
}

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.push(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(coding: Coding, gzip_level: u32, brotli_quality: u32) -> Self {
        match coding {
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                brotli_quality,
                22,
            ))),
            _ => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(gzip_level),
            )),
        }
    }

    /// Compresses a chunk; with `flush`, everything given so far is in the output.
    fn write_flush(&mut self, data: &[u8], flush: bool) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                if flush {
                    e.flush()?;
                }
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                if flush {
                    e.flush()?;
                }
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    fn write(&mut self, data: &[u8]) -> Vec<u8> {
        self.write_flush(data, false).unwrap_or_default()
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().unwrap_or_default(),
            Encoder::Brotli(e) => e.into_inner(),
        }
    }
}

enum Decoder {
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Brotli(Box<brotli::DecompressorWriter<Shared>>, Shared),
}

impl Decoder {
    fn new(coding: Coding) -> Option<Self> {
        match coding {
            Coding::Identity => None,
            Coding::Gzip => Some(Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Vec::new(),
            )))),
            Coding::Brotli => {
                let out = Shared::default();
                Some(Decoder::Brotli(
                    Box::new(brotli::DecompressorWriter::new(out.clone(), 16 * 1024)),
                    out,
                ))
            }
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Brotli(d, out) => {
                d.write_all(data)?;
                Ok(out.take())
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => d.finish(),
            Decoder::Brotli(d, out) => {
                d.into_inner()
                    .map_err(|_| std::io::Error::other("truncated brotli stream"))?;
                Ok(out.take())
            }
        }
    }
}

type Rewriter = lol_html::send::HtmlRewriter<'static, Shared>;

/// Largest amount the HTML rewriter may buffer (one very long tag); the page itself streams.
const REWRITER_MEMORY: usize = 1024 * 1024;

fn nonce_rewriter(nonce: &str, out: Shared) -> Rewriter {
    use lol_html::send::{Element, ElementContentHandlers, Settings};
    use lol_html::{MemorySettings, Selector};
    // Every tag a nonce can allow: inline and external scripts and styles, style sheets and
    // the preloads of scripts and styles.
    const SELECTORS: &str = "script, style, link[rel~=stylesheet], link[rel~=modulepreload], link[rel~=preload][as=script], link[rel~=preload][as=style]";
    let mut settings = Settings::new_send()
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(REWRITER_MEMORY));
    if let Ok(sel) = SELECTORS.parse::<Selector>() {
        let n = nonce.to_owned();
        let handlers =
            ElementContentHandlers::default().element(move |el: &mut Element<'_, '_>| {
                el.set_attribute("nonce", &n)?;
                Ok(())
            });
        settings =
            settings.append_element_content_handler((std::borrow::Cow::Owned(sel), handlers));
    }
    lol_html::send::HtmlRewriter::new(settings, out)
}

impl lol_html::OutputSink for Shared {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.push(chunk);
    }
}

/// What to do to a body.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The coding the body arrives in, undone first (needed to rewrite it).
    pub decode: Option<Coding>,
    /// Add this nonce to HTML tags.
    pub nonce: Option<String>,
    /// Compress the result.
    pub encode: Option<Coding>,
}

/// A body run through a [`Plan`], one frame at a time.
pub struct Transform {
    inner: Body,
    decoder: Option<Decoder>,
    rewriter: Option<(Rewriter, Shared)>,
    encoder: Option<Encoder>,
    done: bool,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transform").finish_non_exhaustive()
    }
}

impl Transform {
    /// Wraps `inner`.
    pub fn new(inner: Body, plan: &Plan) -> Self {
        Self {
            inner,
            decoder: plan.decode.and_then(Decoder::new),
            rewriter: plan.nonce.as_deref().map(|n| {
                let out = Shared::default();
                (nonce_rewriter(n, out.clone()), out)
            }),
            // Streaming: a lower brotli quality than for files compressed once.
            encoder: plan
                .encode
                .filter(|c| *c != Coding::Identity)
                .map(|c| Encoder::new(c, 6, 5)),
            done: false,
        }
    }

    fn process(&mut self, data: &[u8]) -> Result<Vec<u8>, BoxError> {
        let mut buf = match &mut self.decoder {
            Some(d) => d.write(data)?,
            None => data.to_vec(),
        };
        if let Some((r, out)) = &mut self.rewriter {
            r.write(&buf)?;
            buf = out.take();
        }
        Ok(match &mut self.encoder {
            Some(e) => e.write_flush(&buf, true)?,
            None => buf,
        })
    }

    fn finish(&mut self) -> Result<Vec<u8>, BoxError> {
        let mut buf = match self.decoder.take() {
            Some(d) => d.finish()?,
            None => Vec::new(),
        };
        if let Some((mut r, out)) = self.rewriter.take() {
            r.write(&buf)?;
            r.end()?;
            buf = out.take();
        }
        Ok(match self.encoder.take() {
            Some(mut e) => {
                let mut v = e.write(&buf);
                v.extend_from_slice(&e.finish());
                v
            }
            None => buf,
        })
    }
}

impl http_body::Body for Transform {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers describe the body as it was; they are dropped.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = this.process(&data)?;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let out = this.finish()?;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// A fresh CSP nonce: 16 random bytes, base64.
pub fn new_nonce() -> String {
    use aws_lc_rs::rand::SecureRandom;
    use base64::Engine as _;
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_decide() {
        let n = |s: &str| negotiate(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(n("gzip, deflate, br"), Coding::Brotli);
        assert_eq!(n("gzip;q=1.0, br;q=0.5"), Coding::Gzip);
        assert_eq!(n("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(n("*"), Coding::Brotli);
        assert_eq!(n("*;q=0.5, br;q=0"), Coding::Gzip);
        assert_eq!(n("identity"), Coding::Identity);
        assert_eq!(n("gzip;q=0, br;q=0"), Coding::Identity);
        assert_eq!(n("GZIP;Q=0.8"), Coding::Gzip);
        assert_eq!(n("deflate"), Coding::Identity);
        assert_eq!(negotiate(None), Coding::Identity);
    }

    #[test]
    fn nonces_are_fresh_128_bit_base64() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn gzip_in_rewrite_brotli_out() {
        let page = b"<html><head><style>p{}</style><script>1</script></head><body><script src=a.js></script></body></html>";
        let gz = compress_all(Coding::Gzip, page);
        let plan = Plan {
            decode: Some(Coding::Gzip),
            nonce: Some("N0nce".into()),
            encode: Some(Coding::Brotli),
        };
        // Fed 7 bytes at a time: decoding and the rewrite stream across chunk borders.
        let mut t = Transform::new(Body::Empty, &plan);
        let mut br = Vec::new();
        for chunk in gz.chunks(7) {
            br.extend(t.process(chunk).unwrap());
        }
        br.extend(t.finish().unwrap());
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut plain).unwrap();
        let s = String::from_utf8(plain).unwrap();
        assert_eq!(s.matches("nonce=\"N0nce\"").count(), 3, "{s}");
    }
}

/// The CSP header with this response's nonce, set after the route's header policy.
#[derive(Debug, Clone)]
pub struct CspHeader(pub http::HeaderName, pub HeaderValue);

/// `X-CSP-Nonce`: the nonce, sent to the upstream so it can use it itself.
pub const X_CSP_NONCE: http::HeaderName = http::HeaderName::from_static("x-csp-nonce");

/// What the response transforms need from the request, taken before the policies change
/// it: the client's `Accept-Encoding`, and a fresh CSP nonce (also sent upstream in
/// `X-CSP-Nonce`). Nothing is taken on routes without compression or nonces.
#[derive(Debug, Default)]
pub struct Shaping {
    accept: Option<HeaderValue>,
    nonce: Option<String>,
    on: bool,
}

impl Shaping {
    /// Takes what `route` will need from `req`.
    pub fn take(route: &rampart_config::runtime::Route, req: &mut http::Request<Body>) -> Self {
        if route.compress.is_none() && route.csp_nonce.is_none() {
            return Self::default();
        }
        let accept = req.headers().get(http::header::ACCEPT_ENCODING).cloned();
        let nonce = route.csp_nonce.as_ref().map(|_| new_nonce());
        if let Some(v) = nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            req.headers_mut().insert(X_CSP_NONCE, v);
        }
        Self {
            accept,
            nonce,
            on: true,
        }
    }

    /// Shapes `resp` (see [`shape`]); `head` for a HEAD request.
    pub fn apply(
        self,
        route: &rampart_config::runtime::Route,
        resp: &mut http::Response<Body>,
        head: bool,
    ) {
        if self.on {
            shape(route, resp, self.accept.as_ref(), self.nonce, head);
        }
    }
}

/// What a route does to a response body after its handler: the CSP nonce rewrite of HTML
/// (undoing and redoing an upstream's compression around it), else compression when the
/// route has it on.
pub fn shape(
    route: &rampart_config::runtime::Route,
    resp: &mut http::Response<Body>,
    accept: Option<&HeaderValue>,
    nonce: Option<String>,
    head: bool,
) {
    use http::StatusCode;
    let status = resp.status();
    let has_body = !head
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
        && status != StatusCode::PARTIAL_CONTENT;
    if let (Some(nonce), Some((name, text))) = (nonce, &route.csp_nonce) {
        let value = rampart_config::site::csp_with_nonce(text, &nonce);
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.extensions_mut().insert(CspHeader(name.clone(), v));
        }
        if !(has_body && is_html(resp.headers())) {
            return;
        }
        let Some(decode) = Coding::of_response(resp.headers()) else {
            return;
        };
        let encode = if route.compress.is_some() || decode != Coding::Identity {
            negotiate(accept)
        } else {
            Coding::Identity
        };
        let h = resp.headers_mut();
        for name in [
            header::CONTENT_LENGTH,
            header::ETAG,
            header::LAST_MODIFIED,
            header::ACCEPT_RANGES,
            header::CONTENT_ENCODING,
        ] {
            h.remove(name);
        }
        // A page carries its nonce: a cached copy would reuse it.
        let no_store = h
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store"));
        if !no_store {
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
        }
        if let Some(v) = encode.header() {
            h.insert(header::CONTENT_ENCODING, v);
        }
        add_vary(h);
        let body = std::mem::take(resp.body_mut());
        let plan = Plan {
            decode: Some(decode),
            nonce: Some(nonce),
            encode: Some(encode),
        };
        *resp.body_mut() = Body::stream(Transform::new(body, &plan));
        return;
    }
    let Some(c) = route.compress else { return };
    if matches!(route.action, rampart_config::runtime::Action::Static(_))
        || !has_body
        || status != StatusCode::OK
    {
        return;
    }
    let h = resp.headers();
    if h.contains_key(header::CONTENT_ENCODING)
        || h.contains_key(header::CONTENT_RANGE)
        || !compressible(h.get(header::CONTENT_TYPE))
    {
        return;
    }
    let no_transform = h
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("no-transform"));
    let small = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n < c.min_size);
    if no_transform || small {
        return;
    }
    let coding = negotiate(accept);
    let h = resp.headers_mut();
    add_vary(h);
    let Some(ce) = coding.header() else { return };
    h.remove(header::CONTENT_LENGTH);
    h.insert(header::CONTENT_ENCODING, ce);
    // The bytes differ from the upstream's: its strong validator becomes weak.
    if let Some(tag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        if tag.starts_with('"') {
            if let Ok(v) = HeaderValue::from_str(&format!("W/{tag}")) {
                h.insert(header::ETAG, v);
            }
        }
    }
    let body = std::mem::take(resp.body_mut());
    let plan = Plan {
        encode: Some(coding),
        ..Plan::default()
    };
    *resp.body_mut() = Body::stream(Transform::new(body, &plan));
}

/// Adds `Accept-Encoding` to `Vary` unless it is there.
fn add_vary(h: &mut HeaderMap) {
    let present = h.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}
