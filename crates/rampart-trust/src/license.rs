//! License tokens: a JWT signed by the vendor (RS256/RS384/RS512, PS256…, ES256/ES384 or
//! EdDSA; never HS* or `none`), its claims (customer, expiry, features, seats, instances,
//! an optional installation binding), its standing at a time (valid, grace, expired), and
//! the anti-rollback anchor: the highest time this installation has seen, kept in a state
//! file sealed with a MAC bound to the installation id, so a clock set back cannot revive
//! an expired license and an edited or corrupted state file is told from a fresh one.
//!
//! Claims read (the names vendors use, as issued by `rampart license issue`, PyJWT or any
//! JWT library): `exp` (required), `nbf`, `iat`, `iss`, `aud`, `sub`; `customer` (or
//! `customer_name`, else `sub`); `jti` (or `license_id`); `features` (array of strings, or
//! one comma-separated string); `seats` (or `max_users`); `max_instances` (or
//! `instances`); `installation_id` (the license then works on that installation only).
//! Every other claim is kept and shown.

use aws_lc_rs::hmac;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A verified license.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct License {
    /// The algorithm that verified it (`RS256`).
    pub alg: String,
    /// Who it is for.
    pub customer: String,
    /// Its id (`jti`), when given.
    pub id: Option<String>,
    /// Issuer (`iss`).
    pub issuer: Option<String>,
    /// Issued at (Unix seconds).
    pub issued_at: Option<i64>,
    /// Not valid before (Unix seconds).
    pub not_before: Option<i64>,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Licensed features.
    pub features: Vec<String>,
    /// Seats (users) licensed, for the application to enforce.
    pub seats: Option<u64>,
    /// Instances allowed at once.
    pub max_instances: Option<u64>,
    /// The installation it is bound to, when bound.
    pub installation_id: Option<String>,
    /// Every claim as issued.
    pub claims: Map<String, Value>,
}

/// What verifying expects beyond the signature.
#[derive(Debug, Clone, Default)]
pub struct Expect<'a> {
    /// The one algorithm accepted (the vendor's `LICENSE_SIGNING_ALG`); else any the key
    /// type allows.
    pub algorithm: Option<&'a str>,
    /// `iss` must equal this.
    pub issuer: Option<&'a str>,
    /// `aud` must contain this.
    pub audience: Option<&'a str>,
}

/// Parses an algorithm name as JWT writes it (`RS256`, `ES256`, `EdDSA`…); symmetric
/// algorithms and `none` are refused: a license verified by a shared secret proves
/// nothing, the secret is on the customer's host.
///
/// # Errors
/// Unknown, symmetric or `none`.
pub fn algorithm(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name
        .parse()
        .map_err(|_| format!("unknown JWT algorithm {name:?}"))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(format!(
            "{name} is a shared secret: a license must be signed with the vendor's private key (RS256, ES256 or EdDSA)"
        )),
        a => Ok(a),
    }
}

fn decoding_key(alg: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    };
    key.map_err(|e| format!("the public key is not a {alg:?} key: {e}"))
}

/// Verifies `token`'s signature with the vendor's PEM public key and reads its claims.
/// Times are not judged here (see [`License::standing`]): an expired license still
/// verifies, so support can read it.
///
/// # Errors
/// Not a JWT, an algorithm refused or not the expected one, a bad signature, a wrong
/// issuer or audience, no `exp`, or claims of the wrong type.
pub fn verify(token: &str, public_key_pem: &[u8], expect: &Expect<'_>) -> Result<License, String> {
    let token = token.trim();
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| format!("not a license token (JWT): {e}"))?;
    let alg_name = format!("{:?}", header.alg);
    let alg = algorithm(&alg_name)?;
    if let Some(want) = expect.algorithm {
        if algorithm(want)? != alg {
            return Err(format!(
                "signed with {alg_name}, but only {want} is accepted for this license"
            ));
        }
    }
    let key = decoding_key(alg, public_key_pem)?;
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    v.required_spec_claims = ["exp".to_owned()].into_iter().collect();
    match expect.issuer {
        Some(i) => v.set_issuer(&[i]),
        None => v.iss = None,
    }
    match expect.audience {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| match e
        .kind()
    {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            "the signature does not verify with the vendor's public key".to_owned()
        }
        jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
            format!(
                "issued by someone else (iss), not {:?}",
                expect.issuer.unwrap_or("")
            )
        }
        jsonwebtoken::errors::ErrorKind::InvalidAudience => {
            format!(
                "not for this product (aud), not {:?}",
                expect.audience.unwrap_or("")
            )
        }
        jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => {
            format!("no {c} claim: a license must expire")
        }
        _ => format!("not a valid license token: {e}"),
    })?;
    from_claims(alg_name, data.claims)
}

