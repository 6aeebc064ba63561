//! The shard map: which servers exist and which rows each owns. Pure: loading reads a file, everything
//! else is data and arithmetic (PostgreSQL-compatible hashing, buckets, ranges, directories).

pub mod buckets;
pub mod hash;
pub mod key;
mod lines;
mod load;
pub mod map;
pub mod plan_add;
pub mod table;

pub use buckets::{Bucket, BucketMap};
pub use key::{KeyType, KeyValue};
pub use map::{MapError, ShardId, ShardMap, ShardSpec, Unlisted};
pub use table::{Placement, Sharded, Strategy, TableKind, TableSpec};
