//! TLS for the HTTPS listener: certificates from PEM files (chains; PKCS#8, RSA or EC keys),
//! chosen by SNI among several, a self-signed development certificate generated once into
//! the state directory, and a rustls `ServerConfig` limited to TLS 1.2/1.3 with
//! forward-secret AEAD suites (Mozilla "intermediate"), ALPN `h2` + `http/1.1`, and session
//! resumption by ID cache and by tickets.
//!
//! # Security
//! rustls implements no CBC, RC4, 3DES, static-RSA or non-ephemeral suites and no TLS
//! below 1.2, so "intermediate" here is the provider's default suite list; TLS 1.2 can be
//! switched off with `tls.min_version = "1.3"`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_config::runtime::{CertificatePaths, Tls};
use rampart_config::ConfigError;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::acme::AcmeState;
pub use super::cert::LoadedCert;
use super::cert::{load_pair, provider};
use super::ocsp::Stapler;

/// What [`server_config`] builds: the rustls config, the certificates loaded from files,
/// the ACME store's state when `[tls.acme]` is on, and the same config asking for client
/// certificates (and a verifier per client CA file, when there are several) when client
/// CAs are set.
pub type Built = (
    Arc<ServerConfig>,
    Vec<LoadedCert>,
    Option<Arc<AcmeState>>,
    Option<(Arc<ServerConfig>, Vec<Verifier>)>,
);

/// Builds the server TLS config, reporting problems against their config keys.
///
/// # Errors
/// Unreadable or malformed PEM, a key that does not match its certificate, or a failure
/// to create the self-signed certificate.
pub fn server_config(tls: &Tls, state_dir: &Path) -> Result<Built, Vec<ConfigError>> {
    let provider = provider();
    let mut certs = Vec::new();
    let mut errors = Vec::new();
    for paths in &tls.certificates {
        match load_pair(paths, &provider) {
            Ok(c) => certs.push(c),
            Err(e) => errors.push(e),
        }
    }
    if !tls.self_signed.is_empty() {
        match self_signed(&tls.self_signed, &state_dir.join("tls"), &provider) {
            Ok(c) => certs.push(c),
            Err(msg) => errors.push(ConfigError::new("tls.self_signed", msg)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let acme = tls.acme.as_ref().map(|a| {
        super::acme::state_for(&super::acme::store_dir(state_dir, &a.directory), &provider)
    });
    let sni = SniResolver::new(&certs);
    if sni.is_none() && acme.is_none() {
        return Err(vec![ConfigError::new("tls", "no certificate")]);
    }
    let resolver = Arc::new(Resolver {
        sni,
        acme: acme.clone(),
        stapling: tls.ocsp_stapling,
    });
    let verifier = client_verifier(tls, &provider)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let provider = if tls.ciphers.is_empty() && tls.post_quantum {
        provider
    } else {
        let mut p = (*provider).clone();
        if !tls.post_quantum {
            // Every hybrid group (X25519MLKEM768 today) goes; the classical ones stay.
            p.kx_groups.retain(|g| !is_post_quantum(g.name()));
        }
        if !tls.ciphers.is_empty() {
            // TLS 1.3 suites all stay; TLS 1.2 ones as listed, in that order.
            let all = std::mem::take(&mut p.cipher_suites);
            p.cipher_suites = all
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            for name in &tls.ciphers {
                p.cipher_suites.extend(
                    all.iter()
                        .filter(|s| s.suite().as_str() == Some(*name))
                        .copied(),
                );
            }
        }
        Arc::new(p)
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| {
            vec![ConfigError::new(
                "tls",
                format!("cannot build TLS config: {e}"),
            )]
        })?;
    let plain = finish(
        builder
            .clone()
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone()),
        tls,
    )?;
    let mtls = match verifier {
        Some((v, each)) => Some((
            Arc::new(finish(
                builder
                    .with_client_cert_verifier(v)
                    .with_cert_resolver(resolver),
                tls,
            )?),
            each,
        )),
        None => None,
    };
    Ok((Arc::new(plain), certs, acme, mtls))
}

/// The settings both server configs share: ALPN, suite order, session cache and tickets.
fn finish(mut cfg: ServerConfig, tls: &Tls) -> Result<ServerConfig, Vec<ConfigError>> {
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ignore_client_order = tls.prefer_server_order;
    if tls
        .acme
        .as_ref()
        .is_some_and(|a| a.challenge == rampart_config::acme::Challenge::TlsAlpn01)
    {
        // Only a validation offers it alone; browsers never offer it.
        cfg.alpn_protocols.push(super::acme::ACME_TLS_ALPN.to_vec());
    }
    cfg.session_storage = ServerSessionMemoryCache::new(32 * 1024);
    // One TLS 1.3 ticket per handshake, as Go's (Caddy's) servers send; rustls and OpenSSL
    // send two. Every handshake, resumed ones too, hands the client the ticket for its next
    // connection; the second one cost a key derivation and an encryption per connection
    // here and as much to take on the client (bench/README, new connections).
    cfg.send_tls13_tickets = 1;
    if tls.session_tickets {
        cfg.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| {
            vec![ConfigError::new(
                "tls.session_tickets",
                format!("cannot create ticketer: {e}"),
            )]
        })?;
    }
    Ok(cfg)
}

/// A client certificate verifier (chain to its CAs, not revoked; none at all is let through
/// the handshake: routes decide, `client_cert = "required"` refuses such requests).
pub type Verifier = Arc<dyn rustls::server::danger::ClientCertVerifier>;

/// The verifiers of client certificates: one for the handshake, trusting every CA of
/// [`Tls::client_cas`] (`tls.client_ca` and the routes' own), and one per CA file, so a
/// route can ask whether a certificate chains to its own CA.
fn client_verifier(
    tls: &Tls,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<(Verifier, Vec<Verifier>)>, Vec<ConfigError>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateRevocationListDer;
    if tls.client_cas.is_empty() {
        return Ok(None);
    }
    let err = |key: &str, m: String| vec![ConfigError::new(key, m)];
    let ca_key = |i: usize| {
        tls.client_ca_keys
            .get(i)
            .map_or("tls.client_ca", String::as_str)
            .to_owned()
    };
    let mut sets = Vec::new();
    let mut all = rustls::RootCertStore::empty();
    for (i, ca) in tls.client_cas.iter().enumerate() {
        let (roots, _) = crate::wire::roots::from_file(ca).map_err(|e| err(&ca_key(i), e))?;
        all.roots.extend(roots.roots.iter().cloned());
        sets.push(roots);
    }
    let mut crls = Vec::new();
    for (i, path) in tls.client_crls.iter().enumerate() {
        let key = format!("tls.client_crl[{i}]");
        let bytes =
            std::fs::read(path).map_err(|e| err(&key, format!("{}: {e}", path.display())))?;
        if bytes.starts_with(b"-----") {
            for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
                crls.push(crl.map_err(|e| err(&key, format!("{}: {e}", path.display())))?);
            }
        } else {
            crls.push(CertificateRevocationListDer::from(bytes));
        }
    }
    let build = |roots: rustls::RootCertStore| -> Result<Verifier, Vec<ConfigError>> {
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .with_crls(crls.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| err("tls.client_crl", format!("cannot use the CA or a CRL: {e}")))
    };
    let handshake = build(all)?;
    let each = if sets.len() == 1 {
        Vec::new()
    } else {
        sets.into_iter().map(build).collect::<Result<_, _>>()?
    };
    Ok(Some((handshake, each)))
}

