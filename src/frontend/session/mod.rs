//! A client session after login: the relay between one client and, while it needs one, one server
//! connection. Full duplex: reads and writes on both sides progress together, so neither peer can
//! deadlock the other through shardgate with a large pipeline.
//!
//! Invariant: a server goes back to its pool only when it answered every Sync and Query it was sent,
//! holds no unread bytes, and is idle outside a transaction; anything less and it is closed.

mod client;
mod copy;
mod held_begin;
mod raise;
mod route;
mod server;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::cancel::Slot;
use super::classify::SessionState;
use super::clients::ClientInfo;
use super::error::SessionError;
use super::pending::{Synthetic, Tracker};
use super::statements::ClientStatements;
use super::statements::Statement;
use crate::backend::pool::Pooled;
use crate::execute::fanout::{Part, Work};
use crate::execute::scatter::Merge;
use crate::protocol::backend;
use crate::proxy::{Proxy, Topology};
use crate::router::{CopyIn, TxControl};
use crate::sharding::ShardId;
use held_begin::HeldBegin;

/// Stop reading a peer while this much is buffered for the other side.
const HIGH_WATER: usize = 1 << 20;

/// Free space a read buffer gets before each read. A consumed BytesMut keeps only the tail of its
/// allocation as free space, and a read fills at most that: a 63-byte Query took two reads when
/// 20 bytes were left. Reserving reclaims the whole allocation once the buffer is empty.
const READ_SPACE: usize = 8 * 1024;

/// The server connection a client holds, with what it still owes.
struct Attached {
    conn: Pooled,
    shard: ShardId,
    /// The map the server was taken under: a transaction finishes on it even if the map is reloaded.
    topology: Arc<Topology>,
    tracker: Tracker,
    to_server: BytesMut,
    since: Instant,
    /// When each Query and Sync still owed a ReadyForQuery was sent, for latency metrics.
    query_starts: VecDeque<Instant>,
    /// The client sent it a statement that changes settings: they are read back before it goes.
    settings_changed: bool,
    /// The server refused the settings of a held BEGIN (this ErrorResponse): the client's next
    /// statement gets it (see `held_begin::first_error`).
    held_error: Option<BytesMut>,
    /// It answered CopyInResponse: until the COPY ends it takes only CopyData, CopyDone and
    /// CopyFail, and ignores Flush and Sync (so nothing may wait for its answer to one).
    copy_in: bool,
}

/// The buffers of a server the client held, kept for the next one: a transaction then allocates none.
#[derive(Default)]
struct Buffers {
    tracker: Tracker,
    to_server: BytesMut,
    query_starts: VecDeque<Instant>,
}

pub(crate) struct Session<S> {
    proxy: Arc<Proxy>,
    client_r: ReadHalf<S>,
    client_w: WriteHalf<S>,
    in_buf: BytesMut,
    out: BytesMut,
    /// How many bytes of `out` are shardgate's own replies (a ParseComplete for a statement already
    /// prepared, say). When that is all of `out` and the server owes a ReadyForQuery, they wait for its
    /// replies and go out with them in one write, as PostgreSQL's buffered output would, rather than
    /// waking the client twice. Anything else appended makes `out` longer, so it goes at once.
    out_own: usize,
    statements: ClientStatements,
    /// Session parameters set on every server the client uses: its startup packet's, then the
    /// settings its own statements changed (carried from server to server).
    desired: Vec<(String, String)>,
    /// `statements::settings_context` of `desired`: which shared statements the client may use.
    statement_context: String,
    /// The startup packet's parameters, what a RESET returns to.
    startup: Vec<(String, String)>,
    cancel: Arc<Slot>,
    server: Option<Attached>,
    /// Set once the client created session state shardgate cannot carry; it then keeps its server.
    pinned: Option<SessionState>,
    /// After shardgate refused an extended-protocol message, the rest up to Sync is ignored, as a
    /// server would after an error.
    discard_until_sync: bool,
    /// The shard `SET shardgate.shard` chose for every later statement.
    session_shard: Option<String>,
    /// Parse and Describe messages held until a Bind says which shard the batch goes to.
    deferred: Vec<Deferred>,
    /// An extended-protocol statement bound to several shards, run at its Sync.
    fanout: Option<FanoutBatch>,
    /// A COPY FROM STDIN into a sharded table under way: the client's CopyData goes to it.
    copy: Option<copy::ClientCopy>,
    /// A portal bound over the extended protocol that shardgate answers itself, at its Execute.
    own_portal: Option<OwnPortal>,
    /// A merged read ran at the client's Flush: only Flush, Close and Sync may follow it up to the Sync.
    read_flushed: bool,
    /// A BEGIN held until the transaction's first statement says which shard it runs on.
    begin: Option<HeldBegin>,
    /// Client input waits until the held server has answered everything (the next statement goes to
    /// another shard).
    blocked: bool,
    shutdown: watch::Receiver<bool>,
    info: Arc<ClientInfo>,
    spare: Buffers,
}

