//! `rampart secrets generate` and `rampart secrets rotate`.

use std::process::ExitCode;

use rampart_config::dotenv::EnvFile;
use rampart_ops::secrets::{self, Generator, Kind, Rotation};

use crate::cli::{GenerateArgs, RotateArgs, SecretsCommand};

pub(crate) fn run(c: SecretsCommand) -> anyhow::Result<ExitCode> {
    match c {
        SecretsCommand::Generate(a) => generate(&a),
        SecretsCommand::Rotate(a) => rotate(&a),
    }
}

fn read_env(path: &std::path::Path) -> anyhow::Result<EnvFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(EnvFile::parse(&text))
}

fn generate(a: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let mut g = Generator::default();
    g.token_bytes = a.bytes;
    g.rsa_bits = a.bits;
    if a.bytes < 16 {
        anyhow::bail!(
            "--bytes {}: a token needs at least 16 random bytes",
            a.bytes
        );
    }
    if let Some(path) = &a.env_file {
        if !a.kinds.is_empty() {
            anyhow::bail!("give kinds or --env-file, not both (the kind of each placeholder comes from its key's name)");
        }
        let file = read_env(path)?;
        let (text, filled, left) = secrets::fill(&file, &g).map_err(anyhow::Error::msg)?;
        let verb = if a.dry_run { "would fill" } else { "filled" };
        for f in &filled {
            let n = if f.count > 1 {
                format!(" ({} values)", f.count)
            } else {
                String::new()
            };
            println!(
                "{verb} {}:{} {} with a new {:?}{n}",
                path.display(),
                f.line,
                f.key,
                f.kind
            );
        }
        for l in &left {
            println!("left {}:{} {}: {}", path.display(), l.line, l.key, l.why);
        }
        if filled.is_empty() {
            println!("no placeholder to fill in {}", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        if !a.dry_run {
            let backup = secrets::write_atomic(path, &text).map_err(anyhow::Error::msg)?;
            println!(
                "wrote {} (mode 0600); the old file is {} (delete it once you are sure)",
                path.display(),
                backup.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let kinds: Vec<&str> = if a.kinds.is_empty() {
        vec!["token"]
    } else {
        a.kinds.iter().map(String::as_str).collect()
    };
    let parsed: Vec<Kind> = kinds
        .iter()
        .map(|k| {
            Kind::parse(k)
                .ok_or_else(|| anyhow::anyhow!("unknown kind {k:?}: expected {}", Kind::NAMES))
        })
        .collect::<anyhow::Result<_>>()?;
    let many = parsed.len() > 1;
    for (name, kind) in kinds.iter().zip(parsed) {
        match kind {
            Kind::Ed25519 | Kind::Rsa => {
                let (private, public) = g.pair(kind).map_err(anyhow::Error::msg)?;
                print!("{private}{public}");
            }
            _ => {
                let v = g.value(kind).map_err(anyhow::Error::msg)?;
                if many {
                    println!("{name}: {v}");
                } else {
                    println!("{v}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rotate(a: &RotateArgs) -> anyhow::Result<ExitCode> {
    let file = read_env(&a.env_file)?;
    let (text, outcome) = secrets::rotate(&file, &a.key, a.finish, &Generator::default())
        .map_err(anyhow::Error::msg)?;
    secrets::write_atomic(&a.env_file, &text).map_err(anyhow::Error::msg)?;
    let key = &a.key;
    match outcome {
        Rotation::Started => {
            println!(
                "{key}: new value written to {}; the old one is now {key}_PREVIOUS.",
                a.env_file.display()
            );
            println!("rampart accepts both while the config reads the previous value, e.g.");
            println!("  [jwt] secret_previous = \"${{{key}_PREVIOUS:-}}\"   or   api_keys.keys[i].previous = \"${{{key}_PREVIOUS:-}}\"");
            println!("apply it:  rampart reload -c {}", a.config.display());
            println!(
                "when every client has moved:  rampart secrets rotate {key} --env-file {} --finish",
                a.env_file.display()
            );
        }
        Rotation::Finished => {
            println!(
                "{key}_PREVIOUS removed from {}; the old value is no longer accepted after:",
                a.env_file.display()
            );
            println!("  rampart reload -c {}", a.config.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
