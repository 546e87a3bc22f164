//! Static files from a route's directory: index files, SPA fallback for navigation requests,
//! `ETag`/`Last-Modified` with conditional requests (304), single `Range` requests (206/416),
//! HEAD, `Cache-Control` by rule, and compression (precompressed `.br`/`.gz` siblings first,
//! else compressed once and kept).
//!
//! # Security
//! The path is normalised by the router (no `..`, no encoded `/`, `\` or NUL); after
//! percent-decoding it is checked again (`..`, `.`, `\`, NUL), dotfiles are hidden (except
//! `/.well-known/`) unless `dotfiles = true`, and the resolved file must lie inside the root
//! after symlinks are followed (unless `follow_symlinks = true`). Directories are never
//! listed.
//!
//! # Speed
//! Like nginx's `open_file_cache`, files up to 1 MiB are kept in memory with their headers
//! (64 MiB in all). Each request still `stat`s the path, and an entry whose inode, size or
//! modification time changed is reloaded, so a deploy shows at once. A hit costs one `stat`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::SeekFrom;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::Frame;
use rampart_config::runtime::HeaderPolicy;
use rampart_config::site::{Compress, StaticSite};

use crate::handler::transform::{self, Coding};
use crate::wire::body::{Body, BoxError};
use crate::wire::refusal::Refusal;

/// Files larger than this are streamed from disk instead of kept in memory.
const MAX_CACHED_FILE: u64 = 1024 * 1024;
/// Memory budget of the file cache (originals and compressed copies).
const CACHE_BUDGET: usize = 64 * 1024 * 1024;
/// Most files kept.
const MAX_ENTRIES: usize = 10_000;

/// The in-memory file cache of one static route (rebuilt on reload).
#[derive(Debug)]
pub struct FileCache {
    inner: Mutex<CacheInner>,
    /// Times below are nanoseconds since this instant.
    epoch: Instant,
}

impl Default for FileCache {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<Box<[u8]>, Arc<Entry>, BuildFx>,
    bytes: usize,
}

/// FxHash (rustc's): the keys are paths of files that exist, so hash flooding cannot grow
/// the table, and SipHash cost more per hit than the rest of the lookup.
#[derive(Debug, Default, Clone, Copy)]
struct BuildFx;

impl std::hash::BuildHasher for BuildFx {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// What identifies a version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: SystemTime,
}

impl Version {
    fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

#[derive(Debug)]
struct Entry {
    version: Version,
    real: PathBuf,
    /// The ETag without quotes; encoded variants append `-br`/`-gz`.
    tag: String,
    /// `ETag` values: identity, br, gzip.
    etags: [HeaderValue; 3],
    /// `Content-Length` of the file.
    length: HeaderValue,
    /// `Cache-Control` by the route's rules.
    cache_control: HeaderValue,
    last_modified: HeaderValue,
    mtime_secs: u64,
    content_type: HeaderValue,
    html: bool,
    compressible: bool,
    /// The whole file, when small enough.
    data: Option<Bytes>,
    /// Precompressed siblings (`.br`, `.gz`) present and not older than the file.
    siblings: [Option<PathBuf>; 2],
    /// Compressed copies made from `data` (br, gz), `Some(None)` when not worth it.
    packed: Mutex<[Option<Option<Bytes>>; 2]>,
    /// When the path was last `stat`ed and found unchanged (ns since the cache's epoch).
    checked: AtomicU64,
    /// Response headers by coding (identity, br, gzip) and by plain/TLS, built once.
    templates: [[OnceLock<HeaderMap>; 2]; 3],
    /// The same, serialized for the HTTP/1.1 fast path.
    raw: [[OnceLock<Bytes>; 2]; 3],
}

/// Index into the arrays of compressed variants (br, gz); `c` is not identity.
fn slot(c: Coding) -> usize {
    c.index() - 1
}

/// The request, as the static handler needs it.
#[derive(Debug)]
pub struct FileRequest<'a> {
    /// GET or HEAD (others are refused).
    pub method: &'a Method,
    /// Request headers (conditionals, `Range`, `Accept-Encoding`, navigation hints).
    pub headers: &'a HeaderMap,
    /// Path below the route, as received (percent-encoded).
    pub rel: &'a str,
    /// Query string, kept on the directory redirect.
    pub query: Option<&'a str>,
    /// The route's compression.
    pub compress: Option<Compress>,
    /// The route's security headers (static answers carry them from their template).
    pub policy: &'a HeaderPolicy,
    /// Whether the connection is TLS (HSTS).
    pub tls: bool,
    /// The fixed headers may go as serialized lines in [`Body::Head`] (HTTP/1.1 fast path).
    pub raw_head: bool,
    /// Answer HTML in identity coding (it is rewritten and compressed later, for CSP nonces).
    pub identity_only: bool,
}

