//! Server side of a session: holding a server, relaying its replies, and giving it back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::held_begin::{self, HeldBegin};
use super::raise::own_error;
use super::{Attached, Buffers, Deferred, Session, emit};
use crate::backend::BackendError;
use crate::backend::pool::Pool;
use crate::config::PoolMode;
use crate::frontend::cancel::ServerKey;
use crate::frontend::classify::SessionState;
use crate::frontend::clients::ClientState;
use crate::frontend::error::SessionError;
use crate::frontend::pending::Synthetic;
use crate::frontend::pending::{Batch, Pending, Verdict};
use crate::frontend::statements::Statement;
use crate::protocol::frame::{self, Cursor};
use crate::protocol::frontend as msg;
use crate::proxy::Topology;
use crate::sharding::ShardId;

/// The most bytes a released server's send buffer may keep for the next one.
const SPARE_MAX: usize = 64 * 1024;

/// How long reading a session's settings back may take.
const SETTINGS_READ: Duration = Duration::from_secs(5);

impl Attached {
    /// Makes sure the server has the global statement, preparing it ahead of the message that uses it.
    pub(super) fn ensure_prepared(&mut self, stmt: &Statement) {
        if !self.conn.prepared.use_if_present(stmt.id) {
            self.make_room(stmt.id);
            msg::write_parse(
                &mut self.to_server,
                &stmt.server_name,
                &stmt.query,
                &stmt.param_types,
            );
            self.tracker.push(Pending::InjectedParse { id: stmt.id });
        }
    }

    /// The client's own Parse of a global statement: sent unless this server has it already. False when
    /// it had it: the client's ParseComplete is then shardgate's to give.
    pub(super) fn parse_for_client(&mut self, stmt: &Statement) -> bool {
        if self.conn.prepared.use_if_present(stmt.id) {
            return false;
        }
        self.make_room(stmt.id);
        msg::write_parse(
            &mut self.to_server,
            &stmt.server_name,
            &stmt.query,
            &stmt.param_types,
        );
        self.tracker.push(Pending::Parse { id: Some(stmt.id) });
        true
    }

    /// Records that the server is about to prepare `id`, closing first a stale copy of it, or the
    /// statement it used least recently when it holds as many as it may.
    fn make_room(&mut self, id: u64) {
        if let Some(old) = self.conn.prepared.make_room(id, &mut self.to_server) {
            self.tracker.push(Pending::InjectedClose { id: old });
        }
    }

    /// Whether the server still has business with the client's earlier messages; if so, asks it to
    /// finish, so that the caller can wait: a Flush for replies it may hold back until a Sync, a Sync
    /// to end a batch of prepares only (its implicit transaction ran nothing). A batch that ran
    /// something is left open: only the client's Sync may end it.
    pub(super) fn settle(&mut self) -> bool {
        if !self.tracker.idle() || !self.to_server.is_empty() {
            msg::write_flush(&mut self.to_server);
            return true;
        }
        self.end_prepares()
    }

    /// Ends a batch of prepares only, once they are answered, with a Sync the client does not see:
    /// the server is then free to go back to its pool (or to leave for another shard). True if sent.
    pub(super) fn end_prepares(&mut self) -> bool {
        let answered = self.tracker.idle() && self.to_server.is_empty();
        if !answered || self.tracker.batch() != Batch::Prepared {
            return false;
        }
        msg::write_sync(&mut self.to_server);
        self.tracker.push(Pending::InjectedSync);
        true
    }

    /// Sends a query whose replies the client never sees (a held BEGIN, parameter SETs).
    pub(super) fn inject(&mut self, query_message: &[u8]) {
        self.to_server.extend_from_slice(query_message);
        self.tracker.push(Pending::InjectedQuery);
    }

    /// Opens the transaction of a held BEGIN: a plain BEGIN, then its modes and settings, whose
    /// error (if the server refuses them) the client's first statement gets.
    fn open_held(&mut self, held: &HeldBegin) {
        msg::write_query(&mut self.to_server, "BEGIN");
        self.tracker.push(Pending::InjectedQuery);
        if let Some(settings) = held.settings() {
            msg::write_query(&mut self.to_server, settings);
            // A failed transaction's settings are the error that fails it again: PostgreSQL's
            // 25P02 says so to every statement after it.
            self.tracker.push(if held.failed() {
                Pending::InjectedQuery
            } else {
                Pending::HeldSettings
            });
        }
    }

    /// Owes nothing, has nothing to send, and is idle outside a transaction (also the implicit one
    /// of an extended-protocol batch not yet synced).
    pub(super) fn quiet(&self) -> bool {
        self.tracker.idle()
            && self.tracker.batch() == Batch::Synced
            && self.to_server.is_empty()
            && self.conn.read_buf.is_empty()
            && self.conn.tx_status == b'I'
    }

