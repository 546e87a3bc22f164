//! Secret strength: which names hold secrets, what a placeholder looks like, and the rules a
//! production secret must pass (catalog PF-SEC-01..03). Used on the application's
//! environment by `rampart preflight` and on rampart's own secrets (`jwt.secret`, API keys,
//! `admin.token`) when the config is validated. Nothing here keeps or prints a secret.

/// What a secret is for; each kind has its own length rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A framework signing key (`SECRET_KEY`): Django's rule, 50+ characters.
    SigningKey,
    /// An HMAC key for JWTs: 256 bits of entropy for HS256.
    Jwt,
    /// A Fernet key: 32 bytes, url-safe base64 (`*FERNET*`).
    Fernet,
    /// An encryption key (`ENCRYPTION_KEY`): a Fernet key or 256 bits of randomness in any
    /// encoding (guide 002's `secrets.token_urlsafe(32)`); generated as a Fernet key.
    EncryptionKey,
    /// A password: 16+ characters.
    Password,
    /// An API key or token: 128 bits of entropy.
    Token,
}

impl SecretKind {
    /// The kind of secret a variable named `name` holds, or `None` when the name does not
    /// look like a secret (`JWT_ACCESS_TOKEN_EXPIRE_MINUTES`, `LICENSE_PUBLIC_KEY`,
    /// `AWS_ACCESS_KEY_ID`, `SECRETS_MANAGER_REGION` are not secrets).
    pub fn of_name(name: &str) -> Option<Self> {
        let upper = name.to_ascii_uppercase();
        let words: Vec<&str> = upper
            .split(['_', '-', '.'])
            .filter(|w| !w.is_empty())
            .collect();
        let has = |w: &str| words.contains(&w);
        let secretish = words.iter().any(|w| {
            matches!(
                *w,
                "SECRET"
                    | "KEY"
                    | "KEYS"
                    | "TOKEN"
                    | "TOKENS"
                    | "PASSWORD"
                    | "PASSWD"
                    | "PASS"
                    | "PWD"
                    | "APIKEY"
                    | "SECRETKEY"
                    | "CREDENTIALS"
            )
        });
        const NOT_SECRET: &[&str] = &[
            "PUBLIC",
            "ID",
            "PATH",
            "FILE",
            "DIR",
            "URL",
            "URI",
            "NAME",
            "REGION",
            "ALG",
            "ALGORITHM",
            "HEADER",
            "TYPE",
            "MINUTES",
            "SECONDS",
            "HOURS",
            "DAYS",
            "TTL",
            "EXPIRE",
            "EXPIRES",
            "EXPIRY",
            "LIFETIME",
            "LENGTH",
            "SIZE",
            "ENABLED",
            "ENABLE",
            "PREFIX",
            "MANAGER",
            "ROTATION",
            "COOKIE",
            "FIELD",
            "PARAM",
            "HOST",
            "PORT",
            "USER",
            "USERNAME",
            "ISSUER",
            "AUDIENCE",
            "MODE",
            "FORMAT",
            "VERSION",
            "REQUIRED",
            "LOCATION",
            "POLICY",
            "METHOD",
            "SOURCE",
            "LOGIN",
        ];
        if !secretish || words.iter().any(|w| NOT_SECRET.contains(w)) {
            return None;
        }
        let words = &words;
        let base: Vec<&&str> = words
            .iter()
            .filter(|w| !matches!(**w, "PREVIOUS" | "FALLBACKS" | "OLD" | "NEXT"))
            .collect();
        let has_base = |w: &str| base.iter().any(|b| **b == w);
        Some(if has_base("FERNET") {
            Self::Fernet
        } else if has_base("ENCRYPTION") && has_base("KEY") {
            Self::EncryptionKey
        } else if has("PASSWORD") || has("PASSWD") || has("PASS") || has("PWD") {
            Self::Password
        } else if has("JWT") {
            Self::Jwt
        } else if has("SECRET") && has("KEY") || base.len() == 1 && has_base("SECRET") {
            Self::SigningKey
        } else {
            Self::Token
        })
    }

