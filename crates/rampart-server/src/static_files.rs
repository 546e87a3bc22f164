//! Static files from a route's directory (the simple version: files, index files, SPA
//! fallback for navigation requests; caching, ranges and compression come later).
//!
//! # Security
//! The path is normalised by the router (no `..`, no encoded `/`, `\` or NUL), dotfiles
//! are hidden (except `/.well-known/`), and the resolved file must lie inside the root after
//! symlinks are followed, so a symlink cannot lead out of the root. Directories are never
//! listed.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};
use crate::refusal::Refusal;

/// A static root as configured.
#[derive(Debug)]
pub struct StaticRoot<'a> {
    /// Canonical root directory.
    pub dir: &'a Path,
    /// Index file name.
    pub index: &'a str,
    /// Fallback file for navigation requests.
    pub spa_fallback: Option<&'a str>,
}

/// Answers a GET or HEAD for `rel` (normalised, route prefix removed, query excluded).
///
/// # Errors
/// A [`Refusal`] for a missing file, a bad method, or an I/O error.
pub async fn serve(
    root: &StaticRoot<'_>,
    method: &Method,
    headers: &HeaderMap,
    rel: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Refusal> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Refusal::MethodNotAllowed(HeaderValue::from_static(
            "GET, HEAD",
        )));
    }
    let Some(decoded) = percent_decode(rel) else {
        return Err(Refusal::BadRequest("bad_request"));
    };
    let hidden = decoded
        .split('/')
        .any(|s| s.starts_with('.') && s != ".well-known");
    if hidden || decoded.contains('\\') || decoded.contains('\0') {
        return Err(Refusal::NotFound);
    }
    let mut path = root.dir.join(decoded.trim_start_matches('/'));
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_dir() => {
            if !rel.ends_with('/') {
                // Like nginx: a directory without its slash is redirected, so relative
                // links inside its index resolve.
                let mut loc = format!("{rel}/");
                if let Some(q) = query {
                    loc.push('?');
                    loc.push_str(q);
                }
                return Ok(redirect(&loc));
            }
            path.push(root.index);
        }
        _ => {}
    }
    match open_inside(root.dir, &path).await {
        Some((file, len, p)) => Ok(file_response(method, file, len, &p)),
        None => {
            if let Some(fallback) = root.spa_fallback.filter(|_| is_navigation(headers)) {
                let p = root.dir.join(fallback);
                if let Some((file, len, p)) = open_inside(root.dir, &p).await {
                    return Ok(file_response(method, file, len, &p));
                }
            }
            Err(Refusal::NotFound)
        }
    }
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

async fn open_inside(root: &Path, path: &Path) -> Option<(tokio::fs::File, u64, PathBuf)> {
    let real = tokio::fs::canonicalize(path).await.ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let file = tokio::fs::File::open(&real).await.ok()?;
    let meta = file.metadata().await.ok()?;
    meta.is_file().then_some((file, meta.len(), real))
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn file_response(method: &Method, file: tokio::fs::File, len: u64, path: &Path) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::Empty
    } else {
        Body::Boxed(
            FileBody {
                file,
                remaining: len,
                buf: BytesMut::new(),
            }
            .boxed(),
        )
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type(path));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
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

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
