//! Checks of the application's environment: secrets, DEBUG, log level, allowed hosts,
//! CORS, database and Redis URLs, `.env` syntax, required keys.

use rampart_config::posture::ValueType;
use rampart_config::secret::{weaknesses, SecretKind};

use super::{EnvSource, Inputs, Severity, Sink};

/// The title of one of this module's checks.
pub(crate) fn title(id: &str) -> &'static str {
    CHECKS.iter().find(|(i, _)| *i == id).map_or("", |(_, t)| t)
}

const CHECKS: &[(&str, &str)] = &[
    ("PF-SEC-01", "secrets: length, variety, known prefixes"),
    ("PF-SEC-02", "secrets: no placeholders or known defaults"),
    ("PF-SEC-03", "secrets: randomness (Shannon entropy)"),
    (
        "PF-SEC-04",
        "secrets: rotation fallbacks pass the same rules",
    ),
    ("PF-SEC-05", "secrets: no value shared by two secrets"),
    ("PF-DBG-01", "DEBUG off"),
    ("PF-LOG-01", "log level not DEBUG or TRACE"),
    ("PF-DB-01", "database connections use TLS (sslmode)"),
    ("PF-RDS-01", "Redis connections use TLS (rediss://)"),
    ("PF-ENV-01", ".env syntax (dotenv-linter rules)"),
    ("PF-ENV-02", "required keys present and typed"),
];

/// Whether an origin is acceptable in a production allow-list, and why not: the rule for
/// `CORS_ALLOWED_ORIGINS` here and for the edge's own `[cors]` blocks.
pub(crate) fn origin_problem(o: &str) -> Option<&'static str> {
    let o = o.trim();
    if o == "*" {
        Some("allows every origin")
    } else if o.eq_ignore_ascii_case("null") {
        Some("allows the `null` origin (sandboxed frames, file: pages)")
    } else if o.starts_with("http://") {
        Some("allows a plain-HTTP origin, which any network attacker can impersonate")
    } else if o.contains('*') {
        Some("uses a wildcard: every subdomain (and whoever takes one over) is trusted")
    } else {
        None
    }
}

fn is_truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "y" | "t"
    )
}

pub(crate) fn check(inputs: &Inputs<'_>, s: &mut Sink) {
    if inputs.env.is_empty() {
        for (id, t) in CHECKS {
            s.skip(
                id,
                t,
                "no environment given (--env-file, server.env_file or --process-env)",
            );
        }
        if inputs.config.is_none() {
            s.skip(
                "PF-HOST-01",
                "allowed hosts",
                "no config or environment given",
            );
            s.skip(
                "PF-CORS-01",
                "CORS allow-lists",
                "no config or environment given",
            );
        }
        return;
    }
    for (id, t) in CHECKS {
        s.check(id, t);
    }
    s.check("PF-HOST-01", "allowed hosts");
    s.check("PF-CORS-01", "CORS allow-lists");
    let mut databases = 0;
    for src in &inputs.env {
        secrets(src, s);
        for (key, value, line) in &src.vars {
            let subject = || src.subject(key, *line);
            let k = key.to_ascii_uppercase();
            if (k == "DEBUG" || k.ends_with("_DEBUG")) && is_truthy(value) {
                {
                    s.add(
                        "PF-DBG-01",
                        Severity::Error,
                        subject(),
                        format!("{key} is on: stack traces and settings reach visitors"),
                        format!("set {key}=false"),
                    );
                }
            }
            if k == "LOG_LEVEL" || k.ends_with("_LOG_LEVEL") || k == "RUST_LOG" {
                let lower = value.to_ascii_lowercase();
                if lower.contains("debug") || lower.contains("trace") {
                    s.add(
                        "PF-LOG-01",
                        Severity::Error,
                        subject(),
                        format!(
                            "{key}={value}: debug logs carry request bodies, tokens and queries"
                        ),
                        format!("set {key}=INFO (or WARNING)"),
                    );
                }
            }
            if k == "ALLOWED_HOSTS" || k.ends_with("_ALLOWED_HOSTS") {
                let items = list(value);
                if items.is_empty() {
                    s.add(
                        "PF-HOST-01",
                        Severity::Error,
                        subject(),
                        format!("{key} is empty"),
                        "list the host names the application serves",
                    );
                } else if items.contains(&"*") {
                    s.add(
                        "PF-HOST-01",
                        Severity::Error,
                        subject(),
                        format!("{key} contains *: any Host header is accepted"),
                        "list the host names the application serves",
                    );
                }
            }
            if is_cors_key(&k) {
                for o in list(value) {
                    if let Some(why) = origin_problem(o) {
                        s.add(
                            "PF-CORS-01",
                            Severity::Error,
                            subject(),
                            format!("{o} {why}"),
                            "list the exact https:// origins of your front ends",
                        );
                    }
                }
            }
            if k == "DATABASE_URL" || k.ends_with("_DATABASE_URL") || k == "DB_URL" {
                databases += 1;
                database_url(key, value, subject(), s);
            }
            if k == "DB_SSLMODE" || k == "PGSSLMODE" {
                databases += 1;
                sslmode(key, Some(value), subject(), s);
            }
            if k == "REDIS_URL"
                || k.ends_with("_REDIS_URL")
                || ((k.contains("BROKER") || k.contains("CACHE")) && value.starts_with("redis://"))
            {
                let tls_flag = src.get("REDIS_TLS").is_some_and(is_truthy);
                if value.starts_with("redis://") && !tls_flag {
                    s.add(
                        "PF-RDS-01",
                        Severity::Error,
                        subject(),
                        format!("{key} uses redis:// (plain TCP): passwords and data cross the network in clear"),
                        "use rediss:// (TLS) or a unix:// socket",
                    );
                }
            }
        }
        if let Some(file) = &src.file {
            for l in rampart_config::dotenv::lint(file) {
                s.add(
                    "PF-ENV-01",
                    if l.error {
                        Severity::Error
                    } else {
                        Severity::Info
                    },
                    format!("{}:{}", src.name, l.line),
                    format!("{}: {}", l.rule, l.message),
                    match l.rule {
                        "DuplicatedKey" => "keep one assignment",
                        "KeyWithoutValue" => "write KEY= for an empty value",
                        "IncorrectDelimiter" => "use letters, digits and '_' in keys",
                        "SubstitutionKey" => "close the ${…} reference",
                        _ => "tidy the line (dotenv-linter style)",
                    },
                );
            }
        }
    }
    if databases == 0 {
        s.nothing_to_check(
            "PF-DB-01",
            "no DATABASE_URL, *_DATABASE_URL, DB_URL, DB_SSLMODE or PGSSLMODE in the environment",
        );
    }
    required(inputs, s);
}

