//! Group commit: concurrent sync writers share fsyncs; a lone writer syncs alone.

use std::sync::Arc;

use shardgate::lsm::{Db, Options, WriteOptions};

use crate::util::SYNC;

#[test]
fn a_lone_writer_gets_one_fsync_per_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for i in 0..20u32 {
        db.put(i.to_be_bytes(), b"v", SYNC).unwrap();
    }
    let s = db.stats();
    assert_eq!((s.sync_writes, s.wal_syncs), (20, 20));
}

#[test]
fn concurrent_sync_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let threads: Vec<_> = (0..16u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..40u32 {
                    db.put(format!("{t}-{i}"), [0u8; 256], SYNC).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = db.stats();
    assert_eq!(s.sync_writes, 16 * 40);
    assert!(
        s.wal_syncs < s.sync_writes,
        "{} fsyncs for {} writes",
        s.wal_syncs,
        s.sync_writes
    );
    assert_eq!(db.scan::<&[u8]>(..).unwrap().count(), 16 * 40);
}

#[test]
fn non_sync_writes_cost_no_fsync_and_survive_close() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for i in 0..1000u32 {
        db.put(i.to_be_bytes(), b"v", WriteOptions::default())
            .unwrap();
    }
    assert_eq!(db.stats().wal_syncs, 0);
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.scan::<&[u8]>(..).unwrap().count(), 1000);
}
