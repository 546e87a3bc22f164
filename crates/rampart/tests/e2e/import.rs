//! `rampart import nginx` on the nginx configs in `tests/nginx/` (the guides' blocks,
//! verbatim): every one imports into a config `rampart check` accepts, the untranslated
//! list is exactly what is expected, and guide 003's imported config behaves as its nginx
//! does (redirect, headers, both rate zones with their bursts).

use std::path::{Path, PathBuf};

use rampart_test_support::pki::Pki;
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;

use crate::harness::{bin, curl, serve_cmd};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nginx")
        .join(name)
}

/// Imports `name` into `dir/rampart.toml`; returns the untranslated lines it reported.
fn import(dir: &Path, name: &str) -> Vec<String> {
    let out = bin()
        .args(["import", "nginx"])
        .arg(corpus(name))
        .args(["-o", "rampart.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err.lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| {
            // `  /path/to/file.conf:LINE: directive (why)` → `LINE: directive`
            let l = l.trim();
            let after = l.split_once(".conf:").map_or(l, |(_, r)| r);
            after.split(" (").next().unwrap_or(after).to_owned()
        })
        .collect()
}

/// This host's certificate and static roots in place of the guide's paths.
fn localize(dir: &Path, pki: &Pki, rewrite: &[(&str, String)]) -> String {
    let leaf = pki.leaf_valid(
        "edge",
        &["localhost", "finia.example.com"],
        -3600,
        90 * 86_400,
    );
    let mut in_tls = false;
    let mut out = String::new();
    for line in std::fs::read_to_string(dir.join("rampart.toml"))
        .unwrap()
        .lines()
    {
        if line.starts_with('[') {
            in_tls = line == "[tls]";
        }
        let line = if in_tls && line.starts_with("cert = ") {
            format!("cert = \"{}\"", leaf.cert.display())
        } else if in_tls && line.starts_with("key = ") {
            format!("key = \"{}\"", leaf.key.display())
        } else {
            let mut l = line.to_owned();
            for (from, to) in rewrite {
                l = l.replace(from, to);
            }
            l
        };
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(dir.join("rampart.toml"), &out).unwrap();
    out
}

fn check(dir: &Path) {
    let out = bin()
        .args(["check", "-c", "rampart.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("rampart.toml")).unwrap()
    );
}

#[test]
fn the_guides_nginx_blocks_import_and_check() {
    let pki = Pki::new();
    // Guide 000: everything translates or is done by rampart itself.
    let tmp = TempDir::new("import-000");
    assert_eq!(
        import(tmp.path(), "guide-000-churnvision.conf"),
        Vec::<String>::new()
    );
    let toml = localize(tmp.path(), &pki, &[]);
    assert!(
        toml.contains("ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\""),
        "{toml}"
    );
    assert!(toml.contains("# Done by rampart itself:"), "{toml}");
    assert!(
        toml.contains("guide-000-churnvision.conf:46: proxy_set_header Connection upgrade"),
        "{toml}"
    );
    check(tmp.path());

    // Guide 001: the SPA root with try_files, /metrics for 127.0.0.1 only, HSTS preload.
    let tmp = TempDir::new("import-001");
    assert_eq!(
        import(tmp.path(), "guide-001-valor-ivx.conf"),
        Vec::<String>::new()
    );
    std::fs::create_dir_all(tmp.path().join("www")).unwrap();
    std::fs::write(tmp.path().join("www/index.html"), "<h1>valor</h1>").unwrap();
    let www = tmp.path().join("www").display().to_string();
    let toml = localize(tmp.path(), &pki, &[("/var/www/valor-frontend", www)]);
    for want in [
        "hsts_preload = true",
        "spa_fallback = \"index.html\"",
        "allow = [\"127.0.0.1/32\"]",
        "permissions_policy = \"geolocation=(), microphone=(), camera=()\"",
        // proxy_read_timeout 120 on /api/: the pool's response timeout.
        "response_timeout = \"120s\"",
    ] {
        assert!(toml.contains(want), "{want} in {toml}");
    }
    check(tmp.path());

    // Guide 003: two alternatives of one upstream: the second is named, not dropped.
    let tmp = TempDir::new("import-003");
    assert_eq!(
        import(tmp.path(), "guide-003-finia.conf"),
        ["115: upstream finia_api"]
    );
    let toml = localize(tmp.path(), &pki, &[]);
    for want in ["response_timeout = \"60s\"", "connect_timeout = \"60s\""] {
        assert!(toml.contains(want), "{want} in {toml}");
    }
    check(tmp.path());
}

/// Guide 003's nginx, imported and served in front of a real upstream: port 80
/// redirects, the headers are the guide's, `/api/` admits 21 at once (10 r/s, burst 20,
/// nodelay) and login 6 (5 r/m, burst 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_003_imported_behaves_as_its_nginx() {
    let up = Upstream::start("finia").await;
    let pki = Pki::new();
    let tmp = TempDir::new("import-003-serve");
    let dir = tmp.path().to_path_buf();
    import(&dir, "guide-003-finia.conf");
    localize(
        &dir,
        &pki,
        &[("\"api:8000\"", format!("\"{}\"", up.authority()))],
    );
    let mut cmd = bin();
    cmd.args([
        "serve",
        "-c",
        "rampart.toml",
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
    ]);
    let edge = tokio::task::spawn_blocking(move || serve_cmd(cmd, &dir, 2))
        .await
        .unwrap();
    let (https, http) = (edge.https.unwrap(), edge.http.unwrap());
    let resolve = format!("finia.example.com:{}:127.0.0.1", https.port());
    let url = |p: &str| format!("https://finia.example.com:{}{p}", https.port());
    let code = |p: &str| {
        curl(&[
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(p),
        ])
    };

    let h = curl(&[
        "-I",
        "-H",
        "Host: finia.example.com",
        &format!("http://127.0.0.1:{}/x", http.port()),
    ]);
    assert!(h.starts_with("HTTP/1.1 301"), "{h}");
    let h = curl(&["--resolve", &resolve, "-I", &url("/")]).to_ascii_lowercase();
    for want in [
        "x-frame-options: sameorigin",
        "strict-transport-security: max-age=31536000; includesubdomains",
        "referrer-policy: no-referrer-when-downgrade",
    ] {
        assert!(h.contains(want), "{want} in {h}");
    }
    // 10 r/s with a burst of 20: the first 21 at once pass, then only what the rate
    // refills while the requests are made.
    let started = std::time::Instant::now();
    let api: Vec<String> = (0..40).map(|_| code("/api/items")).collect();
    let refill = (started.elapsed().as_secs_f64() * 10.0).ceil() as usize + 1;
    assert!(api[..21].iter().all(|c| c == "200"), "{api:?}");
    let admitted = api.iter().filter(|c| *c == "200").count();
    assert!(
        admitted <= 21 + refill && api.contains(&"429".to_owned()),
        "{admitted} of {api:?}"
    );
    let login: Vec<String> = (0..7).map(|_| code("/api/auth/login")).collect();
    assert!(login[..6].iter().all(|c| c == "200"), "{login:?}");
    assert_eq!(login[6], "429", "{login:?}");
    drop(edge);
}
