//! Seeing what the edge does: Prometheus metrics, access and audit logs (PII masked), the
//! process status the health endpoints report, and dependency probes. Imports only
//! [`crate::wire`].

pub mod audit;
pub mod deps;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod pii;
pub mod process;
