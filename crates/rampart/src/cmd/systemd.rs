//! systemd's service protocol (sd_notify, through the `sd-notify` crate): `READY=1` once
//! the listeners are bound, `RELOADING=1` with `MONOTONIC_USEC` and then `READY=1` around a
//! reload (what `Type=notify-reload` waits for), `STOPPING=1` when the drain begins,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` from the async runtime (a stuck runtime stops
//! the pings and systemd restarts the service), and `STATUS=` with the request rate and the
//! open connections every few seconds. Without `NOTIFY_SOCKET` every call is a no-op.
//! Socket activation (`LISTEN_FDS`) is taken where listeners are bound (rampart-server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Whether a service manager listens (`NOTIFY_SOCKET` set).
fn managed() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState<'_>]) {
    if managed() {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "sd_notify");
        }
    }
}

/// The listeners are bound and serving.
pub(crate) fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A reload starts (SIGHUP).
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// The reload is over (applied or refused: the process serves either way).
pub(crate) fn reloaded(ok: bool) {
    let status = if ok {
        "serving (config reloaded)"
    } else {
        "serving (reload refused: the previous config serves)"
    };
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The drain begins.
pub(crate) fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining connections"),
    ]);
}

/// Requests answered so far, from the metrics (read every few seconds: nothing is added to
/// the request path).
fn answered(live: &rampart_server::Live) -> u64 {
    let text = rampart_server::request::status::metrics_text(&live.edge());
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Pings the watchdog and refreshes the status line until the process stops.
pub(crate) fn spawn_heartbeat(live: Arc<rampart_server::Live>) {
    if !managed() {
        return;
    }
    let timeout = sd_notify::watchdog_enabled().filter(|d| !d.is_zero());
    let watchdog = timeout.is_some();
    let ping = timeout.map_or(Duration::from_secs(5), |d| d / 2);
    let status_every = Duration::from_secs(5);
    tokio::spawn(async move {
        let mut last = (Instant::now(), answered(&live));
        let mut tick = tokio::time::interval(ping.min(status_every));
        loop {
            tick.tick().await;
            if watchdog {
                send(&[NotifyState::Watchdog]);
            }
            let elapsed = last.0.elapsed();
            if elapsed >= status_every {
                let now = answered(&live);
                let rate = now.saturating_sub(last.1) as f64 / elapsed.as_secs_f64();
                let conns = live.process.conns.len();
                let line = format!("serving: {rate:.0} req/s, {conns} connections open");
                send(&[NotifyState::Status(&line)]);
                last = (Instant::now(), now);
            }
        }
    });
}
