//! Group commit: writers queue up; the writer at the front leads, writing and
//! fsyncing the batches of every compatible writer behind it in one go.
//!
//! Writers that arrive while the leader is in fsync queue behind the group and
//! form the next one. A lone writer becomes leader at once and waits only for
//! its own fsync. A sync writer never joins a non-sync leader's group, whose
//! records would not be fsynced.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, Thread};

use super::batch::WriteBatch;
use super::error::{Error, Result, shared_result};

const WAITING: u8 = 0;
const LEADER: u8 = 1;
const DONE_OK: u8 = 2;
/// Done with an error, which is in `result`.
const DONE_ERR: u8 = 3;

pub(crate) struct Writer {
    pub(crate) batches: Vec<WriteBatch>,
    pub(crate) sync: bool,
    /// Freeze the memtable even if it is not full (a manual flush).
    pub(crate) force_freeze: bool,
    state: AtomicU8,
    thread: Thread,
    result: Mutex<Option<Result<()>>>,
    /// The followers of its group it wakes once woken itself (see
    /// [`WAKE_FANOUT`]), set before it is woken.
    wakes: Mutex<[Option<Arc<Writer>>; WAKE_FANOUT]>,
}

impl Writer {
    pub(crate) fn new(batches: Vec<WriteBatch>, sync: bool, force_freeze: bool) -> Self {
        Writer {
            batches,
            sync,
            force_freeze,
            state: AtomicU8::new(WAITING),
            thread: thread::current(),
            result: Mutex::new(None),
            wakes: Mutex::new(Default::default()),
        }
    }

    fn bytes(&self) -> usize {
        self.batches.iter().map(|b| b.rep.len()).sum()
    }

    fn finish(&self, r: Result<()>) {
        let state = match r {
            Ok(()) => DONE_OK,
            Err(e) => {
                *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(e));
                DONE_ERR
            }
        };
        // Clone the handle first: once the state is stored the writer may return
        // and drop its side of this struct.
        let thread = self.thread.clone();
        self.state.store(state, Ordering::Release);
        thread.unpark();
    }

    /// Finishes the followers this writer was asked to wake.
    fn wake_followers(&self, r: &Result<()>) {
        let wakes = std::mem::take(&mut *self.wakes.lock().unwrap_or_else(|e| e.into_inner()));
        for f in wakes.into_iter().flatten() {
            f.finish(shared_result(r));
        }
    }
}

/// A leader wakes the first `WAKE_FANOUT` followers of its group, and follower
/// `i` (counting from 0) wakes followers `(i + 1) * WAKE_FANOUT ..` the next
/// `WAKE_FANOUT`: waking threads costs a system call and often a cross-core
/// interrupt each, and a tree spreads that over every core instead of holding
/// the leader for the whole group.
const WAKE_FANOUT: usize = 2;

/// Sync groups allowed in their fsync at once. One: the next leader takes its
/// group when the fsync ends, by when every writer that arrived during it has
/// queued. Two split 64 writers into groups of 17 instead of 31, and wrote 8%
/// fewer records a second (`scripts/bench-engine.sh`, 2 cores).
const MAX_SYNCING: usize = 1;

pub(crate) struct CommitQueue {
    queue: Mutex<VecDeque<Arc<Writer>>>,
    max_group_bytes: usize,
    syncing: Mutex<usize>,
    synced: Condvar,
}

impl CommitQueue {
    pub(crate) fn new(max_group_bytes: usize) -> Self {
        CommitQueue {
            queue: Mutex::new(VecDeque::new()),
            max_group_bytes,
            syncing: Mutex::new(0),
            synced: Condvar::new(),
        }
    }

