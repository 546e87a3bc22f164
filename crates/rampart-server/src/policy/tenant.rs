//! Tenant header per route (`tenant = { header, pattern, claim }`): the header must be
//! present (400 `tenant_required`), match its pattern whole (400 `tenant_invalid`) and,
//! with `claim`, equal that claim of the request's token (403 `tenant_mismatch`).

use http::Request;
use rampart_config::policy::Tenant;

use super::auth::{self, Identity};
use super::refused::{refuse, Refused};
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// A route's tenant rule, its pattern compiled once.
#[derive(Debug)]
pub struct Compiled {
    rule: Tenant,
    pattern: Option<regex_lite::Regex>,
}

impl Compiled {
    /// Compiles `rule` (its pattern was validated when the config was read; one that
    /// still fails to compile matches nothing).
    pub fn new(rule: &Tenant) -> Self {
        Self {
            rule: rule.clone(),
            pattern: regex_lite::Regex::new(&format!("^(?:{})$", rule.pattern)).ok(),
        }
    }

    /// Checks `req`, authenticated as `identity`.
    ///
    /// # Errors
    /// 400 `tenant_required` / `tenant_invalid`, 403 `tenant_mismatch`.
    pub fn check(&self, req: &Request<Body>, identity: Option<&Identity>) -> Result<(), Refused> {
        let t = &self.rule;
        let value = match req.headers().get(&t.header).map(http::HeaderValue::to_str) {
            None => {
                return Err(refuse(
                    Refusal::BadRequest("tenant_required"),
                    "tenant.missing",
                    format!("no {} header", t.header),
                ))
            }
            Some(Err(_)) => "\u{0}",
            Some(Ok(v)) => v,
        };
        if !self.pattern.as_ref().is_some_and(|re| re.is_match(value)) {
            return Err(refuse(
                Refusal::BadRequest("tenant_invalid"),
                "tenant.invalid",
                format!("{} does not match its pattern", t.header),
            ));
        }
        if let Some(claim) = &t.claim {
            let from_token = identity
                .and_then(|i| i.claims.get(claim))
                .and_then(auth::claim_text);
            if from_token.as_deref() != Some(value) {
                return Err(refuse(
                    Refusal::Forbidden("tenant_mismatch"),
                    "tenant.mismatch",
                    format!("{} does not match the token's {claim:?} claim", t.header),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn rule(claim: Option<&str>) -> Compiled {
        Compiled::new(&Tenant {
            header: HeaderName::from_static("x-tenant-id"),
            pattern: "[a-z0-9-]{1,32}".into(),
            claim: claim.map(str::to_owned),
        })
    }

    fn req(tenant: Option<&[u8]>) -> Request<Body> {
        let mut r = Request::get("/").body(Body::Empty).unwrap();
        if let Some(t) = tenant {
            r.headers_mut()
                .insert("x-tenant-id", http::HeaderValue::from_bytes(t).unwrap());
        }
        r
    }

    fn token(tenant: &str) -> Identity {
        let mut claims = serde_json::Map::new();
        claims.insert("tid".into(), tenant.into());
        Identity {
            method: "jwt",
            subject: "u1".into(),
            claims,
        }
    }

    #[test]
    fn allowed_when_the_header_matches_and_agrees_with_the_token() {
        assert!(rule(None).check(&req(Some(b"acme")), None).is_ok());
        let id = token("acme");
        assert!(rule(Some("tid"))
            .check(&req(Some(b"acme")), Some(&id))
            .is_ok());
    }

    #[test]
    fn refused_when_missing_malformed_or_not_the_tokens() {
        let code = |r: Result<(), Refused>| r.unwrap_err().refusal;
        assert_eq!(
            code(rule(None).check(&req(None), None)),
            Refusal::BadRequest("tenant_required")
        );
        // The pattern must match the whole value.
        assert_eq!(
            code(rule(None).check(&req(Some(b"acme/../other")), None)),
            Refusal::BadRequest("tenant_invalid")
        );
        let id = token("other");
        assert_eq!(
            code(rule(Some("tid")).check(&req(Some(b"acme")), Some(&id))),
            Refusal::Forbidden("tenant_mismatch")
        );
        // No token at all cannot agree with a claim.
        assert_eq!(
            code(rule(Some("tid")).check(&req(Some(b"acme")), None)),
            Refusal::Forbidden("tenant_mismatch")
        );
    }

    #[test]
    fn a_header_that_is_not_text_is_invalid_not_a_crash() {
        let r = rule(None).check(&req(Some(b"acme\xff")), None);
        assert_eq!(
            r.unwrap_err().refusal,
            Refusal::BadRequest("tenant_invalid")
        );
    }
}
