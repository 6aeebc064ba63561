//! How a table's rows are placed: sharded by a key with a strategy (hash buckets, key ranges, a
//! directory of tenants), or a reference table copied on every shard.

use std::collections::HashMap;
use std::time::Duration;

use super::key::{KeyType, KeyValue};
use super::map::ShardId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Lowercase, as `name` or `schema.name`; a bare name also matches `public.name`.
    pub name: String,
    pub kind: TableKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    /// Copied on every shard: reads go to one shard, writes to all.
    Reference,
    Sharded(Sharded),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharded {
    /// The shard key column, lowercase.
    pub key: String,
    pub key_type: KeyType,
    pub strategy: Strategy,
    /// The co-location group: tables with the same group place equal keys on the same shard, so joins
    /// and transactions on one key stay on one shard. A table's own name unless it is co-located.
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// PostgreSQL's partition hash of the key, modulo the map's bucket count, owned per the bucket map.
    Hash,
    /// Ordered, non-overlapping ranges.
    Range(Vec<KeyRange>),
    Directory(Directory),
}

/// `[from, to)`; a missing bound is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub from: Option<KeyValue>,
    pub to: Option<KeyValue>,
    pub shard: ShardId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub entries: HashMap<KeyValue, ShardId>,
    pub lookup: Option<Lookup>,
    /// Where unknown keys go; without one they are refused.
    pub default: Option<ShardId>,
}

/// A PostgreSQL table that maps keys to shard names, read through a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The shard whose database holds the lookup table.
    pub shard: ShardId,
    /// A query with one parameter (the key as text) that returns the shard name.
    pub query: String,
    pub ttl: Duration,
}

/// Where a key's rows live, as far as the map alone can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Shard(ShardId),
    /// A directory key that is not inline: ask the lookup table (then fall back to the default).
    Lookup,
    /// No shard owns the key.
    Nowhere(String),
}

impl KeyRange {
    pub fn contains(&self, key: &KeyValue) -> bool {
        self.from.as_ref().is_none_or(|f| f <= key) && self.to.as_ref().is_none_or(|t| key < t)
    }
}

impl Directory {
    pub fn place(&self, key: &KeyValue) -> Placement {
        if let Some(s) = self.entries.get(key) {
            return Placement::Shard(*s);
        }
        match (&self.lookup, self.default) {
            (Some(_), _) => Placement::Lookup,
            (None, Some(s)) => Placement::Shard(s),
            (None, None) => Placement::Nowhere(format!("{key} is not in the directory")),
        }
    }
}

/// The candidate lookup names of a table reference: as written, and without `public.`.
pub fn normalize(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_prefix("public.") {
        Some(bare) => bare.to_owned(),
        None => lower,
    }
}
