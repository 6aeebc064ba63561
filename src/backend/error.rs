//! Errors talking to a server; each knows the SQLSTATE a client should see.

use crate::protocol::ProtocolError;
use crate::protocol::sqlstate;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("could not connect to shard {shard}: {source}")]
    Connect {
        shard: String,
        source: std::io::Error,
    },
    #[error("connecting to shard {shard} timed out")]
    ConnectTimeout { shard: String },
    #[error("shard {shard} refused the login: {message}")]
    Login { shard: String, message: String },
    #[error(
        "shard {shard} asked for an authentication method shardgate does not support ({method})"
    )]
    UnsupportedAuth { shard: String, method: &'static str },
    #[error("connection to shard {shard} lost: {source}")]
    Io {
        shard: String,
        source: std::io::Error,
    },
    #[error("shard {shard} broke the protocol: {source}")]
    Protocol {
        shard: String,
        source: ProtocolError,
    },
    #[error("no connection to shard {shard} became free within {ms} ms")]
    CheckoutTimeout { shard: String, ms: u64 },
    /// The client's session settings could not be given to a server (the connection is closed).
    #[error("shard {shard} refused the client's session settings: {message}")]
    Settings { shard: String, message: String },
    #[error("shard {shard} did not answer within {ms} ms")]
    Timeout { shard: String, ms: u64 },
}

impl BackendError {
    pub(crate) fn sqlstate(&self) -> &'static str {
        match self {
            BackendError::CheckoutTimeout { .. } => sqlstate::TOO_MANY_CONNECTIONS,
            BackendError::Login { .. } | BackendError::UnsupportedAuth { .. } => {
                sqlstate::CONNECTION_EXCEPTION
            }
            BackendError::Settings { .. } => sqlstate::INVALID_PARAMETER_VALUE,
            _ => sqlstate::CONNECTION_FAILURE,
        }
    }
}
