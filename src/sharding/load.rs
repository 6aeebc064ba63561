//! Loading `shardmap.yaml`: the file's shape (serde), then every rule a hand edit can break, each
//! reported with the file, line and field (`shardmap.yaml:14: tables[1].ranges[0].shard: unknown shard`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::buckets::{BucketError, BucketMap, parse_range};
use super::key::{KeyType, KeyValue};
use super::lines::Lines;
use super::map::{MapError, ShardId, ShardMap, ShardSpec, Unlisted};
use super::table::{
    Directory, KeyRange, Lookup, Sharded, Strategy, TableKind, TableSpec, normalize,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    version: u64,
    #[serde(default)]
    buckets: Option<u32>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    multi_shard_writes: bool,
    shards: Vec<RawShard>,
    #[serde(default)]
    tables: Vec<RawTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    name: String,
    host: String,
    port: u16,
    database: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    buckets: Vec<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, rename = "type")]
    key_type: Option<String>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    colocate_with: Option<String>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    entries: BTreeMap<String, String>,
    #[serde(default)]
    lookup: Option<RawLookup>,
    #[serde(default)]
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    #[serde(default)]
    from: Option<Scalar>,
    #[serde(default)]
    to: Option<Scalar>,
    shard: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    shard: String,
    query: String,
    #[serde(default = "default_ttl_ms")]
    ttl_ms: u64,
}

fn default_ttl_ms() -> u64 {
    60_000
}

/// A YAML scalar a DBA may write bare or quoted: `7`, `0-511`, `"acme"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

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

fn buckets(check: &Check, raw: &RawMap, has_hash: bool) -> Result<Option<BucketMap>, MapError> {
    let assigned = raw.shards.iter().any(|s| !s.buckets.is_empty());
    let Some(count) = raw.buckets else {
        if assigned {
            let i = raw.shards.iter().position(|s| !s.buckets.is_empty());
            let i = i.unwrap_or_default().to_string();
            return Err(check.err(
                &["shards", &i, "buckets"],
                "bucket ranges need the bucket count at the top (`buckets: 1024`)",
            ));
        }
        if has_hash {
            return Err(check.err(
                &["tables"],
                "hash tables need `buckets: N` at the top and bucket ranges on every shard",
            ));
        }
        return Ok(None);
    };
    let mut assignments = Vec::with_capacity(raw.shards.len());
    for (i, s) in raw.shards.iter().enumerate() {
        let at = ["shards", &i.to_string(), "buckets"];
        let ranges = s
            .buckets
            .iter()
            .map(|r| parse_range(&r.text()).map_err(|e| check.err(&at, e)))
            .collect::<Result<Vec<_>, _>>()?;
        assignments.push(ranges);
    }
    BucketMap::from_ranges(count, &assignments)
        .map(Some)
        .map_err(|e| {
            let at = match &e {
                BucketError::OutOfRange { shard, .. } => shard_buckets(*shard),
                BucketError::Twice { second, .. } => shard_buckets(*second),
                _ => vec!["buckets".into()],
            };
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            check.err(&at, e)
        })
}

fn shard_buckets(s: ShardId) -> Vec<String> {
    vec!["shards".into(), s.0.to_string(), "buckets".into()]
}

fn tables(check: &Check, raw: &RawMap) -> Result<Vec<TableSpec>, MapError> {
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

fn key_column(check: &Check, t: &RawTable, idx: &str) -> Result<String, MapError> {
    match &t.key {
        Some(k) if !k.trim().is_empty() => Ok(k.trim().to_ascii_lowercase()),
        _ => Err(check.err(&["tables", idx, "name"], "a sharded table needs `key`")),
    }
}

fn key_type(check: &Check, t: &RawTable, idx: &str) -> Result<Option<KeyType>, MapError> {
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

fn sharded(
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
    use super::*;

    const SHARDS: &str = "\
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

    fn check(yaml: &str, want: &str) {
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

    fn with_tables(tables: &str) -> String {
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