    /// Name used in messages and by `rampart secrets generate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigningKey => "token",
            Self::Jwt => "jwt-hs256",
            Self::Fernet | Self::EncryptionKey => "fernet",
            Self::Password => "password",
            Self::Token => "token",
        }
    }
}

/// Words a template uses where a real value must go.
const PLACEHOLDER_WORDS: &[&str] = &[
    "replace_with",
    "replace-with",
    "replaceme",
    "replace_me",
    "change_me",
    "change-me",
    "changeme",
    "your-",
    "your_",
    "yoursecret",
    "todo",
    "fixme",
    "xxxx",
    "placeholder",
    "insert_",
    "insert-",
    "put_your",
    "put-your",
    "generated-",
    "generate_",
    "example",
    "dummy",
    "sample",
];

/// Values people leave in place: frameworks' documented defaults and the usual guesses.
const KNOWN_DEFAULTS: &[&str] = &[
    "secret",
    "password",
    "changeme",
    "changeit",
    "admin",
    "root",
    "default",
    "test",
    "testing",
    "dev",
    "development",
    "letmein",
    "123456",
    "12345678",
    "qwerty",
    "supersecret",
    "super-secret",
    "super_secret",
    "mysecret",
    "my-secret",
    "mysecretkey",
    "secretkey",
    "secret-key",
    "secret_key",
    "keyboard cat",
    "notasecret",
    "s3cr3t",
    "pass",
    "passw0rd",
    "password1",
    "postgres",
    "mysql",
    "redis",
    "guest",
    "minioadmin",
    "your-secret-key",
    "jwt-secret",
    "jwt_secret",
    "shhhhh",
    "none",
    "null",
    "true",
    "false",
];

/// Whether `value` is a template placeholder (`REPLACE_WITH_GENERATED_VALUE`,
/// `<generated-jwt-secret>`, `your-production-secret-key`, `changeme`).
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with("{{") && v.ends_with("}}"))
        || PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
        || lower == "changeme"
        || lower == "secret"
}

/// Whether a placeholder asks for something only its owner can supply (a vendor's key, a
/// licence, a public key, a DSN), so `rampart secrets` leaves it for a person.
pub fn is_external(name: &str, value: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let v = value.to_ascii_lowercase();
    const VENDORS: &[&str] = &[
        "OPENAI",
        "ANTHROPIC",
        "AWS",
        "STRIPE",
        "SENTRY",
        "GITHUB",
        "GITLAB",
        "SLACK",
        "TWILIO",
        "SENDGRID",
        "GOOGLE",
        "GCP",
        "AZURE",
        "MAILGUN",
        "POSTMARK",
        "CLOUDFLARE",
        "DATADOG",
        "HUGGINGFACE",
        "PINECONE",
        "LICENSE",
        "LICENCE",
    ];
    VENDORS
        .iter()
        .any(|p| n.starts_with(p) || n.contains(&format!("_{p}")))
        || n.contains("PUBLIC")
        || n.ends_with("_DSN")
        || v.contains("actual")
        || v.contains("license")
        || v.contains("provided")
}

/// A secret's measurable shape (no part of the value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Length in characters.
    pub len: usize,
    /// Distinct characters.
    pub distinct: usize,
    /// Shannon entropy of the characters, bits per character.
    pub shannon: f64,
    /// Estimated strength in bits: length × log2(size of the alphabet it draws from).
    pub bits: f64,
}

/// Measures `value`.
pub fn shape(value: &str) -> Shape {
    let chars: Vec<char> = value.chars().collect();
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    let shannon = if chars.is_empty() {
        0.0
    } else {
        counts
            .values()
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.log2()
            })
            .sum()
    };
    let hex = chars.iter().all(char::is_ascii_hexdigit);
    let digits = chars.iter().all(char::is_ascii_digit);
    let alnum = chars.iter().all(char::is_ascii_alphanumeric);
    let b64 = chars
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || "-_+/=".contains(*c));
    let has_lower = chars.iter().any(char::is_ascii_lowercase);
    let has_upper = chars.iter().any(char::is_ascii_uppercase);
    let alphabet: f64 = if digits {
        10.0
    } else if hex && !(has_lower && has_upper) {
        16.0
    } else if alnum && !(has_lower && has_upper) {
        36.0
    } else if alnum {
        62.0
    } else if b64 {
        64.0
    } else {
        94.0
    };
    Shape {
        len: chars.len(),
        distinct: counts.len(),
        shannon,
        bits: n * alphabet.log2(),
    }
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Weakness {
    /// Catalog id: `PF-SEC-01` (length, variety, known prefix), `-02` (placeholder or known
    /// default), `-03` (randomness).
    pub rule: &'static str,
    /// Why, with the measured figures (never the value).
    pub why: String,
}

