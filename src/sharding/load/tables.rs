//! The `tables:` list: unique names, a strategy or `colocate_with` (a table listed above), the key
//! column and its type.

use super::Check;
use super::raw::{RawMap, RawTable};
use super::strategy::sharded;
use crate::sharding::key::KeyType;
use crate::sharding::map::MapError;
use crate::sharding::table::{Sharded, TableKind, TableSpec, normalize};

pub(super) fn tables(check: &Check, raw: &RawMap) -> Result<Vec<TableSpec>, MapError> {
    let mut out: Vec<TableSpec> = Vec::with_capacity(raw.tables.len());
    for (i, t) in raw.tables.iter().enumerate() {
        let idx = i.to_string();
        let at = |field: &'static str| ["tables", idx.as_str(), field];
        let name = normalize(&t.name);
        if out.iter().any(|o| o.name == name) {
            return Err(check.err(&at("name"), format_args!("duplicate table {name:?}")));
        }
        let kind = match (t.strategy.as_deref(), &t.colocate_with) {
            (Some(_), Some(_)) => {
                return Err(check.err(
                    &at("colocate_with"),
                    "a co-located table takes its strategy from the table it is co-located with; remove `strategy`",
                ));
            }
            (None, Some(with)) => colocated(check, &out, t, with, &at("colocate_with"))?,
            (Some("reference"), None) => TableKind::Reference,
            (Some(s @ ("hash" | "range" | "directory")), None) => {
                TableKind::Sharded(sharded(check, t, s, &idx, &name)?)
            }
            (Some(other), None) => {
                return Err(check.err(
                    &at("strategy"),
                    format_args!(
                        "unknown strategy {other:?} (hash, range, directory or reference)"
                    ),
                ));
            }
            (None, None) => {
                return Err(check.err(
                    &at("name"),
                    "needs a `strategy` (hash, range, directory, reference) or `colocate_with`",
                ));
            }
        };
        out.push(TableSpec { name, kind });
    }
    Ok(out)
}

pub(super) fn key_column(check: &Check, t: &RawTable, idx: &str) -> Result<String, MapError> {
    match &t.key {
        Some(k) if !k.trim().is_empty() => Ok(k.trim().to_ascii_lowercase()),
        _ => Err(check.err(&["tables", idx, "name"], "a sharded table needs `key`")),
    }
}

pub(super) fn key_type(
    check: &Check,
    t: &RawTable,
    idx: &str,
) -> Result<Option<KeyType>, MapError> {
    match &t.key_type {
        None => Ok(None),
        Some(name) => KeyType::from_name(name).map(Some).ok_or_else(|| {
            check.err(
                &["tables", idx, "type"],
                format_args!("bad key type {name:?} (int2, int4, int8, text, varchar or uuid)"),
            )
        }),
    }
}

fn colocated(
    check: &Check,
    earlier: &[TableSpec],
    t: &RawTable,
    with: &str,
    at: &[&str],
) -> Result<TableKind, MapError> {
    let idx = at[1];
    let target = normalize(with);
    let Some(TableKind::Sharded(base)) = earlier.iter().find(|o| o.name == target).map(|o| &o.kind)
    else {
        return Err(check.err(
            at,
            format_args!("{with:?} is not a sharded table listed above this one"),
        ));
    };
    let key = key_column(check, t, idx)?;
    if let Some(ty) = key_type(check, t, idx)?
        && ty != base.key_type
    {
        return Err(check.err(
            &["tables", idx, "type"],
            format_args!(
                "key type {ty} differs from {with:?}'s {} (co-located keys share one domain)",
                base.key_type
            ),
        ));
    }
    Ok(TableKind::Sharded(Sharded {
        key,
        ..base.clone()
    }))
}

#[cfg(test)]
mod tests {
    use crate::sharding::load::tests::{SHARDS, check, with_tables};

    #[test]
    fn tables() {
        let users = "  - name: users\n    key: id\n    type: int8\n    strategy: hash\n";
        check(&with_tables(users), "ok v7 2 shards 1 tables");
        check(
            &with_tables(&format!("{users}{users}")),
            "m.yaml:19: tables[1].name: duplicate table \"users\"",
        );
        check(
            &with_tables(&users.replace("int8", "float")),
            "m.yaml:17: tables[0].type: bad key type \"float\"",
        );
        check(
            &with_tables(&users.replace("hash", "modulo")),
            "m.yaml:18: tables[0].strategy: unknown strategy",
        );
        check(
            &with_tables("  - name: users\n    strategy: hash\n"),
            "m.yaml:15: tables[0].name: a sharded table needs `key`",
        );
        let orders = "  - name: orders\n    key: user_id\n    colocate_with: users\n";
        check(
            &with_tables(&format!("{users}{orders}")),
            "ok v7 2 shards 2 tables",
        );
        check(
            &with_tables(&format!("{orders}{users}")),
            "m.yaml:17: tables[0].colocate_with: \"users\" is not a sharded table",
        );
        check(
            &with_tables(&format!(
                "{users}{}",
                orders.replace("colocate", "type: uuid\n    colocate")
            )),
            "tables[1].type: key type uuid differs",
        );
        check(
            &with_tables("  - name: countries\n    strategy: reference\n"),
            "ok v7 2 shards 1 tables",
        );
        check(
            &format!(
                "{}tables:\n{users}",
                SHARDS
                    .replace("buckets: 8\n", "")
                    .replace("    buckets: [0-3]\n", "")
                    .replace("    buckets: [\"4-6\", 7]\n", "")
            ),
            "tables: hash tables need `buckets: N`",
        );
    }
}