/// Answers a GET or HEAD for a static route.
///
/// # Errors
/// A [`Refusal`] for a missing file, a bad method, a bad range, or an I/O error.
pub async fn serve(
    site: &StaticSite,
    cache: &FileCache,
    req: &FileRequest<'_>,
) -> Result<Response<Body>, Refusal> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(Refusal::MethodNotAllowed(HeaderValue::from_static(
            "GET, HEAD",
        )));
    }
    let Some(decoded) = crate::wire::path::percent_decode(req.rel) else {
        return Err(Refusal::BadRequest("bad_request"));
    };
    if !safe_path(&decoded, site.dotfiles) {
        return Err(Refusal::NotFound);
    }
    let rel_file = decoded.trim_start_matches('/');
    // One buffer for the path (no PathBuf joins on the hot path).
    let dir = site.dir.as_os_str().as_bytes();
    let mut buf = Vec::with_capacity(dir.len() + 2 + rel_file.len() + site.index.len());
    buf.extend_from_slice(dir);
    buf.push(b'/');
    buf.extend_from_slice(rel_file.as_bytes());
    // A file checked less than `revalidate_after` ago is served without a `stat`.
    if !site.revalidate_after.is_zero() {
        if let Some(e) = cache.fresh(&buf, site.revalidate_after) {
            return respond(cache, &e, req).await;
        }
    }
    let mut meta = std::fs::metadata(OsStr::from_bytes(&buf)).ok();
    if meta.as_ref().is_some_and(std::fs::Metadata::is_dir) {
        if !req.rel.ends_with('/') {
            // Like nginx: a directory without its slash is redirected, so relative links
            // inside its index resolve.
            let mut loc = format!("{}/", req.rel);
            if let Some(q) = req.query {
                loc.push('?');
                loc.push_str(q);
            }
            let mut resp = redirect(&loc);
            crate::policy::headers::apply(resp.headers_mut(), req.policy, req.tls);
            return Ok(resp);
        }
        if !buf.ends_with(b"/") {
            buf.push(b'/');
        }
        buf.extend_from_slice(site.index.as_bytes());
        meta = std::fs::metadata(OsStr::from_bytes(&buf)).ok();
    }
    let mut entry = match meta.filter(std::fs::Metadata::is_file) {
        Some(m) => cache.get(site, &buf, dir.len() + 1, &m).await,
        None => None,
    };
    if entry.is_none() {
        if let Some(fallback) = site
            .spa_fallback
            .as_ref()
            .filter(|_| is_navigation(req.headers))
        {
            buf.truncate(dir.len() + 1);
            buf.extend_from_slice(fallback.as_bytes());
            let m = std::fs::metadata(OsStr::from_bytes(&buf)).ok();
            if let Some(m) = m.filter(std::fs::Metadata::is_file) {
                entry = cache.get(site, &buf, dir.len() + 1, &m).await;
            }
        }
    }
    let entry = entry.ok_or(Refusal::NotFound)?;
    respond(cache, &entry, req).await
}

