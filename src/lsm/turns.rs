//! Commit groups make their writes visible in sequence order, each waiting
//! for its turn: until every earlier group has published.
//!
//! A publish wakes only the waiters for what it published; a failed write
//! poisons the turns, which wakes them all to return an error, since no later
//! turn comes. A waiter woken otherwise, as a parked thread may be, waits
//! again. With one condvar and `notify_all`, every publish woke every waiter:
//! 64 non-sync writers, each group applied concurrently then, wrote 3,500
//! records a second instead of 100,000s.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};

use super::error::{Error, Result};

/// The highest published sequence, and the threads waiting for one to be.
pub(crate) struct Turns {
    /// Every write up to here is durable (when asked) and applied; reads see
    /// up to here. Only a publish moves it.
    visible: AtomicU64,
    /// A write failed (the engine is poisoned): no later turn comes.
    poisoned: AtomicBool,
    waiting: Mutex<Vec<(u64, Thread)>>,
    /// Threads a publish woke (a test checks that only the due ones were).
    woken: AtomicUsize,
}

/// Held from the end of a wait until the caller has published (or gave up its turn).
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    waiting: MutexGuard<'a, Vec<(u64, Thread)>>,
}

impl Turns {
    /// Turns after `visible`, the last sequence recovered.
    pub(crate) fn new(visible: u64) -> Self {
        Turns {
            visible: AtomicU64::new(visible),
            poisoned: AtomicBool::new(false),
            waiting: Mutex::default(),
            woken: AtomicUsize::new(0),
        }
    }

    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Waits until every sequence up to `seq` is visible, or the turns are poisoned.
    pub(crate) fn wait(&self, seq: u64) -> Result<Turn<'_>> {
        let mut waiting = self.lock();
        while self.visible() < seq {
            if self.poisoned() {
                return Err(Error::Poisoned("an earlier write failed".into()));
            }
            let me = thread::current();
            waiting.push((seq, me.clone()));
            drop(waiting);
            thread::park();
            waiting = self.lock();
            // Gone if a publisher woke it; still there after a spurious wakeup.
            waiting.retain(|(_, t)| t.id() != me.id());
        }
        Ok(Turn {
            turns: self,
            waiting,
        })
    }

    /// A write failed: every waiter, and every later one, returns an error.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        for (_, t) in self.lock().drain(..) {
            t.unpark();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Thread)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Turn<'_> {
    /// Makes sequences up to `seq` visible and wakes the waiters for them,
    /// once the lock is released (which each of them takes on waking).
    pub(crate) fn publish(self, seq: u64) {
        let Turn { turns, mut waiting } = self;
        turns.visible.store(seq, Ordering::Release);
        if waiting.is_empty() {
            return;
        }
        let mut due = Vec::new();
        waiting.retain(|(s, t)| {
            if *s <= seq {
                due.push(t.clone());
            }
            *s > seq
        });
        drop(waiting);
        turns.woken.fetch_add(due.len(), Ordering::Relaxed);
        for t in due {
            t.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups publishing out of order still publish in order, each once its
    /// predecessor has.
    #[test]
    fn groups_publish_in_sequence_order() {
        let turns = Turns::new(0);
        let order = Mutex::new(Vec::new());
        thread::scope(|s| {
            for seq in (1..=32u64).rev() {
                let (turns, order) = (&turns, &order);
                s.spawn(move || {
                    let turn = turns.wait(seq - 1).unwrap();
                    order.lock().unwrap().push(seq);
                    turn.publish(seq);
                });
            }
        });
        assert_eq!(*order.lock().unwrap(), (1..=32).collect::<Vec<_>>());
        assert_eq!(turns.visible(), 32);
    }

    /// Publishing wakes the waiters for what it published, and only them.
    #[test]
    fn a_publish_wakes_only_the_waiters_it_is_due_to() {
        let turns = &Turns::new(0);
        // Checked once every thread is done: a failed assertion inside the
        // scope would wait forever for the waiter for 10.
        let (woken, left) = thread::scope(|s| {
            let waiter = |seq| s.spawn(move || turns.wait(seq).map(drop));
            let (five, ten) = (waiter(5), waiter(10));
            while turns.lock().len() < 2 {
                thread::yield_now();
            }
            turns.wait(0).unwrap().publish(5);
            five.join().unwrap().unwrap();
            let woken = turns.woken.load(Ordering::Relaxed);
            let left: Vec<u64> = turns.lock().iter().map(|(s, _)| *s).collect();
            turns.wait(5).unwrap().publish(10);
            ten.join().unwrap().unwrap();
            (woken, left)
        });
        assert_eq!(woken, 1, "only the waiter for 5 woken");
        assert_eq!(left, [10], "the waiter for 10 still waits");
    }

    #[test]
    fn a_poisoned_engine_wakes_every_waiter_with_its_error() {
        let turns = &Turns::new(0);
        let results: Vec<_> = thread::scope(|s| {
            let waiters: Vec<_> = (1..=4u64)
                .map(|seq| s.spawn(move || turns.wait(seq).map(drop)))
                .collect();
            while turns.lock().len() < 4 {
                thread::yield_now();
            }
            turns.poison();
            waiters.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for r in results {
            assert!(matches!(r, Err(Error::Poisoned(_))));
        }
        assert!(
            matches!(turns.wait(5), Err(Error::Poisoned(_))),
            "a later waiter too"
        );
    }
}
