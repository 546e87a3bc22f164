//! `rampart secrets`: generate secrets from the OS CSPRNG, fill the placeholders of a `.env`
//! file in place, and rotate a secret with an overlap (`KEY_PREVIOUS`).
//!
//! A `.env` file is rewritten byte for byte except the values that change: comments, order,
//! blank lines, quotes and line endings stay. The new file is written beside the old one
//! with mode 0600, synced, and renamed over it (atomic); the old file is kept as
//! `<file>.bak` (mode 0600).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use rampart_config::dotenv::EnvFile;
use rampart_config::secret::{is_external, is_placeholder, SecretKind};

/// What can be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// URL-safe random token of N bytes (default 64).
    Token,
    /// HMAC key for HS256 JWTs (64 random bytes, url-safe base64).
    JwtHs256,
    /// A Fernet key (32 random bytes, url-safe base64 with padding).
    Fernet,
    /// An API key with a recognisable prefix: `rk_<id>_<secret>`.
    ApiKey,
    /// An Ed25519 key pair (PKCS#8 and SPKI PEM).
    Ed25519,
    /// An RSA key pair (3072 bits unless told).
    Rsa,
    /// A password: 32 letters and digits (safe in URLs and shells).
    Password,
}

impl Kind {
    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "token" => Self::Token,
            "jwt-hs256" | "jwt" => Self::JwtHs256,
            // A backup key is 32 random bytes, as a Fernet key is.
            "fernet" | "backup-key" => Self::Fernet,
            "api-key" => Self::ApiKey,
            "ed25519" => Self::Ed25519,
            "rsa" => Self::Rsa,
            "password" => Self::Password,
            _ => return None,
        })
    }
    /// Every kind's name.
    pub const NAMES: &'static str =
        "token, jwt-hs256, fernet, backup-key, api-key, ed25519, rsa, password";

    /// The kind for a variable name (used to fill `.env` placeholders).
    pub fn for_name(name: &str) -> Self {
        let upper = name.to_ascii_uppercase();
        match SecretKind::of_name(name) {
            Some(SecretKind::Fernet | SecretKind::EncryptionKey) => Self::Fernet,
            Some(SecretKind::Password) => Self::Password,
            Some(SecretKind::Jwt) => Self::JwtHs256,
            _ if upper.contains("API") => Self::ApiKey,
            _ => Self::Token,
        }
    }
}

/// The OS random source.
pub struct Generator {
    rng: SystemRandom,
    /// Bytes in a `token` (default 64).
    pub token_bytes: usize,
    /// RSA size (default 3072).
    pub rsa_bits: usize,
}

