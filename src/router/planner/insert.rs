//! INSERT -> Plan: a single row is routed like any write; several rows become `Target::Insert`,
//! grouped by the shard of their key at execution. Reading the rows is `router::insert`'s business.

use sqlparser::ast::Statement;

use super::reason;
use crate::router::decide::{Shape, decide};
use crate::router::facts::Rel;
use crate::router::insert::{self, Source};
use crate::router::keyword::HINT;
use crate::router::plan::{Command, InsertTemplate, Plan, Refusal, Target};
use crate::router::walk::Walker;
use crate::sharding::ShardMap;

pub(super) fn plan_insert(stmt: &Statement, map: &ShardMap) -> Plan {
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