    /// A sync leader waits for a free fsync slot before taking its group, so
    /// that writers arriving meanwhile join it.
    fn acquire_sync_slot(&self) {
        let mut n = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_SYNCING {
            n = self.synced.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    fn release_sync_slot(&self) {
        *self.syncing.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.synced.notify_one();
    }

    /// Runs `w` through the queue. A leader calls `stage` with its group and
    /// hands the queue to the next leader; then `sync`, holding the fsync slot
    /// (so the next sync group forms while this one is in its fsync); then,
    /// with the slot free for the next group, `apply`; then it wakes its
    /// followers.
    pub(crate) fn submit<S, D>(
        &self,
        w: Writer,
        stage: impl FnOnce(&[Arc<Writer>]) -> Result<S>,
        sync: impl FnOnce(S) -> Result<D>,
        apply: impl FnOnce(D) -> Result<()>,
    ) -> Result<()> {
        let me = Arc::new(w);
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back(me.clone());
            if q.len() == 1 {
                me.state.store(LEADER, Ordering::Release);
            }
        }
        loop {
            match me.state.load(Ordering::Acquire) {
                DONE_OK => {
                    me.wake_followers(&Ok(()));
                    return Ok(());
                }
                DONE_ERR => {
                    let r = me.result.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let r = r.unwrap_or(Err(Error::Closed));
                    me.wake_followers(&r);
                    return r;
                }
                LEADER => break,
                _ => thread::park(),
            }
        }
        if me.sync {
            self.acquire_sync_slot();
        }
        let group = self.take_group(&me);
        let staged = stage(&group);
        let next = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.drain(..group.len());
            q.front().cloned()
        };
        // Hand leadership on before syncing: the next group forms while this
        // one is in its fsync, and is appended while this one is applied.
        if let Some(n) = next {
            n.state.store(LEADER, Ordering::Release);
            n.thread.unpark();
        }
        let synced = staged.and_then(sync);
        if me.sync {
            self.release_sync_slot();
        }
        let result = synced.and_then(apply);
        let followers = &group[1..];
        for (i, f) in followers.iter().enumerate() {
            let first = (i + 1) * WAKE_FANOUT;
            if first < followers.len() {
                let mut wakes = f.wakes.lock().unwrap_or_else(|e| e.into_inner());
                for (slot, kid) in wakes.iter_mut().zip(&followers[first..]) {
                    *slot = Some(kid.clone());
                }
            }
        }
        for f in followers.iter().take(WAKE_FANOUT) {
            f.finish(shared_result(&result));
        }
        result
    }

    fn take_group(&self, leader: &Arc<Writer>) -> Vec<Arc<Writer>> {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut group = vec![leader.clone()];
        let mut bytes = leader.bytes();
        for w in q.iter().skip(1) {
            if (w.sync && !leader.sync)
                || w.force_freeze
                || bytes + w.bytes() > self.max_group_bytes
            {
                break;
            }
            bytes += w.bytes();
            group.push(w.clone());
        }
        group
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn concurrent_writers_share_commits_and_all_complete() {
        let q = Arc::new(CommitQueue::new(1 << 20));
        let commits = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (q, commits, written) = (q.clone(), commits.clone(), written.clone());
                thread::spawn(move || {
                    for _ in 0..200 {
                        let mut b = WriteBatch::new();
                        b.put(b"k", b"v");
                        let stage = |group: &[Arc<Writer>]| {
                            commits.fetch_add(1, Ordering::Relaxed);
                            written.fetch_add(group.len(), Ordering::Relaxed);
                            Ok(())
                        };
                        let sync = |()| {
                            thread::yield_now();
                            Ok(())
                        };
                        q.submit(Writer::new(vec![b], true, false), stage, sync, Ok)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(written.load(Ordering::Relaxed), 16 * 200);
        assert!(commits.load(Ordering::Relaxed) <= 16 * 200);
    }

    /// A failed group's error reaches every writer in it, down the whole wake tree.
    #[test]
    fn every_writer_of_a_failed_group_gets_the_error() {
        let q = Arc::new(CommitQueue::new(1 << 20));
        let largest = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..24)
            .map(|_| {
                let (q, largest) = (q.clone(), largest.clone());
                thread::spawn(move || {
                    let stage = |group: &[Arc<Writer>]| {
                        largest.fetch_max(group.len(), Ordering::Relaxed);
                        // Long enough for the other writers to queue behind this group.
                        thread::sleep(std::time::Duration::from_millis(50));
                        Err::<(), _>(Error::Poisoned("boom".into()))
                    };
                    q.submit(Writer::new(vec![], true, false), stage, Ok, Ok)
                })
            })
            .collect();
        for t in threads {
            assert!(matches!(t.join().unwrap(), Err(Error::Poisoned(m)) if m == "boom"));
        }
        assert!(
            largest.load(Ordering::Relaxed) > 2 * WAKE_FANOUT,
            "a group deep enough for a tree"
        );
    }

    #[test]
    fn sync_writers_never_join_a_non_sync_leader() {
        let q = CommitQueue::new(1 << 20);
        let leader = Arc::new(Writer::new(vec![], false, false));
        let mut guard = q.queue.lock().unwrap();
        guard.push_back(leader.clone());
        guard.push_back(Arc::new(Writer::new(vec![], false, false)));
        guard.push_back(Arc::new(Writer::new(vec![], true, false)));
        guard.push_back(Arc::new(Writer::new(vec![], false, false)));
        drop(guard);
        assert_eq!(q.take_group(&leader).len(), 2);
        let sync_leader = Arc::new(Writer::new(vec![], true, false));
        q.queue.lock().unwrap()[0] = sync_leader.clone();
        assert_eq!(
            q.take_group(&sync_leader).len(),
            4,
            "non-sync writers may ride a sync group"
        );
    }
}
