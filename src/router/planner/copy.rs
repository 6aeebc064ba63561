//! COPY: FROM STDIN into a sharded table split row by row (text, CSV or binary); of a reference table
//! TO STDOUT on any shard, of an unlisted table on the default shard; of a sharded table TO STDOUT,
//! into a reference table, and to or from a server file refused.

use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident,
};

use crate::router::keyword::HINT;
use crate::router::plan::{Command, CopyFormat, CopyIn, Plan, Refusal, Target};
use crate::router::walk::{ident, name_of};
use crate::sharding::{ShardMap, TableKind, Unlisted};

pub(super) fn copy(
    source: &CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
    map: &ShardMap,
) -> Plan {
    let command = if to { Command::Read } else { Command::Write };
    let CopySource::Table {
        table_name,
        columns,
    } = source
    else {
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
    let name = name_of(table_name);
    let sharded = map
        .table_index(&name)
        .filter(|&i| matches!(map.tables[i].kind, TableKind::Sharded(_)));
    match sharded {
        Some(table) if !to => match copy_format(options, legacy) {
            Ok(format) => {
                let columns: Vec<String> = columns.iter().map(ident).collect();
                let TableKind::Sharded(t) = &map.tables[table].kind else {
                    unreachable!("filtered above")
                };
                if !columns.is_empty() && !columns.contains(&t.key) {
                    return Plan::refuse(
                        Command::Write,
                        Refusal::unsupported(
                            format!(
                                "a COPY into sharded table {name} must include its shard key column {}",
                                t.key
                            ),
                            "list the key column among the COPY's columns",
                        ),
                    );
                }
                Plan::new(
                    Command::Write,
                    Target::CopyIn(CopyIn {
                        table,
                        columns,
                        format,
                    }),
                    format!(
                        "COPY FROM STDIN into sharded {name}: each row to the shard of its key"
                    ),
                )
            }
            Err(r) => Plan::refuse(Command::Write, r),
        },
        _ => copy_table(&name, to, map),
    }
}

/// The format a COPY's options describe, with PostgreSQL's defaults.
fn copy_format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat, Refusal> {
    let (mut kind, mut delimiter, mut quote, mut escape) = ("text".to_owned(), None, None, None);
    let (mut null, mut header) = (None, false);
    for o in options {
        match o {
            CopyOption::Format(Ident { value, .. }) => kind = value.to_ascii_lowercase(),
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Null(n) => null = Some(n.clone().into_bytes()),
            CopyOption::Header(h) => header = *h,
            _ => {}
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => kind = "binary".into(),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(n) => null = Some(n.clone().into_bytes()),
            CopyLegacyOption::Csv(csv) => {
                kind = "csv".into();
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                        CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let byte = |c: Option<char>, default: u8| -> Result<u8, Refusal> {
        match c {
            None => Ok(default),
            Some(c) if c.is_ascii() => Ok(c as u8),
            Some(c) => Err(Refusal::unsupported(
                format!("COPY into a sharded table with the non-ASCII delimiter or quote {c:?}"),
                "use an ASCII delimiter and quote",
            )),
        }
    };
    match kind.as_str() {
        "text" => Ok(CopyFormat::Text {
            delimiter: byte(delimiter, b'\t')?,
            null: null.unwrap_or_else(|| b"\\N".to_vec()),
            header,
        }),
        "csv" => {
            let quote = byte(quote, b'"')?;
            Ok(CopyFormat::Csv {
                delimiter: byte(delimiter, b',')?,
                quote,
                escape: byte(escape, quote)?,
                null: null.unwrap_or_default(),
                header,
            })
        }
        "binary" => Ok(CopyFormat::Binary),
        other => Err(Refusal::unsupported(
            format!("COPY format {other} is not known"),
            "use text, csv or binary",
        )),
    }
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
