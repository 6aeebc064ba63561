//! Authenticating a client as a configured user: SCRAM-SHA-256, md5 or trust (53.3).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::ClientConn;
use super::error::SessionError;
use super::scram::ScramExchange;
use crate::config::User;
use crate::config::user::{Secret, md5_hex};
use crate::protocol::ProtocolError;
use crate::protocol::backend;
use crate::protocol::frame::Cursor;

pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ClientConn<S>,
    user: &User,
) -> Result<(), SessionError> {
    let mut out = BytesMut::new();
    match &user.secret {
        Secret::Trust => {}
        Secret::Md5(stored) => {
            let salt: [u8; 4] = rand::random();
            backend::auth_md5(&mut out, salt);
            conn.send(&out).await?;
            let body = password_message(conn).await?;
            let mut c = Cursor::new(&body, "PasswordMessage");
            let answer = c.cstr()?;
            let want = format!("md5{}", md5_hex(&[stored.as_bytes(), &salt]));
            if answer != want {
                return Err(SessionError::BadPassword(user.name.clone()));
            }
        }
        Secret::Scram(secret) => {
            backend::auth_sasl(&mut out, &["SCRAM-SHA-256"]);
            conn.send(&out).await?;
            let body = password_message(conn).await?;
            let mut c = Cursor::new(&body, "SASLInitialResponse");
            let mechanism = c.cstr()?;
            let len = c.i32()?;
            if mechanism != "SCRAM-SHA-256" || len < 0 {
                return Err(ProtocolError::Malformed {
                    what: "SASLInitialResponse",
                }
                .into());
            }
            let first = c.take(len as usize)?;
            let nonce: [u8; 18] = rand::random();
            let nonce = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, nonce);
            let exchange = ScramExchange::start(secret.clone(), first, &nonce)
                .map_err(|_| SessionError::BadPassword(user.name.clone()))?;
            out.clear();
            backend::auth_sasl_continue(&mut out, exchange.server_first());
            conn.send(&out).await?;
            let body = password_message(conn).await?;
            let last = exchange
                .finish(&body)
                .map_err(|_| SessionError::BadPassword(user.name.clone()))?;
            out.clear();
            backend::auth_sasl_final(&mut out, &last);
            conn.send(&out).await?;
        }
    }
    out.clear();
    backend::auth_ok(&mut out);
    conn.send(&out).await
}

/// The body of the client's next message, which must be a PasswordMessage-family ('p') message.
async fn password_message<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ClientConn<S>,
) -> Result<BytesMut, SessionError> {
    match conn.read_message().await? {
        (b'p', body) => Ok(body),
        (tag, _) => Err(ProtocolError::UnexpectedMessage(tag).into()),
    }
}
