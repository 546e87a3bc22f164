//! The renewal task of `[tls.acme]`: orders a certificate for the configured names when
//! the store has none (or one for other names), then renews it when the CA's renewal
//! information (ARI, RFC 9773) says, at a random point of its suggested window (checked
//! again as its `Retry-After` asks, between a minute and a day; a window in the past, as
//! for a revoked certificate, renews at once, and the order names the certificate it
//! `replaces`), or, from a CA without ARI, at two thirds of its lifetime (with up to 5 %
//! jitter, so a fleet of hosts does not renew at one instant),
//! answering the CA's HTTP-01 or TLS-ALPN-01 validation through the edge. The new
//! certificate is written to the store and swapped into the live [`AcmeState`]: handshakes
//! from then on get it; open connections are not touched. A failed order is retried after
//! `retry`, doubled after each failure up to six hours, so a CA outage or a rate limit is
//! never hammered. Every outcome is an audit event (`tls.acme.issued`, `tls.acme.failed`)
//! and the last one is in `/health`.
//!
//! Two processes on one host sharing a `state_dir` never order at once: the one that
//! orders holds an exclusive lock on the store's `lock` file; the other waits, then finds
//! the fresh certificate on disk and serves it. A fleet (`[state] backend = "redis"`) does
//! the same across hosts: the instance that orders holds a lock key in Redis and stores the
//! certificate and its key there (`acme:STORE`); the others take it from there, so the
//! fleet places one order. While Redis is unreachable each host orders for itself.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rampart_config::acme::{Acme, Challenge};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::edge::acme::{AcmeState, LastResult};
use crate::edge::cert::{crypto, load_files};
use crate::state::persist::write_atomic;
use crate::state::Fleet;

/// Where the task reports: audit events go through the current edge.
pub type Report = Arc<dyn Fn(&'static str, &'static str, &str) + Send + Sync>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When the certificate at hand should be renewed (Unix seconds): two thirds into its
/// validity, less up to 5 % of it (`jitter` in 0..1); now when there is none or it does
/// not cover `domains`.
pub fn renew_at(cert: Option<&(u64, u64, Vec<String>)>, domains: &[String], jitter: f64) -> u64 {
    let Some((not_before, not_after, names)) = cert else {
        return 0;
    };
    if !domains.iter().all(|d| names.contains(d)) {
        return 0;
    }
    let life = not_after.saturating_sub(*not_before);
    let at = not_before + life * 2 / 3;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let early = (life as f64 * 0.05 * jitter.clamp(0.0, 1.0)) as u64;
    at.saturating_sub(early)
}

/// Validity (not before, not after) and names of the store's certificate.
fn on_disk(state: &AcmeState) -> Option<(u64, u64, Vec<String>)> {
    use x509_parser::prelude::*;
    let pem = std::fs::read(state.cert_path()).ok()?;
    let der = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let (names, _) = crate::edge::cert::cert_info(&der).ok()?;
    let v = cert.validity();
    Some((
        u64::try_from(v.not_before.timestamp()).ok()?,
        u64::try_from(v.not_after.timestamp()).ok()?,
        names,
    ))
}

use rustls_pki_types::pem::PemObject as _;

/// What the CA's renewal information says of the certificate held.
struct Ari {
    /// When to renew (Unix seconds): a point of the suggested window picked by `jitter`.
    at: u64,
    /// The window.
    window: (i64, i64),
    /// When to ask again.
    recheck: Duration,
    /// The certificate, as an order's `replaces` names it.
    id: CertificateIdentifier<'static>,
    /// Its not-before (Unix seconds), to see whether another process renewed it meanwhile.
    not_before: u64,
}

/// The CA's renewal window for the certificate in the store, when the CA offers ARI and
/// the store holds a certificate for the configured names and an account.
async fn ari(config: &Acme, state: &AcmeState, jitter: f64) -> Option<Ari> {
    let (not_before, not_after, names) = on_disk(state)?;
    let mut want = config.domains.clone();
    let mut have = names;
    want.sort();
    have.sort();
    if want != have || !state.dir.join("account.json").is_file() {
        return None;
    }
    let pem = std::fs::read(state.cert_path()).ok()?;
    let der = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let id = CertificateIdentifier::try_from(&der).ok()?.into_owned();
    let account = account(config, &state.dir).await.ok()?;
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => {
            let start = info.suggested_window.start.unix_timestamp();
            let end = info.suggested_window.end.unix_timestamp().max(start);
            let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
            let (nb, na) = (
                i64::try_from(not_before).unwrap_or(0),
                i64::try_from(not_after).unwrap_or(i64::MAX),
            );
            // A window already over (a revoked certificate's): now. Otherwise the part of
            // it inside the certificate's validity: some CAs centre a fixed-width window
            // on the ideal point, which for a short-lived certificate starts before its
            // issuance and would renew a fresh certificate at once.
            let point = if end <= now {
                now
            } else {
                let (from, to) = (start.max(nb), end.min(na));
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_precision_loss,
                    reason = "a point of a window of seconds"
                )]
                let p = from + ((to - from).max(0) as f64 * jitter.clamp(0.0, 1.0)) as i64;
                p
            };
            Some(Ari {
                at: u64::try_from(point).unwrap_or(0),
                window: (start, end),
                recheck: retry_after.clamp(Duration::from_secs(60), Duration::from_secs(86_400)),
                id,
                not_before,
            })
        }
        Err(instant_acme::Error::Unsupported(_)) => None,
        Err(e) => {
            tracing::warn!(error = %e, "ACME renewal information unavailable: two thirds of the lifetime instead");
            None
        }
    }
}

