//! Helpers shared by the engine's integration tests.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use shardgate::lsm::{Db, Options, WriteOptions};

pub const SYNC: WriteOptions = WriteOptions { sync: true };
pub const NOSYNC: WriteOptions = WriteOptions { sync: false };

/// Options that make memtables flush and levels compact after a few KiB.
pub fn tiny() -> Options {
    Options {
        memtable_size: 4 << 10,
        table_size: 8 << 10,
        block_size: 512,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 6,
        l0_stop_trigger: 10,
        level1_size: 32 << 10,
        level_size_ratio: 4,
        block_cache_size: 64 << 10,
        ..Options::default()
    }
}

pub fn collect(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.scan::<&[u8]>(..).unwrap().map(Result::unwrap).collect()
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread (no runtime needed).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
