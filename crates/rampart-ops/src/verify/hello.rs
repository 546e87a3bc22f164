//! Raw TLS ClientHello probes, for what rustls cannot speak: SSLv3, TLS 1.0 and 1.1, and
//! TLS 1.2 suites one at a time (including ones no modern library offers). Only the
//! server's first flight is read (ServerHello, Certificate, ServerKeyExchange); no
//! handshake is ever completed, so no key is made and nothing is decrypted.

use std::io::{Read, Write};

use super::client::Client;

/// Protocol versions on the wire.
pub const SSL3: u16 = 0x0300;
/// TLS 1.0.
pub const TLS10: u16 = 0x0301;
/// TLS 1.1.
pub const TLS11: u16 = 0x0302;
/// TLS 1.2.
pub const TLS12: u16 = 0x0303;

/// `TLS_FALLBACK_SCSV` (RFC 7507).
const FALLBACK_SCSV: u16 = 0x5600;

/// Key exchange of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kx {
    /// Ephemeral elliptic-curve Diffie-Hellman (forward secret).
    Ecdhe,
    /// Ephemeral finite-field Diffie-Hellman (forward secret).
    Dhe,
    /// RSA key transport (no forward secrecy).
    Rsa,
    /// Anonymous (no authentication at all).
    Anon,
}

/// Bulk cipher family of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// AES-GCM, ChaCha20-Poly1305: authenticated encryption.
    Aead,
    /// A block cipher in CBC mode with a 128-bit block (AES, Camellia).
    Cbc,
    /// A 64-bit block cipher (3DES, IDEA, DES): SWEET32.
    Block64,
    /// RC4.
    Rc4,
    /// No encryption.
    Null,
    /// Export-grade (40/56-bit keys).
    Export,
}

/// A cipher suite rampart knows how to name and judge.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// Code point.
    pub id: u16,
    /// OpenSSL name (what nginx and HAProxy configs use).
    pub openssl: &'static str,
    /// Key exchange.
    pub kx: Kx,
    /// Cipher family.
    pub enc: Enc,
    /// Effective key bits (3DES: 112).
    pub bits: u16,
}

const fn s(id: u16, openssl: &'static str, kx: Kx, enc: Enc, bits: u16) -> Suite {
    Suite {
        id,
        openssl,
        kx,
        enc,
        bits,
    }
}