fn is_cors_key(k: &str) -> bool {
    k.contains("CORS") && (k.contains("ORIGIN"))
        || k == "ALLOWED_ORIGINS"
        || k.ends_with("_ALLOWED_ORIGINS")
}

fn list(v: &str) -> Vec<&str> {
    let v = v.trim().trim_start_matches('[').trim_end_matches(']');
    v.split([',', ' '])
        .map(|x| x.trim().trim_matches(['"', '\'']))
        .filter(|x| !x.is_empty())
        .collect()
}

fn secrets(src: &EnvSource, s: &mut Sink) {
    let fix = |kind: SecretKind| {
        format!(
            "make one with `rampart secrets generate {}` and set it in the environment or .env",
            kind.as_str()
        )
    };
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (key, value, line) in &src.vars {
        let Some(kind) = SecretKind::of_name(key) else {
            continue;
        };
        if value.contains("${") {
            continue; // a reference to another variable, judged there
        }
        let upper = key.to_ascii_uppercase();
        let subject = src.subject(key, *line);
        let fallbacks = upper.ends_with("_FALLBACKS");
        let plural = upper.ends_with("KEYS") || upper.ends_with("TOKENS") || fallbacks;
        let items: Vec<&str> = if plural {
            list(value)
        } else {
            vec![value.as_str()]
        };
        if fallbacks && items.is_empty() {
            continue;
        }
        for item in if items.is_empty() { vec![""] } else { items } {
            for w in weaknesses(kind, item) {
                let rule = if fallbacks { "PF-SEC-04" } else { w.rule };
                s.add(
                    rule,
                    Severity::Error,
                    subject.clone(),
                    format!("{key} {}", w.why),
                    fix(kind),
                );
            }
            if item.len() >= 8 && !rampart_config::secret::is_placeholder(item) {
                let base = |k: &str| {
                    k.trim_end_matches("_PREVIOUS")
                        .trim_end_matches("_FALLBACKS")
                        .to_owned()
                };
                if let Some((other, _)) = seen
                    .iter()
                    .find(|(k, v)| *v == item && base(k) != base(key))
                {
                    s.add(
                        "PF-SEC-05",
                        Severity::Error,
                        subject.clone(),
                        format!("{key} has the same value as {other}: one leak exposes both"),
                        fix(kind),
                    );
                }
                seen.push((key, item));
            }
        }
    }
}

