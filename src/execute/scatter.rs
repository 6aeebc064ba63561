//! Runs a read on several shards and streams one result to the client, as one PostgreSQL holding every
//! row would return it: a k-way merge of the shards' sorted streams (memory bounded by one row per
//! shard), LIMIT and OFFSET applied after the merge, aggregates combined (per group with GROUP BY, which
//! holds one row per group). Replies are flushed to the client as they are made.
//!
//! A server goes back to its pool only after its ReadyForQuery with no error; after an error, or when
//! the merge stops early, the other servers are drained or closed, never returned with rows pending.

use std::cmp::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use futures_util::FutureExt;
use futures_util::future::try_join_all;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::combine::rename_error;
use super::fanout::{Part, Sent, Work, finish, send, watch_or_retry};
use super::having::FilterParams;
use super::rows::{self, Field};
use super::value::{self, SortKey, Value, ValueError};
use crate::backend::pool::Pooled;
use crate::backend::{BackendError, TextOrder};
use crate::frontend::cancel::{ServerKey, Slot, send_cancel};
use crate::protocol::backend;
use crate::proxy::Topology;
use crate::router::{MergePlan, SortRef};

mod collation;
mod groups;

use collation::{compared_text, text_order_problem};
use groups::{Fields, Groups, combine_groups, output_fields};

/// Flush replies to the client past this much.
const FLUSH_AT: usize = 64 * 1024;

/// One scatter: the parts to run, how their rows merge, and what the client asked for.
pub(crate) struct Scatter {
    pub parts: Vec<Part>,
    pub merge: Merge,
    /// Send the RowDescription (a simple Query, or an extended one with Describe portal).
    pub describe: bool,
    /// The client's Execute row limit (0: none). After that many rows the reply ends with
    /// PortalSuspended, as PostgreSQL's does; the portal is gone at the Sync that follows.
    pub row_limit: u64,
}

/// A merge plan with what one execution's parameters say: LIMIT, OFFSET, the HAVING filter's values.
#[derive(Debug, Clone)]
pub(crate) struct Merge {
    pub plan: Arc<MergePlan>,
    pub limit: Option<u64>,
    pub offset: u64,
    pub filter_params: FilterParams,
}

/// One shard's stream of replies.
struct Stream {
    shard: String,
    conn: Pooled,
    sent: Sent,
    /// How its database orders text.
    text_order: Arc<TextOrder>,
    /// The DataRow at the head of the stream, waiting for its turn in the merge.
    head: Option<(Vec<Option<Value>>, BytesMut)>,
    /// CommandComplete (or an error) seen: no more rows.
    done: bool,
    failed: bool,
}

impl Stream {
    /// The stream ended with this ErrorResponse: for the client, naming the shard.
    fn error(&mut self, m: &[u8]) -> Stop {
        Stop::Error(self.ended_with(m))
    }

    fn ended_with(&mut self, m: &[u8]) -> BytesMut {
        self.done = true;
        self.failed = true;
        rename_error(m, &self.shard, None)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ScatterError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("client connection: {0}")]
    Client(#[from] std::io::Error),
}

/// How a scatter ended: its reply is complete up to the ReadyForQuery, which is the session's to send
/// (at the client's Sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    /// The reply ended with an ErrorResponse.
    Failed,
}

