//! `rampart reload` and `rampart check --live`: talk to a running edge's admin API (the
//! address and token come from the same config file).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;

/// One request to the admin API: (status, body). Spoken with hyper's HTTP/1.1 client, so a
/// chunked or keep-alive answer reads as well as a closed one.
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
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, admin.listen.to_string());
    if let Some(t) = &admin.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::<bytes::Bytes>::new())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(admin.listen),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot reach the admin API at {}", admin.listen))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("the admin API did not speak HTTP")?;
        tokio::spawn(conn);
        let exchange = async {
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .context("the admin API did not answer within 30 s")?
            .context("the admin API sent no HTTP answer")
    })
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

/// `rampart ready`: the admin API's `/ready`, as an exit status.
pub(crate) fn ready(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (status, body) = admin_request(config, "GET", "/ready")?;
    if status == 200 {
        println!("ready");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("rampart: not ready ({status}): {}", body.trim());
        Ok(ExitCode::from(1))
    }
}
