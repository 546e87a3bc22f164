//! Authentication: API keys (hashed, constant-time compared) and JWT (algorithm pinned by
//! config, keys from a secret, a PEM public key or a JWKS document).

use std::collections::HashSet;

use http::header::{HeaderName, HeaderValue};
use http::{header, HeaderMap};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rampart_config::policy::{ApiKeys, AuthMethod, Jwt, JwtAlg, JwtKey};
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

use super::refused::{refuse, Refused};
use crate::wire::client_cert::ClientCert;
use crate::wire::refusal::Refusal;

/// `X-Auth-Subject`: who the request is, as forwarded upstream (a client's own copy is
/// removed on arrival).
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
const X_AUTH_METHOD: HeaderName = HeaderName::from_static("x-auth-method");

/// The credentials an edge checks: its JWT verifier and API keys, when configured.
#[derive(Debug, Clone, Copy)]
pub struct Verifiers<'a> {
    /// `[jwt]`, compiled.
    pub jwt: Option<&'a JwtVerifier>,
    /// `[api_keys]`.
    pub api_keys: Option<&'a ApiKeys>,
    /// Tokens revoked at runtime (by id or by a cut-off).
    pub revoked: &'a crate::state::Revocations,
}

/// Authenticates a request by the route's `methods`, in order: the first that succeeds
/// names the identity. `Ok(None)` when the route needs none, or `optional` and none was
/// sent.
///
/// # Errors
/// 403 `invalid_credentials` when credentials were sent and are wrong, else 401 with a
/// challenge (audit `auth.failure`).
pub fn authenticate(
    v: Verifiers<'_>,
    methods: &[AuthMethod],
    optional: bool,
    headers: &HeaderMap,
    client_cert: Option<&ClientCert>,
) -> Result<Option<Identity>, Refused> {
    if methods.is_empty() {
        return Ok(None);
    }
    let mut invalid = None;
    for m in methods {
        let r = match m {
            AuthMethod::Jwt => v
                .jwt
                .map_or(Err(AuthError::Missing), |j| j.verify(headers))
                .and_then(|id| {
                    let jti = id.claims.get("jti").and_then(Value::as_str);
                    let iat = id.claims.get("iat").and_then(Value::as_u64);
                    if v.revoked.is_revoked(jti, iat) {
                        Err(AuthError::Invalid("revoked"))
                    } else {
                        Ok(id)
                    }
                }),
            AuthMethod::ApiKey => v
                .api_keys
                .map_or(Err(AuthError::Missing), |k| api_key(k, headers)),
            // The handshake verified it (chain, revocation): presenting one is the proof.
            AuthMethod::Mtls => client_cert.map_or(Err(AuthError::Missing), |c| {
                Ok(Identity {
                    method: "mtls",
                    subject: c.name.clone(),
                    claims: Map::new(),
                })
            }),
        };
        match r {
            Ok(id) => return Ok(Some(id)),
            Err(AuthError::Invalid(why)) => invalid = Some((m, why)),
            Err(AuthError::Missing) => {}
        }
    }
    if let Some((m, why)) = invalid {
        let what = match m {
            AuthMethod::Jwt => "token",
            AuthMethod::ApiKey => "api key",
            AuthMethod::Mtls => "client certificate",
        };
        return Err(refuse(
            Refusal::Forbidden("invalid_credentials"),
            "auth.failure",
            format!("{what}: {why}"),
        ));
    }
    if optional {
        return Ok(None);
    }
    let challenge = if methods.contains(&AuthMethod::Jwt) {
        HeaderValue::from_static("Bearer realm=\"rampart\"")
    } else if v.api_keys.is_none() || !methods.contains(&AuthMethod::ApiKey) {
        // Only a client certificate would do: sent in the TLS handshake, not a header.
        HeaderValue::from_static("ClientCertificate realm=\"rampart\"")
    } else {
        let header = v.api_keys.map_or("X-API-Key", |k| k.header.as_str());
        HeaderValue::from_str(&format!("ApiKey header=\"{header}\""))
            .unwrap_or(HeaderValue::from_static("ApiKey"))
    };
    Err(refuse(
        Refusal::Unauthorized(challenge),
        "auth.failure",
        "no credentials",
    ))
}