/// Suites probed for SSLv3 to TLS 1.2: the modern ones, the legacy CBC ones, and every
/// category testssl.sh rates (NULL, anonymous, export, DES, RC4, 3DES, IDEA).
pub const SUITES: &[Suite] = &[
    s(
        0xC02B,
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        Kx::Ecdhe,
        Enc::Aead,
        128,
    ),
    s(
        0xC02C,
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        Kx::Ecdhe,
        Enc::Aead,
        256,
    ),
    s(
        0xC02F,
        "ECDHE-RSA-AES128-GCM-SHA256",
        Kx::Ecdhe,
        Enc::Aead,
        128,
    ),
    s(
        0xC030,
        "ECDHE-RSA-AES256-GCM-SHA384",
        Kx::Ecdhe,
        Enc::Aead,
        256,
    ),
    s(
        0xCCA9,
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        Kx::Ecdhe,
        Enc::Aead,
        256,
    ),
    s(
        0xCCA8,
        "ECDHE-RSA-CHACHA20-POLY1305",
        Kx::Ecdhe,
        Enc::Aead,
        256,
    ),
    s(0x009E, "DHE-RSA-AES128-GCM-SHA256", Kx::Dhe, Enc::Aead, 128),
    s(0x009F, "DHE-RSA-AES256-GCM-SHA384", Kx::Dhe, Enc::Aead, 256),
    s(0xCCAA, "DHE-RSA-CHACHA20-POLY1305", Kx::Dhe, Enc::Aead, 256),
    s(0x009C, "AES128-GCM-SHA256", Kx::Rsa, Enc::Aead, 128),
    s(0x009D, "AES256-GCM-SHA384", Kx::Rsa, Enc::Aead, 256),
    s(
        0xC023,
        "ECDHE-ECDSA-AES128-SHA256",
        Kx::Ecdhe,
        Enc::Cbc,
        128,
    ),
    s(
        0xC024,
        "ECDHE-ECDSA-AES256-SHA384",
        Kx::Ecdhe,
        Enc::Cbc,
        256,
    ),
    s(0xC027, "ECDHE-RSA-AES128-SHA256", Kx::Ecdhe, Enc::Cbc, 128),
    s(0xC028, "ECDHE-RSA-AES256-SHA384", Kx::Ecdhe, Enc::Cbc, 256),
    s(0xC009, "ECDHE-ECDSA-AES128-SHA", Kx::Ecdhe, Enc::Cbc, 128),
    s(0xC00A, "ECDHE-ECDSA-AES256-SHA", Kx::Ecdhe, Enc::Cbc, 256),
    s(0xC013, "ECDHE-RSA-AES128-SHA", Kx::Ecdhe, Enc::Cbc, 128),
    s(0xC014, "ECDHE-RSA-AES256-SHA", Kx::Ecdhe, Enc::Cbc, 256),
    s(0x0067, "DHE-RSA-AES128-SHA256", Kx::Dhe, Enc::Cbc, 128),
    s(0x006B, "DHE-RSA-AES256-SHA256", Kx::Dhe, Enc::Cbc, 256),
    s(0x0033, "DHE-RSA-AES128-SHA", Kx::Dhe, Enc::Cbc, 128),
    s(0x0039, "DHE-RSA-AES256-SHA", Kx::Dhe, Enc::Cbc, 256),
    s(0x003C, "AES128-SHA256", Kx::Rsa, Enc::Cbc, 128),
    s(0x003D, "AES256-SHA256", Kx::Rsa, Enc::Cbc, 256),
    s(0x002F, "AES128-SHA", Kx::Rsa, Enc::Cbc, 128),
    s(0x0035, "AES256-SHA", Kx::Rsa, Enc::Cbc, 256),
    s(0x0041, "CAMELLIA128-SHA", Kx::Rsa, Enc::Cbc, 128),
    s(0x0084, "CAMELLIA256-SHA", Kx::Rsa, Enc::Cbc, 256),
    s(
        0xC012,
        "ECDHE-RSA-DES-CBC3-SHA",
        Kx::Ecdhe,
        Enc::Block64,
        112,
    ),
    s(0x0016, "EDH-RSA-DES-CBC3-SHA", Kx::Dhe, Enc::Block64, 112),
    s(0x000A, "DES-CBC3-SHA", Kx::Rsa, Enc::Block64, 112),
    s(0x0007, "IDEA-CBC-SHA", Kx::Rsa, Enc::Block64, 128),
    s(0x0009, "DES-CBC-SHA", Kx::Rsa, Enc::Block64, 56),
    s(0xC011, "ECDHE-RSA-RC4-SHA", Kx::Ecdhe, Enc::Rc4, 128),
    s(0x0005, "RC4-SHA", Kx::Rsa, Enc::Rc4, 128),
    s(0x0004, "RC4-MD5", Kx::Rsa, Enc::Rc4, 128),
    s(0x0003, "EXP-RC4-MD5", Kx::Rsa, Enc::Export, 40),
    s(0x0008, "EXP-DES-CBC-SHA", Kx::Rsa, Enc::Export, 40),
    s(0x0006, "EXP-RC2-CBC-MD5", Kx::Rsa, Enc::Export, 40),
    s(0x0014, "EXP-EDH-RSA-DES-CBC-SHA", Kx::Dhe, Enc::Export, 40),
    s(0x0001, "NULL-MD5", Kx::Rsa, Enc::Null, 0),
    s(0x0002, "NULL-SHA", Kx::Rsa, Enc::Null, 0),
    s(0x003B, "NULL-SHA256", Kx::Rsa, Enc::Null, 0),
    s(0xC010, "ECDHE-RSA-NULL-SHA", Kx::Ecdhe, Enc::Null, 0),
    s(0xC006, "ECDHE-ECDSA-NULL-SHA", Kx::Ecdhe, Enc::Null, 0),
    s(0x0018, "ADH-RC4-MD5", Kx::Anon, Enc::Rc4, 128),
    s(0x001B, "ADH-DES-CBC3-SHA", Kx::Anon, Enc::Block64, 112),
    s(0x0034, "ADH-AES128-SHA", Kx::Anon, Enc::Cbc, 128),
    s(0x00A6, "ADH-AES128-GCM-SHA256", Kx::Anon, Enc::Aead, 128),
    s(0xC018, "AECDH-AES128-SHA", Kx::Anon, Enc::Cbc, 128),
    s(0xC019, "AECDH-AES256-SHA", Kx::Anon, Enc::Cbc, 256),
];

