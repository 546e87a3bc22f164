//! Loader tests: every error class names its key, and all errors come at once.

use std::path::PathBuf;

use crate::runtime::{Action, Balance, HostPattern, Misdirected};
use crate::{load_str, Config, ConfigErrors, Source};

fn env(name: &str) -> Option<String> {
    match name {
        "UPSTREAM_PORT" => Some("9001".into()),
        "HOME" => Some("/home/test".into()),
        "API_KEYS" => Some("k1-0123456789abcdef, k2-0123456789abcdef,".into()),
        "ALLOWED_ORIGINS" => Some("https://a.example,https://b.example".into()),
        "ALLOWED_HOSTS" => Some("a.example, *.b.example".into()),
        "TRUSTED_PROXIES" => Some("10.0.0.0/8,192.168.1.1/32".into()),
        "BLOCKED_IPS" => Some("203.0.113.0/24".into()),
        _ => None,
    }
}

fn load_in(dir: &std::path::Path, text: &str) -> Result<Config, ConfigErrors> {
    load_str(
        text,
        &Source {
            name: "rampart.toml".into(),
            base_dir: dir.to_path_buf(),
            env: &env,
        },
    )
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_in(&PathBuf::from("."), text)
}

fn errors(text: &str) -> Vec<String> {
    load(text)
        .expect_err("config should be refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

const MINIMAL: &str = r#"
[server]
http = "127.0.0.1:0"
[upstreams.app]
servers = ["127.0.0.1:${UPSTREAM_PORT}"]
[[routes]]
path = "/"
upstream = "app"
"#;

#[test]
fn minimal_config_loads_with_strict_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.upstreams[0].servers, ["127.0.0.1:9001"]);
    assert_eq!(c.upstreams[0].balance, Balance::RoundRobin);
    assert_eq!(c.upstreams[0].max_fails, 3);
    assert!(matches!(c.routes[0].action, Action::Upstream(0)));
    let set: Vec<&str> = c.routes[0]
        .headers
        .set
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "permissions-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
    ] {
        assert!(set.contains(&h), "{h} missing from defaults: {set:?}");
    }
    assert!(c.routes[0].headers.hsts.is_some());
    assert!(c.routes[0]
        .headers
        .remove
        .iter()
        .any(|h| h == "x-powered-by"));
    assert_eq!(
        c.server.state_dir,
        PathBuf::from("/home/test/.local/state/rampart")
    );
}

#[test]
fn unknown_keys_are_all_reported_with_suggestions() {
    let e = errors(
        r#"
[server]
http = "127.0.0.1:0"
worker = 2
[upstreams.app]
servers = ["127.0.0.1:1"]
balanse = "least_conn"
[[routes]]
path = "/"
upstrem = "app"
"#,
    );
    assert!(
        e.contains(&"server.worker: unknown key, did you mean `workers`?".to_owned()),
        "{e:?}"
    );
    assert!(
        e.contains(&"upstreams.app.balanse: unknown key, did you mean `balance`?".to_owned()),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("routes[0].upstrem: unknown key, did you mean `upstream`?")),
        "{e:?}"
    );
}

#[test]
fn unknown_section_is_named() {
    let e = errors(&format!("{MINIMAL}\n[limts.api]\nrate = \"10/s\"\n"));
    assert!(
        e.iter().any(|m| m.starts_with("limts: unknown key")),
        "{e:?}"
    );
}

#[test]
fn bad_values_name_their_keys_and_all_come_at_once() {
    let e = errors(
        r#"
[server]
http = "localhost"
shutdown_grace = "10 seconds"
trusted_proxies = ["10.0.0.1/8", "nonsense"]
max_header_size = "64XB"
[upstreams.app]
servers = ["http://127.0.0.1:1/api"]
fail_timeout = "0"
balance = "least_con"
[[routes]]
path = "/"
upstream = "ap"
"#,
    );
    let has = |prefix: &str| e.iter().any(|m| m.starts_with(prefix));
    assert!(has("server.http: invalid listen address"), "{e:?}");
    assert!(has("server.shutdown_grace: invalid duration"), "{e:?}");
    assert!(has("server.trusted_proxies[0]: invalid CIDR \"10.0.0.1/8\": host bits are set; did you mean \"10.0.0.0/8\"?"), "{e:?}");
    assert!(has("server.max_header_size: invalid size"), "{e:?}");
    assert!(has("upstreams.app.servers[0]: invalid server"), "{e:?}");
    assert!(
        has("upstreams.app.fail_timeout: must be greater than zero"),
        "{e:?}"
    );
    assert!(
        has("upstreams.app.balance: unknown balance \"least_con\""),
        "{e:?}"
    );
    assert!(
        e.contains(
            &"routes[0].upstream: unknown upstream \"ap\", did you mean \"app\"?".to_owned()
        ),
        "{e:?}"
    );
}

