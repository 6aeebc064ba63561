//! The shape of `shardmap.yaml` as serde reads it, before any rule is checked.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMap {
    pub(super) version: u64,
    #[serde(default)]
    pub(super) buckets: Option<u32>,
    #[serde(default)]
    pub(super) default: Option<String>,
    #[serde(default)]
    pub(super) multi_shard_writes: bool,
    pub(super) shards: Vec<RawShard>,
    #[serde(default)]
    pub(super) tables: Vec<RawTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShard {
    pub(super) name: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) database: String,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) password: Option<String>,
    #[serde(default)]
    pub(super) buckets: Vec<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub(super) name: String,
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default, rename = "type")]
    pub(super) key_type: Option<String>,
    #[serde(default)]
    pub(super) strategy: Option<String>,
    #[serde(default)]
    pub(super) colocate_with: Option<String>,
    #[serde(default)]
    pub(super) ranges: Vec<RawRange>,
    #[serde(default)]
    pub(super) entries: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) lookup: Option<RawLookup>,
    #[serde(default)]
    pub(super) default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    #[serde(default)]
    pub(super) from: Option<Scalar>,
    #[serde(default)]
    pub(super) to: Option<Scalar>,
    pub(super) shard: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLookup {
    pub(super) shard: String,
    pub(super) query: String,
    #[serde(default = "default_ttl_ms")]
    pub(super) ttl_ms: u64,
}

fn default_ttl_ms() -> u64 {
    60_000
}

/// A YAML scalar a DBA may write bare or quoted: `7`, `0-511`, `"acme"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Int(i64),
    Text(String),
}

impl Scalar {
    pub(super) fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}
