//! The status endpoints: `/metrics`, `/health` and `/ready`, answered from the edge they
//! run on (its pools, dependencies, config) and its process (draining, reloads,
//! connections). Served by the admin listener and, under `admin.public_path`, by the spine.

use std::sync::atomic::Ordering;

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::edge::Edge;
use crate::handler::proxy::Pool;
use crate::observe::metrics::{ServerStat, Snapshot};
use crate::observe::process::{LicenseState, LicenseStatus};
use crate::wire::body::Body;

/// A JSON answer that is never cached.
pub fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::full(format!("{v}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The OpenMetrics text of the edge and its process now.
pub fn metrics_text(edge: &Edge) -> String {
    let servers = edge
        .pools()
        .iter()
        .flat_map(|p| {
            p.servers().iter().map(move |s| ServerStat {
                upstream: p.label.clone(),
                server: s.label.clone(),
                up: p.is_up(s),
                inflight: s.inflight(),
                weight: s.weight(),
                errors: s.errors(),
                tls_failures: s.tls_failures(),
                dns_lookups: s.dns_lookups(),
            })
        })
        .collect();
    edge.metrics.render(&Snapshot {
        process: &edge.process,
        panics: crate::request::rescue::panics(),
        spans: edge
            .config
            .otlp
            .as_ref()
            .map(|_| crate::observe::otlp::counts()),
        servers,
        posture: edge.config.posture.as_ref(),
        certificates: edge
            .certificates_now()
            .into_iter()
            .map(|c| {
                let name = c.names.first().cloned().unwrap_or_default();
                let now = crate::state::persist::unix_ms() / 1000;
                let stapled = c
                    .ocsp
                    .staple
                    .load()
                    .as_ref()
                    .filter(|s| s.next_update > now)
                    .map(|s| s.this_update);
                (name, c.source, c.not_after, stapled)
            })
            .collect(),
        state: edge
            .policies
            .shared()
            .map(|f| crate::observe::metrics::StateStat {
                shared: f.breaker.is_closed(),
                errors: f.stats.errors.load(Ordering::Relaxed),
                fallbacks: f.stats.fallbacks.load(Ordering::Relaxed),
                opened: f.stats.opened.load(Ordering::Relaxed),
                closed: f.stats.closed.load(Ordering::Relaxed),
                leased: f.stats.leased.load(Ordering::Relaxed),
            }),
    })
}

/// `/metrics`.
pub fn metrics(edge: &Edge) -> Response<Body> {
    let text = metrics_text(edge);
    let mut r = Response::new(Body::full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The state of a pool: `operational` (every server up), `degraded`, or `down`.
pub fn pool_state(p: &Pool) -> &'static str {
    let up = p.servers().iter().filter(|s| p.is_up(s)).count();
    if up == p.servers().len() {
        "operational"
    } else if up > 0 {
        "degraded"
    } else {
        "down"
    }
}

/// `/health`.
pub async fn health(edge: &Edge) -> Response<Body> {
    let mut services = serde_json::Map::new();
    let mut worst = 0u8; // 0 healthy, 1 degraded, 2 unhealthy
    for (i, p) in edge.pools().iter().enumerate() {
        let state = pool_state(p);
        // A pool no route uses (blue after a cut-over to green) decides nothing.
        if edge.pool_in_use(i) {
            worst = worst.max(match (state, p.config.required) {
                ("operational", _) => 0,
                ("down", true) => 2,
                _ => 1,
            });
        }
        services.insert(format!("upstream:{}", p.name), state.into());
    }
    let deps = &edge.config.dependencies;
    for (d, r) in deps.iter().zip(crate::observe::deps::probe_all(deps).await) {
        let state = if r.is_ok() { "operational" } else { "down" };
        if r.is_err() {
            worst = worst.max(if d.required { 2 } else { 1 });
        }
        services.insert(d.name.clone(), state.into());
    }
    if edge.process.draining() {
        worst = worst.max(1);
    }
    let state = state_json(edge);
    if state["mode"] == "fallback" {
        worst = worst.max(1);
    }
    if edge.acme.as_ref().is_some_and(|a| {
        let last = a.last();
        last.at > 0 && !last.ok
    }) {
        worst = worst.max(1);
    }
    let integrity = edge
        .config
        .integrity
        .as_ref()
        .map(|cfg| (cfg, edge.process.integrity()));
    if integrity
        .as_ref()
        .is_some_and(|(_, r)| r.as_ref().is_some_and(|r| !r.ok()))
    {
        worst = worst.max(1);
    }
    let backups = backups_json(edge);
    if backups
        .values()
        .any(|b| matches!(b["status"].as_str(), Some("failed" | "missed")))
    {
        worst = worst.max(1);
    }
    let license = edge.process.license.load_full();
    if let Some(st) = license.as_deref() {
        worst = worst.max(match st.state {
            s if s.blocks() => 2,
            LicenseState::Grace => 1,
            LicenseState::Expiring if st.days_left().unwrap_or(0) < 7 => 1,
            _ => 0,
        });
    }
    let stapling = edge.config.tls.as_ref().is_some_and(|t| t.ocsp_stapling);
    let certificates = edge.certificates_now();
    if stapling
        && certificates
            .iter()
            .any(|c| matches!(c.ocsp.status().state, "revoked" | "error" | "unknown"))
    {
        worst = worst.max(1);
    }
    let status = ["healthy", "degraded", "unhealthy"][usize::from(worst)];
    let c = &edge.config;
    let routes = &c.routes;
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": edge.process.uptime().as_secs(),
        "draining": edge.process.draining(),
        "services": services,
        "state": state,
        "acme": edge.acme.as_ref().map(|a| {
            let last = a.last();
            let cert = a.cert.load_full();
            json!({
                "names": cert.as_ref().map(|c| {
                    let mut n = c.names.clone();
                    n.sort();
                    n
                }),
                "not_after": cert.as_ref().map(|c| c.not_after),
                "last_attempt": last.at,
                "last_ok": last.ok,
                "last_message": last.message,
                "next_attempt": last.next,
                "renewal": last.renewal,
            })
        }),
        "integrity": integrity.map(|(cfg, r)| json!({
            "status": match &r {
                None => "pending",
                Some(r) if r.ok() => "ok",
                Some(_) => "mismatch",
            },
            "manifest": cfg.manifest.display().to_string(),
            "checked_at": r.as_ref().map(|r| r.checked_at),
            "took_ms": r.as_ref().map(|r| r.took.as_millis()),
            "files": r.as_ref().map(|r| r.files),
            "signed_with": r.as_ref().and_then(|r| r.signed_with),
            "problems": r.as_ref().map(|r| r.problems.clone()).unwrap_or_default(),
        })),
        "license": license.as_deref().map(license_json),
        "backups": (!backups.is_empty()).then_some(backups),
        "ocsp": stapling.then(|| certificates.iter().map(ocsp_json).collect::<Vec<_>>()),
        "security": {
            "authentication_required": routes.iter().any(|r| !r.policy.auth.is_empty() && !r.policy.auth_optional),
            "https_enforced": c.tls.is_some() && c.server.https.is_some(),
            "hsts_enabled": routes.iter().all(|r| r.headers.hsts.is_some()),
            "csp_enabled": routes.iter().all(|r| r.headers.set.iter().any(|(n, _)| n.as_str().starts_with("content-security-policy"))),
            "rate_limiting_enabled": routes.iter().any(|r| !r.policy.limits.is_empty()),
            "csrf_protection_enabled": routes.iter().any(|r| r.policy.csrf),
            "pii_masking_enabled": edge.logs.mask_pii,
            "admin_token_required": c.admin.as_ref().is_some_and(|a| a.token.is_some()),
            "environment": match c.server.environment {
                rampart_config::posture::Environment::Production => "production",
                rampart_config::posture::Environment::Development => "development",
            },
            "preflight": c.posture.as_ref().map_or("not_run", |p| p.status()),
            "preflight_findings": c.posture.as_ref().map(|p| json!({
                "errors": p.errors,
                "warnings": p.warnings,
                "infos": p.infos,
                "allowed": p.allowed.len(),
            })),
        },
        "config": {
            "reloads": edge.process.reloads.ok.load(Ordering::Relaxed),
            "reload_failures": edge.process.reloads.failed.load(Ordering::Relaxed),
            "last_reload_unix": edge.process.reloads.last_success.load(Ordering::Relaxed),
        },
    });
    let code = if worst == 2 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(code, &body)
}

/// The `/health` entry of each `[[backups]]` entry: `failed` (the last attempt failed) and
/// `missed` (an occurrence passed with no attempt) make `/health` degraded.
fn backups_json(edge: &Edge) -> serde_json::Map<String, Value> {
    let rfc = rampart_config::civil::rfc3339;
    let now = i64::try_from(crate::state::persist::unix_ms() / 1000).unwrap_or(0);
    let started = now - i64::try_from(edge.process.uptime().as_secs()).unwrap_or(0);
    let st = edge
        .process
        .backups
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    edge.config
        .backups
        .iter()
        .map(|b| {
            let s = st.get(&b.name).cloned().unwrap_or_default();
            let status = if s.running {
                "running"
            } else if s.last_error.is_some() {
                "failed"
            } else if s.missed(b, started, now) {
                "missed"
            } else if s.last_success.is_some() {
                "ok"
            } else {
                "pending"
            };
            (
                b.name.clone(),
                json!({
                    "status": status,
                    "schedule": b.schedule.text,
                    "next_run": s.next_run.map(rfc),
                    "last_success": s.last_success.map(rfc),
                    "last_file": s.last_file,
                    "last_size": s.last_size,
                    "last_duration_ms": s.last_duration.as_millis(),
                    "last_error": s.last_error,
                    "failures": s.failures,
                    "skipped": s.skipped,
                }),
            )
        })
        .collect()
}

/// The `/health` license entry.
fn license_json(st: &LicenseStatus) -> serde_json::Value {
    let rfc = rampart_config::civil::rfc3339;
    let l = st.license.as_ref();
    json!({
        "status": st.state.name(),
        "message": st.message,
        "customer": l.map(|l| &l.customer),
        "license_id": l.and_then(|l| l.id.as_ref()),
        "expires_at": l.map(|l| rfc(l.expires_at)),
        "days_remaining": st.days_left(),
        "grace_until": l.map(|l| rfc(l.expires_at.saturating_add(st.grace))),
        "features": l.map(|l| &l.features),
        "seats": l.and_then(|l| l.seats),
        "max_instances": l.and_then(|l| l.max_instances),
        "instances": st.instances,
        "installation_id": st.installation_id,
        "algorithm": l.map(|l| &l.alg),
        "checked_at": rfc(st.checked_at),
        "clock_behind_seconds": st.clock_behind,
    })
}

/// `/ready`.
pub async fn ready(edge: &Edge) -> Response<Body> {
    let mut reasons = Vec::new();
    if edge.process.draining() {
        reasons.push("draining".to_owned());
    }
    for (i, p) in edge.pools().iter().enumerate() {
        if p.config.required && edge.pool_in_use(i) && !p.servers().iter().any(|s| p.is_up(s)) {
            reasons.push(format!("upstream {}: no server up", p.name));
        }
    }
    let deps = &edge.config.dependencies;
    for (d, r) in deps.iter().zip(crate::observe::deps::probe_all(deps).await) {
        if let Err(e) = r {
            if d.required {
                reasons.push(format!("{}: {e}", d.name));
            }
        }
    }
    let ready = reasons.is_empty();
    // The shared state never decides readiness: while it is unreachable the limits fall
    // back (`on_state_error`) and the instance still serves correctly.
    json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({"ready": ready, "reasons": reasons, "state": state_json(edge)}),
    )
}

