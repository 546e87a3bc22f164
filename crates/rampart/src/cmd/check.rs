//! `rampart check`: load, validate and build a config (certificates included) without
//! serving it. Prints `ok` or every error, one per line, each naming its key.

use std::process::ExitCode;

use rampart_server::Edge;

use crate::cli::CheckArgs;

pub(crate) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    match Edge::load(&args.config) {
        Ok(edge) => {
            println!("ok");
            eprintln!(
                "{}: {} route(s), {} upstream(s), {} certificate(s)",
                args.config.display(),
                edge.config.routes.len(),
                edge.config.upstreams.len(),
                edge.certificates.len()
            );
            for w in unresolved(&edge.config) {
                eprintln!("warning: {w}");
            }
            if args.live {
                let (status, body) =
                    super::reload::admin_request(&args.config, "GET", "/upstreams")?;
                if status != 200 {
                    eprintln!("rampart: admin API answered {status}: {}", body.trim());
                    return Ok(ExitCode::from(1));
                }
                print_live(&serde_json::from_str(body.trim()).unwrap_or_default());
                let (status, body) =
                    super::reload::admin_request(&args.config, "GET", "/certificates")?;
                if status == 200 {
                    print_certificates(&serde_json::from_str(body.trim()).unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.errors {
                println!("{}: {e}", errors.source);
            }
            eprintln!("{}: {} error(s)", errors.source, errors.errors.len());
            Ok(ExitCode::from(1))
        }
    }
}

/// Upstream servers named by a host that does not resolve from here, as warnings, not
/// errors: in a compose file or a cluster the name may only exist once the service is up
/// (nginx refuses to start on such a name; rampart starts, and answers 502 for that
/// server until it resolves), but a typo shows here rather than as 502s in production.
fn unresolved(c: &rampart_config::Config) -> Vec<String> {
    use std::net::ToSocketAddrs as _;
    let mut out = Vec::new();
    for u in &c.upstreams {
        for s in &u.servers {
            if s.parse::<std::net::SocketAddr>().is_ok() {
                continue;
            }
            match s.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(_)) => {}
                Ok(None) => out.push(format!(
                    "upstreams.{}.servers: {s} resolves to no address here",
                    u.name
                )),
                Err(e) => out.push(format!(
                    "upstreams.{}.servers: {s} does not resolve here ({e}); requests to it will answer 502 until it does",
                    u.name
                )),
            }
        }
    }
    out
}

/// Each certificate served: where it comes from, its names, when it expires.
fn print_certificates(v: &serde_json::Value) {
    for c in v["certificates"].as_array().into_iter().flatten() {
        let names: Vec<&str> = c["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        let ocsp = match c["ocsp"]["status"].as_str() {
            Some("good") if c["ocsp"]["stapled"] == true => format!(
                "; OCSP good, stapled until unix {}",
                c["ocsp"]["next_update"]
            ),
            Some(s @ ("revoked" | "unknown" | "error")) => format!(
                "; OCSP {s}: {}",
                c["ocsp"]["message"].as_str().unwrap_or("")
            ),
            Some("crl_only") => "; no OCSP responder (CRL only)".to_owned(),
            Some("pending") => "; OCSP pending".to_owned(),
            _ => String::new(),
        };
        println!(
            "certificate {} ({}): expires in {} days (unix {}){ocsp}",
            names.join(", "),
            c["source"].as_str().unwrap_or("?"),
            c["days_left"],
            c["not_after"],
        );
    }
}

/// The effective state, one line per server.
fn print_live(v: &serde_json::Value) {
    for p in v["upstreams"].as_array().into_iter().flatten() {
        let routes: Vec<&str> = p["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        println!(
            "upstream {} ({}), routes: {}",
            p["name"].as_str().unwrap_or("?"),
            p["state"].as_str().unwrap_or("?"),
            if routes.is_empty() {
                "-".to_owned()
            } else {
                routes.join(", ")
            }
        );
        for s in p["servers"].as_array().into_iter().flatten() {
            println!(
                "  {} up={} weight={} inflight={} errors={} health_check={} passive={}",
                s["server"].as_str().unwrap_or("?"),
                s["up"],
                s["weight"],
                s["inflight"],
                s["errors"],
                s["health_check"].as_str().unwrap_or("?"),
                s["passive"].as_str().unwrap_or("?"),
            );
            if let Some(line) = dns_line(s) {
                println!("    {line}");
            }
            if let Some(line) = tls_line(s) {
                println!("    {line}");
            }
        }
    }
}