/// The rules `value` breaks as a secret of `kind`.
pub fn weaknesses(kind: SecretKind, value: &str) -> Vec<Weakness> {
    let mut out = Vec::new();
    let mut w = |rule: &'static str, why: String| out.push(Weakness { rule, why });
    let v = value.trim();
    if v.is_empty() {
        w("PF-SEC-01", "is empty".into());
        return out;
    }
    let lower = v.to_ascii_lowercase();
    if is_placeholder(v) {
        w(
            "PF-SEC-02",
            "is a template placeholder, not a secret".into(),
        );
        return out;
    }
    if KNOWN_DEFAULTS.contains(&lower.as_str()) {
        w("PF-SEC-02", "is a well-known default value".into());
        return out;
    }
    if lower.starts_with("django-insecure-") {
        w(
            "PF-SEC-01",
            "starts with `django-insecure-`: Django's development key".into(),
        );
    }
    let s = shape(v);
    match kind {
        SecretKind::SigningKey if s.len < 50 => w(
            "PF-SEC-01",
            format!("is {} characters; a signing key needs at least 50", s.len),
        ),
        SecretKind::Jwt if s.bits < 256.0 => w(
            "PF-SEC-01",
            format!(
                "holds about {} bits; an HS256 key needs 256 (32 random bytes)",
                s.bits as u32
            ),
        ),
        SecretKind::Fernet if !is_fernet_key(v) => w(
            "PF-SEC-01",
            "is not a Fernet key (32 bytes in url-safe base64, 44 characters)".into(),
        ),
        SecretKind::EncryptionKey if !is_fernet_key(v) && s.bits < 256.0 => w(
            "PF-SEC-01",
            format!(
                "holds about {} bits; an encryption key needs 256 (a Fernet key, or 32 random bytes)",
                s.bits as u32
            ),
        ),
        SecretKind::Password if s.len < 16 => w(
            "PF-SEC-01",
            format!("is {} characters; a password needs at least 16", s.len),
        ),
        SecretKind::Token if s.bits < 128.0 => w(
            "PF-SEC-01",
            format!(
                "holds about {} bits; a key or token needs 128 (16 random bytes)",
                s.bits as u32
            ),
        ),
        _ => {}
    }
    if s.distinct < 5 {
        w(
            "PF-SEC-01",
            format!("uses only {} distinct characters (at least 5)", s.distinct),
        );
    }
    // Shannon entropy of a short random string is bounded by log2(len); judge randomness
    // only where 3.5 bits per character is reachable.
    if s.len >= 16 && s.shannon < 3.5 {
        w(
            "PF-SEC-03",
            format!(
                "has {:.2} bits of entropy per character (random values have 3.5 or more)",
                s.shannon
            ),
        );
    }
    out
}