/// Runs the scatter and writes the whole reply, up to ReadyForQuery, to the client. Until the merge
/// is done, a client's cancel reaches every shard's server (`cancel`); only after that is over are the
/// rest of the streams drained and the servers given back.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<W: AsyncWrite + Unpin>(
    topology: &Topology,
    checkout_timeout: std::time::Duration,
    desired: &[(String, String)],
    mut job: Scatter,
    out: &mut BytesMut,
    client: &mut W,
    cancel: &Slot,
) -> Result<Outcome, ScatterError> {
    job.parts.sort_by_key(|p| p.shard);
    let mut conns = Vec::with_capacity(job.parts.len());
    for part in &job.parts {
        conns.push(
            topology.pools[part.shard.0]
                .checkout(checkout_timeout)
                .await?,
        );
    }
    cancel
        .attach_all(conns.iter().map(|c| ServerKey::of(c)))
        .await;
    let merged = match start(conns, &job, desired).await {
        Ok(streams) => respond(streams, &job, out, client).await,
        Err(e) => Err(e.into()),
    };
    // After this no cancel can reach the servers on this client's behalf: they may go back.
    cancel.detach().await;
    let Some((streams, count)) = merged? else {
        return Ok(Outcome::Failed);
    };
    // The rest of every stream (rows past the LIMIT, CommandComplete) through ReadyForQuery.
    for s in streams {
        drain(s).await?;
    }
    if job.row_limit > 0 && count == job.row_limit {
        backend::portal_suspended(out);
    } else {
        backend::command_complete(out, &format!("SELECT {count}"));
    }
    Ok(Outcome::Done)
}

/// Sends every shard its part.
async fn start(
    conns: Vec<Pooled>,
    job: &Scatter,
    desired: &[(String, String)],
) -> Result<Vec<Stream>, BackendError> {
    let mut streams = Vec::with_capacity(conns.len());
    for (mut conn, part) in conns.into_iter().zip(&job.parts) {
        let pool = conn.pool().clone();
        let shard = pool.target.shard.clone();
        // The client's settings before anything runs, the collation probe included.
        conn.align_now(&shard, desired).await?;
        let text_order = pool.text_order(&mut conn).await?;
        let sent = send(&mut conn, &shard, &part.work).await?;
        streams.push(Stream {
            shard,
            conn,
            sent,
            text_order,
            head: None,
            done: false,
            failed: false,
        });
    }
    Ok(streams)
}

/// Writes the merged rows; returns the streams to drain and the rows sent, or None when the reply
/// ended with an error (already written, through ReadyForQuery).
async fn respond<W: AsyncWrite + Unpin>(
    mut streams: Vec<Stream>,
    job: &Scatter,
    out: &mut BytesMut,
    client: &mut W,
) -> Result<Option<(Vec<Stream>, u64)>, ScatterError> {
    // Every shard up to its RowDescription, at once: the first error, from any shard, ends the reply.
    let headers = streams
        .iter_mut()
        .zip(&job.parts)
        .map(|(s, part)| header(s, &part.work));
    let headers = match try_join_all(headers).await {
        Ok(headers) => headers,
        Err(Stop::Error(e)) => return fail(streams, out, e),
        Err(Stop::Io(e)) => return Err(e),
    };
    // The replies before the RowDescription are the first shard's to give, before any error.
    let (before, description) = &headers[0];
    owed(&streams[0], before, out);
    let first = rows::fields(description);
    if headers[1..]
        .iter()
        .any(|(_, d)| !rows::same_shape(&rows::fields(d), &first))
    {
        return fail(streams, out, disagree());
    }
    let fields = first.unwrap_or_default();
    // Each shard's RowDescription says where its text comes from; read only when text is compared.
    let compared = compared_text(&job.merge.plan, &fields);
    for (s, (_, d)) in streams
        .iter()
        .zip(&headers)
        .filter(|_| !compared.is_empty())
    {
        let sources = rows::sources(d).unwrap_or_default();
        if let Some(e) = text_order_problem(&compared, &fields, &sources, &s.text_order) {
            return fail(streams, out, error_frame(&e));
        }
    }
    let visible = fields.len().saturating_sub(job.merge.plan.hidden);
    let shown = match output_fields(&job.merge.plan, &fields) {
        Ok(shown) => shown,
        Err(e) => return fail(streams, out, error_frame(&e)),
    };
    if job.describe {
        if shown != fields {
            rows::write_description(out, &shown[..visible]);
        } else {
            match rows::strip_description(description, visible) {
                Some(t) => out.extend_from_slice(&t),
                None => return fail(streams, out, disagree()),
            }
        }
    }
    let mut emit = Emitter {
        skip: job.merge.offset,
        left: match (job.merge.limit, job.row_limit) {
            (limit, 0) => limit,
            (Some(limit), rows) => Some(limit.min(rows)),
            (None, rows) => Some(rows),
        },
        count: 0,
        visible,
        trim: visible < fields.len(),
        out,
        client,
    };
    let plan = &job.merge.plan;
    let result = if plan.aggregates.is_empty() && plan.order_by.is_empty() {
        merge_unordered(&mut streams, plan, &fields, &mut emit).await
    } else if plan.aggregates.is_empty() {
        merge_rows(&mut streams, plan, &fields, &mut emit).await
    } else {
        let groups = Groups {
            plan,
            fields: Fields {
                shard: &fields,
                shown: &shown,
            },
            params: &job.merge.filter_params,
        };
        combine_groups(&mut streams, groups, &mut emit).await
    };
    let count = emit.count;
    match result {
        Ok(()) => Ok(Some((streams, count))),
        Err(Stop::Error(frame)) => fail(streams, out, frame),
        Err(Stop::Io(e)) => Err(e),
    }
}

