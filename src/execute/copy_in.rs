//! COPY FROM STDIN into a sharded table: one COPY per shard, each inside a transaction of its own, and
//! every client row sent to the shard of its key. At CopyDone every shard's COPY ends; only when all of
//! them succeeded do they commit, so a bad row or a failing shard leaves no row anywhere. A COMMIT
//! that fails after another shard's succeeded is the one window where shards disagree, as for any write
//! on several shards until cross-shard transactions land.
//!
//! A server goes back to its pool only after a ReadyForQuery that says it is idle, with nothing sent
//! since; any other (an I/O error, replies not read, a COPY or transaction left open) is closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::combine::{rename_error, tag_count, tag_text};
use super::copy_split::{Field, Piece, Splitter};
use super::directory::DirectoryCache;
use crate::backend::BackendError;
use crate::backend::pool::Pooled;
use crate::frontend::cancel::{ServerKey, Slot};
use crate::protocol::backend::{self, ErrorFields, Severity};
use crate::protocol::{frame, frontend as msg, sqlstate};
use crate::proxy::Topology;
use crate::router::{CopyIn, Route};
use crate::sharding::{KeyValue, Placement, Sharded, TableKind};

/// Buffered rows go to a shard past this much.
const SEND_AT: usize = 64 * 1024;

/// A row whose directory key is not inline, and the key to look up.
type Lookup = (Vec<u8>, KeyValue);

/// A COPY under way on every shard.
pub(crate) struct CopyRun {
    topology: Arc<Topology>,
    table: usize,
    sharded: Sharded,
    splitter: Splitter,
    /// One per shard of the map, by shard id.
    shards: Vec<ShardCopy>,
}

struct ShardCopy {
    name: String,
    conn: Pooled,
    /// CopyData not sent yet.
    out: BytesMut,
    /// The server is in COPY IN mode (it answered CopyInResponse; no CopyDone or CopyFail went).
    copying: bool,
    /// The last thing read was a ReadyForQuery and nothing was sent since: its status is current.
    settled: bool,
    /// An I/O error, or replies left unread: never used again, closed at the end.
    broken: bool,
    /// The first error the server reported while the rows streamed (read as they went).
    error: Option<BytesMut>,
    /// Its CopyInResponse.
    response: Option<BytesMut>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// The ErrorResponse the client gets; every shard was rolled back (or, for a failed COMMIT, the
    /// message says which shards committed).
    #[error("COPY failed")]
    Refused(BytesMut),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The COPY ends with this error for the client.
pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> CopyError {
    let mut out = BytesMut::new();
    backend::error_response(&mut out, &ErrorFields::new(Severity::Error, code, message));
    CopyError::Refused(out)
}

impl ShardCopy {
    /// Sends `buf`; on an I/O error the shard is broken.
    async fn send(&mut self, buf: &[u8]) -> Result<(), BackendError> {
        self.settled = false;
        let sent = self.conn.send(&self.name, buf).await;
        self.broken |= sent.is_err();
        sent
    }

