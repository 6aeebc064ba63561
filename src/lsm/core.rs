//! The engine's shared state and its write path.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use super::commit::CommitQueue;
use super::error::{Error, Result};
use super::manifest::{ManifestState, ManifestWriter, VersionEdit};
use super::memtable::{Found, Memtable};
use super::options::Options;
use super::sstable::cache::BlockCache;
use super::stats::Stats;
use super::turns::Turns;
use super::version::{TableFile, Version};
use super::wal::writer::{RecyclePool, WalWriter};
use super::wal::{segment_path, sync_dir};
use super::write::Staged;

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
}

impl WalState {
    pub(crate) fn new(writer: WalWriter, last_seq: u64) -> Self {
        WalState { writer, last_seq }
    }
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) stats: Arc<Stats>,
    pub(crate) cache: Option<Arc<BlockCache>>,
    /// Highest sequence handed out; tables may hold entries up to here.
    pub(crate) assigned_seq: AtomicU64,
    /// The highest sequence reads see (durable when asked, and applied, with
    /// every one below it): commit groups publish theirs in order, waiting
    /// there for their turn.
    pub(crate) turns: Turns,
    pub(crate) current: RwLock<Arc<SuperVersion>>,
    pub(crate) state: Mutex<State>,
    /// Signals background work and its completion (stalled writers wait here).
    pub(crate) cv: Condvar,
    pub(crate) commit: CommitQueue<Staged>,
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
        let seq = self.turns.visible();
        let sv = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
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
        self.poison_locked(&mut self.lock_state(), e);
    }

    /// `poison`, the state lock held (the turns' lock is only ever taken
    /// after it, never before).
    pub(crate) fn poison_locked(&self, st: &mut State, e: &Error) {
        st.error.get_or_insert_with(|| e.to_string());
        self.cv.notify_all();
        self.turns.poison();
    }

    /// The state lock for installing `edit`, taken after the directory entries of
    /// the tables it adds are durable: they must be before the manifest names them
    /// (power loss), and the directory fsync is not to stall writers, which take
    /// the same lock to make room in the memtable.
    pub(crate) fn lock_for_install(&self, edit: &VersionEdit) -> Result<MutexGuard<'_, State>> {
        if !edit.added.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(self.lock_state())
    }

    /// Logs `edit` in the manifest, then swaps in the new version; `st` comes from
    /// `lock_for_install`. The manifest append is the commit point: tables named by
    /// the edit are already synced, and tables it removes are deleted only after it
    /// is durable.
    pub(crate) fn install(
        &self,
        st: &mut State,
        mut edit: VersionEdit,
        added: &[Arc<TableFile>],
        obsolete: &[Arc<TableFile>],
    ) -> Result<()> {
        edit.next_file = Some(st.mstate.next_file);
        // An upper bound of every sequence the tables hold (a flush waits for its
        // entries to be visible, so no table holds more than was assigned).
        edit.last_seq = Some(self.assigned_seq.load(Ordering::Acquire));
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
}