#[test]
fn wrong_types_are_reported_once() {
    let e = errors(
        r#"
[server]
http = "127.0.0.1:0"
workers = "two"
[upstreams.app]
servers = "127.0.0.1:1"
[[routes]]
upstream = "app"
"#,
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("server.workers: invalid type"), "{e:?}");
    assert!(
        e[1].starts_with("upstreams.app.servers: invalid type"),
        "{e:?}"
    );
}

#[test]
fn syntax_error_reports_line() {
    let e = errors("[server\nhttp = 1");
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("line 1"), "{e:?}");
}

#[test]
fn syntax_errors_name_the_table_and_key_around_the_line() {
    let text = "[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\npath = \"/a\"\n[[routes]]\npath = \"/b\"\nrespond = { body = \"x\" \n[headers]\n";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    // The parser notices the unclosed inline table on the next line: the table it was in
    // is named.
    assert!(e[0].starts_with("routes[1]: "), "{e:?}");
    assert!(e[0].contains("line 8"), "{e:?}");
    let e = errors("[server]\nhttp = \"127.0.0.1:0\"\nworkers = 2 3\n");
    assert!(e[0].starts_with("server.workers: "), "{e:?}");
    let e = errors("[api_keys]\nheader = \"X-Key\"\n[limits.login\nrate = \"5/m\"\n");
    assert!(e[0].starts_with("api_keys: "), "{e:?}");
}

#[test]
fn missing_env_var_is_an_error_naming_the_key() {
    let e = errors(&MINIMAL.replace("${UPSTREAM_PORT}", "${NOT_SET_ANYWHERE}"));
    assert!(
        e.iter().any(|m| m.starts_with(
            "upstreams.app.servers[0]: environment variable NOT_SET_ANYWHERE is not set"
        )),
        "{e:?}"
    );
}

#[test]
fn file_keys_read_secrets_and_report_missing_files() {
    let dir = tempdir();
    std::fs::write(dir.join("body.txt"), "from a file\n").unwrap();
    let text = format!(
        "{MINIMAL}\n[[routes]]\npath = \"/f\"\n[routes.respond]\nbody_file = \"body.txt\"\n"
    );
    let c = load_in(&dir, &text).unwrap();
    match &c.routes[1].action {
        Action::Respond { body, .. } => assert_eq!(body, "from a file"),
        other => panic!("unexpected {other:?}"),
    }
    let text = text.replace("body.txt", "missing.txt");
    let e: Vec<String> = load_in(&dir, &text)
        .unwrap_err()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        e[0].starts_with("routes[1].respond.body_file: cannot read"),
        "{e:?}"
    );
    let both = format!("{MINIMAL}\n[[routes]]\npath = \"/f\"\n[routes.respond]\nbody = \"x\"\nbody_file = \"body.txt\"\n");
    let e: Vec<String> = load_in(&dir, &both)
        .unwrap_err()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        e[0].contains("both `body` and `body_file` are set"),
        "{e:?}"
    );
}

#[test]
fn cross_field_rules() {
    let e = errors(
        r#"
[server]
https = "127.0.0.1:0"
misdirected = "drop"
allowed_hosts = ["https://example.com"]
[[routes]]
path = "api"
[[routes]]
path = "/x"
upstream = "a"
static = "/tmp"
"#,
    );
    let has = |prefix: &str| e.iter().any(|m| m.starts_with(prefix));
    assert!(has("server.https: HTTPS needs a [tls] section"), "{e:?}");
    assert!(has("server.misdirected: expected"), "{e:?}");
    assert!(has("server.allowed_hosts[0]: invalid host"), "{e:?}");
    assert!(has("routes[0].path: invalid path"), "{e:?}");
    assert!(has("routes[0]: a route needs exactly one of"), "{e:?}");
    assert!(has("routes[1]: a route needs exactly one of `upstream`, `static`, `redirect`, `respond`; found 2"), "{e:?}");
}