impl Default for Generator {
    fn default() -> Self {
        Self {
            rng: SystemRandom::new(),
            token_bytes: 64,
            rsa_bits: 3072,
        }
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// PEM armour.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Generator {
    fn bytes(&self, n: usize) -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; n];
        self.rng
            .fill(&mut b)
            .map_err(|_| "the OS random source failed".to_owned())?;
        Ok(b)
    }

    /// A single-line value of `kind` (key pairs are not single-line: use [`Self::pair`]).
    ///
    /// # Errors
    /// The random source failing, or a key-pair kind.
    pub fn value(&self, kind: Kind) -> Result<String, String> {
        Ok(match kind {
            Kind::Token => b64url(&self.bytes(self.token_bytes.max(16))?),
            Kind::JwtHs256 => b64url(&self.bytes(64)?),
            Kind::Fernet => base64::engine::general_purpose::URL_SAFE.encode(self.bytes(32)?),
            Kind::ApiKey => {
                let id: String = self.bytes(4)?.iter().map(|b| format!("{b:02x}")).collect();
                format!("rk_{id}_{}", b64url(&self.bytes(32)?))
            }
            Kind::Password => {
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                let mut out = String::with_capacity(32);
                while out.len() < 32 {
                    for b in self.bytes(64)? {
                        // 248 = 4 × 62: rejection keeps every character equally likely.
                        if b < 248 && out.len() < 32 {
                            out.push(char::from(ALPHABET[usize::from(b) % 62]));
                        }
                    }
                }
                out
            }
            Kind::Ed25519 | Kind::Rsa => {
                return Err("a key pair is two PEM blocks, not a single value".into())
            }
        })
    }

    /// A key pair as (private PKCS#8 PEM, public SPKI PEM).
    ///
    /// # Errors
    /// The random source failing, or a kind that is not a key pair.
    pub fn pair(&self, kind: Kind) -> Result<(String, String), String> {
        match kind {
            Kind::Ed25519 => {
                use aws_lc_rs::encoding::AsDer as _;
                use aws_lc_rs::signature::KeyPair as _;
                // PKCS#8 v1 (RFC 8410, the seed only): what `openssl genpkey` writes and
                // every tool reads (OpenSSL 3 does not read v2 with the public key).
                let pair = aws_lc_rs::signature::Ed25519KeyPair::generate()
                    .map_err(|_| "Ed25519 key generation failed".to_owned())?;
                let private = pair
                    .to_pkcs8v1()
                    .map_err(|_| "the Ed25519 private key could not be encoded".to_owned())?;
                let public = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| "the Ed25519 public key could not be encoded".to_owned())?;
                Ok((
                    pem("PRIVATE KEY", private.as_ref()),
                    pem("PUBLIC KEY", public.as_ref()),
                ))
            }
            Kind::Rsa => {
                let (private, public) = crate::rsa::generate(self.rsa_bits)?;
                Ok((pem("PRIVATE KEY", &private), pem("PUBLIC KEY", &public)))
            }
            _ => Err("not a key-pair kind".into()),
        }
    }
}

/// One value filled in a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The key.
    pub key: String,
    /// 1-based line.
    pub line: usize,
    /// The kind generated.
    pub kind: Kind,
    /// How many values (a comma list of placeholders gets one each).
    pub count: usize,
}

/// A placeholder left for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// The key.
    pub key: String,
    /// 1-based line.
    pub line: usize,
    /// Why it was not generated.
    pub why: String,
}

/// Plans the filling of `file`'s placeholders: the new text, what was filled, what was left.
///
/// # Errors
/// The random source failing.
pub fn fill(file: &EnvFile, g: &Generator) -> Result<(String, Vec<Filled>, Vec<Left>), String> {
    let mut changes = Vec::new();
    let mut filled = Vec::new();
    let mut left = Vec::new();
    for l in &file.lines {
        let Some(e) = l.entry.as_ref().filter(|e| !e.no_equals) else {
            continue;
        };
        let items: Vec<&str> = e.value.split(',').map(str::trim).collect();
        let any_placeholder = items.iter().any(|i| is_placeholder(i));
        if !any_placeholder {
            continue;
        }
        let secretish = SecretKind::of_name(&e.key).is_some();
        let asks_generated = {
            let v = e.value.to_ascii_lowercase();
            v.contains("generate")
        };
        if is_external(&e.key, &e.value) {
            left.push(Left {
                key: e.key.clone(),
                line: l.number,
                why: "supplied by someone else (a vendor key, licence, public key or DSN)".into(),
            });
            continue;
        }
        if !secretish && !asks_generated {
            left.push(Left {
                key: e.key.clone(),
                line: l.number,
                why: "not a secret: a value only you know (a host, a name, a URL)".into(),
            });
            continue;
        }
        let kind = Kind::for_name(&e.key);
        let mut out = Vec::new();
        for item in &items {
            if is_placeholder(item) {
                out.push(g.value(kind)?);
            } else {
                out.push((*item).to_owned());
            }
        }
        changes.push((e.value_span.clone(), out.join(",")));
        filled.push(Filled {
            key: e.key.clone(),
            line: l.number,
            kind,
            count: items.iter().filter(|i| is_placeholder(i)).count(),
        });
    }
    Ok((file.rewrite(&changes), filled, left))
}

