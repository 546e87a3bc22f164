//! Trust anchors from a PEM file of CA certificates, or the system's: what every TLS
//! client and verifier of the edge starts from (upstream TLS, dependency checks, client
//! certificates).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The CA certificates of the PEM file at `path`, with the bytes read (for a digest).
///
/// # Errors
/// The file cannot be read, a PEM block does not parse, or it holds no certificate;
/// each message names the file.
pub fn from_file(path: &std::path::Path) -> Result<(RootCertStore, Vec<u8>), String> {
    let pem = std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("CA file {}: no certificate", path.display()));
    }
    Ok((roots, pem))
}

/// The system's CA certificates (those that parse).
///
/// # Errors
/// None were found.
pub fn system() -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err("no system CA certificates".into());
    }
    Ok(roots)
}
