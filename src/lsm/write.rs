//! The write path: commit groups in three steps, so that a sync group's
//! memtable insert overlaps the next group's append and fsync.
//!
//! Stage (leader only, in sequence order): make room in the memtable, assign
//! sequences, and hand the group's WAL record to the OS. Sync (while the next
//! group forms): fdatasync if any writer asked for it. Apply (for a sync group,
//! while the next group is staged and synced, by the leader or a writer of the
//! group; a non-sync group's leader applies it before the next is staged):
//! insert the record into the memtable it was staged for, then publish the
//! group's sequences once every earlier group has published (`turns.rs`).
//! Readers only see sequences up to the published one, so no write is visible
//! before it is durable, and visibility never has holes; a frozen memtable is
//! flushed only once its last sequence is visible, so never before a group
//! staged for it is applied.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::batch::WriteBatch;
use super::commit::Writer;
use super::core::{Shared, State};
use super::error::{Error, Result};
use super::memtable::Memtable;
use super::wal::writer::sync_segment;

/// A group between its steps.
pub(crate) struct Staged {
    first: u64,
    last: u64,
    /// The memtable the group goes into, and its WAL record payload.
    mem: Arc<Memtable>,
    payload: Vec<u8>,
    /// The segment to fdatasync, for a group that asked for it.
    sync: Option<(Arc<File>, PathBuf)>,
    sync_writes: u64,
}

impl Shared {
    pub(crate) fn write(
        &self,
        batches: Vec<WriteBatch>,
        sync: bool,
        force_freeze: bool,
    ) -> Result<()> {
        let writer = Writer::new(batches, sync, force_freeze);
        self.commit.submit(
            writer,
            |group| self.stage(group),
            |staged| self.sync(staged),
            |synced| self.apply(synced),
        )
    }

    /// Run by the group's leader while it holds the queue.
    fn stage(&self, group: &[Arc<Writer<Staged>>]) -> Result<Staged> {
        let mem = self.make_room(group[0].force_freeze)?;
        let sync = group.iter().any(|w| w.sync);
        let mut wal = self.lock_wal();
        let wal = &mut *wal;
        let first = wal.last_seq + 1;
        let mut next = first;
        // A buffer of its own: the group keeps it until it is applied, after
        // the next group has appended.
        let batches = || {
            group
                .iter()
                .flat_map(|w| &w.batches)
                .filter(|b| !b.is_empty())
        };
        let mut payload = Vec::with_capacity(batches().map(WriteBatch::encoded_len).sum());
        for b in batches() {
            b.encode_into(&mut payload, next);
            next += u64::from(b.count);
        }
        // The bytes of a sync group must reach the file before its fdatasync.
        let written = if next > first {
            wal.writer.append(&payload, sync)
        } else if sync {
            wal.writer.flush_to_sync()
        } else {
            Ok(())
        };
        if let Err(e) = written {
            self.poison(&e);
            return Err(e);
        }
        if next > first {
            mem.set_staged();
            wal.last_seq = next - 1;
            self.assigned_seq.store(next - 1, Ordering::Release);
        }
        let sync_writes = group
            .iter()
            .filter(|w| w.sync)
            .map(|w| w.batches.len() as u64)
            .sum();
        Ok(Staged {
            first,
            last: next - 1,
            mem,
            payload,
            sync: sync.then(|| wal.writer.sync_handle()),
            sync_writes,
        })
    }

    /// Makes the group durable, if it asked to be.
    fn sync(&self, s: Staged) -> Result<Staged> {
        if let Some((file, path)) = &s.sync {
            if let Err(e) = sync_segment(file, path, &self.stats) {
                self.poison(&e);
                return Err(e);
            }
            self.stats.add_sync_writes(s.sync_writes);
        }
        Ok(s)
    }

    /// Inserts the group into its memtable, then makes it visible, in sequence order.
    fn apply(&self, s: Staged) -> Result<()> {
        if s.last >= s.first {
            s.mem.apply_payload(&s.payload);
        }
        let turn = self.turns.wait(s.first - 1)?;
        if s.last >= s.first {
            turn.publish(s.last);
        }
        Ok(())
    }

    /// Waits until every write up to `seq` is visible. A frozen memtable may be waiting for a group
    /// staged for it: without the wait its table would miss the group, whose WAL segment then goes;
    /// or the group would be in its fsync, and must not reach a table (where it would hide an
    /// older, visible version) before it is durable, nor at all if the fsync fails.
    pub(crate) fn wait_visible(&self, seq: u64) -> Result<()> {
        self.turns.wait(seq).map(drop)
    }