/// The state backend and its mode: `local`, or `redis` in `shared` or `fallback` mode.
fn state_json(edge: &Edge) -> serde_json::Value {
    match edge.policies.shared() {
        None => json!({"backend": "local", "mode": "local"}),
        Some(f) => {
            let shared = f.breaker.is_closed();
            json!({
                "backend": "redis",
                "mode": if shared { "shared" } else { "fallback" },
                "fleet_size": edge.config.state.fleet_size,
                "errors": f.stats.errors.load(Ordering::Relaxed),
                "fallback_decisions": f.stats.fallbacks.load(Ordering::Relaxed),
                "last_error": if shared { None } else { Some(f.last_error()) },
            })
        }
    }
}

/// A certificate's OCSP stapling state: `status` is `good` (stapled), `pending`, `revoked`
/// and `unknown` (never stapled: an error), `error` (the responder failed and nothing fresh
/// is stapled), `crl_only` (no responder; revocation by CRL), `none` or `no_issuer`.
pub(crate) fn ocsp_json(c: &crate::edge::tls::LoadedCert) -> Value {
    let st = c.ocsp.status();
    let staple = c.ocsp.staple.load_full();
    let now = crate::state::persist::unix_ms() / 1000;
    let fresh = staple.as_ref().filter(|s| s.next_update > now);
    json!({
        "names": c.names,
        "source": c.source,
        "status": st.state,
        "stapled": fresh.is_some(),
        "this_update": fresh.map(|s| s.this_update),
        "next_update": fresh.map(|s| s.next_update),
        "age_seconds": fresh.map(|s| now.saturating_sub(s.this_update)),
        "message": st.message,
        "last_attempt": st.last_attempt,
        "next_attempt": st.next_attempt,
    })
}