fn from_claims(alg: String, claims: Map<String, Value>) -> Result<License, String> {
    let int = |k: &str| -> Result<Option<i64>, String> {
        match claims.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| format!("claim {k}: not a time")),
            Some(_) => Err(format!("claim {k}: not a number")),
        }
    };
    let count = |names: &[&str]| -> Result<Option<u64>, String> {
        for k in names {
            match claims.get(*k) {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) => {
                    return n
                        .as_u64()
                        .map(Some)
                        .ok_or_else(|| format!("claim {k}: not a whole number"));
                }
                Some(_) => return Err(format!("claim {k}: not a number")),
            }
        }
        Ok(None)
    };
    let text = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|k| match claims.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let features = match claims.get("features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|f| {
                f.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "claim features: not a list of names".to_owned())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("claim features: not a list of names".into()),
    };
    Ok(License {
        alg,
        customer: text(&["customer", "customer_name", "sub"])
            .ok_or("no customer (customer or sub claim)")?,
        id: text(&["jti", "license_id"]),
        issuer: text(&["iss"]),
        issued_at: int("iat")?,
        not_before: int("nbf")?,
        expires_at: int("exp")?.ok_or("no exp claim: a license must expire")?,
        features,
        seats: count(&["seats", "max_users"])?,
        max_instances: count(&["max_instances", "instances"])?,
        installation_id: text(&["installation_id"]),
        claims,
    })
}

/// Where a license stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Before `nbf` (or `iat`).
    NotYetValid,
    /// In its term.
    Valid,
    /// Past `exp`, within the grace period.
    Grace,
    /// Past `exp` and the grace period.
    Expired,
}

impl License {
    /// The standing at `now` with `grace` seconds after expiry.
    pub fn standing(&self, now: i64, grace: i64) -> Standing {
        if self.not_before.is_some_and(|t| now < t) {
            Standing::NotYetValid
        } else if now < self.expires_at {
            Standing::Valid
        } else if now < self.expires_at.saturating_add(grace) {
            Standing::Grace
        } else {
            Standing::Expired
        }
    }

    /// Whole days until expiry at `now` (negative once past it).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.expires_at - now).div_euclid(86_400)
    }

    /// Whether `feature` is licensed.
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// What names this license in the anchor: its id, else a digest of the claims.
    pub fn key(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let d = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                &serde_json::to_vec(&self.claims).unwrap_or_default(),
            );
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..12])
        })
    }
}

/// What to put in a license (`rampart license issue`).
#[derive(Debug, Clone, Default)]
pub struct Issue {
    /// Customer name.
    pub customer: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Issued at (Unix seconds).
    pub issued_at: i64,
    /// License id (`jti`).
    pub id: Option<String>,
    /// Issuer.
    pub issuer: Option<String>,
    /// Audience (the product).
    pub audience: Option<String>,
    /// Features.
    pub features: Vec<String>,
    /// Seats.
    pub seats: Option<u64>,
    /// Instances at once.
    pub max_instances: Option<u64>,
    /// Bound to this installation.
    pub installation_id: Option<String>,
}

/// Signs a license with the vendor's PEM private key.
///
/// # Errors
/// A refused algorithm, or a key that is not one for it.
pub fn issue(i: &Issue, private_key_pem: &[u8], alg: &str) -> Result<String, String> {
    let alg = algorithm(alg)?;
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_key_pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_key_pem),
        _ => EncodingKey::from_rsa_pem(private_key_pem),
    }
    .map_err(|e| format!("the private key is not a {alg:?} key: {e}"))?;
    let mut c = Map::new();
    c.insert("customer".into(), i.customer.clone().into());
    c.insert("sub".into(), i.customer.clone().into());
    c.insert("iat".into(), i.issued_at.into());
    c.insert("nbf".into(), i.issued_at.into());
    c.insert("exp".into(), i.expires_at.into());
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(k.into(), v);
        }
    };
    put("jti", i.id.clone().map(Value::from));
    put("iss", i.issuer.clone().map(Value::from));
    put("aud", i.audience.clone().map(Value::from));
    put("seats", i.seats.map(Value::from));
    put("max_instances", i.max_instances.map(Value::from));
    put(
        "installation_id",
        i.installation_id.clone().map(Value::from),
    );
    c.insert("features".into(), i.features.clone().into());
    jsonwebtoken::encode(&Header::new(alg), &c, &key).map_err(|e| format!("cannot sign: {e}"))
}

// === The anti-rollback anchor ===

