//! `[license]`: the vendor's license token (a JWT signed with its private key), checked at
//! start, on every reload and every `interval`. Its features can gate routes
//! (`routes[].requires_feature`); past its expiry and grace period rampart refuses to
//! start or serves only its health endpoints and a notice (`on_expired`). The highest time
//! seen is kept in a sealed state file bound to an installation id, so a clock set back
//! does not revive an expired license.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::Duration as RawDuration;

/// `[license]` as written.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLicense {
    /// The token: `token = "${LICENSE_KEY}"` or `token_file =
    /// "/etc/churnvision/license.key"`.
    pub token: Option<String>,
    /// The vendor's PEM public key (`"${LICENSE_PUBLIC_KEY}"`).
    pub public_key: Option<String>,
    /// The one algorithm accepted (`"RS256"`, guide 000's `LICENSE_SIGNING_ALG`).
    pub algorithm: Option<String>,
    /// `iss` must equal, `aud` must contain.
    pub issuer: Option<String>,
    /// `iss` must equal, `aud` must contain.
    pub audience: Option<String>,
    /// The anti-rollback state (guide 000's `LICENSE_STATE_PATH`).
    pub state_path: Option<String>,
    /// This installation's id, made on the first start (`INSTALLATION_ID_PATH`).
    pub installation_id_path: Option<String>,
    /// Served as usual this long past expiry, with warnings.
    pub grace: Option<RawDuration>,
    /// Past expiry and grace, or an invalid or tampered license: `"notice"` serves only the
    /// health endpoints, ACME and a notice (503, HTML to browsers, JSON `{"error":
    /// "license_required"}` otherwise); `"refuse"` also refuses a start or reload.
    pub on_expired: Option<String>,
    /// The notice's text.
    pub notice: Option<String>,
    /// Re-check period (≥ 1m).
    pub interval: Option<RawDuration>,
    /// Status of a route whose `requires_feature` the license lacks (`402` for "upgrade
    /// your plan").
    pub feature_status: Option<u16>,
}

/// What an expired, invalid or tampered license does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExpired {
    /// Health endpoints and a notice only.
    Notice,
    /// Refuse a start or reload; a running edge serves the notice.
    Refuse,
}

/// `[license]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct License {
    /// The token.
    pub token: String,
    /// The vendor's public key, PEM.
    pub public_key: String,
    /// The one algorithm accepted.
    pub algorithm: Option<String>,
    /// Expected issuer.
    pub issuer: Option<String>,
    /// Expected audience.
    pub audience: Option<String>,
    /// State file (`None`: under `state_dir`, decided at start).
    pub state_path: Option<PathBuf>,
    /// Installation id file (`None`: under `state_dir`).
    pub installation_id_path: Option<PathBuf>,
    /// Grace after expiry.
    pub grace: Duration,
    /// What expiry does.
    pub on_expired: OnExpired,
    /// The notice's text.
    pub notice: String,
    /// Re-check period.
    pub interval: Duration,
    /// 403 or 402.
    pub feature_status: u16,
}

impl License {
    /// The state file and the installation id file (defaults under `state_dir`).
    pub fn paths(&self, state_dir: &Path) -> (PathBuf, PathBuf) {
        (
            self.state_path
                .clone()
                .unwrap_or_else(|| state_dir.join("license_state.json")),
            self.installation_id_path
                .clone()
                .unwrap_or_else(|| state_dir.join("installation.id")),
        )
    }
}

/// The notice shown when no `notice` is configured.
pub const DEFAULT_NOTICE: &str =
    "The license for this installation is not valid. Please contact your vendor to renew it.";

const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

pub(crate) fn license(
    raw: Option<&RawLicense>,
    base: &Path,
    err: &mut dyn FnMut(String, String),
) -> Option<License> {
    let r = raw?;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let token = text(&r.token);
    if token.is_none() {
        err(
            "license.token".into(),
            "missing: the license token (token = \"${LICENSE_KEY}\" or token_file)".into(),
        );
    } else if token.as_deref().is_some_and(|t| t.split('.').count() != 3) {
        err(
            "license.token".into(),
            "not a JWT (three base64url parts separated by dots)".into(),
        );
    }
    let public_key = text(&r.public_key);
    match &public_key {
        None => err(
            "license.public_key".into(),
            "missing: the vendor's PEM public key (public_key = \"${LICENSE_PUBLIC_KEY}\" or public_key_file)".into(),
        ),
        Some(k) if !k.contains("-----BEGIN") => err(
            "license.public_key".into(),
            "not a PEM public key (-----BEGIN PUBLIC KEY-----)".into(),
        ),
        _ => {}
    }
    let algorithm = text(&r.algorithm);
    if let Some(a) = &algorithm {
        if !ALGORITHMS.contains(&a.as_str()) {
            err(
                "license.algorithm".into(),
                format!(
                    "{a:?}: expected one of {} (a license is signed with the vendor's private key; HS256 and none are refused)",
                    ALGORITHMS.join(", ")
                ),
            );
        }
    }
    let on_expired = match r.on_expired.as_deref() {
        None | Some(crate::defaults::trust::ON_EXPIRED) => OnExpired::Notice,
        Some("refuse") => OnExpired::Refuse,
        Some(o) => {
            err(
                "license.on_expired".into(),
                format!("{o:?}: expected \"notice\" or \"refuse\""),
            );
            OnExpired::Notice
        }
    };
    let interval = r
        .interval
        .map_or(crate::defaults::trust::LICENSE_INTERVAL, |d| d.0);
    if interval < Duration::from_secs(60) {
        err(
            "license.interval".into(),
            "under 1m: a license changes by the day".into(),
        );
    }
    let feature_status = r
        .feature_status
        .unwrap_or(crate::defaults::trust::FEATURE_STATUS);
    if !matches!(feature_status, 402 | 403) {
        err(
            "license.feature_status".into(),
            format!("{feature_status}: expected 403 or 402"),
        );
    }
    let path = |v: &Option<String>| text(v).map(|p| base.join(p));
    Some(License {
        token: token.unwrap_or_default(),
        public_key: public_key.unwrap_or_default(),
        algorithm,
        issuer: text(&r.issuer),
        audience: text(&r.audience),
        state_path: path(&r.state_path),
        installation_id_path: path(&r.installation_id_path),
        grace: r
            .grace
            .map_or(crate::defaults::trust::LICENSE_GRACE, |d| d.0),
        on_expired,
        notice: text(&r.notice).unwrap_or_else(|| DEFAULT_NOTICE.to_owned()),
        interval,
        feature_status,
    })
}
