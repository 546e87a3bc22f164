//! The admin API, on its own listener (`[admin] listen`, loopback by default), optionally
//! behind a bearer token:
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus / OpenMetrics text |
//! | `GET /health` | `{"status": "healthy|degraded|unhealthy", "version", "services", "security", …}` |
//! | `GET /ready` | 200 when serving, every required pool has a server up and every required dependency answers; 503 otherwise (and while draining) |
//! | `GET /upstreams` | every pool and server: up, weight, in flight, errors, health-check and passive state |
//! | `POST /reload` | re-read the config file (as SIGHUP); 200 with what changed, 422 with the errors |
//! | `POST /upstreams/{pool}/{server}` | body `{"weight": N}` or `{"drain": true|false}` |
//! | `POST /routes/{route}` | body `{"upstream": "pool"}`: switch the route's pool (blue-green); an unnamed route by its generated name (`/routes//api/`) or its index |
//! | `POST /routes` | `{"from": "blue", "to": "green"}` or `{"routes": {…}}`: several routes at once, all or none |
//! | `GET /certificates` | every certificate served: source (its config key), names, expiry (Unix and days left) |
//! | `GET /revocations` | `{"before": UNIX, "ids": [{"jti", "expires"}]}`: tokens revoked at runtime |
//! | `GET /status` | the status page (HTML, its script and style: no token needed, no data in them) |
//! | `GET /status/snapshot` | what the page shows, as JSON (see [`super::status_page`]) |
//! | `GET /status/events` | the same, a snapshot a second, as Server-Sent Events |
//! | `POST /revocations` | `{"jti": "…", "expires": UNIX}` (expires defaults to 30 days on) or `{"before": UNIX or "RFC 3339"}`: refuse a token, or every token issued before an instant |
//!
//! Control changes are audit events (`admin.change`, `auth.revoke`), survive reloads while
//! the pool, server or route they name still exists, are saved under `state_dir` (a restart
//! keeps them) and, with `[state] backend = "redis"`, reach every instance of the fleet. `/metrics`, `/health` and `/ready` can also be
//! mounted on the public listeners (`public_path`) for the networks in `public_allow`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::live::Live;
use crate::edge::Edge;
use crate::request::status::{self, json_response};
use crate::wire::body::Body;

/// Serves the admin API on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, live: Arc<Live>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let live = live.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let live = live.clone();
                async move { Ok::<_, Infallible>(handle(&live, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": code, "message": message}))
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(live: &Arc<Live>, req: Request<Incoming>) -> Response<Body> {
    let edge = live.edge();
    if super::status_page::is_asset(req.uri().path())
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        return super::status_page::asset(req.uri().path());
    }
    if let Some(token) = edge.config.admin.as_ref().and_then(|a| a.token.as_deref()) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "admin API: send Authorization: Bearer <admin.token>",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), parts.as_slice()) {
        (Method::GET | Method::HEAD, ["metrics"]) => status::metrics(&edge),
        (Method::GET | Method::HEAD, ["health"]) => status::health(&edge).await,
        (Method::GET | Method::HEAD, ["ready"]) => status::ready(&edge).await,
        (Method::GET | Method::HEAD, ["status", "snapshot"]) => {
            json_response(StatusCode::OK, &super::status_page::snapshot(live).await)
        }
        (Method::GET, ["status", "events"]) => super::status_page::events(live),
        (Method::GET | Method::HEAD, ["upstreams"]) => {
            json_response(StatusCode::OK, &status::upstreams(&edge))
        }
        (Method::GET | Method::HEAD, ["certificates"]) => {
            json_response(StatusCode::OK, &status::certificates(&edge))
        }
        (Method::GET | Method::HEAD, ["revocations"]) => {
            let r = &live.revocations;
            let ids: Vec<Value> = r
                .ids()
                .into_iter()
                .map(|(jti, expires)| json!({"jti": jti, "expires": expires}))
                .collect();
            json_response(StatusCode::OK, &json!({"before": r.before(), "ids": ids}))
        }
        (Method::POST, ["revocations"]) => match body_json(req).await {
            Ok(v) => revoke(live, &v),
            Err(r) => r,
        },
        (Method::POST, ["reload"]) => match live.reload_from_source().await {
            Ok(done) => json_response(
                StatusCode::OK,
                &json!({
                    "reloaded": true,
                    "rebound": done.rebound,
                    "pools_kept": done.pools_kept,
                    "needs_restart": done.needs_restart,
                }),
            ),
            Err(e) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"reloaded": false, "error": "config_rejected", "message": e}),
            ),
        },
        (Method::POST, ["upstreams", pool, server]) => {
            let (pool, server) = ((*pool).to_owned(), (*server).to_owned());
            match body_json(req).await {
                Ok(v) => set_server(live, &pool, &server, &v),
                Err(r) => r,
            }
        }
        (Method::POST, ["routes"]) => match body_json(req).await {
            Ok(v) => switch_routes(live, &edge, &v),
            Err(r) => r,
        },
        (Method::POST, ["routes", ..]) => {
            // The rest of the path is the name, as written (`/routes//api/` for an unnamed
            // route on /api/, percent-encoded or not), or the route's index.
            let raw = path.strip_prefix("/routes/").unwrap_or_default();
            let route = crate::wire::path::percent_decode(raw)
                .map_or_else(|| raw.to_owned(), |d| d.into_owned());
            match body_json(req).await {
                Ok(v) => switch_route(live, &route, &v),
                Err(r) => r,
            }
        }
        (_, ["metrics" | "health" | "ready" | "upstreams" | "revocations" | "certificates"]) => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "GET only",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
    }
}

