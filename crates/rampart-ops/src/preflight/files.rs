//! Checks of the deployment's files: the edge's certificates (expiry, lifetime, chain,
//! names, key and signature), private key permissions, and the git repository (`.env`
//! tracked or not ignored, secrets in history).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;
use std::time::UNIX_EPOCH;

use rampart_config::runtime::HostPattern;
use rampart_config::Config;
use x509_parser::prelude::*;

use super::{Inputs, Severity, Sink};
use crate::certs::{names_host, pem_certs, system_roots, verify_chain};

pub(crate) const CERT_CHECKS: &[(&str, &str)] = &[
    ("PF-CRT-01", "certificate expiry"),
    ("PF-CRT-02", "certificate lifetime, chain and names"),
    ("PF-CRT-03", "certificate key size and signature"),
    ("PF-KEY-01", "private key file owner and mode"),
];

/// The title of one of the certificate checks.
pub(crate) fn title(id: &str) -> &'static str {
    CERT_CHECKS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("", |(_, t)| t)
}

const DAY: i64 = 86_400;

/// Host names the edge serves (exact names; a wildcard pattern is checked with a sample).
fn served_hosts(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |h: &HostPattern| {
        let name = match h {
            HostPattern::Exact(n) => n.clone(),
            HostPattern::Wildcard(suffix) => format!("rampart-check{suffix}"),
        };
        if !out.contains(&name) && name.parse::<std::net::IpAddr>().is_err() {
            out.push(name);
        }
    };
    c.server.allowed_hosts.iter().for_each(&mut push);
    for r in &c.routes {
        r.hosts.iter().for_each(&mut push);
    }
    out
}

pub(crate) fn certificates(c: &Config, inputs: &Inputs<'_>, s: &mut Sink) {
    let Some(tls) = &c.tls else {
        for (id, t) in CERT_CHECKS {
            s.skip(id, t, "no [tls] in the config");
        }
        return;
    };
    for (id, t) in CERT_CHECKS {
        s.check(id, t);
    }
    let now = inputs
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut roots = system_roots();
    if let Some(ca) = &inputs.ca_file {
        match std::fs::read(ca) {
            Ok(data) => roots.extend(pem_certs(&data)),
            Err(e) => s.add(
                "PF-CRT-02",
                Severity::Error,
                ca.display().to_string(),
                format!("cannot read the CA file: {e}"),
                "fix the path in [preflight] ca_file or --ca-file",
            ),
        }
    }
    let hosts = served_hosts(c);
    let mut covered = vec![false; hosts.len()];
    for (i, paths) in tls.certificates.iter().enumerate() {
        let subject = paths.cert.display().to_string();
        let data = match std::fs::read(&paths.cert) {
            Ok(d) => d,
            Err(e) => {
                s.add(
                    "PF-CRT-01",
                    Severity::Error,
                    subject,
                    format!("cannot read: {e}"),
                    "fix tls.cert",
                );
                continue;
            }
        };
        let chain = pem_certs(&data);
        let Some(leaf_der) = chain.first() else {
            s.add(
                "PF-CRT-02",
                Severity::Error,
                subject,
                "no PEM certificate in the file",
                "fix tls.cert",
            );
            continue;
        };
        let Ok((_, leaf)) = X509Certificate::from_der(leaf_der) else {
            s.add(
                "PF-CRT-02",
                Severity::Error,
                subject,
                "the certificate does not parse",
                "fix tls.cert",
            );
            continue;
        };
        let nb = leaf.validity().not_before.timestamp();
        let na = leaf.validity().not_after.timestamp();
        let left = (na - now) / DAY;
        let key = format!("tls.certificates[{i}]");
        let subj = format!("{subject} ({key})");
        if na <= now {
            s.add(
                "PF-CRT-01",
                Severity::Error,
                subj.clone(),
                format!("expired {} days ago", -left),
                "renew the certificate",
            );
        } else if left < 30 {
            s.add(
                "PF-CRT-01",
                Severity::Error,
                subj.clone(),
                format!("expires in {left} days"),
                "renew the certificate now (renewals start 30 days before expiry)",
            );
        } else if left < 60 {
            s.add(
                "PF-CRT-01",
                Severity::Warn,
                subj.clone(),
                format!("expires in {left} days"),
                "check that renewal is automated",
            );
        }
        let lifetime = (na - nb) / DAY;
        if lifetime > 398 {
            s.add(
                "PF-CRT-02",
                Severity::Warn,
                subj.clone(),
                format!("lifetime is {lifetime} days: browsers refuse public certificates over 398 days (Mozilla: at most 366)"),
                "issue certificates of 90 days, renewed automatically",
            );
        }
        // Chain: verified at a moment inside the validity period, so an expired certificate
        // is reported once (PF-CRT-01), not also as an untrusted chain.
        if let Err(e) = verify_chain(&roots, &chain, nb, na, now) {
            let why = if leaf.issuer() == leaf.subject() {
                "the certificate is self-signed".to_owned()
            } else {
                format!("the chain does not verify to a trusted root: {e}")
            };
            s.add("PF-CRT-02", Severity::Error, subj.clone(), why, "serve the full chain (leaf then intermediates) from a trusted CA; a private CA goes in [preflight] ca_file");
        }
        for (h, done) in hosts.iter().zip(covered.iter_mut()) {
            if names_host(leaf_der, h) {
                *done = true;
            }
        }
        key_and_signature(&leaf, &subj, s);
    }
    if let Some(a) = &tls.acme {
        acme_store(a, &c.server.state_dir, now, s);
        for (h, done) in hosts.iter().zip(covered.iter_mut()) {
            if a.domains.iter().any(|d| d == h) {
                *done = true;
            }
        }
    }
    for (h, done) in hosts.iter().zip(&covered) {
        if !done {
            let shown = h
                .strip_prefix("rampart-check")
                .map_or(h.clone(), |sfx| format!("*{sfx}"));
            s.add(
                "PF-CRT-02",
                Severity::Error,
                format!("host {shown}"),
                format!("no certificate names {shown}: browsers refuse the connection"),
                "add the name to the certificate's subjectAltName",
            );
        }
    }
}

