//! `[tls.acme]`: certificates obtained and renewed automatically from an ACME CA (RFC 8555:
//! Let's Encrypt, ZeroSSL, a private step-ca, Pebble in tests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::Duration as RawDuration;

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// `[tls.acme]` as written.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    /// The CA's directory URL (`https://…`), or `letsencrypt` / `letsencrypt-staging`.
    pub directory: Option<String>,
    /// Contact address for the CA's expiry notices.
    pub email: Option<String>,
    /// Names on the certificate (one certificate for all); default every exact host of the
    /// routes and `allowed_hosts` that is a DNS name. Wildcards need DNS-01, which rampart
    /// does not answer: an error.
    pub domains: Option<Vec<String>>,
    /// `http-01`: the CA fetches `/.well-known/acme-challenge/TOKEN` on port 80, answered
    /// before the HTTPS redirect; `tls-alpn-01`: the CA handshakes on port 443 with ALPN
    /// `acme-tls/1` and gets a challenge certificate.
    pub challenge: Option<String>,
    /// PEM CA file for the ACME server's own HTTPS (a private CA such as step-ca).
    pub directory_ca: Option<String>,
    /// External Account Binding for CAs that need it (ZeroSSL, Google Trust Services); the
    /// key base64url, from `${VAR}` or `eab_hmac_key_file`.
    pub eab_kid: Option<String>,
    /// External Account Binding for CAs that need it (ZeroSSL, Google Trust Services); the
    /// key base64url, from `${VAR}` or `eab_hmac_key_file`.
    pub eab_hmac_key: Option<String>,
    /// Wait after a failed order, doubled after each failure up to 6 h (a CA outage or rate
    /// limit is never hammered).
    pub retry: Option<RawDuration>,
}

/// The challenge the CA is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A token at `/.well-known/acme-challenge/` on the plain listener (port 80).
    Http01,
    /// A special certificate on the TLS listener (port 443), ALPN `acme-tls/1`.
    TlsAlpn01,
}

/// `[tls.acme]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Acme {
    /// Directory URL.
    pub directory: String,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Names certified, one certificate for all of them (lowercase).
    pub domains: Vec<String>,
    /// Challenge type.
    pub challenge: Challenge,
    /// CA file for the directory's HTTPS.
    pub directory_ca: Option<PathBuf>,
    /// EAB key id and HMAC key.
    pub eab: Option<(String, String)>,
    /// First retry delay.
    pub retry: Duration,
}

impl Acme {
    /// The store of this directory under `state_dir` (see [`store_dir`]).
    pub fn store(&self, state_dir: &Path) -> PathBuf {
        store_dir(state_dir, &self.directory)
    }
}

/// The store directory of a CA directory URL: `state_dir/acme/HOST[_PORT][_PATH]`
/// (`account.json`, `cert.pem`, `key.pem`, `lock`).
pub fn store_dir(state_dir: &Path, directory: &str) -> PathBuf {
    let rest = directory
        .strip_prefix("https://")
        .unwrap_or(directory)
        .trim_end_matches('/');
    let name: String = rest
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join("acme").join(name)
}

