//! Carrying out the router's decision for one statement: hold the server of its shard (waiting for the
//! current one to finish, or refusing a second shard inside a transaction), fan out to several shards,
//! or refuse with the router's reason. The decision itself is the router's; nothing here reads SQL.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use bytes::BytesMut;

use super::{Deferred, FanoutBatch, Session, Step, held_begin, raise};
use crate::execute::fanout::{self, Part, Work};
use crate::execute::having::FilterParams;
use crate::execute::scatter::{self, Merge, Outcome, Scatter, ScatterError};
use crate::frontend::error::SessionError;
use crate::frontend::pending::{Batch, Pending, Synthetic};
use crate::frontend::statements::Statement;
use crate::protocol::backend::{ErrorFields, Severity};
use crate::protocol::frontend as msg;
use crate::protocol::frontend::BindParams;
use crate::protocol::sqlstate;
use crate::proxy::Topology;
use crate::router::{Beside, CopyIn, Count, Params, Plan, Refusal, Route, SplitPart};
use crate::sharding::ShardId;
use crate::sharding::{KeyType, KeyValue};

/// How a route is carried out in a session.
pub(super) enum Placement {
    /// On one server of this shard.
    Shard(ShardId),
    /// On several shards at once, outside a transaction.
    Fanout,
    /// A read on several shards, merged into one result.
    Scatter(Vec<ShardId>),
    /// COPY FROM STDIN split row by row over the shards.
    CopyIn(CopyIn),
    Refuse(Refusal),
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    /// The map routing uses: a transaction finishes on the map it started with; otherwise the current.
    pub(super) fn topology(&self) -> Arc<Topology> {
        match &self.server {
            Some(a) => a.topology.clone(),
            None => self.proxy.topology.load_full(),
        }
    }

    /// The shard `SET shardgate.shard` chose, if it still exists in this map.
    pub(super) fn session_shard(&self, topo: &Topology) -> Option<ShardId> {
        self.session_shard
            .as_deref()
            .and_then(|name| topo.map.shard_named(name))
    }

    /// Where a route runs. `Any` stays on the server the client holds, or takes the next shard in turn.
    /// A statement that `keeps_state` is refused on several shards.
    pub(super) fn place(&self, route: Route, topo: &Topology, keeps_state: bool) -> Placement {
        let placement = self.place_route(route, topo);
        match placement {
            Placement::Fanout | Placement::Scatter(_) if keeps_state => {
                Placement::Refuse(state_on_several_shards())
            }
            p => p,
        }
    }

