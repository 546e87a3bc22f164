//! The rules: raw file shape → runtime form. All problems are collected, none stops the pass.

use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::bounds;
use crate::error::{did_you_mean, ConfigError};
use crate::raw::{RawConfig, RawHeaders, RawRoute, RawServer, RawTls, RawUpstream};
use crate::runtime::{
    Action, Balance, CertificatePaths, ClientCertMode, Config, HeaderPolicy, HostPattern,
    Misdirected, Route, Server, Tls, Upstream, UpstreamProtocol, UpstreamTls,
};
use crate::source::Source;
use crate::units::Toggle;

/// Default `Content-Security-Policy`: strict, and a sound base for adding sources.
pub const DEFAULT_CSP: &str = crate::defaults::headers::CSP;
/// Default `Strict-Transport-Security`: two years, subdomains.
pub const DEFAULT_HSTS: &str = crate::defaults::headers::HSTS;
/// Default `Permissions-Policy`: powerful features off.
pub const DEFAULT_PERMISSIONS_POLICY: &str = crate::defaults::headers::PERMISSIONS_POLICY;
/// Upstream response headers that identify software; removed unless `hide_banners = false`.
pub const BANNER_HEADERS: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    "x-runtime",
    "x-drupal-cache",
    "x-varnish",
];

struct Ctx<'a, 'b> {
    errors: &'a mut Vec<ConfigError>,
    source: &'a Source<'b>,
}

impl Ctx<'_, '_> {
    fn err(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(key, msg));
    }
    /// Checks a numeric key against its range ([`crate::bounds`]).
    fn bound(&mut self, key: impl Into<String>, v: impl TryInto<u64>, r: &RangeInclusive<u64>) {
        let v = v.try_into().unwrap_or(u64::MAX);
        if let Err(m) = crate::bounds::check(v, r) {
            self.err(key, m);
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.source.base_dir.join(p)
    }
}

/// Validates `raw`, appending problems to `errors`. Returns the runtime form when usable.
pub(crate) fn validate(
    raw: Option<RawConfig>,
    source: &Source<'_>,
    errors: &mut Vec<ConfigError>,
    shape_errored: &[String],
) -> Option<Config> {
    let raw = raw?;
    let mut rule_errors = Vec::new();
    let mut cx = Ctx {
        errors: &mut rule_errors,
        source,
    };
    let server = server(&raw.server, &mut cx);
    let mut tls = raw.tls.as_ref().map(|t| {
        let route_cas = raw.routes.iter().any(|r| r.client_ca.is_some());
        tls(t, raw.server.http.is_some(), route_cas, &mut cx)
    });
    match (&tls, raw.server.https) {
        (None, Some(_)) => cx.err(
            "server.https",
            "HTTPS needs a [tls] section with a certificate",
        ),
        (Some(_), None) => cx.err(
            "tls",
            "[tls] is set but server.https is not: add `https = \"0.0.0.0:443\"` to [server]",
        ),
        _ => {}
    }
    if raw.server.http.is_none() && raw.server.https.is_none() {
        cx.err("server", "no listener: set server.http and/or server.https");
    }
    let names: Vec<&String> = raw.upstreams.keys().collect();
    let upstreams: Vec<Upstream> = raw
        .upstreams
        .iter()
        .map(|(name, u)| upstream(name, u, &mut cx))
        .collect();
    let policies = {
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::policy::Policies {
            limits: raw
                .limits
                .iter()
                .map(|(n, l)| crate::policy::limit(n, l, &mut sink))
                .collect(),
            cors: raw
                .cors
                .iter()
                .map(|(n, c)| crate::policy::cors(n, c, &mut sink))
                .collect(),
            api_keys: raw
                .api_keys
                .as_ref()
                .map(|a| crate::policy::api_keys(a, &mut sink)),
            jwt: raw
                .jwt
                .as_ref()
                .and_then(|j| crate::policy::jwt(j, &mut sink)),
            csrf: raw
                .csrf
                .as_ref()
                .map(|c| crate::policy::csrf(c, &mut sink))
                .unwrap_or_default(),
        }
    };
    let pnames = PolicyNames {
        limits: raw.limits.keys().collect(),
        cors: raw.cors.keys().collect(),
        have: (
            raw.jwt.is_some(),
            raw.api_keys.is_some(),
            raw.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        ),
        report_path: None,
    };
    let csp_report = {
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::site::csp_report(raw.csp_report.as_ref(), &mut sink)
    };
    let report_path = csp_report.as_ref().map(|r| (r.path.clone(), r.report_to));
    let pnames = PolicyNames {
        report_path: report_path.as_ref().map(|(p, t)| (p.as_str(), *t)),
        ..pnames
    };
    let global = headers_merged(&RawHeaders::default(), &raw.headers);
    check_headers(&raw.headers, "headers", &mut cx);
    let mut routes = Vec::new();
    if raw.routes.is_empty() {
        cx.err("routes", "no routes: add at least one [[routes]] entry");
    }
    let mut seen_names = HashSet::new();
    let mut seen_match = HashSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if let Some(route) = route(r, &key, &names, &pnames, &global, &mut cx) {
            if !seen_names.insert(route.name.clone()) {
                cx.err(
                    format!("{key}.name"),
                    format!("route name {:?} is used twice", route.name),
                );
            }
            let hosts = format!("{:?}", route.hosts);
            let matched = match &route.path_regex {
                Some(re) => format!("~{}", re.as_str()),
                None => route.path.clone(),
            };
            if !seen_match.insert((hosts, matched.clone(), route.exact)) {
                cx.err(
                    format!("{key}.path"),
                    format!(
                        "an earlier route already matches the same hosts and path {:?}",
                        matched
                    ),
                );
            }
            routes.push(route);
        }
    }
    client_cas(
        &raw,
        &mut routes,
        tls.as_mut().and_then(|t| t.as_mut()),
        &mut cx,
    );
    // `[tls.acme]` without `domains`: the names the routes and `allowed_hosts` serve.
    if let Some(a) = tls
        .as_mut()
        .and_then(|t| t.as_mut())
        .and_then(|t| t.acme.as_mut())
    {
        if a.domains.is_empty()
            && raw
                .tls
                .as_ref()
                .is_some_and(|t| t.acme.as_ref().is_some_and(|r| r.domains.is_none()))
        {
            a.domains = crate::acme::default_domains(
                routes
                    .iter()
                    .flat_map(|r| r.hosts.iter())
                    .chain(server.allowed_hosts.iter())
                    .filter_map(|h| match h {
                        HostPattern::Exact(name) => Some(name.as_str()),
                        HostPattern::Wildcard(_) => None,
                    }),
            );
        }
        if a.domains.is_empty() {
            cx.err(
                "tls.acme.domains",
                "no names to certify: list them, or give the routes hosts (or set server.allowed_hosts)",
            );
        }
    }
    let (admin, logging, dependencies) = {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        (
            raw.admin.as_ref().map(|a| crate::ops::admin(a, &mut sink)),
            crate::ops::logging(raw.logging.as_ref(), &base, &mut sink),
            crate::ops::dependencies(&raw.dependencies, &base, &mut sink),
        )
    };
    if let (Some(a), true) = (
        &admin,
        raw.server.http.is_some() || raw.server.https.is_some(),
    ) {
        if a.listen.port() != 0 && (Some(a.listen) == server.http || Some(a.listen) == server.https)
        {
            cx.err(
                "admin.listen",
                format!("{} is already a public listener", a.listen),
            );
        }
    }
    let state = {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::state::state(raw.state.as_ref(), &base, &mut sink)
    };
    let integrity = {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::integrity::integrity(raw.integrity.as_ref(), &base, &mut sink)
    };
    let license = {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::license::license(raw.license.as_ref(), &base, &mut sink)
    };
    if raw.license.is_none() {
        for (i, r) in raw.routes.iter().enumerate() {
            if r.requires_feature.is_some() {
                cx.err(
                    format!("routes[{i}].requires_feature"),
                    "needs [license]: the features come from the vendor's license token",
                );
            }
        }
    }
    let backups = {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::backups::backups(&raw.backups, &base, &mut sink)
    };
    let otlp = {
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::ops::tracing(raw.tracing.as_ref(), &mut sink)
    };
    let preflight = {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::posture::preflight(raw.preflight.as_ref(), &base, &mut sink)
    };
    // A key that already failed its shape check is not reported again by a rule.
    errors.extend(rule_errors.into_iter().filter(|e| {
        !shape_errored.iter().any(|k| {
            !k.is_empty()
                && (e.key == *k
                    || e.key.starts_with(&format!("{k}."))
                    || e.key.starts_with(&format!("{k}[")))
        })
    }));
    let secret_issues = crate::policy::secret_issues(&raw);
    Some(Config {
        server,
        tls: tls.flatten(),
        upstreams,
        routes,
        policies,
        csp_report,
        admin,
        logging,
        dependencies,
        preflight,
        posture: None,
        state,
        secret_issues,
        integrity,
        license,
        backups,
        otlp,
    })
}