impl FileCache {
    /// The entry for `path` as it is now, loading it on a miss; `None` when it is outside
    /// the root or unreadable.
    async fn get(
        &self,
        site: &StaticSite,
        path: &[u8],
        rel_at: usize,
        meta: &std::fs::Metadata,
    ) -> Option<Arc<Entry>> {
        let version = Version::of(meta);
        let now = self.now();
        {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = inner.map.get(path) {
                if e.version == version {
                    e.checked.store(now, Ordering::Relaxed);
                    return Some(e.clone());
                }
            }
        }
        let rel = String::from_utf8_lossy(&path[rel_at.min(path.len())..]).into_owned();
        let entry = Arc::new(load(site, Path::new(OsStr::from_bytes(path)), &rel, version).await?);
        entry.checked.store(now, Ordering::Relaxed);
        let size = entry.data.as_ref().map_or(0, Bytes::len) + 256;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.bytes + size > CACHE_BUDGET || inner.map.len() >= MAX_ENTRIES {
            // Crude but bounded: start over. Hot files come back on their next request.
            inner.map.clear();
            inner.bytes = 0;
        }
        inner.bytes += size;
        if let Some(old) = inner.map.insert(path.into(), entry.clone()) {
            inner.bytes = inner
                .bytes
                .saturating_sub(old.data.as_ref().map_or(0, Bytes::len) + 256);
        }
        Some(entry)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The entry for exactly `path` when it was checked within `valid`.
    fn fresh(&self, path: &[u8], valid: std::time::Duration) -> Option<Arc<Entry>> {
        let now = self.now();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let e = inner.map.get(path)?;
        let age = now.saturating_sub(e.checked.load(Ordering::Relaxed));
        (u128::from(age) < valid.as_nanos()).then(|| e.clone())
    }

    fn charge(&self, n: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.bytes += n;
        if inner.bytes > CACHE_BUDGET {
            inner.map.clear();
            inner.bytes = 0;
        }
    }
}

async fn load(site: &StaticSite, path: &Path, rel: &str, version: Version) -> Option<Entry> {
    let real = tokio::fs::canonicalize(path).await.ok()?;
    if !site.follow_symlinks && !real.starts_with(&site.dir) {
        return None;
    }
    let data = if version.len <= MAX_CACHED_FILE {
        let d = tokio::fs::read(&real).await.ok()?;
        // Changed while being read: stream it instead (the next request reloads).
        (d.len() as u64 == version.len).then(|| Bytes::from(d))
    } else {
        None
    };
    let content_type = content_type(&real);
    let compressible = transform::compressible(Some(&content_type));
    let mut siblings = [None, None];
    if compressible {
        for c in [Coding::Brotli, Coding::Gzip] {
            let mut s = real.clone().into_os_string();
            s.push(c.suffix());
            let s = PathBuf::from(s);
            if let Ok(m) = tokio::fs::metadata(&s).await {
                let fresh = m.modified().is_ok_and(|t| t >= version.mtime);
                if m.is_file() && fresh {
                    siblings[slot(c)] = Some(s);
                }
            }
        }
    }
    let mtime_secs = version
        .mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let nanos = version
        .mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let html = content_type
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html"));
    let tag = format!("{nanos:x}-{:x}", version.len);
    let etag = |suffix: &str| {
        HeaderValue::from_str(&format!("\"{tag}{suffix}\"")).unwrap_or(HeaderValue::from_static(""))
    };
    Some(Entry {
        etags: [etag(""), etag("-br"), etag("-gz")],
        length: HeaderValue::from(version.len),
        cache_control: site.cache_control(rel, html).clone(),
        tag,
        last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(version.mtime))
            .unwrap_or(HeaderValue::from_static("")),
        mtime_secs,
        content_type,
        html,
        compressible,
        data,
        siblings,
        packed: Mutex::new([None, None]),
        templates: Default::default(),
        raw: Default::default(),
        checked: AtomicU64::new(0),
        version,
        real,
    })
}