/// The suite with this code point.
pub fn suite(id: u16) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.id == id)
}

/// A protocol version's name.
pub fn version_name(v: u16) -> &'static str {
    match v {
        SSL3 => "SSLv3",
        TLS10 => "TLSv1.0",
        TLS11 => "TLSv1.1",
        TLS12 => "TLSv1.2",
        0x0304 => "TLSv1.3",
        _ => "unknown",
    }
}

/// What the server answered to one ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// The version the server chose.
    pub version: u16,
    /// The suite it chose.
    pub suite: u16,
    /// It chose compression (CRIME).
    pub compression: bool,
    /// It sent `renegotiation_info` (RFC 5746 secure renegotiation).
    pub secure_renegotiation: bool,
    /// The last 8 bytes of its random are the TLS 1.3 downgrade sentinel.
    pub downgrade_sentinel: bool,
    /// Leaf certificate (DER), when the flight carried one.
    pub leaf: Option<Vec<u8>>,
    /// ECDHE group code point (from ServerKeyExchange).
    pub ecdhe_group: Option<u16>,
    /// DHE prime size in bits.
    pub dh_bits: Option<u32>,
    /// TLS 1.3: the group of the server's key share (or the group a HelloRetryRequest asks
    /// for).
    pub key_share_group: Option<u16>,
    /// TLS 1.3: the answer was a HelloRetryRequest (the offered shares were not accepted).
    pub retry: bool,
}

/// The hybrid post-quantum group X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem).
pub const X25519_MLKEM768: u16 = 0x11EC;

/// `SHA-256("HelloRetryRequest")`: the random of a HelloRetryRequest (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Offers TLS 1.3 with X25519MLKEM768 as the only group and key share (as Chrome and
/// Firefox lead with it): `Some(true)` when the server takes it, `Some(false)` when it
/// asks for another group (HelloRetryRequest) or refuses, `None` when it could not be
/// asked.
pub fn offers_post_quantum(client: &Client, port: u16) -> Option<bool> {
    let mut tcp = client.connect(port).ok()?;
    let sni = client
        .host
        .parse::<std::net::IpAddr>()
        .is_err()
        .then_some(client.host.as_str());
    tcp.write_all(&pq_hello(sni)).ok()?;
    match read_flight(&mut tcp) {
        Answer::Accepted(h) => Some(!h.retry && h.key_share_group == Some(X25519_MLKEM768)),
        Answer::Refused(_) => Some(false),
        Answer::Failed(_) => None,
    }
}