/// Mutual TLS on the HTTPS listener: the config that asks for a client certificate, and
/// the hosts (by SNI) it is used for: those with a route whose `client_cert` is not off
/// (every host when such a route has none).
#[derive(Debug)]
pub struct ClientAuth {
    /// The server config with the client certificate verifier.
    pub config: Arc<ServerConfig>,
    /// One verifier per client CA file (empty when there is one: the handshake's).
    each: Vec<Verifier>,
    /// `None`: every host.
    hosts: Option<Vec<rampart_config::runtime::HostPattern>>,
}

impl ClientAuth {
    /// For `config`'s routes; `None` when no route asks for a client certificate.
    pub fn new(
        (config, each): (Arc<ServerConfig>, Vec<Verifier>),
        routes: &[rampart_config::runtime::Route],
    ) -> Option<Self> {
        use rampart_config::runtime::ClientCertMode;
        let asking: Vec<_> = routes
            .iter()
            .filter(|r| r.client_cert != ClientCertMode::Off)
            .collect();
        if asking.is_empty() {
            return None;
        }
        let hosts = if asking.iter().any(|r| r.hosts.is_empty()) {
            None
        } else {
            Some(
                asking
                    .iter()
                    .flat_map(|r| r.hosts.iter().cloned())
                    .collect(),
            )
        };
        Some(Self {
            config,
            each,
            hosts,
        })
    }

    /// Which client CA files (bit `i`: [`Tls::client_cas`]`[i]`) the chain a handshake
    /// verified chains to: all of one, each tried when there are several.
    pub fn trusted_by(&self, chain: &[rustls::pki_types::CertificateDer<'_>]) -> u64 {
        let Some((leaf, rest)) = chain.split_first() else {
            return 0;
        };
        if self.each.is_empty() {
            return 1;
        }
        let now = rustls::pki_types::UnixTime::now();
        let mut bits = 0;
        for (i, v) in self.each.iter().enumerate() {
            if v.verify_client_cert(leaf, rest, now).is_ok() {
                bits |= 1 << i;
            }
        }
        bits
    }

    /// Whether a handshake for `sni` asks for a client certificate (without SNI: only when
    /// every host does).
    pub fn wants(&self, sni: Option<&str>) -> bool {
        match (&self.hosts, sni) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(h), Some(name)) => {
                let name = name.to_ascii_lowercase();
                h.iter().any(|p| p.matches(&name))
            }
        }
    }
}

