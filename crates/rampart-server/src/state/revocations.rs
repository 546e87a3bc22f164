//! Token revocations made while running (the admin API's `POST /revocations`): a cut-off
//! (every token issued before it is refused, as `jwt.revoke_before` in the config) and
//! revoked token ids (`jti`), each kept until the token would have expired anyway. One
//! table per process, handed from edge to edge by reloads; a fleet shares it through the
//! control hash and channel ([`super::fleet`]), one instance saves it under `state_dir`.
//! Checked on every JWT that verifies: one atomic load when nothing is revoked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

/// The table.
#[derive(Debug, Default)]
pub struct Revocations {
    /// Unix seconds; tokens issued (`iat`) before it are refused. 0: none.
    before: AtomicU64,
    /// Revoked `jti` → Unix seconds after which the entry is dropped.
    ids: RwLock<HashMap<String, u64>>,
    /// `ids.len()`, read without the lock.
    count: AtomicUsize,
}

impl Revocations {
    /// Revokes token id `jti` until `expires` (Unix seconds). Returns whether it is new.
    pub fn revoke(&self, jti: &str, expires: u64) -> bool {
        let mut ids = self
            .ids
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = ids.insert(jti.to_owned(), expires).is_none();
        self.count.store(ids.len(), Ordering::Release);
        new
    }

    /// Refuses every token issued before `at` (Unix seconds); a cut-off only moves forward.
    /// Returns whether it moved.
    pub fn revoke_before(&self, at: u64) -> bool {
        self.before.fetch_max(at, Ordering::AcqRel) < at
    }

    /// The cut-off (0: none).
    pub fn before(&self) -> u64 {
        self.before.load(Ordering::Acquire)
    }

    /// Whether a token with these claims is revoked.
    pub fn is_revoked(&self, jti: Option<&str>, iat: Option<u64>) -> bool {
        let before = self.before();
        if before > 0 && iat.is_none_or(|i| i < before) {
            return true;
        }
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        jti.is_some_and(|j| {
            self.ids
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(j)
        })
    }

    /// Drops ids whose tokens have expired by `now` (Unix seconds).
    pub fn sweep(&self, now: u64) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut ids = self
            .ids
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ids.retain(|_, exp| *exp > now);
        self.count.store(ids.len(), Ordering::Release);
    }

    /// Every revoked id with its expiry, sorted.
    pub fn ids(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .ids
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_cut_offs_revoke_until_they_expire() {
        let r = Revocations::default();
        assert!(!r.is_revoked(Some("a"), Some(100)));
        assert!(r.revoke("a", 500));
        assert!(!r.revoke("a", 500), "the same id twice is not new");
        assert!(r.is_revoked(Some("a"), Some(100)));
        assert!(!r.is_revoked(Some("b"), Some(100)));
        assert!(!r.is_revoked(None, Some(100)));
        r.sweep(600);
        assert!(
            !r.is_revoked(Some("a"), Some(100)),
            "dropped once the token expired"
        );
        assert!(r.revoke_before(200));
        assert!(!r.revoke_before(150), "a cut-off only moves forward");
        assert_eq!(r.before(), 200);
        assert!(r.is_revoked(None, Some(199)));
        assert!(
            r.is_revoked(None, None),
            "no iat: issued at an unknown time"
        );
        assert!(!r.is_revoked(None, Some(200)));
    }
}
