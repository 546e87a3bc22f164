//! `rampart import nginx`: the translation is in `rampart_ops::import`.

use std::process::ExitCode;

use crate::cli::ImportCommand;

pub(crate) fn run(c: ImportCommand) -> anyhow::Result<ExitCode> {
    match c {
        ImportCommand::Nginx(a) => {
            let out = rampart_ops::import::nginx_in(&a.file, a.conf_dir.as_deref())
                .map_err(anyhow::Error::msg)?;
            match &a.output {
                Some(path) => {
                    std::fs::write(path, &out.toml)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!("{}: written", path.display());
                }
                None => print!("{}", out.toml),
            }
            let n = |k: usize| if k == 1 { "" } else { "s" };
            eprintln!(
                "{} directive{} done by rampart itself, {} translated with a difference, {} not translated",
                out.builtin.len(),
                n(out.builtin.len()),
                out.differs.len(),
                out.untranslated.len(),
            );
            if !out.differs.is_empty() {
                eprintln!("behaving differently from nginx:");
                for (at, d, how) in &out.differs {
                    eprintln!("  ~ {at}: {d} ({how})");
                }
            }
            if !out.untranslated.is_empty() {
                eprintln!("not translated:");
                for (at, d, why) in &out.untranslated {
                    eprintln!("  {at}: {d} ({why})");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