/// Runs until `stop`: obtains and renews the certificate of `config` into `state`.
pub async fn run(
    config: Acme,
    state: Arc<AcmeState>,
    report: Report,
    stop: CancellationToken,
    fleet: Option<Arc<Fleet>>,
) {
    let mut backoff = config.retry;
    // One point per certificate: picked again each check, it could keep moving later.
    let mut jitter = f64::from(rand_u16()) / f64::from(u16::MAX);
    loop {
        if let Some(f) = &fleet {
            f.wait_shared(Duration::from_secs(5)).await;
            adopt_shared(f, &state).await;
        }
        let mut due = renew_at(on_disk(&state).as_ref(), &config.domains, jitter);
        let mut recheck = None;
        let ari = ari(&config, &state, jitter).await;
        let renewal = match &ari {
            Some(a) => {
                due = a.at;
                recheck = Some(a.recheck);
                format!(
                    "ARI window {}..{} (rechecked every {}s)",
                    rampart_config::civil::rfc3339(a.window.0),
                    rampart_config::civil::rfc3339(a.window.1),
                    a.recheck.as_secs()
                )
            }
            None => "two thirds of the lifetime (no ARI from the CA)".to_owned(),
        };
        let now = unix_now();
        if due > now {
            set_last(&state, |l| {
                l.next = due;
                l.renewal = renewal;
            });
            let wait = Duration::from_secs(due - now).min(recheck.unwrap_or(Duration::MAX));
            tokio::select! {
                () = tokio::time::sleep(wait) => continue,
                () = stop.cancelled() => return,
            }
        }
        let outcome = tokio::select! {
            r = fleet_order(&config, &state, fleet.as_deref(), ari.as_ref()) => r,
            () = stop.cancelled() => return,
        };
        match outcome {
            Ok(Some(names)) => {
                backoff = config.retry;
                jitter = f64::from(rand_u16()) / f64::from(u16::MAX);
                let what = format!(
                    "certificate for {} obtained from {}",
                    names.join(", "),
                    config.directory
                );
                set_last(&state, |l| {
                    *l = LastResult {
                        at: unix_now(),
                        ok: true,
                        message: what.clone(),
                        next: 0,
                        renewal: String::new(),
                    };
                });
                report("tls.acme.issued", "info", &what);
            }
            // Another process ordered meanwhile: its certificate is on disk now.
            Ok(None) => {
                if let Ok(c) = load_files(&state.cert_path(), &state.key_path(), &crypto()) {
                    state.cert.store(Some(Arc::new(c)));
                }
            }
            Err(e) => {
                let what = format!(
                    "ordering a certificate for {} from {} failed: {e}; next attempt in {}s",
                    config.domains.join(", "),
                    config.directory,
                    backoff.as_secs()
                );
                let next = unix_now() + backoff.as_secs();
                set_last(&state, |l| {
                    *l = LastResult {
                        at: unix_now(),
                        ok: false,
                        message: what.clone(),
                        next,
                        renewal: String::new(),
                    };
                });
                report("tls.acme.failed", "critical", &what);
                tracing::error!(error = %what, "ACME");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(6 * 3600));
            }
        }
    }
}

fn set_last(state: &AcmeState, f: impl FnOnce(&mut LastResult)) {
    f(&mut state
        .last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner));
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b);
    u16::from_le_bytes(b)
}

/// The fleet's keys for this store: the certificate hash and the lock.
fn shared_keys(fleet: &Fleet, state: &AcmeState) -> (String, String) {
    let store = state
        .dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let cert = fleet.key(&format!("acme:{store}"));
    let lock = format!("{cert}:lock");
    (cert, lock)
}

