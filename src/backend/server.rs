//! One connection to a PostgreSQL server: connect, authenticate (SCRAM-SHA-256, md5, cleartext or trust),
//! and the state shardgate tracks about it between clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::BackendError;
use super::prepared::{Prepared, SchemaEpoch};
use crate::protocol::startup::CancelKey;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub(crate) struct ServerTarget {
    pub shard: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    /// The most global prepared statements one connection keeps.
    pub max_prepared: usize,
    /// The proxy's schema epoch (see `prepared`).
    pub schema_epoch: SchemaEpoch,
}

pub(crate) struct ServerConn {
    pub stream: TcpStream,
    pub read_buf: BytesMut,
    pub addr: SocketAddr,
    /// The server's own key, for forwarding a client's cancel.
    pub key: CancelKey,
    /// Set when a cancel forwarded to this server failed or timed out: it may still land, on whatever
    /// query runs then, so the server is never reused (`Pooled::release`).
    pub cancel_in_doubt: Arc<AtomicBool>,
    /// Parameter values the server reported (ParameterStatus).
    pub reported: HashMap<String, String>,
    /// Values shardgate SET on behalf of clients, as the client spelled them.
    pub applied: HashMap<String, String>,
    /// Global prepared statement ids this server has (see `frontend::statements`).
    pub prepared: Prepared,
    pub last_used: Instant,
    /// Transaction status from the last ReadyForQuery.
    pub tx_status: u8,
}