/// A TLS 1.3 ClientHello whose one group and key share is X25519MLKEM768: an ML-KEM-768
/// encapsulation key, then an X25519 key (this order for this group, unlike the P-256
/// hybrid; draft-ietf-tls-ecdhe-mlkem). Random, but well formed: every coefficient below
/// q = 3329, so a server that checks the key (AWS-LC does) does not refuse it for that.
fn pq_hello(sni: Option<&str>) -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let fill = |b: &mut [u8]| {
        let _ = aws_lc_rs::rand::SecureRandom::fill(&rng, b);
    };
    let mut share = Vec::with_capacity(1184 + 32);
    // ML-KEM-768 ek: 3 polynomials of 256 12-bit coefficients (384 bytes each), then rho.
    let mut raw = [0u8; 2];
    for _ in 0..(3 * 256 / 2) {
        let mut c = [0u16; 2];
        for x in &mut c {
            fill(&mut raw);
            *x = u16::from_le_bytes(raw) % 3329;
        }
        share.push((c[0] & 0xFF) as u8);
        share.push(((c[0] >> 8) | ((c[1] & 0x0F) << 4)) as u8);
        share.push((c[1] >> 4) as u8);
    }
    let mut rho = [0u8; 32];
    fill(&mut rho);
    share.extend_from_slice(&rho);
    let mut x25519 = [0u8; 32];
    fill(&mut x25519);
    share.extend_from_slice(&x25519);
    let mut body = Vec::with_capacity(1600);
    body.extend_from_slice(&TLS12.to_be_bytes());
    let mut random = [0u8; 32];
    fill(&mut random);
    body.extend_from_slice(&random);
    let mut sid = [0u8; 32];
    fill(&mut sid);
    body.push(32);
    body.extend_from_slice(&sid);
    push16(&mut body, &be16(&[0x1301, 0x1302, 0x1303]));
    body.extend_from_slice(&[1, 0]);
    let mut ext = Vec::new();
    if let Some(name) = sni {
        server_name(&mut ext, name);
    }
    let mut gl = Vec::new();
    push16(&mut gl, &be16(&[X25519_MLKEM768]));
    extension(&mut ext, 0x000A, &gl);
    let mut al = Vec::new();
    push16(
        &mut al,
        &be16(&[0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501]),
    );
    extension(&mut ext, 0x000D, &al);
    extension(&mut ext, 0x002B, &[2, 0x03, 0x04]); // supported_versions: TLS 1.3
    let mut ks = Vec::new();
    ks.extend_from_slice(&X25519_MLKEM768.to_be_bytes());
    push16(&mut ks, &share);
    let mut shares = Vec::new();
    push16(&mut shares, &ks);
    extension(&mut ext, 0x0033, &shares);
    extension(&mut ext, 0x002D, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
    push16(&mut body, &ext);
    let mut hs = vec![1u8];
    push24(&mut hs, body.len());
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16];
    rec.extend_from_slice(&TLS10.to_be_bytes());
    push16(&mut rec, &hs);
    rec
}

/// The answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A ServerHello.
    Accepted(Hello),
    /// An alert (its description code), or the connection closed.
    Refused(Option<u8>),
    /// Could not connect or no TLS answer (the reason).
    Failed(String),
}

/// Sends a ClientHello for `version` offering `suites` and reads the server's answer.
pub fn probe(client: &Client, port: u16, version: u16, suites: &[u16], scsv: bool) -> Answer {
    let mut tcp = match client.connect(port) {
        Ok(t) => t,
        Err(e) => return Answer::Failed(e),
    };
    let sni = client
        .host
        .parse::<std::net::IpAddr>()
        .is_err()
        .then_some(client.host.as_str());
    let mut offered = suites.to_vec();
    if scsv {
        offered.push(FALLBACK_SCSV);
    }
    if tcp
        .write_all(&client_hello(version, &offered, sni))
        .is_err()
    {
        return Answer::Refused(None);
    }
    read_flight(&mut tcp)
}

