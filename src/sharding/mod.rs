//! The shard map: which servers exist and (as the sharding issue grows it) which rows each owns. Pure:
//! loading reads a file, everything else is data.

pub mod buckets;
pub mod hash;
pub mod map;

pub use map::{MapError, ShardId, ShardMap, ShardSpec};