/// A portal bound over the extended protocol that shardgate answers itself: Describe gets NoData,
/// and Execute runs it here. It ends at the Sync.
struct OwnPortal {
    name: String,
    runs: OwnRun,
}

enum OwnRun {
    /// A COPY into a sharded table (its plan and SQL).
    Copy(CopyIn, String),
    /// A BEGIN with no server held, or a setting, COMMIT or ROLLBACK of a BEGIN still held (its
    /// SQL): held, added or ended as over the simple protocol. JDBC sends its BEGIN so, in one batch
    /// with the transaction's first statement.
    Tx(TxControl, String),
}

/// A client message that waits for the shard of its batch.
enum Deferred {
    Parse(Arc<Statement>),
    Describe(Arc<Statement>),
}

/// The parts of an extended-protocol statement on several shards, completed by Describe/Execute/Sync.
struct FanoutBatch {
    topology: Arc<Topology>,
    parts: Vec<Part>,
    /// A read merged across the shards (with LIMIT and OFFSET resolved), rather than a write.
    merge: Option<Merge>,
    /// The client sent Describe for the portal: it gets the RowDescription.
    describe: bool,
    /// The client's Execute row limit.
    max_rows: i32,
    /// The client sent its Execute.
    executed: bool,
    /// The client's Parse of the statement was held: the run answers it.
    client_parse: bool,
}

impl FanoutBatch {
    fn new(
        topology: Arc<Topology>,
        parts: Vec<Part>,
        merge: Option<Merge>,
        client_parse: bool,
    ) -> FanoutBatch {
        FanoutBatch {
            topology,
            parts,
            merge,
            describe: false,
            max_rows: 0,
            executed: false,
            client_parse,
        }
    }

    /// A merged read whose Execute came: it may run at a Flush.
    fn runs_at_flush(&self) -> bool {
        self.executed && self.merge.is_some()
    }

    /// Whether a client message belongs to the batch: the portal's Describe and one Execute, then
    /// Flush and Sync (and Terminate). Anything else would run before the Sync that runs this.
    fn takes(&self, tag: u8, body: &[u8]) -> bool {
        match tag {
            b'D' => !self.executed && body.first() == Some(&b'P'),
            b'E' => !self.executed,
            b'H' | b'S' | b'X' => true,
            _ => false,
        }
    }

    /// The parts as they run, once the client's Sync ends the batch. A merged read describes every
    /// shard's rows (the merge needs them); under the client's row limit each shard runs to its first
    /// offset + limit rows (as it gets LIMIT limit+offset), or to the end when groups combine, and the
    /// merge applies the limit. A write takes the client's Describe and row limit.
    fn settled_parts(&mut self) -> Vec<Part> {
        let (describe, max_rows) = match &self.merge {
            Some(m) if m.plan.aggregates.is_empty() && self.max_rows > 0 => {
                let rows = m.offset.saturating_add(self.max_rows as u64);
                (true, i32::try_from(rows).unwrap_or(0))
            }
            Some(_) => (true, 0),
            None => (self.describe, self.max_rows),
        };
        let mut parts = std::mem::take(&mut self.parts);
        for part in &mut parts {
            if let Work::Execute {
                describe: d,
                max_rows: m,
                ..
            } = &mut part.work
            {
                (*d, *m) = (describe, max_rows);
            }
        }
        parts
    }
}