    /// Reads replies through ReadyForQuery (or, with `until_copy`, a CopyInResponse): `C` tags are
    /// counted into the result, the first ErrorResponse is kept.
    async fn read_to_ready(
        &mut self,
        until_copy: bool,
    ) -> Result<(u64, Option<BytesMut>), BackendError> {
        let (mut rows, mut failed) = (0, None);
        loop {
            let m = match self.conn.recv_frame(&self.name).await {
                Ok(m) => m,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
            match m[0] {
                b'G' if until_copy => {
                    self.copying = true;
                    self.response = Some(m);
                    return Ok((rows, failed));
                }
                b'C' => rows += copied(&m),
                b'E' => {
                    failed.get_or_insert_with(|| rename_error(&m, &self.name, None));
                }
                b'Z' => {
                    self.conn.tx_status = frame::ready_status(&m);
                    self.settled = true;
                    return Ok((rows, failed));
                }
                _ => {}
            }
        }
    }

    /// Whatever the server sent while rows streamed, without waiting: notices are dropped (a server
    /// blocked writing them would stop reading rows), the first error is kept.
    fn drain(&mut self) {
        if self.conn.try_fill(&self.name).is_err() {
            self.broken = true;
            return;
        }
        while let Ok(Some(n)) = frame::tagged_len(&self.conn.read_buf, usize::MAX) {
            let m = self.conn.read_buf.split_to(n);
            match m[0] {
                b'E' if self.error.is_none() => {
                    self.error = Some(rename_error(&m, &self.name, None));
                }
                // The COPY ended on the server (after its error): it takes no CopyDone or CopyFail
                // now, and owes nothing more.
                b'Z' => {
                    self.conn.tx_status = frame::ready_status(&m);
                    self.settled = true;
                    self.copying = false;
                }
                _ => {}
            }
        }
    }
}

impl CopyRun {
    /// Starts the COPY on every shard (after the client's session parameters); returns the run and
    /// the CopyInResponse for the client. A client's cancel reaches every shard until the run ends
    /// (`done` or `fail`, which detach `cancel` before any server goes back).
    pub(crate) async fn start(
        topology: Arc<Topology>,
        plan: &CopyIn,
        sql: &str,
        desired: &[(String, String)],
        checkout: Duration,
        cancel: &Slot,
    ) -> Result<(CopyRun, BytesMut), CopyError> {
        let Some(TableKind::Sharded(sharded)) =
            topology.map.tables.get(plan.table).map(|t| &t.kind)
        else {
            return Err(refused(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "COPY target is not sharded",
            ));
        };
        let mut shards = Vec::with_capacity(topology.pools.len());
        for pool in &topology.pools {
            let mut conn = pool.checkout(checkout).await?;
            // The client's settings before anything runs (its search_path names the table); a server
            // that refuses them is dropped, so closed.
            conn.align_now(&pool.target.shard, desired).await?;
            shards.push(ShardCopy {
                name: pool.target.shard.clone(),
                conn,
                out: BytesMut::new(),
                copying: false,
                settled: true,
                broken: false,
                error: None,
                response: None,
            });
        }
        cancel
            .attach_all(shards.iter().map(|s| ServerKey::of(&s.conn)))
            .await;
        let mut run = CopyRun {
            topology: topology.clone(),
            table: plan.table,
            sharded: sharded.clone(),
            splitter: Splitter::new(plan.format.clone(), 0),
            shards,
        };
        let begun = run.begin(plan, sql).await;
        match begun {
            Ok(response) => Ok((run, response)),
            Err(e) => {
                run.end_and_roll_back("a shard did not start the COPY", cancel)
                    .await;
                Err(e)
            }
        }
    }

    /// Where the key is among the row's fields, then BEGIN and the COPY on every shard, up to each
    /// one's CopyInResponse.
    async fn begin(&mut self, plan: &CopyIn, sql: &str) -> Result<BytesMut, CopyError> {
        let table = self.topology.map.tables[plan.table].name.clone();
        let columns = match plan.columns.is_empty() {
            false => plan.columns.clone(),
            true => table_columns(&mut self.shards[0], &table).await?,
        };
        let Some(key_at) = columns.iter().position(|c| *c == self.sharded.key) else {
            return Err(refused(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "a COPY into sharded table {table} must include its shard key column {}",
                    self.sharded.key
                ),
            ));
        };
        self.splitter = Splitter::new(plan.format.clone(), key_at);
        let mut q = BytesMut::new();
        msg::write_query(&mut q, &format!("BEGIN; {sql}"));
        for s in &mut self.shards {
            s.send(&q).await?;
        }
        let (mut response, mut failed) = (None, None);
        for s in &mut self.shards {
            let (_, error) = s.read_to_ready(true).await?;
            if let Some(r) = s.response.take() {
                response.get_or_insert(r);
            }
            failed = failed.or(error);
        }
        match (failed, response) {
            (None, Some(r)) if self.shards.iter().all(|s| s.copying) => Ok(r),
            (Some(e), _) => Err(CopyError::Refused(e)),
            _ => Err(refused(
                sqlstate::PROTOCOL_VIOLATION,
                "a shard answered the COPY without starting it",
            )),
        }
    }

    /// The client's next CopyData: each whole row goes to the shard of its key.
    pub(crate) async fn data(
        &mut self,
        bytes: &[u8],
        directory: &DirectoryCache,
    ) -> Result<(), CopyError> {
        let (fed, lookups) = self.split(Some(bytes));
        self.after_feed(fed, lookups, directory).await
    }

