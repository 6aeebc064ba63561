//! The PostgreSQL v3 wire codec: framing, the startup packet, the messages we build for clients and the
//! frontend messages we inspect. Pure: no tokio, no I/O. Message formats follow the PostgreSQL docs,
//! "Frontend/Backend Protocol", section 55.7 "Message Formats".

pub(crate) mod backend;
pub(crate) mod frame;
pub(crate) mod frontend;
pub(crate) mod sqlstate;
pub(crate) mod startup;

/// A protocol violation by the peer; the connection it came from cannot continue.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message length {len} is invalid")]
    BadLength { len: i64 },
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed {what} message")]
    Malformed { what: &'static str },
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("unexpected message type '{}'", char::from(*.0))]
    UnexpectedMessage(u8),
}
