//! Client messages: each is forwarded (renaming prepared statements), answered by shardgate, or refused.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::held_begin::{self, HeldBegin};
use super::route::{Placement, merge_of, query_parts};
use super::{Attached, Deferred, FanoutBatch, Flow, OwnPortal, OwnRun, Session, Step};
use crate::config::SessionStatePolicy;
use crate::execute::fanout::{Part, Work};
use crate::execute::scatter::Scatter;
use crate::frontend::classify::{self, Reset, SessionState};
use crate::frontend::error::SessionError;
use crate::frontend::pending::{Pending, Synthetic};
use crate::protocol::frontend::{self as msg, Target};
use crate::protocol::{ProtocolError, frame, sqlstate};
use crate::proxy::Topology;
use crate::router::lex::Lexed;
use crate::router::{Command, Params, Refusal, Route, TxControl, changes_columns, resolve};

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
            match self.on_client_message(tag, &mut raw).await? {
                Flow::Continue => {}
                Flow::Terminate => return Ok(Flow::Terminate),
                Flow::Wait => {
                    // Back in front of what follows it; resumed when the held server is done.
                    raw.unsplit(std::mem::take(&mut self.in_buf));
                    self.in_buf = raw;
                    self.blocked = true;
                    return Ok(Flow::Continue);
                }
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_client_message(
        &mut self,
        tag: u8,
        raw: &mut BytesMut,
    ) -> Result<Flow, SessionError> {
        if self.copy.is_some() && tag != b'X' {
            return self.on_copy_message(tag, raw).await;
        }
        if tag != b'X'
            && let Some(a) = self.server.as_mut().filter(|a| a.copy_in)
        {
            on_server_copy_message(a, tag, raw);
            return Ok(Flow::Continue);
        }
        let body = &raw[frame::HEADER_LEN..];
        if self.read_flushed && !matches!(tag, b'H' | b'S' | b'X' | b'C') {
            self.read_flushed = false;
            self.refuse(after_flushed_read(tag), true).await?;
            return Ok(Flow::Continue);
        }
        if self.fanout.as_ref().is_some_and(|f| !f.takes(tag, body)) {
            // The statement on several shards has not run; the batch is refused at the message
            // after it, as a server's error there would end it (its Parse and Bind were answered),
            // and the rest up to the Sync is skipped.
            let batch = self.fanout.take().expect("checked above");
            if batch.client_parse {
                self.reply(Synthetic::ParseComplete);
            }
            self.reply(Synthetic::BindComplete);
            self.refuse(fanout_not_last(), true).await?;
            return Ok(Flow::Continue);
        }
        match tag {
            // PostgreSQL fails these (invalid message format) and skips to the next Sync, where a
            // server that took one would skip the Flush shardgate sends to settle it.
            b'S' | b'H' if !body.is_empty() => {
                let what = if tag == b'S' { "Sync" } else { "Flush" };
                return Err(ProtocolError::Malformed { what }.into());
            }
            b'Q' => {
                let sql = msg::query(body)?;
                let state = classify::session_state(sql);
                match self.session_state_policy(state) {
                    Ok(changes_settings) => {
                        return self.on_query(raw, changes_settings, state.is_some()).await;
                    }
                    Err(r) => {
                        self.refuse(r, false).await?;
                        return Ok(Flow::Continue);
                    }
                }
            }
            b'P' => self.on_parse(raw).await?,
            b'B' => return self.on_bind(raw).await,
            b'D' => match msg::target(body, "Describe")? {
                Target::Statement(name) if self.statements.get(name).is_some() => {
                    let stmt = self.statements.get(name).cloned().expect("checked above");
                    match &mut self.server {
                        Some(a) => {
                            a.ensure_prepared(&stmt);
                            msg::write_describe_statement(&mut a.to_server, &stmt.server_name);
                            a.tracker.push(Pending::Describe);
                        }
                        None => self.deferred.push(Deferred::Describe(stmt)),
                    }
                }
                Target::Portal(p) if self.is_own_portal(p) => self.reply(Synthetic::NoData),
                Target::Portal(_) if self.fanout.is_some() => {
                    self.fanout.as_mut().expect("checked above").describe = true;
                }
                _ => self.forward(raw, Pending::Describe).await?,
            },
            // Parsed only while shardgate answers a portal (rarely): Execute is on the hot path.
            b'E' if self.own_portal.is_some()
                && msg::execute(body).is_ok_and(|(p, _)| self.is_own_portal(p)) =>
            {
                let own = self.own_portal.take().expect("checked above");
                self.run_own_portal(own.runs).await?;
            }
            b'E' if self.fanout.is_some() => {
                let (_, max_rows) = msg::execute(body)?;
                let batch = self.fanout.as_mut().expect("checked above");
                batch.max_rows = max_rows;
                batch.executed = true;
            }
            b'E' => self.forward(raw, Pending::Execute).await?,
            b'C' => match msg::target(body, "Close")? {
                // Statements stay prepared on the servers for other clients; only the name goes.
                Target::Statement(name) => {
                    self.statements.remove(name);
                    self.reply(Synthetic::CloseComplete);
                }
                Target::Portal(_) if self.server.is_none() => self.reply(Synthetic::CloseComplete),
                Target::Portal(_) => self.forward(raw, Pending::Close).await?,
            },
            b'S' => {
                self.discard_until_sync = false;
                self.read_flushed = false;
                // A portal shardgate answers, bound but never executed, ends with the batch.
                self.own_portal = None;
                if let Some(batch) = self.fanout.take() {
                    self.run_batch(batch, true).await?;
                    return Ok(Flow::Continue);
                }
                if !self.deferred.is_empty() {
                    self.attach(false).await?;
                }
                match &mut self.server {
                    Some(a) => {
                        a.to_server.extend_from_slice(raw);
                        a.tracker.push(Pending::Sync);
                        a.query_starts.push_back(std::time::Instant::now());
                    }
                    None => self.reply(Synthetic::ReadyForQuery),
                }
            }
            b'H' if self.fanout.as_ref().is_some_and(FanoutBatch::runs_at_flush) => {
                // A read has nothing to undo: its rows go out now. A write waits for the Sync, which
                // ends each shard's transaction with the client's.
                let batch = self.fanout.take().expect("checked above");
                self.run_batch(batch, false).await?;
            }
            b'H' | b'd' | b'c' | b'f' => {
                if tag == b'H' && !self.deferred.is_empty() {
                    self.attach(false).await?;
                }
                // Flush and COPY data have no reply of their own; without a server they are moot.
                if let Some(a) = &mut self.server {
                    a.to_server.extend_from_slice(raw);
                }
            }
            b'F' => {
                // A function call runs inside the client's transaction, on whichever shard: a held
                // BEGIN goes first, once a server held Parse/Describe brought in has answered them.
                if self.begin.is_some() && self.settle_first() {
                    return Ok(Flow::Wait);
                }
                self.attach(true).await?;
                self.send_held_begin();
                self.forward(raw, Pending::Query).await?;
                // A function may change settings: read them back.
                let a = self.server.as_mut().expect("attached above");
                a.settings_changed = true;
            }
            b'X' => return Ok(Flow::Terminate),
            other => return Err(ProtocolError::UnexpectedMessage(other).into()),
        }
        Ok(Flow::Continue)
    }

    /// Sends the message as it is, holding a server first.
    async fn forward(&mut self, raw: &[u8], pending: Pending) -> Result<(), SessionError> {
        self.attach(false).await?;
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
        // Unnamed statements get a global name too: the Bind that follows may go to another server.
        // A server prepares it under the client's settings of the moment: while a change of them is
        // not read back yet, its context cannot say which they are.
        let unsettled = self.server.as_ref().is_some_and(|a| a.settings_changed);
        let stmt = self.proxy.statements.for_client(
            p.query,
            p.param_types,
            &self.statement_context,
            unsettled,
        );
        if let Err(r) = self.session_state_policy(stmt.session_state) {
            return self.refuse(r, true).await;
        }
        self.statements.insert(p.name, stmt.clone());
        let Some(a) = self.server.as_mut() else {
            if self.deferred.is_empty() && self.proxy.statements.is_valid(stmt.id) {
                self.reply(Synthetic::ParseComplete);
            } else {
                // Which shard it is parsed on waits for the Bind (or the Sync).
                self.deferred.push(Deferred::Parse(stmt));
            }
            return Ok(());
        };
        if !a.parse_for_client(&stmt) {
            self.reply(Synthetic::ParseComplete);
        }
        Ok(())
    }

    /// A simple Query: route it, then send it to its shard, fan it out, or refuse it. `changes_settings`:
    /// it changes settings (SET, RESET, set_config), which are read back once it is done; `has_state`:
    /// it leaves session state of any kind on the server it runs on.
    async fn on_query(
        &mut self,
        raw: &[u8],
        changes_settings: bool,
        has_state: bool,
    ) -> Result<Flow, SessionError> {
        let sql = msg::query(&raw[frame::HEADER_LEN..])?;
        let pinned_discard = match classify::reset(sql) {
            Ok(None) => false,
            Ok(Some(Reset::DiscardAll)) if self.pinned.is_some() => true,
            Ok(Some(reset)) => {
                if self.settle_first() {
                    return Ok(Flow::Wait);
                }
                self.on_reset(reset).await?;
                return Ok(Flow::Continue);
            }
            Err(()) => {
                let r = Refusal::unsupported(
                    "DISCARD ALL and DEALLOCATE must come as a query of their own",
                    "send them separately",
                );
                self.refuse(r, false).await?;
                return Ok(Flow::Continue);
            }
        };
        let topo = self.topology();
        let (plan, literals) = self.proxy.router.plan_simple(sql, &topo.map);
        if let Command::SetShard(name) = &plan.command {
            if self.settle_first() {
                return Ok(Flow::Wait);
            }
            if let Err(r) = self.set_shard(name.clone(), &topo) {
                // Inside a transaction, as any error there, it aborts it.
                self.refuse(r, false).await?;
            }
            return Ok(Flow::Continue);
        }
        if plan.command == Command::ResetAll {
            self.session_shard = None;
        }
        if self.server.is_none() && self.hold_begin(&plan.command, sql) {
            return Ok(Flow::Continue);
        }
        let values: Vec<Option<&[u8]>> = literals.iter().map(|l| Some(l.as_bytes())).collect();
        let params = Params::new(&[], &values);
        let mut route = resolve(&plan, &topo.map, &params, self.session_shard(&topo));
        let mut plan = plan;
        if matches!(route, Route::Scatter(_)) && !literals.is_empty() {
            // The shards run the statement as sent, so its merge plan comes from the text as sent.
            plan = self.proxy.router.plan(sql, &topo.map);
            route = resolve(&plan, &topo.map, &Params::none(), self.session_shard(&topo));
        }
        let route = self.look_up(route, &topo).await?;
        let beside = self.runs_beside_held_begin(&plan, &route, &params);
        match self.place(route.clone(), &topo, has_state) {
            Placement::Shard(s) => match self.hold(s, &topo, !beside).await? {
                Ok(Step::Go) => {
                    self.forward(raw, Pending::Query).await?;
                    let a = self.server.as_mut().expect("attached by forward");
                    if plan.command == Command::Ddl && changes_columns(sql) {
                        a.conn.prepared.ddl_sent();
                    }
                    a.settings_changed |= changes_settings;
                    if pinned_discard {
                        self.discarded_on_server();
                    }
                }
                Ok(Step::Wait) => return Ok(Flow::Wait),
                Err(r) => self.refuse(r, false).await?,
            },
            Placement::Fanout => match self.before_fanout().await? {
                Ok(Step::Go) => {
                    let parts = query_parts(&route, sql, &topo);
                    self.fan_out(&topo, parts).await?;
                }
                Ok(Step::Wait) => return Ok(Flow::Wait),
                Err(r) => self.refuse(r, false).await?,
            },
            Placement::Scatter(shards) => {
                let merge = merge_of(&plan, &Params::none(), &[]);
                match (self.before_scatter(&merge).await?, merge) {
                    (Ok(Step::Wait), _) => return Ok(Flow::Wait),
                    (Err(r), _) | (_, Err(r)) => self.refuse(r, false).await?,
                    (Ok(Step::Go), Ok(merge)) => {
                        let work = self.simple_read(&merge.plan.shard_sql);
                        let parts = shards
                            .into_iter()
                            .map(|shard| Part {
                                shard,
                                work: work.clone(),
                            })
                            .collect();
                        let job = Scatter {
                            parts,
                            merge,
                            describe: true,
                            row_limit: 0,
                        };
                        self.scatter(&topo, job, true).await?;
                    }
                }
            }
            Placement::CopyIn(plan) => match self.before_fanout().await? {
                Ok(Step::Go) => self.start_copy(&plan, sql, &topo, false).await?,
                Ok(Step::Wait) => return Ok(Flow::Wait),
                Err(r) => self.refuse(r, false).await?,
            },
            Placement::Refuse(r) => self.refuse(r, false).await?,
        }
        Ok(Flow::Continue)
    }

    async fn on_bind(&mut self, raw: &mut BytesMut) -> Result<Flow, SessionError> {
        let b = msg::bind(&raw[frame::HEADER_LEN..])?;
        if self.is_own_portal(b.portal) {
            self.own_portal = None;
        }
        let Some(mut stmt) = self.statements.get(b.statement).cloned() else {
            // Unknown to shardgate. A pinned client's server may know it (from SQL PREPARE, whose
            // names are the protocol's too); any other server's unnamed statement, say, is not the
            // client's to run.
            if self.keeps_server() {
                self.forward(raw, Pending::Bind).await?;
            } else {
                self.refuse(no_such_statement(b.statement), true).await?;
            }
            return Ok(Flow::Continue);
        };
        if !stmt.is_private() && stmt.context != self.statement_context {
            // The client's settings changed since its Parse: servers that prepare the statement now
            // would read it otherwise than other clients sharing it do. Its own copy from here on.
            stmt = self.proxy.statements.private_copy(&stmt);
            self.statements.insert(b.statement, stmt.clone());
        }
        // Its Parse applied the policy; a refusal since may have dropped the pin.
        let changes_settings = match self.session_state_policy(stmt.session_state) {
            Ok(changes) => changes,
            Err(r) => {
                self.refuse(r, true).await?;
                return Ok(Flow::Continue);
            }
        };
        let topo = self.topology();
        let plan = stmt.plan(&self.proxy.router, &topo.map);
        if plan.command == Command::ResetAll {
            self.session_shard = None;
        }
        if let Command::Transaction(tx) = plan.command
            && held_begin::lone(&stmt.query).is_some_and(|lone| self.answers_tx(tx, &lone))
            && let Some(client_parse) = self.only_own_parse(&stmt)
        {
            self.deferred.clear();
            if client_parse {
                self.reply(Synthetic::ParseComplete);
            }
            self.reply(Synthetic::BindComplete);
            self.own_portal = Some(OwnPortal {
                name: b.portal.to_owned(),
                runs: OwnRun::Tx(tx, stmt.query.clone()),
            });
            return Ok(Flow::Continue);
        }
        let params = if plan.reads_params() {
            msg::bind_params(b.rest)?
        } else {
            msg::BindParams::default()
        };
        let router_params = Params::new(&params.formats, &params.values);
        let route = match &plan.command {
            Command::SetShard(_) => Route::Refused(Refusal::unsupported(
                "SET shardgate.shard is answered by shardgate over the simple query protocol only",
                "send it as a simple query (psql, batch_execute, simple_query)",
            )),
            _ => resolve(&plan, &topo.map, &router_params, self.session_shard(&topo)),
        };
        let route = self.look_up(route, &topo).await?;
        let beside = self.runs_beside_held_begin(&plan, &route, &router_params);
        match self.place(route.clone(), &topo, stmt.session_state.is_some()) {
            Placement::Shard(s) => match self.hold(s, &topo, !beside).await? {
                Ok(Step::Go) => {}
                Ok(Step::Wait) => return Ok(Flow::Wait),
                Err(r) => {
                    self.refuse(r, true).await?;
                    return Ok(Flow::Continue);
                }
            },
            Placement::Fanout => {
                match self.before_fanout().await? {
                    Ok(Step::Go) => self.start_fanout(route, &stmt, b.rest, topo).await?,
                    Ok(Step::Wait) => return Ok(Flow::Wait),
                    Err(r) => self.refuse(r, true).await?,
                }
                return Ok(Flow::Continue);
            }
            Placement::Scatter(shards) => {
                let merge = merge_of(&plan, &router_params, &stmt.param_types);
                match (self.before_scatter(&merge).await?, merge) {
                    (Ok(Step::Wait), _) => return Ok(Flow::Wait),
                    (Err(r), _) | (_, Err(r)) => self.refuse(r, true).await?,
                    (Ok(Step::Go), Ok(merge)) => {
                        self.start_scatter(shards, merge, &stmt, b.rest, topo)
                            .await?
                    }
                }
                return Ok(Flow::Continue);
            }
            Placement::CopyIn(copy) => {
                // Started at the Execute; its portal is answered here, as a server would, after the
                // client's own held Parse of it.
                match self.before_fanout().await? {
                    Ok(Step::Go) => {
                        let Some(client_parse) = self.own_batch(&stmt).await? else {
                            return Ok(Flow::Continue);
                        };
                        if client_parse {
                            self.reply(Synthetic::ParseComplete);
                        }
                        self.own_portal = Some(OwnPortal {
                            name: b.portal.to_owned(),
                            runs: OwnRun::Copy(copy, stmt.query.clone()),
                        });
                        self.reply(Synthetic::BindComplete);
                    }
                    Ok(Step::Wait) => return Ok(Flow::Wait),
                    Err(r) => self.refuse(r, true).await?,
                }
                return Ok(Flow::Continue);
            }
            Placement::Refuse(r) => {
                self.refuse(r, true).await?;
                return Ok(Flow::Continue);
            }
        }
        let portal = b.portal.to_owned();
        let rest_at = raw.len() - b.rest.len();
        let a = self.server.as_mut().expect("held above");
        a.ensure_prepared(&stmt);
        if plan.command == Command::Ddl && changes_columns(&stmt.query) {
            a.conn.prepared.ddl_sent();
        }
        msg::write_bind(
            &mut a.to_server,
            &portal,
            &stmt.server_name,
            &raw[rest_at..],
        );
        a.tracker.push(Pending::Bind);
        a.settings_changed |= changes_settings;
        raw.advance(raw.len());
        Ok(Flow::Continue)
    }

    /// Without a server, a BEGIN is held (and answered) until the transaction's first statement picks
    /// its shard, and so are the transaction's settings made before it; a COMMIT or ROLLBACK of a
    /// transaction that never ran a statement ends it here.
    fn hold_begin(&mut self, command: &Command, sql: &str) -> bool {
        let Command::Transaction(tx) = *command else {
            return false;
        };
        // Not while Parse messages wait for a server: PostgreSQL answers them first (and skips the
        // BEGIN should one fail).
        let parses_wait =
            !matches!(tx, TxControl::Commit | TxControl::Rollback) && !self.deferred.is_empty();
        // Only a lone statement: with others in the same Query, the others decide the shard.
        let Some(lone) = held_begin::lone(sql) else {
            return false;
        };
        if parses_wait || !self.answers_tx(tx, &lone) {
            return false;
        }
        let tag = self.run_held_tx(tx, &lone);
        self.reply(Synthetic::CommandComplete(tag));
        self.reply(Synthetic::ReadyForQuery);
        true
    }

    /// Whether shardgate answers this transaction statement (`stmt`, a query's one statement)
    /// itself: a BEGIN when the client holds no server and no BEGIN; a setting of the transaction, a
    /// savepoint command, a COMMIT or a ROLLBACK of the BEGIN it holds (a setting or savepoint only
    /// while the transaction has not failed: PostgreSQL refuses a setting then, and ROLLBACK TO
    /// would end the failure).
    fn answers_tx(&self, tx: TxControl, stmt: &Lexed) -> bool {
        self.server.is_none()
            && match tx {
                TxControl::Begin => self.begin.is_none() && held_begin::modes(stmt.text).is_some(),
                // AND CHAIN starts the next transaction with this one's characteristics, which
                // the server works out: the held BEGIN goes to one with it.
                TxControl::Commit | TxControl::Rollback => {
                    self.begin.is_some() && !held_begin::chains(&stmt.words)
                }
                TxControl::Setting => self.holds_live_begin(),
                TxControl::Savepoint => {
                    self.holds_live_begin() && held_begin::savepoint_tag(&stmt.words).is_some()
                }
                TxControl::Prepared => false,
            }
    }

    /// A held BEGIN whose transaction has not failed: settings and savepoints go with it.
    fn holds_live_begin(&self) -> bool {
        self.begin.as_ref().is_some_and(|b| !b.failed())
    }

    /// Holds the BEGIN (`stmt`), adds a setting or savepoint command to it, or ends it; the command
    /// tag.
    fn run_held_tx(&mut self, tx: TxControl, stmt: &Lexed) -> &'static str {
        match tx {
            TxControl::Begin => {
                self.begin = Some(HeldBegin::new(stmt.text).expect("answers_tx"));
                "BEGIN"
            }
            TxControl::Setting => {
                self.begin.as_mut().expect("answers_tx").add(stmt.text);
                "SET"
            }
            TxControl::Savepoint => {
                self.begin.as_mut().expect("answers_tx").add(stmt.text);
                held_begin::savepoint_tag(&stmt.words).expect("answers_tx")
            }
            _ => match self.begin.take() {
                Some(held) if tx == TxControl::Commit && !held.failed() => "COMMIT",
                _ => "ROLLBACK",
            },
        }
    }

    fn is_own_portal(&self, portal: &str) -> bool {
        self.own_portal.as_ref().is_some_and(|o| o.name == portal)
    }

    /// Executes a portal shardgate answers itself.
    async fn run_own_portal(&mut self, runs: OwnRun) -> Result<(), SessionError> {
        match runs {
            OwnRun::Copy(copy, sql) => {
                let topo = self.topology();
                self.start_copy(&copy, &sql, &topo, true).await
            }
            OwnRun::Tx(tx, sql) => {
                let lone = held_begin::lone(&sql).expect("answered at its Bind");
                let tag = self.run_held_tx(tx, &lone);
                self.reply(Synthetic::CommandComplete(tag));
                Ok(())
            }
        }
    }

    /// Answers `SET shardgate.shard`: later statements go to that shard (hints still win). An
    /// unknown shard is refused.
    fn set_shard(&mut self, name: Option<String>, topo: &Topology) -> Result<(), Refusal> {
        if let Some(n) = &name
            && topo.map.shard_named(n).is_none()
        {
            let names: Vec<&str> = topo.map.shards.iter().map(|s| s.name.as_str()).collect();
            return Err(Refusal::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("unknown shard {n:?} (shards: {})", names.join(", ")),
            ));
        }
        self.session_shard = name;
        let tag = if self.session_shard.is_some() {
            "SET"
        } else {
            "RESET"
        };
        self.reply(Synthetic::CommandComplete(tag));
        self.reply(Synthetic::ReadyForQuery);
        Ok(())
    }

    /// A pinned client's DISCARD ALL went to its server, which drops every prepared statement and
    /// setting: so does shardgate's record of it, and of the client; then the client's startup
    /// parameters are set again, as PostgreSQL's RESET ALL goes back to them.
    fn discarded_on_server(&mut self) {
        self.forget_session();
        let a = self.server.as_mut().expect("the pinned server");
        a.conn.prepared.clear();
        a.conn.applied.clear();
        if let Some(sql) = a.conn.align(&self.desired) {
            let mut query = BytesMut::new();
            msg::write_query(&mut query, &sql);
            a.inject(&query);
        }
    }

    /// What DISCARD ALL resets of the client: its statement names, its settings (back to its startup
    /// parameters), and `SET shardgate.shard`.
    fn forget_session(&mut self) {
        self.statements.clear();
        self.set_desired(self.startup.clone());
        self.session_shard = None;
    }

    /// DISCARD ALL and DEALLOCATE, answered here: the client's statement names go (the servers keep
    /// their statements, which serve every client), and DISCARD ALL also takes the client back to its
    /// startup parameters and the map's routing. As in PostgreSQL, DISCARD ALL is refused inside a
    /// transaction, and DEALLOCATE of an unknown name fails.
    async fn on_reset(&mut self, reset: Reset) -> Result<(), SessionError> {
        let in_transaction = self.begin.is_some()
            || self
                .server
                .as_ref()
                .is_some_and(|a| a.conn.tx_status != b'I');
        let tag = match reset {
            Reset::DiscardAll if in_transaction => {
                let r = Refusal::new(
                    sqlstate::ACTIVE_SQL_TRANSACTION,
                    "DISCARD ALL cannot run inside a transaction block",
                );
                return self.refuse(r, false).await;
            }
            Reset::DiscardAll => {
                self.forget_session();
                "DISCARD ALL"
            }
            Reset::DeallocateAll => {
                self.statements.clear();
                "DEALLOCATE ALL"
            }
            Reset::Deallocate(name) => {
                if self.statements.remove(&name).is_none() {
                    return self.refuse(no_such_statement(&name), false).await;
                }
                "DEALLOCATE"
            }
        };
        self.reply(Synthetic::CommandComplete(tag));
        self.reply(Synthetic::ReadyForQuery);
        Ok(())
    }

    /// Before a statement shardgate answers itself: whether the held server must first answer the
    /// client's earlier messages (asked with a Flush). One of them may fail, and then PostgreSQL
    /// would skip this statement with the rest of the batch up to its Sync.
    pub(super) fn settle_first(&mut self) -> bool {
        self.server.as_mut().is_some_and(Attached::settle)
    }

    /// A pin no server took yet came from statements that did not run (refused, or skipped with the
    /// rest of their batch): the client is not pinned after all. (A statement parsed before the
    /// refusal pins again at its Bind.)
    pub(super) fn unpin_unused(&mut self) {
        if self.server.is_none() {
            self.pinned = None;
        }
    }

    /// Applies the session-state policy to a statement: whether it changes settings (which are
    /// carried to the client's next servers), pinning the client to its server for other state if the
    /// policy says so, else why it is refused.
    fn session_state_policy(&mut self, state: Option<SessionState>) -> Result<bool, Refusal> {
        if self.keeps_server() {
            return Ok(false);
        }
        let Some(state) = state else {
            return Ok(false);
        };
        match self.proxy.config.session_state {
            SessionStatePolicy::Pin if state.carried() => Ok(true),
            SessionStatePolicy::Pin => {
                tracing::debug!(reason = state.describe(), "client pinned to its server");
                self.pinned = Some(state);
                Ok(false)
            }
            SessionStatePolicy::Refuse => Err(refusal(state)),
        }
    }
}

