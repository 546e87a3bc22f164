//! Authentication: API keys (hashed, constant-time compared) and JWT (algorithm pinned by
//! config, keys from a secret, a PEM public key or a JWKS document).

use std::collections::HashSet;

use http::{header, HeaderMap};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rampart_config::policy::{ApiKeys, Jwt, JwtAlg, JwtKey};
use rampart_config::ConfigError;
use serde_json::{Map, Value};

/// Who a request is, once authenticated.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `jwt` or `api_key`.
    pub method: &'static str,
    /// JWT `sub`, or the API key's name.
    pub subject: String,
    /// The JWT's claims (empty for API keys).
    pub claims: Map<String, Value>,
}

/// Why authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials of this kind were sent.
    Missing,
    /// Credentials were sent and are wrong; the reason is for logs, never the client.
    Invalid(&'static str),
}

/// Constant-time equality of two digests.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the API key header.
pub fn api_key(keys: &ApiKeys, headers: &HeaderMap) -> Result<Identity, AuthError> {
    let Some(v) = headers.get(&keys.header) else {
        return Err(AuthError::Missing);
    };
    if v.is_empty() {
        return Err(AuthError::Missing);
    }
    let digest = rampart_config::policy::sha256(v.as_bytes());
    // Every key is compared, so timing does not reveal which one (or whether any) matched.
    let mut found = None;
    for (name, hash) in &keys.keys {
        if ct_eq(&digest, hash) {
            found = Some(name);
        }
    }
    match found {
        Some(name) => Ok(Identity {
            method: "api_key",
            subject: name.clone(),
            claims: Map::new(),
        }),
        None => Err(AuthError::Invalid("unknown api key")),
    }
}

/// A ready JWT verifier.
pub struct JwtVerifier {
    config: Jwt,
    validation: Validation,
    /// (kid, key); a single key with no kid matches any token.
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("alg", &self.config.alg)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn algorithm(a: JwtAlg) -> Algorithm {
    match a {
        JwtAlg::HS256 => Algorithm::HS256,
        JwtAlg::HS384 => Algorithm::HS384,
        JwtAlg::HS512 => Algorithm::HS512,
        JwtAlg::RS256 => Algorithm::RS256,
        JwtAlg::RS384 => Algorithm::RS384,
        JwtAlg::RS512 => Algorithm::RS512,
        JwtAlg::ES256 => Algorithm::ES256,
        JwtAlg::EdDSA => Algorithm::EdDSA,
    }
}

impl JwtVerifier {
    /// Parses the configured keys.
    ///
    /// # Errors
    /// A key that does not parse or does not fit the algorithm, naming `jwt.public_key`
    /// or `jwt.jwks`.
    pub fn new(config: &Jwt) -> Result<Self, ConfigError> {
        let alg = algorithm(config.alg);
        let keys = match &config.key {
            JwtKey::Secret(s, previous) => {
                let mut keys = vec![(None, DecodingKey::from_secret(s))];
                if let Some(p) = previous {
                    keys.push((None, DecodingKey::from_secret(p)));
                }
                keys
            }
            JwtKey::PublicKeyPem(pem) => {
                let k = match config.alg {
                    JwtAlg::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
                    JwtAlg::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                    _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
                }
                .map_err(|e| {
                    ConfigError::new(
                        "jwt.public_key",
                        format!("not a PEM public key for {:?}: {e}", config.alg),
                    )
                })?;
                vec![(None, k)]
            }
            JwtKey::Jwks(text) => {
                let set: JwkSet = serde_json::from_str(text).map_err(|e| {
                    ConfigError::new("jwt.jwks", format!("not a JWKS document: {e}"))
                })?;
                let mut keys = Vec::new();
                for (i, jwk) in set.keys.iter().enumerate() {
                    let k = DecodingKey::from_jwk(jwk).map_err(|e| {
                        ConfigError::new(format!("jwt.jwks.keys[{i}]"), format!("{e}"))
                    })?;
                    keys.push((jwk.common.key_id.clone(), k));
                }
                if keys.is_empty() {
                    return Err(ConfigError::new("jwt.jwks", "the key set is empty"));
                }
                keys
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.audience);
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            config: config.clone(),
            validation,
            keys,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Jwt {
        &self.config
    }

    /// Verifies the `Authorization: Bearer` token, if any.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Err(AuthError::Missing);
        };
        let v = v
            .to_str()
            .map_err(|_| AuthError::Invalid("malformed header"))?;
        let Some((scheme, token)) = v.split_once(' ') else {
            return Err(AuthError::Invalid("malformed header"));
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            // Another scheme (Basic, …) is not a bearer token.
            return Err(AuthError::Missing);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        self.verify_token(token)
    }

    /// Verifies one token.
    pub fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("malformed token"))?;
        if header.alg != self.validation.algorithms[0] {
            return Err(AuthError::Invalid("wrong algorithm"));
        }
        let key = match (&header.kid, self.keys.as_slice()) {
            (_, [(None, k)]) => k,
            // A rotation: the current secret, then the previous one.
            (_, [(None, current), (None, previous)]) => {
                let first = self.decode(token, current);
                return match first {
                    Err(AuthError::Invalid("bad signature")) => self.decode(token, previous),
                    other => other,
                };
            }
            (Some(kid), keys) => keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid))
                .map(|(_, k)| k)
                .ok_or(AuthError::Invalid("unknown key id"))?,
            (None, [(_, k)]) => k,
            (None, _) => return Err(AuthError::Invalid("no key id")),
        };
        self.decode(token, key)
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                AuthError::Invalid(match e.kind() {
                    K::ExpiredSignature => "expired",
                    K::ImmatureSignature => "not yet valid",
                    K::InvalidSignature => "bad signature",
                    K::InvalidIssuer => "wrong issuer",
                    K::InvalidAudience => "wrong audience",
                    K::InvalidAlgorithm => "wrong algorithm",
                    K::MissingRequiredClaim(_) => "missing claim",
                    _ => "invalid token",
                })
            })?;
        let claims = data.claims;
        if let Some(before) = self.config.revoke_before {
            match claims.get("iat").and_then(Value::as_u64) {
                Some(iat) if iat >= before => {}
                _ => return Err(AuthError::Invalid("revoked")),
            }
        }
        if let Some(max) = self.config.max_lifetime {
            let (Some(iat), Some(exp)) = (
                claims.get("iat").and_then(Value::as_u64),
                claims.get("exp").and_then(Value::as_u64),
            ) else {
                return Err(AuthError::Invalid("missing claim"));
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if iat > now + self.config.leeway.as_secs() {
                return Err(AuthError::Invalid("issued in the future"));
            }
            if exp.saturating_sub(iat) > max.as_secs() {
                return Err(AuthError::Invalid("lifetime too long"));
            }
        }
        let subject = match claims.get("sub") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Ok(Identity {
            method: "jwt",
            subject,
            claims,
        })
    }
}

/// Claim value as a header-safe string (strings as they are, numbers and booleans
/// printed; anything else is not forwarded).
pub fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Header names the edge sets from an identity; client-sent copies are always removed.
pub fn identity_headers(jwt: Option<&Jwt>) -> Vec<http::HeaderName> {
    let mut v: HashSet<http::HeaderName> = HashSet::new();
    v.insert(http::HeaderName::from_static("x-auth-subject"));
    v.insert(http::HeaderName::from_static("x-auth-method"));
    if let Some(j) = jwt {
        v.extend(j.forward.iter().map(|(_, h)| h.clone()));
    }
    let mut v: Vec<_> = v.into_iter().collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v
}
