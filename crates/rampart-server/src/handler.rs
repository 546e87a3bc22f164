//! What answers a request once the policies let it through: the reverse proxy (pools,
//! balancing, health checks, rampart's own HTTP/1.1 origin client), static files, body
//! transforms (compression, CSP nonces) and the CSP report endpoint. Imports
//! [`crate::wire`], [`crate::observe`] and [`crate::policy`].

pub mod csp_report;
pub mod files;
pub mod proxy;
pub mod respond;
pub mod transform;
