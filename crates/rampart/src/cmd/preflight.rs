//! `rampart preflight`, and the same checks run by `serve` at start and on every reload.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use rampart_config::dotenv::EnvFile;
use rampart_config::posture::{parse_allow, Requirement};
use rampart_config::Config;
use rampart_ops::preflight::{self, EnvSource, Inputs, Report};

use crate::cli::{Format, PreflightArgs};

/// What the command line adds to the config's `[preflight]`.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) env_files: Vec<PathBuf>,
    pub(crate) process_env: bool,
    pub(crate) repo: Option<PathBuf>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) require: Vec<(String, Requirement)>,
    pub(crate) allow: Vec<(String, Option<String>)>,
}

fn inside_git(dir: &Path) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--is-inside-work-tree"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the checks over `config` (and what `extra` adds).
pub(crate) fn check(
    config: Option<&Config>,
    config_path: Option<&Path>,
    extra: Extra,
) -> anyhow::Result<Report> {
    let mut env = Vec::new();
    let mut env_files = extra.env_files;
    if env_files.is_empty() {
        if let Some(f) = config.and_then(|c| c.server.env_file.clone()) {
            env_files.push(f);
        }
    }
    for f in &env_files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        let shown = f.display().to_string();
        env.push(EnvSource::from_file(
            shown.strip_prefix("./").unwrap_or(&shown),
            EnvFile::parse(&text),
        ));
    }
    if extra.process_env || config.is_some_and(|c| c.preflight.process_env) {
        env.push(EnvSource::process());
    }
    let pf = config.map(|c| &c.preflight);
    let config_dir = config_path.and_then(Path::parent).map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let repo = extra
        .repo
        .or_else(|| pf.and_then(|p| p.repo.clone()))
        .or_else(|| config_dir.filter(|d| inside_git(d)).map(Path::to_path_buf));
    let mut allow = pf.map(|p| p.allow.clone()).unwrap_or_default();
    allow.extend(extra.allow);
    let mut required = pf.map(|p| p.required.clone()).unwrap_or_default();
    required.extend(extra.require);
    let inputs = Inputs {
        config,
        env,
        required,
        repo,
        ca_file: extra.ca_file.or_else(|| pf.and_then(|p| p.ca_file.clone())),
        history_depth: pf.map_or(1000, |p| p.history_depth),
        allow,
        uid: preflight::current_uid(),
        now: SystemTime::now(),
    };
    Ok(preflight::run(&inputs))
}

pub(crate) fn parse_allows(list: &[String]) -> anyhow::Result<Vec<(String, Option<String>)>> {
    list.iter()
        .map(|a| {
            parse_allow(a).ok_or_else(|| {
                anyhow::anyhow!(
                    "--allow {a:?}: expected a rule id like PF-CRT-02 or PF-CSP-01:routes[1]"
                )
            })
        })
        .collect()
}

fn parse_require(list: &[String]) -> anyhow::Result<Vec<(String, Requirement)>> {
    list.iter()
        .map(|r| {
            let (k, t) = r.split_once(':').unwrap_or((r, "string"));
            let Some(t) = Requirement::parse(t) else {
                anyhow::bail!(
                    "--require {r}: unknown type {t:?} (string, secret, url, int, bool, email; optionally =VALUE: KEY:bool=true)"
                );
            };
            Ok((k.to_owned(), t))
        })
        .collect()
}

pub(crate) fn run(args: &PreflightArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("rampart.toml")).filter(|p| p.exists()));
    let config = match &path {
        Some(p) => match rampart_config::load(p) {
            Ok(c) => Some(c),
            Err(errors) => {
                for e in &errors.errors {
                    eprintln!("{}: {e}", errors.source);
                }
                eprintln!(
                    "rampart: the config does not load ({} error(s)); fix it first (`rampart check`)",
                    errors.errors.len()
                );
                return Ok(ExitCode::from(1));
            }
        },
        None => None,
    };
    if config.is_none() && args.env_file.is_empty() && !args.process_env && args.repo.is_none() {
        anyhow::bail!(
            "nothing to check: give -c rampart.toml, --env-file .env, --process-env or --repo DIR"
        );
    }
    let extra = Extra {
        env_files: args.env_file.clone(),
        process_env: args.process_env,
        repo: args.repo.clone(),
        ca_file: args.ca_file.clone(),
        require: parse_require(&args.require)?,
        allow: parse_allows(&args.allow)?,
    };
    let report = check(config.as_ref(), path.as_deref(), extra)?;
    match args.format {
        Format::Text => print!(
            "{}",
            preflight::text(&report, std::io::stdout().is_terminal())
        ),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&preflight::json(&report))?
        ),
        Format::Junit => print!("{}", preflight::junit(&report)),
    }
    Ok(if report.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
