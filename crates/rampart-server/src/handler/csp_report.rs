//! The built-in CSP violation report endpoint (`[csp_report]`, default `/csp-report`): accepts
//! the legacy `report-uri` body (`application/csp-report`, `{"csp-report": {…}}`) and the
//! Reporting API's (`application/reports+json`, a list of `{"type": "csp-violation", "body":
//! {…}}`), size- and rate-limited, and writes each violation to the audit stream
//! (`csp.violation`) and a counter per directive.

use std::net::IpAddr;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rampart_config::site::CspReport;
use serde_json::Value;

use crate::policy::limiter::Decision;
use crate::policy::Env;
use crate::wire::body::Body;
use crate::wire::refusal::Refusal;

/// One violation, in the legacy field names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Violation {
    /// `document-uri`.
    pub document_uri: String,
    /// `effective-directive` (or `violated-directive`'s name).
    pub directive: String,
    /// `blocked-uri`.
    pub blocked_uri: String,
    /// `source-file`.
    pub source_file: String,
    /// `line-number`.
    pub line: u64,
    /// `enforce` or `report`.
    pub disposition: String,
}

/// Parses a report body; `None` when it is not a CSP report.
pub fn parse(content_type: &str, body: &[u8]) -> Option<Vec<Violation>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |o: &Value, k: &str| {
        o.get(k)
            .and_then(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let num = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    let directive_of = |eff: String, violated: String| {
        if eff.is_empty() {
            violated
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            eff
        }
    };
    if content_type.starts_with("application/csp-report")
        || (content_type.starts_with("application/json") && v.get("csp-report").is_some())
    {
        let r = v.get("csp-report")?;
        if !r.is_object() {
            return None;
        }
        return Some(vec![Violation {
            document_uri: text(r, "document-uri"),
            directive: directive_of(
                text(r, "effective-directive"),
                text(r, "violated-directive"),
            ),
            blocked_uri: text(r, "blocked-uri"),
            source_file: text(r, "source-file"),
            line: num(r, "line-number"),
            disposition: text(r, "disposition"),
        }]);
    }
    let list = v.as_array()?;
    let mut out = Vec::new();
    for item in list {
        if item.get("type").and_then(Value::as_str) != Some("csp-violation") {
            continue;
        }
        let b = item.get("body").filter(|b| b.is_object())?;
        out.push(Violation {
            document_uri: text(b, "documentURL"),
            directive: directive_of(text(b, "effectiveDirective"), String::new()),
            blocked_uri: text(b, "blockedURL"),
            source_file: text(b, "sourceFile"),
            line: num(b, "lineNumber"),
            disposition: text(b, "disposition"),
        });
    }
    (!out.is_empty() || list.is_empty()).then_some(out)
}

/// A directive name as a bounded metric label.
fn label(d: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "default-src",
        "script-src",
        "script-src-elem",
        "script-src-attr",
        "style-src",
        "style-src-elem",
        "style-src-attr",
        "img-src",
        "font-src",
        "connect-src",
        "media-src",
        "object-src",
        "frame-src",
        "child-src",
        "worker-src",
        "manifest-src",
        "base-uri",
        "form-action",
        "frame-ancestors",
        "navigate-to",
        "trusted-types",
        "require-trusted-types-for",
        "upgrade-insecure-requests",
    ];
    KNOWN.iter().find(|k| **k == d).copied().unwrap_or("other")
}

/// Strips the query and fragment of a reported URL (they may carry personal data) and
/// bounds its length.
fn clean_url(u: &str) -> String {
    let cut = u.find(['?', '#']).unwrap_or(u.len());
    u[..cut].chars().take(512).collect()
}

/// Answers a request to the report endpoint.
///
/// # Errors
/// 405 for a method other than POST, 415 for another body type, 413 over `max_body`, 429
/// over the rate, 400 for a body that is not a report.
pub async fn handle(
    edge: &Env<'_>,
    rep: &CspReport,
    req: Request<Body>,
    ip: IpAddr,
    request_id: &HeaderValue,
) -> Result<Response<Body>, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::MethodNotAllowed(HeaderValue::from_static("POST")));
    }
    if let Some(store) = &edge.policies.csp_limit {
        if let Decision::Refuse { retry_after, reset } =
            store.check(&ip.to_string(), edge.policies.now())
        {
            return Err(Refusal::RateLimited {
                retry_after: retry_after.div_ceil(1_000_000_000),
                limit: store.quota(),
                reset: reset.div_ceil(1_000_000_000),
            });
        }
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !(ct.starts_with("application/csp-report")
        || ct.starts_with("application/reports+json")
        || ct.starts_with("application/json"))
    {
        return Err(Refusal::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > rep.max_body) {
        return Err(Refusal::PayloadTooLarge);
    }
    let limit = usize::try_from(rep.max_body).unwrap_or(usize::MAX);
    let body = http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Refusal::PayloadTooLarge
            } else {
                Refusal::BadRequest("bad_request")
            }
        })?
        .to_bytes();
    let violations = parse(&ct, &body).ok_or(Refusal::BadRequest("bad_report"))?;
    let rid = request_id.to_str().unwrap_or_default();
    for v in &violations {
        let directive = label(&v.directive);
        edge.metrics.csp_violation(directive);
        let mut m = crate::observe::audit::line(edge, "csp.violation", "info");
        m.insert("ip", edge.logs.ip(ip).into());
        m.insert("directive", directive.into());
        m.insert("document_uri", clean_url(&v.document_uri).into());
        m.insert("blocked_uri", clean_url(&v.blocked_uri).into());
        m.insert("source_file", clean_url(&v.source_file).into());
        m.insert("line", v.line.into());
        m.insert(
            "disposition",
            v.disposition.chars().take(16).collect::<String>().into(),
        );
        m.insert("request_id", rid.into());
        crate::observe::audit::send(edge, m);
    }
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_report_formats_parse() {
        let legacy = br#"{"csp-report":{"document-uri":"https://a.example/p?x=1","violated-directive":"script-src-elem 'self'","effective-directive":"script-src-elem","blocked-uri":"inline","source-file":"https://a.example/p","line-number":12,"disposition":"enforce"}}"#;
        let v = parse("application/csp-report", legacy).unwrap();
        assert_eq!(v[0].directive, "script-src-elem");
        assert_eq!(v[0].line, 12);
        let modern = br#"[{"type":"csp-violation","url":"https://a.example/","body":{"documentURL":"https://a.example/","effectiveDirective":"style-src-attr","blockedURL":"inline","sourceFile":"https://a.example/","lineNumber":3,"disposition":"report"}},{"type":"deprecation","body":{}}]"#;
        let v = parse("application/reports+json", modern).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].directive, "style-src-attr");
        assert_eq!(
            clean_url("https://a.example/p?token=1#x"),
            "https://a.example/p"
        );
        for bad in [&b"{"[..], b"[1,2]", b"{\"csp-report\": 5}", b"\"x\"", b"{}"] {
            assert!(parse("application/csp-report", bad).is_none(), "{bad:?}");
        }
        assert_eq!(label("script-src"), "script-src");
        assert_eq!(label("made-up"), "other");
    }
}