/// Takes the fleet's certificate when it is newer than the store's (written to the store
/// and swapped in). Returns whether it did.
async fn adopt_shared(fleet: &Fleet, state: &Arc<AcmeState>) -> bool {
    let (key, _) = shared_keys(fleet, state);
    let Ok(fields) = fleet.hash(&key).await else {
        return false;
    };
    let get = |f: &str| fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
    let (Some(chain), Some(key_pem)) = (get("cert"), get("key")) else {
        return false;
    };
    let shared_after = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .and_then(Result::ok)
        .and_then(|d| crate::edge::cert::cert_info(&d).ok())
        .map(|(_, after)| after);
    let local_after = on_disk(state).map(|(_, after, _)| i64::try_from(after).unwrap_or(0));
    if shared_after.is_none() || shared_after <= local_after {
        return false;
    }
    if write_atomic(&state.key_path(), &key_pem)
        .and_then(|()| write_atomic(&state.cert_path(), &chain))
        .is_err()
    {
        return false;
    }
    match load_files(&state.cert_path(), &state.key_path(), &crypto()) {
        Ok(c) => {
            state.cert.store(Some(Arc::new(c)));
            true
        }
        Err(_) => false,
    }
}

/// Orders once for the fleet: under its lock in Redis (waiting for another instance's
/// order, then taking its certificate), and under the host's file lock.
async fn fleet_order(
    config: &Acme,
    state: &Arc<AcmeState>,
    fleet: Option<&Fleet>,
    ari: Option<&Ari>,
) -> Result<Option<Vec<String>>, String> {
    let Some(f) = fleet else {
        return locked_order(config, state, None, ari).await;
    };
    // Just started: give the connection a moment, or every instance orders alone.
    f.wait_shared(Duration::from_secs(5)).await;
    let (key, lock) = shared_keys(f, state);
    let hold = Duration::from_secs(600);
    let mut waited = Duration::ZERO;
    loop {
        match f.set_nx(&lock, &f.id, hold).await {
            Ok(true) => break,
            // Redis is unreachable: this host orders for itself.
            Err(_) => return locked_order(config, state, None, ari).await,
            Ok(false) => {
                if adopt_shared(f, state).await {
                    return Ok(None);
                }
                if waited >= hold {
                    return Err("another instance holds the fleet's ACME lock".into());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                waited += Duration::from_millis(500);
            }
        }
    }
    let r = if adopt_shared(f, state).await {
        Ok(None)
    } else {
        locked_order(config, state, Some(f), ari).await
    };
    if let Ok(Some(_)) = &r {
        if let (Ok(chain), Ok(key_pem)) = (
            std::fs::read_to_string(state.cert_path()),
            std::fs::read_to_string(state.key_path()),
        ) {
            let _ = f
                .set_hash(&key, &[("cert", chain.as_str()), ("key", key_pem.as_str())])
                .await;
        }
    }
    let _ = f.del_if(&lock, &f.id).await;
    r
}

/// Orders under the store's lock. `Ok(None)` when, once the lock was ours, the store
/// already held a fresh certificate (another process ordered it).
async fn locked_order(
    config: &Acme,
    state: &Arc<AcmeState>,
    fleet: Option<&Fleet>,
    ari: Option<&Ari>,
) -> Result<Option<Vec<String>>, String> {
    std::fs::create_dir_all(&state.dir)
        .map_err(|e| format!("cannot create {}: {e}", state.dir.display()))?;
    let lock_path = state.dir.join("lock");
    let lock = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        f.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        Ok(f)
    })
    .await
    .map_err(|e| e.to_string())??;
    // Another process may have renewed while this one waited for the lock.
    let renewed = match ari {
        Some(a) => on_disk(state).is_some_and(|(nb, _, _)| nb != a.not_before),
        None => renew_at(on_disk(state).as_ref(), &config.domains, 0.0) > unix_now(),
    };
    if renewed {
        drop(lock);
        return Ok(None);
    }
    let r = order(config, state, fleet, ari.map(|a| a.id.clone())).await;
    drop(lock);
    r.map(Some)
}

async fn account(config: &Acme, dir: &Path) -> Result<Account, String> {
    let builder = || match &config.directory_ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    };
    let path = dir.join("account.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(creds) = serde_json::from_str::<AccountCredentials>(&text) {
            return builder()
                .map_err(|e| e.to_string())?
                .from_credentials(creds)
                .await
                .map_err(|e| format!("account: {e}"));
        }
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let eab = match &config.eab {
        Some((kid, key)) => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .map_err(|_| "eab_hmac_key is not base64url".to_owned())?;
            Some(ExternalAccountKey::new(kid.clone(), &raw))
        }
        None => None,
    };
    let (account, creds) = builder()
        .map_err(|e| e.to_string())?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            eab.as_ref(),
        )
        .await
        .map_err(|e| format!("creating the account: {e}"))?;
    let text = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    write_atomic(&path, &text).map_err(|e| format!("cannot save {}: {e}", path.display()))?;
    Ok(account)
}

