//! `rampart manifest build|sign|verify`: argument handling and printing; the work is in
//! `rampart_ops::integrity`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use rampart_ops::integrity::{self, VerifyOptions};
use rampart_trust::keys::Alg;

use crate::cli::{Format, ManifestCommand};

pub(crate) fn run(c: ManifestCommand) -> anyhow::Result<ExitCode> {
    match c {
        ManifestCommand::Build(a) => {
            let m = integrity::build(&a.dirs, &a.exclude, a.release.as_deref(), &a.output)
                .map_err(|e| anyhow::anyhow!(e))?;
            let bytes: u64 = m.files.iter().map(|f| f.size).sum();
            println!(
                "{}: {} files, {} bytes, {} root{}",
                a.output.display(),
                m.files.len(),
                bytes,
                m.roots.len(),
                if m.roots.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
        ManifestCommand::Sign(a) => {
            let alg = a
                .alg
                .as_deref()
                .map(Alg::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let sig = a
                .signature
                .clone()
                .unwrap_or_else(|| integrity::default_signature(&a.manifest));
            let used =
                integrity::sign(&a.manifest, &a.key, alg, &sig).map_err(|e| anyhow::anyhow!(e))?;
            println!("{}: signed with {}", sig.display(), used.name());
            Ok(ExitCode::SUCCESS)
        }
        ManifestCommand::Verify(a) => {
            let o = VerifyOptions {
                manifest: a.manifest.clone(),
                public_key: a.public_key.clone(),
                signature: a.signature.clone(),
                roots: a.root.clone(),
                unsigned: a.unsigned,
            };
            let r = integrity::verify(&o).map_err(|e| anyhow::anyhow!(e))?;
            match a.format {
                Format::Text => print!("{}", integrity::text(&r, std::io::stdout().is_terminal())),
                Format::Json => println!("{}", serde_json::to_string_pretty(&integrity::json(&r))?),
                Format::Junit => print!("{}", integrity::junit(&r)),
            }
            Ok(if r.errors() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
