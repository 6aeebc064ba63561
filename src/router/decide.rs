//! From what the walk found to a target: reference tables never decide, unlisted tables go to the
//! default shard, and every sharded binding must be restricted by one key set or be joined on the
//! key to one unrestricted driver in the top-level FROM. Anything else is refused.

use super::facts::{Facts, Rel};
use super::plan::{KeySource, Refusal, Target};
use crate::sharding::{Placement, ShardId, ShardMap, TableKind, Unlisted};

/// The statement shape `decide` needs beyond the facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Read,
    Write,
    /// INSERT ... SELECT: must land on one shard.
    InsertSelect,
}

const HINT_SHARD: &str =
    "add /* shardgate: shard=NAME */ or /* shardgate: key=VALUE */ to choose the shard";

pub(crate) fn decide(f: &Facts, map: &ShardMap, shape: Shape) -> Result<Target, Refusal> {
    if let Some(r) = &f.refusal {
        return Err(r.clone());
    }
    let write = shape != Shape::Read;
    let named = |rel: fn(&Rel) -> bool| -> Vec<&str> {
        let mut v: Vec<&str> = f
            .bindings
            .iter()
            .filter(|b| rel(&b.rel))
            .map(|b| b.name.as_str())
            .collect();
        v.dedup();
        v
    };
    let unlisted = named(|r| *r == Rel::Unlisted);
    let default = match (unlisted.first(), map.unlisted) {
        (None, _) => None,
        (Some(t), Unlisted::Refuse) => {
            return Err(Refusal::unsupported(
                format!("table {t} is not in the shard map"),
                "add it to shardmap.yaml (tables:) or set `default:` to a shard for unlisted tables",
            ));
        }
        (Some(_), Unlisted::Shard(s)) => Some(s),
    };
    let sharded: Vec<usize> = (0..f.bindings.len())
        .filter(|&b| matches!(f.bindings[b].rel, Rel::Sharded(_)))
        .collect();
    if let Some(r) = f
        .bindings
        .iter()
        .find(|b| b.rel == Rel::Reference && b.write)
    {
        if !sharded.is_empty() || default.is_some() {
            let others: Vec<&str> = named(|r| matches!(r, Rel::Sharded(_) | Rel::Unlisted));
            return Err(Refusal::unsupported(
                format!(
                    "a write to reference table {} together with {} cannot be routed",
                    r.name,
                    others.join(", ")
                ),
                "write the reference table in a statement of its own",
            ));
        }
        return Ok(Target::All);
    }
    if sharded.is_empty() {
        return Ok(default.map_or(Target::Any, Target::Shard));
    }
    let mut anchors: Vec<usize> = Vec::new();
    let mut unrestricted: Vec<usize> = Vec::new();
    for &b in &sharded {
        match f.anchor(b) {
            Some(a) => {
                let same = anchors.iter().any(|&x| same_keys(f, map, x, a));
                if !same {
                    anchors.push(a);
                }
            }
            None => unrestricted.push(b),
        }
    }
    let names = |ids: &[usize]| -> String {
        let mut v: Vec<&str> = ids.iter().map(|&b| f.bindings[b].name.as_str()).collect();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    if unrestricted.is_empty() {
        if let ([a], None) = (anchors.as_slice(), default) {
            let keys = f.bindings[*a].own.clone().unwrap_or_default();
            if shape == Shape::InsertSelect && !single_key(&keys) {
                return Err(Refusal::unsupported(
                    "INSERT ... SELECT must read rows of one shard key",
                    "select one key (`WHERE key = ...`) or insert per shard",
                ));
            }
            return Ok(Target::Keys {
                table: table_of(f, *a),
                keys,
                write,
            });
        }
        // Several independent key sets (or an unlisted table's default shard): only literal keys
        // that all live on one shard can be routed.
        let mut shard = default;
        for &a in &anchors {
            let placed = literal_shard(f, map, a);
            match (placed, shard) {
                (Some(s), None) => shard = Some(s),
                (Some(s), Some(t)) if s == t => {}
                _ => {
                    let mut all = anchors.clone();
                    all.extend(&sharded);
                    let tables = names(&all);
                    let with_unlisted = match unlisted.first() {
                        Some(u) => format!(" and unlisted {u} (default shard)"),
                        None => String::new(),
                    };
                    return Err(Refusal::unsupported(
                        format!(
                            "the statement reads {tables}{with_unlisted} with shard keys that are not joined and not known to agree on one shard"
                        ),
                        format!("join the tables on their shard keys, or {HINT_SHARD}"),
                    ));
                }
            }
        }
        return Ok(shard.map_or(Target::Any, Target::Shard));
    }
    if !anchors.is_empty() || default.is_some() {
        let keyless = names(&unrestricted);
        let mut other = anchors.clone();
        other.retain(|a| !unrestricted.contains(a));
        let keyed = if other.is_empty() {
            unlisted.join(", ")
        } else {
            names(&other)
        };
        return Err(Refusal::unsupported(
            format!(
                "{keyless} has no shard key condition while {keyed} is on specific shards: the statement would need rows from every shard"
            ),
            format!("add a condition on the shard key of {keyless}, or {HINT_SHARD}"),
        ));
    }
    if shape == Shape::InsertSelect {
        let target = unrestricted
            .iter()
            .copied()
            .find(|&b| f.bindings[b].write)
            .unwrap_or(unrestricted[0]);
        let table = &f.bindings[target].name;
        let key = key_of(f, map, target);
        return Err(Refusal::unsupported(
            format!("INSERT ... SELECT into {table} without a shard key condition"),
            format!("select rows of one {table}.{key} value"),
        ));
    }
    // One unrestricted driver in the top-level FROM, everything else joined to it on the key.
    let driver = unrestricted
        .iter()
        .copied()
        .find(|&d| f.bindings[d].top && unrestricted.iter().all(|&b| b == d || f.reaches(b, d)));
    let Some(driver) = driver else {
        return Err(Refusal::unsupported(
            format!(
                "{} are not joined on their shard keys (or are in a subquery) and have no shard key condition",
                names(&unrestricted)
            ),
            format!(
                "join co-located tables on their shard keys, add key conditions, or {HINT_SHARD}"
            ),
        ));
    };
    if !write {
        return Ok(Target::Scatter);
    }
    let written = unrestricted
        .iter()
        .copied()
        .find(|&b| f.bindings[b].write)
        .unwrap_or(driver);
    let table = &f.bindings[written].name;
    let key = key_of(f, map, written);
    if map.multi_shard_writes {
        return Ok(Target::EveryShard);
    }
    Err(Refusal::unsupported(
        format!("a write to {table} without a shard key condition would run on every shard"),
        format!("add a condition on {table}.{key} or set multi_shard_writes in shardmap.yaml"),
    ))
}

fn table_of(f: &Facts, b: usize) -> usize {
    match f.bindings[b].rel {
        Rel::Sharded(i) => i,
        _ => 0,
    }
}

fn key_of<'a>(f: &Facts, map: &'a ShardMap, b: usize) -> &'a str {
    match &map.tables[table_of(f, b)].kind {
        TableKind::Sharded(s) => &s.key,
        TableKind::Reference => "",
    }
}

