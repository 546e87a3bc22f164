//! A throw-away CA and leaf certificates (rcgen), written as PEM files.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
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
}

impl Pki {
    pub fn new() -> Self {
        let dir = TempDir::new("pki");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rampart test CA");
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

    fn sign(&self, file_stem: &str, params: CertificateParams) -> Leaf {
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
