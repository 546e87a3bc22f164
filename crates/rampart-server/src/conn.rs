//! Connections: listeners, the accept loop with its cap, TLS handshakes, HTTP/1.1 on the
//! fast path or hyper (HTTP/1.1, HTTP/2), parking idle keep-alive connections, the idle
//! sweep. Hands each request to [`crate::request::stack`]. Imports the layers below.

pub mod fd_limit;
mod h1fast;
mod h2serve;
pub mod lot;
#[cfg(any(test, feature = "fuzzing"))]
pub use h1fast::fuzz_head;
pub mod server;
pub mod serving;