/// Numbers the client CA files: `[tls] client_ca` is 0, each route's own `client_ca`
/// (one file used by several routes once) the next; each route learns its index.
fn client_cas(raw: &RawConfig, routes: &mut [Route], tls: Option<&mut Tls>, cx: &mut Ctx<'_, '_>) {
    let Some(tls) = tls else {
        for (i, r) in raw.routes.iter().enumerate() {
            if r.client_ca.is_some() {
                cx.err(
                    format!("routes[{i}].client_ca"),
                    "needs [tls]: client certificates come with the TLS handshake",
                );
            }
        }
        return;
    };
    for (n, (r, raw_route)) in routes.iter_mut().zip(&raw.routes).enumerate() {
        let Some(ca) = &raw_route.client_ca else {
            continue;
        };
        let path = cx.path(ca);
        let i = match tls.client_cas.iter().position(|c| *c == path) {
            Some(i) => i,
            None => {
                tls.client_cas.push(path);
                tls.client_ca_keys.push(format!("routes[{n}].client_ca"));
                tls.client_cas.len() - 1
            }
        };
        match u8::try_from(i) {
            Ok(i) if i < 64 => r.client_ca = i,
            _ => cx.err(
                format!("routes[{n}].client_ca"),
                "more than 64 different client CA files",
            ),
        }
    }
}

fn dur(v: Option<crate::units::Duration>, default: Duration) -> Duration {
    v.map_or(default, |d| d.0)
}

