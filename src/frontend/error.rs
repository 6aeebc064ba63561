//! Session errors, and the one place that turns any of them into what a client may see: a SQLSTATE and a
//! message without internals.

use crate::backend::BackendError;
use crate::protocol::ProtocolError;
use crate::protocol::backend::{ErrorFields, Severity};
use crate::protocol::sqlstate;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("client protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("client connection: {0}")]
    ClientIo(#[from] std::io::Error),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("password authentication failed for user \"{0}\"")]
    BadPassword(String),
    #[error("user \"{0}\" is not configured in shardgate")]
    UnknownUser(String),
    #[error("user \"{0}\" is not an admin; the admin console is for admin users")]
    NotAdmin(String),
    #[error("database \"{0}\" does not exist in shardgate")]
    UnknownDatabase(String),
    #[error("sorry, too many clients already")]
    TooManyClients,
    #[error("shardgate is shutting down")]
    Shutdown,
    #[error("terminating connection due to idle timeout")]
    IdleTimeout,
    #[error("canceling authentication due to timeout")]
    AuthTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("{0}")]
    Startup(&'static str),
}

/// A small, closed set of error kinds: log field and metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Protocol,
    ClientGone,
    Server,
    Auth,
    Limit,
    Shutdown,
    Timeout,
}

impl ErrorKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::ClientGone => "client_gone",
            ErrorKind::Server => "server",
            ErrorKind::Auth => "auth",
            ErrorKind::Limit => "limit",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::Timeout => "timeout",
        }
    }
}

impl SessionError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            SessionError::Protocol(_) | SessionError::Startup(_) | SessionError::Tls(_) => {
                ErrorKind::Protocol
            }
            SessionError::ClientIo(_) => ErrorKind::ClientGone,
            SessionError::Backend(BackendError::CheckoutTimeout { .. }) => ErrorKind::Timeout,
            SessionError::Backend(_) => ErrorKind::Server,
            SessionError::BadPassword(_)
            | SessionError::UnknownUser(_)
            | SessionError::UnknownDatabase(_)
            | SessionError::NotAdmin(_) => ErrorKind::Auth,
            SessionError::TooManyClients => ErrorKind::Limit,
            SessionError::Shutdown => ErrorKind::Shutdown,
            SessionError::IdleTimeout | SessionError::AuthTimeout => ErrorKind::Timeout,
        }
    }

    /// Why a connection was refused at login, as a metrics label; `None` for sessions that ran.
    pub(crate) fn rejection(&self) -> Option<&'static str> {
        match self {
            SessionError::TooManyClients => Some("too_many_clients"),
            SessionError::BadPassword(_) => Some("bad_password"),
            SessionError::UnknownUser(_) | SessionError::NotAdmin(_) => Some("unknown_user"),
            SessionError::UnknownDatabase(_) => Some("unknown_database"),
            SessionError::Startup(_) => Some("bad_startup"),
            SessionError::AuthTimeout => Some("auth_timeout"),
            _ => None,
        }
    }

    /// The FATAL ErrorResponse that ends the session, or `None` when the client cannot be told anything.
    pub(crate) fn to_client(&self) -> Option<ErrorFields> {
        let code = match self {
            SessionError::ClientIo(_) | SessionError::Tls(_) => return None,
            SessionError::Protocol(_) | SessionError::Startup(_) => sqlstate::PROTOCOL_VIOLATION,
            SessionError::Backend(e) => e.sqlstate(),
            SessionError::BadPassword(_) => sqlstate::INVALID_PASSWORD,
            SessionError::UnknownUser(_) | SessionError::NotAdmin(_) => {
                sqlstate::INVALID_AUTHORIZATION
            }
            SessionError::UnknownDatabase(_) => sqlstate::INVALID_CATALOG_NAME,
            SessionError::TooManyClients => sqlstate::TOO_MANY_CONNECTIONS,
            SessionError::Shutdown => sqlstate::ADMIN_SHUTDOWN,
            SessionError::IdleTimeout => sqlstate::IDLE_SESSION_TIMEOUT,
            SessionError::AuthTimeout => sqlstate::QUERY_CANCELED,
        };
        Some(ErrorFields::new(Severity::Fatal, code, self.to_string()))
    }
}
