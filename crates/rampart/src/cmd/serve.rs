//! `rampart serve`: load the config (a file, or the embedded demo default), build the edge,
//! start it on a runtime with `server.workers` threads, and drain on SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use rampart_config::{load_str, ConfigErrors, Source};
use rampart_server::Edge;

use crate::cli::ServeArgs;
use crate::demo;

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let mut demo_upstream = None;
    let loaded = match &args.config {
        Some(path) => rampart_config::load(path).map(|c| (c, path.display().to_string())),
        None if Path::new("rampart.toml").exists() => {
            rampart_config::load(Path::new("rampart.toml")).map(|c| (c, "rampart.toml".to_owned()))
        }
        None => {
            let (config, listener) = embedded_default(&args)?;
            demo_upstream = Some(listener);
            Ok((config, "<embedded default>".to_owned()))
        }
    };
    let (mut config, source) = match loaded {
        Ok(x) => x,
        Err(errors) => return Ok(refuse(&errors)),
    };
    if config.tls.is_none() && args.https.is_some() {
        eprintln!("rampart: --https needs a [tls] section in {source}");
        return Ok(ExitCode::from(2));
    }
    apply_overrides(&mut config, &args);
    let allow = super::preflight::parse_allows(&args.allow)?;
    let config_path = if demo_upstream.is_some() {
        None
    } else {
        Some(
            args.config
                .clone()
                .unwrap_or_else(|| PathBuf::from("rampart.toml")),
        )
    };
    if let Err(report) = posture(&mut config, config_path.as_deref(), &allow) {
        eprint!("{report}");
        eprintln!(
            "rampart: refusing to start in production: {source} has preflight errors (fix them, or accept one knowingly with --allow RULE_ID)"
        );
        return Ok(ExitCode::from(1));
    }
    let edge = match Edge::build(config, &source) {
        Ok(e) => e,
        Err(errors) => return Ok(refuse(&errors)),
    };
    let workers = edge.config.server.workers;
    let runtime = if workers == 1 {
        // One worker: a current-thread runtime avoids work-stealing overhead (DESIGN.md).
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    // A reload reads the same file again, with the same command-line overrides.
    let reload_path = match &args.config {
        Some(p) => Some(p.clone()),
        None if demo_upstream.is_none() => Some(PathBuf::from("rampart.toml")),
        None => None,
    };
    let watch_path = reload_path.clone();
    let loader = reload_path.map(|path| -> rampart_server::live::Loader {
        let args = args.clone();
        Box::new(move || {
            let mut c = rampart_config::load(&path)?;
            apply_overrides(&mut c, &args);
            if let Err(report) = posture(&mut c, Some(&path), &allow) {
                eprint!("{report}");
                let errors = c
                    .posture
                    .as_ref()
                    .map(|p| p.errors)
                    .unwrap_or_default();
                return Err(ConfigErrors {
                    source: path.display().to_string(),
                    errors: vec![rampart_config::ConfigError::new(
                        "server.environment",
                        format!("production: {errors} preflight error(s); the running config stays (run `rampart preflight -c {}`)", path.display()),
                    )],
                });
            }
            Ok(c)
        })
    });
    runtime.block_on(serve(edge, source, demo_upstream, loader, watch_path))
}

/// `server.watch_config`: polls the file's size and modification time every 2 seconds
/// and reloads when they change (after a short pause, so a half-written file is not read).
/// Polling needs no inotify dependency and works on every filesystem, bind mounts and
/// Kubernetes ConfigMap symlink swaps included. Turning the key off in the file stops it.
/// The file's size and modification time, as `watch` compares them.
type Stamp = Option<(u64, Option<std::time::SystemTime>)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

/// `last` is the stamp taken before the listeners opened: an edit made as soon as the edge
/// answers is a change, even if this task starts late.
async fn watch(live: std::sync::Arc<rampart_server::Live>, path: PathBuf, last: Stamp) {
    let mut last = last;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if live
            .process
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if !live.edge().config.server.watch_config {
            continue;
        }
        let now = stamp(&path);
        if now != last && now.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            last = stamp(&path);
            tracing::info!(path = %path.display(), "config file changed: reloading");
            let _ = live.reload_from_source().await;
        }
    }
}

