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