/// What the last handshakes with a TLS server showed: protocol, ALPN, its certificate
/// (subject, issuer, days left), the last failure.
fn tls_state(s: &crate::handler::proxy::Server) -> Value {
    let Ok(seen) = s.tls_seen.lock() else {
        return Value::Null;
    };
    let now = i64::try_from(crate::state::persist::unix_ms() / 1000).unwrap_or(i64::MAX);
    json!({
        "last_ok": seen.ok_at,
        "version": seen.version,
        "alpn": seen.alpn,
        "certificate": seen.certificate.as_ref().map(|(subject, issuer, not_after)| json!({
            "subject": subject,
            "issuer": issuer,
            "not_after": not_after,
            "days_left": (not_after - now).div_euclid(86_400),
        })),
        "last_failure": seen.failed.as_ref().map(|(at, why)| json!({"at": at, "reason": why})),
    })
}

/// What a server named by host resolved to (`null` for an IP literal): `addresses` in
/// use, the last lookup's `error` when it failed, `resolving` while a lookup is under
/// way, and the lookups so far.
fn dns_state(s: &crate::handler::proxy::Server) -> Value {
    let (Some((addrs, error, busy)), Some((ok, failed))) = (s.dns_state(), s.dns_lookups()) else {
        return Value::Null;
    };
    json!({
        "addresses": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "error": error,
        "resolving": busy,
        "lookups": ok,
        "failures": failed,
    })
}

