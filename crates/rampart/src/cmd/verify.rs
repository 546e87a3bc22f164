//! `rampart verify URL`: argument checks, the progress line, and the report.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use rampart_ops::verify::{self, Options};

use crate::cli::{Format, VerifyArgs};

pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if !verify::is_grade(&args.min_grade) {
        anyhow::bail!(
            "--min-grade {:?}: expected one of A+, A, A-, B+, B, B-, C+, C, C-, D+, D, D-, E, F",
            args.min_grade
        );
    }
    if args.timeout == 0 {
        anyhow::bail!("--timeout must be at least 1 second");
    }
    for p in args
        .paths
        .iter()
        .chain(&args.protected)
        .chain(&args.mtls)
        .chain(&args.login)
        .chain(&args.health)
        .chain(&args.websocket)
    {
        if !p.starts_with('/')
            || p.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            anyhow::bail!("{p:?}: a path starts with / and has no spaces");
        }
    }
    let expect = match &args.expect_config {
        Some(p) => match rampart_config::load(p) {
            Ok(c) => Some(c),
            Err(errors) => {
                for e in &errors.errors {
                    eprintln!("{}: {e}", errors.source);
                }
                anyhow::bail!("--expect-config {} does not load", p.display());
            }
        },
        None => None,
    };
    let mut o = Options::new(&args.url);
    o.http_port = args.http_port;
    o.paths = args.paths.clone();
    o.protected = args.protected.clone();
    o.mtls = args.mtls.clone();
    o.login = args.login.clone();
    o.health = args.health.clone();
    o.health_probes = args.health_probes.clamp(1, 100);
    o.health_max = Duration::from_millis(args.health_max_ms);
    o.websocket = args.websocket.clone();
    o.active = args.active;
    o.login_attempts = args.login_attempts.clamp(1, 1000);
    o.expect = expect;
    o.ca_file = args.ca_file.clone();
    o.insecure = args.insecure;
    o.timeout = Duration::from_secs(args.timeout);
    o.min_grade = args.min_grade.clone();
    o.now = SystemTime::now();
    let tty = std::io::stderr().is_terminal();
    if tty {
        o.progress = Some(Box::new(|what: &str| {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[2K  verifying: {what}…");
            let _ = e.flush();
        }));
    }
    let report = verify::run(&o).map_err(|e| anyhow::anyhow!(e))?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    match args.format {
        Format::Text => print!("{}", verify::text(&report, std::io::stdout().is_terminal())),
        Format::Json => println!("{}", serde_json::to_string_pretty(&verify::json(&report))?),
        Format::Junit => print!("{}", verify::junit(&report)),
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