/// Runs the preflight checks on `config` and keeps the summary on it (for `/health` and
/// `/metrics`). In production an error finding refuses: the report is returned.
fn posture(
    config: &mut rampart_config::Config,
    path: Option<&Path>,
    allow: &[(String, Option<String>)],
) -> Result<(), String> {
    let production = config.server.environment == rampart_config::posture::Environment::Production;
    let extra = super::preflight::Extra {
        allow: allow.to_vec(),
        ..Default::default()
    };
    let report = match super::preflight::check(Some(config), path, extra) {
        Ok(r) => r,
        Err(e) if production => return Err(format!("preflight could not run: {e:#}\n")),
        Err(e) => {
            tracing::warn!("preflight could not run: {e:#}");
            return Ok(());
        }
    };
    let summary = report.posture();
    if production && summary.errors > 0 {
        config.posture = Some(summary);
        return Err(rampart_ops::preflight::text(&report, false));
    }
    if summary.errors > 0 {
        tracing::warn!(
            errors = summary.errors,
            warnings = summary.warnings,
            enforced = production,
            "preflight: `rampart preflight` lists the findings"
        );
    } else {
        // The positive line operators grep for after a deploy.
        tracing::info!(
            warnings = summary.warnings,
            allowed = summary.allowed.len(),
            enforced = production,
            "{}",
            if summary.warnings > 0 {
                "preflight passed with warnings: `rampart preflight` lists them"
            } else {
                "preflight passed"
            }
        );
    }
    config.posture = Some(summary);
    Ok(())
}

/// Command-line overrides win over the file (at start and on every reload).
fn apply_overrides(config: &mut rampart_config::Config, args: &ServeArgs) {
    if let Some(a) = args.http {
        config.server.http = Some(a);
    }
    if let (Some(a), Some(_)) = (args.https, &config.tls) {
        config.server.https = Some(a);
    }
    if let Some(w) = args.workers {
        config.server.workers = w.clamp(1, 1024);
    }
    if let Some(d) = &args.state_dir {
        config.server.state_dir = d.clone();
    }
}

async fn serve(
    edge: Edge,
    source: String,
    demo_upstream: Option<std::net::TcpListener>,
    loader: Option<rampart_server::live::Loader>,
    watch_path: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let is_demo = demo_upstream.is_some();
    if let Some(l) = demo_upstream {
        tokio::spawn(demo::serve_echo(l));
    }
    let state_dir = edge.config.server.state_dir.clone();
    let has_self_signed = edge
        .config
        .tls
        .as_ref()
        .is_some_and(|t| !t.self_signed.is_empty());
    let workers = edge.config.server.workers;
    let mut signals = Signals::new();
    let watch_from = watch_path.as_deref().map(stamp);
    let running = rampart_server::start(edge).await?;
    {
        let edge = running.live.edge();
        for a in edge.config.posture.iter().flat_map(|p| &p.allowed) {
            rampart_server::audit::system(&*edge, "preflight.allowed", "warning", a);
        }
    }
    let can_reload = loader.is_some();
    if let (true, Some(path)) = (can_reload, watch_path) {
        tokio::spawn(watch(running.live.clone(), path, watch_from.flatten()));
    }
    if let Some(l) = loader {
        running.live.set_loader(l);
    }
    tracing::info!(config = %source, workers, "started");
    if let Some(a) = running.http_addr {
        tracing::info!(listener = "http", addr = %a, "listening");
    }
    if let Some(a) = running.https_addr {
        tracing::info!(listener = "https", addr = %a, "listening");
    }
    if let Some(a) = running.live.admin_addr() {
        tracing::info!(listener = "admin", addr = %a, "admin API");
    }
    super::systemd::ready();
    super::systemd::spawn_heartbeat(running.live.clone());
    if has_self_signed {
        let cert = state_dir.join("tls/self-signed.crt");
        tracing::info!(path = %cert.display(), "self-signed development certificate");
        eprintln!(
            "rampart: development certificate (self-signed): {}",
            cert.display()
        );
    }
    if is_demo {
        if let Some(a) = running.https_addr {
            eprintln!("rampart: no rampart.toml here, serving the built-in demo.");
            eprintln!(
                "rampart: open https://localhost:{}/ (accept the self-signed certificate)",
                a.port()
            );
            if let Some(h) = running.http_addr {
                eprintln!(
                    "rampart: http://localhost:{}/ redirects there; Ctrl-C stops.",
                    h.port()
                );
            }
        }
    }
    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload if can_reload => {
                tracing::info!("SIGHUP: reloading the config");
                super::systemd::reloading();
                // Errors are logged, counted and audited inside; the old config serves on.
                let r = running.live.reload_from_source().await;
                super::systemd::reloaded(r.is_ok());
            }
            Signal::Reload => {
                tracing::warn!("SIGHUP: the embedded default has no file to reload");
                super::systemd::reloading();
                super::systemd::reloaded(false);
            }
            Signal::Reopen => {
                tracing::info!("SIGUSR1: reopening log files");
                running.live.edge().logs.reopen();
            }
        }
    }
    super::systemd::stopping();
    tracing::info!(
        grace_ms = running.grace().as_millis() as u64,
        "shutting down: draining connections"
    );
    // The log writers batch lines for a few milliseconds: the last ones go out before exit.
    let live = running.live.clone();
    let drained = tokio::select! {
        d = running.drain() => d,
        _ = signals.next_stop() => {
            tracing::warn!("second signal: exiting without waiting");
            false
        }
    };
    live.edge().logs.flush();
    tracing::info!(drained, "stopped");
    Ok(ExitCode::SUCCESS)
}

