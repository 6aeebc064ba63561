//! The operations issue: metrics, the admin console, docker-compose.

mod admin;
mod compose;
mod metrics;
mod prometheus;
