//! Tuning knobs, with defaults sized for a proxy's local write buffer.

use std::time::Duration;

use super::error::{Error, Result};

/// Options for [`crate::lsm::Db::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Memtable size at which it is frozen and flushed.
    pub memtable_size: usize,
    /// Frozen memtables allowed to wait for a flush before writers stall.
    pub max_immutable_memtables: usize,
    /// Target size of a data block.
    pub block_size: usize,
    /// Bloom filter bits per key (10 gives about 1% false positives).
    pub bloom_bits_per_key: usize,
    /// Target size of a table written by compaction.
    pub table_size: u64,
    /// Level-0 table count that triggers a compaction into level 1.
    pub l0_compaction_trigger: usize,
    /// Level-0 table count from which each write group is delayed a little.
    pub l0_slowdown_trigger: usize,
    /// Level-0 table count at which writers stop until compaction catches up.
    pub l0_stop_trigger: usize,
    /// Longest delay of a write group in the slowdown zone.
    pub max_slowdown: Duration,
    /// Target size of level 1; each deeper level is `level_size_ratio` times bigger.
    pub level1_size: u64,
    pub level_size_ratio: u64,
    /// Bytes of non-sync writes buffered in user space before they reach the OS.
    /// They may be lost if the process dies first; sync writes never are.
    pub wal_buffer_size: usize,
    /// Size of the cache of verified data blocks (0 disables it).
    pub block_cache_size: usize,
    /// Open despite a corrupt record in the middle of the WAL, keeping the records
    /// before it and dropping everything after it.
    pub salvage_wal: bool,
    /// Largest commit group, in bytes of batch data.
    pub max_group_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_size: 64 << 20,
            max_immutable_memtables: 2,
            block_size: 4096,
            bloom_bits_per_key: 10,
            table_size: 32 << 20,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 12,
            l0_stop_trigger: 20,
            max_slowdown: Duration::from_millis(10),
            level1_size: 256 << 20,
            level_size_ratio: 10,
            wal_buffer_size: 0,
            block_cache_size: 64 << 20,
            salvage_wal: false,
            max_group_bytes: 4 << 20,
        }
    }
}

/// A commit group is one WAL record, which the reader takes up to 256 MiB: groups of at most this
/// (or one batch, at most `MAX_BATCH_BYTES`) stay well under it.
pub(crate) const MAX_GROUP_BYTES: usize = 128 << 20;

/// The largest write batch accepted.
pub(crate) const MAX_BATCH_BYTES: usize = 64 << 20;

/// Per-write options.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Return only once the write is on stable storage (fdatasync).
    pub sync: bool,
}

impl Options {
    /// Rejects settings the engine cannot work with.
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidArgument(format!("options: {what}")));
        if self.memtable_size < 1024 || self.block_size < 64 || self.table_size < 1024 {
            return bad(
                "memtable_size and table_size must be at least 1 KiB, block_size at least 64 bytes",
            );
        }
        if !(1..=30).contains(&self.bloom_bits_per_key) {
            return bad("bloom_bits_per_key must be within 1..=30");
        }
        if self.l0_compaction_trigger == 0 || self.l0_slowdown_trigger > self.l0_stop_trigger {
            return bad(
                "need 0 < l0_compaction_trigger and l0_slowdown_trigger <= l0_stop_trigger",
            );
        }
        if self.max_immutable_memtables == 0
            || self.level_size_ratio < 2
            || self.max_group_bytes == 0
        {
            return bad(
                "max_immutable_memtables and max_group_bytes must be positive, level_size_ratio at least 2",
            );
        }
        if self.max_group_bytes > MAX_GROUP_BYTES {
            return bad("max_group_bytes is at most 128 MiB (a group is one WAL record)");
        }
        Ok(())
    }
}