/// Whether a message could be handled now or must wait for the held server to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Go,
    Wait,
}

enum Event {
    ClientRead(std::io::Result<usize>),
    ClientWrote(std::io::Result<usize>),
    ServerRead(std::io::Result<usize>),
    ServerWrote(std::io::Result<usize>),
    IdleTimeout,
    Shutdown,
}

/// What the session does after handling client input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// Put the message back and read no further until the held server is done.
    Wait,
    Terminate,
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    pub(crate) fn new(
        proxy: Arc<Proxy>,
        stream: S,
        in_buf: BytesMut,
        desired: Vec<(String, String)>,
        cancel: Arc<Slot>,
        info: Arc<ClientInfo>,
    ) -> Self {
        let (client_r, client_w) = tokio::io::split(stream);
        let shutdown = proxy.shutdown_signal();
        Session {
            proxy,
            client_r,
            client_w,
            in_buf,
            out: BytesMut::with_capacity(16 * 1024),
            out_own: 0,
            statements: ClientStatements::default(),
            startup: desired.clone(),
            statement_context: crate::frontend::statements::settings_context(&desired),
            desired,
            cancel,
            server: None,
            pinned: None,
            discard_until_sync: false,
            session_shard: None,
            deferred: Vec::new(),
            fanout: None,
            copy: None,
            own_portal: None,
            read_flushed: false,
            begin: None,
            blocked: false,
            shutdown,
            info,
            spare: Buffers::default(),
        }
    }

    /// The settings carried from server to server, and with them the statement context.
    fn set_desired(&mut self, desired: Vec<(String, String)>) {
        self.statement_context = crate::frontend::statements::settings_context(&desired);
        self.desired = desired;
    }

    /// Runs until the client leaves or the session fails; on failure the client has been told why.
    pub(crate) async fn run(mut self) -> Result<(), SessionError> {
        let result = self.relay().await;
        if let Err(e) = &result {
            if let Some(fields) = e.to_client() {
                backend::error_response(&mut self.out, &fields);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    self.client_w.write_all(&self.out),
                )
                .await;
            }
        } else {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.client_w.write_all(&self.out))
                    .await;
        }
        let _ = self.client_w.shutdown().await;
        self.finish().await;
        result
    }

    async fn relay(&mut self) -> Result<(), SessionError> {
        loop {
            match self.next_event().await {
                Event::ClientRead(Ok(0)) => return Ok(()),
                Event::ClientRead(r) => {
                    self.proxy.metrics.received.increment(r? as u64);
                    if self.on_client_input().await? == Flow::Terminate {
                        return Ok(());
                    }
                }
                Event::ClientWrote(r) => {
                    let n = r?;
                    self.proxy.metrics.sent.increment(n as u64);
                    self.out.advance(n);
                    self.out_own = self.out_own.saturating_sub(n);
                }
                Event::ServerRead(r) => {
                    if self.server_read(r)? {
                        self.on_server_input();
                        self.maybe_release().await?;
                    }
                }
                Event::ServerWrote(r) => {
                    self.server_wrote(r)?;
                    self.maybe_release().await?;
                }
                Event::IdleTimeout => return Err(SessionError::IdleTimeout),
                Event::Shutdown => return Err(SessionError::Shutdown),
            }
            // Done, or in a COPY that takes nothing else (the message waiting then fails it).
            if self.blocked
                && self
                    .server
                    .as_ref()
                    .is_none_or(|a| a.tracker.idle() || a.copy_in)
            {
                self.blocked = false;
                if self.on_client_input().await? == Flow::Terminate {
                    return Ok(());
                }
            }
            let idle = self.server.as_ref().is_none_or(Attached::quiet)
                && self.copy.is_none()
                && self.own_portal.is_none();
            if idle && *self.shutdown.borrow() && self.out.is_empty() {
                return Err(SessionError::Shutdown);
            }
        }
    }

    async fn next_event(&mut self) -> Event {
        let Session {
            client_r,
            client_w,
            in_buf,
            out,
            out_own,
            server,
            shutdown,
            proxy,
            blocked,
            begin,
            copy,
            own_portal,
            ..
        } = self;
        // Own replies wait for the server's only when those are sure to come (no client input needed).
        let hold_own = *out_own == out.len()
            && out.len() < HIGH_WATER
            && server.as_ref().is_some_and(|a| a.tracker.owes_ready());
        let write_client = !out.is_empty() && !hold_own;
        let read_client = out.len() < HIGH_WATER
            && (!*blocked || in_buf.len() < HIGH_WATER)
            && server
                .as_ref()
                .is_none_or(|a| a.to_server.len() < HIGH_WATER);
        // Idle timeout and shutdown apply between transactions, also to a client that keeps its server.
        let between = out.is_empty()
            && begin.is_none()
            && copy.is_none()
            && own_portal.is_none()
            && server.as_ref().is_none_or(Attached::quiet);
        let idle = proxy.config.client_idle_timeout_ms;
        let idle_wait = async move {
            if idle == 0 || !between {
                std::future::pending::<()>().await
            }
            tokio::time::sleep(Duration::from_millis(idle)).await
        };
        let stopping = async {
            if !between {
                std::future::pending::<()>().await
            }
            let _ = shutdown.changed().await;
        };
        if read_client {
            in_buf.reserve(READ_SPACE);
        }
        match server {
            Some(a) => {
                let conn = &mut *a.conn;
                conn.read_buf.reserve(READ_SPACE);
                let (mut sr, mut sw) = conn.stream.split();
                let read_buf = &mut conn.read_buf;
                let to_server = &a.to_server;
                tokio::select! {
                    biased;
                    r = sr.read_buf(read_buf), if out.len() < HIGH_WATER => Event::ServerRead(r),
                    r = sw.write(to_server), if !to_server.is_empty() => Event::ServerWrote(r),
                    r = client_w.write(out), if write_client => Event::ClientWrote(r),
                    r = client_r.read_buf(in_buf), if read_client => Event::ClientRead(r),
                    _ = idle_wait => Event::IdleTimeout,
                    _ = stopping => Event::Shutdown,
                }
            }
            None => {
                tokio::select! {
                    r = client_w.write(out), if !out.is_empty() => Event::ClientWrote(r),
                    r = client_r.read_buf(in_buf), if read_client => Event::ClientRead(r),
                    _ = idle_wait => Event::IdleTimeout,
                    _ = stopping => Event::Shutdown,
                }
            }
        }
    }

    /// Writes a reply shardgate makes itself, in its place among the server's replies.
    fn reply(&mut self, s: Synthetic) {
        if let Some(a) = self.server.as_mut().filter(|a| !a.tracker.idle()) {
            a.tracker.push(super::pending::Pending::Synthetic(s));
            return;
        }
        // The status the client sees: its held BEGIN's, else its server's.
        let server = self.server.as_ref().map_or(b'I', |a| a.conn.tx_status);
        let status = self.begin.as_ref().map_or(server, HeldBegin::status);
        let before = self.out.len();
        emit(&mut self.out, s, status);
        self.out_own += self.out.len() - before;
    }
}

fn emit(out: &mut BytesMut, s: Synthetic, tx_status: u8) {
    match s {
        Synthetic::ParseComplete => backend::parse_complete(out),
        Synthetic::BindComplete => backend::bind_complete(out),
        Synthetic::NoData => backend::no_data(out),
        Synthetic::CloseComplete => backend::close_complete(out),
        Synthetic::CommandComplete(tag) => backend::command_complete(out, tag),
        Synthetic::Error(e) => backend::error_response(out, &e),
        Synthetic::ReadyForQuery => backend::ready_for_query(out, tx_status),
    }
}
