//! What the vendor signed: the `[license]` token (PF-LIC-01: it verifies, for this
//! installation, and is not expired at the later of the clock and the installation's
//! anti-rollback anchor; 30 days or fewer left is a warning; what would block it is an
//! error with `on_expired = "refuse"`, a warning with the notice) and the `[integrity]`
//! manifest (PF-INT-01: its signature, then every file). Read only: preflight never
//! creates the installation id or moves the anchor.

use std::path::Path;

use rampart_config::Config;
use rampart_trust::keys::{decode_signature, VerifyingKey};
use rampart_trust::license::{self, AnchorError, Expect, Standing};
use rampart_trust::manifest::{Difference, Manifest};

use super::{Severity, Sink};

pub(crate) const CHECKS: &[(&str, &str)] = &[
    ("PF-LIC-01", "license token"),
    ("PF-INT-01", "integrity manifest"),
];

/// Problems listed one by one; the rest are counted in one more finding.
const LISTED: usize = 20;

pub(crate) fn check(c: &Config, now: i64, s: &mut Sink) {
    match &c.license {
        Some(l) => {
            s.check(CHECKS[0].0, CHECKS[0].1);
            license_check(l, &c.server.state_dir, now, s);
        }
        None => s.skip(CHECKS[0].0, CHECKS[0].1, "no [license] in the config"),
    }
    match &c.integrity {
        Some(i) => {
            s.check(CHECKS[1].0, CHECKS[1].1);
            integrity_check(i, s);
        }
        None => s.skip(CHECKS[1].0, CHECKS[1].1, "no [integrity] in the config"),
    }
}

fn license_check(cfg: &rampart_config::license::License, state_dir: &Path, now: i64, s: &mut Sink) {
    const ID: &str = "PF-LIC-01";
    // What blocks the license is an error when it refuses the start; with the notice it is
    // what the operator chose, and preflight (which runs before a production start) must
    // not refuse what `on_expired = "notice"` would serve.
    let blocking = match cfg.on_expired {
        rampart_config::license::OnExpired::Refuse => Severity::Error,
        rampart_config::license::OnExpired::Notice => Severity::Warn,
    };
    let expect = Expect {
        algorithm: cfg.algorithm.as_deref(),
        issuer: cfg.issuer.as_deref(),
        audience: cfg.audience.as_deref(),
    };
    let lic = match license::verify(&cfg.token, cfg.public_key.as_bytes(), &expect) {
        Ok(l) => l,
        Err(e) => {
            s.add(
                ID,
                blocking,
                "license.token",
                e,
                "use the token and public key the vendor issued together (`rampart license inspect TOKEN --public-key KEY`)",
            );
            return;
        }
    };
    let (state_path, id_path) = cfg.paths(state_dir);
    let anchor = match license::read_anchor(&state_path, &id_path) {
        Ok(a) => a,
        Err(AnchorError::Tampered(why) | AnchorError::Unreadable(why)) => {
            s.add(
                ID,
                blocking,
                state_path.display().to_string(),
                why,
                "restore the state and installation id files from backup, or ask the vendor for a new license",
            );
            return;
        }
    };
    let judged = anchor.as_ref().map_or(now, |a| now.max(a.highest_seen));
    if let (Some(bound), Some(a)) = (&lic.installation_id, &anchor) {
        if *bound != a.installation_id {
            s.add(
                ID,
                blocking,
                "license.token",
                format!(
                    "issued for installation {bound:?}; this is {:?}",
                    a.installation_id
                ),
                "ask the vendor for a license for this installation's id",
            );
        }
    }
    let days = lic.days_left(judged);
    let exp = rampart_config::civil::rfc3339(lic.expires_at);
    let renew = "ask the vendor for a renewed license before it expires";
    match lic.standing(judged, 0) {
        Standing::NotYetValid => s.add(
            ID,
            blocking,
            "license.token",
            "not valid yet (nbf in the future)",
            "check the clock, or wait for the license's start",
        ),
        Standing::Grace | Standing::Expired => {
            let grace = i64::try_from(cfg.grace.as_secs()).unwrap_or(i64::MAX);
            let in_grace = lic.standing(judged, grace) == Standing::Grace;
            s.add(
                ID,
                if in_grace { Severity::Warn } else { blocking },
                "license.token",
                if in_grace {
                    format!("expired on {exp}; served for the grace period")
                } else {
                    format!("expired on {exp}")
                },
                renew,
            );
        }
        Standing::Valid if days < 30 => s.add(
            ID,
            Severity::Warn,
            "license.token",
            format!("expires in {days} days ({exp})"),
            renew,
        ),
        Standing::Valid => {}
    }
}

fn integrity_check(cfg: &rampart_config::integrity::Integrity, s: &mut Sink) {
    const ID: &str = "PF-INT-01";
    let subject = cfg.manifest.display().to_string();
    let bytes = match std::fs::read(&cfg.manifest) {
        Ok(b) => b,
        Err(e) => {
            s.add(
                ID,
                Severity::Error,
                subject,
                format!("cannot read the manifest: {e}"),
                "install the manifest shipped with the release",
            );
            return;
        }
    };
    let m = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(e) => {
            s.add(
                ID,
                Severity::Error,
                subject,
                e,
                "install the manifest shipped with the release",
            );
            return;
        }
    };
    if let Some(pem) = &cfg.public_key {
        let verdict = VerifyingKey::from_pem(pem.as_bytes()).and_then(|k| {
            let sig = std::fs::read(&cfg.signature).map_err(|e| {
                format!("cannot read the signature {}: {e}", cfg.signature.display())
            })?;
            k.verify(&bytes, &decode_signature(&sig))
        });
        if let Err(e) = verdict {
            s.add(
                ID,
                Severity::Error,
                subject.clone(),
                format!("the manifest is not signed by the configured key: {e}"),
                "use the manifest and signature shipped together, and the vendor's public key",
            );
        }
    }
    let diffs = match m.check(&m.roots_at(&cfg.manifest, &cfg.roots), None) {
        Ok(d) => d,
        Err(e) => {
            s.add(
                ID,
                Severity::Error,
                subject,
                e,
                "set [integrity] roots to where the release is installed",
            );
            return;
        }
    };
    let fix = "restore the file from the release, or rebuild and re-sign the manifest if the change is yours";
    for d in diffs.iter().take(LISTED) {
        let why = match d {
            Difference::Changed(_, what) => format!("changed: {what}"),
            Difference::Missing(_) => "missing".into(),
            Difference::Extra(_) => "not in the manifest".into(),
        };
        s.add(ID, Severity::Error, d.path(), why, fix);
    }
    if diffs.len() > LISTED {
        s.add(
            ID,
            Severity::Error,
            subject,
            format!("{} more files differ", diffs.len() - LISTED),
            "`rampart manifest verify` lists them all",
        );
    }
}
