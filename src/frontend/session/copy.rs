//! A COPY FROM STDIN into a sharded table, as the session runs it: started by its simple Query (or
//! the Execute of its extended-protocol portal), fed by the client's CopyData, ended by CopyDone or
//! CopyFail. The client gets CommandComplete (the rows of every shard) or one error; then, for a
//! simple Query, ReadyForQuery; over the extended protocol the client's Sync brings it (an error
//! skips to that Sync, as PostgreSQL's does).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::execute::copy_in::{CopyError, CopyRun, refused};
use crate::frontend::error::SessionError;
use crate::frontend::pending::Synthetic;
use crate::protocol::backend;
use crate::protocol::{frame, sqlstate};
use crate::proxy::Topology;
use crate::router::CopyIn;

/// The COPY a client is sending rows to.
pub(super) struct ClientCopy {
    run: CopyRun,
    /// Started by an extended-protocol Execute: the client's Sync ends it.
    extended: bool,
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    /// Starts the COPY on every shard and answers the client with the CopyInResponse.
    pub(super) async fn start_copy(
        &mut self,
        plan: &CopyIn,
        sql: &str,
        topo: &std::sync::Arc<Topology>,
        extended: bool,
    ) -> Result<(), SessionError> {
        let timeout = self.proxy.config.checkout_timeout();
        let started = CopyRun::start(
            topo.clone(),
            plan,
            sql,
            &self.desired,
            timeout,
            &self.cancel,
        )
        .await;
        match started {
            Ok((run, response)) => {
                self.out.extend_from_slice(&response);
                self.copy = Some(ClientCopy { run, extended });
                Ok(())
            }
            Err(e) => self.copy_ended(Err(e), extended).await,
        }
    }

    /// A client message while the COPY runs. Flush and Sync mean nothing in it (PostgreSQL ignores
    /// them too); any other message ends the COPY with an error, as PostgreSQL's would.
    pub(super) async fn on_copy_message(
        &mut self,
        tag: u8,
        raw: &BytesMut,
    ) -> Result<Flow, SessionError> {
        let body = &raw[frame::HEADER_LEN..];
        let directory = &self.proxy.directory;
        if matches!(tag, b'H' | b'S') {
            return Ok(Flow::Continue);
        }
        if tag == b'd' {
            let copy = self.copy.as_mut().expect("a COPY runs");
            let Err(e) = copy.run.data(body, directory).await else {
                return Ok(Flow::Continue);
            };
            let copy = self.copy.take().expect("a COPY runs");
            copy.run
                .fail("shardgate ended the COPY", &self.cancel)
                .await;
            self.copy_ended(Err(e), copy.extended).await?;
            return Ok(Flow::Continue);
        }
        let ClientCopy { run, extended } = self.copy.take().expect("a COPY runs");
        let result = match tag {
            b'c' => run.done(directory, &self.cancel).await,
            b'f' => {
                // The reason is a C string: a NUL inside would end it early in our ErrorResponse.
                let text = body.split(|&c| c == 0).next().unwrap_or_default();
                let reason = String::from_utf8_lossy(text);
                run.fail(&reason, &self.cancel).await;
                Err(refused(
                    sqlstate::QUERY_CANCELED,
                    format!("COPY from stdin failed: {reason}"),
                ))
            }
            other => {
                run.fail("unexpected message during COPY", &self.cancel)
                    .await;
                Err(refused(
                    sqlstate::PROTOCOL_VIOLATION,
                    unexpected_in_copy(other),
                ))
            }
        };
        self.copy_ended(result, extended).await?;
        Ok(Flow::Continue)
    }

    /// The COPY is over: the client gets its CommandComplete or error, then (simple Query)
    /// ReadyForQuery; over the extended protocol an error skips to the client's Sync.
    async fn copy_ended(
        &mut self,
        result: Result<u64, CopyError>,
        extended: bool,
    ) -> Result<(), SessionError> {
        self.cancel.detach().await;
        match result {
            Ok(rows) => backend::command_complete(&mut self.out, &format!("COPY {rows}")),
            Err(CopyError::Refused(e)) => {
                self.out.extend_from_slice(&e);
                self.discard_until_sync = extended;
            }
            Err(CopyError::Backend(e)) => return Err(e.into()),
        }
        if !extended {
            self.reply(Synthetic::ReadyForQuery);
        }
        Ok(())
    }
}

/// PostgreSQL's words for a message a COPY FROM STDIN does not take.
pub(super) fn unexpected_in_copy(tag: u8) -> String {
    format!("unexpected message type 0x{tag:02X} during COPY from stdin")
}