    fn shard(&self) -> String {
        self.conn.pool().target.shard.clone()
    }
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    /// Holds a server for the client, if it holds none yet: on the shard `SET shardgate.shard` chose,
    /// or the next shard in turn (for statements any shard can answer). `begin`: a held BEGIN goes
    /// to it first.
    pub(super) async fn attach(&mut self, begin: bool) -> Result<(), SessionError> {
        if self.server.is_some() {
            return Ok(());
        }
        let topo = self.proxy.topology.load_full();
        let shard = self
            .session_shard(&topo)
            .unwrap_or_else(|| self.proxy.next_any_shard(topo.map.shards.len()));
        self.attach_to(shard, topo, begin).await
    }

    /// Takes a server of `shard` (the client holds none), then sends what was held for it: the held
    /// BEGIN when `begin` (a statement of the transaction chose this shard), then held Parse/Describe.
    pub(super) async fn attach_to(
        &mut self,
        shard: ShardId,
        topology: Arc<Topology>,
        begin: bool,
    ) -> Result<(), SessionError> {
        let pool = topology.pools[shard.0].clone();
        self.info.set(ClientState::Waiting);
        let started = Instant::now();
        let conn = pool.checkout(self.proxy.config.checkout_timeout()).await;
        let now = Instant::now();
        pool.metrics.checkout_wait.record(now - started);
        let mut conn = conn.inspect_err(|_| self.info.set(ClientState::Idle))?;
        // The client's settings first, checked: a server that refuses them is closed, and nothing of
        // the client's runs under another client's settings.
        if let Err(e) = conn.align_now(&pool.target.shard, &self.desired).await {
            self.info.set(ClientState::Idle);
            return Err(e.into());
        }
        self.info.set(ClientState::Active);
        self.info.set_server(shard.0, conn.key.pid);
        self.cancel.attach(ServerKey::of(&conn)).await;
        let Buffers {
            tracker,
            to_server,
            query_starts,
        } = std::mem::take(&mut self.spare);
        let mut a = Attached {
            conn,
            shard,
            topology,
            tracker,
            to_server,
            since: now,
            query_starts,
            settings_changed: false,
            held_error: None,
            copy_in: false,
        };
        if let Some(held) = self.begin.take_if(|_| begin) {
            a.open_held(&held);
        }
        for d in self.deferred.drain(..) {
            match d {
                Deferred::Parse(stmt) => {
                    if !a.parse_for_client(&stmt) {
                        a.tracker.push(Pending::Synthetic(Synthetic::ParseComplete));
                    }
                }
                Deferred::Describe(stmt) => {
                    a.ensure_prepared(&stmt);
                    msg::write_describe_statement(&mut a.to_server, &stmt.server_name);
                    a.tracker.push(Pending::Describe);
                }
            }
        }
        self.server = Some(a);
        Ok(())
    }

    /// Sends the BEGIN shardgate holds to the server the client holds, if both are there: a
    /// statement is about to run on it inside the client's transaction.
    pub(super) fn send_held_begin(&mut self) {
        if let Some(a) = &mut self.server
            && let Some(held) = self.begin.take()
        {
            a.open_held(&held);
        }
    }

