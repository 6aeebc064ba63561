//! shardgate's embedded storage engine: an LSM tree with a group-commit WAL.
//!
//! Bytes in, bytes out; no async runtime inside. Writes go to a WAL (one
//! record and at most one fsync per commit group) and an ordered memtable;
//! full memtables are flushed to SSTables in the background and compacted
//! level by level. Reads see a consistent snapshot named by a sequence number.
//!
//! A database directory holds:
//! - `NNNNNN.wal`: WAL segments (`wal/`), preallocated and reused;
//! - `NNNNNN.sst`: tables (`sstable/`), immutable once written;
//! - `MANIFEST`: the log of version edits naming the live tables and the
//!   oldest WAL segment still needed (`manifest.rs`);
//! - `LOCK`: held while a `Db` has the directory open.
//!
//! Durability order, which recovery relies on: a WAL record is fdatasynced
//! before its writes are acknowledged or visible; a table is fsynced before the
//! manifest edit naming it; the manifest edit is fsynced before the WAL
//! segments or tables it retires are removed.

mod async_write;
mod batch;
mod bloom;
mod codec;
mod commit;
mod compaction;
mod core;
mod error;
mod flush;
mod iter;
mod key;
mod manifest;
mod memtable;
mod open;
mod options;
mod snapshot;
mod sstable;
mod stats;
mod tombstones;
mod turns;
mod version;
mod wal;
mod worker;
mod write;

use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use async_write::WriteFuture;
pub use batch::WriteBatch;
pub use error::{Error, Result};
pub use iter::user::DbIter;
pub use options::{Options, WriteOptions};
pub use snapshot::Snapshot;
pub use stats::StatsSnapshot;

use self::core::Shared;
pub(crate) use self::core::SuperVersion;

/// An open database. All methods take `&self`; share it with `Arc<Db>`.
pub struct Db {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    committer: async_write::Committer,
    closed: std::sync::atomic::AtomicBool,
}

impl Db {
    /// Opens (creating if needed) the database in `dir`, replaying its WAL.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        let shared = open::open(dir.as_ref(), options)?;
        let threads = worker::spawn(&shared).map_err(|e| Error::io(dir.as_ref(), e))?;
        Ok(Db {
            committer: async_write::Committer::new(shared.clone()),
            shared,
            threads: Mutex::new(threads),
            closed: Default::default(),
        })
    }

    pub fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: WriteOptions,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b, opts)
    }

    pub fn delete(&self, key: impl AsRef<[u8]>, opts: WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b, opts)
    }

    /// Deletes every key in `start..end` with one range tombstone. Tables that
    /// lie wholly inside the range are dropped when the tombstone is flushed.
    pub fn delete_range(
        &self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
        opts: WriteOptions,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_range(start, end);
        self.write(b, opts)
    }

    /// Applies `batch` atomically: after a crash it is there whole or not at all.
    pub fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<()> {
        validate(&batch)?;
        self.shared.write(vec![batch], opts.sync, false)
    }

    /// Like [`Db::write`] without blocking: the future resolves once the write is
    /// applied (and durable, with `sync`). Writes made this way are grouped too.
    pub fn write_async(&self, batch: WriteBatch, opts: WriteOptions) -> WriteFuture {
        match validate(&batch) {
            Ok(()) => self.committer.submit(batch, opts.sync),
            Err(e) => WriteFuture::failed(e),
        }
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let (seq, sv) = self.shared.read_view();
        sv.get(key.as_ref(), seq)
    }

    /// Iterates over the keys in `range` as of now (a consistent snapshot).
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<DbIter> {
        self.snapshot().scan(range)
    }

    /// A consistent view of the database as of now.
    pub fn snapshot(&self) -> Snapshot {
        let (seq, sv) = self.shared.read_view();
        Snapshot::new(seq, sv)
    }

    /// Flushes the memtable to a table and waits for every pending flush.
    pub fn flush(&self) -> Result<()> {
        self.shared.write(Vec::new(), false, true)?;
        let mut st = self.shared.lock_state();
        while !st.imms.is_empty() && st.error.is_none() && !st.shutdown {
            st = self.shared.wait(st);
        }
        check(&st)
    }

    /// Flushes, then compacts everything down into one level, dropping
    /// overwritten values and tombstones.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        let mut st = self.shared.lock_state();
        st.manual_compaction = true;
        self.shared.cv.notify_all();
        while st.manual_compaction && st.error.is_none() && !st.shutdown {
            st = self.shared.wait(st);
        }
        check(&st)
    }

    /// Makes every write so far durable, including non-sync ones.
    pub fn sync_wal(&self) -> Result<()> {
        self.shared.write(Vec::new(), true, false)
    }

    /// Waits until no flush or compaction is pending.
    pub fn wait_idle(&self) -> Result<()> {
        let mut st = self.shared.lock_state();
        loop {
            check(&st)?;
            let busy = !st.imms.is_empty()
                || !st.compacting.is_empty()
                || compaction::choose::choose(&st.version, &self.shared.opts).is_some();
            if !busy {
                return Ok(());
            }
            st = self.shared.wait(st);
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Number of tables in each level.
    pub fn level_counts(&self) -> Vec<usize> {
        let (_, sv) = self.shared.read_view();
        sv.version.levels.iter().map(Vec::len).collect()
    }

    /// Syncs the WAL (ending its segment cleanly) and stops the background
    /// threads. Unflushed memtables stay in the WAL and are replayed by the
    /// next open. After a failed write the WAL is left as it is (no end marker
    /// after a torn record), and the write's error was already returned. Dropping
    /// a `Db` does the same, ignoring errors.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        self.committer.stop();
        // After a failed write the log ends where it failed: no end marker after a torn record.
        let synced = if self.shared.turns.poisoned() {
            Ok(())
        } else {
            let mut wal = self.shared.lock_wal();
            wal.writer.finish()
        };
        {
            let mut st = self.shared.lock_state();
            st.shutdown = true;
            self.shared.cv.notify_all();
        }
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
        synced
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn check(st: &self::core::State) -> Result<()> {
    match (&st.error, st.shutdown) {
        (Some(e), _) => Err(Error::Poisoned(e.clone())),
        (None, true) => Err(Error::Closed),
        _ => Ok(()),
    }
}

fn validate(batch: &WriteBatch) -> Result<()> {
    // Keeps every WAL record well under the reader's sanity limit.
    if batch.rep.len() > options::MAX_BATCH_BYTES {
        return Err(Error::InvalidArgument(format!(
            "write batch larger than {} MiB",
            options::MAX_BATCH_BYTES >> 20
        )));
    }
    Ok(())
}

pub(crate) fn owned_bounds<K: AsRef<[u8]>>(
    range: &impl RangeBounds<K>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}