fn no_such_statement(name: &str) -> Refusal {
    Refusal::new(
        sqlstate::INVALID_SQL_STATEMENT_NAME,
        format!("prepared statement \"{name}\" does not exist"),
    )
}

/// A client message while the held server runs a COPY FROM STDIN, as PostgreSQL takes it: copy data
/// goes on; Flush and Sync mean nothing there (the server ignores them, so no reply is owed); any other
/// message fails the COPY ("unexpected message type") and is itself dropped.
fn on_server_copy_message(a: &mut Attached, tag: u8, raw: &[u8]) {
    match tag {
        b'd' | b'H' | b'S' => a.to_server.extend_from_slice(raw),
        b'c' | b'f' => {
            a.to_server.extend_from_slice(raw);
            a.copy_in = false;
        }
        _ => {
            let reason = super::copy::unexpected_in_copy(tag);
            msg::write_copy_fail(&mut a.to_server, &reason);
            a.copy_in = false;
        }
    }
}

fn refusal(state: SessionState) -> Refusal {
    Refusal::unsupported(
        format!(
            "{} is not supported under transaction pooling",
            state.describe()
        ),
        "run it inside a transaction with SET LOCAL / xact locks, or use pool_mode: session",
    )
}

/// Why a batch with a statement on several shards is refused when more than its Describe, Execute
/// and Sync follows it: the statements of one batch are one transaction, which cannot span shards.
fn fanout_not_last() -> Refusal {
    Refusal::unsupported(
        "a statement on several shards must be the last one before Sync: the statements up to a Sync run as one transaction, and cross-shard transactions are not supported yet",
        "send Sync after its Execute",
    )
}