fn server(s: &RawServer, cx: &mut Ctx<'_, '_>) -> Server {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = s.workers.unwrap_or(cores);
    cx.bound("server.workers", workers, &bounds::WORKERS);
    let allowed_hosts = s
        .allowed_hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| host_pattern(h, &format!("server.allowed_hosts[{i}]"), cx))
        .collect();
    let misdirected = match s.misdirected.as_deref() {
        None | Some(crate::defaults::server::MISDIRECTED) => Misdirected::Status421,
        Some("close") => Misdirected::Close,
        Some(other) => {
            cx.err(
                "server.misdirected",
                format!("expected \"421\" or \"close\", got {other:?}"),
            );
            Misdirected::Status421
        }
    };
    for (i, p) in s.redirect_exempt.iter().enumerate() {
        if !p.starts_with('/') {
            cx.err(
                format!("server.redirect_exempt[{i}]"),
                format!("a path prefix must start with '/', got {p:?}"),
            );
        }
    }
    let state_dir = match &s.state_dir {
        Some(d) => cx.path(d),
        None => default_state_dir(cx.source.env),
    };
    let max_header_size = s
        .max_header_size
        .map_or(crate::defaults::server::MAX_HEADER_SIZE, |v| v.0);
    if !bounds::MAX_HEADER_SIZE.contains(&max_header_size) {
        cx.err(
            "server.max_header_size",
            format!("must be between 8KiB and 1MiB, got {max_header_size} bytes"),
        );
    }
    let max_headers = s
        .max_headers
        .unwrap_or(crate::defaults::server::MAX_HEADERS);
    cx.bound("server.max_headers", max_headers, &bounds::MAX_HEADERS);
    let max_connections = s
        .max_connections
        .unwrap_or(crate::defaults::server::MAX_CONNECTIONS);
    cx.bound(
        "server.max_connections",
        max_connections,
        &bounds::MAX_CONNECTIONS,
    );
    let h2_streams = s
        .h2_max_concurrent_streams
        .unwrap_or(crate::defaults::server::H2_MAX_CONCURRENT_STREAMS);
    cx.bound(
        "server.h2_max_concurrent_streams",
        h2_streams,
        &bounds::H2_STREAMS,
    );
    let h2_resets = s
        .h2_max_pending_reset_streams
        .unwrap_or(crate::defaults::server::H2_MAX_PENDING_RESET_STREAMS);
    cx.bound(
        "server.h2_max_pending_reset_streams",
        h2_resets,
        &bounds::H2_PENDING_RESETS,
    );
    if let Some(p) = s.https_port {
        cx.bound("server.https_port", p, &bounds::PORT);
    }
    let timeouts = [
        ("header_read_timeout", s.header_read_timeout),
        ("idle_timeout", s.idle_timeout),
        ("tls_handshake_timeout", s.tls_handshake_timeout),
        ("park_after", s.park_after),
    ];
    for (k, v) in timeouts {
        if v.is_some_and(|d| d.0.is_zero()) {
            cx.err(format!("server.{k}"), "must be greater than zero");
        }
    }
    let env_override = (cx.source.env)("RAMPART_ENV").filter(|v| !v.is_empty());
    let environment = match env_override.as_deref().or(s.environment.as_deref()) {
        None | Some(crate::defaults::server::ENVIRONMENT) => {
            crate::posture::Environment::Development
        }
        Some("production") => crate::posture::Environment::Production,
        Some(other) => {
            let key = if env_override.is_some() {
                "RAMPART_ENV"
            } else {
                "server.environment"
            };
            cx.err(
                key,
                format!("expected \"production\" or \"development\", got {other:?}"),
            );
            crate::posture::Environment::Production
        }
    };
    Server {
        environment,
        env_file: s.env_file.as_ref().map(|p| cx.path(p)),
        http: s.http.map(|a| a.0),
        https: s.https.map(|a| a.0),
        workers: workers.clamp(1, 1024),
        trusted_proxies: s.trusted_proxies.iter().map(|c| c.0).collect(),
        deny: s.deny.iter().map(|c| c.0).collect(),
        allowed_hosts,
        misdirected,
        redirect_exempt: s.redirect_exempt.clone(),
        https_port: s.https_port,
        state_dir,
        shutdown_grace: dur(s.shutdown_grace, crate::defaults::server::SHUTDOWN_GRACE),
        header_read_timeout: dur(
            s.header_read_timeout,
            crate::defaults::server::HEADER_READ_TIMEOUT,
        ),
        idle_timeout: dur(s.idle_timeout, crate::defaults::server::IDLE_TIMEOUT),
        park_after: dur(s.park_after, crate::defaults::server::PARK_AFTER),
        tls_handshake_timeout: dur(
            s.tls_handshake_timeout,
            crate::defaults::server::TLS_HANDSHAKE_TIMEOUT,
        ),
        max_header_size: usize::try_from(max_header_size).unwrap_or(usize::MAX),
        max_headers,
        max_connections: max_connections.max(1),
        h2c: s.h2c.unwrap_or(crate::defaults::server::H2C),
        h1_fast_path: s
            .h1_fast_path
            .unwrap_or(crate::defaults::server::H1_FAST_PATH),
        watch_config: s
            .watch_config
            .unwrap_or(crate::defaults::server::WATCH_CONFIG),
        h2_max_concurrent_streams: h2_streams.max(1),
        h2_max_pending_reset_streams: h2_resets,
    }
}

/// `$RAMPART_STATE_DIR`, else `$XDG_STATE_HOME/rampart`, else `~/.local/state/rampart`,
/// else `./.rampart-state`.
pub fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("RAMPART_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // systemd's StateDirectory= (several are separated by `:`; the first is rampart's).
    if let Some(d) = env("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return PathBuf::from(d.split(':').next().unwrap_or(&d));
    }
    if let Some(d) = env("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("rampart");
    }
    if let Some(h) = env("HOME").filter(|d| !d.is_empty()) {
        return Path::new(&h).join(".local/state/rampart");
    }
    PathBuf::from(".rampart-state")
}