    fn place_route(&self, route: Route, topo: &Topology) -> Placement {
        let shards = topo.map.shards.len();
        match route {
            Route::Shard(s) => Placement::Shard(s),
            Route::Any => Placement::Shard(match &self.server {
                Some(a) => a.shard,
                None => self
                    .session_shard(topo)
                    .unwrap_or_else(|| self.proxy.next_any_shard(shards)),
            }),
            // On one shard, "every shard" is a plain statement on it (also inside a transaction).
            Route::All if shards == 1 => Placement::Shard(ShardId(0)),
            Route::Multi(list) if list.len() == 1 => Placement::Shard(list[0]),
            Route::All => Placement::Fanout,
            Route::Multi(_) => Placement::Fanout,
            Route::Split(_) => Placement::Fanout,
            Route::Scatter(list) if list.len() == 1 => Placement::Shard(list[0]),
            Route::Scatter(list) => Placement::Scatter(list),
            Route::CopyIn(c) => Placement::CopyIn(c),
            Route::Lookup { .. } => Placement::Refuse(Refusal::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "directory lookups in PostgreSQL are resolved before placement",
            )),
            Route::Refused(r) => Placement::Refuse(r),
        }
    }

    /// Holds a server of `shard`. `Wait` when the server the client holds still owes replies (client
    /// input pauses until it is done); a refusal when the client is inside a transaction (or pinned) on
    /// another shard.
    /// `begin`: a held BEGIN goes to a server taken for the statement (not for one that runs
    /// beside it, see [`Session::runs_beside_held_begin`]).
    pub(super) async fn hold(
        &mut self,
        shard: ShardId,
        topo: &Arc<Topology>,
        begin: bool,
    ) -> Result<Result<Step, Refusal>, SessionError> {
        if let Some(a) = &mut self.server {
            if a.shard == shard {
                if self.begin.is_none() {
                    return Ok(Ok(Step::Go));
                }
                // Held Parse/Describe brought this server in before the statement that chose it: the
                // held BEGIN goes first, once the replies before it are in (their ReadyForQuery
                // says 'T' for the BEGIN the client sent).
                if a.settle() {
                    return Ok(Ok(Step::Wait));
                }
                self.send_held_begin();
                return Ok(Ok(Step::Go));
            }
            if a.settle() {
                return Ok(Ok(Step::Wait));
            }
            self.maybe_release().await?;
        }
        if let Some(a) = &self.server {
            let from = topo.map.shard(a.shard).name.clone();
            let why = match &self.pinned {
                Some(state) => format!(
                    "the session is pinned to shard {from} by {}",
                    state.describe()
                ),
                None if a.tracker.batch() == Batch::Open => format!(
                    "the statements before it since the last Sync ran on shard {from} (a batch up to a Sync is one transaction)"
                ),
                None => format!("the transaction is on shard {from}"),
            };
            return Ok(Err(Refusal {
                code: sqlstate::FEATURE_NOT_SUPPORTED,
                message: format!(
                    "statement routes to shard {} but {why}; cross-shard transactions are not supported yet",
                    topo.map.shard(shard).name
                ),
                hint: Some(
                    "keep a transaction on one shard key, or run the statement outside it".into(),
                ),
            }));
        }
        self.attach_to(shard, topo.clone(), begin).await?;
        Ok(Ok(Step::Go))
    }

    /// Whether a statement runs outside the transaction while shardgate holds its BEGIN (which has
    /// not failed) and no server, so that the shard the statement runs on does not become the
    /// transaction's:
    /// - one that only draws from sequences (`nextval`, ORMs' id generators), which no transaction
    ///   undoes, on the shard they live on (not in a read-only transaction, which refuses it);
    /// - one that only makes settings of the transaction (`SELECT set_config(..., true)`, as drivers
    ///   set them from parameters, which SET LOCAL does not take), on the shard `Any` gives it, for
    ///   its result (its settings end with it there); its settings are then held with the BEGIN,
    ///   for the shard the transaction's first statement picks.
    pub(super) fn runs_beside_held_begin(
        &mut self,
        plan: &Plan,
        route: &Route,
        params: &Params,
    ) -> bool {
        let (Some(held), None) = (&mut self.begin, &self.server) else {
            return false;
        };
        if held.failed() {
            return false;
        }
        match (&plan.beside, route) {
            (Some(Beside::Sequences), _) => !held.read_only(&self.desired),
            (Some(Beside::Settings(calls)), Route::Any) => {
                match held_begin::config_sql(calls, params) {
                    Some(sql) => {
                        held.add(&sql);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// Makes sure no server is held before a fan-out: `Wait` while one still owes replies, a refusal
    /// inside a transaction.
    pub(super) async fn before_fanout(&mut self) -> Result<Result<Step, Refusal>, SessionError> {
        self.before_several_shards(false).await
    }

    /// Before a read on several shards: as before a fan-out, but a read that locks no rows may run
    /// outside a READ COMMITTED transaction whose BEGIN shardgate still holds. No statement of the
    /// transaction ran yet, and each one sees a snapshot of its own anyway; ORMs and psycopg open a
    /// transaction before every first statement.
    pub(super) async fn before_scatter(
        &mut self,
        merge: &Result<Merge, Refusal>,
    ) -> Result<Result<Step, Refusal>, SessionError> {
        let locks_rows = merge.as_ref().is_ok_and(|m| m.plan.locks_rows);
        let desired = &self.desired;
        let outside = !locks_rows
            && self
                .begin
                .as_ref()
                .is_some_and(|b| b.reads_outside(desired));
        self.before_several_shards(outside).await
    }

    /// `held_begin_ok`: the statement may run while shardgate holds the client's BEGIN.
    async fn before_several_shards(
        &mut self,
        held_begin_ok: bool,
    ) -> Result<Result<Step, Refusal>, SessionError> {
        if self.settle_first() {
            return Ok(Ok(Step::Wait));
        }
        self.maybe_release().await?;
        if self.server.is_some() || self.begin.is_some() && !held_begin_ok {
            return Ok(Err(Refusal {
                code: sqlstate::FEATURE_NOT_SUPPORTED,
                message: "statement touches several shards inside a transaction (or a pinned session, or a batch of statements before one Sync); cross-shard transactions are not supported yet".into(),
                hint: Some("run it outside the transaction, or Sync before it".into()),
            }));
        }
        Ok(Ok(Step::Go))
    }

    /// A statement on several shards runs with its own Parse (held until now) or none: whether the
    /// client's Parse of it was held (and is answered by the run). `None` when anything else was held:
    /// refused.
    pub(super) async fn own_batch(
        &mut self,
        stmt: &Statement,
    ) -> Result<Option<bool>, SessionError> {
        let Some(own) = self.only_own_parse(stmt) else {
            let r = Refusal {
                code: sqlstate::FEATURE_NOT_SUPPORTED,
                message: "a statement on several shards must come in its own Parse/Bind/Execute/Sync batch".into(),
                hint: Some("sync before it".into()),
            };
            self.refuse(r, true).await?;
            return Ok(None);
        };
        self.deferred.clear();
        Ok(Some(own))
    }

    /// Whether nothing waits for a server but the client's Parse of `stmt`: `Some(true)` when that
    /// Parse does, `Some(false)` when nothing does.
    pub(super) fn only_own_parse(&self, stmt: &Statement) -> Option<bool> {
        match self.deferred.as_slice() {
            [] => Some(false),
            [Deferred::Parse(s)] if s.id == stmt.id => Some(true),
            _ => None,
        }
    }

    /// Starts an extended-protocol statement on several shards: its Describe and Execute complete the
    /// parts, its Sync runs them. The client's own held Parse of the statement is answered by the run.
    pub(super) async fn start_fanout(
        &mut self,
        route: Route,
        stmt: &Arc<Statement>,
        bind_rest: &[u8],
        topo: Arc<Topology>,
    ) -> Result<(), SessionError> {
        let Some(client_parse) = self.own_batch(stmt).await? else {
            return Ok(());
        };
        let targets = fanout_targets(&route, &stmt.query, &topo);
        // Only the parts of a split INSERT take a subset of the parameters.
        let params = match targets.iter().any(|(_, _, split)| split.is_some()) {
            true => msg::bind_params(bind_rest)?,
            false => BindParams::default(),
        };
        let parts = targets
            .into_iter()
            .map(|(shard, sql, split)| {
                let (stmt, bind_rest) = match split {
                    None => (stmt.clone(), bind_rest.to_vec()),
                    Some(p) => {
                        let types = pick_param_types(&stmt.param_types, &p.params);
                        let mut rest = BytesMut::new();
                        msg::write_bind_rest(&mut rest, &params, &p.params);
                        (
                            self.proxy.statements.derived(stmt, sql, &types),
                            rest.to_vec(),
                        )
                    }
                };
                Part {
                    shard,
                    work: Work::execute(stmt, client_parse, bind_rest),
                }
            })
            .collect();
        self.fanout = Some(FanoutBatch::new(topo, parts, None, client_parse));
        Ok(())
    }

    /// Starts an extended-protocol read on several shards: every shard runs the merge plan's statement
    /// with the client's parameters; Describe says whether the client gets the RowDescription; Sync runs it.
    pub(super) async fn start_scatter(
        &mut self,
        shards: Vec<ShardId>,
        merge: Merge,
        stmt: &Arc<Statement>,
        bind_rest: &[u8],
        topo: Arc<Topology>,
    ) -> Result<(), SessionError> {
        let Some(client_parse) = self.own_batch(stmt).await? else {
            return Ok(());
        };
        let shard_stmt =
            self.proxy
                .statements
                .derived(stmt, &merge.plan.shard_sql, &stmt.param_types);
        let bind_rest = widen_result_formats(bind_rest, merge.plan.hidden)?;
        let parts = shards
            .into_iter()
            .map(|shard| Part {
                shard,
                work: Work::execute(shard_stmt.clone(), client_parse, bind_rest.clone()),
            })
            .collect();
        self.fanout = Some(FanoutBatch::new(topo, parts, Some(merge), client_parse));
        Ok(())
    }

    /// Runs a read on several shards, streaming the merged result to the client. `synced`: at the
    /// client's Sync (or a simple Query), ReadyForQuery ends it; else it ran at a Flush, and waits for
    /// the Sync (after an error, everything up to it is skipped, as a server would).
    pub(super) async fn scatter(
        &mut self,
        topo: &Topology,
        job: Scatter,
        synced: bool,
    ) -> Result<(), SessionError> {
        let timeout = self.proxy.config.checkout_timeout();
        let run = scatter::run(
            topo,
            timeout,
            &self.desired,
            job,
            &mut self.out,
            &mut self.client_w,
            &self.cancel,
        );
        let outcome = run.await;
        // The scatter wrote out what `out` held, shardgate's own replies among it.
        self.out_own = 0;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(ScatterError::Backend(e)) => return Err(e.into()),
            Err(ScatterError::Client(e)) => return Err(SessionError::ClientIo(e)),
        };
        // A read run beside a held BEGIN fails its transaction, as the error would on one server.
        if matches!(outcome, Outcome::Failed)
            && let Some(held) = &mut self.begin
        {
            held.fail();
        }
        match (synced, outcome) {
            (true, _) => self.reply(Synthetic::ReadyForQuery),
            (false, Outcome::Failed) => self.discard_until_sync = true,
            (false, Outcome::Done) => self.read_flushed = true,
        }
        Ok(())
    }

    /// Runs the statement on several shards the client's batch bound, at its Sync (`synced`) or, for
    /// a merged read, at a Flush.
    pub(super) async fn run_batch(
        &mut self,
        mut batch: FanoutBatch,
        synced: bool,
    ) -> Result<(), SessionError> {
        let parts = batch.settled_parts();
        match batch.merge {
            None => self.fan_out(&batch.topology, parts).await,
            Some(merge) => {
                let job = Scatter {
                    parts,
                    merge,
                    describe: batch.describe,
                    row_limit: u64::try_from(batch.max_rows).unwrap_or(0),
                };
                self.scatter(&batch.topology, job, synced).await
            }
        }
    }

    /// Resolves a directory key through its lookup table.
    pub(super) async fn look_up(
        &mut self,
        route: Route,
        topo: &Arc<Topology>,
    ) -> Result<Route, SessionError> {
        let Route::Lookup { table, key } = route else {
            return Ok(route);
        };
        Ok(self.proxy.directory.resolve(topo, table, &key).await)
    }

    /// Runs parts on several shards and writes the combined replies.
    pub(super) async fn fan_out(
        &mut self,
        topo: &Topology,
        parts: Vec<Part>,
    ) -> Result<(), SessionError> {
        let timeout = self.proxy.config.checkout_timeout();
        let cancel = &self.cancel;
        fanout::run(topo, timeout, &self.desired, parts, &mut self.out, cancel).await?;
        Ok(())
    }

    /// Answers a refused statement. Simple protocol inside a transaction: the server raises it, so its
    /// transaction aborts as PostgreSQL's would; extended protocol: the rest up to Sync is skipped.
    pub(super) async fn refuse(&mut self, r: Refusal, extended: bool) -> Result<(), SessionError> {
        self.unpin_unused();
        let mut e = ErrorFields::new(Severity::Error, r.code, r.message);
        e.hint = r.hint;
        // A BEGIN held until a statement chose its shard: the transaction fails here, as PostgreSQL's
        // would; it opens failed on the server it reaches, which answers the rest of it (25P02 until
        // it ends, and a COMMIT rolls back).
        if let Some(held) = &mut self.begin {
            held.fail();
        }
        if extended && !self.deferred.is_empty() {
            // Held Parse/Describe messages are answered first, by a server, in their order.
            self.attach(false).await?;
        }
        if extended {
            if !self.raise_on_server(&e, true) {
                self.reply(Synthetic::Error(e));
            }
            self.discard_until_sync = true;
        } else if !self.raise_on_server(&e, false) {
            self.reply(Synthetic::Error(e));
            self.reply(Synthetic::ReadyForQuery);
        }
        Ok(())
    }

    /// Inside a transaction the server must raise a refusal itself, so that its transaction aborts
    /// exactly as PostgreSQL would abort it. False when the client holds no server in a transaction.
    /// `extended`: inside an extended-protocol batch, raised by an unnamed statement (the error makes
    /// the server skip to the client's Sync); else by a simple Query.
    /// The server also raises it while earlier messages are unanswered, or a batch ran before the
    /// client's Sync: they may have begun a transaction (a BEGIN, held or the client's, or the extended
    /// protocol's implicit one) that the error must roll back; the last ReadyForQuery's status does
    /// not know of it yet.
    pub(super) fn raise_on_server(&mut self, e: &ErrorFields, extended: bool) -> bool {
        let Some(a) = self.server.as_mut().filter(|a| {
            a.conn.tx_status != b'I' || !a.tracker.idle() || a.tracker.batch() == Batch::Open
        }) else {
            return false;
        };
        let sql = raise::raise_sql(e);
        if extended {
            msg::write_parse(&mut a.to_server, "", &sql, &[0, 0]);
            // No parameter formats, no parameters, no result formats.
            msg::write_bind(&mut a.to_server, "", "", &[0; 6]);
            msg::write_execute(&mut a.to_server, "", 0);
            a.tracker.push(Pending::Raise);
        } else {
            msg::write_query(&mut a.to_server, &sql);
            a.tracker.push(Pending::Query);
            a.query_starts.push_back(std::time::Instant::now());
        }
        true
    }
}

/// The shards a fan-out route runs on, with the statement each runs.
fn fanout_targets<'r>(
    route: &'r Route,
    sql: &'r str,
    topo: &Topology,
) -> Vec<(ShardId, &'r str, Option<&'r SplitPart>)> {
    match route {
        Route::Split(parts) => parts
            .iter()
            .map(|p| (p.shard, p.sql.as_str(), Some(p)))
            .collect(),
        Route::All => topo.map.all_shards().map(|s| (s, sql, None)).collect(),
        Route::Multi(list) => list.iter().map(|&s| (s, sql, None)).collect(),
        _ => Vec::new(),
    }
}

/// The per-shard statements of a simple Query on several shards.
pub(super) fn query_parts(route: &Route, sql: &str, topo: &Topology) -> Vec<Part> {
    fanout_targets(route, sql, topo)
        .into_iter()
        .map(|(shard, sql, _)| Part {
            shard,
            work: Work::Query(sql.to_owned()),
        })
        .collect()
}

/// A Parse's parameter-type section for a subset of the parameters (`pick[j]` = original index).
fn pick_param_types(raw: &[u8], pick: &[usize]) -> Vec<u8> {
    let oid = |i: usize| raw.get(2 + 4 * i..6 + 4 * i).unwrap_or(&[0, 0, 0, 0]);
    let mut out = Vec::with_capacity(2 + 4 * pick.len());
    out.extend_from_slice(&(pick.len() as i16).to_be_bytes());
    for &i in pick {
        out.extend_from_slice(oid(i));
    }
    out
}

/// The merge plan of a read with its LIMIT, OFFSET and HAVING values read from the parameters, or
/// why it cannot merge.
/// `param_types`: the Parse's parameter-type section (empty for a simple Query).
pub(super) fn merge_of(plan: &Plan, params: &Params, param_types: &[u8]) -> Result<Merge, Refusal> {
    let merge = match &plan.merge {
        Some(Ok(m)) => m.clone(),
        Some(Err(r)) => return Err(r.clone()),
        None => {
            return Err(Refusal {
                code: sqlstate::FEATURE_NOT_SUPPORTED,
                message: "this statement cannot run on several shards".into(),
                hint: Some(
                    "add a condition on the shard key, or a /* shardgate: shard=NAME */ hint"
                        .into(),
                ),
            });
        }
    };
    let count = |c: Option<Count>| -> Result<Option<u64>, Refusal> {
        match c {
            None => Ok(None),
            Some(Count::Value(v)) => Ok(Some(v)),
            // NULL: no LIMIT, no OFFSET, as in PostgreSQL.
            Some(Count::Param(i)) if matches!(params.value(i), Ok(None)) => Ok(None),
            Some(Count::Param(i)) => match params.key(i, KeyType::Int8) {
                Ok(KeyValue::Int(v)) if v >= 0 => Ok(Some(v as u64)),
                _ => Err(Refusal::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "LIMIT/OFFSET parameter ${} is not a non-negative integer",
                        i + 1
                    ),
                )),
            },
        }
    };
    let limit = count(merge.limit)?;
    let offset = count(merge.offset)?.unwrap_or(0);
    let mut filter_params = FilterParams::default();
    for i in merge.having.iter().flat_map(|h| h.params()) {
        let value = params.value(i).map_err(|_| {
            Refusal::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("HAVING parameter ${} is missing", i + 1),
            )
        })?;
        let declared = declared_type(param_types, i);
        filter_params.0.push((
            i,
            value.map(|(format, raw)| (format, raw.to_vec(), declared)),
        ));
    }
    Ok(Merge {
        plan: merge,
        limit,
        offset,
        filter_params,
    })
}

