//! Operations: Prometheus metrics and `/healthz` over HTTP, and the psql admin console.

pub(crate) mod command;
pub(crate) mod console;
pub(crate) mod http;
pub(crate) mod metrics;
