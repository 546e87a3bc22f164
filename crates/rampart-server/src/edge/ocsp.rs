//! OCSP stapling: for each served certificate whose leaf names an OCSP responder, the
//! response to staple (RFC 6960) and what is known about it. One [`Stapler`] per leaf
//! certificate, shared by every edge a reload builds (the refresh task, control::ocsp,
//! fills it); a handshake gets the stapled key while the response is fresh, else the bare
//! one. A response is stapled only when it is well formed, signed by the issuer (or a
//! responder the issuer delegated with id-kp-OCSPSigning), about this certificate, current
//! (thisUpdate not in the future, nextUpdate not passed) and says "good": never a revoked,
//! unknown, expired or unverifiable one.
//!
//! Certificates without a responder (self-signed, or Let's Encrypt's since 2025, which
//! publish only a CRL distribution point) are served as they are and say so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use aws_lc_rs::digest;
use aws_lc_rs::signature;
use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use rustls::sign::CertifiedKey;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints, ExtendedKeyUsage};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, TbsRequest,
};

const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A response without nextUpdate ("newer information is always available") is stapled for
/// this long and asked again then.
const NO_NEXT_UPDATE_SECS: u64 = 3_600;

/// Clock skew allowed for thisUpdate in the future.
const SKEW_SECS: u64 = 300;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a certificate's status can be asked.
#[derive(Debug, Clone)]
pub enum Plan {
    /// POST `request` to `url`.
    Ask(Box<Target>),
    /// No OCSP responder; revocation by CRL at these URLs (Let's Encrypt since 2025).
    CrlOnly(Vec<String>),
    /// Neither a responder nor a CRL (self-signed, development).
    Nothing,
    /// The leaf names a responder but the chain holds no issuer to build the request.
    NoIssuer(String),
}

/// What asking and checking need.
#[derive(Debug, Clone)]
pub struct Target {
    /// The responder (`http://`).
    pub url: String,
    /// The DER `OCSPRequest`.
    pub request: Vec<u8>,
    cert_id: CertId,
    issuer: Certificate,
}

/// A stapled response.
#[derive(Debug)]
pub struct Staple {
    /// The key served with it.
    pub key: Arc<CertifiedKey>,
    /// Unix seconds.
    pub this_update: u64,
    /// Unix seconds after which it is never served.
    pub next_update: u64,
}

/// What is known about a certificate's OCSP status, for `/health`, metrics and the task.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// `pending`, `good`, `revoked`, `unknown`, `error`, `crl_only`, `none`, `no_issuer`.
    pub state: &'static str,
    /// What happened last, in words.
    pub message: String,
    /// Unix seconds of the last attempt (0: none yet).
    pub last_attempt: u64,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    /// Failures in a row.
    pub failures: u32,
}

/// One leaf certificate's OCSP state.
#[derive(Debug)]
pub struct Stapler {
    /// The key as loaded (no staple).
    pub base: Arc<CertifiedKey>,
    /// How to ask.
    pub plan: Plan,
    /// The response being stapled.
    pub staple: ArcSwapOption<Staple>,
    /// The last outcome.
    pub status: Mutex<Status>,
    /// Hex of the leaf's SHA-256 (the disk cache's file name).
    pub id: String,
}

impl Stapler {
    /// The key a handshake gets: stapled while the response is fresh, else the bare one.
    pub fn serve(&self) -> Arc<CertifiedKey> {
        if let Some(s) = &*self.staple.load() {
            if unix_now() < s.next_update {
                return s.key.clone();
            }
        }
        self.base.clone()
    }

