//! Serving browsers (issue 5): traversal attempts, conditional and range requests, caching
//! rules, compression with q-values and precompressed siblings, CSP nonces (static and
//! proxied, gzip from the upstream), report-only, and the CSP report endpoint.

use std::io::Read;
use std::time::Duration;

use http::Request;
use rampart_test_support::client::{self, get, Resp};
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;

use crate::harness::{serve, start_in};

fn req(path: &str, headers: &[(&str, &str)]) -> Request<client::ReqBody> {
    let mut b = Request::get(path).header("host", "h");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(client::empty()).unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &b[..], &mut out).unwrap();
    out
}

fn decoded(r: &Resp) -> Vec<u8> {
    match r.header("content-encoding") {
        Some("gzip") => gunzip(&r.body),
        Some("br") => unbrotli(&r.body),
        None => r.body.to_vec(),
        Some(other) => panic!("unexpected coding {other}"),
    }
}

const APP_JS: &str = "function hello(){return 'all work and no play makes jack a dull boy';}\n";

async fn site(extra: &str) -> crate::harness::TestEdge {
    let dir = TempDir::new("site");
    dir.write("www/index.html", "<!doctype html><h1>home</h1>");
    dir.write("www/app.js", APP_JS.repeat(40));
    dir.write("www/small.css", "p{}");
    dir.write("www/logo.png", vec![0x89u8; 4000]);
    dir.write("www/assets/index-BnNmW0n4.js", APP_JS.repeat(40));
    dir.write("www/assets/app.js", "unhashed, replaced on every deploy");
    dir.write("www/static/js/main.3f2a1b9c.js", "x");
    dir.write("www/report.pdf", "%PDF");
    dir.write("www/.env", "SECRET=1");
    dir.write("www/.git/config", "[core]");
    dir.write("www/.well-known/security.txt", "Contact: x");
    dir.write("www/sub/page.txt", "0123456789abcdefghij");
    dir.write("secret.txt", "outside the root");
    dir.write("www..evil/x.txt", "sibling dir");
    std::os::unix::fs::symlink(
        dir.path().join("secret.txt"),
        dir.path().join("www/link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("www/up")).unwrap();
    // A precompressed sibling with different content proves the sibling is what is sent.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"FROM THE .gz SIBLING").unwrap();
    dir.write("www/pre.js", APP_JS.repeat(40));
    dir.write("www/pre.js.gz", gz.finish().unwrap());
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\npath = \"/\"\nstatic = \"www\"\n{extra}\n"
    );
    start_in(dir, &toml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_never_leave_the_root() {
    let edge = site("").await;
    let payloads = [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%5csecret.txt",
        "/..%5csecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/sub/../../secret.txt",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "/secret.txt%00.html",
        "/index.html%00",
        "/%00",
        "/link.txt",
        "/up/secret.txt",
        "/%252e%252e/secret.txt",
        "/..;/secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%uff0e%uff0e/secret.txt",
        "/....//secret.txt",
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/sub/../.env",
        "//etc/passwd",
        "/www..evil/x.txt",
        "/../www..evil/x.txt",
    ];
    assert!(payloads.len() >= 20);
    for p in payloads {
        let r = client::raw(
            edge.http(),
            format!("GET {p} HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        let status: u16 = r
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{p}: no answer: {r:?}"));
        assert!([400, 404].contains(&status), "{p}: status {status}: {r}");
        for leaked in [
            "outside the root",
            "root:",
            "SECRET=1",
            "[core]",
            "sibling dir",
        ] {
            assert!(!r.contains(leaked), "{p} leaked {leaked:?}");
        }
    }
    // Still up, still serving, .well-known still public.
    let r = client::plain(edge.http(), get("h", "/.well-known/security.txt")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "Contact: x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_and_dotfiles_only_when_allowed() {
    let edge = site("follow_symlinks = true\ndotfiles = true").await;
    let r = client::plain(edge.http(), get("h", "/link.txt")).await;
    assert_eq!(r.text(), "outside the root");
    let r = client::plain(edge.http(), get("h", "/.env")).await;
    assert_eq!(r.status, 200);
    // `..` stays refused with dotfiles on.
    let r = client::plain(edge.http(), get("h", "/%2e%2e/secret.txt")).await;
    assert!([400, 404].contains(&r.status.as_u16()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests_answer_304() {
    let edge = site("revalidate_after = \"0s\"").await;
    let r = client::plain(edge.http(), get("h", "/sub/page.txt")).await;
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let cases: [(&[(&str, &str)], u16); 7] = [
        (&[("if-none-match", &etag)], 304),
        (&[("if-none-match", &format!("W/{etag}"))], 304),
        (&[("if-none-match", &format!("\"nope\", {etag}"))], 304),
        (&[("if-none-match", "*")], 304),
        (&[("if-none-match", "\"nope\"")], 200),
        (&[("if-modified-since", &lm)], 304),
        // If-None-Match wins over If-Modified-Since.
        (
            &[("if-none-match", "\"nope\""), ("if-modified-since", &lm)],
            200,
        ),
    ];
    for (h, want) in cases {
        let r = client::plain(edge.http(), req("/sub/page.txt", h)).await;
        assert_eq!(r.status.as_u16(), want, "{h:?}");
        if want == 304 {
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag"), Some(etag.as_str()));
            assert!(r.header("cache-control").is_some());
        }
    }
    let r = client::plain(
        edge.http(),
        req(
            "/sub/page.txt",
            &[("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")],
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    // A changed file is a new version at once: new ETag, new body.
    std::thread::sleep(Duration::from_millis(20));
    edge.dir.write("www/sub/page.txt", "changed!");
    let r = client::plain(
        edge.http(),
        req("/sub/page.txt", &[("if-none-match", &etag)]),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "changed!"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests() {
    let edge = site("").await;
    let body = "0123456789abcdefghij";
    let cases: [(&str, u16, &str, Option<&str>); 8] = [
        ("bytes=0-4", 206, "01234", Some("bytes 0-4/20")),
        ("bytes=15-", 206, "fghij", Some("bytes 15-19/20")),
        ("bytes=-3", 206, "hij", Some("bytes 17-19/20")),
        ("bytes=18-100", 206, "ij", Some("bytes 18-19/20")),
        ("bytes=0-1,4-5", 200, body, None),
        ("lines=1-2", 200, body, None),
        ("bytes=20-", 416, "", Some("bytes */20")),
        ("bytes=-0", 416, "", Some("bytes */20")),
    ];
    for (range, status, want, content_range) in cases {
        let r = client::plain(edge.http(), req("/sub/page.txt", &[("range", range)])).await;
        assert_eq!(r.status.as_u16(), status, "{range}");
        if status != 416 {
            assert_eq!(r.text(), want, "{range}");
            assert_eq!(
                r.header("content-length"),
                Some(want.len().to_string().as_str())
            );
        }
        assert_eq!(r.header("content-range"), content_range, "{range}");
    }
    let etag = client::plain(edge.http(), get("h", "/sub/page.txt"))
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let r = client::plain(
        edge.http(),
        req(
            "/sub/page.txt",
            &[("range", "bytes=0-1"), ("if-range", &etag)],
        ),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (206, "01"));
    let r = client::plain(
        edge.http(),
        req(
            "/sub/page.txt",
            &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
        ),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, body));
    // A range of a compressible file is never compressed.
    let r = client::plain(
        edge.http(),
        req(
            "/app.js",
            &[("range", "bytes=0-7"), ("accept-encoding", "br, gzip")],
        ),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (206, "function"));
    assert_eq!(r.header("content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_follows_q_values() {
    let edge = site("").await;
    let full = APP_JS.repeat(40);
    let cases: [(&str, Option<&str>); 7] = [
        ("gzip, deflate, br", Some("br")),
        ("gzip;q=1.0, br;q=0.5", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("*", Some("br")),
        ("identity", None),
        ("gzip;q=0, br;q=0", None),
        ("deflate", None),
    ];
    let mut tags = std::collections::HashSet::new();
    for (accept, want) in cases {
        let r = client::plain(edge.http(), req("/app.js", &[("accept-encoding", accept)])).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), want, "{accept}");
        assert_eq!(decoded(&r), full.as_bytes(), "{accept}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        if want.is_some() {
            assert!(
                r.body.len() < full.len() / 4,
                "{accept}: {} bytes",
                r.body.len()
            );
        }
        tags.insert(r.header("etag").unwrap().to_owned());
        // Each coding's ETag revalidates.
        let etag = r.header("etag").unwrap().to_owned();
        let r = client::plain(
            edge.http(),
            req(
                "/app.js",
                &[("accept-encoding", accept), ("if-none-match", &etag)],
            ),
        )
        .await;
        assert_eq!(r.status, 304);
    }
    assert_eq!(
        tags.len(),
        3,
        "identity, br and gzip have distinct ETags: {tags:?}"
    );
    // Too small, or already compressed: sent as they are.
    for p in ["/small.css", "/logo.png"] {
        let r = client::plain(edge.http(), req(p, &[("accept-encoding", "br, gzip")])).await;
        assert_eq!(r.header("content-encoding"), None, "{p}");
    }
    // A precompressed sibling is preferred.
    let r = client::plain(edge.http(), req("/pre.js", &[("accept-encoding", "gzip")])).await;
    assert_eq!(decoded(&r), b"FROM THE .gz SIBLING");
    let r = client::plain(edge.http(), req("/pre.js", &[("accept-encoding", "br")])).await;
    assert_eq!(
        decoded(&r),
        full.as_bytes(),
        "no .br sibling: compressed by the edge"
    );
    // HEAD: the same headers, no body.
    let r = client::plain(
        edge.http(),
        Request::head("/app.js")
            .header("host", "h")
            .header("accept-encoding", "br")
            .body(client::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert!(r.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_by_rule() {
    let edge = site(
        "html_cache = \"max-age=3600\"\n[[routes.cache]]\nglob = \"*.pdf\"\ncontrol = \"public, max-age=86400\"\n",
    )
    .await;
    let immutable = "public, max-age=31536000, immutable";
    for (p, want) in [
        ("/", "max-age=3600"),
        ("/assets/index-BnNmW0n4.js", immutable),
        // Under assets/ but without a content hash: a redeploy must reach browsers.
        ("/assets/app.js", "no-cache"),
        ("/static/js/main.3f2a1b9c.js", immutable),
        ("/app.js", "no-cache"),
        ("/report.pdf", "public, max-age=86400"),
    ] {
        let r = client::plain(edge.http(), get("h", p)).await;
        assert_eq!(r.header("cache-control"), Some(want), "{p}");
    }
    let edge = site("").await;
    let r = client::plain(edge.http(), get("h", "/")).await;
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    // By default a file kept in memory is checked again after a second.
    let r = client::plain(edge.http(), get("h", "/sub/page.txt")).await;
    assert_eq!(r.text(), "0123456789abcdefghij");
    edge.dir.write("www/sub/page.txt", "new version");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = client::plain(edge.http(), get("h", "/sub/page.txt")).await;
    assert_eq!(r.text(), "new version");
    // The window itself: within revalidate_after the kept copy is served, after it the
    // new file, and not before.
    let edge = site("revalidate_after = \"3s\"\n").await;
    let t0 = std::time::Instant::now();
    let r = client::plain(edge.http(), get("h", "/sub/page.txt")).await;
    assert_eq!(r.text(), "0123456789abcdefghij");
    edge.dir.write("www/sub/page.txt", "new version");
    let r = client::plain(edge.http(), get("h", "/sub/page.txt")).await;
    assert_eq!(
        r.text(),
        "0123456789abcdefghij",
        "served from memory inside the window"
    );
    let h = edge.http();
    let seen_new = rampart_test_support::eventually(Duration::from_secs(10), || {
        let r = crate::harness::futures_block(client::plain(h, get("h", "/sub/page.txt")));
        (r.text() == "new version").then(|| t0.elapsed())
    })
    .await
    .expect("the new file was never served");
    assert!(
        seen_new >= Duration::from_millis(2900),
        "revalidated after {seen_new:?}"
    );
}

fn nonce_of(csp: &str) -> String {
    let i = csp.find("'nonce-").expect("no nonce in CSP") + 7;
    csp[i..].split('\'').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csp_nonce_on_static_html() {
    let dir = TempDir::new("nonce");
    dir.write(
        "www/index.html",
        rampart_test_support::upstream::html_page("none"),
    );
    dir.write("www/app.js", APP_JS.repeat(40));
    let toml = "[server]\nhttp = \"127.0.0.1:0\"\n[headers]\ncsp = \"default-src 'self'; script-src 'self'\"\n[[routes]]\npath = \"/\"\nstatic = \"www\"\ncsp_nonce = true\n";
    let edge = start_in(dir, toml).await;
    let mut seen = Vec::new();
    for accept in ["identity", "gzip", "br"] {
        let r = client::plain(edge.http(), req("/", &[("accept-encoding", accept)])).await;
        let csp = r.header("content-security-policy").unwrap();
        let n = nonce_of(csp);
        assert!(
            csp.contains(&format!("script-src 'self' 'nonce-{n}'")),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("style-src 'self' 'nonce-{n}'")),
            "{csp}"
        );
        let html = String::from_utf8(decoded(&r)).unwrap();
        // <style>, <link rel=stylesheet>, three <script>s; not the icon link.
        assert_eq!(html.matches(&format!("nonce=\"{n}\"")).count(), 5, "{html}");
        assert!(html.contains("<link rel=\"icon\" href=\"/f.ico\">"));
        assert!(r.header("etag").is_none() && r.header("content-length").is_none());
        assert_eq!(r.header("cache-control"), Some("no-cache, private"));
        seen.push(n);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "a fresh nonce per response");
    // Not HTML: untouched, still compressed and cacheable.
    let r = client::plain(edge.http(), req("/app.js", &[("accept-encoding", "gzip")])).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.header("etag").is_some());
    assert_eq!(decoded(&r), APP_JS.repeat(40).as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csp_nonce_on_proxied_html_even_gzipped() {
    let up = Upstream::start("a").await;
    let dir = TempDir::new("nonce-proxy");
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\ncsp_nonce = true\n",
        up.authority()
    );
    let edge = start_in(dir, &toml).await;
    for (path, accept) in [
        ("/html", "identity"),
        ("/html-gz", "gzip"),
        ("/html-gz", "br"),
        ("/html-gz", "identity"),
    ] {
        let r = client::plain(edge.http(), req(path, &[("accept-encoding", accept)])).await;
        let csp = r.header("content-security-policy").unwrap();
        let n = nonce_of(csp);
        // The default policy has no script-src: it is derived from default-src.
        assert!(
            csp.contains(&format!("script-src 'self' 'nonce-{n}'")),
            "{csp}"
        );
        let want_coding = match accept {
            "identity" => None,
            other => Some(other),
        };
        assert_eq!(r.header("content-encoding"), want_coding, "{path} {accept}");
        let html = String::from_utf8(decoded(&r)).unwrap();
        assert_eq!(
            html.matches(&format!("nonce=\"{n}\"")).count(),
            5,
            "{path}: {html}"
        );
        // The upstream was given the same nonce.
        assert!(html.contains(&format!("upstream-nonce:{n}")), "{html}");
        assert!(r.header("etag").is_none());
    }
    // A client cannot choose the nonce.
    let r = client::plain(edge.http(), req("/html", &[("x-csp-nonce", "attacker")])).await;
    assert!(!r.text().contains("attacker"));
    // Non-HTML from the same route passes untouched.
    let r = client::plain(edge.http(), get("h", "/text/3000")).await;
    assert_eq!(r.body.len(), 3000);
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("'nonce-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_responses_compressed_when_asked() {
    let up = Upstream::start("a").await;
    let dir = TempDir::new("compress-proxy");
    let toml = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[upstreams.app]\nservers = [\"{a}\"]\n[[routes]]\npath = \"/plain\"\nstrip_prefix = true\nupstream = \"app\"\n[[routes]]\npath = \"/\"\nupstream = \"app\"\ncompress = true\n",
        a = up.authority()
    );
    let edge = start_in(dir, &toml).await;
    let r = client::plain(
        edge.http(),
        req("/text/50000", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&r.body).len(), 50000);
    assert!(r.body.len() < 2000);
    let r = client::plain(
        edge.http(),
        req("/text/100", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!(
        r.header("content-encoding"),
        None,
        "under compress_min_size"
    );
    let r = client::plain(
        edge.http(),
        req("/big/5000", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!(
        r.header("content-encoding"),
        None,
        "no content type: not compressible"
    );
    // Already encoded by the upstream: passed as is.
    let r = client::plain(edge.http(), req("/html-gz", &[("accept-encoding", "br")])).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // Routes without `compress` (the default for upstreams) never compress.
    let r = client::plain(
        edge.http(),
        req("/plain/text/50000", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, 50000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_rollout() {
    let dir = TempDir::new("ro");
    dir.write("www/index.html", "<script>1</script>");
    let toml = "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\npath = \"/\"\nstatic = \"www\"\ncsp_report_only = true\ncsp_nonce = true\n";
    let edge = start_in(dir, toml).await;
    let r = client::plain(edge.http(), get("h", "/")).await;
    assert!(r.header("content-security-policy").is_none());
    let ro = r.header("content-security-policy-report-only").unwrap();
    assert!(
        ro.contains("report-uri /csp-report; report-to csp-endpoint"),
        "{ro}"
    );
    assert!(ro.contains("'nonce-"), "{ro}");
    assert_eq!(
        r.header("reporting-endpoints"),
        Some("csp-endpoint=\"/csp-report\"")
    );
}

fn post(path: &str, ct: &str, body: impl Into<bytes::Bytes>) -> Request<client::ReqBody> {
    Request::post(path)
        .header("host", "h")
        .header("content-type", ct)
        .body(client::full(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_endpoint_accepts_both_formats_and_refuses_the_rest() {
    let dir = TempDir::new("report");
    dir.write("www/index.html", "x");
    dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[csp_report]\nmax_body = \"4KB\"\nrate = \"5/m\"\nburst = 9\n[[routes]]\npath = \"/\"\nstatic = \"www\"\n",
    );
    let mut p = serve(dir.path(), &[], 1);
    let addr = p.http.unwrap();
    let legacy = r#"{"csp-report":{"document-uri":"https://app.example/page?token=abc","violated-directive":"script-src-elem","effective-directive":"script-src-elem","blocked-uri":"inline","source-file":"https://app.example/page","line-number":7,"disposition":"enforce"}}"#;
    let r = client::plain(addr, post("/csp-report", "application/csp-report", legacy)).await;
    assert_eq!(r.status, 204);
    let line = p
        .wait_for_line("csp.violation", Duration::from_secs(5))
        .expect("no audit line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let f = &v;
    assert_eq!(f["directive"], "script-src-elem");
    assert_eq!(
        f["document_uri"], "https://app.example/page",
        "query removed"
    );
    assert_eq!(f["blocked_uri"], "inline");
    assert_eq!(f["line"], 7);
    assert!(!line.contains("token=abc"));
    let modern = r#"[{"type":"csp-violation","age":1,"url":"https://app.example/","user_agent":"x","body":{"documentURL":"https://app.example/","effectiveDirective":"style-src-attr","blockedURL":"inline","sourceFile":"https://app.example/s.js","lineNumber":3,"disposition":"report"}}]"#;
    let r = client::plain(
        addr,
        post("/csp-report", "application/reports+json", modern),
    )
    .await;
    assert_eq!(r.status, 204);
    let line = p
        .wait_for_line("style-src-attr", Duration::from_secs(5))
        .expect("no audit line for the Reporting API body");
    assert!(line.contains("https://app.example/s.js"));
    // Malformed bodies: 400, and the edge stays up.
    for bad in [
        "{",
        "[]x",
        "{\"csp-report\": 1}",
        "[{\"type\":\"csp-violation\",\"body\":5}]",
        "\"just a string\"",
        "{\"not\":\"a report\"}",
    ] {
        let r = client::plain(addr, post("/csp-report", "application/csp-report", bad)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["request_id"].is_string());
    }
    let r = client::plain(addr, post("/csp-report", "text/plain", legacy)).await;
    assert_eq!(r.status, 415);
    let r = client::plain(
        addr,
        post("/csp-report", "application/csp-report", vec![b' '; 5000]),
    )
    .await;
    assert_eq!(r.status, 413);
    let r = client::plain(addr, get("h", "/csp-report")).await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("POST")));
    // Rate: 9 burst + 1, then 429 (10 used above already).
    let r = client::plain(addr, post("/csp-report", "application/csp-report", legacy)).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let r = client::plain(addr, get("h", "/")).await;
    assert_eq!(r.status, 200, "still serving");
}

/// A 20 MB proxied HTML page is rewritten as it streams: the edge's peak memory (its own
/// process) grows by far less than the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_html_streams_through_the_nonce_rewrite() {
    let up = Upstream::start("a").await;
    let dir = TempDir::new("big-html");
    dir.write(
        "rampart.toml",
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nworkers = 1\n[upstreams.app]\nservers = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\ncsp_nonce = true\ncompress = true\n",
            up.authority()
        ),
    );
    let p = serve(dir.path(), &[], 1);
    let addr = p.http.unwrap();
    let hwm = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let _ = fetch_big(addr, 100_000, "identity").await;
    let base = hwm();
    let (n5, k5) = fetch_big(addr, 5_000_000, "identity").await;
    let after5 = hwm();
    let (n20, k20) = fetch_big(addr, 20_000_000, "gzip").await;
    let after20 = hwm();
    eprintln!("edge VmHWM: {base} KiB at start, {after5} after 5 MB, {after20} after 20 MB (gzip)");
    assert!(n5 > 5_000_000 && n20 > 20_000_000);
    assert!(
        k5 > 50_000 && k20 > 200_000,
        "every script got its nonce: {k5} {k20}"
    );
    assert!(
        after20 - base < 6 * 1024,
        "peak grew by {} KiB for a 20 MB page",
        after20 - base
    );
}

/// Streams `/html-big/SIZE` and counts decoded bytes and nonces without keeping the page.
async fn fetch_big(addr: std::net::SocketAddr, size: usize, accept: &str) -> (usize, usize) {
    use http_body_util::BodyExt;
    let mut c = client::Conn::plain(addr).await;
    let resp = c
        .send_streaming(req(
            &format!("/html-big/{size}"),
            &[("accept-encoding", accept)],
        ))
        .await
        .unwrap();
    let gz = resp.headers().get("content-encoding").is_some();
    let mut body = resp.into_body();
    let (mut n, mut nonces) = (0, 0);
    let mut dec = flate2::write::MultiGzDecoder::new(Vec::new());
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            let plain = if gz {
                std::io::Write::write_all(&mut dec, &d).unwrap();
                std::mem::take(dec.get_mut())
            } else {
                d.to_vec()
            };
            n += plain.len();
            nonces += plain.windows(7).filter(|w| w == b"nonce=\"").count();
        }
    }
    (n, nonces)
}
