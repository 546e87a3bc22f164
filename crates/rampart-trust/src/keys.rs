//! Signing keys and detached signatures, on aws-lc-rs: Ed25519 (the default), RSA with
//! PSS or PKCS#1 v1.5 (RS256) over SHA-256, and ECDSA P-256 (ES256). Keys are PEM, as
//! `rampart secrets generate`, `openssl genpkey` and Python's `cryptography` write them:
//! PKCS#8, PKCS#1 RSA or SEC1 EC private keys; SPKI or PKCS#1 RSA public keys.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// RSASSA-PSS, SHA-256, salt of the hash's length.
    RsaPss,
    /// RSASSA-PKCS1-v1_5, SHA-256 (JWT's RS256).
    Rs256,
    /// ECDSA P-256, SHA-256, ASN.1 DER signature.
    Es256,
}

impl Alg {
    /// Its name (`ed25519`, `rsa-pss`, `rs256`, `es256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::RsaPss => "rsa-pss",
            Self::Rs256 => "rs256",
            Self::Es256 => "es256",
        }
    }

    /// Parses a name as [`Alg::name`] writes it (case-insensitive; `ps256` is `rsa-pss`).
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" | "eddsa" => Ok(Self::Ed25519),
            "rsa-pss" | "ps256" | "pss" => Ok(Self::RsaPss),
            "rs256" | "rsa" => Ok(Self::Rs256),
            "es256" | "ecdsa" => Ok(Self::Es256),
            other => Err(format!(
                "unknown signature algorithm {other:?}: ed25519, rsa-pss, rs256 or es256"
            )),
        }
    }
}

enum Private {
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
    Ec(signature::EcdsaKeyPair),
}

/// A private key that signs.
pub struct SigningKey(Private);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(")?;
        f.write_str(match self.0 {
            Private::Ed25519(_) => "ed25519",
            Private::Rsa(_) => "rsa",
            Private::Ec(_) => "ec",
        })?;
        f.write_str(")")
    }
}

impl SigningKey {
    /// Reads a PEM private key.
    ///
    /// # Errors
    /// Not PEM, not a private key, or a kind other than Ed25519, RSA (2048+) and EC P-256.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"))?;
        let bytes = der.secret_der();
        let key = match &der {
            PrivateKeyDer::Pkcs1(_) => Private::Rsa(
                signature::RsaKeyPair::from_der(bytes)
                    .map_err(|e| format!("not a usable RSA key: {e}"))?,
            ),
            PrivateKeyDer::Sec1(_) => Private::Ec(
                signature::EcdsaKeyPair::from_private_key_der(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    bytes,
                )
                .map_err(|e| format!("not a usable EC P-256 key: {e}"))?,
            ),
            _ => {
                if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes) {
                    Private::Ed25519(k)
                } else if let Ok(k) = signature::RsaKeyPair::from_pkcs8(bytes) {
                    Private::Rsa(k)
                } else if let Ok(k) = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    bytes,
                ) {
                    Private::Ec(k)
                } else {
                    return Err(
                        "a PKCS#8 key that is not Ed25519, RSA (2048 bits or more) or EC P-256"
                            .into(),
                    );
                }
            }
        };
        Ok(Self(key))
    }

    /// The algorithm used when none is asked for: Ed25519, RSA-PSS or ES256 by key type.
    pub fn default_alg(&self) -> Alg {
        match self.0 {
            Private::Ed25519(_) => Alg::Ed25519,
            Private::Rsa(_) => Alg::RsaPss,
            Private::Ec(_) => Alg::Es256,
        }
    }

    /// Signs `msg` with `alg` (`None`: [`SigningKey::default_alg`]).
    ///
    /// # Errors
    /// An algorithm the key cannot make, or the library failing.
    pub fn sign(&self, msg: &[u8], alg: Option<Alg>) -> Result<(Alg, Vec<u8>), String> {
        let alg = alg.unwrap_or_else(|| self.default_alg());
        let rng = SystemRandom::new();
        let sig = match (&self.0, alg) {
            (Private::Ed25519(k), Alg::Ed25519) => k.sign(msg).as_ref().to_vec(),
            (Private::Rsa(k), Alg::RsaPss | Alg::Rs256) => {
                let padding: &dyn signature::RsaEncoding = if alg == Alg::RsaPss {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &rng, msg, &mut sig)
                    .map_err(|e| format!("RSA signing failed: {e}"))?;
                sig
            }
            (Private::Ec(k), Alg::Es256) => k
                .sign(&rng, msg)
                .map_err(|e| format!("ECDSA signing failed: {e}"))?
                .as_ref()
                .to_vec(),
            (_, alg) => {
                return Err(format!(
                    "this {} key cannot sign {}",
                    self.default_alg().name(),
                    alg.name()
                ))
            }
        };
        Ok((alg, sig))
    }

    /// The public key, SPKI DER.
    pub fn public_spki(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer as _;
        match &self.0 {
            Private::Ed25519(k) => k
                .public_key()
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .unwrap_or_default(),
            Private::Rsa(k) => k
                .public_key()
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .unwrap_or_default(),
            Private::Ec(k) => k
                .public_key()
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .unwrap_or_default(),
        }
    }
}

/// A public key that verifies.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    kind: KeyKind,
    /// The key as the algorithms take it (Ed25519 point, PKCS#1 RSA, EC point).
    raw: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Ed25519,
    Rsa,
    EcP256,
}

