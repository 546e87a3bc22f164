//! `rampart completions SHELL` (clap_complete) and `rampart man` (clap_mangen): generated
//! from the same command definitions as the parser, so they never drift from it; and
//! `rampart config schema|reference|example`, generated from the config's own structs.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rampart", &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn man(out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cmd = crate::cli::Cli::command();
    let Some(dir) = out_dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        print!("{}", String::from_utf8_lossy(&out));
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    names.sort();
    eprintln!("{}: {}", dir.display(), names.join(", "));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn config(c: &crate::cli::ConfigCommand) -> anyhow::Result<ExitCode> {
    use crate::cli::ConfigCommand;
    match c {
        ConfigCommand::Schema => {
            let text = serde_json::to_string_pretty(&rampart_config::reference::schema())?;
            println!("{text}");
        }
        ConfigCommand::Reference => print!("{}", rampart_config::reference::markdown()),
        ConfigCommand::Example => print!("{}", rampart_config::reference::example()),
    }
    Ok(ExitCode::SUCCESS)
}
