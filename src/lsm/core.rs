//! The engine's shared state and its write path.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use super::batch::WriteBatch;
use super::commit::{CommitQueue, Writer};
use super::error::{Error, Result};
use super::manifest::{ManifestState, ManifestWriter, VersionEdit};
use super::memtable::{Found, Memtable};
use super::options::Options;
use super::sstable::cache::BlockCache;
use super::stats::Stats;
use super::version::{TableFile, Version};
use super::wal::writer::{RecyclePool, WalWriter};
use super::wal::{segment_path, sync_dir};

/// Rewrite the manifest from a snapshot once its log of edits grows past this.
const MANIFEST_REWRITE: u64 = 32 << 20;

/// Everything a read needs, captured at one moment.
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<Memtable>,
    /// Frozen memtables, newest first.
    pub(crate) imms: Vec<Arc<Memtable>>,
    pub(crate) version: Arc<Version>,
}

impl SuperVersion {
    pub(crate) fn get(&self, user: &[u8], snapshot: u64) -> Result<Option<Vec<u8>>> {
        let found = match self.mem.get(user, snapshot) {
            Some(f) => Some(f),
            None => match self.imms.iter().find_map(|m| m.get(user, snapshot)) {
                Some(f) => Some(f),
                None => self.version.get(user, snapshot)?,
            },
        };
        Ok(match found {
            Some(Found::Value(v)) => Some(v),
            _ => None,
        })
    }
}

pub(crate) struct State {
    pub(crate) mem: Arc<Memtable>,
    /// Frozen memtables waiting for a flush, oldest first.
    pub(crate) imms: VecDeque<Arc<Memtable>>,
    pub(crate) version: Arc<Version>,
    pub(crate) manifest: ManifestWriter,
    pub(crate) mstate: ManifestState,
    /// Tables a running compaction reads; a flush must not drop them.
    pub(crate) compacting: HashSet<u64>,
    pub(crate) shutdown: bool,
    pub(crate) error: Option<String>,
    pub(crate) manual_compaction: bool,
}

pub(crate) struct WalState {
    pub(crate) writer: WalWriter,
    pub(crate) last_seq: u64,
    payload: Vec<u8>,
}

impl WalState {
    pub(crate) fn new(writer: WalWriter, last_seq: u64) -> Self {
        WalState { writer, last_seq, payload: Vec::new() }
    }
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) stats: Arc<Stats>,
    pub(crate) cache: Option<Arc<BlockCache>>,
    /// Highest sequence whose write is fully applied; reads see up to here.
    pub(crate) visible_seq: AtomicU64,
    pub(crate) current: RwLock<Arc<SuperVersion>>,
    pub(crate) state: Mutex<State>,
    /// Signals background work and its completion (stalled writers wait here).
    pub(crate) cv: Condvar,
    pub(crate) commit: CommitQueue,
    pub(crate) wal: Mutex<WalState>,
    /// Retired WAL segment files kept for reuse.
    pub(crate) wal_pool: RecyclePool,
    pub(crate) _lock: File,
}

impl Shared {
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_wal(&self) -> MutexGuard<'_, WalState> {
        self.wal.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wait<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(st).unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn new_file_number(&self) -> u64 {
        let mut st = self.lock_state();
        st.mstate.next_file += 1;
        st.mstate.next_file - 1
    }

    /// The current sequence and super-version. The sequence is read first: all
    /// writes up to it sit in memtables or tables the later super-version holds.
    pub(crate) fn read_view(&self) -> (u64, Arc<SuperVersion>) {
        let seq = self.visible_seq.load(Ordering::Acquire);
        let sv = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        (seq, sv)
    }

    pub(crate) fn publish(&self, st: &State) {
        let sv = SuperVersion {
            mem: st.mem.clone(),
            imms: st.imms.iter().rev().cloned().collect(),
            version: st.version.clone(),
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sv);
        self.cv.notify_all();
    }

    /// Records a failure; the engine accepts no more writes.
    pub(crate) fn poison(&self, e: &Error) {
        let mut st = self.lock_state();
        st.error.get_or_insert_with(|| e.to_string());
        self.cv.notify_all();
    }

    /// Logs `edit` in the manifest, then swaps in the new version. The manifest
    /// append is the commit point: tables named by the edit are already synced,
    /// and tables it removes are deleted only after it is durable.
    pub(crate) fn install(&self, st: &mut State, mut edit: VersionEdit, added: &[Arc<TableFile>], obsolete: &[Arc<TableFile>]) -> Result<()> {
        edit.next_file = Some(st.mstate.next_file);
        edit.last_seq = Some(self.visible_seq.load(Ordering::Acquire));
        st.manifest.append(&edit)?;
        st.mstate.apply(&edit);
        st.version = Arc::new(st.version.apply(&edit, added));
        for f in obsolete {
            f.mark_obsolete();
        }
        if st.manifest.size > MANIFEST_REWRITE {
            st.manifest = ManifestWriter::create(&self.dir, &st.mstate)?;
        }
        Ok(())
    }

    /// Retires WAL segments older than `log_number`: their data is in tables.
    /// A couple are kept for reuse; open deletes any left over.
    pub(crate) fn remove_old_segments(&self, log_number: u64) -> Result<()> {
        let mut removed = false;
        // Held across the listing: a rotation renames pooled files under it.
        let mut pool = self.wal_pool.lock().unwrap_or_else(|e| e.into_inner());
        for n in super::open::list_numbers(&self.dir, "wal")? {
            let p = segment_path(&self.dir, n);
            if n >= log_number || pool.contains(&p) {
                continue;
            }
            if pool.len() < 2 {
                pool.push(p);
            } else {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                removed = true;
            }
        }
        drop(pool);
        if removed { sync_dir(&self.dir) } else { Ok(()) }
    }

    pub(crate) fn write(&self, batches: Vec<WriteBatch>, sync: bool, force_freeze: bool) -> Result<()> {
        self.commit.submit(Writer::new(batches, sync, force_freeze), |group| self.commit_group(group))
    }

    /// Runs as the group's leader: one WAL append and at most one fsync for all.
    fn commit_group(&self, group: &[Arc<Writer>]) -> Result<()> {
        let mem = self.make_room(group[0].force_freeze)?;
        let sync = group.iter().any(|w| w.sync);
        let mut wal = self.lock_wal();
        let wal = &mut *wal;
        let first = wal.last_seq + 1;
        let mut next = first;
        wal.payload.clear();
        for b in group.iter().flat_map(|w| &w.batches).filter(|b| !b.is_empty()) {
            b.encode_into(&mut wal.payload, next);
            next += u64::from(b.count);
        }
        // The record must be durable before its writes become visible or acknowledged.
        let mut written = if next > first { wal.writer.append(&wal.payload) } else { Ok(()) };
        if written.is_ok() && sync {
            written = wal.writer.sync();
            self.stats.add_sync_writes(group.iter().filter(|w| w.sync).count() as u64);
        }
        if let Err(e) = written {
            self.poison(&e);
            return Err(e);
        }
        if next > first {
            mem.apply_payload(&wal.payload);
            wal.last_seq = next - 1;
            self.visible_seq.store(next - 1, Ordering::Release);
        }
        Ok(())
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
        if let Err(e) = self.lock_wal().writer.rotate(segment) {
            st.error.get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        st.mem.set_next_segment(segment);
        let old = std::mem::replace(&mut st.mem, Arc::new(Memtable::new()));
        st.imms.push_back(old);
        self.publish(st);
        Ok(())
    }
}