/// Writes `text` to `path` atomically with mode 0600, keeping the old file as `path.bak`.
///
/// # Errors
/// Any I/O failure, naming the file.
pub fn write_atomic(path: &Path, text: &str) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".env".into());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let backup = dir.join(format!("{name}.bak"));
    let tmp = dir.join(format!(".{name}.rampart-{}", std::process::id()));
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    if path.exists() {
        let old = std::fs::read(path).map_err(|e| io("cannot read", path, e))?;
        let mut b = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&backup)
            .map_err(|e| io("cannot write", &backup, e))?;
        b.write_all(&old)
            .map_err(|e| io("cannot write", &backup, e))?;
        b.sync_all().map_err(|e| io("cannot sync", &backup, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("cannot create", &tmp, e))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("cannot write", path, e));
    }
    // The rename keeps the new file's 0600 whatever the old file's mode was.
    Ok(backup)
}

/// Inserts `line` after line number `after` (1-based), or removes line `remove`, keeping
/// the file's line endings.
fn edit_lines(file: &EnvFile, insert: Option<(usize, String)>, remove: Option<usize>) -> String {
    let text = file.text();
    let crlf = text.contains("\r\n");
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + 128);
    for (i, seg) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        if remove == Some(n) {
            continue;
        }
        out.push_str(seg);
        if let Some((after, l)) = &insert {
            if *after == n {
                if !seg.ends_with('\n') {
                    out.push_str(eol);
                }
                out.push_str(l);
                out.push_str(eol);
            }
        }
    }
    out
}

/// The outcome of a rotation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// `KEY` has a new value; the old one is in `KEY_PREVIOUS`.
    Started,
    /// `KEY_PREVIOUS` was removed.
    Finished,
}

