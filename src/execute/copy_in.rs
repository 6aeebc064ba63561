//! COPY FROM STDIN into a sharded table: one COPY per shard, each inside a transaction of its own, and
//! every client row sent to the shard of its key. At CopyDone every shard's COPY ends; only when all of
//! them succeeded do they commit, so a bad row or a failing shard leaves no row anywhere. A COMMIT
//! that fails after another shard's succeeded is the one window where shards disagree, as for any write
//! on several shards until cross-shard transactions land.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::combine::rename_error;
use super::copy_split::{Field, Piece, Splitter};
use super::directory::DirectoryCache;
use crate::backend::BackendError;
use crate::backend::pool::Pooled;
use crate::frontend::cancel::{ServerKey, Slot};
use crate::protocol::backend::{self, ErrorFields, Severity};
use crate::protocol::{frame, frontend as msg, sqlstate};
use crate::proxy::Topology;
use crate::router::{CopyFormat, CopyIn, Route};
use crate::sharding::{KeyValue, Placement, Sharded, TableKind};

/// Buffered rows go to a shard past this much.
const SEND_AT: usize = 64 * 1024;

/// A COPY under way on every shard.
pub(crate) struct CopyRun {
    topology: Arc<Topology>,
    table: usize,
    sharded: Sharded,
    binary: bool,
    splitter: Splitter,
    /// One per shard of the map, by shard id.
    shards: Vec<ShardCopy>,
}