/// Validates `[tls.acme]`; `plain` says whether a plain HTTP listener exists. Names
/// default later (from the routes), see [`default_domains`].
pub(crate) fn acme(
    r: &RawAcme,
    plain: bool,
    base: &Path,
    err: &mut dyn FnMut(String, String),
) -> Acme {
    let directory = match r.directory.as_deref() {
        None | Some(crate::defaults::tls::ACME_DIRECTORY) => LETSENCRYPT.to_owned(),
        Some("letsencrypt-staging") => LETSENCRYPT_STAGING.to_owned(),
        Some(u) if u.starts_with("https://") => u.to_owned(),
        Some(u) => {
            err(
                "tls.acme.directory".into(),
                format!("{u:?}: expected an https:// directory URL, \"letsencrypt\" or \"letsencrypt-staging\""),
            );
            LETSENCRYPT.to_owned()
        }
    };
    if let Some(e) = &r.email {
        if !e.contains('@') || e.contains(char::is_whitespace) {
            err(
                "tls.acme.email".into(),
                format!("{e:?} is not an e-mail address"),
            );
        }
    }
    let challenge = match r.challenge.as_deref() {
        None if plain => Challenge::Http01,
        None => Challenge::TlsAlpn01,
        Some("http-01") => {
            if !plain {
                err(
                    "tls.acme.challenge".into(),
                    "http-01 needs the plain listener (server.http, port 80 for a public CA)"
                        .into(),
                );
            }
            Challenge::Http01
        }
        Some("tls-alpn-01") => Challenge::TlsAlpn01,
        Some(c) => {
            err(
                "tls.acme.challenge".into(),
                format!("{c:?}: expected \"http-01\" or \"tls-alpn-01\""),
            );
            Challenge::Http01
        }
    };
    let mut domains = Vec::new();
    for (i, d) in r.domains.iter().flatten().enumerate() {
        let d = d.trim().to_ascii_lowercase();
        if d.starts_with("*.") {
            err(
                format!("tls.acme.domains[{i}]"),
                format!("{d}: a wildcard needs the DNS-01 challenge, which rampart does not answer; list the names"),
            );
        } else if d.is_empty()
            || d.parse::<std::net::IpAddr>().is_ok()
            || !d.contains('.')
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            err(
                format!("tls.acme.domains[{i}]"),
                format!("{d:?} is not a public DNS name"),
            );
        } else if !domains.contains(&d) {
            domains.push(d);
        }
    }
    let directory_ca = r.directory_ca.as_ref().map(|p| base.join(p));
    if let Some(p) = &directory_ca {
        if !p.is_file() {
            err(
                "tls.acme.directory_ca".into(),
                format!("{} is not a file", p.display()),
            );
        }
    }
    let eab = match (&r.eab_kid, &r.eab_hmac_key) {
        (Some(k), Some(h)) => Some((k.clone(), h.trim().to_owned())),
        (None, None) => None,
        _ => {
            err(
                "tls.acme.eab_kid".into(),
                "External Account Binding needs both eab_kid and eab_hmac_key".into(),
            );
            None
        }
    };
    let retry = r.retry.map_or(crate::defaults::tls::ACME_RETRY, |d| d.0);
    if retry < Duration::from_secs(1) {
        err("tls.acme.retry".into(), "at least 1s".into());
    }
    Acme {
        directory,
        email: r.email.clone(),
        domains,
        challenge,
        directory_ca,
        eab,
        retry: retry.max(Duration::from_secs(1)),
    }
}

/// The names a certificate covers when `domains` is not set: of the exact hosts of the
/// routes and of `allowed_hosts` (the caller leaves wildcards out), those that are DNS
/// names (`localhost` and IP addresses left out), each once.
pub(crate) fn default_domains<'a>(hosts: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in hosts {
        if name.contains('.')
            && name.parse::<std::net::IpAddr>().is_err()
            && !out.iter().any(|o| o == name)
        {
            out.push(name.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(r: RawAcme, plain: bool) -> (Acme, Vec<(String, String)>) {
        let mut errs = Vec::new();
        let a = acme(&r, plain, Path::new("."), &mut |k, m| errs.push((k, m)));
        (a, errs)
    }

    #[test]
    fn defaults_and_names() {
        let (a, e) = check(
            RawAcme {
                domains: Some(vec!["App.Example.com".into(), "app.example.com".into()]),
                ..RawAcme::default()
            },
            true,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(a.directory, LETSENCRYPT);
        assert_eq!(a.challenge, Challenge::Http01);
        assert_eq!(a.domains, ["app.example.com"]);
        let (a, _) = check(RawAcme::default(), false);
        assert_eq!(a.challenge, Challenge::TlsAlpn01, "no plain listener");
        let hosts = ["a.test", "localhost", "10.0.0.1", "a.test"];
        assert_eq!(default_domains(hosts.into_iter()), ["a.test"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let (_, e) = check(
            RawAcme {
                directory: Some("http://ca.test/dir".into()),
                email: Some("nobody".into()),
                domains: Some(vec!["*.example.com".into(), "10.0.0.1".into()]),
                challenge: Some("dns-01".into()),
                eab_kid: Some("kid".into()),
                ..RawAcme::default()
            },
            true,
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tls.acme.directory",
                "tls.acme.email",
                "tls.acme.challenge",
                "tls.acme.domains[0]",
                "tls.acme.domains[1]",
                "tls.acme.eab_kid"
            ]
        );
        let (_, e) = check(
            RawAcme {
                challenge: Some("http-01".into()),
                ..RawAcme::default()
            },
            false,
        );
        assert_eq!(e[0].0, "tls.acme.challenge");
    }
}
