//! A sharded table's strategy: hash, ranges in key order that do not overlap, or a directory of
//! entries, a lookup query and a default shard.

use std::collections::HashMap;
use std::time::Duration;

use super::Check;
use super::raw::{RawTable, Scalar};
use super::tables::{key_column, key_type};
use crate::sharding::key::{KeyType, KeyValue};
use crate::sharding::map::MapError;
use crate::sharding::table::{Directory, KeyRange, Lookup, Sharded, Strategy};

pub(super) fn sharded(
    check: &Check,
    t: &RawTable,
    strategy: &str,
    idx: &str,
    name: &str,
) -> Result<Sharded, MapError> {
    let key = key_column(check, t, idx)?;
    let Some(key_type) = key_type(check, t, idx)? else {
        return Err(check.err(&["tables", idx, "name"], "a sharded table needs `type`"));
    };
    let strategy = match strategy {
        "hash" => Strategy::Hash,
        "range" => Strategy::Range(ranges(check, t, idx, key_type)?),
        _ => Strategy::Directory(directory(check, t, idx, key_type)?),
    };
    Ok(Sharded {
        key,
        key_type,
        strategy,
        group: name.to_owned(),
    })
}

fn ranges(check: &Check, t: &RawTable, idx: &str, ty: KeyType) -> Result<Vec<KeyRange>, MapError> {
    if t.ranges.is_empty() {
        return Err(check.err(&["tables", idx, "strategy"], "a range table needs `ranges`"));
    }
    let mut out: Vec<KeyRange> = Vec::with_capacity(t.ranges.len());
    for (j, r) in t.ranges.iter().enumerate() {
        let jdx = j.to_string();
        let at = |field: &'static str| ["tables", idx, "ranges", jdx.as_str(), field];
        let bound = |v: &Option<Scalar>, field: &'static str| {
            v.as_ref()
                .map(|v| {
                    ty.parse_text(&v.text())
                        .map_err(|e| check.err(&at(field), e))
                })
                .transpose()
        };
        let range = KeyRange {
            from: bound(&r.from, "from")?,
            to: bound(&r.to, "to")?,
            shard: check.shard(&at("shard"), &r.shard)?,
        };
        if let (Some(f), Some(to)) = (&range.from, &range.to)
            && f >= to
        {
            return Err(check.err(
                &at("to"),
                format_args!("empty range: {f} is not below {to}"),
            ));
        }
        if let Some(prev) = out.last() {
            // Ranges are listed in key order; each must start at or after the previous one's end.
            let ordered = match (&prev.to, &range.from) {
                (Some(end), Some(start)) => start >= end,
                _ => false,
            };
            if !ordered {
                return Err(check.err(
                    &at("from"),
                    format_args!(
                        "overlaps ranges[{}] (list ranges in key order, [from, to))",
                        j - 1
                    ),
                ));
            }
        }
        out.push(range);
    }
    Ok(out)
}

fn directory(check: &Check, t: &RawTable, idx: &str, ty: KeyType) -> Result<Directory, MapError> {
    let mut entries = HashMap::with_capacity(t.entries.len());
    for (k, shard) in &t.entries {
        let at = ["tables", idx, "entries", k.as_str()];
        let key: KeyValue = ty.parse_text(k).map_err(|e| check.err(&at, e))?;
        entries.insert(key, check.shard(&at, shard)?);
    }
    let lookup = match &t.lookup {
        None => None,
        Some(l) => Some(Lookup {
            shard: check.shard(&["tables", idx, "lookup", "shard"], &l.shard)?,
            query: l.query.clone(),
            ttl: Duration::from_millis(l.ttl_ms),
        }),
    };
    let default = match &t.default {
        None => None,
        Some(s) => Some(check.shard(&["tables", idx, "default"], s)?),
    };
    if entries.is_empty() && lookup.is_none() && default.is_none() {
        return Err(check.err(
            &["tables", idx, "strategy"],
            "a directory table needs `entries`, a `lookup` or a `default`",
        ));
    }
    Ok(Directory {
        entries,
        lookup,
        default,
    })
}

#[cfg(test)]
mod tests {
    use crate::sharding::load::tests::{SHARDS, check, with_tables};

    #[test]
    fn ranges_and_directories() {
        let events = "  - name: events
    key: day
    type: int4
    strategy: range
    ranges:
      - {from: 0, to: 100, shard: a}
      - from: 100
        shard: b
";
        check(&with_tables(events), "ok v7 2 shards 1 tables");
        check(
            &with_tables(&events.replace("from: 100", "from: 50")),
            "m.yaml:21: tables[0].ranges[1].from: overlaps ranges[0]",
        );
        check(
            &with_tables(&events.replace("shard: b", "shard: c")),
            "m.yaml:22: tables[0].ranges[1].shard: unknown shard \"c\"",
        );
        check(
            &with_tables(&events.replace("to: 100", "to: 0")),
            "m.yaml:20: tables[0].ranges[0].to: empty range",
        );
        check(
            &with_tables(&events.replace("to: 100", "to: x")),
            "m.yaml:20: tables[0].ranges[0].to: \"x\" is not a valid int4",
        );
        let tenants = "  - name: tenant_data
    key: tenant
    type: text
    strategy: directory
    entries:
      acme: a
      globex: b
    default: a
";
        check(&with_tables(tenants), "ok v7 2 shards 1 tables");
        check(
            &with_tables(&tenants.replace("globex: b", "globex: z")),
            "m.yaml:21: tables[0].entries.globex: unknown shard \"z\"",
        );
        check(
            &with_tables(&tenants.replace("default: a", "default: q")),
            "m.yaml:22: tables[0].default: unknown shard \"q\"",
        );
        check(
            &format!("{SHARDS}default: zz\n"),
            "m.yaml:14: default: unknown shard \"zz\"",
        );
    }
}
