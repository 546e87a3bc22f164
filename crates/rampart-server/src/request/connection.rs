//! What the request path knows about the connection a request came on.

use std::net::SocketAddr;

use http::HeaderValue;

/// What the request path knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's IP as a header value, formatted once per connection.
    pub peer_value: HeaderValue,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// When set, this is a plain listener that redirects to HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// The response is written by the HTTP/1.1 fast path, which understands
    /// [`Body::Head`](crate::wire::body::Body::Head).
    pub raw_head: bool,
    /// The negotiated TLS version (`"1.3"`, `"1.2"`), for the access log.
    pub tls_version: Option<&'static str>,
    /// The client certificate the handshake verified (`tls.client_ca`), if one was sent.
    pub client_cert: Option<std::sync::Arc<ClientCert>>,
}

pub use crate::wire::client_cert::ClientCert;
