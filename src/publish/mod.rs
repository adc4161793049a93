//! Publishing the latest findings: the Prometheus registry, the `/status` document, and the
//! HTTP server that serves both.

pub mod accounts;
pub mod health;
pub mod http;
pub mod metrics;
pub mod status;