/// The certificate `[tls.acme]` keeps in the store: expired is an error; past three
/// quarters of its lifetime (renewal is due at two thirds) a warning that renewal is not
/// happening; none yet is a note (it is ordered at the first start).
fn acme_store(a: &rampart_config::acme::Acme, state_dir: &Path, now: i64, s: &mut Sink) {
    let path = a.store(state_dir).join("cert.pem");
    let subject = format!("{} (tls.acme)", path.display());
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            s.add(
                "PF-CRT-01",
                Severity::Info,
                subject,
                format!(
                    "no certificate from {} yet: ordered at the first start for {}",
                    a.directory,
                    a.domains.join(", ")
                ),
                "make sure the CA reaches this host (port 80 for http-01, 443 for tls-alpn-01) and the names resolve to it",
            );
            return;
        }
        Err(e) => {
            s.add(
                "PF-CRT-01",
                Severity::Error,
                subject,
                format!("cannot read: {e}"),
                "fix the permissions of state_dir",
            );
            return;
        }
    };
    let chain = pem_certs(&data);
    let Some(Ok((_, leaf))) = chain.first().map(|d| X509Certificate::from_der(d)) else {
        s.add(
            "PF-CRT-01",
            Severity::Error,
            subject,
            "the stored certificate does not parse",
            "delete it: rampart orders a new one at the next start",
        );
        return;
    };
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    let left = (na - now) / DAY;
    if na <= now {
        s.add(
            "PF-CRT-01",
            Severity::Error,
            subject,
            format!("the certificate from the CA expired {} days ago", -left),
            "renewal is failing: see /health acme.last_message and the tls.acme.failed audit events",
        );
    } else if now > nb + (na - nb) * 3 / 4 {
        s.add(
            "PF-CRT-01",
            Severity::Warn,
            subject,
            format!(
                "the certificate from the CA expires in {} (renewal was due at two thirds of its lifetime)",
                if left > 0 { format!("{left} days") } else { format!("{} hours", (na - now) / 3600) }
            ),
            "renewal is not happening: see /health acme.last_message and the tls.acme.failed audit events",
        );
    }
}

fn key_and_signature(leaf: &X509Certificate<'_>, subj: &str, s: &mut Sink) {
    match leaf.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) if k.key_size() < 2048 => s.add(
            "PF-CRT-03",
            Severity::Error,
            subj,
            format!("RSA key of {} bits (at least 2048)", k.key_size()),
            "issue a new certificate with an ECDSA P-256 or RSA 2048+ key",
        ),
        Ok(x509_parser::public_key::PublicKey::EC(k)) if k.key_size() < 256 => s.add(
            "PF-CRT-03",
            Severity::Error,
            subj,
            format!("EC key of {} bits (at least 256)", k.key_size()),
            "issue a new certificate with an ECDSA P-256 key",
        ),
        Ok(x509_parser::public_key::PublicKey::DSA(_)) => s.add(
            "PF-CRT-03",
            Severity::Error,
            subj,
            "DSA key",
            "issue a new certificate with an ECDSA P-256 key",
        ),
        _ => {}
    }
    let oid = leaf.signature_algorithm.algorithm.to_id_string();
    let weak = match oid.as_str() {
        "1.2.840.113549.1.1.4" => Some("MD5"),
        "1.2.840.113549.1.1.2" => Some("MD2"),
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" => {
            Some("SHA-1")
        }
        _ => None,
    };
    if let Some(h) = weak {
        s.add(
            "PF-CRT-03",
            Severity::Error,
            subj,
            format!("signed with {h} ({oid}): collisions are practical"),
            "reissue the certificate (every CA signs with SHA-256 or better)",
        );
    }
}