async fn body_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), 16 * 1024);
    let bytes: Bytes = limited
        .collect()
        .await
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "16KB at most"))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_json", &e.to_string()))
}

fn set_server(live: &Arc<Live>, pool: &str, server: &str, v: &Value) -> Response<Body> {
    let weight = match (v.get("weight"), v.get("drain")) {
        (Some(w), None) => match w.as_u64() {
            Some(w) if w <= 1000 => u32::try_from(w).unwrap_or(1000),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_weight",
                    "weight must be an integer from 0 to 1000",
                )
            }
        },
        (None, Some(Value::Bool(true))) => 0,
        (None, Some(Value::Bool(false))) => 1,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "send {\"weight\": N} or {\"drain\": true|false}",
            )
        }
    };
    match live.set_weight(pool, server, weight) {
        Ok(()) => json_response(
            StatusCode::OK,
            &json!({"upstream": pool, "server": server, "weight": weight, "draining": weight == 0}),
        ),
        Err(e) => error(StatusCode::NOT_FOUND, "not_found", &e),
    }
}

/// `POST /routes`: `{"from": "blue", "to": "green"}` moves every route on `blue`, or
/// `{"routes": {"name": "pool", …}}` the ones listed; all or none.
fn switch_routes(live: &Arc<Live>, edge: &Edge, v: &Value) -> Response<Body> {
    let changes: Vec<(String, String)> = match (v.get("from"), v.get("to"), v.get("routes")) {
        (Some(Value::String(from)), Some(Value::String(to)), None) => {
            let Some(from_idx) = edge.pool_index(from) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no upstream named {from:?}"),
                );
            };
            edge.config
                .routes
                .iter()
                .enumerate()
                .filter(|(i, _)| edge.route_pool(*i) == Some(from_idx))
                .map(|(_, r)| (r.name.clone(), to.clone()))
                .collect()
        }
        (None, None, Some(Value::Object(m))) if !m.is_empty() => {
            let mut out = Vec::new();
            for (route, pool) in m {
                let Some(pool) = pool.as_str() else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "each route maps to a pool name",
                    );
                };
                out.push((route.clone(), pool.to_owned()));
            }
            out
        }
        _ => return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send {\"from\": \"blue\", \"to\": \"green\"} or {\"routes\": {\"route\": \"pool\"}}",
        ),
    };
    let pairs: Vec<(&str, &str)> = changes
        .iter()
        .map(|(r, p)| (r.as_str(), p.as_str()))
        .collect();
    match live.switch_routes(&pairs) {
        Ok(names) => json_response(
            StatusCode::OK,
            &json!({"switched": names.iter().zip(&changes).map(|(n, (_, p))| json!({"route": n, "upstream": p})).collect::<Vec<_>>()}),
        ),
        Err(e) => error(StatusCode::NOT_FOUND, "not_found", &e),
    }
}

/// `POST /revocations`.
fn revoke(live: &Arc<Live>, v: &Value) -> Response<Body> {
    let now = crate::state::persist::unix_ms() / 1000;
    match (v.get("jti"), v.get("before")) {
        (Some(Value::String(jti)), None) if !jti.is_empty() && jti.len() <= 256 => {
            let expires = match v.get("expires") {
                None => now + 30 * 86_400,
                Some(e) => match e.as_u64() {
                    Some(e) if e > now && e <= now + 10 * 365 * 86_400 => e,
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_expires",
                            "expires is the token's expiry: a Unix time in the future",
                        )
                    }
                },
            };
            live.revoke(jti, expires);
            json_response(StatusCode::OK, &json!({"revoked": jti, "expires": expires}))
        }
        (None, Some(b)) => {
            let at = match b {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => rampart_config::policy::parse_rfc3339(s),
                _ => None,
            };
            match at {
                // A cut-off in the future would refuse tokens not yet issued.
                Some(at) if at <= now + 60 => {
                    live.revoke_before(at);
                    json_response(StatusCode::OK, &json!({"revoked_before": at}))
                }
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "bad_before",
                    "before is an instant not in the future: Unix seconds or RFC 3339",
                ),
            }
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send {\"jti\": \"…\", \"expires\": UNIX} or {\"before\": UNIX}",
        ),
    }
}

fn switch_route(live: &Arc<Live>, route: &str, v: &Value) -> Response<Body> {
    let Some(pool) = v.get("upstream").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send {\"upstream\": \"pool\"}",
        );
    };
    match live.switch_route(route, pool) {
        Ok(()) => json_response(StatusCode::OK, &json!({"route": route, "upstream": pool})),
        Err(e) => error(StatusCode::NOT_FOUND, "not_found", &e),
    }
}