/// The format marker of a state file.
pub const STATE_FORMAT: &str = "rampart-license-state/1";

/// The highest time an installation has seen, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// [`STATE_FORMAT`].
    pub format: String,
    /// The installation it belongs to.
    pub installation_id: String,
    /// The highest Unix time seen by a check.
    pub highest_seen: i64,
    /// When this installation first checked a license.
    pub first_seen: i64,
    /// The license last checked ([`License::key`]).
    pub license: String,
    /// HMAC-SHA256 over the fields above, keyed by the installation id (hex).
    pub mac: String,
}

/// Why an anchor cannot be believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// Not a state file, or its MAC does not match.
    Corrupted(String),
    /// A state file of another installation.
    OtherInstallation(String),
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tamper::Corrupted(why) => {
                write!(f, "the license state file is corrupted or edited: {why}")
            }
            Tamper::OtherInstallation(id) => write!(
                f,
                "the license state file belongs to installation {id:?}, not this one"
            ),
        }
    }
}

fn mac_key(installation_id: &str) -> hmac::Key {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{STATE_FORMAT}\0{installation_id}").as_bytes(),
    );
    hmac::Key::new(hmac::HMAC_SHA256, d.as_ref())
}

fn mac_input(a: &Anchor) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        a.format, a.installation_id, a.highest_seen, a.first_seen, a.license
    )
}

impl Anchor {
    /// A fresh anchor at `now`.
    pub fn new(installation_id: &str, now: i64, license: &str) -> Self {
        Self {
            format: STATE_FORMAT.into(),
            installation_id: installation_id.into(),
            highest_seen: now,
            first_seen: now,
            license: license.into(),
            mac: String::new(),
        }
        .sealed()
    }

    /// Moves the anchor to `now` if later, naming `license`; resealed.
    #[must_use]
    pub fn advanced(mut self, now: i64, license: &str) -> Self {
        self.highest_seen = self.highest_seen.max(now);
        license.clone_into(&mut self.license);
        self.sealed()
    }

    fn sealed(mut self) -> Self {
        let tag = hmac::sign(&mac_key(&self.installation_id), mac_input(&self).as_bytes());
        self.mac = crate::manifest::hex(tag.as_ref());
        self
    }

    /// The state file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Reads a state file of `installation_id`, checking its seal.
    ///
    /// # Errors
    /// Not a state file, a broken seal, or another installation's.
    pub fn open(bytes: &[u8], installation_id: &str) -> Result<Self, Tamper> {
        let a: Anchor = serde_json::from_slice(bytes)
            .map_err(|e| Tamper::Corrupted(format!("not a state file: {e}")))?;
        if a.format != STATE_FORMAT {
            return Err(Tamper::Corrupted(format!("format {:?}", a.format)));
        }
        let mac: Vec<u8> = (0..a.mac.len() / 2)
            .filter_map(|i| u8::from_str_radix(a.mac.get(i * 2..i * 2 + 2)?, 16).ok())
            .collect();
        hmac::verify(&mac_key(&a.installation_id), mac_input(&a).as_bytes(), &mac)
            .map_err(|_| Tamper::Corrupted("its MAC does not match its contents".into()))?;
        if a.installation_id != installation_id {
            return Err(Tamper::OtherInstallation(a.installation_id));
        }
        Ok(a)
    }
}

/// Why an installation's anchor cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorError {
    /// Tampering: edited, deleted or foreign state, or a broken installation id.
    Tampered(String),
    /// A file that cannot be read.
    Unreadable(String),
}

/// Reads the installation id and its anchor. `Ok(None)`: neither file exists (a first
/// start). A state file missing while the id exists (or the reverse), an id that is not
/// one, or a state file that does not open is tampering, never a fresh start.
///
/// # Errors
/// As above, or a file that exists and cannot be read.
pub fn read_anchor(
    state_path: &std::path::Path,
    id_path: &std::path::Path,
) -> Result<Option<Anchor>, AnchorError> {
    let read = |p: &std::path::Path| match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AnchorError::Unreadable(format!(
            "cannot read {}: {e}",
            p.display()
        ))),
    };
    let id = read(id_path)?.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    match (id, read(state_path)?) {
        (None, None) => Ok(None),
        (Some(id), _) if !valid_installation_id(&id) => Err(AnchorError::Tampered(format!(
            "{} does not hold an installation id",
            id_path.display()
        ))),
        (Some(_), None) => Err(AnchorError::Tampered(format!(
            "the license state file {} is gone but this installation ({}) has run before: a deleted state file is not a fresh start",
            state_path.display(),
            id_path.display()
        ))),
        (None, Some(_)) => Err(AnchorError::Tampered(format!(
            "the installation id {} is gone but its license state {} remains",
            id_path.display(),
            state_path.display()
        ))),
        (Some(id), Some(bytes)) => Anchor::open(&bytes, &id)
            .map(Some)
            .map_err(|t| AnchorError::Tampered(format!("{}: {t}", state_path.display()))),
    }
}

