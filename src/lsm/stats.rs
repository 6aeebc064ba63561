//! Counters the benchmark and operators read: bytes written and fsyncs shared.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default, Debug)]
pub(crate) struct Stats {
    wal_bytes: AtomicU64,
    wal_syncs: AtomicU64,
    wal_sync_micros: AtomicU64,
    sync_writes: AtomicU64,
    table_bytes: AtomicU64,
    flushes: AtomicU64,
    compactions: AtomicU64,
    stalls: AtomicU64,
}

/// A copy of the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Bytes appended to WAL segments.
    pub wal_bytes: u64,
    /// fdatasync calls on the WAL.
    pub wal_syncs: u64,
    /// Time spent in WAL fdatasyncs, in microseconds (like PostgreSQL's
    /// `pg_stat_wal.wal_sync_time`): over elapsed time, how busy the disk kept commits.
    pub wal_sync_micros: u64,
    /// Write calls that asked for sync=true; `sync_writes / wal_syncs` is the group size.
    pub sync_writes: u64,
    /// Bytes of SSTables written by flushes and compactions.
    pub table_bytes: u64,
    pub flushes: u64,
    pub compactions: u64,
    /// Writes that had to wait for a flush or compaction.
    pub stalls: u64,
}

impl Stats {
    pub(crate) fn add_wal_bytes(&self, n: u64) {
        self.wal_bytes.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_wal_sync(&self, took: std::time::Duration) {
        self.wal_syncs.fetch_add(1, Relaxed);
        self.wal_sync_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }
    pub(crate) fn add_sync_writes(&self, n: u64) {
        self.sync_writes.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_table_bytes(&self, n: u64) {
        self.table_bytes.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_flush(&self) {
        self.flushes.fetch_add(1, Relaxed);
    }
    pub(crate) fn add_compaction(&self) {
        self.compactions.fetch_add(1, Relaxed);
    }
    pub(crate) fn add_stall(&self) {
        self.stalls.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            wal_bytes: self.wal_bytes.load(Relaxed),
            wal_syncs: self.wal_syncs.load(Relaxed),
            wal_sync_micros: self.wal_sync_micros.load(Relaxed),
            sync_writes: self.sync_writes.load(Relaxed),
            table_bytes: self.table_bytes.load(Relaxed),
            flushes: self.flushes.load(Relaxed),
            compactions: self.compactions.load(Relaxed),
            stalls: self.stalls.load(Relaxed),
        }
    }
}