/// Whether `v` decodes as url-safe base64 to exactly 32 bytes (a Fernet key).
pub fn is_fernet_key(v: &str) -> bool {
    let t = v.trim_end_matches('=');
    v.len() == 44
        && t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && matches!(
            t.as_bytes()[42],
            b'A' | b'E'
                | b'I'
                | b'M'
                | b'Q'
                | b'U'
                | b'Y'
                | b'c'
                | b'g'
                | b'k'
                | b'o'
                | b's'
                | b'w'
                | b'0'
                | b'4'
                | b'8'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        use SecretKind as K;
        for (n, k) in [
            ("SECRET_KEY", Some(K::SigningKey)),
            ("DJANGO_SECRET_KEY", Some(K::SigningKey)),
            ("SECRET_KEY_FALLBACKS", Some(K::SigningKey)),
            ("JWT_SECRET_KEY", Some(K::Jwt)),
            ("JWT_SECRET", Some(K::Jwt)),
            ("ENCRYPTION_KEY", Some(K::EncryptionKey)),
            ("FERNET_KEY", Some(K::Fernet)),
            ("POSTGRES_PASSWORD", Some(K::Password)),
            ("REDIS_PASSWORD", Some(K::Password)),
            ("API_KEYS", Some(K::Token)),
            ("OPENAI_API_KEY", Some(K::Token)),
            ("LICENSE_KEY", Some(K::Token)),
            ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", None),
            ("LICENSE_PUBLIC_KEY", None),
            ("AWS_ACCESS_KEY_ID", None),
            ("SECRETS_MANAGER_REGION", None),
            ("SECRETS_MANAGER_SECRET_NAME", None),
            ("ENABLE_SECRETS_MANAGER", None),
            ("POSTGRES_USER", None),
            ("DEBUG", None),
        ] {
            assert_eq!(SecretKind::of_name(n), k, "{n}");
        }
    }

    #[test]
    fn rules() {
        let rules =
            |k, v: &str| -> Vec<&'static str> { weaknesses(k, v).iter().map(|w| w.rule).collect() };
        assert_eq!(
            rules(SecretKind::SigningKey, "REPLACE_WITH_GENERATED_VALUE"),
            ["PF-SEC-02"]
        );
        assert_eq!(
            rules(SecretKind::Jwt, "<generated-jwt-secret>"),
            ["PF-SEC-02"]
        );
        assert_eq!(
            rules(SecretKind::SigningKey, "your-production-secret-key"),
            ["PF-SEC-02"]
        );
        assert_eq!(rules(SecretKind::Password, "changeme"), ["PF-SEC-02"]);
        assert_eq!(rules(SecretKind::Password, "keyboard cat"), ["PF-SEC-02"]);
        assert_eq!(rules(SecretKind::SigningKey, ""), ["PF-SEC-01"]);
        assert!(rules(
            SecretKind::SigningKey,
            "django-insecure-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN"
        )
        .contains(&"PF-SEC-01"));
        assert!(rules(SecretKind::SigningKey, "short-but-random-Q9z").contains(&"PF-SEC-01"));
        assert!(rules(
            SecretKind::Token,
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        )
        .contains(&"PF-SEC-03"));
        assert!(rules(SecretKind::Jwt, "0123456789abcdef0123456789abcdef").contains(&"PF-SEC-01"));
        assert!(rules(
            SecretKind::Fernet,
            "not-a-fernet-key-but-long-enough-for-other"
        )
        .contains(&"PF-SEC-01"));
        assert!(rules(
            SecretKind::Fernet,
            "0r3tz7Z4ZR0E3P6x6M0b1Vb8Y4v0Jb1lY4o1aZ3xQ2c="
        )
        .is_empty());
        assert!(rules(
            SecretKind::Jwt,
            "3q2-7w_Hk9LmN0pQrS4tUvWxYz1AbCdEfGhIjKlMnOpQrSt"
        )
        .is_empty());
        // ENCRYPTION_KEY: a Fernet key or secrets.token_urlsafe(32) (guide 002); short is not.
        for ok in [
            "0r3tz7Z4ZR0E3P6x6M0b1Vb8Y4v0Jb1lY4o1aZ3xQ2c=",
            "Xq8mJ2v_KpR4tYw9ZbN3cLfH6sD1gAeU7iO0nM5kTjQ",
        ] {
            assert!(rules(SecretKind::EncryptionKey, ok).is_empty(), "{ok}");
        }
        assert!(rules(SecretKind::EncryptionKey, "Xq8mJ2v_KpR4tYw9ZbN3").contains(&"PF-SEC-01"));
        assert!(rules(SecretKind::Password, "Vq3Lr8Zt1Wn6Yp0Ks2").is_empty());
    }
}