/// PF-KEY-01: owned by the service user with no group/other access, or owned by root with
/// at most group read (PostgreSQL's rule for its own key).
pub(crate) fn key_files(c: &Config, uid: u32, s: &mut Sink) {
    let Some(tls) = &c.tls else { return };
    for p in &tls.certificates {
        let subject = p.key.display().to_string();
        let Ok(m) = std::fs::metadata(&p.key) else {
            s.add(
                "PF-KEY-01",
                Severity::Error,
                subject,
                "cannot read the key file",
                "fix tls.key",
            );
            continue;
        };
        let mode = m.mode() & 0o777;
        let owner = m.uid();
        let ok = if owner == uid {
            mode & 0o077 == 0
        } else if owner == 0 {
            mode & 0o137 == 0
        } else {
            false
        };
        if !ok {
            let why = if owner != uid && owner != 0 {
                format!("owned by uid {owner}, not by the edge's user (uid {uid}) or root")
            } else {
                format!("mode {mode:04o} lets other users read the private key")
            };
            s.add(
                "PF-KEY-01",
                Severity::Error,
                subject.clone(),
                why,
                format!("chmod 600 {subject} (owned by the edge's user), or 640 owned by root"),
            );
        }
    }
}

fn run_git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_env_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name == ".env" || name.starts_with(".env.") || name.ends_with(".env"))
        && ![
            ".env.example",
            ".env.sample",
            ".env.template",
            ".env.dist",
            ".env.defaults",
        ]
        .contains(&name)
        && !name.ends_with(".example")
        && !name.ends_with(".sample")
        && !name.ends_with(".template")
}

pub(crate) fn git(inputs: &Inputs<'_>, s: &mut Sink) {
    let title = ".env git-ignored, never committed; no secrets in history";
    let Some(repo) = &inputs.repo else {
        s.skip(
            "PF-GIT-01",
            title,
            "no git repository given (--repo or [preflight] repo)",
        );
        return;
    };
    let Some(top) = run_git(repo, &["rev-parse", "--show-toplevel"]) else {
        s.skip(
            "PF-GIT-01",
            title,
            &format!(
                "{} is not a git repository (or git is missing)",
                repo.display()
            ),
        );
        return;
    };
    s.check("PF-GIT-01", title);
    let top = Path::new(top.trim());
    let fix_tracked = "git rm --cached FILE, add it to .gitignore, and rotate every secret it held (`rampart secrets rotate`)";
    for f in run_git(top, &["ls-files", "-z"])
        .unwrap_or_default()
        .split('\0')
    {
        if !f.is_empty() && is_env_file(f) {
            s.add(
                "PF-GIT-01",
                Severity::Error,
                format!("git index: {f}"),
                "is tracked by git: every clone has the secrets",
                fix_tracked.replace("FILE", f),
            );
        }
    }
    for env in &inputs.env {
        if env.file.is_none() {
            continue;
        }
        let path = Path::new(&env.name);
        let rel = std::fs::canonicalize(path).ok().and_then(|p| {
            std::fs::canonicalize(top)
                .ok()
                .and_then(|t| p.strip_prefix(t).ok().map(Path::to_path_buf))
        });
        if let Some(rel) = rel {
            let rel = rel.display().to_string();
            let ignored = Command::new("git")
                .arg("-C")
                .arg(top)
                .args(["check-ignore", "-q", "--no-index", &rel])
                .status()
                .is_ok_and(|st| st.success());
            if !ignored {
                s.add(
                    "PF-GIT-01",
                    Severity::Error,
                    rel.clone(),
                    "is not git-ignored: one `git add .` commits the secrets",
                    format!("add {rel} to .gitignore"),
                );
            }
        }
    }
    let depth = inputs.history_depth.to_string();
    let names = run_git(
        top,
        &[
            "log",
            "--all",
            "--max-count",
            &depth,
            "--name-only",
            "--diff-filter=A",
            "--format=%x00%h",
        ],
    )
    .unwrap_or_default();
    let mut commit = "";
    for line in names.lines() {
        if let Some(h) = line.strip_prefix('\0') {
            commit = h;
        } else if is_env_file(line.trim()) {
            s.add(
                "PF-GIT-01",
                Severity::Error,
                format!("git history: {} in commit {commit}", line.trim()),
                "was committed: its secrets stay in every clone even after deletion",
                "rotate every secret it held, then purge history (git filter-repo) if the repository is shared",
            );
        }
    }
    history_secrets(top, &depth, s);
}