fn tls(t: &RawTls, plain: bool, route_cas: bool, cx: &mut Ctx<'_, '_>) -> Option<Tls> {
    let mut certificates = Vec::new();
    match (&t.cert, &t.key) {
        (Some(c), Some(k)) => certificates.push(CertificatePaths {
            key_path: "tls".into(),
            cert: cx.path(c),
            key: cx.path(k),
        }),
        (Some(_), None) => cx.err("tls.key", "tls.cert is set but tls.key is not"),
        (None, Some(_)) => cx.err("tls.cert", "tls.key is set but tls.cert is not"),
        (None, None) => {}
    }
    for (i, c) in t.certificates.iter().enumerate() {
        let key = format!("tls.certificates[{i}]");
        match (&c.cert, &c.key) {
            (Some(cert), Some(k)) => certificates.push(CertificatePaths {
                key_path: key,
                cert: cx.path(cert),
                key: cx.path(k),
            }),
            (None, _) => cx.err(format!("{key}.cert"), "required"),
            (_, None) => cx.err(format!("{key}.key"), "required"),
        }
    }
    let self_signed = t.self_signed.clone().unwrap_or_default();
    for (i, n) in self_signed.iter().enumerate() {
        if host_pattern(n, &format!("tls.self_signed[{i}]"), cx).is_none() {
            continue;
        }
    }
    let acme = t.acme.as_ref().map(|a| {
        let base = cx.source.base_dir.clone();
        let mut sink = |k: String, m: String| cx.err(k, m);
        crate::acme::acme(a, plain, &base, &mut sink)
    });
    if certificates.is_empty() && self_signed.is_empty() && acme.is_none() {
        cx.err(
            "tls",
            "no certificate: set tls.cert and tls.key, [[tls.certificates]], tls.self_signed or [tls.acme]",
        );
        return None;
    }
    let tls12 = match t.min_version.as_deref() {
        None | Some(crate::defaults::tls::MIN_VERSION) => true,
        Some("1.3") => false,
        Some(v) => {
            cx.err(
                "tls.min_version",
                format!("expected \"1.2\" or \"1.3\", got {v:?} (older versions are not offered)"),
            );
            true
        }
    };
    let tls12 = match t.profile.as_deref() {
        None | Some(crate::defaults::tls::PROFILE) => tls12,
        Some("modern") => {
            if t.min_version.as_deref() == Some("1.2") {
                cx.err(
                    "tls.min_version",
                    "profile \"modern\" is TLS 1.3 only; remove min_version = \"1.2\"",
                );
            }
            false
        }
        Some(v) => {
            cx.err(
                "tls.profile",
                format!("expected \"intermediate\" or \"modern\", got {v:?}"),
            );
            tls12
        }
    };
    let mut ciphers = Vec::new();
    if let Some(list) = &t.ciphers {
        let names: Vec<String> = list
            .values()
            .iter()
            .flat_map(|v| {
                v.split(':')
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .collect();
        if !tls12 {
            cx.err(
                "tls.ciphers",
                "TLS 1.2 suites with TLS 1.2 off (min_version \"1.3\" or profile \"modern\"); TLS 1.3 suites are always all three",
            );
        }
        for name in &names {
            match TLS12_SUITES
                .iter()
                .find(|(openssl, iana)| name == openssl || name.eq_ignore_ascii_case(iana))
            {
                Some((_, iana)) if !ciphers.contains(iana) => ciphers.push(*iana),
                Some(_) => {}
                None => cx.err(
                    "tls.ciphers",
                    format!(
                        "{name:?} is not offered: only forward-secret AEAD suites are (ECDHE with AES-GCM or ChaCha20-Poly1305: {})",
                        TLS12_SUITES.iter().map(|(o, _)| *o).collect::<Vec<_>>().join(", ")
                    ),
                ),
            }
        }
        if names.is_empty() {
            cx.err("tls.ciphers", "empty: leave it out for the default suites");
        }
    }
    for (i, f) in t.client_crl.iter().enumerate() {
        if !cx.path(f).is_file() {
            cx.err(
                format!("tls.client_crl[{i}]"),
                format!("{} is not a file", cx.path(f).display()),
            );
        }
    }
    if !t.client_crl.is_empty() && t.client_ca.is_none() && !route_cas {
        cx.err(
            "tls.client_crl",
            "needs tls.client_ca (or a route's client_ca)",
        );
    }
    Some(Tls {
        client_ca: t.client_ca.as_ref().map(|c| cx.path(c)),
        client_crls: t.client_crl.iter().map(|c| cx.path(c)).collect(),
        client_cas: t.client_ca.iter().map(|c| cx.path(c)).collect(),
        client_ca_keys: t.client_ca.iter().map(|_| "tls.client_ca".into()).collect(),
        certificates,
        self_signed,
        tls12,
        ciphers,
        session_tickets: t
            .session_tickets
            .unwrap_or(crate::defaults::tls::SESSION_TICKETS),
        acme,
        prefer_server_order: t
            .prefer_server_order
            .unwrap_or(crate::defaults::tls::PREFER_SERVER_ORDER),
        post_quantum: t.post_quantum.unwrap_or(crate::defaults::tls::POST_QUANTUM),
        ocsp_stapling: t
            .ocsp_stapling
            .unwrap_or(crate::defaults::tls::OCSP_STAPLING),
    })
}

/// The TLS 1.2 suites rampart can offer: (OpenSSL name, IANA name).
pub const TLS12_SUITES: &[(&str, &str)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

fn host_pattern(h: &str, key: &str, cx: &mut Ctx<'_, '_>) -> Option<HostPattern> {
    let lower = h.trim().to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let is_ip = name.parse::<std::net::IpAddr>().is_ok()
        || name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
    if name.is_empty()
        || name.len() > 253
        || (!is_ip && !name.split('.').all(label_ok))
        || (wild && is_ip)
    {
        cx.err(key, format!("invalid host {h:?}: expected a name such as \"example.com\" or \"*.example.com\" (no port, no scheme)"));
        return None;
    }
    Some(if wild {
        HostPattern::Wildcard(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

fn upstream(name: &str, u: &RawUpstream, cx: &mut Ctx<'_, '_>) -> Upstream {
    let key = format!("upstreams.{name}");
    if u.servers.is_empty() {
        cx.err(format!("{key}.servers"), "at least one server is required");
    }
    let mut servers = Vec::with_capacity(u.servers.len());
    let mut https = Vec::new();
    for (i, s) in u.servers.iter().enumerate() {
        let (tls, authority) = match server_address(s) {
            Ok(found) => found,
            Err(msg) => {
                cx.err(format!("{key}.servers[{i}]"), msg);
                continue;
            }
        };
        https.push(tls);
        servers.push(authority);
    }
    let balance = match u.balance.as_deref() {
        None | Some(crate::defaults::upstream::BALANCE) => Balance::RoundRobin,
        Some("least_conn") => Balance::LeastConn,
        Some(other) => {
            let hint = did_you_mean(other, ["round_robin", "least_conn"])
                .map(|c| format!(", did you mean {c:?}?"))
                .unwrap_or_default();
            cx.err(
                format!("{key}.balance"),
                format!(
                    "unknown balance {other:?}: expected \"round_robin\" or \"least_conn\"{hint}"
                ),
            );
            Balance::RoundRobin
        }
    };
    let zero = [
        ("connect_timeout", u.connect_timeout),
        ("response_timeout", u.response_timeout),
        ("fail_timeout", u.fail_timeout),
    ];
    for (k, v) in zero {
        if v.is_some_and(|d| d.0.is_zero()) {
            cx.err(format!("{key}.{k}"), "must be greater than zero");
        }
    }
    if let Some(n) = u.max_fails {
        cx.bound(format!("{key}.max_fails"), n, &bounds::MAX_FAILS);
    }
    if let Some(n) = u.max_idle {
        cx.bound(format!("{key}.max_idle"), n, &bounds::MAX_IDLE);
    }
    if https.contains(&true) && https.contains(&false) {
        cx.err(
            format!("{key}.servers"),
            "mixes https:// and plain servers: a pool is all TLS or all plain",
        );
    }
    let tls = (https.contains(&true) || u.tls.is_some()).then(|| {
        let default = crate::raw::RawUpstreamTls::default();
        upstream_tls(&key, u.tls.as_ref().unwrap_or(&default), cx)
    });
    let protocol = match u.protocol.as_deref() {
        None | Some(crate::defaults::upstream::PROTOCOL) => UpstreamProtocol::Http1,
        Some("h2") => UpstreamProtocol::H2,
        Some("auto") if tls.is_some() => UpstreamProtocol::Auto,
        Some("auto") => {
            cx.err(
                format!("{key}.protocol"),
                "\"auto\" chooses by TLS ALPN: it needs https:// servers (write \"h2\" for h2c)",
            );
            UpstreamProtocol::Http1
        }
        Some(other) => {
            cx.err(
                format!("{key}.protocol"),
                format!("expected \"http1\", \"h2\" or \"auto\", got {other:?}"),
            );
            UpstreamProtocol::Http1
        }
    };
    if let Some(h) = &u.health_check {
        if h.kind.as_deref() == Some("grpc") && protocol == UpstreamProtocol::Http1 {
            cx.err(
                format!("{key}.health_check.kind"),
                "a gRPC health check speaks HTTP/2: set protocol = \"h2\" (or \"auto\")",
            );
        }
    }
    Upstream {
        name: name.to_owned(),
        servers,
        tls,
        protocol,
        balance,
        max_fails: u.max_fails.unwrap_or(crate::defaults::upstream::MAX_FAILS),
        fail_timeout: dur(u.fail_timeout, crate::defaults::upstream::FAIL_TIMEOUT),
        connect_timeout: dur(
            u.connect_timeout,
            crate::defaults::upstream::CONNECT_TIMEOUT,
        ),
        dns_ttl: dur(u.dns_ttl, crate::defaults::upstream::DNS_TTL),
        response_timeout: dur(
            u.response_timeout,
            crate::defaults::upstream::RESPONSE_TIMEOUT,
        ),
        idle_timeout: dur(u.idle_timeout, crate::defaults::upstream::IDLE_TIMEOUT),
        max_idle: u.max_idle.unwrap_or(crate::defaults::upstream::MAX_IDLE),
        retry: u.retry.unwrap_or(crate::defaults::upstream::RETRY),
        health_check: u.health_check.as_ref().map(|h| {
            let mut sink = |k: String, m: String| cx.err(k, m);
            crate::ops::health_check(&format!("{key}.health_check"), h, &mut sink)
        }),
        required: u.required.unwrap_or(crate::defaults::upstream::REQUIRED),
    }
}

/// A server of a pool: (TLS, `host:port`) from `host:port`, `http://host[:port]` or
/// `https://host[:port]` (80 and 443 by default; no path).
fn server_address(s: &str) -> Result<(bool, String), String> {
    let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        check_authority(s)?;
        return Ok((false, s.to_owned()));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "invalid server {s:?}: a server has no path, query or credentials"
        ));
    }
    let has_port = match rest.rfind(']') {
        Some(end) => rest[end..].contains(':'),
        None => rest.contains(':'),
    };
    let authority = if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:{}", if tls { 443 } else { 80 })
    };
    check_authority(&authority)?;
    Ok((tls, authority))
}

/// Validates an upstream pool's `tls` table.
fn upstream_tls(key: &str, t: &crate::raw::RawUpstreamTls, cx: &mut Ctx<'_, '_>) -> UpstreamTls {
    let tls13_only = match t.min_version.as_deref() {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(v) => {
            cx.err(
                format!("{key}.tls.min_version"),
                format!("expected \"1.2\" or \"1.3\", got {v:?}"),
            );
            false
        }
    };
    let client_cert = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => Some((cx.path(c), cx.path(k))),
        (Some(_), None) => {
            cx.err(
                format!("{key}.tls.key"),
                "tls.cert is set but tls.key is not",
            );
            None
        }
        (None, Some(_)) => {
            cx.err(
                format!("{key}.tls.cert"),
                "tls.key is set but tls.cert is not",
            );
            None
        }
        (None, None) => None,
    };
    if let Some(n) = &t.server_name {
        if host_pattern(n, &format!("{key}.tls.server_name"), cx)
            .is_some_and(|h| matches!(h, HostPattern::Wildcard(_)))
        {
            cx.err(format!("{key}.tls.server_name"), "a name, not a wildcard");
        }
    }
    let files = [("ca", t.ca.as_ref())].into_iter().chain(
        client_cert
            .iter()
            .flat_map(|_| [("cert", t.cert.as_ref()), ("key", t.key.as_ref())]),
    );
    for (k, f) in files {
        if let Some(f) = f {
            let p = cx.path(f);
            if !p.is_file() {
                cx.err(
                    format!("{key}.tls.{k}"),
                    format!("{} is not a file", p.display()),
                );
            }
        }
    }
    UpstreamTls {
        ca: t.ca.as_ref().map(|c| cx.path(c)),
        server_name: t.server_name.clone(),
        client_cert,
        tls13_only,
        insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
    }
}

/// Checks `host:port` (a name, an IPv4 address or a bracketed IPv6 address).
fn check_authority(s: &str) -> Result<(), String> {
    let bad = || {
        format!("invalid server {s:?}: expected HOST:PORT such as \"127.0.0.1:8000\" or \"app:8000\" (no scheme, no path)")
    };
    if s.contains("://") || s.contains('/') {
        return Err(bad());
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    if host.is_empty() || (host.contains(':') && !(host.starts_with('[') && host.ends_with(']'))) {
        return Err(bad());
    }
    Ok(())
}

/// Names of the policy blocks a route may refer to.
struct PolicyNames<'a> {
    limits: Vec<&'a String>,
    cors: Vec<&'a String>,
    /// (`[jwt]` present, `[api_keys]` present, `[tls] client_ca` present).
    have: (bool, bool, bool),
    /// The CSP report endpoint's path and whether `report-to` names it, when on.
    report_path: Option<(&'a str, bool)>,
}

fn route(
    r: &RawRoute,
    key: &str,
    upstream_names: &[&String],
    pnames: &PolicyNames<'_>,
    global: &RawHeaders,
    cx: &mut Ctx<'_, '_>,
) -> Option<Route> {
    let mut hosts = Vec::new();
    if let Some(h) = &r.host {
        hosts.extend(host_pattern(h, &format!("{key}.host"), cx));
    }
    for (i, h) in r.hosts.iter().flatten().enumerate() {
        hosts.extend(host_pattern(h, &format!("{key}.hosts[{i}]"), cx));
    }
    let path_regex = r.path_regex.as_deref().and_then(|re| {
        for (set, what) in [
            (r.path.is_some(), "path"),
            (r.exact.is_some(), "exact"),
            (r.strip_prefix == Some(true), "strip_prefix"),
            (r.prefix_priority.is_some(), "prefix_priority"),
        ] {
            if set {
                cx.err(
                    format!("{key}.{what}"),
                    format!("`{what}` is for prefix routes; this route matches by `path_regex`"),
                );
            }
        }
        match regex_lite::RegexBuilder::new(re)
            .size_limit(1 << 20)
            .build()
        {
            Ok(r) => Some(r),
            Err(e) => {
                cx.err(
                    format!("{key}.path_regex"),
                    format!("invalid regular expression {re:?}: {e}"),
                );
                None
            }
        }
    });
    if r.path_regex.is_some() && path_regex.is_none() {
        return None;
    }
    let path = if path_regex.is_some() {
        String::new()
    } else {
        r.path
            .clone()
            .unwrap_or_else(|| crate::defaults::route::PATH.into())
    };
    if path_regex.is_none() && !path.starts_with('/')
        || path.contains(['?', '#', ' '])
        || path.contains("/../")
        || path.ends_with("/..")
    {
        cx.err(
            format!("{key}.path"),
            format!("invalid path {path:?}: expected a path prefix starting with '/'"),
        );
    }
    let actions = [
        r.upstream.is_some(),
        r.static_dir.is_some(),
        r.redirect.is_some(),
        r.respond.is_some(),
    ];
    let n = actions.iter().filter(|a| **a).count();
    if n != 1 {
        cx.err(
            key,
            format!("a route needs exactly one of `upstream`, `static`, `redirect`, `respond`; found {n}"),
        );
        return None;
    }
    let action = if let Some(u) = &r.upstream {
        match upstream_names.iter().position(|n| *n == u) {
            Some(i) => Action::Upstream(i),
            None => {
                let hint = did_you_mean(u, upstream_names.iter().map(|s| s.as_str()))
                    .map(|c| format!(", did you mean {c:?}?"))
                    .unwrap_or_default();
                cx.err(
                    format!("{key}.upstream"),
                    format!("unknown upstream {u:?}{hint}"),
                );
                return None;
            }
        }
    } else if let Some(dir) = &r.static_dir {
        let full = cx.path(dir);
        let dir = match std::fs::canonicalize(&full) {
            Ok(d) if d.is_dir() => d,
            Ok(_) => {
                cx.err(
                    format!("{key}.static"),
                    format!("{} is not a directory", full.display()),
                );
                return None;
            }
            Err(e) => {
                cx.err(
                    format!("{key}.static"),
                    format!("cannot open {}: {e}", full.display()),
                );
                return None;
            }
        };
        let index = r
            .index
            .clone()
            .unwrap_or_else(|| crate::defaults::route::INDEX.into());
        if index.contains('/') || index.is_empty() {
            cx.err(format!("{key}.index"), "must be a file name, without '/'");
        }
        if let Some(f) = &r.spa_fallback {
            if f.contains("..") || !dir.join(f.trim_start_matches('/')).is_file() {
                cx.err(
                    format!("{key}.spa_fallback"),
                    format!("{f:?} is not a file inside {}", dir.display()),
                );
            }
        }
        let cache = {
            let mut sink = |k: String, m: String| cx.err(k, m);
            crate::site::cache_rules(r.cache.as_deref().unwrap_or_default(), key, &mut sink)
        };
        let html_cache = match &r.html_cache {
            None => HeaderValue::from_static(crate::defaults::route::HTML_CACHE),
            Some(v) => crate::site::header_value(v).unwrap_or_else(|| {
                cx.err(
                    format!("{key}.html_cache"),
                    format!("{v:?} is not a valid Cache-Control value"),
                );
                HeaderValue::from_static(crate::site::REVALIDATE)
            }),
        };
        Action::Static(Box::new(crate::site::StaticSite {
            dir,
            index,
            spa_fallback: r
                .spa_fallback
                .as_ref()
                .map(|f| f.trim_start_matches('/').to_owned()),
            cache,
            html_cache,
            hashed_cache: HeaderValue::from_static(crate::site::IMMUTABLE),
            other_cache: HeaderValue::from_static(crate::site::REVALIDATE),
            dotfiles: r.dotfiles.unwrap_or(false),
            follow_symlinks: r.follow_symlinks.unwrap_or(false),
            revalidate_after: dur(r.revalidate_after, crate::defaults::route::REVALIDATE_AFTER),
        }))
    } else if let Some(to) = &r.redirect {
        let status = r
            .redirect_status
            .unwrap_or(crate::defaults::route::REDIRECT_STATUS);
        if ![301, 302, 303, 307, 308].contains(&status) {
            cx.err(
                format!("{key}.redirect_status"),
                format!("expected 301, 302, 303, 307 or 308, got {status}"),
            );
        }
        let absolute = to.starts_with("https://") || to.starts_with("http://");
        if !(absolute || to.starts_with('/')) || to.parse::<http::Uri>().is_err() {
            cx.err(format!("{key}.redirect"), format!("invalid redirect target {to:?}: expected an absolute http(s) URL or a path starting with '/'"));
        }
        Action::Redirect {
            to: to.clone(),
            status,
            keep_path: r.redirect_keep_path.unwrap_or(false),
        }
    } else {
        let resp = r.respond.as_ref()?;
        let status = resp
            .status
            .unwrap_or(crate::defaults::route::RESPOND_STATUS);
        if !(200..=599).contains(&status) {
            cx.err(
                format!("{key}.respond.status"),
                format!("expected a status between 200 and 599, got {status}"),
            );
        }
        let ct = resp
            .content_type
            .as_deref()
            .unwrap_or(crate::defaults::route::RESPOND_CONTENT_TYPE);
        let content_type = HeaderValue::from_str(ct).unwrap_or_else(|_| {
            cx.err(
                format!("{key}.respond.content_type"),
                "not a valid header value",
            );
            HeaderValue::from_static("text/plain")
        });
        Action::Respond {
            status,
            body: resp.body.clone().unwrap_or_default(),
            content_type,
        }
    };
    if r.strip_prefix == Some(true) && !matches!(action, Action::Upstream(_)) {
        cx.err(
            format!("{key}.strip_prefix"),
            "only applies to `upstream` routes",
        );
    }
    let mut request_headers = Vec::new();
    if let Some(set) = &r.request_headers {
        if !matches!(action, Action::Upstream(_)) {
            cx.err(
                format!("{key}.request_headers"),
                "only applies to `upstream` routes",
            );
        }
        for (name, value) in set {
            let k = format!("{key}.request_headers.{name}");
            let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
                cx.err(k, format!("{name:?} is not a header name"));
                continue;
            };
            // Framing, hop-by-hop and the forwarding headers are rampart's to set.
            const OWN: &[&str] = &[
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "keep-alive",
                "upgrade",
                "te",
                "trailer",
                "proxy-connection",
                "proxy",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "x-real-ip",
                "x-request-id",
                "traceparent",
            ];
            if OWN.contains(&n.as_str()) {
                cx.err(k, format!("{name} is set by rampart itself (the forwarding and framing headers cannot be overridden)"));
                continue;
            }
            let v = if value.is_empty() {
                None
            } else {
                match HeaderValue::from_str(value) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        cx.err(k, "not a valid header value (control characters?)");
                        continue;
                    }
                }
            };
            request_headers.push((n, v));
        }
    }
    let is_static = matches!(action, Action::Static(_));
    for (set, name) in [
        (r.cache.is_some(), "cache"),
        (r.html_cache.is_some(), "html_cache"),
        (r.dotfiles.is_some(), "dotfiles"),
        (r.follow_symlinks.is_some(), "follow_symlinks"),
        (r.revalidate_after.is_some(), "revalidate_after"),
    ] {
        if set && !is_static {
            cx.err(format!("{key}.{name}"), "only applies to `static` routes");
        }
    }
    let compress = r
        .compress
        .unwrap_or(is_static)
        .then(|| crate::site::Compress {
            min_size: r
                .compress_min_size
                .map_or(crate::defaults::route::COMPRESS_MIN_SIZE, |s| s.0),
        });
    let own = r.headers.clone().unwrap_or_default();
    check_headers(&own, &format!("{key}.headers"), cx);
    let merged = headers_merged(global, &own);
    let (headers, csp_text) = header_policy(
        &merged,
        r.csp_report_only.unwrap_or(false),
        pnames.report_path,
    );
    if let (Some(true), Some(c)) = (r.csp_nonce, &r.html_cache) {
        if !c.to_ascii_lowercase().contains("no-store") {
            cx.err(
                format!("{key}.html_cache"),
                format!(
                    "{c:?} would not apply: csp_nonce pages are sent `Cache-Control: no-cache, private` (a cached page would replay its nonce); remove html_cache, or use \"no-store\""
                ),
            );
        }
    }
    let csp_nonce = if r.csp_nonce == Some(true) {
        match csp_text {
            Some(t) => Some(t),
            None => {
                cx.err(
                    format!("{key}.csp_nonce"),
                    "the route sends no Content-Security-Policy (headers.csp = false)",
                );
                None
            }
        }
    } else {
        None
    };
    let name = r.name.clone().unwrap_or_else(|| {
        let host = r
            .host
            .clone()
            .or_else(|| r.hosts.as_ref().and_then(|h| h.first().cloned()));
        let path = match &r.path_regex {
            Some(re) => format!("~{re}"),
            None => path.clone(),
        };
        match host {
            Some(h) => format!("{h}{path}"),
            None => path,
        }
    });
    let policy = {
        let mut sink = |k: String, m: String| cx.err(k, m);
        let (jwt, keys, ca) = pnames.have;
        let have = (jwt, keys, ca || r.client_ca.is_some());
        crate::policy::route_policy(r, key, &pnames.limits, &pnames.cors, have, &mut sink)
    };
    let client_cert = match r.client_cert.as_deref() {
        None | Some("off") => ClientCertMode::Off,
        Some("optional") => ClientCertMode::Optional,
        Some("required") => ClientCertMode::Required,
        Some(other) => {
            cx.err(
                format!("{key}.client_cert"),
                format!("expected \"required\", \"optional\" or \"off\", got {other:?}"),
            );
            ClientCertMode::Off
        }
    };
    if client_cert != ClientCertMode::Off && !pnames.have.2 && r.client_ca.is_none() {
        cx.err(
            format!("{key}.client_cert"),
            "needs [tls] client_ca or the route's client_ca (the CA client certificates must chain to)",
        );
    }
    if r.client_ca.is_some() && client_cert == ClientCertMode::Off {
        cx.err(
            format!("{key}.client_ca"),
            "needs client_cert = \"required\" or \"optional\"",
        );
    }
    if let Some(ca) = &r.client_ca {
        if !cx.path(ca).is_file() {
            cx.err(
                format!("{key}.client_ca"),
                format!("{} is not a file", cx.path(ca).display()),
            );
        }
    }
    Some(Route {
        client_cert,
        client_ca: 0,
        name,
        hosts,
        path,
        exact: r.exact.unwrap_or(false),
        path_regex,
        prefix_priority: r.prefix_priority.unwrap_or(false),
        strip_prefix: r.strip_prefix.unwrap_or(false),
        request_headers,
        action,
        headers,
        policy,
        compress,
        csp_nonce,
        requires_feature: r
            .requires_feature
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned),
    })
}