    /// Feeds the splitter (`None`: the data ended): rows go into their shards' buffers; the rows whose
    /// directory key is not inline come back, to be looked up.
    fn split(&mut self, bytes: Option<&[u8]>) -> (Result<(), String>, Vec<Lookup>) {
        let mut lookups = Vec::new();
        let CopyRun {
            topology,
            sharded,
            splitter,
            shards,
            ..
        } = self;
        let binary = splitter.binary();
        let mut emit =
            |p: Piece<'_>| route_piece(p, topology, sharded, binary, shards, &mut lookups);
        let fed = match bytes {
            Some(b) => splitter.feed(b, &mut emit),
            None => splitter.finish(&mut emit),
        };
        (fed, lookups)
    }

    async fn after_feed(
        &mut self,
        fed: Result<(), String>,
        lookups: Vec<Lookup>,
        directory: &DirectoryCache,
    ) -> Result<(), CopyError> {
        if let Err(e) = fed {
            return Err(refused(sqlstate::BAD_COPY_FILE_FORMAT, e));
        }
        for (row, key) in lookups {
            match directory.resolve(&self.topology, self.table, &key).await {
                Route::Shard(s) => copy_data(&mut self.shards[s.0].out, &row),
                Route::Refused(r) => return Err(refused(r.code, r.message)),
                other => {
                    return Err(refused(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!("the COPY row with key {key} has no one shard ({other})"),
                    ));
                }
            }
        }
        for s in &mut self.shards {
            if s.out.len() >= SEND_AT {
                s.drain();
                if let Some(e) = s.error.take() {
                    return Err(CopyError::Refused(e));
                }
                let out = std::mem::take(&mut s.out);
                s.send(&out).await?;
                s.out = out;
                s.out.clear();
            }
        }
        Ok(())
    }

    /// CopyDone: every shard's COPY ends, then all commit, or all roll back. The rows copied.
    pub(crate) async fn done(
        mut self,
        directory: &DirectoryCache,
        cancel: &Slot,
    ) -> Result<u64, CopyError> {
        let (fed, lookups) = self.split(None);
        if let Err(e) = self.after_feed(fed, lookups, directory).await {
            self.end_and_roll_back("shardgate ended the COPY", cancel)
                .await;
            return Err(e);
        }
        let rows = match self
            .end(|out| frame::write_message(out, b'c', |_| {}))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                self.roll_back(cancel).await;
                return Err(e);
            }
        };
        let mut committed = Vec::new();
        for i in 0..self.shards.len() {
            let s = &mut self.shards[i];
            let commit = s.conn.simple(&s.name, "COMMIT").await;
            s.broken |= commit.is_err();
            let failure = match commit {
                Ok(None) => None,
                Ok(Some(e)) => Some(e),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failure {
                let name = s.name.clone();
                let committed = match committed.is_empty() {
                    true => "none".to_owned(),
                    false => committed.join(", "),
                };
                self.roll_back(cancel).await;
                return Err(refused(
                    sqlstate::CONNECTION_FAILURE,
                    format!(
                        "COMMIT of the COPY failed on shard {name}: {e}; shards already committed: {committed}"
                    ),
                ));
            }
            committed.push(s.name.clone());
        }
        self.release(cancel).await;
        Ok(rows)
    }

    /// CopyFail, or an error of shardgate's own: every shard's COPY ends and rolls back.
    pub(crate) async fn fail(mut self, message: &str, cancel: &Slot) {
        self.end_and_roll_back(message, cancel).await;
    }

    async fn end_and_roll_back(&mut self, message: &str, cancel: &Slot) {
        let _ = self.end(|out| msg::write_copy_fail(out, message)).await;
        self.roll_back(cancel).await;
    }

