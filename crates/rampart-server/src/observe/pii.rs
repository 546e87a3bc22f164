//! PII masking for log lines: e-mail addresses, phone numbers, card numbers (Luhn-checked,
//! so order numbers and timestamps stay), bearer tokens and JWTs, well-known API key
//! formats, secrets in query strings, plus the operator's own rules. Each rule runs only
//! when a cheap test says it could match, so an ordinary line costs a few byte scans.

use regex_lite::{Captures, Regex};

/// The compiled rules.
#[derive(Debug)]
pub struct Masker {
    builtin: Option<Builtin>,
    extra: Vec<(Regex, String)>,
}

#[derive(Debug)]
struct Builtin {
    email: Regex,
    bearer: Regex,
    jwt: Regex,
    keys: Regex,
    query: Regex,
    card: Regex,
    phone: Regex,
}

// INVARIANT: the patterns below are constants that compile (a unit test checks them).
fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("built-in PII pattern {p:?}: {e}"))
}

impl Builtin {
    fn new() -> Self {
        Self {
            email: re(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
            bearer: re(r"(?i)\b(bearer|basic|token)\s+([A-Za-z0-9._~+/=\-]{8,})"),
            jwt: re(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
            keys: re(concat!(
                r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{8,}",
                r"|\bAKIA[0-9A-Z]{16}\b",
                r"|\bgh[pousr]_[A-Za-z0-9]{20,}",
                r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}",
                r"|\bglpat-[A-Za-z0-9_\-]{20,}",
                r"|\brmp_[A-Za-z0-9]{4,}_[A-Za-z0-9_\-]{16,}",
            )),
            query: re(concat!(
                r"(?i)([?&;]|\b)(password|passwd|pwd|pass|secret|client_secret|token|",
                r"access_token|refresh_token|id_token|api_key|apikey|api-key|key|auth|",
                r"signature|sig|session|sessionid)=([^&\s]+)"
            )),
            card: re(r"\b\d(?:[ \-]?\d){12,18}\b"),
            phone: re(concat!(
                r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){1,4}\b",
                r"|\(\d{3}\)\s?\d{3}[ .\-]\d{4}\b",
                r"|\b\d{3}[.\-]\d{3}[.\-]\d{4}\b",
            )),
        }
    }
}

/// Whether the digits of `s` pass the Luhn check.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl Masker {
    /// Built-in rules when `pii` is on, then `extra` (pattern, replacement) rules, which
    /// were checked to compile when the config was read.
    pub fn new(pii: bool, extra: &[(String, String)]) -> Self {
        Self {
            builtin: pii.then(Builtin::new),
            extra: extra
                .iter()
                .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, r.clone())))
                .collect(),
        }
    }

    /// The masked text, or `None` when nothing in `s` needed masking.
    pub fn mask(&self, s: &str) -> Option<String> {
        let mut cur: Option<String> = None;
        let apply = |cur: &mut Option<String>, f: &dyn Fn(&str) -> Option<String>| {
            let text = cur.as_deref().unwrap_or(s);
            if let Some(m) = f(text) {
                *cur = Some(m);
            }
        };
        if let Some(b) = &self.builtin {
            let bytes = s.as_bytes();
            // One pass decides which rules could match at all.
            let (mut digits, mut eq, mut at, mut sep, mut dot, mut space) =
                (0usize, false, false, false, false, false);
            for &c in bytes {
                match c {
                    b'0'..=b'9' => digits += 1,
                    b'=' => eq = true,
                    b'@' => at = true,
                    b'_' | b'-' => sep = true,
                    b'.' => dot = true,
                    b' ' | b'\t' => space = true,
                    _ => {}
                }
            }
            if eq {
                apply(&mut cur, &|t| {
                    changed(
                        t,
                        b.query.replace_all(t, |c: &Captures<'_>| {
                            format!("{}{}=[masked]", &c[1], &c[2])
                        }),
                    )
                });
            }
            if dot && s.contains("eyJ") {
                apply(&mut cur, &|t| changed(t, b.jwt.replace_all(t, "[jwt]")));
            }
            if space
                && (contains_ci(bytes, b"bearer")
                    || contains_ci(bytes, b"basic")
                    || contains_ci(bytes, b"token"))
            {
                apply(&mut cur, &|t| {
                    changed(
                        t,
                        b.bearer.replace_all(t, |c: &Captures<'_>| {
                            // A credential has digits or length; "token refilled" is prose.
                            let v = &c[2];
                            if v.len() >= 20 || v.bytes().any(|x| x.is_ascii_digit()) {
                                format!("{} [masked]", &c[1])
                            } else {
                                c[0].to_owned()
                            }
                        }),
                    )
                });
            }
            if (sep
                && ["sk_", "pk_", "rk_", "gh", "xox", "glpat-", "rmp_"]
                    .iter()
                    .any(|p| s.contains(p)))
                || (digits > 0 && s.contains("AKIA"))
            {
                apply(&mut cur, &|t| changed(t, b.keys.replace_all(t, "[key]")));
            }
            if at {
                apply(&mut cur, &|t| changed(t, b.email.replace_all(t, "[email]")));
            }
            if digits >= 13 && digit_run(bytes, b" -") >= 13 {
                apply(&mut cur, &|t| {
                    changed(
                        t,
                        b.card.replace_all(t, |c: &Captures<'_>| {
                            if luhn(&c[0]) {
                                "[card]".to_owned()
                            } else {
                                c[0].to_owned()
                            }
                        }),
                    )
                });
            }
            if digits >= 9 && digit_run(bytes, b" .-()+") >= 9 {
                apply(&mut cur, &|t| changed(t, b.phone.replace_all(t, "[phone]")));
            }
        }
        for (re, rep) in &self.extra {
            apply(&mut cur, &|t| changed(t, re.replace_all(t, rep.as_str())));
        }
        cur
    }
}

