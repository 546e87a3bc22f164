//! `rampart reload` and `rampart check --live`: talk to a running edge's admin API (the
//! address and token come from the same config file).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

/// One request to the admin API: (status, body).
pub(crate) fn admin_request(
    config: &std::path::Path,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let c = rampart_config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = c.admin.with_context(|| {
        format!(
            "{}: no [admin] section: the admin API is off",
            config.display()
        )
    })?;
    let mut s = TcpStream::connect_timeout(&admin.listen, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the admin API at {}", admin.listen))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = admin
        .token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        admin.listen
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("the admin API sent no HTTP status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

pub(crate) fn run(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (status, body) = admin_request(config, "POST", "/reload")?;
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    if status == 200 {
        println!("reloaded");
        for k in ["rebound", "pools_kept", "needs_restart"] {
            if let Some(a) = v[k].as_array().filter(|a| !a.is_empty()) {
                println!(
                    "{k}: {}",
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "rampart: reload refused (the old config keeps serving): {}",
            v["message"].as_str().unwrap_or(body.trim())
        );
        Ok(ExitCode::from(1))
    }
}