async fn respond(
    cache: &FileCache,
    e: &Arc<Entry>,
    req: &FileRequest<'_>,
) -> Result<Response<Body>, Refusal> {
    let len = e.version.len;
    let h = req.headers;
    let compress = req
        .compress
        .filter(|c| !(req.identity_only && e.html) && e.compressible && len >= c.min_size);
    // One pass over the request's few headers instead of a hash lookup per name.
    let (mut inm, mut ims, mut range, mut if_range, mut accept) = (None, None, None, None, None);
    for (k, v) in h {
        if *k == header::IF_NONE_MATCH {
            inm = Some(v);
        } else if *k == header::IF_MODIFIED_SINCE {
            ims = Some(v);
        } else if *k == header::RANGE {
            range = Some(v);
        } else if *k == header::IF_RANGE {
            if_range = Some(v);
        } else if *k == header::ACCEPT_ENCODING {
            accept = Some(v);
        }
    }
    // Conditional requests: If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    let not_modified = if let Some(inm) = inm {
        etag_list_matches(inm, &e.tag)
    } else if let Some(ims) = ims
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let ims = ims
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        e.mtime_secs <= ims
    } else {
        false
    };
    let range = range.filter(|_| {
        if_range.is_none_or(|ir| {
            ir.to_str()
                .is_ok_and(|v| v.as_bytes() == e.etags[0].as_bytes() || v == e.last_modified)
        })
    });
    let coding = match (compress, range) {
        (Some(_), None) => transform::negotiate(accept),
        _ => Coding::Identity,
    };
    let mut resp = Response::new(Body::Empty);
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(with_headers(resp, e, coding, compress.is_some(), req));
    }
    let head = req.method == Method::HEAD;
    if coding == Coding::Identity {
        let (start, end) = match range {
            Some(r) => match parse_range(r, len) {
                RangeAnswer::Whole => (0, len),
                RangeAnswer::Part(a, b) => {
                    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{}/{len}", b - 1)) {
                        resp.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    (a, b)
                }
                RangeAnswer::Unsatisfiable => return Err(Refusal::RangeNotSatisfiable(len)),
            },
            None => (0, len),
        };
        let length = if end - start == len {
            e.length.clone()
        } else {
            HeaderValue::from(end - start)
        };
        resp.headers_mut().insert(header::CONTENT_LENGTH, length);
        if !head {
            *resp.body_mut() = match &e.data {
                Some(d) => Body::full(d.slice(start as usize..end as usize)),
                None => file_body(&e.real, start, end - start).await?,
            };
        }
        return Ok(with_headers(resp, e, coding, compress.is_some(), req));
    }
    // Precompressed sibling, else a copy compressed once, else (large files) streamed.
    if let Some(sib) = &e.siblings[slot(coding)] {
        if let Ok(m) = tokio::fs::metadata(sib).await {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(m.len()));
            if !head {
                *resp.body_mut() = file_body(sib, 0, m.len()).await?;
            }
            return Ok(with_headers(resp, e, coding, compress.is_some(), req));
        }
    }
    if let Some(packed) = packed(cache, e, coding).await {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(packed.len()));
        if !head {
            *resp.body_mut() = Body::full(packed);
        }
        return Ok(with_headers(resp, e, coding, compress.is_some(), req));
    }
    if !head {
        let raw = file_body(&e.real, 0, len).await?;
        let plan = transform::Plan {
            encode: Some(coding),
            ..transform::Plan::default()
        };
        *resp.body_mut() = Body::stream(transform::Transform::new(raw, &plan));
    }
    Ok(with_headers(resp, e, coding, compress.is_some(), req))
}