/// Rotates `key` in `file`: a new value in `key`, the old one in `key_PREVIOUS`; or with
/// `finish`, drops `key_PREVIOUS`. Returns the new text.
///
/// # Errors
/// The key is missing, a rotation is already under way, or nothing is left to finish.
pub fn rotate(
    file: &EnvFile,
    key: &str,
    finish: bool,
    g: &Generator,
) -> Result<(String, Rotation), String> {
    let prev_key = format!("{key}_PREVIOUS");
    let find = |k: &str| {
        file.lines
            .iter()
            .rev()
            .find(|l| l.entry.as_ref().is_some_and(|e| e.key == k && !e.no_equals))
    };
    let prev = find(&prev_key);
    if finish {
        let Some(p) = prev else {
            return Err(format!(
                "{prev_key} is not in the file: no rotation to finish"
            ));
        };
        return Ok((edit_lines(file, None, Some(p.number)), Rotation::Finished));
    }
    let Some(cur) = find(key) else {
        return Err(format!("{key} is not in the file"));
    };
    let entry = cur.entry.as_ref().ok_or("no entry")?;
    if entry.value.is_empty() || is_placeholder(&entry.value) {
        return Err(format!(
            "{key} holds no secret yet: fill it with `rampart secrets generate --env-file`"
        ));
    }
    if let Some(p) = prev {
        if p.entry.as_ref().is_some_and(|e| !e.value.is_empty()) {
            return Err(format!(
                "{prev_key} already holds a value: a rotation is under way; finish it first (--finish)"
            ));
        }
    }
    let new = g.value(Kind::for_name(key))?;
    let old = entry.value.clone();
    let text = match prev {
        Some(p) => {
            let pe = p.entry.as_ref().ok_or("no entry")?;
            file.rewrite(&[
                (entry.value_span.clone(), new),
                (pe.value_span.clone(), old),
            ])
        }
        None => {
            let replaced = EnvFile::parse(&file.rewrite(&[(entry.value_span.clone(), new)]));
            let quoted = EnvFile::parse(&format!("{prev_key}=x\n"));
            let span = quoted
                .entries()
                .next()
                .map(|e| e.value_span.clone())
                .unwrap_or(0..0);
            let line = quoted.rewrite(&[(span, old)]);
            edit_lines(
                &replaced,
                Some((cur.number, line.trim_end().to_owned())),
                None,
            )
        }
    };
    Ok((text, Rotation::Started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_their_shapes() {
        let g = Generator::default();
        let f = g.value(Kind::Fernet).unwrap();
        assert!(rampart_config::secret::is_fernet_key(&f), "{f}");
        assert_eq!(g.value(Kind::Token).unwrap().len(), 86);
        let k = g.value(Kind::ApiKey).unwrap();
        assert!(k.starts_with("rk_") && k.len() == 3 + 8 + 1 + 43, "{k}");
        let p = g.value(Kind::Password).unwrap();
        assert!(p.len() == 32 && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(g.value(Kind::Token).unwrap(), g.value(Kind::Token).unwrap());
        let (private, public) = g.pair(Kind::Ed25519).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(public.contains("PUBLIC KEY"));
        for k in [Kind::Token, Kind::JwtHs256, Kind::ApiKey, Kind::Password] {
            let v = g.value(k).unwrap();
            let kind = match k {
                Kind::JwtHs256 => SecretKind::Jwt,
                Kind::Password => SecretKind::Password,
                _ => SecretKind::SigningKey,
            };
            assert!(
                rampart_config::secret::weaknesses(kind, &v).is_empty() || k == Kind::ApiKey,
                "{k:?} {v}"
            );
        }
    }

    #[test]
    fn fill_keeps_every_other_byte() {
        let text = "# top\nDEBUG=false\nSECRET_KEY=REPLACE_WITH_GENERATED_VALUE # fill me\nAPI_KEYS=<generated-key-1>,<generated-key-2>\nLICENSE_KEY=REPLACE_WITH_YOUR_LICENSE_JWT\nHOST=<your-host>\n";
        let f = EnvFile::parse(text);
        let (out, filled, left) = fill(&f, &Generator::default()).unwrap();
        assert_eq!(filled.len(), 2);
        assert_eq!(left.len(), 2);
        let new = EnvFile::parse(&out);
        assert_eq!(new.get("DEBUG"), Some("false"));
        assert_eq!(new.get("SECRET_KEY").map(str::len), Some(86));
        assert!(out.contains(" # fill me\n"));
        let keys: Vec<&str> = new.get("API_KEYS").unwrap_or("").split(',').collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.starts_with("rk_")));
        assert!(out.starts_with("# top\nDEBUG=false\nSECRET_KEY="));
        assert!(out.ends_with("LICENSE_KEY=REPLACE_WITH_YOUR_LICENSE_JWT\nHOST=<your-host>\n"));
    }

    #[test]
    fn rotate_then_finish() {
        let g = Generator::default();
        let f = EnvFile::parse("A=1\r\nJWT_SECRET=old-value-old-value-old-value-old\r\nB=2\r\n");
        let (t, r) = rotate(&f, "JWT_SECRET", false, &g).unwrap();
        assert_eq!(r, Rotation::Started);
        let f2 = EnvFile::parse(&t);
        assert_eq!(
            f2.get("JWT_SECRET_PREVIOUS"),
            Some("old-value-old-value-old-value-old")
        );
        assert_ne!(
            f2.get("JWT_SECRET"),
            Some("old-value-old-value-old-value-old")
        );
        assert!(t.starts_with("A=1\r\nJWT_SECRET="));
        assert!(t.ends_with("\r\nJWT_SECRET_PREVIOUS=old-value-old-value-old-value-old\r\nB=2\r\n"));
        assert!(rotate(&f2, "JWT_SECRET", false, &g).is_err());
        let (t3, r3) = rotate(&f2, "JWT_SECRET", true, &g).unwrap();
        assert_eq!(r3, Rotation::Finished);
        assert!(!t3.contains("PREVIOUS"));
        assert!(t3.ends_with("\r\nB=2\r\n"));
    }
}
