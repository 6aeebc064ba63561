//! Where one execution of a statement goes, once its Bind parameters are known.

use std::fmt;

use super::plan::{CopyIn, Refusal};
use crate::sharding::{KeyValue, ShardId};

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Shard(ShardId),
    Any,
    /// A write or utility on every shard.
    All,
    /// A write whose keys live on several shards (only when `map.multi_shard_writes`), ascending.
    Multi(Vec<ShardId>),
    /// A read on several shards (an IN list spanning shards, or no key), ascending.
    Scatter(Vec<ShardId>),
    /// A multi-row INSERT whose rows live on several shards, ascending by shard.
    Split(Vec<SplitPart>),
    /// COPY FROM STDIN into a sharded table, split row by row.
    CopyIn(CopyIn),
    /// A directory key to look up in PostgreSQL (the I/O is the caller's).
    Lookup {
        table: usize,
        key: KeyValue,
    },
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPart {
    pub shard: ShardId,
    pub sql: String,
    /// The original 0-based parameter index for each `$1..$k` of `sql`.
    pub params: Vec<usize>,
    /// How many VALUES rows this part carries.
    pub rows: usize,
}

/// Shard names for `Display`: a route only holds ids, so names come from the map when there is one.
pub(crate) fn shard_list(f: &mut fmt::Formatter<'_>, shards: &[ShardId]) -> fmt::Result {
    for (i, s) in shards.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "shard{}", s.0)?;
    }
    Ok(())
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Shard(s) => write!(f, "shard shard{}", s.0),
            Route::Any => f.write_str("any shard"),
            Route::All => f.write_str("all shards"),
            Route::Multi(s) => {
                f.write_str("multi: ")?;
                shard_list(f, s)
            }
            Route::Scatter(s) => {
                f.write_str("scatter: ")?;
                shard_list(f, s)
            }
            Route::Split(parts) => {
                f.write_str("split: ")?;
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    let rows = if p.rows == 1 { "row" } else { "rows" };
                    write!(f, "shard{} ({} {rows})", p.shard.0, p.rows)?;
                }
                Ok(())
            }
            Route::CopyIn(_) => f.write_str("copy: each row to the shard of its key"),
            Route::Lookup { table, key } => write!(f, "lookup table {table} key {key}"),
            Route::Refused(r) => write!(f, "refused: {r}"),
        }
    }
}
