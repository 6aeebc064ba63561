//! The queue-shaped path of the write buffer: append, consume, delete ranges.

use std::path::Path;

use shardgate::lsm::{Db, Options};

use crate::util::{NOSYNC, collect, tiny};

fn table_bytes_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn a_memtable_deleted_before_it_filled_writes_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for i in 0..1000u32 {
        db.put(format!("q{i:06}"), [1u8; 100], NOSYNC).unwrap();
    }
    for i in 0..500u32 {
        db.delete(format!("q{i:06}"), NOSYNC).unwrap();
    }
    db.delete_range("q000500", "q001000", NOSYNC).unwrap();
    db.flush().unwrap();
    let s = db.stats();
    assert_eq!(s.flushes, 1);
    assert_eq!(s.table_bytes, 0, "no table written");
    assert_eq!(db.level_counts().iter().sum::<usize>(), 0);
    assert!(collect(&db).is_empty());
}

#[test]
fn range_deletes_drop_whole_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for i in 0..1000u32 {
        db.put(format!("q{i:06}"), [1u8; 100], NOSYNC).unwrap();
    }
    db.flush().unwrap();
    assert!(table_bytes_on_disk(dir.path()) > 100_000);
    db.delete_range("q", "r", NOSYNC).unwrap();
    db.flush().unwrap();
    assert_eq!(
        db.level_counts().iter().sum::<usize>(),
        0,
        "table dropped, tombstone not needed"
    );
    assert_eq!(table_bytes_on_disk(dir.path()), 0);
    assert!(collect(&db).is_empty());
}

#[test]
fn a_consumed_queue_leaves_little_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), tiny()).unwrap();
    let mut head = 0u32;
    for round in 0..60u32 {
        for i in 0..100u32 {
            db.put(format!("q{:08}", round * 100 + i), [9u8; 64], NOSYNC)
                .unwrap();
        }
        // Consume everything but the last 50 entries.
        let upto = round * 100 + 50;
        db.delete_range(format!("q{head:08}"), format!("q{upto:08}"), NOSYNC)
            .unwrap();
        head = upto;
    }
    db.flush().unwrap();
    db.wait_idle().unwrap();
    let left = collect(&db);
    assert_eq!(left.len(), 50);
    assert_eq!(left[0].0, format!("q{head:08}").into_bytes());
    let written = 60 * 100 * 64;
    assert!(
        table_bytes_on_disk(dir.path()) < written / 4,
        "{} bytes of tables",
        table_bytes_on_disk(dir.path())
    );
}
