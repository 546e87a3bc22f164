//! `[integrity]` at run time: the manifest's signature and every file it lists, checked
//! before the listeners are bound (a mismatch refuses a production start with
//! `on_mismatch = "refuse"`), before a reload is swapped in, and every `interval` after
//! (hashing at most `read_rate` bytes per second, on a blocking thread, so the requests
//! keep the disk and the cores). Each result is kept in [`Process`] for `/health` and the
//! metrics; a change from clean to mismatched is the audit event `integrity.mismatch`
//! (critical, naming the files), back to clean `integrity.restored`.

use std::sync::Arc;
use std::time::Instant;

use rampart_config::integrity::Integrity;
use rampart_trust::keys::{decode_signature, VerifyingKey};
use rampart_trust::manifest::{Difference, Manifest};

use crate::observe::audit;
use crate::observe::process::{IntegrityResult, Process};

/// Problems listed in a result (and so in `/health`); the count is always whole.
const MAX_LISTED: usize = 100;

/// Checks the signature and the files (`budget`: bytes per second, `None` full speed).
pub fn check(cfg: &Integrity, budget: Option<u64>) -> IntegrityResult {
    let started = Instant::now();
    let mut r = IntegrityResult::default();
    let bytes = match std::fs::read(&cfg.manifest) {
        Ok(b) => b,
        Err(e) => {
            r.problems.push(format!(
                "manifest: cannot read {}: {e}",
                cfg.manifest.display()
            ));
            return finish(r, started);
        }
    };
    let m = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(e) => {
            r.problems
                .push(format!("manifest: {}: {e}", cfg.manifest.display()));
            return finish(r, started);
        }
    };
    r.files = m.files.len();
    if let Some(pem) = &cfg.public_key {
        let verdict = VerifyingKey::from_pem(pem.as_bytes())
            .map_err(|e| format!("the public key: {e}"))
            .and_then(|k| {
                let sig = std::fs::read(&cfg.signature).map_err(|e| {
                    format!("cannot read the signature {}: {e}", cfg.signature.display())
                })?;
                k.verify(&bytes, &decode_signature(&sig))
            });
        match verdict {
            Ok(alg) => r.signed_with = Some(alg.name()),
            Err(e) => r.problems.push(format!("signature: {e}")),
        }
    }
    match m.check(&m.roots_at(&cfg.manifest, &cfg.roots), budget) {
        Ok(diffs) => r.problems.extend(diffs.iter().map(|d| match d {
            Difference::Changed(p, what) => format!("changed: {p} ({what})"),
            Difference::Missing(p) => format!("missing: {p}"),
            Difference::Extra(p) => format!("extra: {p}"),
        })),
        Err(e) => r.problems.push(format!("root: {e}")),
    }
    finish(r, started)
}

fn finish(mut r: IntegrityResult, started: Instant) -> IntegrityResult {
    r.took = started.elapsed();
    r.checked_at = crate::state::persist::unix_ms() / 1000;
    if r.problems.len() > MAX_LISTED {
        let more = r.problems.len() - MAX_LISTED;
        r.problems.truncate(MAX_LISTED);
        r.problems.push(format!("… and {more} more"));
    }
    r
}

/// One line for logs and audit events: the count and the first few problems.
pub fn summary(r: &IntegrityResult) -> String {
    let shown: Vec<&str> = r.problems.iter().take(5).map(String::as_str).collect();
    format!(
        "{} integrity problem{} ({} files listed): {}{}",
        r.problems.len(),
        if r.problems.len() == 1 { "" } else { "s" },
        r.files,
        shown.join("; "),
        if r.problems.len() > 5 { "; …" } else { "" }
    )
}

/// Records `r`, auditing a change between clean and mismatched through `edge`.
pub fn record(process: &Process, edge: &crate::edge::Edge, r: IntegrityResult) {
    let ok = r.ok();
    let what = summary(&r);
    let before = process.set_integrity(Some(Arc::new(r)));
    match (before.as_deref().map(IntegrityResult::ok), ok) {
        (Some(true) | None, false) => {
            audit::system(edge, "integrity.mismatch", "critical", &what);
            tracing::error!(reason = %what, "integrity mismatch");
        }
        (Some(false), true) => {
            audit::system(
                edge,
                "integrity.restored",
                "info",
                "every file matches the manifest again",
            );
            tracing::info!("integrity restored");
        }
        _ => {}
    }
}

/// Whether an `[integrity]` mismatch refuses this config (production, `on_mismatch =
/// "refuse"`); the problems as one message when it does.
pub(crate) fn refuses(config: &rampart_config::Config, r: &IntegrityResult) -> Option<String> {
    let cfg = config.integrity.as_ref()?;
    let production = config.server.environment == rampart_config::posture::Environment::Production;
    (!r.ok() && production && cfg.on_mismatch == rampart_config::integrity::OnMismatch::Refuse)
        .then(|| {
            format!(
                "integrity: {} problem{} against {} (on_mismatch = \"refuse\"):\n  {}",
                r.problems.len(),
                if r.problems.len() == 1 { "" } else { "s" },
                cfg.manifest.display(),
                r.problems.join("\n  ")
            )
        })
}
