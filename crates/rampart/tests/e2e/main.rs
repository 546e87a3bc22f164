//! End-to-end tests: the real edge on ephemeral loopback ports, in front of real upstream
//! servers, spoken to by real HTTP/1.1, HTTP/2, TLS and WebSocket clients (and `curl` /
//! `openssl` where they are the truest check). One binary, one module per feature.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod harness;

mod acme;
mod app_servers;
mod backup;
mod browser;
mod cli;
mod client_certs;
mod config_ranges;
mod fleet;
mod framing;
mod grpc;
mod guides;
mod h2_server;
mod h2_upstream;
mod headers;
mod import;
mod integrity;
mod license;
mod limits;
mod observability;
mod ocsp;
mod ops;
mod policies;
mod preflight;
mod proxy;
mod rate;
mod routing;
mod site;
mod static_files;
mod status_page;
mod systemd;
mod tls;
mod upstream_tls;
mod verify;
