//! The shard map: the versioned list of shards and the placement of every listed table.

use std::path::{Path, PathBuf};

use super::buckets::BucketMap;
use super::key::KeyValue;
use super::table::{Placement, Sharded, Strategy, TableSpec, normalize};

/// Index of a shard in the map's `shards` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// Overrides the proxy's `server_auth` for this shard.
    pub user: Option<String>,
    pub password: Option<String>,
}

/// The validated shard map. Built by [`ShardMap::parse`]; immutable once built (a reload builds a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    pub version: u64,
    pub shards: Vec<ShardSpec>,
    /// The hash buckets and their owners; present when the map has hash tables or declares buckets.
    pub buckets: Option<BucketMap>,
    pub tables: Vec<TableSpec>,
    /// Where statements on tables the map does not list go.
    pub unlisted: Unlisted,
    /// Whether a write without a shard key may run on every shard (not atomic across shards).
    pub multi_shard_writes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    Shard(ShardId),
    Refuse,
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ShardMap {
    pub fn load(path: &Path) -> Result<ShardMap, MapError> {
        let text = std::fs::read_to_string(path).map_err(|source| MapError::Read {
            path: path.into(),
            source,
        })?;
        ShardMap::parse(&text, path)
    }

    /// Parses and validates a map; every problem names the file, line and field.
    pub fn parse(text: &str, path: &Path) -> Result<ShardMap, MapError> {
        super::load::parse(text, path)
    }

    pub fn shard(&self, id: ShardId) -> &ShardSpec {
        &self.shards[id.0]
    }

    pub fn shard_named(&self, name: &str) -> Option<ShardId> {
        self.shards.iter().position(|s| s.name == name).map(ShardId)
    }

    pub fn all_shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        (0..self.shards.len()).map(ShardId)
    }

    /// The table a statement names (`t`, `public.t` or `schema.t`, any case).
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.table_index(name).map(|i| &self.tables[i])
    }

    /// Where in `tables` the table a statement names is.
    pub fn table_index(&self, name: &str) -> Option<usize> {
        let name = normalize(name);
        self.tables.iter().position(|t| t.name == name)
    }

    /// Where the rows with this key live.
    pub fn place(&self, table: &Sharded, key: &KeyValue) -> Placement {
        match &table.strategy {
            Strategy::Hash => match &self.buckets {
                Some(b) => Placement::Shard(b.owner(b.bucket_of(key.partition_hash()))),
                None => Placement::Nowhere("the map has no buckets".into()),
            },
            Strategy::Range(ranges) => match ranges.iter().find(|r| r.contains(key)) {
                Some(r) => Placement::Shard(r.shard),
                None => Placement::Nowhere(format!("{key} is outside every range")),
            },
            Strategy::Directory(d) => d.place(key),
        }
    }
}