/// A gitleaks-style scan of added lines in history: provider key shapes, private key blocks,
/// and keyword-anchored assignments of high-entropy values (generic-api-key, entropy 3.5).
fn history_secrets(top: &Path, depth: &str, s: &mut Sink) {
    let Some(log) = run_git(
        top,
        &[
            "log",
            "--all",
            "--max-count",
            depth,
            "-p",
            "--no-color",
            "-U0",
            "--no-ext-diff",
            "--format=%x00commit %h",
        ],
    ) else {
        return;
    };
    let providers: Vec<(&str, regex_lite::Regex)> = [
        ("AWS access key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("GitHub token", r"\bgh[pousr]_[0-9A-Za-z]{36,}\b"),
        ("GitLab token", r"\bglpat-[0-9A-Za-z_-]{20,}\b"),
        ("Slack token", r"\bxox[abposr]-[0-9A-Za-z-]{10,}\b"),
        ("Stripe key", r"\b[rs]k_live_[0-9A-Za-z]{16,}\b"),
        ("OpenAI key", r"\bsk-(proj-)?[A-Za-z0-9_-]{32,}\b"),
        (
            "private key",
            // The header alone on its line, as in a key file (not a PEM label in code).
            r#"^\s*["']?-----BEGIN (RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----(\\n)?["']?\s*$"#,
        ),
    ]
    .into_iter()
    .filter_map(|(n, r)| regex_lite::Regex::new(r).ok().map(|r| (n, r)))
    .collect();
    let generic = regex_lite::Regex::new(
        r#"(?i)(key|api|token|secret|client|passwd|password|auth|access)[a-z0-9_.-]{0,25}["']?\s*(=|:|:=|=>)\s*["']?([0-9a-zA-Z_.=+/-]{10,150})"#,
    )
    .ok();
    let (mut commit, mut file) = ("", "");
    let mut reported = 0;
    for line in log.lines() {
        if let Some(h) = line.strip_prefix("\0commit ") {
            commit = h;
            continue;
        }
        if let Some(f) = line.strip_prefix("+++ b/") {
            file = f;
            continue;
        }
        let Some(added) = line.strip_prefix('+') else {
            continue;
        };
        if added.starts_with("++") {
            continue;
        }
        let mut hit = providers
            .iter()
            .find(|(_, r)| r.is_match(added))
            .map(|(n, _)| (*n).to_owned());
        if hit.is_none() {
            if let Some(c) = generic.as_ref().and_then(|g| g.captures(added)) {
                let value = c.get(3).map_or("", |m| m.as_str());
                let shape = rampart_config::secret::shape(value);
                let lower = value.to_ascii_lowercase();
                let stop = rampart_config::secret::is_placeholder(value)
                    || [
                        "true",
                        "false",
                        "null",
                        "none",
                        "example",
                        "process.env",
                        "os.environ",
                        "getenv",
                        "settings.",
                    ]
                    .iter()
                    .any(|w| lower.contains(w))
                    || value.chars().all(|c| c.is_ascii_digit() || c == '.')
                    // Random secrets have digits and letters; code (`r.max_keys`,
                    // `rampart_config::…`, `HeaderName`) and prose rarely have both.
                    || !value.chars().any(|c| c.is_ascii_digit())
                    || !value.chars().any(|c| c.is_ascii_alphabetic())
                    || is_dotted_identifier(value);
                if !stop && shape.shannon >= 3.5 {
                    hit = Some(format!(
                        "high-entropy value ({:.1} bits/char) assigned to {}",
                        shape.shannon,
                        c.get(1).map_or("", |m| m.as_str())
                    ));
                }
            }
        }
        if let Some(what) = hit {
            reported += 1;
            if reported > 50 {
                break;
            }
            s.add(
                "PF-GIT-01",
                Severity::Error,
                format!("git history: {file} in commit {commit}"),
                format!("{what} was committed"),
                "rotate that secret now (it is in every clone), then purge history if the repository is shared",
            );
        }
    }
}

/// `a.b_c.d`: a path of identifiers, as code writes (`self.config.key_2`).
fn is_dotted_identifier(v: &str) -> bool {
    v.contains('.')
        && v.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

const MTLS: (&str, &str) = ("PF-MTLS-01", "client CA and CRLs usable and current");

/// `[tls] client_ca` and `client_crl`: the CA certificates are current (a client CA that
/// expired makes every client certificate fail), and every CRL parses, was issued by that CA
/// and is not past its `nextUpdate` (a stale list does not know the revocations made since).
pub(crate) fn client_auth(c: &Config, inputs: &Inputs<'_>, s: &mut Sink) {
    let (id, title) = MTLS;
    let Some(tls) = c.tls.as_ref().filter(|t| !t.client_cas.is_empty()) else {
        s.skip(id, title, "no client_ca ([tls] or a route's)");
        return;
    };
    s.check(id, title);
    let now = inputs
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut names = Vec::new();
    for (i, ca) in tls.client_cas.iter().enumerate() {
        let key = if i == 0 && tls.client_ca.is_some() {
            "tls.client_ca".to_owned()
        } else {
            let routes: Vec<&str> = c
                .routes
                .iter()
                .filter(|r| usize::from(r.client_ca) == i)
                .map(|r| r.name.as_str())
                .collect();
            format!("client_ca of route {}", routes.join(", "))
        };
        names.extend(client_ca(ca, &key, now, id, s));
    }
    if names.is_empty() {
        return;
    }
    for (i, path) in tls.client_crls.iter().enumerate() {
        let subject = format!("{} (tls.client_crl[{i}])", path.display());
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                s.add(
                    id,
                    Severity::Error,
                    subject,
                    format!("cannot read: {e}"),
                    "fix tls.client_crl",
                );
                continue;
            }
        };
        let der = if data.starts_with(b"-----") {
            match x509_parser::pem::parse_x509_pem(&data) {
                Ok((_, pem)) => pem.contents,
                Err(_) => Vec::new(),
            }
        } else {
            data
        };
        let Ok((_, crl)) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        else {
            s.add(
                id,
                Severity::Error,
                subject,
                "not a CRL",
                "fix tls.client_crl",
            );
            continue;
        };
        if !names.iter().any(|n| n.as_slice() == crl.issuer().as_raw()) {
            s.add(
                id,
                Severity::Error,
                subject.clone(),
                format!("issued by {}, not by a client CA", crl.issuer()),
                "list the CRL of the client CA",
            );
        }
        match crl.next_update() {
            Some(next) if next.timestamp() < now => s.add(
                id,
                Severity::Error,
                subject,
                format!(
                    "stale: its nextUpdate passed {} hours ago, so revocations since are unknown",
                    (now - next.timestamp()) / 3600
                ),
                "publish the CA's current CRL to this file and `rampart reload`",
            ),
            Some(_) => {}
            None => s.add(
                id,
                Severity::Warn,
                subject,
                "the CRL has no nextUpdate: its age cannot be judged",
                "have the CA issue CRLs with nextUpdate",
            ),
        }
    }
}

