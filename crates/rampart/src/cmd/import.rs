//! `rampart import nginx`: the translation is in `rampart_ops::import`.

use std::process::ExitCode;

use crate::cli::ImportCommand;

pub(crate) fn run(c: ImportCommand) -> anyhow::Result<ExitCode> {
    match c {
        ImportCommand::Nginx(a) => {
            let out = rampart_ops::import::nginx(&a.file).map_err(anyhow::Error::msg)?;
            match &a.output {
                Some(path) => {
                    std::fs::write(path, &out.toml)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!("{}: written", path.display());
                }
                None => print!("{}", out.toml),
            }
            eprintln!(
                "{} directive{} done by rampart itself, {} not translated{}",
                out.builtin.len(),
                if out.builtin.len() == 1 { "" } else { "s" },
                out.untranslated.len(),
                if out.untranslated.is_empty() { "" } else { ":" }
            );
            for (at, d, why) in &out.untranslated {
                eprintln!("  {at}: {d} ({why})");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
