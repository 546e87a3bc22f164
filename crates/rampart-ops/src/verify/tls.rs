//! TLS probes: the protocol versions offered (rustls for TLS 1.2/1.3, raw ClientHellos for
//! SSLv3, TLS 1.0 and 1.1), every suite accepted (one offered at a time), key exchange,
//! renegotiation, compression, downgrade protection, and the certificate (VF-TLS-*,
//! VF-CRT-*).

use std::sync::Arc;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::hello::{self, Answer, Enc, Kx, SSL3, SUITES, TLS10, TLS11, TLS12};
use super::ssllabs::{Facts, Key, TLS13};
use super::state::{Run, TlsReport};
use crate::findings::Severity;

const DAY: i64 = 86_400;

/// Probes for at most this many connections at once.
const PARALLEL: usize = 8;

/// Runs every TLS probe: the report, the facts for the grade, and whether the chain is
/// trusted (or `insecure` says to grade as if it were).
pub(crate) fn probe(run: &mut Run<'_>) -> (TlsReport, Facts, bool) {
    let mut report = TlsReport::default();
    let mut facts = Facts::default();
    let port = run.target.port;
    for (id, title) in CHECKS {
        run.sink.check(id, title);
    }
    // A modern client first: TLS 1.3 (and the chain), then 1.2 via rustls.
    let modern = run.client.handshake(port, rustls::ALL_VERSIONS);
    let tls13 = run.client.handshake(port, &[&rustls::version::TLS13]);
    let Ok(seen) = modern else {
        // Nothing rustls speaks: maybe only old protocols.
        let err = modern.err().unwrap_or_default();
        let old = old_protocols(run, &mut facts);
        let subject = run.subject("");
        if old.is_empty() {
            run.sink.add(
                "VF-TLS-01",
                Severity::Error,
                subject,
                format!("no TLS handshake: {err}"),
                "check the port speaks TLS (TLS 1.2 and 1.3)",
            );
        } else {
            run.sink.add(
                "VF-TLS-01",
                Severity::Error,
                subject,
                format!(
                    "neither TLS 1.2 nor TLS 1.3 offered ({err}); only {}",
                    old.join(", ")
                ),
                "offer TLS 1.2 and 1.3 only (Mozilla intermediate)",
            );
        }
        report.protocols = facts
            .protocols
            .iter()
            .map(|v| hello::version_name(*v))
            .collect();
        suites_of_old(run, &mut facts, &mut report);
        return (report, facts, false);
    };
    if let Ok(s13) = &tls13 {
        facts.protocols.push(TLS13);
        if let Some(g) = &s13.group {
            facts.weakest_kx = Some(group_key(g));
        }
    }
    report.negotiated = Some((
        seen.version.clone().unwrap_or_default(),
        seen.suite.clone().unwrap_or_default(),
        seen.group.clone().unwrap_or_default(),
    ));
    if tls13.is_ok() {
        report.post_quantum = hello::offers_post_quantum(&run.client, run.target.port);
        if report.post_quantum == Some(false) {
            run.sink.add(
                "VF-TLS-03",
                Severity::Info,
                run.subject(""),
                "no post-quantum key exchange: a TLS 1.3 hello offering only X25519MLKEM768 (Chrome's and Firefox's first choice) is not taken",
                "offer the hybrid group X25519MLKEM768 (rustls with aws-lc-rs, OpenSSL 3.5, Caddy 2.10 do by default)",
            );
        }
    }
    let cert_ok = certificate(run, &seen.chain, &mut facts, &mut report);
    if !seen.ocsp_stapled {
        run.sink.add(
            "VF-CRT-02",
            Severity::Info,
            run.subject(""),
            "no OCSP response stapled",
            "enable OCSP stapling (Mozilla's guidelines ask for it)",
        );
    }
    // TLS 1.3 suites, one at a time.
    if tls13.is_ok() {
        run.o.step("TLS: TLS 1.3 suites");
        for cs in rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES {
            if cs.version() != &rustls::version::TLS13 {
                continue;
            }
            if handshake_with(run, *cs) {
                let name = cs.suite().as_str().unwrap_or("TLS13_UNKNOWN");
                let bits = if name.contains("128") { 128 } else { 256 };
                facts.tls13_suites.push((name, bits));
                report.suites.push(("TLSv1.3", name.to_owned()));
            }
        }
    }
    // TLS 1.2 and older: raw hellos.
    run.o.step("TLS: protocol versions");
    let all: Vec<u16> = SUITES.iter().map(|s| s.id).collect();
    match hello::probe(&run.client, port, TLS12, &all, false) {
        Answer::Accepted(h) if h.version == TLS12 => {
            facts.protocols.push(TLS12);
            if h.compression {
                facts.compression = true;
                run.sink.add(
                    "VF-TLS-04",
                    Severity::Error,
                    run.subject(""),
                    "the server chose TLS compression (DEFLATE): CRIME",
                    "disable TLS compression",
                );
            }
            if !h.secure_renegotiation {
                run.sink.add(
                    "VF-TLS-04",
                    Severity::Error,
                    run.subject(""),
                    "no renegotiation_info in the TLS 1.2 ServerHello: insecure renegotiation (RFC 5746)",
                    "upgrade the TLS library or disable renegotiation",
                );
            }
            if facts.protocols.contains(&TLS13) && !h.downgrade_sentinel {
                run.sink.add(
                    "VF-TLS-04",
                    Severity::Warn,
                    run.subject(""),
                    "a TLS 1.2 ServerHello from a TLS 1.3 server lacks the downgrade sentinel (RFC 8446 4.1.3)",
                    "upgrade the TLS library",
                );
            }
        }
        _ => {}
    }
    let old = old_protocols(run, &mut facts);
    if !old.is_empty() {
        fallback_scsv(run, &facts);
    }
    facts.protocols.sort_unstable();
    report.protocols = facts
        .protocols
        .iter()
        .map(|v| hello::version_name(*v))
        .collect();
    if !facts.protocols.contains(&TLS13) {
        run.sink.add(
            "VF-TLS-01",
            Severity::Warn,
            run.subject(""),
            format!(
                "TLS 1.3 not offered (offered: {})",
                report.protocols.join(", ")
            ),
            "enable TLS 1.3",
        );
    }
    if !facts.protocols.contains(&TLS12) && !facts.protocols.contains(&TLS13) {
        run.sink.add(
            "VF-TLS-01",
            Severity::Error,
            run.subject(""),
            "neither TLS 1.2 nor TLS 1.3 offered",
            "offer TLS 1.2 and 1.3",
        );
    }
    suites_of_old(run, &mut facts, &mut report);
    (report, facts, cert_ok)
}

