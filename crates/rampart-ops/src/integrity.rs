//! `rampart manifest`: build an integrity manifest of directories, sign it, and verify a
//! tree against it (the signature first: a manifest that is not the vendor's proves
//! nothing), reported like preflight (text, JSON, JUnit) with one finding per changed,
//! missing and extra file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rampart_trust::keys::{decode_signature, encode_signature, Alg, SigningKey, VerifyingKey};
use rampart_trust::manifest::{Difference, Manifest};

use crate::findings::output::{checks_json, finding_groups, junit_of, paint};
use crate::findings::{check_status, count, Check, Finding, Severity, Sink};

const CHECKS: &[(&str, &str)] = &[
    ("IM-SIG-01", "manifest signature"),
    ("IM-FILE-01", "changed files"),
    ("IM-FILE-02", "missing files"),
    ("IM-FILE-03", "extra files"),
];

/// The detached signature's default path: `FILE.sig` beside the manifest.
pub fn default_signature(manifest: &Path) -> PathBuf {
    let mut s = manifest.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Builds the manifest of `roots` and writes it to `out`.
///
/// # Errors
/// What [`rampart_trust::manifest::build`] refuses, or `out` cannot be written.
pub fn build(
    roots: &[PathBuf],
    exclude: &[String],
    version: Option<&str>,
    out: &Path,
) -> Result<Manifest, String> {
    let m = rampart_trust::manifest::build(roots, exclude, version)?.rooted_at(out);
    std::fs::write(out, m.to_bytes())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(m)
}

/// Signs the manifest file's bytes with the PEM private key at `key`, writing the detached
/// signature (base64) to `signature`.
///
/// # Errors
/// An unreadable or unsupported key, a file that is not a manifest, or a write failure.
pub fn sign(
    manifest: &Path,
    key: &Path,
    alg: Option<Alg>,
    signature: &Path,
) -> Result<Alg, String> {
    let bytes =
        std::fs::read(manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    Manifest::parse(&bytes).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let key = SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", key.display()))?;
    let (alg, sig) = key.sign(&bytes, alg)?;
    std::fs::write(signature, encode_signature(&sig))
        .map_err(|e| format!("cannot write {}: {e}", signature.display()))?;
    Ok(alg)
}

/// What `verify` checks.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The vendor's public key (PEM); `None` only with `unsigned`.
    pub public_key: Option<PathBuf>,
    /// The detached signature (default [`default_signature`]).
    pub signature: Option<PathBuf>,
    /// Where the manifest's roots are now, in order (default: as recorded).
    pub roots: Vec<PathBuf>,
    /// Check the files without a signature (the signature check is then skipped).
    pub unsigned: bool,
}

/// The outcome.
#[derive(Debug, Clone)]
pub struct Report {
    /// Checks run.
    pub checks: Vec<Check>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Files listed.
    pub files: usize,
    /// The algorithm that verified the signature.
    pub signed_with: Option<&'static str>,
    /// The manifest's version.
    pub version: Option<String>,
}

impl Report {
    /// Errors found.
    pub fn errors(&self) -> usize {
        count(&self.findings, Severity::Error)
    }
}

/// Verifies the manifest's signature, then the files.
///
/// # Errors
/// The manifest cannot be read or parsed (nothing to check against).
pub fn verify(o: &VerifyOptions) -> Result<Report, String> {
    let bytes = std::fs::read(&o.manifest)
        .map_err(|e| format!("cannot read {}: {e}", o.manifest.display()))?;
    let m = Manifest::parse(&bytes).map_err(|e| format!("{}: {e}", o.manifest.display()))?;
    let mut s = Sink {
        findings: Vec::new(),
        checks: Vec::new(),
    };
    for (id, t) in CHECKS {
        s.check(id, t);
    }
    let mut signed_with = None;
    let shown = o.manifest.display().to_string();
    match (&o.public_key, o.unsigned) {
        (None, true) => {
            s.checks[0].skipped =
                Some("--unsigned: the files are checked, not who made the list".into());
        }
        (None, false) => s.add(
            "IM-SIG-01",
            Severity::Error,
            shown.clone(),
            "no public key to check the manifest's signature with",
            "pass --public-key (the vendor's), or --unsigned to check the files only",
        ),
        (Some(pk), _) => {
            let sig_path = o
                .signature
                .clone()
                .unwrap_or_else(|| default_signature(&o.manifest));
            let checked = std::fs::read(pk)
                .map_err(|e| format!("cannot read the public key {}: {e}", pk.display()))
                .and_then(|pem| {
                    VerifyingKey::from_pem(&pem).map_err(|e| format!("{}: {e}", pk.display()))
                })
                .and_then(|key| {
                    let sig = std::fs::read(&sig_path).map_err(|e| {
                        format!("cannot read the signature {}: {e}", sig_path.display())
                    })?;
                    key.verify(&bytes, &decode_signature(&sig))
                });
            match checked {
                Ok(alg) => signed_with = Some(alg.name()),
                Err(e) => s.add(
                    "IM-SIG-01",
                    Severity::Error,
                    shown.clone(),
                    format!("the manifest is not signed by this key: {e}"),
                    "use the manifest and signature shipped together, and the vendor's public key; a manifest that does not verify proves nothing",
                ),
            }
        }
    }
    match m.check(&m.roots_at(&o.manifest, &o.roots), None) {
        Ok(diffs) => {
            for d in diffs {
                match d {
                    Difference::Changed(p, what) => s.add(
                        "IM-FILE-01",
                        Severity::Error,
                        p,
                        what,
                        "restore the file from the release, or rebuild and re-sign the manifest if the change is yours",
                    ),
                    Difference::Missing(p) => s.add(
                        "IM-FILE-02",
                        Severity::Error,
                        p,
                        "listed in the manifest, not on disk",
                        "restore the file from the release",
                    ),
                    Difference::Extra(p) => s.add(
                        "IM-FILE-03",
                        Severity::Error,
                        p,
                        "on disk, not in the manifest",
                        "remove it, or rebuild and re-sign the manifest if it belongs to the release",
                    ),
                }
            }
        }
        Err(e) => s.add(
            "IM-FILE-02",
            Severity::Error,
            shown,
            format!("cannot read a root: {e}"),
            "pass --root DIR for each root where it is now",
        ),
    }
    Ok(Report {
        checks: s.checks,
        findings: s.findings,
        files: m.files.len(),
        signed_with,
        version: m.version,
    })
}

fn status(r: &Report) -> &'static str {
    if r.errors() > 0 {
        "failed"
    } else {
        "passed"
    }
}