fn changed(before: &str, after: std::borrow::Cow<'_, str>) -> Option<String> {
    match after {
        std::borrow::Cow::Owned(s) if s != before => Some(s),
        _ => None,
    }
}

/// The most digits in one stretch of digits and `seps`.
fn digit_run(s: &[u8], seps: &[u8]) -> usize {
    let (mut best, mut cur) = (0, 0);
    for &c in s {
        if c.is_ascii_digit() {
            cur += 1;
            best = best.max(cur);
        } else if !seps.contains(&c) {
            cur = 0;
        }
    }
    best
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        Masker::new(true, &[])
            .mask(s)
            .unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn personal_data_is_masked() {
        let cases = [
            (
                "/users/jane.doe+news@example.co.uk/profile",
                "/users/[email]/profile",
            ),
            (
                "contact ops@mail.internal.example.com now",
                "contact [email] now",
            ),
            ("card 4111 1111 1111 1111 ok", "card [card] ok"),
            ("card 5500-0000-0000-0004", "card [card]"),
            ("4012888888881881", "[card]"),
            ("call +1 415 555 2671 today", "call [phone] today"),
            ("call +44 20 7946 0958", "call [phone]"),
            ("call (415) 555-2671", "call [phone]"),
            ("call 415-555-2671", "call [phone]"),
            (
                "Authorization: Bearer abcdef1234567890.xyz",
                "Authorization: Bearer [masked]",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
                "jwt [jwt]",
            ),
            ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "key [key]"),
            ("aws AKIAIOSFODNN7EXAMPLE", "aws [key]"),
            ("gh ghp_1234567890abcdefghijABCDEFGHIJ", "gh [key]"),
            (
                "/login?user=bob&password=hunter2&x=1",
                "/login?user=bob&password=[masked]&x=1",
            ),
            (
                "/cb?code=abc&access_token=tok123",
                "/cb?code=abc&access_token=[masked]",
            ),
            ("/a?api_key=K123", "/a?api_key=[masked]"),
        ];
        for (input, want) in cases {
            assert_eq!(m(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in [
            "2026-11-22T18:52:46.123Z",
            "/api/orders/1234567890123",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.6099.109 Safari/537.36",
            "6393a8780c2b7e63300e578f74c7054a",
            "GET /static/app.3f2a1b9c.js",
            "127.0.0.1:29000",
            "192.168.100.200",
            "order 1234567812345678 shipped",
            "version 1.2.3-beta_4",
            "duration 12.345 ms, 404 not found",
            "token bucket refilled",
            "token refilled again",
            "/search?q=shoes&page=2",
        ] {
            assert_eq!(m(s), s, "{s}");
        }
    }

    #[test]
    fn luhn_check() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("1234"));
    }

    #[test]
    fn extra_rules_apply_and_masking_can_be_off() {
        let x = Masker::new(false, &[("emp-[0-9]{6}".into(), "[employee]".into())]);
        assert_eq!(
            x.mask("id emp-123456 jane@example.com").unwrap(),
            "id [employee] jane@example.com"
        );
        assert!(x.mask("nothing here").is_none());
    }
}
