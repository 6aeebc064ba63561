//! A `/* shardgate: ... */` hint's target (`router::hint` finds it): a named shard, or the shard of
//! a key value of the statement's sharded tables.

use sqlparser::ast::Statement;

use super::set::unknown_shard;
use crate::protocol::sqlstate;
use crate::router::hint::Hint;
use crate::router::lex::Lexed;
use crate::router::plan::{Command, KeySource, Plan, Refusal, Target};
use crate::router::walk::name_of;
use crate::sharding::{ShardMap, TableKind};

/// A hint wins over whatever the statement would route to.
pub(super) fn hinted(
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
                    if let Some(i) = map.table_index(&name) {
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
            let write = !(command == Command::Read || command.is_session_or_transaction());
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