    pub(super) fn server_read(&mut self, r: std::io::Result<usize>) -> Result<bool, SessionError> {
        let a = self.server.as_ref().expect("reading implies attached");
        match r {
            Ok(0) => Err(BackendError::Io {
                shard: a.shard(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            }
            .into()),
            Ok(_) => Ok(true),
            Err(source) => Err(BackendError::Io {
                shard: a.shard(),
                source,
            }
            .into()),
        }
    }

    pub(super) fn server_wrote(&mut self, r: std::io::Result<usize>) -> Result<(), SessionError> {
        let a = self.server.as_mut().expect("writing implies attached");
        match r {
            Ok(n) => {
                bytes::Buf::advance(&mut a.to_server, n);
                Ok(())
            }
            Err(source) => Err(BackendError::Io {
                shard: a.shard(),
                source,
            }
            .into()),
        }
    }

    /// Relays every whole message the server sent, in order with shardgate's own replies.
    pub(super) fn on_server_input(&mut self) {
        let Some(a) = self.server.as_mut() else {
            return;
        };
        let out = &mut self.out;
        let statements = &self.proxy.statements;
        // While shardgate holds the client's BEGIN, the client is in a transaction this server is not
        // in; an error the client gets ends it.
        let mut held_status = self.begin.as_ref().map(|b| b.status());
        let (conn, pool) = a.conn.with_pool();
        let mut pos = 0;
        // Server messages are trusted in size: the server is ours.
        while let Ok(Some(n)) = frame::tagged_len(&conn.read_buf[pos..], usize::MAX) {
            let m = &conn.read_buf[pos..pos + n];
            pos += n;
            while let Some(s) = a.tracker.pop_synthetic() {
                emit(out, s, held_status.unwrap_or(conn.tx_status));
            }
            let tag = m[0];
            let parsed = if tag == b'1' {
                a.tracker.head_parse()
            } else {
                None
            };
            // A statement shardgate let go while its Parse was in flight (an earlier Parse of it
            // failed) counts again, as of an unknown epoch, unless it was let go to make room (its
            // Close is on the way).
            let confirmed =
                parsed.filter(|&id| !conn.prepared.contains(id) && !a.tracker.closes_later(id));
            let verdict = a.tracker.on_backend(tag, &mut conn.prepared);
            conn.prepared.watch(m);
            match tag {
                b'G' => a.copy_in = true,
                b'E' | b'Z' => a.copy_in = false,
                _ => {}
            }
            if let Some(id) = parsed {
                statements.mark_valid(id);
            }
            if let Some(id) = confirmed {
                conn.prepared.restore(id);
            }
            if tag == b'S' {
                let mut c = Cursor::new(&m[frame::HEADER_LEN..], "ParameterStatus");
                if let (Ok(name), Ok(value)) = (c.cstr(), c.cstr()) {
                    // A reported setting the client changed (whatever statement did it): read back
                    // before the server goes.
                    a.settings_changed |= verdict == Verdict::Forward;
                    conn.reported.insert(name.to_owned(), value.to_owned());
                }
            }
            match verdict {
                Verdict::Forward => {
                    if tag == b'E' && held_status.is_some() {
                        held_status = Some(b'E');
                    }
                    // shardgate's own refusal, raised on the server, without what PL/pgSQL adds;
                    // or the error that failed the transaction's held settings.
                    let own = (tag == b'E').then(|| match a.held_error.take() {
                        Some(held) => held_begin::first_error(&held, m),
                        None => own_error(m),
                    });
                    match own.flatten() {
                        Some(e) => out.extend_from_slice(&e),
                        None => out.extend_from_slice(m),
                    }
                }
                Verdict::Keep => a.held_error = Some(BytesMut::from(m)),
                Verdict::Swallow => {}
                Verdict::Ready { forward } => {
                    conn.tx_status = frame::ready_status(m);
                    if forward {
                        if let Some(status) = held_status {
                            out.extend_from_slice(&m[..frame::HEADER_LEN]);
                            out.extend_from_slice(&[status]);
                        } else {
                            out.extend_from_slice(m);
                        }
                        if let Some(sent) = a.query_starts.pop_front() {
                            record_query(pool, sent.elapsed());
                        }
                    }
                }
            }
        }
        bytes::Buf::advance(&mut conn.read_buf, pos);
        while let Some(s) = a.tracker.pop_synthetic() {
            emit(out, s, held_status.unwrap_or(conn.tx_status));
        }
        if held_status == Some(b'E')
            && let Some(held) = &mut self.begin
        {
            held.fail();
        }
        if a.tracker.batch() == Batch::Failed {
            // The server skips the client's messages up to its Sync; so does shardgate, which would
            // otherwise send them on (or to another shard).
            self.discard_until_sync = true;
        }
    }

    fn releasable(&self, a: &Attached) -> bool {
        a.quiet() && !self.keeps_server()
    }

    /// Whether the client keeps its server past its transactions: pinned to it by session state, or
    /// under session pooling.
    pub(super) fn keeps_server(&self) -> bool {
        self.pinned.is_some() || self.proxy.config.pool_mode == PoolMode::Session
    }

    /// Gives the server back at the end of a transaction.
    pub(super) async fn maybe_release(&mut self) -> Result<(), SessionError> {
        if let Some(a) = &mut self.server {
            // A client that prepared and waits holds no transaction, so it holds no server either.
            a.end_prepares();
        }
        if self
            .server
            .as_ref()
            .is_some_and(|a| a.settings_changed && a.quiet())
        {
            self.carry_settings().await?;
        }
        if !self.server.as_ref().is_some_and(|a| self.releasable(a)) {
            return Ok(());
        }
        let a = self.server.take().expect("checked above");
        // After this no cancel can reach the server on this client's behalf.
        self.cancel.detach().await;
        self.info.set(ClientState::Idle);
        self.info.set_server(0, 0);
        let pool = a.conn.pool();
        pool.metrics.transactions.increment(1);
        pool.metrics.transaction_duration.record(a.since.elapsed());
        pool.stats.transactions.fetch_add(1, Ordering::Relaxed);
        a.conn.release();
        // A released server owes nothing: its buffers are empty, and serve the next one, unless a
        // large transaction (a COPY) grew them.
        let (mut to_server, mut query_starts) = (a.to_server, a.query_starts);
        if to_server.capacity() <= SPARE_MAX {
            to_server.clear();
            query_starts.clear();
            self.spare = Buffers {
                tracker: a.tracker,
                to_server,
                query_starts,
            };
        }
        Ok(())
    }

    /// Settings are the client's, not its server's: once the statements that changed them are done,
    /// they are read back from the server and become the client's session parameters, set on every
    /// server it uses next. The server keeps them, recorded as applied, until a client's own replace
    /// them. A session whose user changed stays pinned, and one whose settings the server would not
    /// show; a server that does not answer ends the session (its settings are unknown).
    async fn carry_settings(&mut self) -> Result<(), SessionError> {
        let keeps_server = self.keeps_server();
        let Some(a) = self.server.as_mut() else {
            return Ok(());
        };
        a.settings_changed = false;
        if keeps_server {
            return Ok(());
        }
        let target = a.conn.pool().target.clone();
        let shard = &target.shard;
        let read = tokio::time::timeout(SETTINGS_READ, a.conn.session_settings(shard)).await;
        let read = match read {
            Ok(Ok(read)) => read,
            failed => {
                // Its replies are owed still, or it is gone: closed, never back in the pool; the
                // client's settings are unknown, so its session ends.
                self.server = None;
                return Err(match failed {
                    Ok(Err(e)) => e.into(),
                    _ => BackendError::Timeout {
                        shard: shard.clone(),
                        ms: SETTINGS_READ.as_millis() as u64,
                    }
                    .into(),
                });
            }
        };
        let Some(read) = read else {
            tracing::info!(%shard, "the server would not show a session's settings: the client stays pinned");
            self.pinned = Some(SessionState::Set);
            return Ok(());
        };
        if read.current_user != target.user {
            self.pinned = Some(SessionState::Role);
            return Ok(());
        }
        let mut desired = self.startup.clone();
        for (name, value) in &read.settings {
            let mut named = false;
            for slot in desired
                .iter_mut()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                slot.1.clone_from(value);
                named = true;
            }
            if !named {
                desired.push((name.clone(), value.clone()));
            }
        }
        a.conn.applied = read
            .settings
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        self.set_desired(desired);
        Ok(())
    }