struct ShardCopy {
    name: String,
    conn: Pooled,
    /// CopyData not sent yet.
    out: BytesMut,
    /// The server is in COPY IN mode (it answered CopyInResponse, and no CopyDone or CopyFail went).
    copying: bool,
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

fn refused(code: &'static str, message: impl Into<String>) -> CopyError {
    let mut out = BytesMut::new();
    backend::error_response(&mut out, &ErrorFields::new(Severity::Error, code, message));
    CopyError::Refused(out)
}

impl CopyRun {
    /// Starts the COPY on every shard (after the client's session parameters); returns the run and
    /// the CopyInResponse for the client. A client's cancel reaches every shard until the caller
    /// detaches `cancel`, once the run is over (also when it fails to start).
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
        let table_name = topology.map.tables[plan.table].name.clone();
        let mut shards = Vec::with_capacity(topology.pools.len());
        for pool in &topology.pools {
            let conn = pool.checkout(checkout).await?;
            shards.push(ShardCopy {
                name: pool.target.shard.clone(),
                conn,
                out: BytesMut::new(),
                copying: false,
            });
        }
        let columns = match plan.columns.is_empty() {
            false => plan.columns.clone(),
            true => table_columns(&mut shards[0], &table_name).await?,
        };
        let Some(key_at) = columns.iter().position(|c| *c == sharded.key) else {
            return Err(refused(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "a COPY into sharded table {table_name} must include its shard key column {}",
                    sharded.key
                ),
            ));
        };
        cancel
            .attach_all(shards.iter().map(|s| ServerKey::of(&s.conn)))
            .await;
        let mut run = CopyRun {
            topology: topology.clone(),
            table: plan.table,
            sharded: sharded.clone(),
            binary: plan.format == CopyFormat::Binary,
            splitter: Splitter::new(plan.format.clone(), key_at),
            shards,
        };
        let begun = run.begin(sql, desired).await;
        match begun {
            Ok(response) => Ok((run, response)),
            Err(e) => {
                run.fail("a shard did not start the COPY").await;
                Err(e)
            }
        }
    }

    /// BEGIN and the COPY on every shard, up to each one's CopyInResponse.
    async fn begin(
        &mut self,
        sql: &str,
        desired: &[(String, String)],
    ) -> Result<BytesMut, CopyError> {
        let mut response = None;
        let mut failed = None;
        for s in &mut self.shards {
            s.conn.align_now(&s.name, desired).await?;
            let mut q = BytesMut::new();
            msg::write_query(&mut q, &format!("BEGIN; {sql}"));
            s.conn.send(&s.name, &q).await?;
        }
        for s in &mut self.shards {
            loop {
                let m = s.conn.recv_frame(&s.name).await?;
                match m[0] {
                    b'G' => {
                        s.copying = true;
                        response.get_or_insert(m);
                        break;
                    }
                    b'E' => {
                        failed.get_or_insert_with(|| rename_error(&m, &s.name, None));
                    }
                    b'Z' => {
                        s.conn.tx_status = m.get(frame::HEADER_LEN).copied().unwrap_or(b'E');
                        break;
                    }
                    _ => {}
                }
            }
        }
        match (failed, response) {
            (None, Some(r)) => Ok(r),
            (Some(e), _) => Err(CopyError::Refused(e)),
            (None, None) => Err(refused(
                sqlstate::PROTOCOL_VIOLATION,
                "no shard started the COPY",
            )),
        }
    }

    /// The client's next CopyData: each whole row goes to the shard of its key.
    pub(crate) async fn data(
        &mut self,
        bytes: &[u8],
        directory: &DirectoryCache,
    ) -> Result<(), CopyError> {
        let mut lookups = Vec::new();
        let fed = {
            let CopyRun {
                topology,
                sharded,
                binary,
                splitter,
                shards,
                ..
            } = self;
            let mut emit =
                |p: Piece<'_>| route_piece(p, topology, sharded, *binary, shards, &mut lookups);
            splitter.feed(bytes, &mut emit)
        };
        self.after_feed(fed, lookups, directory).await
    }

    async fn after_feed(
        &mut self,
        fed: Result<(), String>,
        lookups: Vec<(Vec<u8>, KeyValue)>,
        directory: &DirectoryCache,
    ) -> Result<(), CopyError> {
        if let Err(e) = fed {
            return Err(refused(BAD_COPY_FILE_FORMAT, e));
        }
        for (row, key) in lookups {
            match directory.resolve(&self.topology, self.table, &key).await {
                Route::Shard(s) => copy_data(&mut self.shards[s.0].out, &row),
                _ => {
                    return Err(refused(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!("no shard owns the COPY row with key {key}"),
                    ));
                }
            }
        }
        for s in &mut self.shards {
            if s.out.len() >= SEND_AT {
                s.conn.send(&s.name, &s.out).await?;
                s.out.clear();
            }
        }
        Ok(())
    }

    /// CopyDone: every shard's COPY ends, then all commit, or all roll back. The rows copied.
    pub(crate) async fn done(mut self, directory: &DirectoryCache) -> Result<u64, CopyError> {
        let mut lookups = Vec::new();
        let fed = {
            let CopyRun {
                topology,
                sharded,
                binary,
                splitter,
                shards,
                ..
            } = &mut self;
            let mut emit =
                |p: Piece<'_>| route_piece(p, topology, sharded, *binary, shards, &mut lookups);
            splitter.finish(&mut emit)
        };
        if let Err(e) = self.after_feed(fed, lookups, directory).await {
            self.roll_back().await;
            return Err(e);
        }
        let ended = self
            .end(|out| frame::write_message(out, b'c', |_| {}))
            .await;
        let rows = match ended {
            Ok(rows) => rows,
            Err(e) => {
                self.roll_back().await;
                return Err(e);
            }
        };
        let mut committed = Vec::new();
        for s in &mut self.shards {
            if let Some(e) = s.conn.simple(&s.name, "COMMIT").await? {
                let message = format!(
                    "COMMIT of the COPY failed on shard {}: {e}; shards already committed: {}",
                    s.name,
                    if committed.is_empty() {
                        "none".into()
                    } else {
                        committed.join(", ")
                    }
                );
                self.roll_back().await;
                return Err(refused(sqlstate::CONNECTION_FAILURE, message));
            }
            committed.push(s.name.clone());
        }
        self.release();
        Ok(rows)
    }

    /// CopyFail, or an error of shardgate's own: every shard's COPY ends and rolls back.
    pub(crate) async fn fail(mut self, message: &str) {
        let _ = self
            .end(|out| {
                frame::write_message(out, b'f', |b| frame::put_cstr(b, message));
            })
            .await;
        self.roll_back().await;
    }

    /// Sends what is left and `end` (CopyDone or CopyFail) to every shard still copying and reads
    /// each one's replies through ReadyForQuery: the rows copied, or the first shard's error.
    async fn end(&mut self, end: impl Fn(&mut BytesMut)) -> Result<u64, CopyError> {
        for s in self.shards.iter_mut().filter(|s| s.copying) {
            end(&mut s.out);
            s.conn.send(&s.name, &s.out).await?;
            s.out.clear();
        }
        let (mut rows, mut failed) = (0u64, None);
        for s in self.shards.iter_mut().filter(|s| s.copying) {
            s.copying = false;
            loop {
                let m = s.conn.recv_frame(&s.name).await?;
                match m[0] {
                    b'C' => rows += copied(&m),
                    b'E' => {
                        failed.get_or_insert_with(|| rename_error(&m, &s.name, None));
                    }
                    b'Z' => {
                        s.conn.tx_status = m.get(frame::HEADER_LEN).copied().unwrap_or(b'E');
                        break;
                    }
                    _ => {}
                }
            }
        }
        match failed {
            None => Ok(rows),
            Some(e) => Err(CopyError::Refused(e)),
        }
    }

    /// ROLLBACK on every shard; a server that does not answer cleanly is closed.
    async fn roll_back(&mut self) {
        for s in &mut self.shards {
            if s.conn.tx_status != b'I' {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    s.conn.simple(&s.name, "ROLLBACK"),
                )
                .await;
            }
        }
        self.release();
    }

    fn release(&mut self) {
        for s in self.shards.drain(..) {
            super::fanout::finish(s.conn, false);
        }
    }
}

