//! SQL text -> Plan: hints first, then each statement through the parser (or the keyword classifier
//! when it cannot read it), combined into one target for a multi-statement query string.

use std::sync::Arc;

use sqlparser::ast::{CopySource, CopyTarget, Expr, Reset, Set, Statement, Value};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::decide::{Shape, decide};
use super::facts::Rel;
use super::hint::{self, Hint};
use super::insert::{self, Source};
use super::keyword::{self, HINT};
use super::lex::{self, Lexed};
use super::merge;
use super::plan::{Command, InsertTemplate, KeySource, Plan, Refusal, Target, TxControl};
use super::walk::{Walker, name_of};
use crate::protocol::sqlstate;
use crate::sharding::{ShardMap, TableKind, Unlisted};

/// Plans a query string (one or more statements) against a map.
pub fn plan(sql: &str, map: &ShardMap) -> Plan {
    let lexed = lex::statements(sql);
    let parsed = parse_all(sql, &lexed);
    let plans: Vec<Plan> = lexed
        .iter()
        .zip(&parsed)
        .map(|(l, s)| plan_one(s.as_ref(), l, map))
        .collect();
    let combined = combine(plans, map);
    match hint::find(sql) {
        None => combined,
        Some(h) => hinted(h, combined, &lexed, &parsed, map),
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
            inner
        }
        Statement::Set(s) => set(s, map),
        Statement::Reset(r) => match &r.reset {
            Reset::ConfigurationParameter(n) if is_shardgate(&name_of(n)) => {
                set_shard(&name_of(n), None, map)
            }
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
        | Statement::Revoke(_)
        | Statement::Truncate(_) => ddl(),
        Statement::Copy {
            source, to, target, ..
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
            _ => copy(source, *to, target, map),
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

fn plan_insert(stmt: &Statement, map: &ShardMap) -> Plan {
    let mut w = Walker::new(map);
    let walked = insert::walk(&mut w, stmt);
    let mut rows = None;
    let mut shape = Shape::Write;
    match walked {
        Some((target, Source::Rows(r))) if r.len() == 1 => w.facts.restrict(target, r),
        Some((target, Source::Rows(r))) => rows = Some((target, r)),
        Some((_, Source::Select)) => shape = Shape::InsertSelect,
        _ => {}
    }
    let facts = w.finish(stmt);
    let Some((target, rows)) = rows else {
        return match decide(&facts, map, shape) {
            Ok(t) => {
                let reason = reason(&t, "INSERT");
                Plan::new(Command::Write, t, reason)
            }
            Err(r) => Plan::refuse(Command::Write, r),
        };
    };
    if let Some(r) = facts.refusal {
        return Plan::refuse(Command::Write, r);
    }
    let others = facts
        .bindings
        .iter()
        .enumerate()
        .find(|(i, b)| *i != target && matches!(b.rel, Rel::Sharded(_) | Rel::Unlisted));
    if let Some((_, other)) = others {
        return Plan::refuse(
            Command::Write,
            Refusal::unsupported(
                format!(
                    "a multi-row INSERT that also reads {} cannot be split across shards",
                    other.name
                ),
                "insert one row per statement",
            ),
        );
    }
    let Rel::Sharded(table) = facts.bindings[target].rel else {
        return Plan::refuse(
            Command::Write,
            Refusal::unsupported("no sharded target", HINT),
        );
    };
    let name = facts.bindings[target].name.clone();
    Plan::new(
        Command::Write,
        Target::Insert {
            table,
            rows,
            template: InsertTemplate {
                statement: Box::new(stmt.clone()),
            },
        },
        format!("multi-row INSERT into {name}: rows grouped by the shard of their key"),
    )
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
        Target::Refuse(r) => format!("refused: {}", r.message),
    }
}

fn is_shardgate(name: &str) -> bool {
    name.starts_with("shardgate.")
}

fn set(s: &Set, map: &ShardMap) -> Plan {
    let Set::SingleAssignment {
        scope,
        variable,
        values,
        ..
    } = s
    else {
        return Plan::new(
            Command::Session,
            Target::Any,
            "session command stays on the session's server",
        );
    };
    let name = name_of(variable);
    if !is_shardgate(&name) {
        return Plan::new(
            Command::Session,
            Target::Any,
            "session command stays on the session's server",
        );
    }
    if matches!(scope, Some(sqlparser::ast::ContextModifier::Local)) {
        return Plan::refuse(
            Command::Session,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: "SET LOCAL shardgate.shard is not supported".into(),
                hint: Some(
                    "use SET shardgate.shard = 'NAME' and RESET it after the transaction".into(),
                ),
            },
        );
    }
    let value = match values.as_slice() {
        [Expr::Value(v)] => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        [Expr::Identifier(i)]
            if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
        {
            return set_shard(&name, None, map);
        }
        [Expr::Identifier(i)] => Some(i.value.clone()),
        _ => None,
    };
    match value {
        Some(v) => set_shard(&name, Some(v), map),
        None => Plan::refuse(
            Command::Session,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: "SET shardgate.shard takes a shard name".into(),
                hint: Some(format!("shards: {}", shard_names(map))),
            },
        ),
    }
}