/// Tells the upstream who the request is: `X-Auth-Subject`, `X-Auth-Method`, and the
/// JWT claims the config forwards (the client's own copies were removed on arrival).
pub fn forward(id: &Identity, jwt: Option<&JwtVerifier>, h: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&id.subject) {
        h.insert(X_AUTH_SUBJECT, v);
    }
    h.insert(X_AUTH_METHOD, HeaderValue::from_static(id.method));
    let Some(jwt) = jwt.filter(|_| id.method == "jwt") else {
        return;
    };
    for (claim, name) in &jwt.config().forward {
        if claim == "sub" && *name == X_AUTH_SUBJECT {
            continue;
        }
        if let Some(v) = id
            .claims
            .get(claim)
            .and_then(claim_text)
            .and_then(|t| HeaderValue::from_str(&t).ok())
        {
            h.insert(name.clone(), v);
        }
    }
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
                let secret = |s: &[u8]| {
                    DecodingKey::from_secret(s).map_err(|e| {
                        ConfigError::new("jwt.secret", format!("not a usable HMAC key: {e}"))
                    })
                };
                let mut keys = vec![(None, secret(s)?)];
                if let Some(p) = previous {
                    keys.push((None, secret(p)?));
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

/// The client certificate headers the edge sets (`tls.client_ca`).
pub const CLIENT_CERT_HEADERS: [http::HeaderName; 4] = [
    http::HeaderName::from_static("x-client-cert-subject"),
    http::HeaderName::from_static("x-client-cert-san"),
    http::HeaderName::from_static("x-client-cert-fingerprint"),
    http::HeaderName::from_static("x-client-cert-verified"),
];

/// Tells the upstream which client certificate the handshake verified.
pub fn forward_client_cert(c: &ClientCert, h: &mut HeaderMap) {
    let [subject, san, fingerprint, verified] = CLIENT_CERT_HEADERS;
    h.insert(subject, c.subject.clone());
    h.insert(san, c.san.clone());
    h.insert(fingerprint, c.fingerprint.clone());
    h.insert(verified, HeaderValue::from_static("SUCCESS"));
}

/// Header names the edge sets from an identity; client-sent copies are always removed
/// (the client certificate's too, while `mtls` is on).
pub fn identity_headers(jwt: Option<&Jwt>, mtls: bool) -> Vec<http::HeaderName> {
    let mut v: HashSet<http::HeaderName> = HashSet::new();
    v.insert(http::HeaderName::from_static("x-auth-subject"));
    v.insert(http::HeaderName::from_static("x-auth-method"));
    if mtls {
        v.extend(CLIENT_CERT_HEADERS);
    }
    if let Some(j) = jwt {
        v.extend(j.forward.iter().map(|(_, h)| h.clone()));
    }
    let mut v: Vec<_> = v.into_iter().collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys {
            header: HeaderName::from_static("x-api-key"),
            keys: vec![
                ("ci".into(), rampart_config::policy::sha256(b"k-one")),
                ("deploy".into(), rampart_config::policy::sha256(b"k-two")),
            ],
        }
    }

    fn headers(key: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(k) = key {
            h.insert("x-api-key", HeaderValue::from_str(k).unwrap());
        }
        h
    }

    #[test]
    fn a_valid_key_names_its_identity_and_is_forwarded() {
        let k = keys();
        let v = Verifiers {
            jwt: None,
            api_keys: Some(&k),
            revoked: &crate::state::Revocations::default(),
        };
        let id = authenticate(
            v,
            &[AuthMethod::ApiKey],
            false,
            &headers(Some("k-two")),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!((id.method, id.subject.as_str()), ("api_key", "deploy"));
        let mut h = HeaderMap::new();
        forward(&id, None, &mut h);
        assert_eq!(h["x-auth-subject"], "deploy");
        assert_eq!(h["x-auth-method"], "api_key");
        // No methods on the route: nothing to check.
        assert!(authenticate(v, &[], false, &headers(None), None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_wrong_key_is_403_and_none_is_401_with_a_challenge() {
        let k = keys();
        let v = Verifiers {
            jwt: None,
            api_keys: Some(&k),
            revoked: &crate::state::Revocations::default(),
        };
        let r = authenticate(
            v,
            &[AuthMethod::ApiKey],
            false,
            &headers(Some("k-three")),
            None,
        );
        let r = r.unwrap_err();
        assert_eq!(r.refusal, Refusal::Forbidden("invalid_credentials"));
        assert_eq!(r.event, "auth.failure");
        assert!(
            !r.reason.contains("k-three"),
            "the key leaked: {}",
            r.reason
        );
        let r = authenticate(v, &[AuthMethod::ApiKey], false, &headers(None), None).unwrap_err();
        assert_eq!(
            r.refusal,
            Refusal::Unauthorized(HeaderValue::from_static("ApiKey header=\"x-api-key\""))
        );
        // A JWT route without [jwt] configured refuses rather than admits.
        let r = authenticate(v, &[AuthMethod::Jwt], false, &headers(None), None).unwrap_err();
        assert_eq!(
            r.refusal,
            Refusal::Unauthorized(HeaderValue::from_static("Bearer realm=\"rampart\""))
        );
        // Optional: no credentials is fine, wrong ones are not.
        assert!(
            authenticate(v, &[AuthMethod::ApiKey], true, &headers(None), None)
                .unwrap()
                .is_none()
        );
        assert!(authenticate(v, &[AuthMethod::ApiKey], true, &headers(Some("x")), None).is_err());
    }

    #[test]
    fn an_empty_or_odd_key_is_refused_not_crashed() {
        let k = keys();
        let v = Verifiers {
            jwt: None,
            api_keys: Some(&k),
            revoked: &crate::state::Revocations::default(),
        };
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static(""));
        assert!(matches!(
            authenticate(v, &[AuthMethod::ApiKey], false, &h, None)
                .unwrap_err()
                .refusal,
            Refusal::Unauthorized(_)
        ));
        h.insert("x-api-key", HeaderValue::from_bytes(b"\xffk").unwrap());
        assert!(authenticate(v, &[AuthMethod::ApiKey], false, &h, None).is_err());
    }
}