/// `/upstreams`.
pub(crate) fn upstreams(edge: &Edge) -> Value {
    let pools: Vec<Value> = edge
        .pools()
        .iter()
        .map(|p| {
            let servers: Vec<Value> = p
                .servers()
                .iter()
                .map(|s| {
                    json!({
                        "server": s.authority,
                        "up": p.is_up(s),
                        "weight": s.weight(),
                        "draining": s.weight() == 0,
                        "inflight": s.inflight(),
                        "errors": s.errors(),
                        "tls": p.config.tls.is_some(),
                        "tls_verify_failures": s.tls_failures(),
                        "tls_state": p.config.tls.is_some().then(|| tls_state(s)),
                        "health_check": if p.config.health_check.is_none() { "off" } else if s.check_failed() { "failing" } else { "passing" },
                        "passive": if s.passive_down() { "out" } else { "in" },
                        "dns": dns_state(s),
                    })
                })
                .collect();
            let routes: Vec<&str> = edge
                .config
                .routes
                .iter()
                .enumerate()
                .filter(|(i, _)| edge.route_pool(*i) == edge.pool_index(&p.name))
                .map(|(_, r)| r.name.as_str())
                .collect();
            json!({
                "name": p.name,
                "state": pool_state(p),
                "required": p.config.required,
                "routes": routes,
                "servers": servers,
            })
        })
        .collect();
    json!({ "upstreams": pools })
}

/// `/certificates`.
pub(crate) fn certificates(edge: &Edge) -> Value {
    let now = i64::try_from(crate::state::persist::unix_ms() / 1000).unwrap_or(0);
    let list: Vec<Value> = edge
        .certificates_now()
        .iter()
        .map(|c| {
            json!({
                "source": c.source,
                "names": c.names,
                "not_after": c.not_after,
                "days_left": (c.not_after - now).div_euclid(86_400),
                "ocsp": ocsp_json(c),
            })
        })
        .collect();
    json!({ "certificates": list })
}