impl ServerConn {
    pub(crate) async fn connect(
        t: &ServerTarget,
        timeout: Duration,
    ) -> Result<ServerConn, BackendError> {
        match tokio::time::timeout(timeout, Self::connect_inner(t)).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::ConnectTimeout {
                shard: t.shard.clone(),
            }),
        }
    }

    async fn connect_inner(t: &ServerTarget) -> Result<ServerConn, BackendError> {
        let connect_err = |source| BackendError::Connect {
            shard: t.shard.clone(),
            source,
        };
        let stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        let addr = stream.peer_addr().map_err(connect_err)?;
        let now = Instant::now();
        let mut conn = ServerConn {
            stream,
            read_buf: BytesMut::with_capacity(16 * 1024),
            addr,
            key: CancelKey { pid: 0, secret: 0 },
            cancel_in_doubt: Arc::default(),
            reported: HashMap::new(),
            applied: HashMap::new(),
            prepared: Prepared::new(t.max_prepared, t.schema_epoch.clone()),
            last_used: now,
            tx_status: b'I',
        };
        conn.startup(t).await?;
        Ok(conn)
    }

    pub(super) fn io_err(&self, shard: &str, source: std::io::Error) -> BackendError {
        BackendError::Io {
            shard: shard.into(),
            source,
        }
    }

    pub(crate) async fn send(&mut self, shard: &str, buf: &[u8]) -> Result<(), BackendError> {
        self.stream
            .write_all(buf)
            .await
            .map_err(|e| self.io_err(shard, e))
    }

    /// Reads one whole backend message as its raw frame (tag, length, body).
    pub(crate) async fn recv_frame(&mut self, shard: &str) -> Result<BytesMut, BackendError> {
        loop {
            if let Ok(Some(n)) = crate::protocol::frame::tagged_len(&self.read_buf, usize::MAX) {
                return Ok(self.read_buf.split_to(n));
            }
            self.fill(shard).await?;
        }
    }

    /// Reads more of the server's bytes; the end of the stream is an error (a server never hangs up
    /// while it owes replies).
    async fn fill(&mut self, shard: &str) -> Result<(), BackendError> {
        let n = self
            .stream
            .read_buf(&mut self.read_buf)
            .await
            .map_err(|e| self.io_err(shard, e))?;
        if n == 0 {
            return Err(self.io_err(shard, std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// Whatever the server has sent, into `read_buf`, without waiting. An error when the connection
    /// failed or closed.
    pub(crate) fn try_fill(&mut self, shard: &str) -> Result<(), BackendError> {
        loop {
            match self.stream.try_read_buf(&mut self.read_buf) {
                Ok(0) => return Err(self.io_err(shard, std::io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(self.io_err(shard, e)),
            }
        }
    }

    /// The query that gives this server a client's session parameters where it differs, recorded as
    /// applied (by lowercase name, as PostgreSQL matches them): a `RESET` of each one an earlier
    /// client's parameters applied and this client's do not name (it gets the server's own, as it was
    /// told at login), then `set_config` of the rest, which reads a value as the startup packet does
    /// (`search_path=a,b` is two schemas; `SET ... TO 'a,b'` would make it one). `None` when nothing
    /// differs. The caller runs it before anything else and closes the server if it fails
    /// (`align_now`): what it recorded is then void.
    pub(crate) fn align(&mut self, desired: &[(String, String)]) -> Option<String> {
        use crate::protocol::frontend::{quote_ident_path, quote_literal};
        let mut sql = String::new();
        self.applied.retain(|name, _| {
            let kept = desired.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            if !kept {
                sql.push_str(&format!("RESET {};", quote_ident_path(name)));
            }
            kept
        });
        let mut sets = 0;
        for (name, value) in desired {
            // Both maps are a handful of entries: compared in place, nothing allocated per attach.
            let holds = |(n, v): (&String, &String)| n.eq_ignore_ascii_case(name) && v == value;
            if self.applied.iter().any(holds) || self.reported.iter().any(holds) {
                continue;
            }
            sql.push_str(if sets == 0 { "SELECT " } else { ", " });
            sql.push_str(&format!(
                "pg_catalog.set_config({}, {}, false)",
                quote_literal(name),
                quote_literal(value)
            ));
            sets += 1;
            self.applied
                .insert(name.to_ascii_lowercase(), value.clone());
        }
        (!sql.is_empty()).then_some(sql)
    }

    /// Gives the server the client's session parameters now, before anything else runs on it. An
    /// error is `BackendError::Settings`; the caller drops (closes) the connection.
    pub(crate) async fn align_now(
        &mut self,
        shard: &str,
        desired: &[(String, String)],
    ) -> Result<(), BackendError> {
        let Some(sql) = self.align(desired) else {
            return Ok(());
        };
        match self.simple(shard, &sql).await? {
            None => Ok(()),
            Some(message) => Err(BackendError::Settings {
                shard: shard.to_owned(),
                message,
            }),
        }
    }

    /// Reads one whole backend message.
    pub(crate) async fn recv(&mut self, shard: &str) -> Result<Message, BackendError> {
        loop {
            match Message::parse(&mut self.read_buf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(self.io_err(shard, e)),
            }
            self.fill(shard).await?;
        }
    }

    async fn startup(&mut self, t: &ServerTarget) -> Result<(), BackendError> {
        let mut buf = BytesMut::new();
        let params = [
            ("user", t.user.as_str()),
            ("database", t.database.as_str()),
            ("application_name", "shardgate"),
        ];
        frontend::startup_message(params.iter().copied(), &mut buf)
            .map_err(|e| self.io_err(&t.shard, e))?;
        self.send(&t.shard, &buf).await?;
        self.authenticate(t).await?;
        loop {
            match self.recv(&t.shard).await? {
                Message::ParameterStatus(p) => {
                    let name = p.name().map_err(|e| self.io_err(&t.shard, e))?.to_owned();
                    let value = p.value().map_err(|e| self.io_err(&t.shard, e))?.to_owned();
                    self.reported.insert(name, value);
                }
                Message::BackendKeyData(k) => {
                    self.key = CancelKey {
                        pid: k.process_id(),
                        secret: k.secret_key(),
                    }
                }
                Message::ReadyForQuery(r) => {
                    self.tx_status = r.status();
                    return Ok(());
                }
                Message::ErrorResponse(e) => return Err(login_error(&t.shard, e)),
                Message::NoticeResponse(_) => {}
                _ => return Err(protocol_error(&t.shard)),
            }
        }
    }

    async fn authenticate(&mut self, t: &ServerTarget) -> Result<(), BackendError> {
        let password = t.password.clone().unwrap_or_default();
        let mut scram: Option<ScramSha256> = None;
        loop {
            let mut out = BytesMut::new();
            match self.recv(&t.shard).await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password.as_bytes(), &mut out)
                        .map_err(|e| self.io_err(&t.shard, e))?;
                }
                Message::AuthenticationMd5Password(b) => {
                    let hashed = postgres_protocol::authentication::md5_hash(
                        t.user.as_bytes(),
                        password.as_bytes(),
                        b.salt(),
                    );
                    frontend::password_message(hashed.as_bytes(), &mut out)
                        .map_err(|e| self.io_err(&t.shard, e))?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut found = false;
                    while let Some(m) =
                        fallible_next(&mut mechanisms).map_err(|e| self.io_err(&t.shard, e))?
                    {
                        found |= m == SCRAM_SHA_256;
                    }
                    if !found {
                        return Err(BackendError::UnsupportedAuth {
                            shard: t.shard.clone(),
                            method: "SASL without SCRAM-SHA-256",
                        });
                    }
                    let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                        .map_err(|e| self.io_err(&t.shard, e))?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| protocol_error(&t.shard))?;
                    s.update(body.data())
                        .map_err(|e| self.io_err(&t.shard, e))?;
                    frontend::sasl_response(s.message(), &mut out)
                        .map_err(|e| self.io_err(&t.shard, e))?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram.take().ok_or_else(|| protocol_error(&t.shard))?;
                    s.finish(body.data())
                        .map_err(|e| self.io_err(&t.shard, e))?;
                    continue;
                }
                Message::ErrorResponse(e) => return Err(login_error(&t.shard, e)),
                Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGss
                | Message::AuthenticationSspi => {
                    return Err(BackendError::UnsupportedAuth {
                        shard: t.shard.clone(),
                        method: "Kerberos/GSS/SSPI/SCM",
                    });
                }
                _ => return Err(protocol_error(&t.shard)),
            }
            self.send(&t.shard, &out).await?;
        }
    }

    /// Runs one simple query to completion, discarding its results; used for health checks and resets.
    /// Returns the error message if the server reported one.
    pub(crate) async fn simple(
        &mut self,
        shard: &str,
        sql: &str,
    ) -> Result<Option<String>, BackendError> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.io_err(shard, e))?;
        self.send(shard, &out).await?;
        let mut failure = None;
        loop {
            match self.recv(shard).await? {
                Message::ReadyForQuery(r) => {
                    self.tx_status = r.status();
                    return Ok(failure);
                }
                Message::ErrorResponse(e) => failure = Some(error_text(e)),
                Message::ParameterStatus(p) => {
                    if let (Ok(n), Ok(v)) = (p.name(), p.value()) {
                        self.reported.insert(n.to_owned(), v.to_owned());
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs one simple query to completion and returns its rows, each value as text (`None` for NULL);
    /// the server's ErrorResponse frame as it sent it when it reported one.
    pub(crate) async fn query_rows(
        &mut self,
        shard: &str,
        sql: &str,
    ) -> Result<Result<Vec<Vec<Option<String>>>, BytesMut>, BackendError> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.io_err(shard, e))?;
        self.send(shard, &out).await?;
        let (mut rows, mut failure) = (Vec::new(), None);
        loop {
            let m = self.recv_frame(shard).await?;
            match m[0] {
                b'D' => match crate::protocol::frame::data_row(&m) {
                    Some(values) => rows.push(
                        values
                            .into_iter()
                            .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                            .collect(),
                    ),
                    None => return Err(protocol_error(shard)),
                },
                b'E' => {
                    failure.get_or_insert(m);
                }
                b'Z' => {
                    self.tx_status = crate::protocol::frame::ready_status(&m);
                    return Ok(match failure {
                        None => Ok(rows),
                        Some(e) => Err(e),
                    });
                }
                _ => {}
            }
        }
    }

    /// True when the idle socket has neither closed nor sent anything unasked (such as a FATAL before
    /// the server exits). Costs one non-blocking read.
    pub(crate) fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            && self.read_buf.is_empty()
    }
}

fn fallible_next<I: fallible_iterator::FallibleIterator>(
    it: &mut I,
) -> Result<Option<I::Item>, I::Error> {
    it.next()
}

fn error_text(e: postgres_protocol::message::backend::ErrorResponseBody) -> String {
    use fallible_iterator::FallibleIterator;
    let mut fields = e.fields();
    let (mut code, mut message) = (String::new(), String::new());
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    format!("{message} ({code})")
}

fn login_error(
    shard: &str,
    e: postgres_protocol::message::backend::ErrorResponseBody,
) -> BackendError {
    BackendError::Login {
        shard: shard.into(),
        message: error_text(e),
    }
}

fn protocol_error(shard: &str) -> BackendError {
    BackendError::Protocol {
        shard: shard.into(),
        source: crate::protocol::ProtocolError::Malformed {
            what: "authentication",
        },
    }
}
