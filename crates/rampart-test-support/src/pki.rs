//! A throw-away CA and leaf certificates (rcgen), written as PEM files.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;

use crate::TempDir;

pub struct Pki {
    pub dir: TempDir,
    pub ca_der: CertificateDer<'static>,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate's files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Its serial number (to revoke it).
    pub serial: u64,
}

impl Pki {
    pub fn new() -> Self {
        Self::named("rampart test CA")
    }

    /// A CA whose subject's common name is `cn`.
    pub fn named(cn: &str) -> Self {
        let dir = TempDir::new("pki");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_der = issuer.der().clone();
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).unwrap();
        Self {
            dir,
            ca_der,
            issuer,
        }
    }

    /// A leaf for `names` (ECDSA P-256, PKCS#8 key), with the CA appended to the chain.
    pub fn leaf(&self, file_stem: &str, names: &[&str]) -> Leaf {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        self.sign(file_stem, params)
    }

    /// A client certificate (extended key usage clientAuth) for common name `cn` and
    /// e-mail `email`.
    pub fn client(&self, file_stem: &str, cn: &str, email: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .subject_alt_names
            .push(SanType::Rfc822Name(email.try_into().unwrap()));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(file_stem, params)
    }

    /// A CRL of this CA revoking `serials`, written to `file_name` (PEM), due to be
    /// replaced in a week.
    pub fn crl(&self, file_name: &str, serials: &[u64]) -> PathBuf {
        self.crl_until(file_name, serials, 7 * 86_400)
    }

    /// As [`Pki::crl`], with its `nextUpdate` `next_update` seconds from now (negative:
    /// a stale CRL).
    pub fn crl_until(&self, file_name: &str, serials: &[u64], next_update: i64) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let this_update = now - time::Duration::days(30);
        let params = CertificateRevocationListParams {
            this_update,
            next_update: now + time::Duration::seconds(next_update),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: this_update,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).unwrap();
        self.dir.write(file_name, crl.pem().unwrap())
    }

    fn sign(&self, file_stem: &str, mut params: CertificateParams) -> Leaf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let serial = 0x1000
            + u64::from(std::process::id()) * 1_000_000
            + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = format!("{}{}", cert.pem(), self.issuer.pem());
        let cert_path = self.dir.write(&format!("{file_stem}.crt"), chain);
        let key_path = self
            .dir
            .write(&format!("{file_stem}.key"), key.serialize_pem());
        Leaf {
            cert: cert_path,
            key: key_path,
            serial,
        }
    }

    /// A leaf for `names` valid from `from` to `to` (seconds from now; negative is the
    /// past), key file mode 0600.
    pub fn leaf_valid(&self, file_stem: &str, names: &[&str], from: i64, to: i64) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        params.not_before = time::OffsetDateTime::from_unix_timestamp(now + from).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(now + to).unwrap();
        let leaf = self.sign(file_stem, params);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&leaf.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        leaf
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}