impl VerifyingKey {
    /// Reads a PEM public key (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// Not PEM, or a key other than Ed25519, RSA and EC P-256.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("BEGIN RSA PUBLIC KEY") {
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map_err(|e| format!("not a PEM RSA public key: {e}"))?;
            return Ok(Self {
                kind: KeyKind::Rsa,
                raw,
            });
        }
        if text.contains("BEGIN CERTIFICATE") {
            return Err(
                "a certificate, not a public key: extract it with `openssl x509 -pubkey -noout`"
                    .into(),
            );
        }
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM public key (SPKI): {e}"))?;
        Self::from_spki(spki.as_ref())
    }

    /// Reads an SPKI DER public key.
    ///
    /// # Errors
    /// Not SPKI, or a key other than Ed25519, RSA and EC P-256.
    pub fn from_spki(der: &[u8]) -> Result<Self, String> {
        use x509_parser::prelude::FromDer as _;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| format!("not an SPKI public key: {e}"))?;
        let kind = match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => KeyKind::Ed25519,
            "1.2.840.113549.1.1.1" => KeyKind::Rsa,
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                if curve.as_deref() != Some("1.2.840.10045.3.1.7") {
                    return Err("an EC key on a curve other than P-256".into());
                }
                KeyKind::EcP256
            }
            other => return Err(format!("unsupported public key type {other}")),
        };
        Ok(Self {
            kind,
            raw: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Verifies `sig` over `msg`: Ed25519 keys by Ed25519, RSA keys by PSS or RS256
    /// (either is accepted), EC keys by ES256. Returns the algorithm that verified.
    ///
    /// # Errors
    /// The signature does not verify.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<Alg, String> {
        let candidates: &[(Alg, &dyn signature::VerificationAlgorithm)] = match self.kind {
            KeyKind::Ed25519 => &[(Alg::Ed25519, &signature::ED25519)],
            KeyKind::Rsa => &[
                (Alg::RsaPss, &signature::RSA_PSS_2048_8192_SHA256),
                (Alg::Rs256, &signature::RSA_PKCS1_2048_8192_SHA256),
            ],
            KeyKind::EcP256 => &[(Alg::Es256, &signature::ECDSA_P256_SHA256_ASN1)],
        };
        for (alg, v) in candidates {
            if signature::UnparsedPublicKey::new(*v, &self.raw)
                .verify(msg, sig)
                .is_ok()
            {
                return Ok(*alg);
            }
        }
        Err(format!(
            "the signature does not verify with this {} public key",
            match self.kind {
                KeyKind::Ed25519 => "Ed25519",
                KeyKind::Rsa => "RSA",
                KeyKind::EcP256 => "EC P-256",
            }
        ))
    }
}

/// A detached signature as written to a `.sig` file: standard base64 and a newline.
pub fn encode_signature(sig: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sig) + "\n"
}

/// A detached signature file's bytes: base64 (standard or URL-safe, whitespace ignored)
/// as [`encode_signature`] writes, or raw bytes as `openssl pkeyutl -sign` writes.
pub fn decode_signature(file: &[u8]) -> Vec<u8> {
    let text: String = String::from_utf8_lossy(file)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        });
    match b64 {
        Ok(sig) if std::str::from_utf8(file).is_ok() && !sig.is_empty() => sig,
        _ => file.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for c in b.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(c).unwrap());
            out.push('\n');
        }
        out + &format!("-----END {label}-----\n")
    }

    #[test]
    fn each_key_type_signs_and_verifies_and_refuses_tampering() {
        let ed = signature::Ed25519KeyPair::generate().unwrap();
        let ed_pem = pem("PRIVATE KEY", ed.to_pkcs8v1().unwrap().as_ref());
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_pem = {
            use aws_lc_rs::encoding::AsDer as _;
            pem("PRIVATE KEY", rsa.as_der().unwrap().as_ref())
        };
        let ec =
            signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let ec_pem = { pem("PRIVATE KEY", ec.to_pkcs8v1().unwrap().as_ref()) };
        for (private, alg) in [
            (&ed_pem, Alg::Ed25519),
            (&rsa_pem, Alg::RsaPss),
            (&rsa_pem, Alg::Rs256),
            (&ec_pem, Alg::Es256),
        ] {
            let key = SigningKey::from_pem(private.as_bytes()).unwrap();
            let (used, sig) = key.sign(b"manifest", Some(alg)).unwrap();
            assert_eq!(used, alg);
            let public =
                VerifyingKey::from_pem(pem("PUBLIC KEY", &key.public_spki()).as_bytes()).unwrap();
            assert_eq!(public.verify(b"manifest", &sig), Ok(alg));
            assert!(public.verify(b"manifesT", &sig).is_err());
            let file = encode_signature(&sig);
            assert_eq!(decode_signature(file.as_bytes()), sig);
            assert_eq!(decode_signature(&sig), sig);
        }
        let ed = SigningKey::from_pem(ed_pem.as_bytes()).unwrap();
        assert!(ed.sign(b"x", Some(Alg::Rs256)).is_err());
        assert!(SigningKey::from_pem(b"nonsense").is_err());
        assert!(VerifyingKey::from_pem(b"nonsense").is_err());
        // A public key of another pair refuses.
        let other = SigningKey::from_pem(ec_pem.as_bytes()).unwrap();
        let (_, sig) = ed.sign(b"m", None).unwrap();
        let wrong = VerifyingKey::from_spki(&other.public_spki()).unwrap();
        assert!(wrong.verify(b"m", &sig).is_err());
    }
}