/// The report as text.
pub fn text(r: &Report, colour: bool) -> String {
    let mut out = String::new();
    finding_groups(&mut out, &r.findings, colour);
    let n = |id: &str| r.findings.iter().filter(|f| f.id == id).count();
    let _ = writeln!(
        out,
        "manifest verify {}: {} files listed{}; {} changed, {} missing, {} extra; signature {}",
        if r.errors() > 0 {
            paint(colour, "1;31", "FAILED")
        } else {
            paint(colour, "1;32", "passed")
        },
        r.files,
        r.version
            .as_ref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default(),
        n("IM-FILE-01"),
        n("IM-FILE-02"),
        n("IM-FILE-03"),
        match (r.signed_with, n("IM-SIG-01")) {
            (Some(a), _) => format!("{a} ok"),
            (None, 0) => "not checked (--unsigned)".to_owned(),
            _ => "BAD".to_owned(),
        }
    );
    out
}

/// The report as JSON (`version` 1, as preflight's, with `files` and `signed_with`).
pub fn json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "tool": "rampart manifest verify",
        "status": status(r),
        "files": r.files,
        "manifest_version": r.version,
        "signed_with": r.signed_with,
        "summary": {"errors": r.errors(), "warnings": 0, "infos": 0, "allowed": 0},
        "findings": r.findings.iter().map(|f| serde_json::json!({
            "id": f.id,
            "severity": f.severity.as_str(),
            "subject": f.subject,
            "why": f.why,
            "fix": f.fix,
            "allowed": f.allowed,
        })).collect::<Vec<_>>(),
        "checks": checks_json(&r.checks, |id| check_status(&r.checks, &r.findings, id)),
    })
}

/// The report as JUnit XML.
pub fn junit(r: &Report) -> String {
    junit_of(
        "rampart manifest verify",
        "manifest",
        &r.checks,
        &r.findings,
        |id| check_status(&r.checks, &r.findings, id),
    )
}
