//! RSA key generation (ring verifies RSA keys but cannot make them): random primes from
//! the OS CSPRNG with trial division and Miller-Rabin, CRT parameters, PKCS#8 and SPKI DER.
//! The result is checked by ring's own key-pair validation before it is returned.

use num_bigint::BigUint;
use ring::rand::{SecureRandom, SystemRandom};

fn random_bits(rng: &SystemRandom, bits: usize) -> Result<BigUint, String> {
    let mut buf = vec![0u8; bits.div_ceil(8)];
    rng.fill(&mut buf)
        .map_err(|_| "the OS random source failed".to_owned())?;
    let extra = buf.len() * 8 - bits;
    buf[0] &= 0xff >> extra;
    Ok(BigUint::from_bytes_be(&buf))
}

fn small_primes() -> Vec<u32> {
    let limit = 20_000usize;
    let mut sieve = vec![true; limit];
    let mut out = Vec::new();
    for i in 2..limit {
        if sieve[i] {
            out.push(u32::try_from(i).unwrap_or(2));
            let mut j = i * i;
            while j < limit {
                sieve[j] = false;
                j += i;
            }
        }
    }
    out
}

fn probably_prime(n: &BigUint, rng: &SystemRandom, rounds: usize) -> Result<bool, String> {
    let one = BigUint::from(1u32);
    let two = BigUint::from(2u32);
    let n1 = n - &one;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    let bits = usize::try_from(n.bits()).unwrap_or(0);
    'round: for _ in 0..rounds {
        let a = loop {
            let a = random_bits(rng, bits)?;
            if a >= two && a < n1 {
                break a;
            }
        };
        let mut x = a.modpow(&d, n);
        if x == one || x == n1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n1 {
                continue 'round;
            }
        }
        return Ok(false);
    }
    Ok(true)
}

fn prime(rng: &SystemRandom, bits: usize, e: &BigUint, primes: &[u32]) -> Result<BigUint, String> {
    let one = BigUint::from(1u32);
    loop {
        let mut p = random_bits(rng, bits)?;
        // Top two bits set (so p·q has exactly 2·bits bits), odd.
        p.set_bit(u64::try_from(bits - 1).unwrap_or(0), true);
        p.set_bit(u64::try_from(bits - 2).unwrap_or(0), true);
        p.set_bit(0, true);
        if primes
            .iter()
            .any(|&sp| (&p % sp) == BigUint::from(0u32) && p != BigUint::from(sp))
        {
            continue;
        }
        if num_integer::Integer::gcd(&(&p - &one), e) != one {
            continue;
        }
        if probably_prime(&p, rng, 24)? {
            return Ok(p);
        }
    }
}

// --- DER ---

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        out.extend(bytes);
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn int(n: &BigUint) -> Vec<u8> {
    let mut b = n.to_bytes_be();
    if b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    tlv(0x02, &b)
}

const RSA_ALG: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// A new RSA key pair of `bits` (2048, 3072 or 4096): (PKCS#8 DER private key, SPKI DER
/// public key).
///
/// # Errors
/// An unsupported size, or the OS random source failing.
pub(crate) fn generate(bits: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
    if ![2048, 3072, 4096].contains(&bits) {
        return Err(format!("RSA keys are 2048, 3072 or 4096 bits, not {bits}"));
    }
    let rng = SystemRandom::new();
    let primes = small_primes();
    let e = BigUint::from(65_537u32);
    let one = BigUint::from(1u32);
    loop {
        let p = prime(&rng, bits / 2, &e, &primes)?;
        let q = prime(&rng, bits / 2, &e, &primes)?;
        if p == q {
            continue;
        }
        let (p, q) = if p > q { (p, q) } else { (q, p) };
        let n = &p * &q;
        let p1 = &p - &one;
        let q1 = &q - &one;
        let lcm = num_integer::Integer::lcm(&p1, &q1);
        let Some(d) = e.modinv(&lcm) else { continue };
        let Some(qinv) = q.modinv(&p) else { continue };
        let dp = &d % &p1;
        let dq = &d % &q1;
        let mut body = tlv(0x02, &[0]);
        for x in [&n, &e, &d, &p, &q, &dp, &dq, &qinv] {
            body.extend(int(x));
        }
        let pkcs1 = tlv(0x30, &body);
        let mut pk8 = tlv(0x02, &[0]);
        pk8.extend_from_slice(RSA_ALG);
        pk8.extend(tlv(0x04, &pkcs1));
        let private = tlv(0x30, &pk8);
        let mut pubkey = int(&n);
        pubkey.extend(int(&e));
        let rsa_pub = tlv(0x30, &pubkey);
        let mut bits_body = vec![0u8];
        bits_body.extend(rsa_pub);
        let mut spki = RSA_ALG.to_vec();
        spki.extend(tlv(0x03, &bits_body));
        let public = tlv(0x30, &spki);
        ring::rsa::KeyPair::from_pkcs8(&private)
            .map_err(|e| format!("generated key failed validation: {e}"))?;
        return Ok((private, public));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_accepts_the_key_and_it_signs() {
        let (private, public) = super::generate(2048).unwrap();
        let pair = ring::rsa::KeyPair::from_pkcs8(&private).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0u8; pair.public().modulus_len()];
        assert!(pair
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, b"hello", &mut sig)
            .is_ok());
        // The SPKI's key verifies the signature.
        use x509_parser::prelude::FromDer as _;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&public).unwrap();
        let v = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            spki.subject_public_key.data.to_vec(),
        );
        assert!(v.verify(b"hello", &sig).is_ok());
    }
}
