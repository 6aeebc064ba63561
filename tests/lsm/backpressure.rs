//! Backpressure: a writer outrunning flush and compaction is slowed, then
//! stalled, so level 0 and the frozen memtables stay bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use shardgate::lsm::{Db, Options};

use crate::util::{NOSYNC, tiny};

#[test]
fn level_zero_and_frozen_memtables_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        l0_slowdown_trigger: 3,
        l0_stop_trigger: 5,
        max_immutable_memtables: 1,
        ..tiny()
    };
    let bound = opts.l0_stop_trigger + opts.max_immutable_memtables;
    let db = Arc::new(Db::open(dir.path(), opts).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (db, stop, worst) = (db.clone(), stop.clone(), worst.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                worst.fetch_max(db.level_counts()[0], Ordering::Relaxed);
                std::thread::yield_now();
            }
        })
    };
    for i in 0..20_000u32 {
        db.put(
            format!("{:08}", i.wrapping_mul(2_654_435_761) % 1_000_000),
            [5u8; 64],
            NOSYNC,
        )
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        worst.load(Ordering::Relaxed) <= bound,
        "level 0 reached {}",
        worst.load(Ordering::Relaxed)
    );
    db.wait_idle().unwrap();
    assert_eq!(db.scan::<&[u8]>(..).unwrap().count(), 20_000);
}
