//! SQL text -> Plan: hints first, then each statement through the parser (or the keyword classifier
//! when it cannot read it), combined into one target for a multi-statement query string.
//!
//! - `insert`: INSERT, one row or several grouped by shard. `set`: `SET`/`RESET shardgate.shard`.
//! - `copy`: COPY. `combine`: several statements in one query string. `hinted`: a hint's target.

mod combine;
mod copy;
mod hinted;
mod insert;
mod set;

use std::sync::Arc;

use sqlparser::ast::{CopySource, CopyTarget, Reset, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::decide::{Shape, decide};
use super::facts::Rel;
use super::hint;
use super::home::{HomeUse, home, home_use};
use super::keyword;
use super::lex::{self, Lexed};
use super::local_config::local_config;
use super::merge;
use super::plan::{Beside, Command, Plan, Refusal, Target, TxControl};
use super::walk::{Walker, name_of};
use crate::protocol::sqlstate::STATEMENT_TOO_COMPLEX;
use crate::sharding::{ShardMap, TableKind, Unlisted};
use combine::combine;
use copy::{copy, copy_words};
use hinted::hinted;
use insert::plan_insert;
use set::{is_shardgate, set, set_shard};

/// Operator chains up to this long are planned on the caller's stack (a tokio worker's 2 MiB holds
/// several hundred levels in a debug build).
const ON_STACK_OPERATORS: usize = 200;
/// Longer chains are planned, and their syntax tree dropped (recursively, by sqlparser's types), on a
/// stack of this much per operator; at most `MAX_OPERATORS` of them. PostgreSQL, too, refuses chains
/// deeper than its stack with 54001.
const STACK_PER_OPERATOR: usize = 8 << 10;
const MAX_OPERATORS: usize = 50_000;

/// Plans a query string (one or more statements) against a map.
pub fn plan(sql: &str, map: &ShardMap) -> Plan {
    let lexed = lex::statements(sql);
    let depth = lexed.iter().map(|l| l.chain).max().unwrap_or(0);
    if depth > MAX_OPERATORS {
        return Plan::refuse(
            Command::Utility,
            Refusal::new(
                STATEMENT_TOO_COMPLEX,
                format!(
                    "statement too complex: a chain of {depth} operators (at most {MAX_OPERATORS})"
                ),
            ),
        );
    }
    if depth > ON_STACK_OPERATORS {
        return stacker::grow((1 << 20) + depth * STACK_PER_OPERATOR, || {
            let plan = plan_lexed(sql, &lexed, map);
            // A plan that keeps part of the syntax tree (a split INSERT's rows, a HAVING to apply)
            // would use and drop it later on an ordinary stack: refused here, where it is dropped.
            let having = plan
                .merge
                .as_ref()
                .is_some_and(|m| m.as_ref().is_ok_and(|m| m.having.is_some()));
            if matches!(plan.target, Target::Insert { .. }) || having {
                return Plan::refuse(
                    Command::Utility,
                    Refusal::new(
                        STATEMENT_TOO_COMPLEX,
                        format!(
                            "statement too complex: a multi-row INSERT or a HAVING with a chain of {depth} operators (at most {ON_STACK_OPERATORS} there)"
                        ),
                    ),
                );
            }
            plan
        });
    }
    plan_lexed(sql, &lexed, map)
}

fn plan_lexed(sql: &str, lexed: &[Lexed<'_>], map: &ShardMap) -> Plan {
    let parsed = parse_all(sql, lexed);
    let plans: Vec<Plan> = lexed
        .iter()
        .zip(&parsed)
        .map(|(l, s)| plan_one(s.as_ref(), l, map))
        .collect();
    let mut combined = combine(plans, map);
    if let ([Some(stmt @ Statement::Query(q))], Target::Any) = (parsed.as_slice(), &combined.target)
    {
        combined.beside = local_config(q).map(Beside::Settings);
        if let Some(used) = home_use(stmt) {
            let shard = home(map);
            combined.target = Target::Shard(shard);
            combined.reason = format!(
                "sequences and advisory locks live on one shard, the same for every client (the default shard, else the first): {}",
                map.shard(shard).name
            );
            combined.beside = (used == HomeUse::Sequences).then_some(Beside::Sequences);
        }
    }
    match hint::find(sql) {
        None => combined,
        Some(h) => hinted(h, combined, lexed, &parsed, map),
    }
}

/// Each lexed statement's syntax tree, when the parser reads it.
fn parse_all(sql: &str, lexed: &[Lexed]) -> Vec<Option<Statement>> {
    let dialect = PostgreSqlDialect {};
    if let Ok(stmts) = Parser::parse_sql(&dialect, sql)
        && stmts.len() == lexed.len()
    {
        return stmts.into_iter().map(Some).collect();
    }
    lexed
        .iter()
        .map(|l| match Parser::parse_sql(&dialect, l.text) {
            Ok(mut s) if s.len() == 1 => s.pop(),
            _ => None,
        })
        .collect()
}

fn plan_one(stmt: Option<&Statement>, lexed: &Lexed, map: &ShardMap) -> Plan {
    let Some(stmt) = stmt else {
        return copy_words(&lexed.words, map).unwrap_or_else(|| keyword::classify(&lexed.words));
    };
    let routed = |command: Command, target: Result<Target, Refusal>, why: &str| match target {
        Ok(t) => {
            let reason = reason(&t, why);
            Plan::new(command, t, reason)
        }
        Err(r) => Plan::refuse(command, r),
    };
    let tx = |c: TxControl| {
        Plan::new(
            Command::Transaction(c),
            Target::Any,
            "transaction control stays on the session's server",
        )
    };
    let ddl = || Plan::new(Command::Ddl, Target::All, "DDL runs on every shard");
    let session = || {
        Plan::new(
            Command::Session,
            Target::Any,
            "session command stays on the session's server",
        )
    };
    match stmt {
        Statement::Query(q) => {
            if let sqlparser::ast::SetExpr::Select(s) = q.body.as_ref()
                && s.into.is_some()
            {
                return Plan::refuse(
                    Command::Ddl,
                    Refusal::unsupported(
                        "SELECT INTO creates a table: not supported",
                        "CREATE TABLE, then INSERT ... SELECT",
                    ),
                );
            }
            let mut w = Walker::new(map);
            w.query(q, &[], true);
            let facts = w.finish(stmt);
            let write = facts.bindings.iter().any(|b| b.write);
            let (command, shape) = if write {
                (Command::Write, Shape::Write)
            } else {
                (Command::Read, Shape::Read)
            };
            let mut plan = routed(command, decide(&facts, map, shape), "query");
            let may_scatter = matches!(
                plan.target,
                Target::Scatter | Target::Keys { write: false, .. }
            );
            if plan.command == Command::Read && may_scatter {
                let keys = shard_keys(&facts, map);
                plan.merge = Some(merge::merge_plan(q, &keys).map(Arc::new));
            }
            plan
        }
        Statement::Insert(_) => plan_insert(stmt, map),
        Statement::Update(_) | Statement::Delete(_) => {
            let mut w = Walker::new(map);
            w.dml(stmt, true);
            let facts = w.finish(stmt);
            routed(Command::Write, decide(&facts, map, Shape::Write), "write")
        }
        Statement::Explain { statement, .. } => {
            let inner = plan_one(Some(statement), lexed, map);
            if let Target::Insert { .. } = inner.target {
                return Plan::refuse(
                    inner.command,
                    Refusal::unsupported(
                        "EXPLAIN of a multi-row INSERT that may span shards",
                        "EXPLAIN one row's INSERT",
                    ),
                );
            }
            // The shards' plans are no rows to merge (the merge would run the SELECT's plan on the
            // plan lines): one shard's plan at a time.
            let mut inner = inner;
            if inner.merge.is_some() {
                inner.merge = Some(Err(Refusal::unsupported(
                    "EXPLAIN of a read over several shards",
                    "add /* shardgate: shard=NAME */ to see one shard's plan",
                )));
            }
            inner
        }
        Statement::Set(s) => set(s, map),
        Statement::Reset(r) => match &r.reset {
            Reset::ConfigurationParameter(n) if is_shardgate(&name_of(n)) => {
                set_shard(&name_of(n), None, map)
            }
            Reset::ALL => Plan::new(
                Command::ResetAll,
                Target::Any,
                "RESET ALL stays on the session's server, and resets shardgate.shard",
            ),
            _ => session(),
        },
        Statement::StartTransaction { .. } => tx(TxControl::Begin),
        Statement::Commit { .. } => tx(TxControl::Commit),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => tx(TxControl::Savepoint),
        Statement::Rollback { .. } => tx(TxControl::Rollback),
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
            tx(TxControl::Savepoint)
        }
        Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => session(),
        Statement::Declare { stmts } => declare(stmts, lexed, map),
        Statement::CreateTable(c) if c.query.is_some() => Plan::refuse(
            Command::Ddl,
            Refusal::unsupported(
                "CREATE TABLE ... AS is not supported",
                "CREATE TABLE, then INSERT ... SELECT",
            ),
        ),
        Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView(_)
        | Statement::CreateSequence { .. }
        | Statement::CreateSchema { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateType { .. }
        | Statement::CreateExtension(_)
        | Statement::CreateDomain(_)
        | Statement::CreateTrigger(_)
        | Statement::CreateProcedure { .. }
        | Statement::AlterTable(_)
        | Statement::AlterIndex { .. }
        | Statement::AlterView { .. }
        | Statement::AlterType(_)
        | Statement::AlterSchema(_)
        | Statement::AlterFunction(_)
        | Statement::Drop { .. }
        | Statement::DropFunction(_)
        | Statement::DropExtension(_)
        | Statement::DropDomain(_)
        | Statement::DropTrigger(_)
        | Statement::DropProcedure { .. }
        | Statement::Comment { .. }
        | Statement::Grant(_)
        | Statement::Revoke(_) => ddl(),
        Statement::Truncate(t) => match map.unlisted {
            // The rows of unlisted tables are on the default shard only (pgbench -i truncates its
            // tables inside a transaction, which could not span shards).
            Unlisted::Shard(s)
                if t.table_names
                    .iter()
                    .all(|n| map.table(&name_of(&n.name)).is_none()) =>
            {
                Plan::new(
                    Command::Ddl,
                    Target::Shard(s),
                    "TRUNCATE of unlisted tables: the default shard, which holds their rows",
                )
            }
            _ => ddl(),
        },
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => match source {
            // COPY (query) TO STDOUT reads like its query.
            CopySource::Query(q) if *to && matches!(target, CopyTarget::Stdout) => {
                let inner = plan_one(Some(&Statement::Query(q.clone())), lexed, map);
                Plan::new(
                    Command::Read,
                    inner.target,
                    format!("COPY (query): {}", inner.reason),
                )
            }
            _ => copy(source, *to, target, options, legacy_options, map),
        },
        Statement::Prepare { .. } | Statement::Execute { .. } => Plan::refuse(
            Command::Session,
            Refusal::unsupported(
                "SQL-level PREPARE and EXECUTE are not supported",
                "use protocol-level prepared statements (your driver's prepare)",
            ),
        ),
        _ => keyword::classify(&lexed.words),
    }
}

fn reason(t: &Target, what: &str) -> String {
    match t {
        Target::Shard(_) => format!("{what}: every table it names lives on this shard"),
        Target::Any => format!("{what}: no sharded table (reference tables or none): any shard"),
        Target::All => format!("{what}: writes a reference table: every shard"),
        Target::EveryShard => {
            format!("{what}: no shard key, multi_shard_writes is on: every shard")
        }
        Target::Keys { .. } => format!("{what}: by shard key"),
        Target::Insert { .. } => format!("{what}: rows grouped by shard key"),
        Target::Scatter => format!("{what}: no shard key: every shard, results merged"),
        Target::CopyIn(_) => format!("{what}: each row to the shard of its key"),
        Target::Refuse(r) => format!("refused: {}", r.message),
    }
}

fn declare(stmts: &[sqlparser::ast::Declare], lexed: &Lexed, map: &ShardMap) -> Plan {
    let [d] = stmts else {
        return keyword::classify(&lexed.words);
    };
    let Some(q) = &d.for_query else {
        return keyword::classify(&lexed.words);
    };
    let inner = plan_one(Some(&Statement::Query(q.clone())), lexed, map);
    match inner.target {
        Target::Scatter => Plan::refuse(
            Command::Session,
            Refusal::unsupported(
                "a cursor over every shard is not supported",
                "add a shard key condition to the cursor's query",
            ),
        ),
        t => Plan::new(Command::Session, t, "cursor: routed like its query"),
    }
}

/// The shard key columns of the statement's top-level sharded tables, as (alias, column): rows that
/// agree on one of them live on one shard, so DISTINCT over it needs no merge.
fn shard_keys(facts: &super::facts::Facts, map: &ShardMap) -> Vec<merge::ShardKey> {
    facts
        .bindings
        .iter()
        .filter(|b| b.top)
        .filter_map(|b| match (b.rel,) {
            (Rel::Sharded(t),) => match &map.tables.get(t)?.kind {
                TableKind::Sharded(s) => Some(merge::ShardKey {
                    alias: b.alias.clone(),
                    column: s.key.clone(),
                    nullable: b.nullable,
                }),
                TableKind::Reference => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    fn on_small_stack(sql: String) -> Plan {
        let map = ShardMap::parse(
            "version: 1\nbuckets: 16\ndefault: s0\nshards:\n  - {name: s0, host: h, port: 1, database: d, buckets: [0-7]}\n  - {name: s1, host: h, port: 1, database: d, buckets: [8-15]}\ntables:\n  - {name: users, key: id, type: int8, strategy: hash}\n",
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || plan(&sql, &map))
            .unwrap()
            .join()
            .expect("planned without overflowing a 2 MiB stack")
    }

    #[test]
    fn long_operator_chains_are_planned_or_refused_never_overflow() {
        for n in [150, 2_000, 20_000] {
            let chain = on_small_stack(format!("SELECT 1 FROM t WHERE {}1 = 1", "1+".repeat(n)));
            assert!(!matches!(chain.target, Target::Refuse(_)), "{n}: {chain:?}");
            let ors = (0..n)
                .map(|i| format!("a = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let ors = on_small_stack(format!("SELECT 1 FROM t WHERE {ors}"));
            assert!(!matches!(ors.target, Target::Refuse(_)), "{n}: OR chain");
        }
        let too_complex = |sql: String| {
            let p = on_small_stack(sql);
            assert!(
                matches!(&p.target, Target::Refuse(r) if r.code == STATEMENT_TOO_COMPLEX),
                "{:?}",
                p.target
            );
        };
        let planned = |sql: String| {
            let p = on_small_stack(sql);
            assert!(!matches!(p.target, Target::Refuse(_)), "{:?}", p.target);
        };
        too_complex(format!("SELECT {}1", "1*".repeat(MAX_OPERATORS + 1)));
        // A long CASE (Django's bulk_update) and numbers with exponents are no chain.
        let whens = (0..60_000)
            .map(|i| format!("WHEN id = {i} THEN {i}.5e-05"))
            .collect::<Vec<_>>()
            .join(" ");
        planned(format!("SELECT CASE {whens} END FROM t"));
        // A split INSERT keeps its rows' syntax trees in the plan: a deep one is refused.
        too_complex(format!(
            "INSERT INTO users (id, n) VALUES (1, {}1), (2, 0)",
            "1+".repeat(300)
        ));
        // Signs are no operators: a long VALUES list of negative numbers is flat.
        let values = (0..60_000)
            .map(|i| format!("(-{i})"))
            .collect::<Vec<_>>()
            .join(", ");
        planned(format!("INSERT INTO t VALUES {values}"));
    }
}