fn set_shard(name: &str, value: Option<String>, map: &ShardMap) -> Plan {
    if name != "shardgate.shard" {
        return Plan::refuse(
            Command::Session,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: format!("unknown setting {name}"),
                hint: Some("shardgate.shard is the only shardgate setting".into()),
            },
        );
    }
    if let Some(v) = &value
        && map.shard_named(v).is_none()
    {
        // A mistyped shard name is an error even under an earlier SET shardgate.shard (which would
        // otherwise send the statement to that shard, where PostgreSQL would accept it silently).
        let mut plan = Plan::refuse(Command::Session, unknown_shard(v, map));
        plan.hinted = true;
        return plan;
    }
    let reason = match &value {
        Some(v) => format!("the session's later statements go to shard {v}"),
        None => "the session's statements are routed by the map again".to_owned(),
    };
    Plan::new(Command::SetShard(value), Target::Any, reason)
}

pub(crate) fn shard_names(map: &ShardMap) -> String {
    map.shards
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_shard(name: &str, map: &ShardMap) -> Refusal {
    Refusal {
        code: sqlstate::INVALID_PARAMETER_VALUE,
        message: format!("unknown shard {name:?}"),
        hint: Some(format!("shards: {}", shard_names(map))),
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

fn copy(source: &CopySource, to: bool, target: &CopyTarget, map: &ShardMap) -> Plan {
    let command = if to { Command::Read } else { Command::Write };
    let CopySource::Table { table_name, .. } = source else {
        return Plan::refuse(
            command,
            Refusal::unsupported("COPY (query) is not supported", HINT),
        );
    };
    if !matches!(target, CopyTarget::Stdin | CopyTarget::Stdout) {
        return Plan::refuse(
            command,
            Refusal::unsupported(
                "COPY to or from a server file or program is not supported",
                "use COPY ... FROM STDIN / TO STDOUT",
            ),
        );
    }
    copy_table(&name_of(table_name), to, map)
}

/// A COPY the parser cannot read (options it does not know, like pgbench's `WITH (FREEZE ON)`): the
/// table and direction from its words. `None` when they do not say.
fn copy_words(words: &[String], map: &ShardMap) -> Option<Plan> {
    let has = |w: &str| words.iter().any(|x| x == w);
    if words.first().map(String::as_str) != Some("copy") {
        return None;
    }
    let table = words
        .get(1)
        .filter(|t| t.chars().all(|c| c.is_alphanumeric() || "_.".contains(c)))?;
    let to = has("to") && has("stdout");
    let from = has("from") && has("stdin");
    if to == from {
        return None;
    }
    Some(copy_table(table, to, map))
}

fn copy_table(name: &str, to: bool, map: &ShardMap) -> Plan {
    let command = if to { Command::Read } else { Command::Write };
    match map.table(name).map(|t| &t.kind) {
        Some(TableKind::Sharded(_)) => Plan::refuse(
            command,
            Refusal::unsupported(
                format!("COPY of sharded table {name} is not supported yet"),
                "use multi-row INSERT (split per shard), or COPY per shard with /* shardgate: shard=NAME */",
            ),
        ),
        Some(TableKind::Reference) if to => Plan::new(
            command,
            Target::Any,
            "COPY TO of a reference table: any shard",
        ),
        Some(TableKind::Reference) => Plan::refuse(
            command,
            Refusal::unsupported(
                format!("COPY into reference table {name} is not supported"),
                "use INSERT (written to every shard)",
            ),
        ),
        None => match map.unlisted {
            Unlisted::Shard(s) => Plan::new(
                command,
                Target::Shard(s),
                format!("COPY of unlisted {name}: the default shard"),
            ),
            Unlisted::Refuse => Plan::refuse(
                command,
                Refusal::unsupported(
                    format!("table {name} is not in the shard map"),
                    "add it to shardmap.yaml (tables:) or set `default:` to a shard for unlisted tables",
                ),
            ),
        },
    }
}

/// The shard key columns of the statement's top-level sharded tables, as (alias, column): rows that
/// agree on one of them live on one shard, so DISTINCT over it needs no merge.
fn shard_keys(facts: &super::facts::Facts, map: &ShardMap) -> Vec<(String, String)> {
    facts
        .bindings
        .iter()
        .filter(|b| b.top)
        .filter_map(|b| match (b.rel,) {
            (Rel::Sharded(t),) => match &map.tables.get(t)?.kind {
                TableKind::Sharded(s) => Some((b.alias.clone(), s.key.clone())),
                TableKind::Reference => None,
            },
            _ => None,
        })
        .collect()
}

/// Several statements in one query string go together only when they agree on one target.
fn combine(mut plans: Vec<Plan>, map: &ShardMap) -> Plan {
    if plans.len() <= 1 {
        return plans
            .pop()
            .unwrap_or_else(|| Plan::new(Command::Read, Target::Any, "empty query"));
    }
    if let Some(p) = plans.iter().find(|p| matches!(p.target, Target::Refuse(_))) {
        return p.clone();
    }
    let separately = |what: &str| {
        Plan::refuse(
            Command::Write,
            Refusal::unsupported(
                format!("a query string with several statements {what}"),
                "send them separately",
            ),
        )
    };
    if plans
        .iter()
        .any(|p| matches!(p.command, Command::SetShard(_)))
    {
        return separately("including SET shardgate.shard");
    }
    if plans
        .iter()
        .any(|p| matches!(p.target, Target::Insert { .. }))
    {
        return separately("including a multi-row INSERT");
    }
    let mut command: Option<Command> = None;
    let mut target: Option<Target> = None;
    for p in &plans {
        if !matches!(p.command, Command::Transaction(_) | Command::Session) {
            command = match (command, &p.command) {
                (Some(Command::Write), _) => Some(Command::Write),
                (_, c) => Some(c.clone()),
            };
        }
        if matches!(p.command, Command::Transaction(_)) || p.target == Target::Any {
            continue;
        }
        let t = literal(&p.target, map);
        target = match target {
            None => Some(t),
            Some(prev) if prev == t => Some(prev),
            Some(_) => return separately("that go to different shards"),
        };
    }
    let command = command.unwrap_or_else(|| plans[0].command.clone());
    let target = target.unwrap_or(Target::Any);
    let reason = reason(&target, "several statements");
    Plan::new(command, target, reason)
}

/// Keys that are literals on one shard, as that shard (so statements on one shard compare equal).
fn literal(t: &Target, map: &ShardMap) -> Target {
    if let Target::Keys { table, keys, .. } = t
        && let TableKind::Sharded(s) = &map.tables[*table].kind
    {
        let mut shard = None;
        for k in keys {
            let KeySource::Value(v) = k else {
                return t.clone();
            };
            let crate::sharding::Placement::Shard(p) = map.place(s, v) else {
                return t.clone();
            };
            if shard.is_some_and(|x| x != p) {
                return t.clone();
            }
            shard = Some(p);
        }
        if let Some(s) = shard {
            return Target::Shard(s);
        }
    }
    t.clone()
}

/// A hint wins over whatever the statement would route to.
fn hinted(
    h: Hint,
    plan: Plan,
    lexed: &[Lexed],
    parsed: &[Option<Statement>],
    map: &ShardMap,
) -> Plan {
    let command = match plan.command {
        Command::SetShard(_) => return plan,
        // What the statement would do is unknown when the classifier refused it: treat it as a write.
        c => c,
    };
    let mut out = match h {
        Hint::Bad(text) => Plan::refuse(
            command,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: format!("unknown shardgate hint {text:?}"),
                hint: Some("use /* shardgate: shard=NAME */ or /* shardgate: key=VALUE */".into()),
            },
        ),
        Hint::Shard(name) => match map.shard_named(&name) {
            Some(s) => Plan::new(command, Target::Shard(s), format!("hint: shard={name}")),
            None => Plan::refuse(command, unknown_shard(&name, map)),
        },
        Hint::Key(value) => key_hint(&value, command, lexed, parsed, map),
    };
    out.hinted = true;
    out
}

fn key_hint(
    value: &str,
    command: Command,
    lexed: &[Lexed],
    parsed: &[Option<Statement>],
    map: &ShardMap,
) -> Plan {
    let mut tables: Vec<usize> = Vec::new();
    for (l, p) in lexed.iter().zip(parsed) {
        match p {
            Some(stmt) => {
                let _ = sqlparser::ast::visit_relations(stmt, |r| {
                    let name = name_of(r);
                    if let Some(i) = map
                        .tables
                        .iter()
                        .position(|t| t.name == crate::sharding::table::normalize(&name))
                    {
                        tables.push(i);
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
            }
            None => {
                // The parser cannot read it: any word that names a sharded table counts.
                for w in &l.words {
                    if let Some(i) = map.tables.iter().position(|t| t.name == *w) {
                        tables.push(i);
                    }
                }
            }
        }
    }
    let groups: Vec<(usize, &crate::sharding::Sharded)> = tables
        .iter()
        .filter_map(|&i| match &map.tables[i].kind {
            TableKind::Sharded(s) => Some((i, s)),
            TableKind::Reference => None,
        })
        .collect();
    let Some(&(table, first)) = groups.first() else {
        return Plan::refuse(
            command,
            Refusal::unsupported(
                "a key hint needs a statement on a sharded table",
                "use /* shardgate: shard=NAME */",
            ),
        );
    };
    if groups.iter().any(|(_, s)| s.group != first.group) {
        return Plan::refuse(
            command,
            Refusal::unsupported(
                "a key hint on a statement over tables of several co-location groups is ambiguous",
                "use /* shardgate: shard=NAME */",
            ),
        );
    }
    match first.key_type.parse_text(value) {
        Ok(k) => {
            let write = !matches!(
                command,
                Command::Read | Command::Session | Command::Transaction(_)
            );
            Plan::new(
                command,
                Target::Keys {
                    table,
                    keys: vec![KeySource::Value(k)],
                    write,
                },
                format!("hint: key={value}"),
            )
        }
        Err(e) => Plan::refuse(
            command,
            Refusal::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("key hint for {}.{}: {e}", map.tables[table].name, first.key),
            ),
        ),
    }
}