/// The ParseComplete/BindComplete the client is owed, as one shard answered them.
fn owed(s: &Stream, before: &[BytesMut], out: &mut BytesMut) {
    out.extend_from_slice(&s.sent.owed());
    for m in before {
        out.extend_from_slice(m);
    }
}

/// What a shard sends before its rows: the ParseComplete/BindComplete the client may be owed, and the
/// RowDescription. On an error, the error frame carries the owed replies the shard gave before it
/// (a Bind that failed was still parsed), as one server would have answered.
async fn header(s: &mut Stream, work: &Work) -> Result<(Vec<BytesMut>, BytesMut), Stop> {
    let mut before = Vec::new();
    let mut retried = false;
    loop {
        let m = s.conn.recv_frame(&s.shard).await?;
        if let Some(again) = watch_or_retry(&mut s.conn, &s.shard, work, &m, &mut retried).await? {
            s.sent = again;
            before.clear();
            continue;
        }
        if !s.sent.keep(m[0]) {
            continue;
        }
        match m[0] {
            b'T' => return Ok((before, m)),
            b'E' => {
                let mut frames = BytesMut::new();
                owed(s, &before, &mut frames);
                frames.extend_from_slice(&s.ended_with(&m));
                return Err(Stop::Error(frames));
            }
            b'1' | b'2' => before.push(m),
            // A statement without a result set has no place in a merged read.
            _ => return Err(Stop::Error(disagree())),
        }
    }
}

/// The rows the client gets: offset, limit and the visible columns, written to the client through
/// `out` as it fills.
struct Emitter<'a, W> {
    skip: u64,
    left: Option<u64>,
    count: u64,
    visible: usize,
    /// Rows carry hidden columns (sort keys, avg's count) past the `visible` ones, to cut off.
    trim: bool,
    out: &'a mut BytesMut,
    client: &'a mut W,
}

impl<W: AsyncWrite + Unpin> Emitter<'_, W> {
    fn full(&self) -> bool {
        self.left == Some(0)
    }

    /// Emits one merged row (a DataRow frame), unless OFFSET still skips it; the client gets `out`
    /// once it holds `FLUSH_AT` bytes.
    async fn row(&mut self, frame_bytes: &[u8]) -> Result<(), Stop> {
        if self.full() {
            return Ok(());
        }
        if self.skip > 0 {
            self.skip -= 1;
            return Ok(());
        }
        match self.trim.then(|| rows::columns(frame_bytes)).flatten() {
            Some(cols) if cols.len() > self.visible => {
                backend::data_row_bytes(self.out, cols[..self.visible].iter().copied());
            }
            _ => self.out.extend_from_slice(frame_bytes),
        }
        self.count += 1;
        if let Some(n) = &mut self.left {
            *n -= 1;
        }
        if self.out.len() >= FLUSH_AT {
            self.write_out().await?;
        }
        Ok(())
    }

    /// Writes whatever `out` holds to the client.
    async fn write_out(&mut self) -> Result<(), Stop> {
        if !self.out.is_empty() {
            self.client
                .write_all(self.out)
                .await
                .map_err(|e| Stop::Io(ScatterError::Client(e)))?;
            self.out.clear();
        }
        Ok(())
    }
}

