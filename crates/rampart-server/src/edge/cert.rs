//! Certificates from PEM files: a chain and its key loaded, checked against each other, and
//! what the leaf covers (names, expiry). Below both the TLS config ([`super::tls`]) and the
//! ACME store ([`super::acme`]), which load certificates the same way.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rampart_config::runtime::CertificatePaths;
use rampart_config::ConfigError;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A loaded certificate and what it covers.
#[derive(Clone)]
pub struct LoadedCert {
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// DNS names and IPs it is valid for (lowercase; wildcards as `*.example.com`).
    pub names: Vec<String>,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Where it comes from: its config key (`tls`, `tls.certificates[1]`,
    /// `tls.self_signed`, `tls.acme`).
    pub source: String,
    /// Its OCSP staple and status (shared by every load of the same leaf).
    pub ocsp: Arc<super::ocsp::Stapler>,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A fresh instance of the crypto provider every TLS config of the edge uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads a certificate chain and its key from two PEM files.
///
/// # Errors
/// The files cannot be read or do not fit each other.
pub fn load_files(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<LoadedCert, String> {
    let paths = CertificatePaths {
        key_path: "tls.acme".into(),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    };
    load_pair(&paths, provider).map_err(|e| e.message)
}

/// The crypto provider every TLS config of the edge uses.
pub fn crypto() -> Arc<CryptoProvider> {
    provider()
}

pub(crate) fn load_pair(
    paths: &CertificatePaths,
    provider: &CryptoProvider,
) -> Result<LoadedCert, ConfigError> {
    let k = &paths.key_path;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConfigError::new(
                format!("{k}.cert"),
                format!(
                    "cannot read a PEM certificate chain from {}: {e}",
                    paths.cert.display()
                ),
            )
        })?;
    if chain.is_empty() {
        return Err(ConfigError::new(
            format!("{k}.cert"),
            format!("{} holds no CERTIFICATE block", paths.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| {
        ConfigError::new(
            format!("{k}.key"),
            format!(
                "cannot read a PEM private key (PKCS#8, RSA or EC) from {}: {e}",
                paths.key.display()
            ),
        )
    })?;
    let (names, not_after) =
        cert_info(&chain[0]).map_err(|m| ConfigError::new(format!("{k}.cert"), m))?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        ConfigError::new(
            format!("{k}.key"),
            format!(
                "does not fit the certificate in {}: {e}",
                paths.cert.display()
            ),
        )
    })?;
    let key = Arc::new(certified);
    Ok(LoadedCert {
        ocsp: super::ocsp::stapler_for(&key),
        key,
        names,
        not_after,
        source: k.clone(),
    })
}

/// Names (SAN DNS and IP entries, else the CN) and expiry of a DER certificate.
///
/// # Errors
/// A message when the certificate cannot be parsed.
pub fn cert_info(der: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    Ok((names, cert.validity().not_after.timestamp()))
}