#[test]
fn tls_without_https_and_half_pairs_are_refused() {
    let e = errors(&format!("{MINIMAL}\n[tls]\ncert = \"c.pem\"\n"));
    assert!(
        e.iter()
            .any(|m| m.starts_with("tls.key: tls.cert is set but tls.key is not")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("tls: [tls] is set but server.https is not")),
        "{e:?}"
    );
}

#[test]
fn hosts_routes_and_header_overrides() {
    let c = load(
        r#"
[server]
http = ":0"
allowed_hosts = ["Example.com", "*.example.com"]
misdirected = "close"
[headers]
csp = "default-src 'none'"
hsts_preload = true
set = { "X-Extra" = "1" }
[[routes]]
host = "*.Example.com"
path = "/old"
redirect = "https://example.com/new"
redirect_status = 308
headers = { frame_options = false, csp = true }
[[routes]]
path = "/"
respond = { status = 204 }
"#,
    )
    .unwrap();
    assert_eq!(c.server.misdirected, Misdirected::Close);
    assert_eq!(
        c.server.allowed_hosts[0],
        HostPattern::Exact("example.com".into())
    );
    assert!(c.server.allowed_hosts[1].matches("a.b.example.com"));
    assert!(!c.server.allowed_hosts[1].matches("example.com"));
    let r0 = &c.routes[0].headers;
    assert!(r0.set.iter().all(|(k, _)| k != "x-frame-options"));
    let csp = r0
        .set
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .unwrap();
    let reporting = "; report-uri /csp-report; report-to csp-endpoint";
    assert_eq!(
        csp.1,
        format!("{}{reporting}", crate::DEFAULT_CSP),
        "route `csp = true` restores the default (with the report endpoint)"
    );
    assert!(r0.set.iter().any(|(k, v)| k == "x-extra" && v == "1"));
    assert!(r0
        .hsts
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("; preload"));
    let r1 = &c.routes[1].headers;
    let csp = r1
        .set
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .unwrap();
    assert_eq!(csp.1, format!("default-src 'none'{reporting}"));
    assert!(r1
        .set
        .iter()
        .any(|(k, v)| k == "reporting-endpoints" && v == "csp-endpoint=\"/csp-report\""));
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rampart-config-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn lists_come_from_comma_separated_environment_variables() {
    let c = load(
        r#"
[server]
http = "127.0.0.1:0"
allowed_hosts = "${ALLOWED_HOSTS:list}"
trusted_proxies = ["127.0.0.1/32", "${TRUSTED_PROXIES:list}"]
[api_keys]
keys = ["${API_KEYS:list}", { name = "ops", key = "k3-0123456789abcdef" }]
[cors.app]
origins = "${ALLOWED_ORIGINS:list}"
[upstreams.app]
servers = ["127.0.0.1:9"]
[[routes]]
path = "/"
upstream = "app"
cors = "app"
deny = ["${BLOCKED_IPS:list}", "${UNSET_LIST:list:-}"]
"#,
    )
    .unwrap();
    assert_eq!(c.server.allowed_hosts.len(), 2);
    let proxies: Vec<String> = c
        .server
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["127.0.0.1/32", "10.0.0.0/8", "192.168.1.1/32"]);
    let keys = &c.policies.api_keys.as_ref().unwrap().keys;
    let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["key0", "key1", "ops"]);
    assert_eq!(
        c.policies.cors[0].origins,
        ["https://a.example", "https://b.example"]
    );
    let deny: Vec<String> = c.routes[0]
        .policy
        .deny
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(deny, ["203.0.113.0/24"]);
    // An unset list without a default, and a list inside a longer string, name their key.
    let e = errors(&MINIMAL.replace(
        "[[routes]]",
        "[[routes]]\ndeny = [\"${NO_SUCH_LIST:list}\"]\nallow = [\"10.0.0.0/8 ${BLOCKED_IPS:list}\"]",
    ));
    assert!(
        e.iter()
            .any(|m| m
                .starts_with("routes[0].deny[0]: environment variable NO_SUCH_LIST is not set")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("routes[0].allow[0]:") && m.contains("whole value")),
        "{e:?}"
    );
}