    /// Makes sure the active memtable has room, freezing it when full. Applies
    /// backpressure: a short delay per write group while level 0 is crowded,
    /// then a stall while frozen memtables or level-0 tables pile up.
    fn make_room(&self, mut force: bool) -> Result<Arc<Memtable>> {
        let o = &self.opts;
        let mut st = self.lock_state();
        let mut slowed = false;
        loop {
            if let Some(e) = &st.error {
                return Err(Error::Poisoned(e.clone()));
            }
            if st.shutdown {
                return Err(Error::Closed);
            }
            let l0 = st.version.levels[0].len();
            if !slowed && l0 >= o.l0_slowdown_trigger && l0 < o.l0_stop_trigger {
                let span = (o.l0_stop_trigger - o.l0_slowdown_trigger).max(1) as u32;
                let delay = o.max_slowdown * (l0 - o.l0_slowdown_trigger + 1) as u32 / span;
                drop(st);
                std::thread::sleep(delay.min(o.max_slowdown).max(Duration::from_micros(100)));
                slowed = true;
                st = self.lock_state();
                continue;
            }
            let full = st.mem.size() >= o.memtable_size;
            if !full && !force || force && st.mem.is_empty() {
                return Ok(st.mem.clone());
            }
            if st.imms.len() >= o.max_immutable_memtables || l0 >= o.l0_stop_trigger {
                self.stats.add_stall();
                st = self.wait(st);
                continue;
            }
            self.freeze(&mut st)?;
            force = false;
        }
    }

    /// Switches to a new memtable and WAL segment; the old memtable is queued for flush.
    fn freeze(&self, st: &mut State) -> Result<()> {
        st.mstate.next_file += 1;
        let segment = st.mstate.next_file - 1;
        let mut wal = self.lock_wal();
        let last_seq = wal.last_seq;
        let rotated = wal.writer.rotate(segment);
        drop(wal);
        if let Err(e) = rotated {
            self.poison_locked(st, &e);
            return Err(e);
        }
        st.mem.set_next_segment(segment);
        st.mem.set_last_seq(last_seq);
        let old = std::mem::replace(&mut st.mem, Arc::new(Memtable::new()));
        st.imms.push_back(old);
        self.publish(st);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::{Db, Options, WriteOptions};

    type Flushing = std::thread::JoinHandle<Result<()>>;

    /// Stages a group putting `k` = `value` (outside the commit queue), then starts a manual flush
    /// and checks that it waits for the group.
    fn flush_while_staged(db: &Arc<Db>, value: &[u8]) -> (Staged, Flushing) {
        let mut b = WriteBatch::new();
        b.put(b"k", value);
        let writer = Arc::new(Writer::new(vec![b], true, false));
        let staged = db.shared.stage(&[writer]).unwrap();
        let flushing = {
            let db = db.clone();
            std::thread::spawn(move || db.flush())
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!flushing.is_finished(), "the flush waits for the group");
        (staged, flushing)
    }

    /// Syncs and applies the group, then lets the flush finish.
    fn complete(db: &Db, staged: Staged, flushing: Flushing) {
        let synced = db.shared.sync(staged).unwrap();
        db.shared.apply(synced).unwrap();
        flushing.join().unwrap().unwrap();
    }

    /// A group staged (in the WAL) but neither durable nor in its memtable when that memtable is
    /// frozen: the flush waits for it. Had it not, the group would be missing from the table, or,
    /// applied but not yet durable, the table would keep only the newest version of `k`, invisible
    /// still, and a read would fall through to the older table's value.
    #[test]
    fn a_memtable_is_flushed_only_once_its_writes_are_visible() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let sync = WriteOptions { sync: true };
        db.put(b"k", b"v0", sync).unwrap();
        db.flush().unwrap();
        db.put(b"k", b"v1", sync).unwrap();
        let (staged, flushing) = flush_while_staged(&db, b"v2");
        assert_eq!(
            db.level_counts()[0],
            1,
            "no table of the frozen memtable yet"
        );
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
        complete(&db, staged, flushing);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    }

    /// A manual flush while the only group of an empty memtable is staged but not applied: the
    /// flush freezes the memtable (it looked empty before) and the table holds the group.
    #[test]
    fn a_flush_takes_a_group_staged_for_an_empty_memtable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let (staged, flushing) = flush_while_staged(&db, b"v");
        complete(&db, staged, flushing);
        assert_eq!(db.level_counts()[0], 1, "the group is in a table");
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