/// Whether `id` may name an installation: 8–128 of `A-Za-z0-9._-`.
pub fn valid_installation_id(id: &str) -> bool {
    (8..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new installation id: 128 random bits, hex.
pub fn new_installation_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    crate::manifest::hex(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_detects_edits_and_other_installations() {
        let a = Anchor::new("install-0001", 1_000, "lic-1");
        let bytes = a.to_bytes();
        assert_eq!(Anchor::open(&bytes, "install-0001").unwrap(), a);
        let later = a.clone().advanced(900, "lic-1");
        assert_eq!(later.highest_seen, 1_000, "never moves back");
        let later = a.clone().advanced(2_000, "lic-2");
        assert_eq!((later.highest_seen, later.first_seen), (2_000, 1_000));
        // Moving the clock anchor back by hand breaks the seal.
        let edited = String::from_utf8(later.to_bytes())
            .unwrap()
            .replace("2000", "1500");
        assert!(matches!(
            Anchor::open(edited.as_bytes(), "install-0001"),
            Err(Tamper::Corrupted(_))
        ));
        assert!(matches!(
            Anchor::open(b"{\"format\":", "install-0001"),
            Err(Tamper::Corrupted(_))
        ));
        assert!(matches!(
            Anchor::open(&bytes, "install-0002"),
            Err(Tamper::OtherInstallation(_))
        ));
        assert!(valid_installation_id(&new_installation_id()));
        assert!(!valid_installation_id("a b"));
    }

    #[test]
    fn standing_and_days_left() {
        let l = License {
            alg: "EdDSA".into(),
            customer: "Acme".into(),
            id: None,
            issuer: None,
            issued_at: Some(0),
            not_before: Some(100),
            expires_at: 100 + 10 * 86_400,
            features: vec!["ai".into()],
            seats: None,
            max_instances: None,
            installation_id: None,
            claims: Map::new(),
        };
        assert_eq!(l.standing(50, 0), Standing::NotYetValid);
        assert_eq!(l.standing(100, 0), Standing::Valid);
        assert_eq!(l.days_left(100), 10);
        assert_eq!(l.days_left(101), 9);
        assert_eq!(l.standing(l.expires_at, 86_400), Standing::Grace);
        assert_eq!(l.days_left(l.expires_at + 1), -1);
        assert_eq!(l.standing(l.expires_at + 86_400, 86_400), Standing::Expired);
        assert!(l.has("ai") && !l.has("sso"));
    }

    #[test]
    fn tokens_round_trip_and_symmetric_or_foreign_ones_are_refused() {
        let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let private = pem("PRIVATE KEY", der.as_ref());
        let public = pem(
            "PUBLIC KEY",
            &[
                &[
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ][..],
                aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref(),
            ]
            .concat(),
        );
        let t = issue(
            &Issue {
                customer: "Acme".into(),
                expires_at: 2_000_000_000,
                issued_at: 1_700_000_000,
                id: Some("lic-7".into()),
                features: vec!["ai".into(), "sso".into()],
                seats: Some(50),
                ..Issue::default()
            },
            private.as_bytes(),
            "EdDSA",
        )
        .unwrap();
        let l = verify(&t, public.as_bytes(), &Expect::default()).unwrap();
        assert_eq!(l.customer, "Acme");
        assert_eq!(l.features, ["ai", "sso"]);
        assert_eq!((l.seats, l.id.as_deref()), (Some(50), Some("lic-7")));
        let e = verify(
            &t,
            public.as_bytes(),
            &Expect {
                algorithm: Some("RS256"),
                ..Expect::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("only RS256"), "{e}");
        // A token re-signed with HS256 using the public key as the secret (the classic
        // algorithm confusion) is refused before any key is used.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"customer": "Mallory", "exp": 4_000_000_000_i64}),
            &EncodingKey::from_secret(public.as_bytes()).unwrap(),
        )
        .unwrap();
        let e = verify(&forged, public.as_bytes(), &Expect::default()).unwrap_err();
        assert!(e.contains("shared secret"), "{e}");
        // A changed payload breaks the signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"customer":"Acme","exp":4000000000}"#);
        parts[1] = &body;
        let e = verify(&parts.join("."), public.as_bytes(), &Expect::default()).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        assert!(verify("not.a.jwt", public.as_bytes(), &Expect::default()).is_err());
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }
}