/// The type OID a Parse declared for parameter `i` (its section: a count, then one OID each), unless 0
/// (left to the server to infer).
fn declared_type(param_types: &[u8], i: usize) -> Option<u32> {
    let at = 2 + 4 * i;
    let oid = u32::from_be_bytes(param_types.get(at..at + 4)?.try_into().ok()?);
    (oid != 0).then_some(oid)
}

/// A Bind's parameters and result formats for the shard statement, which has `hidden` sort columns
/// after the client's: one format code per column is widened with text codes for them.
fn widen_result_formats(bind_rest: &[u8], hidden: usize) -> Result<Vec<u8>, SessionError> {
    let p = msg::bind_params(bind_rest)?;
    let mut c = crate::protocol::frame::Cursor::new(p.tail, "Bind");
    let n = c.i16()?;
    if hidden == 0 || n <= 1 {
        return Ok(bind_rest.to_vec());
    }
    let mut out = BytesMut::from(&bind_rest[..bind_rest.len() - p.tail.len()]);
    let widened = i16::try_from(hidden)
        .ok()
        .and_then(|h| n.checked_add(h))
        .ok_or(crate::protocol::ProtocolError::Malformed { what: "Bind" })?;
    out.extend_from_slice(&widened.to_be_bytes());
    out.extend_from_slice(&p.tail[2..]);
    out.extend_from_slice(&vec![0u8; 2 * hidden]);
    Ok(out.to_vec())
}

/// Session state (settings, temporary tables, session locks, LISTEN...) stays on the server it was
/// made on, and the servers of a statement on several shards go back to the pools after it, in
/// session pooling too: such a statement would leave its state to other clients.
fn state_on_several_shards() -> Refusal {
    Refusal::unsupported(
        "a statement that changes session state (settings, temporary tables, session locks, LISTEN) runs on one shard, and this one would run on several",
        "send a SET (or set_config) as a statement of its own; route anything else that keeps state (CREATE TEMP TABLE, pg_advisory_lock, LISTEN) to one shard with /* shardgate: shard=NAME */",
    )
}
