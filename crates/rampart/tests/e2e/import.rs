//! `rampart import nginx` on the nginx configs in `tests/nginx/` (the guides' blocks,
//! verbatim): every one imports into a config `rampart check` accepts, the untranslated
//! list is exactly what is expected, and guide 003's imported config behaves as its nginx
//! does (redirect, headers, both rate zones with their bursts).

use std::path::{Path, PathBuf};

use rampart_test_support::pki::Pki;
use rampart_test_support::upstream::Upstream;
use rampart_test_support::TempDir;

use crate::harness::{bin, curl};

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
    let main = format!("{}:", corpus(name).display());
    let root = format!(
        "{}/",
        corpus("").display().to_string().trim_end_matches('/')
    );
    err.lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("  ~ "))
        .map(|l| {
            // `  /…/tests/nginx/NAME:LINE: directive (why)` → `LINE: directive`, and
            // `  /…/tests/nginx/OTHER:LINE: …` (an included file) → `OTHER:LINE: …`.
            let l = l.trim();
            let l = l
                .strip_prefix(&main)
                .or_else(|| l.strip_prefix(&root))
                .unwrap_or(l);
            l.split(" (").next().unwrap_or(l).to_owned()
        })
        .collect()
}

/// Every static root of an imported config replaced by a directory made here, and the
/// certificate by a test one: what `rampart check` needs to accept it on this machine.
fn localize_all(dir: &Path, pki: &Pki) {
    localize_with(dir, pki, &[], true);
}

/// This host's certificate and static roots in place of the guide's paths.
fn localize(dir: &Path, pki: &Pki, rewrite: &[(&str, String)]) -> String {
    localize_with(dir, pki, rewrite, false)
}

