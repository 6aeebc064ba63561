//! A client connection before the session proper: buffered reads of whole startup packets and
//! messages, and writes of whole messages.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::SessionError;
use crate::protocol::backend::{self, ErrorFields};
use crate::protocol::frame;

pub(crate) struct ClientConn<S> {
    pub stream: S,
    pub read_buf: BytesMut,
    max_message: usize,
}

/// What a client may send before it has logged in: startup, TLS and password messages are small.
pub(crate) const LOGIN_MAX_MESSAGE: usize = 64 << 10;

impl<S: AsyncRead + AsyncWrite + Unpin> ClientConn<S> {
    /// The largest message taken from now on (raised once the client has logged in).
    pub(crate) fn set_max_message(&mut self, max: usize) {
        self.max_message = max;
    }

    pub(crate) fn new(stream: S, read_buf: BytesMut, max_message: usize) -> Self {
        ClientConn {
            stream,
            read_buf,
            max_message,
        }
    }

    async fn fill(&mut self) -> Result<(), SessionError> {
        if self.stream.read_buf(&mut self.read_buf).await? == 0 {
            return Err(SessionError::ClientIo(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(())
    }

    /// A whole startup-phase packet, length prefix included. Startup packets are small; 10 000 bytes is
    /// PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH).
    pub(crate) async fn read_startup(&mut self) -> Result<BytesMut, SessionError> {
        loop {
            if let Some(n) = frame::startup_len(&self.read_buf, 10_000)? {
                return Ok(self.read_buf.split_to(n));
            }
            self.fill().await?;
        }
    }

    /// A whole tagged message: the tag and the body.
    pub(crate) async fn read_message(&mut self) -> Result<(u8, BytesMut), SessionError> {
        loop {
            if let Some(n) = frame::tagged_len(&self.read_buf, self.max_message)? {
                let mut msg = self.read_buf.split_to(n);
                let tag = msg[0];
                msg.advance(frame::HEADER_LEN);
                return Ok((tag, msg));
            }
            self.fill().await?;
        }
    }

    pub(crate) async fn send(&mut self, buf: &[u8]) -> Result<(), SessionError> {
        self.stream.write_all(buf).await?;
        Ok(())
    }

    /// Tells the client why it is being disconnected; failures to say so are moot.
    pub(crate) async fn send_fatal(&mut self, e: &ErrorFields) {
        let mut out = BytesMut::new();
        backend::error_response(&mut out, e);
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }
}
