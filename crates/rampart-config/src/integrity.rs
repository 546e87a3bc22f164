//! `[integrity]`: the signed manifest of what this host serves (`rampart manifest build`),
//! checked at start, on every reload and periodically. A mismatch refuses a production
//! start or reload (`on_mismatch = "refuse"`, the default) or is served with an audit event
//! and `/health` degraded (`on_mismatch = "serve"`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::{Duration as RawDuration, Size};

/// `[integrity]` as written.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIntegrity {
    /// The manifest (`integrity.json`); a root recorded relative to it is found beside it.
    pub manifest: Option<String>,
    /// The detached signature (`integrity.sig` in guide 000).
    pub signature: Option<String>,
    /// The signer's PEM public key (Ed25519, RSA-PSS, RS256, ES256): `public_key =
    /// "${INTEGRITY_PUBLIC_KEY}"`.
    pub public_key: Option<String>,
    /// `false` checks the files only (who made the list is then not checked).
    pub require_signed: Option<crate::units::Flag>,
    /// Where the manifest's roots are on this host, in its order.
    pub roots: Option<Vec<String>>,
    /// `"refuse"`: a production start or reload on a mismatch (bad signature, changed,
    /// missing or extra file) is refused, each file named; a mismatch found while running
    /// is served, audited and reported. `"serve"`: always served, with the audit event and
    /// `/health` degraded.
    pub on_mismatch: Option<String>,
    /// Re-verification period (≥ 10s; `0s` off).
    pub interval: Option<RawDuration>,
    /// Bytes hashed per second by the periodic check, so a large tree never takes the disk
    /// from the requests (≥ 1MiB).
    pub read_rate: Option<Size>,
}

/// What a mismatch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    /// A production start or reload is refused; at runtime, as `Serve`.
    Refuse,
    /// Served, with an audit event and `/health` degraded.
    Serve,
}

/// `[integrity]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Integrity {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The signature file.
    pub signature: PathBuf,
    /// The public key, PEM.
    pub public_key: Option<String>,
    /// A signature is required.
    pub require_signed: bool,
    /// Root overrides, in the manifest's order.
    pub roots: Vec<PathBuf>,
    /// What a mismatch does.
    pub on_mismatch: OnMismatch,
    /// Re-verification period (`None`: off).
    pub interval: Option<Duration>,
    /// Bytes per second hashed by the periodic check.
    pub read_rate: u64,
}

pub(crate) fn integrity(
    raw: Option<&RawIntegrity>,
    base: &Path,
    err: &mut dyn FnMut(String, String),
) -> Option<Integrity> {
    let r = raw?;
    let Some(manifest) = r.manifest.as_deref().filter(|m| !m.is_empty()) else {
        err(
            "integrity.manifest".into(),
            "missing: the path of the manifest (`rampart manifest build DIR -o integrity.json`)"
                .into(),
        );
        return None;
    };
    let manifest = base.join(manifest);
    let signature = r
        .signature
        .as_deref()
        .filter(|s| !s.is_empty())
        .map_or_else(
            || {
                let mut s = manifest.as_os_str().to_owned();
                s.push(".sig");
                PathBuf::from(s)
            },
            |s| base.join(s),
        );
    let require_signed = r
        .require_signed
        .map_or(crate::defaults::trust::REQUIRE_SIGNED, |f| f.0);
    let public_key = r
        .public_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    match &public_key {
        None if require_signed => err(
            "integrity.public_key".into(),
            "missing, and require_signed is true: give the signer's PEM public key (public_key = \"${INTEGRITY_PUBLIC_KEY}\" or public_key_file)".into(),
        ),
        Some(k) if !k.contains("-----BEGIN") => err(
            "integrity.public_key".into(),
            "not a PEM public key (-----BEGIN PUBLIC KEY-----)".into(),
        ),
        _ => {}
    }
    let on_mismatch = match r.on_mismatch.as_deref() {
        None | Some(crate::defaults::trust::ON_MISMATCH) => OnMismatch::Refuse,
        Some("serve") => OnMismatch::Serve,
        Some(o) => {
            err(
                "integrity.on_mismatch".into(),
                format!("{o:?}: expected \"refuse\" or \"serve\""),
            );
            OnMismatch::Refuse
        }
    };
    let interval = r
        .interval
        .map_or(Some(crate::defaults::trust::INTEGRITY_INTERVAL), |d| {
            (!d.0.is_zero()).then_some(d.0)
        });
    if interval.is_some_and(|d| d < Duration::from_secs(10)) {
        err(
            "integrity.interval".into(),
            "under 10s: every check reads the whole tree; use 0s to turn it off".into(),
        );
    }
    let read_rate = r
        .read_rate
        .map_or(crate::defaults::trust::READ_RATE, |s| s.0);
    if read_rate < 1 << 20 {
        err(
            "integrity.read_rate".into(),
            "under 1MiB per second: a check would take too long".into(),
        );
    }
    Some(Integrity {
        manifest,
        signature,
        public_key,
        require_signed,
        roots: r.roots.iter().flatten().map(|p| base.join(p)).collect(),
        on_mismatch,
        interval,
        read_rate,
    })
}
