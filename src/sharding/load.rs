//! Loading `shardmap.yaml`: the file's shape (serde), then every rule a hand edit can break, each
//! reported with the file, line and field (`shardmap.yaml:14: tables[1].ranges[0].shard: unknown shard`).
//!
//! - `raw`: the file's shape. `buckets`: the bucket count and each shard's bucket ranges.
//! - `tables`: table names, strategies and co-location. `strategy`: range and directory tables.

mod buckets;
mod raw;
mod strategy;
mod tables;

use std::collections::HashMap;
use std::path::Path;

use super::lines::Lines;
use super::map::{MapError, ShardId, ShardMap, ShardSpec, Unlisted};
use super::table::{Strategy, TableKind};
use buckets::buckets;
use raw::RawMap;
use tables::tables;

/// Collects the context of one validation: the file, its lines, and the shard names.
struct Check<'a> {
    path: &'a Path,
    lines: Lines<'a>,
    shards: HashMap<&'a str, ShardId>,
}

impl Check<'_> {
    fn err(&self, at: &[&str], message: impl std::fmt::Display) -> MapError {
        let mut field = String::new();
        for step in at {
            match step.parse::<usize>() {
                Ok(i) => field.push_str(&format!("[{i}]")),
                Err(_) if field.is_empty() => field.push_str(step),
                Err(_) => field.push_str(&format!(".{step}")),
            }
        }
        MapError::Invalid {
            path: self.path.into(),
            line: self.lines.locate(at),
            message: format!("{field}: {message}"),
        }
    }

    fn shard(&self, at: &[&str], name: &str) -> Result<ShardId, MapError> {
        self.shards
            .get(name)
            .copied()
            .ok_or_else(|| self.err(at, format_args!("unknown shard {name:?}")))
    }
}

pub(super) fn parse(text: &str, path: &Path) -> Result<ShardMap, MapError> {
    let raw: RawMap = yaml_serde::from_str(text).map_err(|e| MapError::Invalid {
        path: path.into(),
        line: e.location().map(|l| l.line()).unwrap_or(0),
        message: e.to_string(),
    })?;
    let mut check = Check {
        path,
        lines: Lines::new(text),
        shards: HashMap::new(),
    };
    if raw.shards.is_empty() {
        return Err(check.err(&["shards"], "at least one shard is required"));
    }
    for (i, s) in raw.shards.iter().enumerate() {
        if check.shards.insert(&s.name, ShardId(i)).is_some() {
            return Err(check.err(
                &["shards", &i.to_string(), "name"],
                format_args!("duplicate shard {:?}", s.name),
            ));
        }
    }
    let tables = tables(&check, &raw)?;
    let has_hash = tables
        .iter()
        .any(|t| matches!(&t.kind, TableKind::Sharded(s) if s.strategy == Strategy::Hash));
    let buckets = buckets(&check, &raw, has_hash)?;
    let unlisted = match raw.default.as_deref() {
        None | Some("refuse") => Unlisted::Refuse,
        Some(name) => Unlisted::Shard(check.shard(&["default"], name)?),
    };
    let shards = raw
        .shards
        .into_iter()
        .map(|s| ShardSpec {
            name: s.name,
            host: s.host,
            port: s.port,
            database: s.database,
            user: s.user,
            password: s.password,
        })
        .collect();
    Ok(ShardMap {
        version: raw.version,
        shards,
        buckets,
        tables,
        unlisted,
        multi_shard_writes: raw.multi_shard_writes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharding::key::KeyValue;

    pub(super) const SHARDS: &str = "\
version: 7
buckets: 8
shards:
  - name: a
    host: h
    port: 1
    database: d
    buckets: [0-3]
  - name: b
    host: h
    port: 2
    database: d
    buckets: [\"4-6\", 7]
";

    pub(super) fn check(yaml: &str, want: &str) {
        let got = match ShardMap::parse(yaml, Path::new("m.yaml")) {
            Ok(m) => format!(
                "ok v{} {} shards {} tables",
                m.version,
                m.shards.len(),
                m.tables.len()
            ),
            Err(e) => e.to_string(),
        };
        assert!(got.contains(want), "{got:?} does not contain {want:?}");
    }

    pub(super) fn with_tables(tables: &str) -> String {
        format!("{SHARDS}tables:\n{tables}")
    }

    #[test]
    fn shards_and_buckets() {
        check(SHARDS, "ok v7 2 shards 0 tables");
        check("version: 1\nshards: []\n", "m.yaml:2: shards: at least one");
        check(
            &SHARDS.replace("name: b", "name: a"),
            "m.yaml:9: shards[1].name: duplicate shard \"a\"",
        );
        check(&SHARDS.replace("port: 1", "port: x"), "m.yaml:6:");
        check(
            &SHARDS.replace("host: h\n    port: 1", "hots: h\n    port: 1"),
            "unknown field `hots`",
        );
        check(&SHARDS.replace("[0-3]", "[0-2]"), "m.yaml:2: buckets: ");
        check(
            &SHARDS.replace("[0-3]", "[0-4]"),
            "m.yaml:13: shards[1].buckets: ",
        );
        check(
            &SHARDS.replace("[0-3]", "[0-9]"),
            "m.yaml:8: shards[0].buckets: ",
        );
        check(
            &SHARDS.replace("[0-3]", "[zero]"),
            "m.yaml:8: shards[0].buckets: ",
        );
        check(
            &SHARDS.replace("buckets: 8\n", ""),
            "m.yaml:7: shards[0].buckets: bucket ranges need",
        );
    }

    #[test]
    fn placement() {
        let yaml = with_tables(
            "  - name: users\n    key: id\n    type: int8\n    strategy: hash\n  - name: events\n    key: day\n    type: int4\n    strategy: range\n    ranges:\n      - {to: 10, shard: b}\n      - {from: 10, shard: a}\n",
        );
        let map = ShardMap::parse(&yaml, Path::new("m.yaml")).expect("valid");
        let events = match &map.table("public.EVENTS").expect("listed").kind {
            TableKind::Sharded(s) => s.clone(),
            TableKind::Reference => unreachable!(),
        };
        use super::super::table::Placement;
        assert_eq!(
            map.place(&events, &KeyValue::Int(-5)),
            Placement::Shard(ShardId(1))
        );
        assert_eq!(
            map.place(&events, &KeyValue::Int(10)),
            Placement::Shard(ShardId(0))
        );
        assert!(map.table("other.events").is_none());
    }
}
