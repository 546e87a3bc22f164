//! Micro-benchmarks of the per-request pieces rampart adds to a proxied request, so a
//! regression shows without the full harness (`bench/run`): routing (with path
//! normalisation), the response header policy, and preparing a request for the upstream.
//! The rate-limit decision joins them when the limiter lands (issue 4).
//!
//! `cargo bench -p rampart-server`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Request};
use rampart_config::{load_str, Source};
use rampart_server::edge::router::{normalize_path, Router};
use rampart_server::handler::proxy::{self, ClientInfo};

const CONFIG: &str = r#"
[server]
http = "127.0.0.1:0"
[upstreams.api]
servers = ["127.0.0.1:9"]
[upstreams.web]
servers = ["127.0.0.1:9"]
[[routes]]
path = "/"
upstream = "web"
[[routes]]
path = "/api/"
upstream = "api"
[[routes]]
path = "/api/auth/login"
exact = true
upstream = "api"
[[routes]]
path = "/static/"
upstream = "web"
[[routes]]
host = "*.tenants.example"
path = "/"
upstream = "api"
[[routes]]
host = "admin.example"
path = "/"
upstream = "web"
"#;

fn config() -> rampart_config::Config {
    let env = |_: &str| None;
    load_str(
        CONFIG,
        &Source {
            name: "bench".into(),
            base_dir: ".".into(),
            env: &env,
        },
    )
    .unwrap()
}

fn routing(c: &mut Criterion) {
    let cfg = config();
    let router = Router::new(&cfg.routes);
    c.bench_function("route: host-less prefix", |b| {
        b.iter(|| {
            let p = normalize_path(black_box("/api/users/42")).unwrap();
            black_box(router.find(black_box("app.example"), &p))
        })
    });
    c.bench_function("route: wildcard host", |b| {
        b.iter(|| {
            let p = normalize_path(black_box("/dashboard")).unwrap();
            black_box(router.find(black_box("acme.tenants.example"), &p))
        })
    });
    c.bench_function("route: path needing normalisation", |b| {
        b.iter(|| {
            let p = normalize_path(black_box("/static/../api/%75sers//42")).unwrap();
            black_box(router.find(black_box("app.example"), &p))
        })
    });
}

fn upstream_response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("nginx/1.22.1"));
    h.insert(
        "date",
        HeaderValue::from_static("Sun, 22 Nov 2026 12:00:00 GMT"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-length", HeaderValue::from_static("100"));
    h
}

fn header_policy(c: &mut Criterion) {
    let cfg = config();
    let policy = &cfg.routes[0].headers;
    let template = upstream_response_headers();
    c.bench_function("response header policy (HTTPS)", |b| {
        b.iter_batched(
            || template.clone(),
            |mut h| {
                rampart_server::policy::headers::apply(&mut h, policy, true);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn prepare(c: &mut Criterion) {
    let info = ClientInfo {
        peer: "203.0.113.9".parse::<IpAddr>().unwrap(),
        peer_value: proxy::ip_value("203.0.113.9".parse::<IpAddr>().unwrap()),
        peer_trusted: false,
        client_ip: "203.0.113.9".parse::<IpAddr>().unwrap(),
        tls: true,
    };
    let id = rampart_server::wire::request_id::generate();
    let make = || {
        Request::get("/api/users/42?expand=1")
            .header("host", "app.example")
            .header("user-agent", "Mozilla/5.0")
            .header("accept", "application/json")
            .header("connection", "keep-alive")
            .header("cookie", "session=abc")
            .body(())
            .unwrap()
    };
    let context =
        rampart_server::wire::trace_context::TraceContext::of(&http::HeaderMap::new(), &id, true);
    c.bench_function("prepare upstream request", |b| {
        b.iter_batched(
            make,
            |mut req| {
                let fwd = proxy::prepare_request(&mut req, None, &info, (&id, &context));
                (req, fwd)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("request id", |b| {
        b.iter(rampart_server::wire::request_id::generate)
    });
}

criterion_group!(benches, routing, header_policy, prepare);
criterion_main!(benches);