#[test]
fn dependency_addresses_take_urls_with_default_ports_and_name_bad_ones() {
    let c = load(&MINIMAL.replace(
        "[[routes]]",
        r#"[[dependencies]]
name = "a"
kind = "redis"
address = "rediss://user:pw@cache.internal"
[[dependencies]]
name = "b"
kind = "http"
address = "https://api.internal?probe=1"
[[dependencies]]
name = "c"
kind = "redis"
address = "redis://10.0.0.5:6380/2"
[[routes]]"#,
    ))
    .unwrap();
    let got: Vec<(&str, &str, bool)> = c
        .dependencies
        .iter()
        .map(|d| (d.address.as_str(), d.path.as_str(), d.tls))
        .collect();
    assert_eq!(
        got,
        [
            ("cache.internal:6379", "", true),
            ("api.internal:443", "/?probe=1", true),
            ("10.0.0.5:6380", "", false)
        ]
    );
    let e = errors(&MINIMAL.replace(
        "[[routes]]",
        r#"[[dependencies]]
name = "a"
kind = "redis"
address = "memcached://x:1"
[[dependencies]]
name = "b"
kind = "tcp"
address = "db:5432"
ca = "ca.pem"
[[dependencies]]
name = "c"
kind = "http"
address = "api:80"
[[routes]]"#,
    ));
    for want in [
        "dependencies[0].address: \"memcached://x:1\" must be host:port or a redis:// / rediss:// URL",
        "dependencies[1].ca: a CA file needs a TLS address",
        "dependencies[2].address: \"api:80\" must be an http:// or https:// URL",
    ] {
        assert!(e.iter().any(|m| m.starts_with(want)), "{want} in {e:?}");
    }
}

#[test]
fn nginx_directives_written_as_keys_point_to_rampart_keys() {
    let e = errors(&MINIMAL.replace(
        "[[routes]]\npath = \"/\"",
        "ssl_protocols = \"TLSv1.2 TLSv1.3\"\n[[routes]]\nclient_max_body_size = \"500m\"\nocsp_stapling = true\npath = \"/\"",
    ));
    for want in [
        "upstreams.app.ssl_protocols: unknown key: nginx's ssl_protocols is `[tls] min_version",
        "routes[0].client_max_body_size: unknown key: nginx's client_max_body_size is `body_limit`",
        "routes[0].ocsp_stapling: unknown key: OCSP stapling",
    ] {
        assert!(e.iter().any(|m| m.starts_with(want)), "{want} in {e:?}");
    }
    // All of them at once, as every structural error is.
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn csp_nonce_with_a_cacheable_html_cache_is_named() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let route = |cache: &str| {
        format!("[server]\nhttp = \"127.0.0.1:0\"\n[[routes]]\nstatic = \"www\"\ncsp_nonce = true\nhtml_cache = \"{cache}\"\n")
    };
    let e = load_in(&dir, &route("public, max-age=3600"))
        .expect_err("refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert!(
        e.iter()
            .any(|m| m.starts_with("routes[0].html_cache: ") && m.contains("replay its nonce")),
        "{e:?}"
    );
    assert!(load_in(&dir, &route("no-store")).is_ok());
}

