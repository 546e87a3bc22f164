//! A verified client certificate (mutual TLS from callers), read once per connection.

use http::HeaderValue;

/// A verified client certificate, as the request path uses it: forwarded upstream in
/// headers, an identity for `auth = ["mtls"]`.
#[derive(Debug)]
pub struct ClientCert {
    /// The subject, RFC 4514 (`CN=edge.internal,O=Example`).
    pub subject: HeaderValue,
    /// Subject alternative names: `DNS:a.example, URI:spiffe://…, email:…, IP:…`.
    pub san: HeaderValue,
    /// SHA-256 of the certificate (DER), lowercase hex.
    pub fingerprint: HeaderValue,
    /// Who it names: its common name, else its first SAN, else the fingerprint.
    pub name: String,
    /// Which client CA files it chains to (bit `i`: the config's `tls.client_cas[i]`);
    /// a route with its own `client_ca` checks its bit.
    pub trusted_by: u64,
}

impl ClientCert {
    /// Reads the leaf certificate (DER) a handshake verified; `None` if it does not parse
    /// (it verified, so it always should).
    pub fn of(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject().to_string();
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for n in &ext.value.general_names {
                match n {
                    GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                    GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                    GeneralName::RFC822Name(e) => sans.push(format!("email:{e}")),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => sans.push(format!(
                            "IP:{}",
                            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])
                        )),
                        16 => {
                            let a: [u8; 16] = (*b).try_into().ok()?;
                            sans.push(format!("IP:{}", std::net::Ipv6Addr::from(a)));
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let fingerprint: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .map(str::to_owned);
        let name = cn
            .or_else(|| {
                sans.first()
                    .map(|s| s.split_once(':').map_or(s.clone(), |(_, v)| v.to_owned()))
            })
            .unwrap_or_else(|| fingerprint.clone());
        // Values a client chose: anything not visible ASCII is escaped, never passed raw.
        let header = |s: &str| {
            let clean: String = s
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            HeaderValue::from_str(&clean).ok()
        };
        Some(Self {
            subject: header(&subject)?,
            san: header(&sans.join(", "))?,
            fingerprint: HeaderValue::from_str(&fingerprint).ok()?,
            name,
            trusted_by: 1,
        })
    }
}
