//! Group commit: writers queue up; the writer at the front leads, writing and
//! fsyncing the batches of every compatible writer behind it in one go.
//!
//! Writers that arrive while the leader is in fsync queue behind the group and
//! form the next one. A lone writer on an idle queue becomes leader at once
//! and waits only for its own fsync. A sync writer never joins a non-sync
//! leader's group, whose records would not be fsynced.
//!
//! A sync leader holds the queue from staging its group to the end of its
//! fsync and, if a sync writer is then at the front, leads that writer's group
//! at once (see [`MAX_GROUPS_LED`]). The group it synced goes to one of that
//! group's writers to apply and wake (a group of the leader alone it applies
//! itself). Handing the queue to a next leader instead left the disk idle
//! 40-90 us a group, while that thread waited for a CPU among the writers just
//! woken. A non-sync writer arriving during a held fsync waits for it, as it
//! would behind any queued sync writer; so does a writer whose thread is
//! leading: a sync leader returns after up to [`MAX_GROUPS_LED`] fsyncs.
//!
//! A non-sync leader has no fsync to overlap: it applies its group before it
//! hands the queue on, so groups never wait for one another's turn to be
//! visible (see `finish_unsynced`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};

use super::batch::WriteBatch;
use super::error::{Error, Result, shared_result};

const WAITING: u8 = 0;
const LEADER: u8 = 1;
/// Handed a synced group (in `handoff`) to apply and wake.
const APPLY: u8 = 2;
const DONE_OK: u8 = 3;
/// Done with an error, which is in `result`.
const DONE_ERR: u8 = 4;

/// A synced group and its writers, handed to one of them.
type Handoff<D> = (D, Vec<Arc<Writer<D>>>);

pub(crate) struct Writer<D> {
    pub(crate) batches: Vec<WriteBatch>,
    pub(crate) sync: bool,
    /// Freeze the memtable even if it is not full (a manual flush).
    pub(crate) force_freeze: bool,
    state: AtomicU8,
    thread: Thread,
    result: Mutex<Option<Result<()>>>,
    /// The followers of its group it wakes once woken itself (see
    /// [`WAKE_FANOUT`]), set before it is woken.
    wakes: Mutex<[Option<Arc<Writer<D>>>; WAKE_FANOUT]>,
    handoff: Mutex<Option<Handoff<D>>>,
}

impl<D> Writer<D> {
    pub(crate) fn new(batches: Vec<WriteBatch>, sync: bool, force_freeze: bool) -> Self {
        Writer {
            batches,
            sync,
            force_freeze,
            state: AtomicU8::new(WAITING),
            thread: thread::current(),
            result: Mutex::new(None),
            wakes: Mutex::new(Default::default()),
            handoff: Mutex::new(None),
        }
    }

    fn bytes(&self) -> usize {
        self.batches.iter().map(|b| b.rep.len()).sum()
    }

    fn set_state(&self, state: u8) {
        // Clone the handle first: once the state is stored the writer may return
        // and drop its side of this struct.
        let thread = self.thread.clone();
        self.state.store(state, Ordering::Release);
        thread.unpark();
    }