/// The bytes of a ClientHello.
pub fn client_hello(version: u16, suites: &[u16], sni: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(&version.to_be_bytes());
    let mut random = [0u8; 32];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut random);
    body.extend_from_slice(&random);
    body.push(0); // no session id
    push16(&mut body, &be16(suites));
    body.extend_from_slice(&[2, 1, 0]); // compression: DEFLATE offered, then none
    if version > SSL3 {
        let mut ext = Vec::new();
        if let Some(name) = sni {
            server_name(&mut ext, name);
        }
        // Groups: x25519, P-256, P-384, P-521, ffdhe2048, ffdhe3072.
        let mut gl = Vec::new();
        push16(
            &mut gl,
            &be16(&[0x001D, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101]),
        );
        extension(&mut ext, 0x000A, &gl);
        extension(&mut ext, 0x000B, &[1, 0]); // point formats: uncompressed
        if version >= TLS12 {
            let mut al = Vec::new();
            push16(
                &mut al,
                &be16(&[
                    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203,
                    0x0201, 0x0402, 0x0202,
                ]),
            );
            extension(&mut ext, 0x000D, &al);
        }
        extension(&mut ext, 0xFF01, &[0]); // renegotiation_info, empty
        extension(&mut ext, 0x0017, &[]); // extended_master_secret
        push16(&mut body, &ext);
    }
    let mut hs = vec![1u8];
    push24(&mut hs, body.len());
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16];
    // Record version: TLS 1.0 for everything newer (what real clients send).
    rec.extend_from_slice(&version.min(TLS10).to_be_bytes());
    push16(&mut rec, &hs);
    rec
}

/// The server_name extension for a host name.
fn server_name(ext: &mut Vec<u8>, name: &str) {
    let mut list = vec![0u8];
    push16(&mut list, name.as_bytes());
    let mut sn = Vec::new();
    push16(&mut sn, &list);
    extension(ext, 0x0000, &sn);
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    push16(out, data);
}

/// Code points as big-endian bytes.
fn be16(list: &[u16]) -> Vec<u8> {
    list.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn push16(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(data);
}

fn push24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(0).to_be_bytes()[1..]);
}

/// Reads records until the server's first flight ends (ServerHelloDone), an alert, EOF,
/// or 64 KiB.
fn read_flight<R: Read>(s: &mut R) -> Answer {
    let mut hs = Vec::new();
    let mut hello: Option<Hello> = None;
    let mut total = 0usize;
    loop {
        let mut head = [0u8; 5];
        if s.read_exact(&mut head).is_err() {
            return match hello {
                Some(h) => Answer::Accepted(h),
                None => Answer::Refused(None),
            };
        }
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut frag = vec![0u8; len];
        if s.read_exact(&mut frag).is_err() {
            return match hello {
                Some(h) => Answer::Accepted(h),
                None => Answer::Refused(None),
            };
        }
        total += len + 5;
        match head[0] {
            0x15 => {
                return match hello {
                    Some(h) => Answer::Accepted(h),
                    None => Answer::Refused(frag.get(1).copied()),
                }
            }
            0x16 => hs.extend_from_slice(&frag),
            // SSLv2 answers, HTTP on a TLS port, anything else.
            _ if hello.is_none() => {
                return Answer::Failed("the answer is not TLS".into());
            }
            _ => return hello.map_or(Answer::Refused(None), Answer::Accepted),
        }
        // Handshake messages complete so far.
        while hs.len() >= 4 {
            let mlen = usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]);
            if hs.len() < 4 + mlen {
                break;
            }
            let msg: Vec<u8> = hs.drain(..4 + mlen).collect();
            let body = &msg[4..];
            match msg[0] {
                2 => match server_hello(body) {
                    Some(h) => hello = Some(h),
                    None => return Answer::Failed("malformed ServerHello".into()),
                },
                11 => {
                    if let Some(h) = hello.as_mut() {
                        h.leaf = first_cert(body);
                    }
                }
                12 => {
                    if let Some(h) = hello.as_mut() {
                        key_exchange(body, h);
                    }
                }
                14 => return hello.map_or(Answer::Refused(None), Answer::Accepted),
                _ => {}
            }
        }
        if total > 65536 {
            return hello.map_or(Answer::Refused(None), Answer::Accepted);
        }
    }
}