/// One order, start to finish: the certificate and key written to the store and swapped in.
async fn order(
    config: &Acme,
    state: &Arc<AcmeState>,
    fleet: Option<&Fleet>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Vec<String>, String> {
    let account = account(config, &state.dir).await?;
    let ids: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut new = NewOrder::new(&ids);
    if let Some(id) = replaces {
        // RFC 9773 §5: the CA links the renewal to the certificate it replaces.
        new = new.replaces(id);
    }
    let mut order = account
        .new_order(&new)
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let kind = match config.challenge {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut published: Vec<String> = Vec::new();
    let result = async {
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut a = a.map_err(|e| format!("authorization: {e}"))?;
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                s => return Err(format!("authorization is {s:?}")),
            }
            let mut ch = a
                .challenge(kind.clone())
                .ok_or_else(|| format!("the CA offers no {kind:?} challenge"))?;
            let ka = ch.key_authorization();
            match kind {
                ChallengeType::TlsAlpn01 => {
                    let name = ch.identifier().to_string();
                    let digest = ka.digest();
                    let cert = alpn_cert(&name, digest.as_ref())?;
                    let until = unix_now() + CHALLENGE_LIFE.as_secs();
                    state
                        .alpn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(name.clone(), (cert, until));
                    // The CA's handshake may reach any instance: each builds the same
                    // challenge certificate from the digest (a handshake cannot wait
                    // for Redis, so it is announced before the CA is told to look).
                    if let Some(f) = fleet {
                        let change = crate::state::fleet::Change::AcmeAlpn {
                            name: name.clone(),
                            digest: hex(digest.as_ref()),
                            until,
                        };
                        if let Ok(n) = f.announce(&change).await {
                            if n > 1 {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                        }
                    }
                    published.push(name);
                }
                _ => {
                    let token = ch.token.clone();
                    state
                        .tokens
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(token.clone(), ka.as_str().to_owned());
                    // The CA's request may reach any instance behind the load balancer.
                    if let Some(f) = fleet {
                        let _ = f
                            .set_nx(
                                &f.key(&format!("acme:token:{token}")),
                                ka.as_str(),
                                CHALLENGE_LIFE,
                            )
                            .await;
                    }
                    published.push(token);
                }
            }
            ch.set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        match order.poll_ready(&retry).await {
            Ok(OrderStatus::Ready) => {}
            Ok(s) => return Err(format!("the order is {s:?}: validation failed")),
            Err(e) => return Err(format!("waiting for validation: {e}")),
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Ok((key_pem, chain))
    }
    .await;
    state
        .tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|t, _| !published.contains(t));
    state
        .alpn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|n, _| !published.contains(n));
    let (key_pem, chain) = result?;
    write_atomic(&state.key_path(), &key_pem)
        .and_then(|()| write_atomic(&state.cert_path(), &chain))
        .map_err(|e| format!("cannot save the certificate: {e}"))?;
    let loaded = load_files(&state.cert_path(), &state.key_path(), &crypto())?;
    let names = loaded.names.clone();
    state.cert.store(Some(Arc::new(loaded)));
    Ok(names)
}

/// How long a published challenge is answered.
const CHALLENGE_LIFE: Duration = Duration::from_secs(600);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes a TLS-ALPN-01 challenge another instance announced: this instance answers it
/// too, until `until`.
pub(crate) fn adopt_alpn(state: &AcmeState, name: &str, digest_hex: &str, until: u64) -> bool {
    if until <= unix_now() || digest_hex.len() != 64 {
        return false;
    }
    let digest: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(digest_hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect();
    let Some(cert) = digest.and_then(|d| alpn_cert(name, &d).ok()) else {
        return false;
    };
    state
        .alpn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(name.to_owned(), (cert, until));
    true
}

/// The TLS-ALPN-01 certificate for `name`: self-signed, with the critical acmeIdentifier
/// extension holding the SHA-256 of the key authorization (RFC 8737 §3).
fn alpn_cert(name: &str, digest: &[u8]) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
        .map_err(|e| format!("challenge certificate: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // Not `CertifiedKey::from_der`: its key check parses the certificate with webpki, which
    // refuses the (critical, by the RFC) acmeIdentifier extension.
    let signer = crypto()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("challenge key: {e}"))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_two_thirds_into_the_lifetime_less_jitter() {
        let names = vec!["a.test".to_owned()];
        let c = (900, 900 + 90 * 86_400, names.clone());
        assert_eq!(renew_at(Some(&c), &names, 0.0), 900 + 60 * 86_400);
        let early = renew_at(Some(&c), &names, 1.0);
        assert_eq!(900 + 60 * 86_400 - early, 90 * 86_400 / 20);
        assert_eq!(renew_at(None, &names, 0.0), 0, "none: order now");
        let other = vec!["b.test".to_owned()];
        assert_eq!(renew_at(Some(&c), &other, 0.0), 0, "other names: order now");
    }
}