    /// At the end of the session: a server that is clean goes back; one in a transaction is rolled back,
    /// one with session state is reset; anything in doubt is closed.
    pub(super) async fn finish(&mut self) {
        let Some(a) = self.server.take() else { return };
        self.cancel.detach().await;
        if !(a.tracker.idle() && a.to_server.is_empty() && a.conn.read_buf.is_empty())
            || a.tracker.batch() != Batch::Synced
        {
            return; // dropping closes it: replies are still owed, or a batch was never synced
        }
        // Settings changed and never read back: whatever they are, they go.
        let needs_reset = self.keeps_server() || a.settings_changed;
        if a.conn.tx_status == b'I' && !needs_reset {
            a.conn.release();
            return;
        }
        let reset_query = self.proxy.config.pool.reset_query.clone();
        let mut conn = a.conn;
        let shard = conn.pool().target.shard.clone();
        let reset = async {
            if conn.tx_status != b'I' && conn.simple(&shard, "ROLLBACK").await?.is_some() {
                return Ok(false);
            }
            if needs_reset {
                if conn.simple(&shard, &reset_query).await?.is_some() {
                    return Ok(false);
                }
                if !reset_query.eq_ignore_ascii_case("DISCARD ALL")
                    && conn.simple(&shard, "DEALLOCATE ALL").await?.is_some()
                {
                    return Ok(false);
                }
                conn.prepared.clear();
                conn.applied.clear();
            }
            Ok::<bool, BackendError>(conn.tx_status == b'I')
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), reset).await;
        match outcome {
            Ok(Ok(true)) => conn.release(),
            _ => tracing::info!(%shard, "closed a server connection that could not be reset"),
        }
    }
}

/// Counts a query (or Sync) the server answered through its ReadyForQuery, and how long it took.
fn record_query(pool: &Pool, took: Duration) {
    pool.metrics.queries.increment(1);
    pool.metrics.query_duration.record(took);
    pool.stats.queries.fetch_add(1, Ordering::Relaxed);
    pool.stats
        .query_micros
        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
}