/// Why a message after a merged read that answered a Flush is refused: the read ran to its end (or
/// its row limit) at once, so its portal is gone, and another statement would join its batch.
fn after_flushed_read(tag: u8) -> Refusal {
    let message = match tag {
        b'E' => {
            "the portal of a read merged from several shards cannot be executed again: it ran to its row limit at the Flush"
        }
        _ => {
            "a read merged from several shards answered a Flush; only Flush and Sync may follow it before the Sync"
        }
    };
    Refusal::unsupported(
        message,
        "send Sync after the read; fetch without a row limit, or page with LIMIT/OFFSET",
    )
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    /// What each shard runs for a simple Query's merged read: a statement prepared on the server (so
    /// that the server parses and plans it once) when that cannot change what it means, else the text
    /// as a simple Query. Not for a text with a string literal: a prepared statement reads it once,
    /// at its Parse ('today' would stay that day). Not with a `$` (a placeholder would be taken for a
    /// parameter; a dollar quote is a string). Not for a text seen the first time: a stream of
    /// distinct texts would take every server's statement slots.
    fn simple_read(&self, shard_sql: &str) -> Work {
        if shard_sql.contains(['\'', '$']) {
            return Work::Query(shard_sql.to_owned());
        }
        // Parse's parameter-type section: no types.
        let statements = &self.proxy.statements;
        match statements.intern_known(shard_sql, &[0, 0], &self.statement_context) {
            (stmt, true) => Work::Prepared(stmt),
            (_, false) => Work::Query(shard_sql.to_owned()),
        }
    }
}