/// The test certificate in `[tls]`, `rewrite` applied to every other line, and, with
/// `fresh_roots`, each `static` root replaced by a new directory here.
fn localize_with(dir: &Path, pki: &Pki, rewrite: &[(&str, String)], fresh_roots: bool) -> String {
    let leaf = pki.leaf_valid(
        "edge",
        &["localhost", "finia.example.com"],
        -3600,
        90 * 86_400,
    );
    let mut in_tls = false;
    let mut out = String::new();
    for (i, line) in std::fs::read_to_string(dir.join("rampart.toml"))
        .unwrap()
        .lines()
        .enumerate()
    {
        if line.starts_with('[') {
            in_tls = line == "[tls]";
        }
        let line = if in_tls && line.starts_with("cert = ") {
            format!("cert = \"{}\"", leaf.cert.display())
        } else if in_tls && line.starts_with("key = ") {
            format!("key = \"{}\"", leaf.key.display())
        } else if fresh_roots && line.starts_with("static = ") {
            let root = dir.join(format!("static{i}"));
            std::fs::create_dir_all(&root).unwrap();
            format!("static = \"{}\"", root.display())
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
    let edge = serve_imported(&dir).await;
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

/// Real-world nginx configs (sources in `tests/nginx/README.md`): each imports, the list
/// of what was not translated is exactly the expected one (never silent), and with this
/// machine's paths `rampart check` accepts the result.
#[test]
fn real_world_configs_import_and_check() {
    let pki = Pki::new();
    for (name, want) in REAL_WORLD {
        let tmp = TempDir::new("import-real");
        let got = import(tmp.path(), name);
        assert_eq!(got, *want, "{name}");
        localize_all(tmp.path(), &pki);
        check(tmp.path());
    }
}

/// Each real-world config and exactly what it leaves untranslated (`LINE: directive`,
/// or `FILE:LINE: directive` for an included file).
const REAL_WORLD: &[(&str, &[&str])] = &[
    ("real/discourse.conf", &[
        "7: server unix:/var/www/discourse/tmp/sockets/thin.0.sock",
        "8: server unix:/var/www/discourse/tmp/sockets/thin.1.sock",
        "9: server unix:/var/www/discourse/tmp/sockets/thin.2.sock",
        "10: server unix:/var/www/discourse/tmp/sockets/thin.3.sock",
        "13: proxy_cache_path /var/nginx/cache keys_zone=one:10m max_size=200m",
        "23: map $http_x_forwarded_proto $thescheme",
        "64: set $public /var/www/discourse/public",
        "84: root $public",
        "90: location ~* assets/.*\\.(eot|ttf|woff|woff2|ico)$",
        "107: location ~ ^/assets/(?<asset_path>.+)$",
        "118: location ~ ^/plugins/",
        "124: location ~ /_?emoji.*\\.(png|gif|jpg|jpeg)$/",
        "141: proxy_set_header X-Accel-Mapping $public/=/downloads/",
        "150: location ~ /stylesheet-cache/",
        "154: location ~* \\.(gif|png|jpg|jpeg|bmp|tif|tiff|svg|ico|webp)$",
        "158: location ~ /_?optimized/",
        "172: proxy_set_header X-Accel-Mapping $public/=/downloads/",
        "188: proxy_ignore_headers Set-Cookie",
        "192: proxy_cache one",
        "193: proxy_cache_valid 200 301 302 7d",
        "194: proxy_cache_valid any 1m",
        "201: proxy_method GET",
        "202: proxy_pass_request_headers off",
        "203: proxy_pass_request_body off",
        "207: proxy_ignore_headers Set-Cookie",
        "210: proxy_cache one",
        "211: proxy_cache_key $uri",
        "212: proxy_cache_valid 200 7d",
        "213: proxy_cache_valid 404 1m",
        "216: proxy_pass https://avatars.discourse.org/",
        "238: alias $public/",
    ]),
    ("real/gitlab-ssl.conf", &[
        "42: server unix:/home/git/gitlab/tmp/sockets/gitlab.socket fail_timeout=0",
        "46: server unix:/home/git/gitlab/tmp/sockets/gitlab-workhorse.socket fail_timeout=0",
        "57: server_name YOUR_SERVER_FQDN",
        "69: server_name YOUR_SERVER_FQDN",
        "202: client_max_body_size 0",
        "252: error_page 502 /502.html",
    ]),
    ("real/grafana.conf", &[]),
    ("real/gunicorn.conf", &[
        "27: server unix:/tmp/gunicorn.sock fail_timeout=0",
        "68: error_page 500 502 503 504 /500.html",
    ]),
    ("real/mastodon.conf", &[
        "14: proxy_cache_path /var/cache/nginx levels=1:2 keys_zone=CACHE:10m inactive=7d max_size=1g",
        "109: proxy_pass_header Server",
        "118: proxy_cache CACHE",
        "119: proxy_cache_valid 200 7d",
        "120: proxy_cache_valid 410 24h",
        "121: proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504",
        "122: add_header X-Cached $upstream_cache_status",
        "146: error_page 404 500 501 502 503 504 /500.html",
    ]),
    ("real/netbox.conf", &[]),
    ("real/nextcloud.conf", &[
        "9: map $arg_v $asset_immutable",
        "57: fastcgi_buffers 64 4K",
        "85: fastcgi_hide_header X-Powered-By",
        "107: index index.php index.html /index.php$request_uri",
        "111: if",
        "153: rewrite ^/(?!index|remote|public|cron|core\\/ajax\\/update|status|ocs\\/v[12]|updater\\/.+|ocs-provider\\/.+|.+\\/richdocumentscode(_arm64)?\\/proxy) /index.php$request_uri",
        "155: fastcgi_split_path_info ^(.+?\\.php)(/.*)$",
        "156: set $path_info $fastcgi_path_info",
        "160: include fastcgi_params",
        "161: fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name",
        "162: fastcgi_param PATH_INFO $path_info",
        "163: fastcgi_param HTTPS on",
        "165: fastcgi_param modHeadersAvailable true",
        "166: fastcgi_param front_controller_active true",
        "167: fastcgi_pass php-handler",
        "169: fastcgi_intercept_errors on",
        "170: fastcgi_request_buffering off",
        "172: fastcgi_max_temp_file_size 0",
        "177: try_files $uri /index.php$request_uri",
        "179: add_header Cache-Control public, max-age=15778463$asset_immutable",
        "190: try_files $uri /index.php$request_uri",
        "201: try_files $uri $uri/ /index.php$request_uri",
    ]),
    ("real/nginx-stock.conf", &[
        "48: location /test",
        "49: set $random_v3 abc",
        "50: set $out $random_200-$random_200/end",
        "51: rewrite ^(.*)$ /rew$1-$random_200-$random_200",
        "52: add_header X-Out $out",
        "53: add_header X-URI $uri/end",
        "54: return 200 $random_v3-$random_200-$random_200/end\\n",
        "61: error_page 500 502 503 504 /50x.html",
    ]),
    ("real/sentry-self-hosted.conf", &[
        "113: proxy_pass http://sentry/_static/dist/sentry/",
    ]),
    ("real/h5bp-server-configs/nginx.conf", &[
        "real/h5bp-server-configs/h5bp/web_performance/cache_expiration.conf:14: map $sent_http_content_type $expires",
        "real/h5bp-server-configs/h5bp/web_performance/cache_expiration.conf:63: expires $expires",
        "53: include custom.d/*.conf",
        "107: map $sent_http_content_type $cache_control",
        "135: map $sent_http_content_type $x_frame_options",
        "141: map $sent_http_content_type $content_security_policy",
        "147: map $sent_http_content_type $permissions_policy",
        "153: map $sent_http_content_type $referrer_policy",
        "160: map $sent_http_content_type $coep_policy",
        "164: map $sent_http_content_type $coop_policy",
        "168: map $sent_http_content_type $corp_policy",
        "174: map $sent_http_content_type $cors",
    ]),
    ("real/h5bp-server-configs/conf.d/templates/example.com.conf", &[
        "real/h5bp-server-configs/h5bp/cross-origin/requests.conf:18: add_header Access-Control-Allow-Origin $cors",
        "real/h5bp-server-configs/h5bp/errors/custom_errors.conf:9: error_page 404 /404.html",
        "real/h5bp-server-configs/h5bp/location/security_file_access.conf:20: location ~* /\\.(?!well-known\\/)",
        "real/h5bp-server-configs/h5bp/security/referrer-policy.conf:25: add_header Referrer-Policy $referrer_policy always",
        "real/h5bp-server-configs/h5bp/security/x-frame-options.conf:37: add_header X-Frame-Options $x_frame_options always",
    ]),
];

/// Starts the imported config in `dir` on ephemeral ports.
async fn serve_imported(dir: &Path) -> crate::harness::Proc {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || crate::harness::serve_http_https(&dir))
        .await
        .unwrap()
}

/// Guide 000's nginx, imported, in front of two real upstreams: port 80 redirects,
/// `/api/` and `/health` reach the backend, everything else the frontend, with the
/// guide's three headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_000_imported_behaves_as_its_nginx() {
    let (backend, frontend) = (
        Upstream::start("backend").await,
        Upstream::start("frontend").await,
    );
    let pki = Pki::new();
    let tmp = TempDir::new("import-000-serve");
    import(tmp.path(), "guide-000-churnvision.conf");
    localize(
        tmp.path(),
        &pki,
        &[
            ("\"backend:8000\"", format!("\"{}\"", backend.authority())),
            ("\"frontend:80\"", format!("\"{}\"", frontend.authority())),
        ],
    );
    let edge = serve_imported(tmp.path()).await;
    let (https, http) = (edge.https.unwrap(), edge.http.unwrap());
    let host = "churnvision.yourcompany.com";
    let resolve = format!("{host}:{}:127.0.0.1", https.port());
    let get = |p: &str| {
        curl(&[
            "--resolve",
            &resolve,
            "-D",
            "-",
            &format!("https://{host}:{}{p}", https.port()),
        ])
        .to_ascii_lowercase()
    };
    let h = curl(&[
        "-I",
        "-H",
        &format!("Host: {host}"),
        &format!("http://127.0.0.1:{}/dashboard?x=1", http.port()),
    ]);
    assert!(h.starts_with("HTTP/1.1 301"), "{h}");
    // The HTTPS listener's port is kept (an ephemeral one here; 443 is left out).
    assert!(
        h.to_ascii_lowercase().contains(&format!(
            "location: https://{host}:{}/dashboard?x=1",
            https.port()
        )),
        "{h}"
    );
    for (path, who) in [
        ("/api/v1/churn", "backend"),
        ("/health", "backend"),
        ("/", "frontend"),
        ("/settings", "frontend"),
    ] {
        let r = get(path);
        assert!(r.contains(&format!("x-upstream: {who}")), "{path}: {r}");
        for want in [
            "strict-transport-security: max-age=63072000",
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
        ] {
            assert!(r.contains(want), "{path}: {want} in {r}");
        }
    }
    assert!(backend.seen().iter().any(|s| s.uri == "/api/v1/churn"));
    drop(edge);
}

/// Guide 001's nginx, imported: the SPA root answers deep links with index.html,
/// `/api/` reaches the API with its path, `/metrics` answers 127.0.0.1 only (another
/// local address gets 403, as nginx's `allow 127.0.0.1; deny all;`), and the guide's
/// headers (HSTS with preload, the CSP on one line) are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_001_imported_behaves_as_its_nginx() {
    let api = Upstream::start("api").await;
    let pki = Pki::new();
    let tmp = TempDir::new("import-001-serve");
    import(tmp.path(), "guide-001-valor-ivx.conf");
    tmp.write("www/index.html", "<h1>valor</h1>");
    tmp.write("www/assets/app.3f2a1b.js", "console.log(1)");
    let www = tmp.path().join("www").display().to_string();
    localize(
        tmp.path(),
        &pki,
        &[
            ("/var/www/valor-frontend", www),
            ("\"127.0.0.1:5002\"", format!("\"{}\"", api.authority())),
        ],
    );
    let edge = serve_imported(tmp.path()).await;
    let https = edge.https.unwrap();
    let host = "your-domain.tld";
    let resolve = format!("{host}:{}:127.0.0.1", https.port());
    let url = |p: &str| format!("https://{host}:{}{p}", https.port());
    // A browser's navigation gets the page; a missing asset is a 404 (nginx would send
    // the page: the importer names this difference).
    let deep = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Accept: text/html",
        "-D",
        "-",
        &url("/projects/42/edit"),
    ]);
    assert!(deep.starts_with("HTTP/2 200"), "{deep}");
    assert!(deep.contains("<h1>valor</h1>"), "{deep}");
    let missing = curl(&["--resolve", &resolve, "-D", "-", &url("/assets/gone.js")]);
    assert!(missing.starts_with("HTTP/2 404"), "{missing}");
    let js = curl(&["--resolve", &resolve, &url("/assets/app.3f2a1b.js")]);
    assert_eq!(js, "console.log(1)");
    let r = curl(&["--resolve", &resolve, "-D", "-", &url("/api/deals?x=1")]).to_ascii_lowercase();
    assert!(r.contains("x-upstream: api"), "{r}");
    assert!(api.seen().iter().any(|s| s.uri == "/api/deals?x=1"));
    let code = |extra: &[&str]| {
        let mut args = vec![
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ];
        args.extend_from_slice(extra);
        let u = url("/metrics");
        args.push(&u);
        curl(&args)
    };
    assert_eq!(code(&[]), "200");
    assert_eq!(code(&["--interface", "127.0.0.2"]), "403");
    let h = curl(&["--resolve", &resolve, "-I", &url("/")]).to_ascii_lowercase();
    for want in [
        "strict-transport-security: max-age=31536000; includesubdomains; preload",
        "x-frame-options: deny",
        "referrer-policy: strict-origin-when-cross-origin",
        "permissions-policy: geolocation=(), microphone=(), camera=()",
        "content-security-policy: default-src 'self'; connect-src 'self' https://api.your-domain.tld; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none';",
    ] {
        assert!(h.contains(want), "{want} in {h}");
    }
    drop(edge);
}