/// SQLSTATE bad_copy_file_format.
const BAD_COPY_FILE_FORMAT: &str = "22P04";

/// One piece of the client's data into its shard's buffer (or every shard's); a directory key that
/// is not inline waits in `lookups`.
fn route_piece(
    p: Piece<'_>,
    topology: &Topology,
    sharded: &Sharded,
    binary: bool,
    shards: &mut [ShardCopy],
    lookups: &mut Vec<(Vec<u8>, KeyValue)>,
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
    let tag = &m[frame::HEADER_LEN..];
    let tag = tag.strip_suffix(&[0]).unwrap_or(tag);
    std::str::from_utf8(tag)
        .ok()
        .and_then(|t| t.strip_prefix("COPY "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The table's columns in order, when the COPY lists none (asked of the first shard).
async fn table_columns(s: &mut ShardCopy, table: &str) -> Result<Vec<String>, CopyError> {
    let sql = format!(
        "SELECT attname FROM pg_attribute WHERE attrelid = {}::regclass AND attnum > 0 \
         AND NOT attisdropped ORDER BY attnum",
        msg::quote_literal(table)
    );
    let mut q = BytesMut::new();
    msg::write_query(&mut q, &sql);
    s.conn.send(&s.name, &q).await?;
    let (mut columns, mut failed) = (Vec::new(), None);
    loop {
        let m = s.conn.recv_frame(&s.name).await?;
        match m[0] {
            b'D' => {
                if let Some(Some(name)) = super::rows::columns(&m).and_then(|c| c.first().copied())
                {
                    columns.push(String::from_utf8_lossy(name).into_owned());
                }
            }
            b'E' => failed = Some(rename_error(&m, &s.name, None)),
            b'Z' => {
                s.conn.tx_status = m.get(frame::HEADER_LEN).copied().unwrap_or(b'E');
                break;
            }
            _ => {}
        }
    }
    match failed {
        Some(e) => Err(CopyError::Refused(e)),
        None => Ok(columns),
    }
}
