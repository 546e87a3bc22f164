//! RSA key generation on aws-lc-rs (AWS-LC's constant-time key generation with its own
//! pairwise consistency check): PKCS#8 v1 and SPKI DER, what `openssl genpkey` writes.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;

/// A new RSA key pair of `bits` (2048, 3072 or 4096): (PKCS#8 DER private key, SPKI DER
/// public key).
///
/// # Errors
/// An unsupported size, or the library failing to make or encode the key.
pub(crate) fn generate(bits: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => return Err(format!("RSA keys are 2048, 3072 or 4096 bits, not {bits}")),
    };
    let pair = KeyPair::generate(size).map_err(|_| "RSA key generation failed".to_owned())?;
    let private = pair
        .as_der()
        .map_err(|_| "the RSA private key could not be encoded".to_owned())?;
    let public = pair
        .public_key()
        .as_der()
        .map_err(|_| "the RSA public key could not be encoded".to_owned())?;
    Ok((private.as_ref().to_vec(), public.as_ref().to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_key_signs_and_its_spki_verifies() {
        let (private, public) = super::generate(2048).unwrap();
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&private).unwrap();
        assert_eq!(pair.public_modulus_len(), 256);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0u8; pair.public_modulus_len()];
        assert!(pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &rng,
                b"hello",
                &mut sig
            )
            .is_ok());
        // The SPKI's key verifies the signature.
        use x509_parser::prelude::FromDer as _;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&public).unwrap();
        let v = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            spki.subject_public_key.data.to_vec(),
        );
        assert!(v.verify(b"hello", &sig).is_ok());
        assert!(super::generate(1024).is_err());
    }
}
