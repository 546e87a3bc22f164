//! What the edge serves for `[tls.acme]`: the certificate the CA issued (read from the
//! store under `state_dir` at build, replaced in place when a renewal lands, without
//! touching a connection), the HTTP-01 tokens answered at `/.well-known/acme-challenge/`,
//! and the TLS-ALPN-01 challenge certificates served to a handshake that offers only
//! ALPN `acme-tls/1`. One [`AcmeState`] per store: every edge a reload builds on the same
//! store shares it with the renewal task (control::acme), which fills it.
//!
//! # Store (`state_dir/acme/HOST-OF-DIRECTORY/`, files 0600, written atomically)
//! `account.json` (the account's key and URL), `cert.pem` (chain, leaf first), `key.pem`,
//! `lock` (held by the process that orders, so two processes on one host never order twice).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use arc_swap::ArcSwapOption;
use rustls::sign::CertifiedKey;

use super::cert::LoadedCert;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The HTTP-01 path prefix.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The outcome of the last attempt, for `/health`.
#[derive(Debug, Clone, Default)]
pub struct LastResult {
    /// Unix seconds of the attempt (0: none yet).
    pub at: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What happened.
    pub message: String,
    /// Unix seconds of the next attempt planned.
    pub next: u64,
    /// How the next renewal was chosen: the CA's renewal information (ARI, RFC 9773)
    /// window, or two thirds of the lifetime when the CA offers none.
    pub renewal: String,
}

/// One ACME store's live state.
#[derive(Debug, Default)]
pub struct AcmeState {
    /// The store's directory.
    pub dir: PathBuf,
    /// The certificate being served.
    pub cert: ArcSwapOption<LoadedCert>,
    /// HTTP-01: token → key authorization.
    pub tokens: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: name → challenge certificate, and the Unix second it lapses.
    pub alpn: Mutex<HashMap<String, (Arc<CertifiedKey>, u64)>>,
    /// The last order's outcome.
    pub last: Mutex<LastResult>,
}

impl AcmeState {
    /// The key authorization for an HTTP-01 token, when one is pending.
    pub fn token(&self, token: &str) -> Option<String> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`, when a validation is pending.
    pub fn alpn_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.alpn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|(c, _)| c.clone())
    }

    /// The outcome of the last order.
    pub fn last(&self) -> LastResult {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
}

pub use rampart_config::acme::store_dir;

/// The state of the store at `dir`: the one every live edge shares, or a new one with the
/// certificate on disk loaded (a restart serves it at once, without asking the CA).
pub fn state_for(dir: &Path, provider: &rustls::crypto::CryptoProvider) -> Arc<AcmeState> {
    static STATES: OnceLock<Mutex<HashMap<PathBuf, Weak<AcmeState>>>> = OnceLock::new();
    let mut all = STATES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    all.retain(|_, w| w.strong_count() > 0);
    if let Some(s) = all.get(dir).and_then(Weak::upgrade) {
        return s;
    }
    let state = Arc::new(AcmeState {
        dir: dir.to_path_buf(),
        ..AcmeState::default()
    });
    if let Ok(c) = super::cert::load_files(&state.cert_path(), &state.key_path(), provider) {
        state.cert.store(Some(Arc::new(c)));
    }
    all.insert(dir.to_path_buf(), Arc::downgrade(&state));
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_directory_has_its_own_store() {
        let a = store_dir(
            Path::new("/s"),
            "https://acme-v02.api.letsencrypt.org/directory",
        );
        assert_eq!(
            a,
            Path::new("/s/acme/acme-v02.api.letsencrypt.org_directory")
        );
        let b = store_dir(Path::new("/s"), "https://127.0.0.1:14000/dir");
        assert_eq!(b, Path::new("/s/acme/127.0.0.1_14000_dir"));
    }
}