enum Stop {
    /// An ErrorResponse for the client (a shard's, renamed).
    Error(BytesMut),
    Io(ScatterError),
}

impl From<BackendError> for Stop {
    fn from(e: BackendError) -> Self {
        Stop::Io(e.into())
    }
}

/// The sort keys of a row, decoded by column type and format, in ORDER BY order.
fn sort_values(
    plan: &MergePlan,
    fields: &[Field],
    cols: &[Option<&[u8]>],
) -> Result<Vec<Option<Value>>, String> {
    let visible = fields.len().saturating_sub(plan.hidden);
    plan.order_by
        .iter()
        .map(|k| {
            let i = match k.column {
                SortRef::Output(i) => i,
                SortRef::Hidden(j) => visible + j,
            };
            let (Some(f), Some(raw)) = (fields.get(i), cols.get(i)) else {
                return Err(format!("ORDER BY column {} is not in the result", i + 1));
            };
            value::decode_column(f.type_oid, f.format, *raw)
                .map_err(|e| format!("ORDER BY over several shards: {e}"))
        })
        .collect()
}

/// The sort keys as `value` compares them: the k-th decoded value is the k-th key.
fn sort_keys(plan: &MergePlan) -> Vec<SortKey> {
    plan.order_by
        .iter()
        .enumerate()
        .map(|(k, o)| SortKey {
            column: k,
            descending: o.descending,
            nulls_first: o.nulls_first,
        })
        .collect()
}

/// Reads the next row of a stream into its head (or marks it done).
async fn advance(s: &mut Stream, plan: &MergePlan, fields: &[Field]) -> Result<(), Stop> {
    while !s.done {
        let m = s.conn.recv_frame(&s.shard).await?;
        match m[0] {
            // Rows in no order need no sort keys.
            b'D' if plan.order_by.is_empty() => {
                s.head = Some((Vec::new(), m));
                return Ok(());
            }
            b'D' => {
                let keys = match rows::columns(&m) {
                    Some(cols) => sort_values(plan, fields, &cols),
                    None => Err("a malformed DataRow".into()),
                };
                match keys {
                    Ok(keys) => s.head = Some((keys, m)),
                    Err(e) => return Err(Stop::Error(error_frame(&e))),
                }
                return Ok(());
            }
            b'C' | b's' | b'I' => s.done = true,
            b'E' => return Err(s.error(&m)),
            _ => {}
        }
    }
    Ok(())
}

/// Rows without aggregates, merged by the sort keys.
async fn merge_rows<W: AsyncWrite + Unpin>(
    streams: &mut [Stream],
    plan: &MergePlan,
    fields: &[Field],
    emit: &mut Emitter<'_, W>,
) -> Result<(), Stop> {
    let keys_order = sort_keys(plan);
    try_join_all(streams.iter_mut().map(|s| advance(s, plan, fields))).await?;
    while !emit.full() {
        // Few shards: a scan for the smallest head costs less than a heap.
        let mut best: Option<usize> = None;
        for (i, s) in streams.iter().enumerate() {
            let Some((keys, _)) = &s.head else { continue };
            let better = match best.and_then(|b| streams[b].head.as_ref()) {
                None => true,
                Some((bk, _)) => value::compare_rows(&keys_order, keys, bk) == Ordering::Less,
            };
            if better {
                best = Some(i);
            }
        }
        let Some(i) = best else { break };
        let (_, row) = streams[i].head.take().expect("chosen by its head");
        emit.row(&row).await?;
        advance_or_write(&mut streams[i], plan, fields, emit).await?;
    }
    Ok(())
}

/// Rows an unordered merge takes from one shard at hand before it looks at the next.
const ROWS_PER_TURN: usize = 64;