fn server_hello(b: &[u8]) -> Option<Hello> {
    let version = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let random = b.get(2..34)?;
    let sid = usize::from(*b.get(34)?);
    let at = 35 + sid;
    let suite = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]);
    let compression = *b.get(at + 2)? != 0;
    let mut h = Hello {
        version,
        suite,
        compression,
        downgrade_sentinel: random[24..] == *b"DOWNGRD\x01" || random[24..] == *b"DOWNGRD\x00",
        retry: random == HRR_RANDOM,
        ..Hello::default()
    };
    if let Some(ext) = b.get(at + 5..) {
        let mut e = ext;
        while e.len() >= 4 {
            let kind = u16::from_be_bytes([e[0], e[1]]);
            let len = usize::from(u16::from_be_bytes([e[2], e[3]]));
            if kind == 0xFF01 {
                h.secure_renegotiation = true;
            }
            // key_share: the server's share (group first), or the group an HRR asks for.
            if kind == 0x0033 && len >= 2 {
                h.key_share_group = Some(u16::from_be_bytes([e[4], e[5]]));
            }
            e = e.get(4 + len..).unwrap_or(&[]);
        }
    }
    Some(h)
}

fn first_cert(b: &[u8]) -> Option<Vec<u8>> {
    // certificate_list<0..2^24-1>, each ASN.1Cert<1..2^24-1>
    let len =
        usize::from(*b.get(3)?) << 16 | usize::from(*b.get(4)?) << 8 | usize::from(*b.get(5)?);
    b.get(6..6 + len).map(<[u8]>::to_vec)
}

fn key_exchange(b: &[u8], h: &mut Hello) {
    let Some(s) = suite(h.suite) else { return };
    match s.kx {
        Kx::Ecdhe if b.first() == Some(&3) => {
            if let (Some(x), Some(y)) = (b.get(1), b.get(2)) {
                h.ecdhe_group = Some(u16::from_be_bytes([*x, *y]));
            }
        }
        Kx::Dhe => {
            if let (Some(x), Some(y)) = (b.first(), b.get(1)) {
                let plen = usize::from(u16::from_be_bytes([*x, *y]));
                // Leading zero bytes do not count.
                let p = b.get(2..2 + plen).unwrap_or(&[]);
                let skip = p.iter().take_while(|&&c| c == 0).count();
                let bits = p.get(skip).map_or(0, |&top| {
                    (p.len() - skip - 1) * 8 + (8 - top.leading_zeros() as usize)
                });
                h.dh_bits = u32::try_from(bits).ok();
            }
        }
        _ => {}
    }
}

/// An elliptic-curve group's name and size in bits.
pub fn group(id: u16) -> (&'static str, u32) {
    match id {
        0x001D => ("x25519", 253),
        0x001E => ("x448", 448),
        0x0017 => ("P-256", 256),
        0x0018 => ("P-384", 384),
        0x0019 => ("P-521", 521),
        0x0015 => ("P-224", 224),
        0x0013 => ("P-192", 192),
        _ => ("unknown", 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_well_formed() {
        let h = client_hello(TLS12, &[0xC02F, 0x002F], Some("example.test"));
        assert_eq!(h[0], 0x16);
        assert_eq!(&h[1..3], &[3, 1]);
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        assert_eq!(h[5], 1);
        let body_len = usize::from(h[6]) << 16 | usize::from(h[7]) << 8 | usize::from(h[8]);
        assert_eq!(body_len, h.len() - 9);
        assert_eq!(&h[9..11], &[3, 3]);
        // suites after version (2) + random (32) + session id (1)
        assert_eq!(&h[44..46], &[0, 4]);
        assert_eq!(&h[46..50], &[0xC0, 0x2F, 0x00, 0x2F]);
        let ssl3 = client_hello(SSL3, &[0x000A], None);
        assert_eq!(&ssl3[1..3], &[3, 0]);
    }

    #[test]
    fn server_hellos_parse() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 24]);
        b.extend_from_slice(b"DOWNGRD\x01");
        b.push(0);
        b.extend_from_slice(&[0xC0, 0x2F, 0]);
        b.extend_from_slice(&[0, 5, 0xFF, 0x01, 0, 1, 0]);
        let h = server_hello(&b).unwrap();
        assert_eq!(h.version, TLS12);
        assert_eq!(h.suite, 0xC02F);
        assert!(h.secure_renegotiation && h.downgrade_sentinel && !h.compression);
    }
}
