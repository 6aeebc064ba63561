//! Runs one statement on several shards at once, outside any transaction: a write or DDL on every shard,
//! a reference-table write, the parts of a split INSERT. Each shard's server is checked out (in shard
//! order, so two fan-outs never wait on each other's pools in a cycle), gets its messages, and is read
//! through its ReadyForQuery; the replies are combined (`combine`). A server goes back to its pool only
//! when it answered cleanly and is idle; after an error it is closed.

use std::sync::Arc;

use bytes::BytesMut;

use super::combine::{ShardReply, combine, messages};
use crate::admin::metrics::{self, RouteKind};
use crate::backend::BackendError;
use crate::backend::pool::Pooled;
use crate::backend::prepared::stale_statement;
use crate::frontend::cancel::{ServerKey, Slot};
use crate::frontend::statements::Statement;
use crate::protocol::frontend as msg;
use crate::proxy::Topology;
use crate::sharding::ShardId;

/// What one shard runs.
pub(crate) struct Part {
    pub shard: ShardId,
    pub work: Work,
}

#[derive(Clone)]
pub(crate) enum Work {
    /// A simple Query.
    Query(String),
    /// A simple Query's read, run as a prepared statement on the server so that the server parses and
    /// plans it once, not at every run on every shard; the client is owed none of the extended
    /// protocol's replies. Results come in text, as a simple Query's do.
    Prepared(Arc<Statement>),
    /// Bind (+ Describe portal) + Execute + Sync of a prepared statement, prepared first if this server
    /// lacks it. `client_parse`: the client's own Parse of it was deferred here and is owed its
    /// ParseComplete.
    Execute {
        stmt: Arc<Statement>,
        client_parse: bool,
        bind_rest: Vec<u8>,
        describe: bool,
        max_rows: i32,
    },
}

impl Work {
    /// Bind + Execute + Sync of `stmt`; whether it is described and its row limit are settled when the
    /// client's batch ends.
    pub(crate) fn execute(stmt: Arc<Statement>, client_parse: bool, bind_rest: Vec<u8>) -> Work {
        Work::Execute {
            stmt,
            client_parse,
            bind_rest,
            describe: false,
            max_rows: 0,
        }
    }
}

/// Runs every part and writes the combined replies (through ReadyForQuery) to `out`. While the parts
/// run, a client's cancel reaches every server (`cancel`); no server goes back to its pool before that
/// is over.
pub(crate) async fn run(
    topology: &Topology,
    checkout_timeout: std::time::Duration,
    desired: &[(String, String)],
    mut parts: Vec<Part>,
    out: &mut BytesMut,
    cancel: &Slot,
) -> Result<(), BackendError> {
    parts.sort_by_key(|p| p.shard);
    let started = std::time::Instant::now();
    let kind = if parts.len() == topology.map.shards.len() {
        RouteKind::All
    } else {
        RouteKind::Multi
    };
    let mut held = Vec::with_capacity(parts.len());
    for part in parts {
        let pool = &topology.pools[part.shard.0];
        let conn = pool.checkout(checkout_timeout).await?;
        held.push((conn, part));
    }
    cancel
        .attach_all(held.iter().map(|(c, _)| ServerKey::of(c)))
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (conn, part)) in held.into_iter().enumerate() {
        let desired = desired.to_vec();
        tasks.spawn(async move { (i, run_one(conn, part, &desired).await) });
    }
    let mut joined = Vec::new();
    while let Some(j) = tasks.join_next().await {
        joined.push(j);
    }
    // After this no cancel can reach the servers on this client's behalf: they may go back.
    cancel.detach().await;
    let mut results = Vec::new();
    for j in joined {
        let (i, r) = j.map_err(|e| BackendError::Io {
            shard: "?".into(),
            source: std::io::Error::other(e),
        })?;
        results.push((i, r?));
    }
    results.sort_by_key(|(i, _)| *i);
    let mut replies = Vec::with_capacity(results.len());
    for (_, done) in results {
        metrics::fanout_query(&done.shard, kind, started.elapsed());
        finish(done.conn, done.failed);
        replies.push((done.shard, done.replies));
    }
    let replies: Vec<ShardReply> = replies
        .iter()
        .map(|(shard, bytes)| ShardReply {
            shard,
            messages: messages(bytes),
        })
        .collect();
    combine(&replies, out);
    Ok(())
}

/// What was sent to one server, to sort its replies: the client may be owed a ParseComplete the server
/// will not send (it had the statement), or not owed one it will send (shardgate prepared it).
#[derive(Default)]
pub(super) struct Sent {
    pub owed_parse: bool,
    pub skip_parse: usize,
    /// A Close shardgate sent ahead of the statement's Parse (to make room, or of a stale copy of it):
    /// its CloseComplete is not the client's.
    pub skip_close: bool,
    /// The client sent a simple Query: its BindComplete is not the client's either.
    pub skip_bind: bool,
}

impl Sent {
    /// The replies the client is owed before any of the server's: the ParseComplete shardgate
    /// answers when the server had the statement.
    pub(super) fn owed(&self) -> BytesMut {
        let mut out = BytesMut::new();
        if self.owed_parse {
            crate::protocol::backend::parse_complete(&mut out);
        }
        out
    }