/// Adds the file's fixed headers for `coding` to an answer that holds only its own
/// (length, range): as serialized lines in front of an in-memory body on the HTTP/1.1 fast
/// path, else from the template header map.
fn with_headers(
    mut resp: Response<Body>,
    e: &Entry,
    coding: Coding,
    compress: bool,
    req: &FileRequest<'_>,
) -> Response<Body> {
    let idx = coding.index();
    let tls = usize::from(req.tls);
    let tpl =
        e.templates[idx][tls].get_or_init(|| template(e, coding, compress, req.policy, req.tls));
    let in_memory = matches!(resp.body(), Body::Full(_) | Body::Empty);
    if req.raw_head && in_memory && resp.status() != StatusCode::NOT_MODIFIED {
        let raw = e.raw[idx][tls].get_or_init(|| {
            let mut b = Vec::with_capacity(1024);
            for (k, v) in tpl {
                b.extend_from_slice(k.as_str().as_bytes());
                b.extend_from_slice(b": ");
                b.extend_from_slice(v.as_bytes());
                b.extend_from_slice(b"\r\n");
            }
            Bytes::from(b)
        });
        let data = match std::mem::take(resp.body_mut()) {
            Body::Full(d) => d,
            _ => None,
        };
        *resp.body_mut() = Body::Head(raw.clone(), data);
        return resp;
    }
    let own = std::mem::replace(resp.headers_mut(), tpl.clone());
    for (k, v) in own {
        if let Some(k) = k {
            resp.headers_mut().insert(k, v);
        }
    }
    if resp.status() == StatusCode::NOT_MODIFIED {
        // A 304 carries validators and caching headers, not the representation's.
        for name in [
            header::CONTENT_TYPE,
            header::ACCEPT_RANGES,
            header::CONTENT_ENCODING,
        ] {
            resp.headers_mut().remove(name);
        }
    }
    resp
}

/// The headers of every answer with this file in `coding`: representation, validators,
/// caching, and the route's security headers (applied here once, not per response).
fn template(
    e: &Entry,
    coding: Coding,
    compress: bool,
    policy: &HeaderPolicy,
    tls: bool,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(24);
    h.insert(header::CONTENT_TYPE, e.content_type.clone());
    h.insert(header::CACHE_CONTROL, e.cache_control.clone());
    h.insert(header::LAST_MODIFIED, e.last_modified.clone());
    h.insert(header::ETAG, e.etags[coding.index()].clone());
    if compress {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    match coding.header() {
        Some(ce) => {
            h.insert(header::CONTENT_ENCODING, ce);
        }
        None => {
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
    }
    crate::policy::headers::apply(&mut h, policy, tls);
    h
}

/// The compressed copy of a cached file, made once (off the event loop).
async fn packed(cache: &FileCache, e: &Arc<Entry>, coding: Coding) -> Option<Bytes> {
    let data = e.data.clone()?;
    if let Some(done) = &e.packed.lock().unwrap_or_else(PoisonError::into_inner)[slot(coding)] {
        return done.clone();
    }
    let out = tokio::task::spawn_blocking(move || transform::compress_all(coding, &data))
        .await
        .ok()?;
    // Not worth it unless it saves something.
    let keep = (out.len() < e.data.as_ref().map_or(0, Bytes::len)).then_some(out);
    cache.charge(keep.as_ref().map_or(0, Bytes::len));
    e.packed.lock().unwrap_or_else(PoisonError::into_inner)[slot(coding)] = Some(keep.clone());
    keep
}

/// `If-None-Match`: `*`, or a list of entity tags compared weakly; a tag of any coding of
/// this version matches (the client holds this content in some coding).
fn etag_list_matches(v: &HeaderValue, tag: &str) -> bool {
    let Ok(s) = v.to_str() else { return false };
    s.split(',').any(|t| {
        let t = t.trim();
        if t == "*" {
            return true;
        }
        let t = t.trim_start_matches("W/").trim_matches('"');
        t == tag
            || t.strip_prefix(tag)
                .is_some_and(|s| s == "-br" || s == "-gz")
    })
}

enum RangeAnswer {
    Whole,
    /// `[start, end)`.
    Part(u64, u64),
    Unsatisfiable,
}

/// One byte range (`a-b`, `a-`, `-n`). Several ranges, other units or malformed values are
/// ignored (the whole file is sent), as RFC 9110 allows.
fn parse_range(v: &HeaderValue, len: u64) -> RangeAnswer {
    let Some(spec) = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if len > 0 => RangeAnswer::Part(len.saturating_sub(n), len),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (a, "") => match num(a) {
            Some(a) if a < len => RangeAnswer::Part(a, len),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= len {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Part(a, b.min(len - 1) + 1)
                }
            }
            _ => RangeAnswer::Whole,
        },
    }
}

