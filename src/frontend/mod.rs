//! Client side: accepting connections, TLS, authentication, and the session that relays a client's
//! messages to servers under transaction pooling.

pub(crate) mod auth;
pub(crate) mod cancel;
pub(crate) mod classify;
pub(crate) mod clients;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod login;
pub(crate) mod pending;
pub(crate) mod scram;
pub(crate) mod session;
pub(crate) mod statements;
pub(crate) mod stream;
pub(crate) mod tls;