    /// A copy of the last outcome.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the outcome.
    pub fn set_status(&self, s: Status) {
        *self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    /// Staples `der` (already checked), fresh until `next_update`.
    pub fn install(&self, der: Vec<u8>, this_update: u64, next_update: u64) {
        let mut key = (*self.base).clone();
        key.ocsp = Some(der);
        self.staple.store(Some(Arc::new(Staple {
            key: Arc::new(key),
            this_update,
            next_update,
        })));
    }

    /// Stops stapling.
    pub fn clear(&self) {
        self.staple.store(None);
    }
}

/// The stapler for a loaded certificate: the live one for the same leaf (so a reload keeps
/// its staple), or a new one with its plan read from the chain.
pub fn stapler_for(key: &Arc<CertifiedKey>) -> Arc<Stapler> {
    static ALL: OnceLock<Mutex<HashMap<Vec<u8>, Weak<Stapler>>>> = OnceLock::new();
    let leaf = key
        .cert
        .first()
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let mut all = ALL
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    all.retain(|_, w| w.strong_count() > 0);
    if let Some(s) = all.get(&leaf).and_then(Weak::upgrade) {
        return s;
    }
    let chain: Vec<&[u8]> = key.cert.iter().map(AsRef::as_ref).collect();
    let plan = plan(&chain);
    let state = match &plan {
        Plan::Ask(_) => "pending",
        Plan::CrlOnly(_) => "crl_only",
        Plan::Nothing => "none",
        Plan::NoIssuer(_) => "no_issuer",
    };
    let message = match &plan {
        Plan::Ask(t) => format!("asking {}", t.url),
        Plan::CrlOnly(urls) => format!(
            "no OCSP responder in the certificate; revocation is published as a CRL ({}), nothing to staple",
            urls.join(", ")
        ),
        Plan::Nothing => "the certificate names no OCSP responder and no CRL".into(),
        Plan::NoIssuer(url) => format!(
            "the certificate names the OCSP responder {url}, but its file holds no issuer certificate: append the intermediate to the chain to staple"
        ),
    };
    let id = digest::digest(&digest::SHA256, &leaf)
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let s = Arc::new(Stapler {
        base: key.clone(),
        plan,
        staple: ArcSwapOption::empty(),
        status: Mutex::new(Status {
            state,
            message,
            ..Status::default()
        }),
        id,
    });
    all.insert(leaf, Arc::downgrade(&s));
    s
}

/// Reads how to ask about `chain[0]` (the leaf; `chain[1]` its issuer).
pub fn plan(chain: &[&[u8]]) -> Plan {
    let Some(leaf) = chain.first().and_then(|d| Certificate::from_der(d).ok()) else {
        return Plan::Nothing;
    };
    let tbs = &leaf.tbs_certificate;
    let url = tbs
        .get::<AuthorityInfoAccessSyntax>()
        .ok()
        .flatten()
        .and_then(|(_, aia)| {
            aia.0.into_iter().find_map(|d| match d.access_location {
                GeneralName::UniformResourceIdentifier(u)
                    if d.access_method == ID_AD_OCSP && u.as_str().starts_with("http://") =>
                {
                    Some(u.as_str().to_owned())
                }
                _ => None,
            })
        });
    let Some(url) = url else {
        let crls: Vec<String> = tbs
            .get::<CrlDistributionPoints>()
            .ok()
            .flatten()
            .map(|(_, dps)| {
                dps.0
                    .into_iter()
                    .filter_map(|dp| match dp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => Some(names),
                        _ => None,
                    })
                    .flatten()
                    .filter_map(|n| match n {
                        GeneralName::UniformResourceIdentifier(u) => Some(u.as_str().to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        return if crls.is_empty() {
            Plan::Nothing
        } else {
            Plan::CrlOnly(crls)
        };
    };
    let issuer = chain
        .get(1)
        .and_then(|d| Certificate::from_der(d).ok())
        .filter(|i| i.tbs_certificate.subject == tbs.issuer);
    let Some(issuer) = issuer else {
        return Plan::NoIssuer(url);
    };
    match request(&leaf, &issuer) {
        Some((cert_id, request)) => Plan::Ask(Box::new(Target {
            url,
            request,
            cert_id,
            issuer,
        })),
        None => Plan::NoIssuer(url),
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// The CertID (SHA-1, as every responder accepts) and the DER request for `leaf`.
fn request(leaf: &Certificate, issuer: &Certificate) -> Option<(CertId, Vec<u8>)> {
    let name = issuer.tbs_certificate.subject.to_der().ok()?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&name)).ok()?,
        issuer_key_hash: OctetString::new(sha1(key)).ok()?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    };
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    Some((cert_id, req.to_der().ok()?))
}

/// What a checked response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Good: staple it until `next_update`.
    Good {
        /// Unix seconds.
        this_update: u64,
        /// Unix seconds (thisUpdate + an hour when the responder gives none).
        next_update: u64,
    },
    /// Revoked at (Unix seconds), for a reason when one is given.
    Revoked {
        /// Unix seconds.
        at: u64,
        /// The CRL reason, in words.
        reason: Option<String>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

fn secs(t: &x509_ocsp::OcspGeneralizedTime) -> u64 {
    t.0.to_unix_duration().as_secs()
}

/// Checks a DER `OCSPResponse` for `target` at `now`.
///
/// # Errors
/// Anything that makes it unfit to staple, in words: not successful, malformed, signed by
/// someone else or badly, about another certificate, from the future or past nextUpdate.
pub fn check(der: &[u8], target: &Target, now: u64) -> Result<Verdict, String> {
    let resp = OcspResponse::from_der(der).map_err(|e| format!("not a DER OCSP response: {e}"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!("the responder answered {:?}", resp.response_status));
    }
    let bytes = resp
        .response_bytes
        .ok_or("a successful response without a body")?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(format!("unsupported response type {}", bytes.response_type));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der)
        .map_err(|e| format!("malformed basic response: {e}"))?;
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("malformed response data: {e}"))?;
    let sig = basic
        .signature
        .as_bytes()
        .ok_or("the signature is not whole bytes")?;
    // Who signed: the issuer itself, or a certificate in the response that the issuer
    // issued for OCSP signing.
    let issuer = &target.issuer;
    let names = |c: &Certificate| match &basic.tbs_response_data.responder_id {
        ResponderId::ByName(n) => *n == c.tbs_certificate.subject,
        ResponderId::ByKey(h) => {
            h.as_bytes()
                == sha1(
                    c.tbs_certificate
                        .subject_public_key_info
                        .subject_public_key
                        .raw_bytes(),
                )
        }
    };
    let signer =
        if names(issuer) {
            issuer.clone()
        } else {
            let delegate =
                basic.certs.iter().flatten().find(|c| names(c)).ok_or(
                    "signed by a responder that is neither the issuer nor in the response",
                )?;
            check_delegate(delegate, issuer, now)?;
            delegate.clone()
        };
    verify(&signer, &basic.signature_algorithm, &tbs, sig)
        .map_err(|()| "the response's signature does not verify".to_owned())?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| {
            r.cert_id.serial_number == target.cert_id.serial_number
                && r.cert_id.hash_algorithm.oid == ID_SHA1
                && r.cert_id.issuer_key_hash == target.cert_id.issuer_key_hash
                && r.cert_id.issuer_name_hash == target.cert_id.issuer_name_hash
        })
        .ok_or("the response is about another certificate")?;
    let this_update = secs(&single.this_update);
    if this_update > now + SKEW_SECS {
        return Err(format!(
            "thisUpdate is {} s in the future",
            this_update - now
        ));
    }
    let next_update = match &single.next_update {
        Some(t) => secs(t),
        None => this_update.max(now) + NO_NEXT_UPDATE_SECS,
    };
    match &single.cert_status {
        CertStatus::Good(_) => {
            if next_update <= now {
                return Err(format!(
                    "stale: its nextUpdate passed {} s ago",
                    now - next_update
                ));
            }
            Ok(Verdict::Good {
                this_update,
                next_update,
            })
        }
        CertStatus::Revoked(r) => Ok(Verdict::Revoked {
            at: secs(&r.revocation_time),
            reason: r.revocation_reason.map(|c| format!("{c:?}")),
        }),
        CertStatus::Unknown(_) => Ok(Verdict::Unknown),
    }
}

/// A delegated responder: issued and signed by `issuer`, for OCSP signing, valid now.
fn check_delegate(c: &Certificate, issuer: &Certificate, now: u64) -> Result<(), String> {
    if c.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err("the responder's certificate is not issued by the certificate's issuer".into());
    }
    let eku = c
        .tbs_certificate
        .get::<ExtendedKeyUsage>()
        .ok()
        .flatten()
        .is_some_and(|(_, e)| e.0.contains(&ID_KP_OCSP_SIGNING));
    if !eku {
        return Err("the responder's certificate is not for OCSP signing".into());
    }
    let v = &c.tbs_certificate.validity;
    if v.not_before.to_unix_duration().as_secs() > now + SKEW_SECS
        || v.not_after.to_unix_duration().as_secs() < now
    {
        return Err("the responder's certificate is not valid now".into());
    }
    let tbs = c
        .tbs_certificate
        .to_der()
        .map_err(|e| format!("malformed responder certificate: {e}"))?;
    let sig = c
        .signature
        .as_bytes()
        .ok_or("malformed responder certificate signature")?;
    verify(issuer, &c.signature_algorithm, &tbs, sig)
        .map_err(|()| "the responder's certificate is not signed by the issuer".to_owned())
}

/// Verifies `sig` over `msg` by `signer`'s key with algorithm `alg`.
fn verify(
    signer: &Certificate,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), ()> {
    let spki = &signer.tbs_certificate.subject_public_key_info;
    let p384 = spki.algorithm.oid == ID_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            == Some(SECP384R1);
    let algorithm: &dyn signature::VerificationAlgorithm =
        match (alg.oid.to_string().as_str(), p384) {
            ("1.2.840.10045.4.3.2", false) => &signature::ECDSA_P256_SHA256_ASN1,
            ("1.2.840.10045.4.3.2", true) => &signature::ECDSA_P384_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", false) => &signature::ECDSA_P256_SHA384_ASN1,
            ("1.2.840.10045.4.3.3", true) => &signature::ECDSA_P384_SHA384_ASN1,
            ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
            ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
            ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
            // Responders still sign with SHA-1 (OpenSSL before 3.0, some CAs).
            ("1.2.840.113549.1.1.5", _) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            ("1.3.101.112", _) => &signature::ED25519,
            _ => return Err(()),
        };
    signature::UnparsedPublicKey::new(algorithm, spki.subject_public_key.raw_bytes())
        .verify(msg, sig)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_and_leaf(crl: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        if let Some(url) = crl {
            leaf.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![url.to_owned()],
            }];
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&key, &issuer).unwrap();
        (leaf.der().to_vec(), ca_cert.der().to_vec())
    }

    #[test]
    fn plans_without_a_responder() {
        let (leaf, ca) = ca_and_leaf(None);
        assert!(matches!(plan(&[&leaf, &ca]), Plan::Nothing));
        let (leaf, ca) = ca_and_leaf(Some("http://crl.test/ca.crl"));
        match plan(&[&leaf, &ca]) {
            Plan::CrlOnly(urls) => assert_eq!(urls, ["http://crl.test/ca.crl"]),
            p => panic!("{p:?}"),
        }
        assert!(matches!(plan(&[b"not a certificate"]), Plan::Nothing));
        assert!(matches!(plan(&[]), Plan::Nothing));
    }

    #[test]
    fn bad_answers_are_never_good() {
        let (leaf, ca) = ca_and_leaf(None);
        let leaf = Certificate::from_der(&leaf).unwrap();
        let issuer = Certificate::from_der(&ca).unwrap();
        let (cert_id, request) = request(&leaf, &issuer).unwrap();
        // The request is one CertID with SHA-1 hashes and the leaf's serial.
        let parsed = OcspRequest::from_der(&request).unwrap();
        assert_eq!(parsed.tbs_request.request_list[0].req_cert, cert_id);
        let target = Target {
            url: "http://127.0.0.1/".into(),
            request,
            cert_id,
            issuer,
        };
        let now = unix_now();
        for (der, want) in [
            (&b""[..], "not a DER OCSP response"),
            (&b"\x30\x03garbage"[..], "not a DER OCSP response"),
            // OCSPResponse { responseStatus tryLater (3) }
            (
                &[0x30, 0x03, 0x0a, 0x01, 0x03][..],
                "the responder answered",
            ),
            // successful without responseBytes
            (&[0x30, 0x03, 0x0a, 0x01, 0x00][..], "without a body"),
        ] {
            let e = check(der, &target, now).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