/// What the checks are.
const CHECKS: [(&str, &str); 5] = [
    ("VF-TLS-01", "protocol versions offered"),
    ("VF-TLS-02", "cipher suites offered"),
    ("VF-TLS-03", "key exchange strength"),
    (
        "VF-TLS-04",
        "renegotiation, compression, downgrade protection",
    ),
    ("VF-CRT-01", "certificate validity, trust and names"),
];

fn group_key(name: &str) -> Key {
    let n = name.to_ascii_lowercase();
    if n.contains("x25519") {
        Key::Ec(253)
    } else if n.contains("x448") {
        Key::Ec(448)
    } else if n.contains("384") {
        Key::Ec(384)
    } else if n.contains("521") {
        Key::Ec(521)
    } else if n.contains("256") {
        Key::Ec(256)
    } else if let Some(bits) = n.strip_prefix("ffdhe").and_then(|b| b.parse().ok()) {
        Key::Rsa(bits)
    } else {
        Key::Ec(256)
    }
}

/// A TLS 1.3 handshake offering only `suite`.
fn handshake_with(run: &Run<'_>, suite: rustls::SupportedCipherSuite) -> bool {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![suite];
    let Ok(b) = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
    else {
        return false;
    };
    let cfg = b
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::client::Recorder::new()))
        .with_no_client_auth();
    let Ok(mut tcp) = run.client.connect(run.target.port) else {
        return false;
    };
    let Ok(mut conn) = run.client.tls_conn(Arc::new(cfg)) else {
        return false;
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            return false;
        }
    }
    true
}