    /// Sends what is left and `end` (CopyDone or CopyFail) to every shard still copying and reads
    /// each one's replies through ReadyForQuery: the rows copied, or the first error. Every shard is
    /// ended, whatever another one did.
    async fn end(&mut self, end: impl Fn(&mut BytesMut)) -> Result<u64, CopyError> {
        let mut failed: Option<CopyError> = None;
        for s in self.shards.iter_mut().filter(|s| s.copying && !s.broken) {
            end(&mut s.out);
            let out = std::mem::take(&mut s.out);
            if let Err(e) = s.send(&out).await {
                failed.get_or_insert(e.into());
            }
        }
        let mut rows = 0;
        for s in self.shards.iter_mut().filter(|s| s.copying && !s.broken) {
            s.copying = false;
            match s.read_to_ready(false).await {
                Ok((n, None)) => rows += n,
                Ok((_, Some(e))) => {
                    failed.get_or_insert(CopyError::Refused(e));
                }
                Err(e) => {
                    failed.get_or_insert(e.into());
                }
            }
        }
        match failed {
            None => Ok(rows),
            Some(e) => Err(e),
        }
    }

    /// ROLLBACK on every shard in a transaction, then back to the pools.
    async fn roll_back(&mut self, cancel: &Slot) {
        for s in self.shards.iter_mut().filter(|s| !s.broken && !s.copying) {
            if !s.settled || s.conn.tx_status != b'I' {
                let rolled = tokio::time::timeout(
                    Duration::from_secs(5),
                    s.conn.simple(&s.name, "ROLLBACK"),
                )
                .await;
                match rolled {
                    Ok(Ok(_)) => s.settled = true,
                    _ => s.broken = true,
                }
            }
        }
        self.release(cancel).await;
    }

    /// No cancel reaches the servers after this; those idle after a ReadyForQuery go back, the rest
    /// are closed.
    async fn release(&mut self, cancel: &Slot) {
        cancel.detach().await;
        for s in self.shards.drain(..) {
            // Release itself closes a server not idle or with bytes unread.
            if s.settled && !s.broken && !s.copying && s.out.is_empty() {
                s.conn.release();
            }
        }
    }
}

/// One piece of the client's data into its shard's buffer (or every shard's); a directory key that
/// is not inline waits in `lookups`.
fn route_piece(
    p: Piece<'_>,
    topology: &Topology,
    sharded: &Sharded,
    binary: bool,
    shards: &mut [ShardCopy],
    lookups: &mut Vec<Lookup>,
) -> Result<(), String> {
    let (bytes, key) = match p {
        Piece::Every(bytes) => {
            for s in shards.iter_mut() {
                copy_data(&mut s.out, bytes);
            }
            return Ok(());
        }
        Piece::Row { bytes, key } => (bytes, key),
    };
    let raw = match key {
        Field::Value(v) => v,
        Field::Null => {
            return Err(format!(
                "a COPY row has NULL in the shard key column {}",
                sharded.key
            ));
        }
        Field::Missing => {
            return Err(format!(
                "a COPY row has no shard key column {}",
                sharded.key
            ));
        }
    };
    let key = if binary {
        sharded
            .key_type
            .parse_binary(&raw)
            .map_err(|e| e.to_string())
    } else {
        std::str::from_utf8(&raw)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|t| sharded.key_type.parse_text(t).map_err(|e| e.to_string()))
    }
    .map_err(|e| format!("bad shard key in a COPY row: {e}"))?;
    match topology.map.place(sharded, &key) {
        Placement::Shard(s) => copy_data(&mut shards[s.0].out, bytes),
        Placement::Lookup => lookups.push((bytes.to_vec(), key)),
        Placement::Nowhere(why) => return Err(format!("no shard owns a COPY row: {why}")),
    }
    Ok(())
}

fn copy_data(out: &mut BytesMut, bytes: &[u8]) {
    frame::write_message(out, b'd', |b| b.extend_from_slice(bytes));
}

/// The row count of a `COPY n` CommandComplete.
fn copied(m: &[u8]) -> u64 {
    tag_count(tag_text(m)).map_or(0, |(_, n)| n)
}

/// The columns a COPY without a column list takes, in order (asked of the first shard; stored
/// generated columns are not among them).
async fn table_columns(s: &mut ShardCopy, table: &str) -> Result<Vec<String>, CopyError> {
    let sql = format!(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = {}::pg_catalog.regclass \
         AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        msg::quote_literal(table)
    );
    s.settled = false;
    let rows = s.conn.query_rows(&s.name, &sql).await;
    s.broken |= rows.is_err();
    s.settled = !s.broken;
    match rows? {
        Ok(rows) => Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()),
        Err(e) => Err(CopyError::Refused(rename_error(&e, &s.name, None))),
    }
}