/// A hybrid post-quantum key-exchange group (an ML-KEM share, alone or with ECDH).
pub(crate) fn is_post_quantum(g: rustls::NamedGroup) -> bool {
    matches!(
        g,
        rustls::NamedGroup::X25519MLKEM768
            | rustls::NamedGroup::secp256r1MLKEM768
            | rustls::NamedGroup::MLKEM768
            | rustls::NamedGroup::MLKEM512
            | rustls::NamedGroup::MLKEM1024
    )
}

// === self-signed development certificate ===

/// Loads the development certificate from `dir`, creating it (ECDSA P-256, one year) when
/// it is missing, unreadable, for other names, or within 30 days of expiry.
fn self_signed(
    names: &[String],
    dir: &Path,
    provider: &CryptoProvider,
) -> Result<LoadedCert, String> {
    let cert_path = dir.join("self-signed.crt");
    let key_path = dir.join("self-signed.key");
    let paths = CertificatePaths {
        key_path: "tls.self_signed".into(),
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    let now = unix_now();
    if let Ok(c) = load_pair(&paths, provider) {
        let mut want: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let mut have = c.names.clone();
        want.sort();
        have.sort();
        if want == have && c.not_after - now > 30 * 86_400 {
            return Ok(c);
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("invalid name: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rampart development certificate");
    let ymd = |days: i64| {
        let (y, m, d) = rampart_config::civil::from_days(days);
        let (y, m, d) = (i32::try_from(y), u8::try_from(m), u8::try_from(d));
        rcgen::date_time_ymd(y.unwrap_or(2000), m.unwrap_or(1), d.unwrap_or(1))
    };
    params.not_before = ymd((now - 86_400) / 86_400);
    params.not_after = ymd((now + 365 * 86_400) / 86_400);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign: {e}"))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    load_pair(&paths, provider).map_err(|e| e.message)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

// === SNI ===

/// Chooses a certificate by SNI: exact name, then a wildcard one label up, then the first
/// certificate (also for clients that send no SNI).
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<Stapler>>,
    default: Arc<Stapler>,
}

impl SniResolver {
    fn new(certs: &[LoadedCert]) -> Option<Self> {
        let default = certs.first()?.ocsp.clone();
        let mut by_name = HashMap::new();
        for c in certs {
            for n in &c.names {
                // The first certificate that names a host wins, as in file order.
                by_name.entry(n.clone()).or_insert_with(|| c.ocsp.clone());
            }
        }
        Some(Self { by_name, default })
    }
}

impl SniResolver {
    /// The certificate naming `name` (exact, then a wildcard one label up).
    fn named(&self, name: &str) -> Option<&Arc<Stapler>> {
        if let Some(k) = self.by_name.get(name) {
            return Some(k);
        }
        let (_, parent) = name.split_once('.')?;
        self.by_name.get(&format!("*.{parent}"))
    }
}

/// The files' certificates by SNI, and the ACME one for the names it covers: a TLS-ALPN-01
/// validation (ALPN `acme-tls/1` alone) gets its challenge certificate, every other
/// handshake the issued certificate for its names, else a file certificate by SNI, else
/// the first file certificate; before the first issuance, with no file certificate, the
/// handshake fails (as Caddy's does) rather than serve a certificate for other names.
#[derive(Debug)]
struct Resolver {
    sni: Option<SniResolver>,
    acme: Option<Arc<AcmeState>>,
    /// `tls.ocsp_stapling`.
    stapling: bool,
}

impl Resolver {
    fn serve(&self, s: &Stapler) -> Arc<CertifiedKey> {
        if self.stapling {
            s.serve()
        } else {
            s.base.clone()
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        if let Some(acme) = &self.acme {
            let mut alpn = hello.alpn().into_iter().flatten();
            if alpn.next() == Some(super::acme::ACME_TLS_ALPN) && alpn.next().is_none() {
                return acme.alpn_cert(name.as_deref()?);
            }
            if let Some(c) = acme.cert.load_full() {
                let covers = |n: &str| c.names.iter().any(|x| x == n);
                if name.as_deref().is_none_or(covers) {
                    return Some(self.serve(&c.ocsp));
                }
            }
        }
        let sni = self.sni.as_ref()?;
        let s = name
            .as_deref()
            .and_then(|n| sni.named(n))
            .unwrap_or(&sni.default);
        Some(self.serve(s))
    }
}