fn database_url(key: &str, v: &str, subject: String, s: &mut Sink) {
    let lower = v.to_ascii_lowercase();
    let query = |name: &str| {
        lower.split_once('?').map(|(_, q)| q).and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
        })
    };
    if lower.starts_with("postgres://")
        || lower.starts_with("postgresql://")
        || lower.contains("+psycopg")
        || lower.starts_with("postgresql+")
    {
        // asyncpg (guide 000: `postgresql+asyncpg://…?ssl=require`) spells it `ssl`.
        sslmode(
            key,
            query("sslmode").or_else(|| query("ssl")).as_deref(),
            subject,
            s,
        );
    } else if lower.starts_with("mysql") || lower.starts_with("mariadb") {
        let mode = query("ssl-mode")
            .or_else(|| query("sslmode"))
            .or_else(|| query("ssl_mode"));
        match mode.as_deref() {
            Some("verify_identity") => {}
            Some("required" | "require" | "verify_ca" | "verify-ca") => s.add(
                "PF-DB-01",
                Severity::Warn,
                subject,
                format!("{key}: TLS without checking the server's name"),
                "use ssl-mode=VERIFY_IDENTITY",
            ),
            _ => s.add(
                "PF-DB-01",
                Severity::Error,
                subject,
                format!(
                    "{key}: no TLS required (ssl-mode is {})",
                    mode.as_deref().unwrap_or("absent")
                ),
                "add ?ssl-mode=VERIFY_IDENTITY",
            ),
        }
    }
}

fn sslmode(key: &str, mode: Option<&str>, subject: String, s: &mut Sink) {
    match mode.map(str::to_ascii_lowercase).as_deref() {
        Some("verify-full") => {}
        Some(m @ ("require" | "verify-ca")) => s.add(
            "PF-DB-01",
            Severity::Warn,
            subject,
            format!("{key}: sslmode={m} encrypts but does not check the server's name (man in the middle)"),
            "use sslmode=verify-full with sslrootcert",
        ),
        other => s.add(
            "PF-DB-01",
            Severity::Error,
            subject,
            match other {
                Some(m) => format!("{key}: sslmode={m} does not guarantee encryption"),
                None => format!("{key}: no sslmode, so libpq's default `prefer` does not guarantee encryption"),
            },
            "add sslmode=verify-full (or at least require)",
        ),
    }
}

fn required(inputs: &Inputs<'_>, s: &mut Sink) {
    for (key, t) in &inputs.required {
        let found = inputs.env.iter().find_map(|src| {
            src.vars
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, v, l)| (src, v, *l))
        });
        let Some((src, v, line)) = found else {
            s.add(
                "PF-ENV-02",
                Severity::Error,
                key.clone(),
                format!("required key {key} is not set"),
                format!("set {key} in the environment or .env"),
            );
            continue;
        };
        let ok = match t.ty {
            ValueType::String => !v.is_empty(),
            ValueType::Secret => true, // judged by PF-SEC-*
            ValueType::Int => v.trim().parse::<i64>().is_ok(),
            ValueType::Bool => matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "false" | "1" | "0" | "yes" | "no" | "on" | "off"
            ),
            ValueType::Url => v.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
                    && !rest.is_empty()
                    && !rest.starts_with('/')
            }),
            ValueType::Email => v
                .split_once('@')
                .is_some_and(|(a, d)| !a.is_empty() && d.contains('.')),
        };
        if !ok {
            s.add(
                "PF-ENV-02",
                Severity::Error,
                src.subject(key, line),
                format!(
                    "{key} is not a valid {}",
                    format!("{:?}", t.ty).to_ascii_lowercase()
                ),
                "fix the value",
            );
        } else if !t.holds(v) {
            let want = t.equals.as_deref().unwrap_or_default();
            s.add(
                "PF-ENV-02",
                Severity::Error,
                src.subject(key, line),
                format!("{key} is {v:?}; this deployment requires {want:?}"),
                format!("set {key}={want}"),
            );
        }
        // A secret-like name is already judged by the PF-SEC rules: not twice.
        if t.ty == ValueType::Secret && SecretKind::of_name(key).is_none() {
            for w in weaknesses(SecretKind::of_name(key).unwrap_or(SecretKind::Token), v) {
                s.add(
                    w.rule,
                    Severity::Error,
                    src.subject(key, line),
                    format!("{key} {}", w.why),
                    "make one with `rampart secrets generate token` and set it",
                );
            }
        }
    }
}