/// Per-key override: a route's value wins over the global one.
fn headers_merged(global: &RawHeaders, own: &RawHeaders) -> RawHeaders {
    fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
        b.clone().or_else(|| a.clone())
    }
    let mut set: BTreeMap<String, String> = global.set.clone().unwrap_or_default();
    set.extend(own.set.clone().unwrap_or_default());
    let mut remove = global.remove.clone().unwrap_or_default();
    remove.extend(own.remove.clone().unwrap_or_default());
    RawHeaders {
        hsts: pick(&global.hsts, &own.hsts),
        hsts_preload: pick(&global.hsts_preload, &own.hsts_preload),
        csp: pick(&global.csp, &own.csp),
        content_type_options: pick(&global.content_type_options, &own.content_type_options),
        frame_options: pick(&global.frame_options, &own.frame_options),
        referrer_policy: pick(&global.referrer_policy, &own.referrer_policy),
        permissions_policy: pick(&global.permissions_policy, &own.permissions_policy),
        coop: pick(&global.coop, &own.coop),
        corp: pick(&global.corp, &own.corp),
        coep: pick(&global.coep, &own.coep),
        hide_banners: pick(&global.hide_banners, &own.hide_banners),
        remove: Some(remove),
        set: Some(set),
    }
}

/// Reports bad header names and values where they are written (the global block once,
/// each route's own block once), so a bad global value is not repeated per route.
fn check_headers(h: &RawHeaders, key: &str, cx: &mut Ctx<'_, '_>) {
    let toggles = [
        ("hsts", &h.hsts),
        ("csp", &h.csp),
        ("content_type_options", &h.content_type_options),
        ("frame_options", &h.frame_options),
        ("referrer_policy", &h.referrer_policy),
        ("permissions_policy", &h.permissions_policy),
        ("coop", &h.coop),
        ("corp", &h.corp),
        ("coep", &h.coep),
    ];
    for (k, t) in toggles {
        if let Some(Toggle::Value(v)) = t {
            if HeaderValue::from_str(v).is_err() || v.trim().is_empty() {
                cx.err(
                    format!("{key}.{k}"),
                    format!("{v:?} is not a valid header value"),
                );
            }
        }
    }
    if let Some(Toggle::Value(v)) = &h.hsts {
        if !v.to_ascii_lowercase().contains("max-age=") {
            cx.err(format!("{key}.hsts"), "must contain max-age=SECONDS");
        }
    }
    // Headers with a closed set of values: a typo (`DENYY`) is ignored by browsers, which
    // then fall back to no protection at all.
    let known: [(&str, &Option<Toggle>, &[&str]); 6] = [
        ("frame_options", &h.frame_options, &["DENY", "SAMEORIGIN"]),
        (
            "content_type_options",
            &h.content_type_options,
            &["nosniff"],
        ),
        (
            "referrer_policy",
            &h.referrer_policy,
            crate::site::REFERRER_POLICIES,
        ),
        (
            "coop",
            &h.coop,
            &[
                "same-origin",
                "same-origin-allow-popups",
                "noopener-allow-popups",
                "unsafe-none",
            ],
        ),
        (
            "corp",
            &h.corp,
            &["same-origin", "same-site", "cross-origin"],
        ),
        (
            "coep",
            &h.coep,
            &["require-corp", "credentialless", "unsafe-none"],
        ),
    ];
    for (k, t, values) in known {
        let Some(Toggle::Value(v)) = t else { continue };
        // Referrer-Policy may list fallbacks: `no-referrer, strict-origin-when-cross-origin`.
        let bad = v
            .split(',')
            .map(str::trim)
            .find(|item| !values.iter().any(|ok| ok.eq_ignore_ascii_case(item)));
        if let Some(item) = bad {
            let hint = did_you_mean(item, values.iter().copied())
                .map(|c| format!(", did you mean {c:?}?"))
                .unwrap_or_default();
            cx.err(
                format!("{key}.{k}"),
                format!("{item:?} is not one of {}{hint}", values.join(", ")),
            );
        }
    }
    for (name, value) in h.set.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            cx.err(format!("{key}.set.{name}"), "not a valid header name");
        } else if HeaderValue::from_str(value).is_err() {
            cx.err(format!("{key}.set.{name}"), "not a valid header value");
        } else if name.eq_ignore_ascii_case("strict-transport-security") {
            if !value.to_ascii_lowercase().contains("max-age=") {
                cx.err(format!("{key}.set.{name}"), "must contain max-age=SECONDS");
            }
            if h.hsts.is_some() {
                cx.err(
                    format!("{key}.set.{name}"),
                    "both `hsts` and `set.Strict-Transport-Security` are set; keep one",
                );
            }
        }
    }
    for (i, name) in h.remove.iter().flatten().enumerate() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            cx.err(
                format!("{key}.remove[{i}]"),
                format!("{name:?} is not a valid header name"),
            );
        }
    }
}

