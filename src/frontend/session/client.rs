//! Client messages: each is forwarded (renaming prepared statements), answered by shardgate, or refused.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::config::SessionStatePolicy;
use crate::frontend::classify::{self, SessionState};
use crate::frontend::error::SessionError;
use crate::frontend::pending::{Pending, Synthetic};
use crate::protocol::backend::{ErrorFields, Severity};
use crate::protocol::frontend::{self as msg, Target};
use crate::protocol::{ProtocolError, frame, sqlstate};

impl<S: AsyncRead + AsyncWrite> Session<S> {
    /// Handles every whole message buffered from the client.
    pub(super) async fn on_client_input(&mut self) -> Result<Flow, SessionError> {
        let max = self.proxy.config.max_message_bytes;
        while let Some(n) = frame::tagged_len(&self.in_buf, max)? {
            let mut raw = self.in_buf.split_to(n);
            let tag = raw[0];
            if self.discard_until_sync && tag != b'S' {
                continue;
            }
            let flow = self.on_client_message(tag, &mut raw).await?;
            if flow == Flow::Terminate {
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_client_message(
        &mut self,
        tag: u8,
        raw: &mut BytesMut,
    ) -> Result<Flow, SessionError> {
        let body = &raw[frame::HEADER_LEN..];
        match tag {
            b'Q' => {
                let sql = msg::query(body)?;
                if !self.admit_session_state(sql, false) {
                    return Ok(Flow::Continue);
                }
                self.forward(raw, Pending::Query).await?;
            }
            b'P' => self.on_parse(raw).await?,
            b'B' => self.on_bind(raw).await?,
            b'D' => match msg::target(body, "Describe")? {
                Target::Statement(name)
                    if !name.is_empty() && self.statements.get(name).is_some() =>
                {
                    let stmt = self.statements.get(name).cloned().expect("checked above");
                    self.attach().await?;
                    let a = self.server.as_mut().expect("attached");
                    a.ensure_prepared(&stmt);
                    msg::write_describe_statement(&mut a.to_server, &stmt.server_name);
                    a.tracker.push(Pending::Describe);
                }
                _ => self.forward(raw, Pending::Describe).await?,
            },
            b'E' => self.forward(raw, Pending::Execute).await?,
            b'C' => match msg::target(body, "Close")? {
                // Statements stay prepared on the servers for other clients; only the name goes.
                Target::Statement(name) if !name.is_empty() => {
                    self.statements.remove(name);
                    self.reply(Synthetic::CloseComplete);
                }
                _ => self.forward(raw, Pending::Close).await?,
            },
            b'S' => {
                self.discard_until_sync = false;
                match &mut self.server {
                    Some(a) => {
                        a.to_server.extend_from_slice(raw);
                        a.tracker.push(Pending::Sync);
                        a.query_starts.push_back(std::time::Instant::now());
                    }
                    None => self.reply(Synthetic::ReadyForQuery),
                }
            }
            b'H' | b'd' | b'c' | b'f' => {
                // Flush and COPY data have no reply of their own; without a server they are moot.
                if let Some(a) = &mut self.server {
                    a.to_server.extend_from_slice(raw);
                }
            }
            b'F' => self.forward(raw, Pending::Query).await?,
            b'X' => return Ok(Flow::Terminate),
            other => return Err(ProtocolError::UnexpectedMessage(other).into()),
        }
        Ok(Flow::Continue)
    }

    /// Sends the message as it is, holding a server first.
    async fn forward(&mut self, raw: &[u8], pending: Pending) -> Result<(), SessionError> {
        self.attach().await?;
        let a = self.server.as_mut().expect("attached");
        a.to_server.extend_from_slice(raw);
        if pending == Pending::Query {
            a.query_starts.push_back(std::time::Instant::now());
        }
        a.tracker.push(pending);
        Ok(())
    }

    async fn on_parse(&mut self, raw: &mut BytesMut) -> Result<(), SessionError> {
        let p = msg::parse(&raw[frame::HEADER_LEN..])?;
        if !self.admit_session_state(p.query, true) {
            return Ok(());
        }
        if p.name.is_empty() {
            return self.forward(raw, Pending::Parse { id: None }).await;
        }
        let stmt = self.proxy.statements.intern(p.query, p.param_types);
        self.statements.insert(p.name, stmt.clone());
        if self.server.is_none() && self.proxy.statements.is_valid(stmt.id) {
            self.reply(Synthetic::ParseComplete);
            return Ok(());
        }
        self.attach().await?;
        let a = self.server.as_mut().expect("attached");
        if a.conn.prepared.contains(&stmt.id) {
            self.reply(Synthetic::ParseComplete);
        } else {
            msg::write_parse(
                &mut a.to_server,
                &stmt.server_name,
                &stmt.query,
                &stmt.param_types,
            );
            a.conn.prepared.insert(stmt.id);
            a.tracker.push(Pending::Parse { id: Some(stmt.id) });
        }
        Ok(())
    }

    async fn on_bind(&mut self, raw: &mut BytesMut) -> Result<(), SessionError> {
        let b = msg::bind(&raw[frame::HEADER_LEN..])?;
        let stmt = match b.statement {
            "" => None,
            name => self.statements.get(name).cloned(),
        };
        let Some(stmt) = stmt else {
            // Unnamed, or unknown: the server answers it (an unknown name fails there as it should).
            return self.forward(raw, Pending::Bind).await;
        };
        let portal = b.portal.to_owned();
        let rest_at = raw.len() - b.rest.len();
        self.attach().await?;
        let a = self.server.as_mut().expect("attached");
        a.ensure_prepared(&stmt);
        msg::write_bind(
            &mut a.to_server,
            &portal,
            &stmt.server_name,
            &raw[rest_at..],
        );
        a.tracker.push(Pending::Bind);
        raw.advance(raw.len());
        Ok(())
    }

    /// Applies the session-state policy to a statement; false when it was refused (and answered).
    fn admit_session_state(&mut self, sql: &str, extended: bool) -> bool {
        if self.pinned.is_some() || self.proxy.config.pool_mode == crate::config::PoolMode::Session
        {
            return true;
        }
        let Some(state) = classify::session_state(sql) else {
            return true;
        };
        match self.proxy.config.session_state {
            SessionStatePolicy::Pin => {
                tracing::debug!(reason = state.describe(), "client pinned to its server");
                self.pinned = Some(state);
                true
            }
            SessionStatePolicy::Refuse
                if !extended
                    && self
                        .server
                        .as_ref()
                        .is_some_and(|a| a.conn.tx_status != b'I') =>
            {
                // Inside a transaction the server must raise the error itself, so that its transaction
                // aborts exactly as PostgreSQL would abort it.
                let e = refusal(state);
                let sql = format!(
                    "DO $shardgate$BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = {}, HINT = {}; END$shardgate$",
                    e.code,
                    quote(&e.message),
                    quote(e.hint.as_deref().unwrap_or_default())
                );
                let a = self.server.as_mut().expect("checked above");
                msg::write_query(&mut a.to_server, &sql);
                a.tracker.push(Pending::Query);
                a.query_starts.push_back(std::time::Instant::now());
                false
            }
            SessionStatePolicy::Refuse => {
                self.reply(Synthetic::Error(refusal(state)));
                if extended {
                    self.discard_until_sync = true;
                } else {
                    self.reply(Synthetic::ReadyForQuery);
                }
                false
            }
        }
    }
}

/// A SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn refusal(state: SessionState) -> ErrorFields {
    ErrorFields::new(
        Severity::Error,
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!(
            "{} is not supported under transaction pooling",
            state.describe()
        ),
    )
    .with_hint("run it inside a transaction with SET LOCAL / xact locks, or use pool_mode: session")
}