/// No `..` or `.` segment, no `\\` or NUL, and no dotfile segment (but `.well-known`)
/// unless `dotfiles`: one pass over the bytes.
fn safe_path(p: &str, dotfiles: bool) -> bool {
    let b = p.as_bytes();
    let mut seg_start = 0;
    for i in 0..=b.len() {
        let c = b.get(i).copied().unwrap_or(b'/');
        if c == b'\\' || c == 0 {
            return false;
        }
        if c == b'/' {
            let seg = &b[seg_start..i];
            if seg.first() == Some(&b'.')
                && (seg == b"." || seg == b".." || (!dotfiles && seg != b".well-known"))
            {
                return false;
            }
            seg_start = i + 1;
        }
    }
    true
}

/// A browser navigation (not a script, image or fetch): the SPA fallback applies only here,
/// so a missing `/assets/app.js` is a real 404.
fn is_navigation(h: &HeaderMap) -> bool {
    if let Some(mode) = h.get("sec-fetch-mode") {
        return mode == "navigate";
    }
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn file_body(path: &Path, start: u64, len: u64) -> Result<Body, Refusal> {
    use tokio::io::AsyncSeekExt;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|_| Refusal::NotFound)?;
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|_| Refusal::NotFound)?;
    }
    Ok(Body::stream(FileBody {
        file,
        remaining: len,
        buf: BytesMut::new(),
    }))
}

/// `Content-Type` from the extension, with `charset=utf-8` for text.
pub fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == "text"
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg"
        )
        || mime.suffix().is_some_and(|s| s == "xml" || s == "json");
    let value = if text && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// Streams a file in 64 KiB reads, never more than its length at open time.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = this.remaining.min(64 * 1024) as usize;
        this.buf.reserve(want);
        match tokio_util::io::poll_read_buf(Pin::new(&mut this.file), cx, &mut this.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Ok(0)) => Poll::Ready(Some(Err("file shrank while being sent".into()))),
            Poll::Ready(Ok(_)) => {
                // A file that grew since it was opened is cut at its announced length.
                this.buf
                    .truncate(this.remaining.min(this.buf.len() as u64) as usize);
                this.remaining -= this.buf.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str, len: u64) -> Option<(u64, u64)> {
        match parse_range(&HeaderValue::from_str(s).unwrap(), len) {
            RangeAnswer::Part(a, b) => Some((a, b)),
            RangeAnswer::Whole => Some((0, u64::MAX)),
            RangeAnswer::Unsatisfiable => None,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(range("bytes=-500", 100), Some((0, 100)));
        assert_eq!(range("bytes=50-500", 100), Some((50, 100)));
        assert_eq!(range("bytes=100-", 100), None);
        assert_eq!(range("bytes=-0", 100), None);
        assert_eq!(range("bytes=0-1,5-6", 100), Some((0, u64::MAX)));
        assert_eq!(range("items=0-1", 100), Some((0, u64::MAX)));
        assert_eq!(range("bytes=9-1", 100), Some((0, u64::MAX)));
        assert_eq!(range("bytes=x-1", 100), Some((0, u64::MAX)));
    }

    #[test]
    fn unsafe_paths() {
        for bad in [
            "/..",
            "/a/../b",
            "/.",
            "/a/./b",
            "/.env",
            "/a\\b",
            "/a\0",
            "/x/.git/config",
        ] {
            assert!(!safe_path(bad, false), "{bad}");
        }
        for ok in ["/", "/a/b.js", "/.well-known/x", "/a..b", "/a/b./c", ""] {
            assert!(safe_path(ok, false), "{ok}");
        }
        assert!(safe_path("/.env", true));
        assert!(!safe_path("/../x", true));
    }

    #[test]
    fn etags_compare_weakly_across_codings() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(etag_list_matches(&v("\"abc-1\""), "abc-1"));
        assert!(etag_list_matches(&v("W/\"abc-1\""), "abc-1"));
        assert!(etag_list_matches(&v("\"x\", \"abc-1-br\""), "abc-1"));
        assert!(etag_list_matches(&v("*"), "abc-1"));
        assert!(!etag_list_matches(&v("\"abc-2\""), "abc-1"));
        assert!(!etag_list_matches(&v("\"abc-1-zz\""), "abc-1"));
    }
}
