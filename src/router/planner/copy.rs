//! COPY: of a reference table TO STDOUT on any shard, of an unlisted table on the default shard;
//! of a sharded table, into a reference table, and to or from a server file refused.

use sqlparser::ast::{CopySource, CopyTarget};

use crate::router::keyword::HINT;
use crate::router::plan::{Command, Plan, Refusal, Target};
use crate::router::walk::name_of;
use crate::sharding::{ShardMap, TableKind, Unlisted};

pub(super) fn copy(source: &CopySource, to: bool, target: &CopyTarget, map: &ShardMap) -> Plan {
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
pub(super) fn copy_words(words: &[String], map: &ShardMap) -> Option<Plan> {
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