/// A server named by host: what it resolved to, and the last lookup's error when it
/// failed (the addresses shown are then the last good answer, still in use).
fn dns_line(s: &serde_json::Value) -> Option<String> {
    let d = s.get("dns").filter(|d| d.is_object())?;
    let addrs: Vec<&str> = d["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    let mut line = if addrs.is_empty() {
        "dns: not resolved yet".to_owned()
    } else {
        format!("dns: {}", addrs.join(", "))
    };
    if let Some(e) = d["error"].as_str() {
        line.push_str(&format!("; FAILING: {e}"));
    }
    Some(line)
}

/// A TLS server's state in one line: the last handshake's protocol and ALPN, the
/// certificate's subject and days left, and the last failure when it is newer than the
/// last success (or the certificate failures counted).
fn tls_line(s: &serde_json::Value) -> Option<String> {
    let t = s.get("tls_state").filter(|t| t.is_object())?;
    let mut parts = Vec::new();
    if let Some(v) = t["version"].as_str() {
        let alpn = t["alpn"]
            .as_str()
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        parts.push(format!("tls: TLS {v}{alpn}"));
    } else {
        parts.push("tls: no handshake yet".to_owned());
    }
    if let Some(c) = t["certificate"].as_object() {
        let days = c["days_left"].as_i64().unwrap_or(0);
        let life = if days < 0 {
            format!("EXPIRED {} days ago", -days)
        } else {
            format!("expires in {days} days")
        };
        parts.push(format!(
            "certificate {} (issuer {}) {life}",
            c["subject"].as_str().unwrap_or("?"),
            c["issuer"].as_str().unwrap_or("?"),
        ));
    }
    let last_ok = t["last_ok"].as_u64().unwrap_or(0);
    if let Some(f) = t["last_failure"].as_object() {
        if f["at"].as_u64().unwrap_or(0) >= last_ok {
            parts.push(format!(
                "FAILING: {} ({} certificate failures)",
                f["reason"].as_str().unwrap_or("?"),
                s["tls_verify_failures"]
            ));
        }
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::tls_line;

    #[test]
    fn dns_state_in_one_line() {
        use super::dns_line;
        assert_eq!(dns_line(&serde_json::json!({"dns": null})), None);
        let ok = serde_json::json!({"dns": {"addresses": ["10.0.0.5:8000", "10.0.0.6:8000"], "error": null}});
        assert_eq!(dns_line(&ok).unwrap(), "dns: 10.0.0.5:8000, 10.0.0.6:8000");
        let stale = serde_json::json!({"dns": {"addresses": ["10.0.0.5:8000"], "error": "cannot resolve app:8000: no such host"}});
        assert_eq!(
            dns_line(&stale).unwrap(),
            "dns: 10.0.0.5:8000; FAILING: cannot resolve app:8000: no such host"
        );
        let never = serde_json::json!({"dns": {"addresses": [], "error": "cannot resolve x:1"}});
        assert_eq!(
            dns_line(&never).unwrap(),
            "dns: not resolved yet; FAILING: cannot resolve x:1"
        );
    }

    #[test]
    fn tls_state_in_one_line() {
        let plain = serde_json::json!({"server": "a:80", "tls_state": null});
        assert_eq!(tls_line(&plain), None);
        let ok = serde_json::json!({"tls_verify_failures": 0, "tls_state": {
            "last_ok": 100, "version": "1.3", "alpn": "h2",
            "certificate": {"subject": "CN=api", "issuer": "CN=ca", "days_left": 12},
            "last_failure": {"at": 50, "reason": "certificate expired"}}});
        assert_eq!(
            tls_line(&ok).unwrap(),
            "tls: TLS 1.3 h2; certificate CN=api (issuer CN=ca) expires in 12 days"
        );
        let failing = serde_json::json!({"tls_verify_failures": 3, "tls_state": {
            "last_ok": null, "version": null, "alpn": null, "certificate": null,
            "last_failure": {"at": 50, "reason": "certificate not valid for the server's name"}}});
        assert_eq!(
            tls_line(&failing).unwrap(),
            "tls: no handshake yet; FAILING: certificate not valid for the server's name (3 certificate failures)"
        );
    }
}
