//! The TLS grade of the SSL Labs Server Rating Guide as testssl.sh implements it (check
//! catalog A2): 30 % protocol + 30 % key exchange + 40 % cipher strength, then the caps.

use super::hello::{Enc, Kx, Suite, SSL3, TLS10, TLS11, TLS12};

/// TLS 1.3 on the wire.
pub const TLS13: u16 = 0x0304;

/// A key's algorithm and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// RSA (or DSA, or finite-field DH) of this many bits.
    Rsa(u32),
    /// Elliptic curve of this many bits.
    Ec(u32),
}

/// What the probes found.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Versions offered (wire values; TLS 1.3 = 0x0304).
    pub protocols: Vec<u16>,
    /// SSLv3–TLS 1.2 suites accepted, per version.
    pub suites: Vec<(u16, &'static Suite)>,
    /// TLS 1.3 suites accepted: name and key bits.
    pub tls13_suites: Vec<(&'static str, u16)>,
    /// The certificate's key.
    pub cert_key: Option<Key>,
    /// The weakest ephemeral key exchange seen (ECDHE group or DHE prime).
    pub weakest_kx: Option<Key>,
    /// Certificate expired or not yet valid.
    pub cert_expired: bool,
    /// Chain does not verify (self-signed, unknown CA), and trust was checked.
    pub cert_untrusted: bool,
    /// The certificate does not name the host.
    pub name_mismatch: bool,
    /// Signature hash of the leaf: `Some("SHA-1")`, `Some("MD5")`.
    pub weak_signature: Option<&'static str>,
    /// HSTS max-age seen on the HTTPS answer.
    pub hsts_max_age: Option<u64>,
    /// The server chose TLS compression.
    pub compression: bool,
}

/// The grade and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grade {
    /// Letter (`A+` … `F`, `T` untrusted, `M` name mismatch).
    pub grade: String,
    /// Numeric score before caps.
    pub score: u32,
    /// Protocol score.
    pub protocol: u32,
    /// Key exchange score.
    pub key_exchange: u32,
    /// Cipher strength score.
    pub cipher: u32,
    /// Caps that applied: (cap, reason).
    pub caps: Vec<(&'static str, String)>,
    /// Grade warnings (A+ becomes A-).
    pub warnings: Vec<String>,
}

fn protocol_points(v: u16) -> u32 {
    match v {
        SSL3 => 80,
        TLS10 => 90,
        TLS11 => 95,
        _ => 100,
    }
}

/// Key-exchange points for a key (SSL Labs table).
pub fn key_points(k: Key) -> u32 {
    match k {
        Key::Rsa(b) => match b {
            0..512 => 20,
            512..1024 => 40,
            1024..2048 => 80,
            2048..4096 => 90,
            _ => 100,
        },
        Key::Ec(b) => match b {
            0..110 => 20,
            110..123 => 40,
            123..163 => 80,
            163..225 => 90,
            _ => 100,
        },
    }
}

fn cipher_points(bits: u16) -> u32 {
    match bits {
        0 => 0,
        1..128 => 20,
        128..256 => 80,
        _ => 100,
    }
}

const ORDER: &[&str] = &["A+", "A", "A-", "B", "C", "D", "E", "F"];

fn rank(g: &str) -> usize {
    ORDER.iter().position(|x| *x == g).unwrap_or(ORDER.len())
}

/// Rates `f`.
pub fn rate(f: &Facts) -> Grade {
    let mut caps: Vec<(&'static str, String)> = Vec::new();
    if f.protocols.is_empty() {
        return Grade {
            grade: "F".into(),
            score: 0,
            protocol: 0,
            key_exchange: 0,
            cipher: 0,
            caps: vec![("F", "no TLS protocol offered".into())],
            warnings: Vec::new(),
        };
    }
    let best = f.protocols.iter().copied().max().unwrap_or(0);
    let worst = f.protocols.iter().copied().min().unwrap_or(0);
    let protocol = (protocol_points(best) + protocol_points(worst)) / 2;
    let mut kx = f.cert_key.map_or(100, key_points);
    if let Some(k) = f.weakest_kx {
        kx = kx.min(key_points(k));
    }
    let bits: Vec<u16> = f
        .suites
        .iter()
        .map(|(_, s)| s.bits)
        .chain(f.tls13_suites.iter().map(|(_, b)| *b))
        .collect();
    let strongest = bits.iter().copied().max().unwrap_or(0);
    let weakest = bits.iter().copied().min().unwrap_or(0);
    let cipher = (cipher_points(strongest) + cipher_points(weakest)) / 2;
    let score = if protocol == 0 || kx == 0 || cipher == 0 {
        0
    } else {
        (protocol * 30 + kx * 30 + cipher * 40) / 100
    };
    let letter = match score {
        80.. => "A",
        65..80 => "B",
        50..65 => "C",
        35..50 => "D",
        20..35 => "E",
        _ => "F",
    };
    let has = |v: u16| f.protocols.contains(&v);
    if has(SSL3) {
        if best == SSL3 {
            caps.push(("F", "SSLv3 is the best protocol offered".into()));
        } else {
            caps.push(("B", "SSLv3 offered".into()));
        }
    }
    if has(TLS10) || has(TLS11) {
        let names: Vec<&str> = [(TLS10, "TLS 1.0"), (TLS11, "TLS 1.1")]
            .iter()
            .filter(|(v, _)| has(*v))
            .map(|(_, n)| *n)
            .collect();
        caps.push(("B", format!("{} offered", names.join(" and "))));
    }
    if !has(TLS12) && !has(TLS13) {
        caps.push(("C", "neither TLS 1.2 nor TLS 1.3 offered".into()));
    }
    let suites = |p: &dyn Fn(&Suite) -> bool| {
        let mut names: Vec<&str> = f
            .suites
            .iter()
            .filter(|(_, s)| p(s))
            .map(|(_, s)| s.openssl)
            .collect();
        names.dedup();
        names
    };
    let export = suites(&|s| s.enc == Enc::Export);
    if !export.is_empty() {
        caps.push(("F", format!("export suites offered: {}", export.join(", "))));
    }
    let tiny = suites(&|s| s.bits < 112);
    if !tiny.is_empty() && export.is_empty() {
        caps.push(("F", format!("suites under 112 bits: {}", tiny.join(", "))));
    }
    let rc4 = suites(&|s| s.enc == Enc::Rc4);
    if !rc4.is_empty() {
        caps.push(("B", format!("RC4 offered: {}", rc4.join(", "))));
    }
    let sweet_old = f
        .suites
        .iter()
        .any(|(v, s)| s.enc == Enc::Block64 && *v <= TLS11);
    if sweet_old {
        caps.push(("C", "a 64-bit block cipher with TLS 1.1 or older".into()));
    }
    let fs = f
        .suites
        .iter()
        .any(|(_, s)| matches!(s.kx, Kx::Ecdhe | Kx::Dhe))
        || !f.tls13_suites.is_empty();
    if !fs {
        caps.push(("B", "no forward-secret key exchange".into()));
    }
    if kx <= 40 {
        caps.push(("F", format!("key exchange scores {kx}")));
    } else if kx <= 80 {
        caps.push(("B", format!("key exchange scores {kx}")));
    }
    if f.compression {
        caps.push(("C", "TLS compression (CRIME)".into()));
    }
    match f.weak_signature {
        Some("SHA-1") => caps.push(("T", "certificate signed with SHA-1".into())),
        Some(h) => caps.push(("F", format!("certificate signed with {h}"))),
        None => {}
    }
    if f.cert_expired {
        caps.push(("T", "certificate expired or not yet valid".into()));
    }
    if f.cert_untrusted {
        caps.push(("T", "certificate chain not trusted".into()));
    }
    if f.name_mismatch {
        caps.push(("M", "certificate does not name the host".into()));
    }
    let mut warnings = Vec::new();
    if !has(TLS13) {
        warnings.push("TLS 1.3 not offered".into());
    }
    match f.hsts_max_age {
        None => warnings.push("no HSTS".into()),
        Some(a) if a < 15_552_000 => warnings.push(format!("HSTS max-age {a} under 180 days")),
        _ => {}
    }
    let grade = if caps.iter().any(|(c, _)| *c == "T") {
        "T".to_owned()
    } else if caps.iter().any(|(c, _)| *c == "M") {
        "M".to_owned()
    } else {
        let capped =
            caps.iter()
                .map(|(c, _)| *c)
                .fold(letter, |g, c| if rank(c) > rank(g) { c } else { g });
        if capped == "A" && caps.is_empty() {
            if warnings.is_empty() { "A+" } else { "A-" }.to_owned()
        } else {
            capped.to_owned()
        }
    };
    Grade {
        grade,
        score,
        protocol,
        key_exchange: kx,
        cipher,
        caps,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::super::hello::suite;
    use super::*;

    fn modern() -> Facts {
        Facts {
            protocols: vec![TLS12, TLS13],
            suites: [0xC02B, 0xC02C, 0xCCA9]
                .iter()
                .map(|id| (TLS12, suite(*id).unwrap()))
                .collect(),
            tls13_suites: vec![
                ("TLS13_AES_128_GCM_SHA256", 128),
                ("TLS13_AES_256_GCM_SHA384", 256),
            ],
            cert_key: Some(Key::Ec(256)),
            weakest_kx: Some(Key::Ec(253)),
            hsts_max_age: Some(63_072_000),
            ..Facts::default()
        }
    }

    #[test]
    fn a_modern_server_gets_a_plus() {
        // protocol (100 + 100) / 2 = 100; key exchange P-256 and x25519: 100;
        // cipher (256 bits: 100 + 128 bits: 80) / 2 = 90; 30 + 30 + 36 = 96 -> A, no caps,
        // no warnings -> A+.
        let g = rate(&modern());
        assert_eq!(
            (g.protocol, g.key_exchange, g.cipher, g.score),
            (100, 100, 90, 96)
        );
        assert_eq!(g.grade, "A+");
        let mut f = modern();
        f.hsts_max_age = None;
        assert_eq!(rate(&f).grade, "A-");
    }

    #[test]
    fn old_protocols_and_cbc_cap_at_b() {
        // TLS 1.0 + 1.2 with RSA 2048: protocol (100 + 90) / 2 = 95; key 2048 -> 90;
        // cipher (256 -> 100, 128 -> 80) / 2 = 90: 28 + 27 + 36 = 91 -> A, capped B.
        let mut f = modern();
        f.protocols = vec![TLS10, TLS11, TLS12];
        f.tls13_suites.clear();
        f.cert_key = Some(Key::Rsa(2048));
        f.suites = [0xC02F, 0xC030, 0xC013]
            .iter()
            .map(|id| (TLS12, suite(*id).unwrap()))
            .chain([(TLS10, suite(0xC013).unwrap())])
            .collect();
        let g = rate(&f);
        assert_eq!((g.protocol, g.key_exchange, g.cipher), (95, 90, 90));
        assert_eq!(g.score, 91);
        assert_eq!(g.grade, "B");
        assert!(g
            .caps
            .iter()
            .any(|(c, r)| *c == "B" && r == "TLS 1.0 and TLS 1.1 offered"));
    }

    #[test]
    fn trust_name_and_strength_caps() {
        let mut f = modern();
        f.cert_untrusted = true;
        assert_eq!(rate(&f).grade, "T");
        let mut f = modern();
        f.name_mismatch = true;
        assert_eq!(rate(&f).grade, "M");
        let mut f = modern();
        f.cert_key = Some(Key::Rsa(1024));
        assert_eq!(rate(&f).grade, "B");
        f.suites.push((TLS12, suite(0x0003).unwrap()));
        assert_eq!(rate(&f).grade, "F");
    }
}