/// The route's header policy, and (when it sends a CSP) the CSP header name and text, for
/// `csp_nonce`. With `report_path`, the CSP gets `report-uri`/`report-to` and the response a
/// `Reporting-Endpoints` header.
fn header_policy(
    h: &RawHeaders,
    report_only: bool,
    report_path: Option<(&str, bool)>,
) -> (HeaderPolicy, Option<(HeaderName, String)>) {
    let mut p = header_policy_plain(h);
    let mut csp = None;
    if let Some(i) = p
        .set
        .iter()
        .position(|(k, _)| k == "content-security-policy")
    {
        let (_, v) = p.set.remove(i);
        let mut text = v.to_str().unwrap_or_default().to_owned();
        if let Some((path, report_to)) = report_path {
            text = crate::site::csp_with_reporting(&text, path, report_to);
        }
        if let Some((path, true)) = report_path {
            p.set.push((
                HeaderName::from_static("reporting-endpoints"),
                HeaderValue::from_str(&format!("{}=\"{path}\"", crate::site::REPORT_GROUP))
                    .unwrap_or(HeaderValue::from_static("")),
            ));
        }
        let name = HeaderName::from_static(if report_only {
            "content-security-policy-report-only"
        } else {
            "content-security-policy"
        });
        if let Ok(v) = HeaderValue::from_str(&text) {
            p.set.push((name.clone(), v));
        }
        csp = Some((name, text));
    }
    (p, csp)
}

