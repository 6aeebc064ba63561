//! Server side: connections to PostgreSQL servers and a pool per shard.

mod collation;
pub(crate) use collation::TextOrder;
mod error;
pub(crate) mod pool;
pub(crate) mod prepared;
pub(crate) mod server;
pub(crate) mod settings;

pub use error::BackendError;
