//! The public API end to end: writes, reads, snapshots, scans, reopen.

use shardgate::lsm::{Db, Error, Options, WriteBatch};

use crate::util::{NOSYNC, SYNC, block_on, collect, tiny};

#[test]
fn put_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"1", SYNC).unwrap();
    db.put(b"b", b"2", NOSYNC).unwrap();
    db.delete(b"a", NOSYNC).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
    db.flush().unwrap();
    assert_eq!(db.level_counts()[0], 1);
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(collect(&db), vec![(b"b".to_vec(), b"2".to_vec())]);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), Options::default()),
        Err(Error::Locked(_))
    ));
}

#[test]
fn snapshots_stay_consistent_across_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), tiny()).unwrap();
    for i in 0..500u32 {
        db.put(format!("k{i:04}"), format!("old{i}"), NOSYNC)
            .unwrap();
    }
    let snap = db.snapshot();
    for i in 0..500u32 {
        if i % 3 == 0 {
            db.delete(format!("k{i:04}"), NOSYNC).unwrap();
        } else {
            db.put(format!("k{i:04}"), format!("new{i}"), NOSYNC)
                .unwrap();
        }
    }
    db.compact().unwrap();
    assert_eq!(snap.get(b"k0003").unwrap(), Some(b"old3".to_vec()));
    let old: Vec<_> = snap
        .scan(&b"k0100"[..]..&b"k0105"[..])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(old.len(), 5);
    assert!(old.iter().all(|(_, v)| v.starts_with(b"old")));
    assert_eq!(db.get(b"k0003").unwrap(), None);
    assert_eq!(db.get(b"k0004").unwrap(), Some(b"new4".to_vec()));
    assert_eq!(collect(&db).len(), 500 - 167);
}

#[test]
fn scans_honour_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), tiny()).unwrap();
    for k in ["a", "b", "c", "d"] {
        db.put(k, k, NOSYNC).unwrap();
    }
    let keys = |it: shardgate::lsm::DbIter| {
        it.map(|r| String::from_utf8(r.unwrap().0).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(db.scan("b".."d").unwrap()), ["b", "c"]);
    assert_eq!(keys(db.scan("b"..="d").unwrap()), ["b", "c", "d"]);
    assert_eq!(keys(db.scan(.."b").unwrap()), ["a"]);
    use std::ops::Bound::{Excluded, Unbounded};
    assert_eq!(
        keys(db.scan::<&str>((Excluded("b"), Unbounded)).unwrap()),
        ["c", "d"]
    );
}

#[test]
fn batches_and_async_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut b = WriteBatch::new();
    b.put("x", "1").put("y", "2").delete("x");
    db.write(b, SYNC).unwrap();
    assert_eq!(db.get("x").unwrap(), None);
    let futures: Vec<_> = (0..50)
        .map(|i| {
            let mut b = WriteBatch::new();
            b.put(format!("async{i:02}"), "v");
            db.write_async(b, SYNC)
        })
        .collect();
    for f in futures {
        block_on(f).unwrap();
    }
    assert_eq!(db.scan("async".."asynd").unwrap().count(), 50);
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get("async49").unwrap(), Some(b"v".to_vec()));
}

/// Async writes queued at once are committed in groups of at most max_group_bytes (each group is one
/// WAL record, which must stay readable); a request that would overflow a group starts the next one,
/// and none is lost.
#[test]
fn async_groups_stay_within_max_group_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_group_bytes: 1024,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let value = vec![7u8; 600];
    let futures: Vec<_> = (0..50)
        .map(|i| {
            let mut b = WriteBatch::new();
            b.put(format!("g{i:02}"), &value);
            db.write_async(b, SYNC)
        })
        .collect();
    for f in futures {
        block_on(f).unwrap();
    }
    assert_eq!(db.scan("g".."h").unwrap().count(), 50);
    // At most one 600-byte batch fits in 1 KiB: one fsync per write.
    assert_eq!(db.stats().wal_syncs, 50);
}

#[test]
fn range_deletes_through_flushes_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), tiny()).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i:05}"), [7u8; 40], NOSYNC).unwrap();
    }
    db.flush().unwrap();
    db.delete_range("k00100", "k01900", NOSYNC).unwrap();
    db.put("k00500", "back", NOSYNC).unwrap();
    let check = |db: &Db| {
        assert_eq!(db.get("k00099").unwrap().map(|v| v.len()), Some(40));
        assert_eq!(db.get("k00100").unwrap(), None);
        assert_eq!(db.get("k00500").unwrap(), Some(b"back".to_vec()));
        assert_eq!(db.get("k01899").unwrap(), None);
        assert!(db.get("k01900").unwrap().is_some());
        assert_eq!(collect(db).len(), 100 + 100 + 1);
    };
    check(&db);
    db.flush().unwrap();
    check(&db);
    db.compact().unwrap();
    check(&db);
    db.close().unwrap();
    let db = Db::open(dir.path(), tiny()).unwrap();
    check(&db);
}

#[test]
fn handles_can_cross_threads_and_bad_options_are_refused() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Db>();
    send_sync::<shardgate::lsm::Snapshot>();
    send::<shardgate::lsm::DbIter>();
    send::<shardgate::lsm::WriteFuture>();
    let dir = tempfile::tempdir().unwrap();
    let bad = Options {
        l0_slowdown_trigger: 30,
        l0_stop_trigger: 10,
        ..Options::default()
    };
    assert!(matches!(
        Db::open(dir.path(), bad),
        Err(Error::InvalidArgument(_))
    ));
    // A commit group is one WAL record, which must stay readable (at most 256 MiB).
    let huge_groups = Options {
        max_group_bytes: (128 << 20) + 1,
        ..Options::default()
    };
    assert!(matches!(
        Db::open(dir.path(), huge_groups),
        Err(Error::InvalidArgument(_))
    ));
}

fn tables_on_disk(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sst"))
        .collect();
    v.sort();
    v
}

#[test]
fn compacted_tables_are_deleted_only_after_their_last_reader() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for round in 0..3u32 {
        for i in 0..100u32 {
            db.put(format!("k{i:03}"), format!("r{round}"), NOSYNC)
                .unwrap();
        }
        db.flush().unwrap();
    }
    let before = tables_on_disk(dir.path());
    assert_eq!(before.len(), 3);
    let snap = db.snapshot();
    let mut it = db.scan::<&str>(..).unwrap();
    db.compact().unwrap();
    assert!(
        before
            .iter()
            .all(|t| tables_on_disk(dir.path()).contains(t)),
        "readers still hold them"
    );
    assert_eq!(
        it.next().unwrap().unwrap(),
        (b"k000".to_vec(), b"r2".to_vec())
    );
    assert_eq!(snap.get("k050").unwrap(), Some(b"r2".to_vec()));
    drop(it);
    drop(snap);
    let after = tables_on_disk(dir.path());
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(!before.contains(&after[0]));
}

#[test]
fn orphans_from_an_unfinished_job_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put("a", "1", SYNC).unwrap();
    db.close().unwrap();
    // A table written by a flush that crashed before its manifest edit.
    std::fs::write(dir.path().join("999999.sst"), b"half a table").unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(!dir.path().join("999999.sst").exists());
    assert_eq!(db.get("a").unwrap(), Some(b"1".to_vec()));
}
