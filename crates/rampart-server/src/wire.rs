//! The bottom layer: what every other layer exchanges. The one body type, the refusals the
//! edge answers itself, request ids, decimal digits, and each connection's activity record. Imports nothing
//! of this crate.

pub mod activity;
pub mod body;
pub mod client_cert;
pub mod decimal;
pub mod h2body;
pub(crate) mod h2frame;
pub mod hpack;
pub mod huffman;
pub mod path;
pub mod refusal;
pub mod request_id;
pub mod roots;
pub(crate) mod spares;
pub mod trace_context;
