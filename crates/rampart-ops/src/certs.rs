//! Certificates as the operator commands judge them: PEM splitting, the system's trust
//! roots, chain verification (webpki) and host-name matching. Shared by `preflight` (files
//! on disk) and `verify` (what a live server sends).

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// PEM certificates in `data`, as DER.
pub(crate) fn pem_certs(data: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(data)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// The system's trust roots (Debian, RHEL and BSD bundle paths), as DER.
pub(crate) fn system_roots() -> Vec<Vec<u8>> {
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ] {
        if let Ok(data) = std::fs::read(path) {
            return pem_certs(&data);
        }
    }
    Vec::new()
}

/// Verifies `chain` (leaf first, DER) for server authentication against `roots` (DER), at
/// a moment inside the leaf's validity (`not_before`..`not_after`, Unix seconds) closest to
/// `now`, so an expired certificate is reported once, as expired, not also as untrusted.
pub(crate) fn verify_chain(
    roots: &[Vec<u8>],
    chain: &[Vec<u8>],
    not_before: i64,
    not_after: i64,
    now: i64,
) -> Result<(), String> {
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let anchors: Vec<_> = root_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    let Some(leaf) = chain.first() else {
        return Err("no certificate".into());
    };
    let leaf = CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let when = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now.clamp(not_before + 1, (not_after - 1).max(not_before + 1))).unwrap_or(0),
    ));
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("{e:?}"))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        when,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

/// Whether the leaf (DER) is valid for `name` (a DNS name or an IP address).
pub(crate) fn names_host(leaf: &[u8], name: &str) -> bool {
    let der = CertificateDer::from(leaf);
    let Ok(ee) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ee
            .verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into()))
            .is_ok(),
        Err(_) => ServerName::try_from(name)
            .is_ok_and(|n| ee.verify_is_valid_for_subject_name(&n).is_ok()),
    }
}