fn refuse(errors: &ConfigErrors) -> ExitCode {
    for e in &errors.errors {
        eprintln!("{}: {e}", errors.source);
    }
    eprintln!(
        "rampart: refusing to start: {} config error(s)",
        errors.errors.len()
    );
    ExitCode::from(2)
}

/// The embedded default, with the demo site written into the state directory and an echo
/// upstream listening on a free loopback port.
fn embedded_default(
    args: &ServeArgs,
) -> anyhow::Result<(rampart_config::Config, std::net::TcpListener)> {
    let state_dir: PathBuf = args
        .state_dir
        .clone()
        .unwrap_or_else(|| rampart_config::default_state_dir(&rampart_config::process_env));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    demo::write_site(
        &state_dir.join("demo-site"),
        &state_dir.join("tls/self-signed.crt"),
    )
    .with_context(|| format!("cannot write the demo site into {}", state_dir.display()))?;
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot start the demo upstream")?;
    let port = listener.local_addr()?.port();
    let text = demo::DEFAULT_CONFIG.replace("{DEMO_PORT}", &port.to_string());
    let config = load_str(
        &text,
        &Source {
            name: "<embedded default>".into(),
            base_dir: state_dir.clone(),
            env: &rampart_config::process_env,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config = config;
    config.server.state_dir = state_dir;
    Ok((config, listener))
}

/// The stop signals, listened for from before the first connection is accepted: a SIGTERM
/// that came between the listeners opening and a later registration would have killed the
/// process with the default action instead of draining it (seen once under load).
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 4]>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
                signal(SignalKind::user_defined1()),
            ) {
                (Ok(t), Ok(i), Ok(h), Ok(u)) => Some([t, i, h, u]),
                _ => None,
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next stop (SIGTERM, SIGINT), reload (SIGHUP) or reopen-logs (SIGUSR1) signal.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let Some([term, int, hup, usr1]) = &mut self.streams else {
                let _ = tokio::signal::ctrl_c().await;
                return Signal::Stop;
            };
            tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = int.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
                _ = usr1.recv() => Signal::Reopen,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }

    /// The next stop signal (a SIGHUP while draining is ignored).
    async fn next_stop(&mut self) {
        while !matches!(self.next().await, Signal::Stop) {}
    }
}

enum Signal {
    Stop,
    Reload,
    Reopen,
}

/// The process log's filter: `RUST_LOG` (tracing's directives, such as
/// `info,rampart_server::handler::proxy=debug,hyper=warn`) when set, else `RAMPART_LOG` (a
/// level, or the same directives), else `info`. A filter that does not parse is said on
/// standard error and `info` is used.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let (var, text) = ["RUST_LOG", "RAMPART_LOG"]
        .into_iter()
        .find_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (k, v))
        })
        .unwrap_or(("", "info".to_owned()));
    let filter = EnvFilter::builder()
        .parse(text.to_ascii_lowercase())
        .unwrap_or_else(|e| {
            eprintln!("rampart: {var}={text:?} is not a log filter ({e}); logging at info");
            EnvFilter::new("info")
        });
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}