/// Rows in no order: from whichever shard has one, a few from each in turn, so that a shard slow to
/// send (or with many rows) holds up neither the other shards' rows nor their errors. When no shard has
/// a row at hand, the client gets what is ready before the wait. `advance` may be dropped unfinished:
/// what it read stays in the server's buffer.
async fn merge_unordered<W: AsyncWrite + Unpin>(
    streams: &mut [Stream],
    plan: &MergePlan,
    fields: &[Field],
    emit: &mut Emitter<'_, W>,
) -> Result<(), Stop> {
    let n = streams.len();
    let mut start = 0;
    loop {
        let mut emitted = false;
        for k in 0..n {
            let s = &mut streams[(start + k) % n];
            for _ in 0..ROWS_PER_TURN {
                if emit.full() {
                    return Ok(());
                }
                if s.head.is_none()
                    && let Some(read) = advance(s, plan, fields).now_or_never()
                {
                    read?;
                }
                let Some((_, row)) = s.head.take() else { break };
                emit.row(&row).await?;
                emitted = true;
            }
        }
        if streams.iter().all(|s| s.done) {
            return Ok(());
        }
        start = (start + 1) % n;
        if !emitted {
            emit.write_out().await?;
            // The first shard to send a row, an error or its end.
            std::future::poll_fn(|cx| {
                for s in streams.iter_mut().filter(|s| !s.done) {
                    if let Poll::Ready(read) = std::pin::pin!(advance(s, plan, fields)).poll(cx) {
                        return Poll::Ready(read);
                    }
                }
                Poll::Pending
            })
            .await?;
        }
    }
}

/// The next row of `s`; when the shard has none at hand, the client first gets what is ready, so that
/// no row waits in shardgate for a slow shard.
async fn advance_or_write<W: AsyncWrite + Unpin>(
    s: &mut Stream,
    plan: &MergePlan,
    fields: &[Field],
    emit: &mut Emitter<'_, W>,
) -> Result<(), Stop> {
    if let Some(read) = advance(s, plan, fields).now_or_never() {
        return read;
    }
    emit.write_out().await?;
    advance(s, plan, fields).await
}

/// Reads a stream through its ReadyForQuery, discarding rows, then gives the server back.
async fn drain(mut s: Stream) -> Result<(), BackendError> {
    loop {
        let m = s.conn.recv_frame(&s.shard).await?;
        s.failed |= m[0] == b'E';
        if m[0] == b'Z' {
            s.conn.tx_status = crate::protocol::frame::ready_status(&m);
            finish(s.conn, s.failed);
            return Ok(());
        }
    }
}

/// Ends the reply with an error. The other shards' queries are cancelled and their connections closed,
/// not drained: they may hold many rows, and a closed connection cannot be misused.
fn fail(
    streams: Vec<Stream>,
    out: &mut BytesMut,
    error: BytesMut,
) -> Result<Option<(Vec<Stream>, u64)>, ScatterError> {
    for s in &streams {
        if !s.done {
            let server = ServerKey::of(&s.conn);
            // The backend is closed right after, so the cancel can only reach this query.
            tokio::spawn(async move {
                let _ = send_cancel(&server).await;
            });
        }
    }
    drop(streams);
    out.extend_from_slice(&error);
    Ok(None)
}

fn disagree() -> BytesMut {
    error_frame("the shards returned different result shapes for this query")
}

fn error_frame(message: &str) -> BytesMut {
    coded_error_frame(crate::protocol::sqlstate::FEATURE_NOT_SUPPORTED, message)
}

/// Why a column's parts could not be merged: a result out of its type's range is the error one
/// server raises for it (22003); anything else shardgate cannot merge.
fn merge_error(e: &ValueError) -> BytesMut {
    let code = match e {
        ValueError::OutOfRange(_) => crate::protocol::sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        _ => crate::protocol::sqlstate::FEATURE_NOT_SUPPORTED,
    };
    coded_error_frame(code, &e.to_string())
}

fn coded_error_frame(code: &'static str, message: &str) -> BytesMut {
    let mut out = BytesMut::new();
    backend::error_response(
        &mut out,
        &backend::ErrorFields::new(backend::Severity::Error, code, message),
    );
    out
}