    fn finish(&self, r: Result<()>) {
        let state = match r {
            Ok(()) => DONE_OK,
            Err(e) => {
                *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(e));
                DONE_ERR
            }
        };
        self.set_state(state);
    }

    /// Its result, once finished.
    fn done(&self) -> Option<Result<()>> {
        match self.state.load(Ordering::Acquire) {
            DONE_OK => Some(Ok(())),
            DONE_ERR => {
                let r = self.result.lock().unwrap_or_else(|e| e.into_inner()).take();
                Some(r.unwrap_or(Err(Error::Closed)))
            }
            _ => None,
        }
    }

    /// A leader that led on past its own group waits for that group's result.
    fn wait_done(&self) -> Result<()> {
        loop {
            if let Some(r) = self.done() {
                return r;
            }
            thread::park();
        }
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

/// Groups one sync leader leads in a row before it hands leadership on and
/// returns: its own write, long durable, waits for that.
const MAX_GROUPS_LED: usize = 8;

struct Queue<D> {
    writers: VecDeque<Arc<Writer<D>>>,
    /// A sync leader between staging and the end of its fsync will look at
    /// the writers queued behind it (and lead them if a sync writer is at the
    /// front, or else hand the queue on), so none of them becomes leader on
    /// arrival. So one group at a time is in its fsync, and the next is taken
    /// when it ends, by when every writer that arrived during it has queued.
    /// Two fsyncs at once split 64 writers into groups of 17 instead of 31
    /// and wrote 8% fewer records a second; a second one started only once a
    /// group as large as the first's had queued, 15% fewer
    /// (`scripts/bench-engine.sh`, 2 cores).
    held: bool,
}

impl<D> Queue<D> {
    /// Stops holding the queue, handing it to the writer at its front if any.
    fn let_go(&mut self) {
        self.held = false;
        if let Some(n) = self.writers.front() {
            n.set_state(LEADER);
        }
    }
}

pub(crate) struct CommitQueue<D> {
    queue: Mutex<Queue<D>>,
    max_group_bytes: usize,
}

impl<D> CommitQueue<D> {
    pub(crate) fn new(max_group_bytes: usize) -> Self {
        CommitQueue {
            queue: Mutex::new(Queue {
                writers: VecDeque::new(),
                held: false,
            }),
            max_group_bytes,
        }
    }

    /// Runs `w` through the queue. A leader calls `stage` with its group, then
    /// `sync`. A non-sync leader then `apply`s its group, hands the queue to
    /// the next leader and wakes its followers. A sync leader holds the queue
    /// through `sync` (so the next sync group forms meanwhile), then leads the
    /// group at its front, handing the group it synced to one of its writers
    /// to `apply` and wake; or, having led enough, hands the queue on and
    /// `apply`s its group itself.
    pub(crate) fn submit<S>(
        &self,
        w: Writer<D>,
        stage: impl Fn(&[Arc<Writer<D>>]) -> Result<S>,
        sync: impl Fn(S) -> Result<D>,
        apply: impl Fn(D) -> Result<()>,
    ) -> Result<()> {
        let me = Arc::new(w);
        {
            let mut q = self.lock_queue();
            q.writers.push_back(me.clone());
            if q.writers.len() == 1 && !q.held {
                me.state.store(LEADER, Ordering::Release);
            }
        }
        loop {
            if let Some(r) = me.done() {
                me.wake_followers(&r);
                return r;
            }
            match me.state.load(Ordering::Acquire) {
                LEADER => return self.lead(&me, stage, sync, apply),
                APPLY => {
                    let handed = me.handoff.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let (synced, group) = handed.expect("a handed group");
                    let r = apply(synced);
                    complete(&group, &me, &r);
                    return r;
                }
                _ => thread::park(),
            }
        }
    }

    fn lead<S>(
        &self,
        me: &Arc<Writer<D>>,
        stage: impl Fn(&[Arc<Writer<D>>]) -> Result<S>,
        sync: impl Fn(S) -> Result<D>,
        apply: impl Fn(D) -> Result<()>,
    ) -> Result<()> {
        let mut group = self.take_group(&self.lock_queue().writers);
        let mut led = 1;
        loop {
            let staged = stage(&group);
            if !me.sync {
                return self.finish_unsynced(me, &group, staged.and_then(&sync).and_then(&apply));
            }
            // A group that failed to stage has no fsync to hold the queue through.
            let hold = staged.is_ok();
            {
                let mut q = self.lock_queue();
                q.writers.drain(..group.len());
                if hold {
                    q.held = true;
                } else {
                    q.let_go();
                }
            }
            let synced = staged.and_then(&sync);
            let next = if hold {
                self.after_fsync(synced.is_ok() && led < MAX_GROUPS_LED)
            } else {
                None
            };
            match (synced, next) {
                // Handed off before the next group is staged: staging may wait
                // for a flush that waits for this group to be visible.
                (Ok(d), Some(next)) => {
                    hand_off(me, group, d, &apply);
                    group = next;
                    led += 1;
                }
                (synced, _) => {
                    let r = synced.and_then(&apply);
                    complete(&group, me, &r);
                    if Arc::ptr_eq(&group[0], me) {
                        return r;
                    }
                    return me.wait_done();
                }
            }
        }
    }

    /// A group with no fsync to overlap: applied before the queue is handed
    /// on, so the next group never waits for this one's turn to become
    /// visible. Handing the queue on first left 64 non-sync writers applying
    /// tiny groups at once, each waiting for the one before (55,000 writes/s
    /// against 1 writer's 260,000).
    fn finish_unsynced(
        &self,
        me: &Arc<Writer<D>>,
        group: &[Arc<Writer<D>>],
        r: Result<()>,
    ) -> Result<()> {
        {
            let mut q = self.lock_queue();
            q.writers.drain(..group.len());
            q.let_go();
        }
        complete(group, me, &r);
        r
    }

    /// After a held fsync: the group of sync writers queued meanwhile, for
    /// this leader to lead if it may; or none, the queue let go.
    fn after_fsync(&self, may_lead_on: bool) -> Option<Vec<Arc<Writer<D>>>> {
        let mut q = self.lock_queue();
        match q.writers.front() {
            Some(n) if may_lead_on && n.sync => Some(self.take_group(&q.writers)),
            _ => {
                q.let_go();
                None
            }
        }
    }

    /// The writer at the front of `writers` and those behind it that may
    /// share its commit.
    fn take_group(&self, writers: &VecDeque<Arc<Writer<D>>>) -> Vec<Arc<Writer<D>>> {
        let leader = &writers[0];
        let mut group = vec![leader.clone()];
        let mut bytes = leader.bytes();
        for w in writers.iter().skip(1) {
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

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue<D>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Passes a synced group to one of its writers other than the leader, to apply
/// and wake while the leader syncs the next group; a group of the leader alone
/// it applies itself.
fn hand_off<D>(
    leader: &Arc<Writer<D>>,
    group: Vec<Arc<Writer<D>>>,
    synced: D,
    apply: impl Fn(D) -> Result<()>,
) {
    let Some(to) = group.iter().find(|w| !Arc::ptr_eq(w, leader)).cloned() else {
        leader.finish(apply(synced));
        return;
    };
    *to.handoff.lock().unwrap_or_else(|e| e.into_inner()) = Some((synced, group));
    to.set_state(APPLY);
}

/// Finishes every writer of `group` but `runner` (the one applying it) with
/// `r`: a leader still leading later groups at once, the rest down a wake tree.
fn complete<D>(group: &[Arc<Writer<D>>], runner: &Arc<Writer<D>>, r: &Result<()>) {
    let mut rest = Vec::with_capacity(group.len());
    for w in group.iter().filter(|w| !Arc::ptr_eq(w, runner)) {
        if w.state.load(Ordering::Acquire) == LEADER {
            w.finish(shared_result(r));
        } else {
            rest.push(w);
        }
    }
    for (i, f) in rest.iter().enumerate() {
        let first = (i + 1) * WAKE_FANOUT;
        if first < rest.len() {
            let mut wakes = f.wakes.lock().unwrap_or_else(|e| e.into_inner());
            for (slot, kid) in wakes.iter_mut().zip(&rest[first..]) {
                *slot = Some((*kid).clone());
            }
        }
    }
    for f in rest.iter().take(WAKE_FANOUT) {
        f.finish(shared_result(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Runs `body` on `n` threads at once; their results.
    fn on_threads<T: Send>(n: usize, body: impl Fn() -> T + Sync) -> Vec<T> {
        thread::scope(|s| {
            let threads: Vec<_> = (0..n).map(|_| s.spawn(&body)).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    #[test]
    fn concurrent_writers_share_commits_and_all_complete() {
        let q = CommitQueue::new(1 << 20);
        let commits = AtomicUsize::new(0);
        let written = AtomicUsize::new(0);
        on_threads(16, || {
            for _ in 0..200 {
                let mut b = WriteBatch::new();
                b.put(b"k", b"v");
                let stage = |group: &[Arc<Writer<()>>]| {
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
        });
        assert_eq!(written.load(Ordering::Relaxed), 16 * 200);
        assert!(
            commits.load(Ordering::Relaxed) < 16 * 200,
            "writers shared commits"
        );
    }

    /// A failed group's error reaches every writer in it, down the whole wake tree.
    #[test]
    fn every_writer_of_a_failed_group_gets_the_error() {
        let q = CommitQueue::new(1 << 20);
        let largest = AtomicUsize::new(0);
        let results = on_threads(24, || {
            let stage = |group: &[Arc<Writer<()>>]| {
                largest.fetch_max(group.len(), Ordering::Relaxed);
                // Long enough for the other writers to queue behind this group.
                thread::sleep(Duration::from_millis(50));
                Err::<(), _>(Error::Poisoned("boom".into()))
            };
            q.submit(Writer::new(vec![], true, false), stage, Ok, Ok)
        });
        for r in results {
            assert!(matches!(r, Err(Error::Poisoned(m)) if m == "boom"));
        }
        assert!(
            largest.load(Ordering::Relaxed) > 2 * WAKE_FANOUT,
            "a group deep enough for a tree"
        );
    }

    /// Sync groups staged by one thread in a row (a leader leading on), and
    /// every group applied once, in order, on whichever thread it was handed to.
    #[test]
    fn a_sync_leader_leads_on_and_hands_each_group_to_be_applied() {
        let q = CommitQueue::<(usize, usize)>::new(1 << 20);
        let staged = Mutex::new(Vec::new());
        let applied = Mutex::new(Vec::new());
        on_threads(16, || {
            for _ in 0..100 {
                let stage = |group: &[Arc<Writer<(usize, usize)>>]| {
                    let mut s = staged.lock().unwrap();
                    s.push(thread::current().id());
                    Ok((s.len() - 1, group.len()))
                };
                let sync = |g| {
                    thread::sleep(Duration::from_micros(300));
                    Ok(g)
                };
                let apply = |g| {
                    applied.lock().unwrap().push(g);
                    Ok(())
                };
                let w = Writer::new(vec![WriteBatch::new()], true, false);
                q.submit(w, stage, sync, apply).unwrap();
            }
        });
        let staged = staged.into_inner().unwrap();
        let mut applied = applied.into_inner().unwrap();
        applied.sort();
        assert_eq!(
            applied.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..staged.len()).collect::<Vec<_>>()
        );
        assert_eq!(applied.iter().map(|g| g.1).sum::<usize>(), 16 * 100);
        let longest = staged
            .chunk_by(|a, b| a == b)
            .map(<[_]>::len)
            .max()
            .unwrap();
        assert!(longest > 1, "no leader led on");
    }

    /// An fsync failing while a leader leads on (a group staged by the thread
    /// that staged the one before): its group gets the error, and leadership
    /// passes on, so every later writer still completes.
    #[test]
    fn a_failed_sync_while_leading_on_hands_leadership_on() {
        let q = CommitQueue::<bool>::new(1 << 20);
        let last_stager = Mutex::new(None);
        let injected = AtomicUsize::new(0);
        let failed: usize = on_threads(16, || {
            (0..50)
                .filter(|_| {
                    let stage = |_: &[Arc<Writer<bool>>]| {
                        let me = thread::current().id();
                        let led_on = last_stager.lock().unwrap().replace(me) == Some(me);
                        Ok(led_on && injected.fetch_add(1, Ordering::Relaxed) == 0)
                    };
                    let sync = |fail| {
                        thread::sleep(Duration::from_micros(300));
                        if fail {
                            Err(Error::Poisoned("disk".into()))
                        } else {
                            Ok(fail)
                        }
                    };
                    let w = Writer::new(vec![], true, false);
                    q.submit(w, stage, sync, |_| Ok(())).is_err()
                })
                .count()
        })
        .into_iter()
        .sum();
        assert!(injected.load(Ordering::Relaxed) > 0, "a leader led on");
        assert!(failed >= 1, "the failed group's writers got the error");
    }

    /// Non-sync groups are applied one at a time: none is staged while an
    /// earlier one waits to be applied (and so for its turn to be visible).
    #[test]
    fn a_non_sync_group_is_applied_before_the_next_is_staged() {
        let q = CommitQueue::<()>::new(1 << 20);
        let unapplied = AtomicUsize::new(0);
        let overlaps = AtomicUsize::new(0);
        let groups = AtomicUsize::new(0);
        on_threads(16, || {
            for _ in 0..200 {
                let stage = |_: &[Arc<Writer<()>>]| {
                    if unapplied.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::Relaxed);
                    }
                    groups.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                };
                let apply = |()| {
                    thread::yield_now();
                    unapplied.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                };
                let w = Writer::new(vec![WriteBatch::new()], false, false);
                q.submit(w, stage, Ok, apply).unwrap();
            }
        });
        assert_eq!(
            overlaps.load(Ordering::Relaxed),
            0,
            "a group staged before the one before it was applied"
        );
        assert!(
            groups.load(Ordering::Relaxed) < 16 * 200,
            "writers shared groups"
        );
    }

    #[test]
    fn sync_writers_never_join_a_non_sync_leader() {
        let q = CommitQueue::<()>::new(1 << 20);
        let w = |sync| Arc::new(Writer::new(vec![], sync, false));
        let mut writers: VecDeque<_> = [w(false), w(false), w(true), w(false)].into();
        assert_eq!(q.take_group(&writers).len(), 2);
        writers[0] = w(true);
        assert_eq!(
            q.take_group(&writers).len(),
            4,
            "non-sync writers may ride a sync group"
        );
    }
}