#[test]
fn header_values_from_a_closed_set_are_checked() {
    let e = errors(&MINIMAL.replace(
        "[[routes]]",
        "[headers]\nframe_options = \"DENYY\"\nreferrer_policy = \"no-referrer, strict-origin-when-crossorigin\"\ncoop = \"same-origin\"\n[[routes]]",
    ));
    assert!(
        e.iter().any(|m| m.starts_with("headers.frame_options: \"DENYY\" is not one of DENY, SAMEORIGIN, did you mean \"DENY\"?")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("headers.referrer_policy: \"strict-origin-when-crossorigin\"")),
        "{e:?}"
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(load(&MINIMAL.replace(
        "[[routes]]",
        "[headers]\nframe_options = \"sameorigin\"\n[[routes]]"
    ))
    .is_ok());
}

#[test]
fn regex_routes_are_checked() {
    let c = load(&format!(
        "{MINIMAL}\n[[routes]]\npath_regex = '(?i)\\.(png|jpg)$'\nupstream = \"app\"\n"
    ))
    .unwrap();
    let r = &c.routes[1];
    assert_eq!(r.name, "~(?i)\\.(png|jpg)$");
    assert!(r.path.is_empty());
    assert!(r.path_regex.as_ref().unwrap().is_match("/a/B.PNG"));
    let e = errors(&format!(
        "{MINIMAL}\n[[routes]]\npath_regex = '(unclosed'\nupstream = \"app\"\n\
         [[routes]]\npath_regex = 'x$'\npath = \"/x\"\nexact = true\nupstream = \"app\"\n\
         [[routes]]\npath_regex = 'y$'\nupstream = \"app\"\n\
         [[routes]]\npath_regex = 'y$'\nupstream = \"app\"\nname = \"again\"\n"
    ));
    let has = |prefix: &str| e.iter().any(|m| m.starts_with(prefix));
    assert!(
        has("routes[1].path_regex: invalid regular expression"),
        "{e:?}"
    );
    assert!(has("routes[2].path: `path` is for prefix routes"), "{e:?}");
    assert!(
        has("routes[2].exact: `exact` is for prefix routes"),
        "{e:?}"
    );
    assert!(
        has("routes[4].path: an earlier route already matches"),
        "{e:?}"
    );
}

#[test]
fn request_headers_are_checked() {
    let c = load(&format!(
        "{MINIMAL}request_headers = {{ \"X-Forwarded-Ssl\" = \"on\", \"X-Debug\" = \"\" }}\n"
    ))
    .unwrap();
    let h = &c.routes[0].request_headers;
    assert_eq!(h.len(), 2);
    assert!(h.iter().any(|(n, v)| n == "x-debug" && v.is_none()));
    let e = errors(&format!(
        "{MINIMAL}request_headers = {{ Host = \"evil\", \"bad name\" = \"x\", X-Ok = \"a\\u0001b\" }}\n\
         [[routes]]\npath = \"/s\"\nrespond = {{ status = 200, body = \"\" }}\nrequest_headers = {{ X-A = \"b\" }}\n"
    ));
    let has = |prefix: &str| e.iter().any(|m| m.starts_with(prefix));
    assert!(
        has("routes[0].request_headers.Host: Host is set by rampart itself"),
        "{e:?}"
    );
    assert!(has("routes[0].request_headers.bad name: "), "{e:?}");
    assert!(
        has("routes[0].request_headers.X-Ok: not a valid header value"),
        "{e:?}"
    );
    assert!(
        has("routes[1].request_headers: only applies to `upstream` routes"),
        "{e:?}"
    );
}

#[test]
fn tracing_takes_a_collector_url_and_names_bad_ones() {
    let base =
        "[server]\nhttp = \"127.0.0.1:8080\"\n[[routes]]\nredirect = \"https://example.com\"\n";
    let c = load(&format!(
        "{base}[tracing]\notlp = \"http://collector:4318\"\nheaders = {{ \"x-api-key\" = \"k\" }}\n"
    ))
    .unwrap();
    let o = c.otlp.unwrap();
    assert_eq!(o.url.to_string(), "http://collector:4318/v1/traces");
    assert_eq!((o.host.as_str(), o.port, o.tls), ("collector", 4318, false));
    assert_eq!(o.service_name, "rampart");
    let c = load(&format!(
        "{base}[tracing]\notlp = \"https://otlp.example.com/v1/traces\"\nservice_name = \"shop\"\n"
    ))
    .unwrap();
    let o = c.otlp.unwrap();
    assert_eq!(
        (o.url.to_string().as_str(), o.port, o.tls),
        ("https://otlp.example.com/v1/traces", 443, true)
    );
    assert!(load(base).unwrap().otlp.is_none(), "off by default");
    for (bad, want) in [
        ("otlp = \"collector:4318\"", "tracing.otlp"),
        ("otlp = \"ftp://c\"", "tracing.otlp"),
        ("service_name = \"x\"", "tracing.otlp"),
        (
            "otlp = \"http://c\"\nheaders = { \"bad name\" = \"v\" }",
            "tracing.headers.bad name",
        ),
    ] {
        let errs = errors(&format!("{base}[tracing]\n{bad}\n")).join("\n");
        assert!(errs.contains(want), "{bad}: {errs}");
    }
}