/// One client CA file's certificates, judged for expiry; their subjects (raw DER), for
/// matching CRL issuers. Nothing when the file is unusable (an error said so).
fn client_ca(
    ca: &std::path::Path,
    key: &str,
    now: i64,
    id: &'static str,
    s: &mut Sink,
) -> Vec<Vec<u8>> {
    let subject = format!("{} ({key})", ca.display());
    let fix = format!("fix {key}");
    let cas = match std::fs::read(ca) {
        Ok(d) => pem_certs(&d),
        Err(e) => {
            s.add(
                id,
                Severity::Error,
                subject,
                format!("cannot read: {e}"),
                fix,
            );
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for der in &cas {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            continue;
        };
        names.push(cert.subject().as_raw().to_vec());
        let left = (cert.validity().not_after.timestamp() - now) / DAY;
        if left < 0 {
            s.add(
                id,
                Severity::Error,
                subject.clone(),
                format!(
                    "the client CA {} expired {} days ago",
                    cert.subject(),
                    -left
                ),
                "issue a new client CA and client certificates",
            );
        } else if left < 30 {
            s.add(
                id,
                Severity::Warn,
                subject.clone(),
                format!("the client CA {} expires in {left} days", cert.subject()),
                "roll a new client CA out beside it before then",
            );
        }
    }
    if names.is_empty() {
        s.add(
            id,
            Severity::Error,
            subject,
            "no CA certificate in the file",
            fix,
        );
    }
    names
}