fn header_policy_plain(h: &RawHeaders) -> HeaderPolicy {
    let mut set = Vec::new();
    let mut add = |name: &'static str, t: &Option<Toggle>, default: Option<&'static str>| {
        let value = match t {
            None | Some(Toggle::Default) => default.map(HeaderValue::from_static),
            Some(Toggle::Off) => None,
            Some(Toggle::Value(v)) => HeaderValue::from_str(v).ok(),
        };
        if let Some(v) = value {
            set.push((HeaderName::from_static(name), v));
        }
    };
    add("content-security-policy", &h.csp, Some(DEFAULT_CSP));
    add(
        "x-content-type-options",
        &h.content_type_options,
        Some(crate::defaults::headers::CONTENT_TYPE_OPTIONS),
    );
    add(
        "x-frame-options",
        &h.frame_options,
        Some(crate::defaults::headers::FRAME_OPTIONS),
    );
    add(
        "referrer-policy",
        &h.referrer_policy,
        Some(crate::defaults::headers::REFERRER_POLICY),
    );
    add(
        "permissions-policy",
        &h.permissions_policy,
        Some(DEFAULT_PERMISSIONS_POLICY),
    );
    add(
        "cross-origin-opener-policy",
        &h.coop,
        Some(crate::defaults::headers::COOP),
    );
    add(
        "cross-origin-resource-policy",
        &h.corp,
        Some(crate::defaults::headers::CORP),
    );
    add("cross-origin-embedder-policy", &h.coep, None);
    // `set` overrides every header the named keys control, HSTS included (one rule): a
    // `Strict-Transport-Security` in `set` is the `hsts` value, still sent on HTTPS only.
    let mut hsts_set = None;
    for (name, value) in h.set.iter().flatten() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            if n == http::header::STRICT_TRANSPORT_SECURITY {
                hsts_set = Some(value.clone());
                continue;
            }
            set.retain(|(k, _)| *k != n);
            set.push((n, v));
        }
    }
    let hsts = match (&h.hsts, hsts_set) {
        (_, Some(v)) => Some(v),
        (None | Some(Toggle::Default), None) => Some(DEFAULT_HSTS.to_owned()),
        (Some(Toggle::Off), None) => None,
        (Some(Toggle::Value(v)), None) => Some(v.clone()),
    }
    .map(|mut v| {
        if h.hsts_preload == Some(true) && !v.to_ascii_lowercase().contains("preload") {
            v.push_str("; preload");
        }
        v
    })
    .and_then(|v| HeaderValue::from_str(&v).ok());
    let mut remove: Vec<HeaderName> = Vec::new();
    if h.hide_banners != Some(false) {
        remove.extend(BANNER_HEADERS.iter().map(|n| HeaderName::from_static(n)));
    }
    remove.extend(
        h.remove
            .iter()
            .flatten()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()),
    );
    HeaderPolicy::new(set, hsts, remove)
}
