//! `buckets: N` at the top and each shard's bucket ranges: needed by hash tables, every bucket owned
//! by exactly one shard.

use super::Check;
use super::raw::RawMap;
use crate::sharding::buckets::{BucketError, BucketMap, parse_range};
use crate::sharding::map::{MapError, ShardId};

pub(super) fn buckets(
    check: &Check,
    raw: &RawMap,
    has_hash: bool,
) -> Result<Option<BucketMap>, MapError> {
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