fn group_of<'a>(f: &Facts, map: &'a ShardMap, b: usize) -> &'a str {
    match &map.tables[table_of(f, b)].kind {
        TableKind::Sharded(s) => &s.group,
        TableKind::Reference => "",
    }
}

/// Two anchors with the same key set in one co-location group select the same shards.
fn same_keys(f: &Facts, map: &ShardMap, a: usize, b: usize) -> bool {
    a == b || (group_of(f, map, a) == group_of(f, map, b) && f.bindings[a].own == f.bindings[b].own)
}

fn single_key(keys: &[KeySource]) -> bool {
    matches!(keys, [KeySource::Value(_) | KeySource::Param(_)])
}

/// The one shard an anchor's literal keys live on, if they are all literals on one shard.
fn literal_shard(f: &Facts, map: &ShardMap, a: usize) -> Option<ShardId> {
    let TableKind::Sharded(s) = &map.tables[table_of(f, a)].kind else {
        return None;
    };
    let mut shard = None;
    for k in f.bindings[a].own.as_ref()? {
        let KeySource::Value(v) = k else {
            return None;
        };
        let Placement::Shard(p) = map.place(s, v) else {
            return None;
        };
        if shard.is_some_and(|x| x != p) {
            return None;
        }
        shard = Some(p);
    }
    shard
}