/// SSLv3, TLS 1.0, TLS 1.1: offered when the server answers a hello of that version with
/// that version. Returns the names of those offered.
fn old_protocols(run: &mut Run<'_>, facts: &mut Facts) -> Vec<&'static str> {
    let all: Vec<u16> = SUITES.iter().map(|s| s.id).collect();
    let mut found = Vec::new();
    for v in [TLS11, TLS10, SSL3] {
        if facts.protocols.contains(&v) {
            continue;
        }
        if let Answer::Accepted(h) = hello::probe(&run.client, run.target.port, v, &all, false) {
            if h.version == v {
                facts.protocols.push(v);
                found.push(hello::version_name(v));
                let (sev, fix) = if v == SSL3 {
                    (Severity::Error, "disable SSLv3 (POODLE)")
                } else {
                    (Severity::Error, "offer TLS 1.2 and 1.3 only (Mozilla intermediate; TLS 1.0/1.1 are deprecated by RFC 8996)")
                };
                run.sink.add(
                    "VF-TLS-01",
                    sev,
                    run.subject(""),
                    format!(
                        "{} offered: the server answered a {} ClientHello with {} (suite {:#06x})",
                        hello::version_name(v),
                        hello::version_name(v),
                        hello::version_name(h.version),
                        h.suite
                    ),
                    fix,
                );
            }
        }
    }
    found
}

/// TLS_FALLBACK_SCSV: a hello below the best version, carrying the SCSV, must be refused
/// with `inappropriate_fallback` (86).
fn fallback_scsv(run: &mut Run<'_>, facts: &Facts) {
    let mut below: Vec<u16> = facts
        .protocols
        .iter()
        .copied()
        .filter(|v| *v < TLS12 && *v > SSL3)
        .collect();
    below.sort_unstable();
    let Some(v) = below.last().copied() else {
        return;
    };
    let all: Vec<u16> = SUITES.iter().map(|s| s.id).collect();
    match hello::probe(&run.client, run.target.port, v, &all, true) {
        Answer::Refused(Some(86)) => {}
        Answer::Accepted(_) => run.sink.add(
            "VF-TLS-04",
            Severity::Warn,
            run.subject(""),
            format!("a {} hello with TLS_FALLBACK_SCSV was accepted: downgrade attacks are not prevented", hello::version_name(v)),
            "support TLS_FALLBACK_SCSV (RFC 7507) or drop the old versions",
        ),
        _ => {}
    }
}

/// Every SSLv3–TLS 1.2 suite accepted, per offered version, one suite per hello.
fn suites_of_old(run: &mut Run<'_>, facts: &mut Facts, report: &mut TlsReport) {
    let versions: Vec<u16> = facts
        .protocols
        .iter()
        .copied()
        .filter(|v| *v <= TLS12)
        .collect();
    let mut jobs: Vec<(u16, u16)> = Vec::new();
    for v in &versions {
        for s in SUITES {
            jobs.push((*v, s.id));
        }
    }
    run.o.step(&format!(
        "TLS: {} suites on {} versions",
        SUITES.len(),
        versions.len()
    ));
    let client = &run.client;
    let port = run.target.port;
    let results: Vec<(u16, u16, Answer)> = std::thread::scope(|sc| {
        let chunks: Vec<Vec<(u16, u16)>> = jobs
            .chunks(jobs.len().div_ceil(PARALLEL).max(1))
            .map(<[(u16, u16)]>::to_vec)
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                sc.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(v, id)| (v, id, hello::probe(client, port, v, &[id], false)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    run.requests
        .fetch_add(results.len(), std::sync::atomic::Ordering::Relaxed);
    let mut weak: Vec<String> = Vec::new();
    let mut legacy: Vec<String> = Vec::new();
    for (v, id, a) in results {
        let Answer::Accepted(h) = a else { continue };
        if h.suite != id || h.version != v {
            continue;
        }
        let Some(s) = hello::suite(id) else { continue };
        facts.suites.push((v, s));
        report
            .suites
            .push((hello::version_name(v), s.openssl.to_owned()));
        let kx = match (h.ecdhe_group, h.dh_bits) {
            (Some(g), _) => Some(Key::Ec(hello::group(g).1)),
            (_, Some(bits)) => Some(Key::Rsa(bits)),
            _ => None,
        };
        if let Some(k) = kx {
            let keep = facts
                .weakest_kx
                .is_none_or(|w| super::ssllabs::key_points(k) < super::ssllabs::key_points(w));
            if keep {
                facts.weakest_kx = Some(k);
            }
            let small = match k {
                Key::Rsa(b) if b < 2048 => Some(format!("DH group of {b} bits")),
                Key::Ec(b) if b < 250 => Some(format!("EC group of {b} bits")),
                _ => None,
            };
            if let Some(what) = small {
                run.sink.add(
                    "VF-TLS-03",
                    Severity::Error,
                    run.subject(""),
                    format!("{} with {what}", s.openssl),
                    "use X25519/P-256 or ffdhe2048+ (RFC 7919)",
                );
            }
        }
        let name = format!("{} {}", hello::version_name(v), s.openssl);
        match (s.enc, s.kx) {
            (Enc::Null | Enc::Export | Enc::Rc4 | Enc::Block64, _) | (_, Kx::Anon) => {
                weak.push(name);
            }
            (Enc::Cbc, _) | (Enc::Aead, Kx::Rsa) => legacy.push(name),
            _ => {}
        }
    }
    facts
        .suites
        .sort_by_key(|(v, s)| (std::cmp::Reverse(*v), s.id));
    report.suites.sort();
    if !weak.is_empty() {
        run.sink.add(
            "VF-TLS-02",
            Severity::Error,
            run.subject(""),
            format!(
                "broken suites accepted (NULL, anonymous, export, RC4, DES/3DES/IDEA): {}",
                weak.join(", ")
            ),
            "offer only ECDHE with AES-GCM or ChaCha20-Poly1305 (Mozilla intermediate)",
        );
    }
    if !legacy.is_empty() {
        run.sink.add(
            "VF-TLS-02",
            Severity::Warn,
            run.subject(""),
            format!(
                "CBC or non-forward-secret suites accepted: {}",
                legacy.join(", ")
            ),
            "offer only ECDHE with AES-GCM or ChaCha20-Poly1305 (Mozilla intermediate)",
        );
    }
}

/// Judges the chain the server sent; returns whether it is trusted (or `insecure`).
fn certificate(
    run: &mut Run<'_>,
    chain: &[Vec<u8>],
    facts: &mut Facts,
    report: &mut TlsReport,
) -> bool {
    let subject = run.subject("");
    let Some(leaf_der) = chain.first() else {
        run.sink.add(
            "VF-CRT-01",
            Severity::Error,
            subject,
            "the server sent no certificate",
            "configure a certificate",
        );
        return false;
    };
    let Ok((_, leaf)) = X509Certificate::from_der(leaf_der) else {
        run.sink.add(
            "VF-CRT-01",
            Severity::Error,
            subject,
            "the certificate does not parse",
            "reissue the certificate",
        );
        return false;
    };
    let now = run
        .o
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    let left = (na - now) / DAY;
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => (*d).to_owned(),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                        _ => "?".into(),
                    },
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let key = match leaf.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => {
            Some(("RSA", Key::Rsa(u32::try_from(k.key_size()).unwrap_or(0))))
        }
        Ok(x509_parser::public_key::PublicKey::EC(k)) => {
            Some(("EC", Key::Ec(u32::try_from(k.key_size()).unwrap_or(0))))
        }
        Ok(x509_parser::public_key::PublicKey::DSA(_)) => Some(("DSA", Key::Rsa(1024))),
        _ => None,
    };
    facts.cert_key = key.map(|(_, k)| k);
    let oid = leaf.signature_algorithm.algorithm.to_id_string();
    let sig = match oid.as_str() {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        _ => "other",
    };
    report.certificate = vec![
        ("subject".into(), leaf.subject().to_string()),
        ("issuer".into(), leaf.issuer().to_string()),
        ("names".into(), names.join(", ")),
        (
            "valid".into(),
            format!(
                "{} to {} ({left} days left)",
                leaf.validity().not_before,
                leaf.validity().not_after
            ),
        ),
        (
            "key".into(),
            match key {
                Some((alg, Key::Rsa(b) | Key::Ec(b))) => format!("{alg} {b} bits"),
                None => "unknown".into(),
            },
        ),
        ("signature".into(), format!("{sig} ({oid})")),
        (
            "chain".into(),
            format!("{} certificate(s) sent", chain.len()),
        ),
    ];
    // Validity.
    if na <= now || nb > now {
        facts.cert_expired = true;
        run.sink.add(
            "VF-CRT-01",
            Severity::Error,
            subject.clone(),
            if na <= now {
                format!(
                    "expired {} days ago (notAfter {})",
                    -left,
                    leaf.validity().not_after
                )
            } else {
                format!("not valid before {}", leaf.validity().not_before)
            },
            "renew the certificate",
        );
    } else if left < 30 {
        run.sink.add(
            "VF-CRT-01",
            Severity::Error,
            subject.clone(),
            format!("expires in {left} days"),
            "renew now; renewal should start 30 days before expiry",
        );
    } else if left < 60 {
        run.sink.add(
            "VF-CRT-01",
            Severity::Warn,
            subject.clone(),
            format!("expires in {left} days"),
            "check that renewal is automated",
        );
    }
    let lifetime = (na - nb) / DAY;
    if lifetime > 398 {
        run.sink.add(
            "VF-CRT-01",
            Severity::Warn,
            subject.clone(),
            format!("lifetime of {lifetime} days (browsers refuse public certificates over 398)"),
            "issue certificates of 90 days, renewed automatically",
        );
    }
    // Key and signature.
    match key {
        Some(("RSA", Key::Rsa(b))) if b < 2048 => run.sink.add(
            "VF-CRT-02",
            Severity::Error,
            subject.clone(),
            format!("RSA key of {b} bits"),
            "reissue with ECDSA P-256 or RSA 2048+",
        ),
        Some(("EC", Key::Ec(b))) if b < 256 => run.sink.add(
            "VF-CRT-02",
            Severity::Error,
            subject.clone(),
            format!("EC key of {b} bits"),
            "reissue with ECDSA P-256",
        ),
        Some(("DSA", _)) => run.sink.add(
            "VF-CRT-02",
            Severity::Error,
            subject.clone(),
            "DSA key",
            "reissue with ECDSA P-256",
        ),
        _ => {}
    }
    if sig.starts_with("md") || sig.contains("SHA1") || sig.starts_with("sha1") {
        facts.weak_signature = Some(if sig.starts_with("md5") {
            "MD5"
        } else if sig.starts_with("md2") {
            "MD2"
        } else {
            "SHA-1"
        });
        run.sink.add(
            "VF-CRT-02",
            Severity::Error,
            subject.clone(),
            format!("signed with {sig}"),
            "reissue the certificate (CAs sign with SHA-256 or better)",
        );
    }
    // Trust and name, with webpki.
    let mut roots = crate::certs::system_roots();
    if let Some(ca) = &run.o.ca_file {
        match std::fs::read(ca) {
            Ok(d) => roots.extend(crate::certs::pem_certs(&d)),
            Err(e) => run.sink.add(
                "VF-CRT-01",
                Severity::Error,
                ca.display().to_string(),
                format!("cannot read --ca-file: {e}"),
                "fix the path",
            ),
        }
    }
    let trusted = match crate::certs::verify_chain(&roots, chain, nb, na, now) {
        Ok(()) => true,
        Err(e) => {
            let why = if leaf.issuer() == leaf.subject() {
                "the certificate is self-signed".to_owned()
            } else {
                format!("the chain does not verify to a trusted root: {e}")
            };
            if run.o.insecure {
                run.sink.add(
                    "VF-CRT-01",
                    Severity::Warn,
                    subject.clone(),
                    format!("{why}; graded anyway (--insecure)"),
                    "serve a chain from a trusted CA (or pass the private CA with --ca-file)",
                );
            } else {
                facts.cert_untrusted = true;
                run.sink.add(
                    "VF-CRT-01",
                    Severity::Error,
                    subject.clone(),
                    why,
                    "serve the full chain from a trusted CA; for a private CA pass --ca-file",
                );
            }
            false
        }
    };
    let host = run.target.host.clone();
    if !crate::certs::names_host(leaf_der, &host) {
        facts.name_mismatch = true;
        run.sink.add(
            "VF-CRT-01",
            Severity::Error,
            subject,
            format!(
                "the certificate does not name {host} (names: {})",
                names.join(", ")
            ),
            "add the name to the certificate's subjectAltName",
        );
    }
    trusted || run.o.insecure
}
