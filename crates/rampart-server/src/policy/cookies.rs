//! Cookie hardening on proxied responses (`[cookies]`): adds `Secure`, `HttpOnly` and
//! `SameSite` to each upstream `Set-Cookie` that lacks them, never twice. The CSRF cookie
//! and the names in `script_readable` stay readable by scripts (no `HttpOnly`).

use http::header::{self, HeaderValue};

/// Adds missing `Secure`, `HttpOnly` and `SameSite` attributes to upstream cookies.
pub fn harden(h: &mut http::HeaderMap, cfg: &rampart_config::policy::Cookies, csrf_cookie: &str) {
    if !h.contains_key(header::SET_COOKIE) {
        return;
    }
    let old: Vec<HeaderValue> = match h.entry(header::SET_COOKIE) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return,
    };
    for v in old {
        let Ok(s) = v.to_str() else {
            h.append(header::SET_COOKIE, v);
            continue;
        };
        let name = s.split(['=', ';']).next().unwrap_or("").trim();
        let attrs: Vec<String> = s
            .split(';')
            .skip(1)
            .map(|a| {
                a.split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        let has = |a: &str| attrs.iter().any(|x| x == a);
        let mut out = s.trim_end_matches([';', ' ']).to_owned();
        if cfg.secure && !has("secure") {
            out.push_str("; Secure");
        }
        let readable = name == csrf_cookie || cfg.script_readable.iter().any(|n| n == name);
        if cfg.httponly && !readable && !has("httponly") {
            out.push_str("; HttpOnly");
        }
        if let Some(ss) = &cfg.samesite {
            if !has("samesite") {
                out.push_str("; SameSite=");
                out.push_str(ss);
            }
        }
        h.append(header::SET_COOKIE, HeaderValue::from_str(&out).unwrap_or(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_cookies(h: &http::HeaderMap) -> Vec<&str> {
        h.get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn cookies_are_hardened_without_duplicating_attributes() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("sid=abc; Path=/"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("pref=1; secure; HttpOnly; SameSite=Strict"),
        );
        h.append(header::SET_COOKIE, HeaderValue::from_static("csrf_token=x"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("ui=dark"));
        let cfg = rampart_config::policy::Cookies {
            script_readable: vec!["ui".into()],
            ..Default::default()
        };
        harden(&mut h, &cfg, "csrf_token");
        assert_eq!(
            set_cookies(&h),
            [
                "sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax",
                "pref=1; secure; HttpOnly; SameSite=Strict",
                "csrf_token=x; Secure; SameSite=Lax",
                "ui=dark; Secure; SameSite=Lax",
            ]
        );
    }

    #[test]
    fn nothing_added_when_switched_off_or_no_cookie() {
        let mut h = http::HeaderMap::new();
        let off = rampart_config::policy::Cookies {
            secure: false,
            httponly: false,
            samesite: None,
            script_readable: Vec::new(),
        };
        harden(&mut h, &off, "csrf_token");
        assert!(h.is_empty());
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        harden(&mut h, &off, "csrf_token");
        assert_eq!(set_cookies(&h), ["a=1"]);
    }

    #[test]
    fn a_value_that_is_not_text_passes_unchanged() {
        let mut h = http::HeaderMap::new();
        let odd = HeaderValue::from_bytes(b"a=\xff").unwrap();
        h.append(header::SET_COOKIE, odd.clone());
        harden(
            &mut h,
            &rampart_config::policy::Cookies::default(),
            "csrf_token",
        );
        assert_eq!(h.get(header::SET_COOKIE), Some(&odd));
    }
}