    /// Whether a server message is one the client is owed.
    pub(super) fn keep(&mut self, tag: u8) -> bool {
        match tag {
            b'1' if self.skip_parse > 0 => {
                self.skip_parse -= 1;
                false
            }
            b'3' if self.skip_close => {
                self.skip_close = false;
                false
            }
            b'2' if self.skip_bind => false,
            // Parameter changes, notices and notifications of a shared server are not the client's.
            b'S' | b'N' | b'A' => false,
            _ => true,
        }
    }
}

/// Sends one part's messages (the server has the client's settings already: `align_now`).
pub(super) async fn send(
    conn: &mut Pooled,
    shard: &str,
    work: &Work,
) -> Result<Sent, BackendError> {
    let mut buf = BytesMut::new();
    let mut sent = Sent::default();
    match work {
        Work::Query(sql) => msg::write_query(&mut buf, sql),
        Work::Execute {
            stmt,
            client_parse,
            bind_rest,
            describe,
            max_rows,
        } => {
            prepare(conn, stmt, *client_parse, &mut buf, &mut sent);
            write_run(&mut buf, stmt, bind_rest, *describe, *max_rows);
        }
        Work::Prepared(stmt) => {
            prepare(conn, stmt, false, &mut buf, &mut sent);
            sent.skip_bind = true;
            // No parameters, no format codes: every result column in text.
            write_run(&mut buf, stmt, &[0; 6], true, 0);
        }
    }
    conn.send(shard, &buf).await?;
    Ok(sent)
}

/// A Parse of the statement unless the server has it already (then the client's own Parse, if it sent
/// one, is answered by shardgate).
fn prepare(
    conn: &mut Pooled,
    stmt: &Statement,
    client_parse: bool,
    buf: &mut BytesMut,
    sent: &mut Sent,
) {
    if conn.prepared.use_if_present(stmt.id) {
        sent.owed_parse = client_parse;
    } else {
        sent.skip_close = conn.prepared.make_room(stmt.id, buf).is_some();
        msg::write_parse(buf, &stmt.server_name, &stmt.query, &stmt.param_types);
        sent.skip_parse = usize::from(!client_parse);
    }
}

/// Bind (+ Describe portal) + Execute + Sync of a statement the server has.
fn write_run(buf: &mut BytesMut, stmt: &Statement, bind_rest: &[u8], describe: bool, rows: i32) {
    msg::write_bind(buf, "", &stmt.server_name, bind_rest);
    if describe {
        msg::write_describe_portal(buf, "");
    }
    msg::write_execute(buf, "", rows);
    msg::write_sync(buf);
}

/// Shows a shard's reply `m` to the server's statement list (`watch`); then, for a prepared
/// statement PostgreSQL refused as stale (`stale_statement`), one more try per run, before any of
/// its rows: reads the failed run through its ReadyForQuery and sends the work again. `watch` has
/// started a new schema epoch by then, so `send` closes the server's copy ahead of the new Parse.
/// `None` when `m` is not that refusal, the work prepares nothing, or the run had its try.
pub(super) async fn watch_or_retry(
    conn: &mut Pooled,
    shard: &str,
    work: &Work,
    m: &[u8],
    retried: &mut bool,
) -> Result<Option<Sent>, BackendError> {
    conn.prepared.watch(m);
    if matches!(work, Work::Query(_)) || *retried || !stale_statement(m) {
        return Ok(None);
    }
    *retried = true;
    while conn.recv_frame(shard).await?[0] != b'Z' {}
    send(conn, shard, work).await.map(Some)
}

/// After a server's ReadyForQuery: back to the pool when it answered cleanly (`release` closes one
/// that is not idle); after an error closed, so what a failed part did to its statements dies with
/// the connection.
pub(super) fn finish(conn: Pooled, failed: bool) {
    if !failed {
        conn.release();
    }
}

/// One shard's part, answered through ReadyForQuery; the server is not given back yet.
struct Done {
    shard: String,
    replies: BytesMut,
    conn: Pooled,
    failed: bool,
}

/// Sends one part and collects the replies the client is owed.
async fn run_one(
    mut conn: Pooled,
    part: Part,
    desired: &[(String, String)],
) -> Result<Done, BackendError> {
    let shard = conn.pool().target.shard.clone();
    conn.align_now(&shard, desired).await?;
    let mut sent = send(&mut conn, &shard, &part.work).await?;
    let mut replies = sent.owed();
    let mut failed = false;
    let mut retried = false;
    loop {
        let frame = conn.recv_frame(&shard).await?;
        let tag = frame[0];
        if let Some(again) =
            watch_or_retry(&mut conn, &shard, &part.work, &frame, &mut retried).await?
        {
            sent = again;
            replies = sent.owed();
            continue;
        }
        if sent.keep(tag) {
            replies.extend_from_slice(&frame);
        }
        failed |= tag == b'E';
        if tag == b'Z' {
            conn.tx_status = crate::protocol::frame::ready_status(&frame);
            break;
        }
    }
    Ok(Done {
        shard,
        replies,
        conn,
        failed,
    })
}
