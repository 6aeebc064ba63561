//! Damaged files: a torn WAL tail is cut off; a flipped bit in the middle of
//! the WAL, a table or the manifest is refused with the file and offset named.

use std::path::{Path, PathBuf};

use shardgate::lsm::{Db, Error, Options};

use crate::util::{SYNC, collect};

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Small memtables keep the preallocated WAL segments small too.
fn small() -> Options {
    Options {
        memtable_size: 1 << 20,
        ..Options::default()
    }
}

fn populated(n: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for i in 0..n {
        db.put(format!("k{i:04}"), format!("v{i}"), SYNC).unwrap();
    }
    db.close().unwrap();
    dir
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

/// Each record here: 17-byte header + 16-byte batch header + 1 + 1 + 5 + 1 + value.
fn record_len(i: u32) -> u64 {
    17 + 16 + 8 + format!("v{i}").len() as u64
}

#[test]
fn torn_wal_tails_are_truncated_to_the_last_good_record() {
    let end: u64 = (0..50).map(record_len).sum();
    let good = end - record_len(49);
    for cut in [1u64, 5, 17, 20, 30] {
        let dir = populated(50);
        let wal = files(dir.path(), "wal").remove(0);
        // The segment is preallocated: a torn write leaves zeros where the
        // end of the last record should be.
        let mut bytes = std::fs::read(&wal).unwrap();
        bytes[(end - cut) as usize..end as usize].fill(0);
        std::fs::write(&wal, bytes).unwrap();
        let db = Db::open(dir.path(), small()).unwrap();
        let rows = collect(&db);
        assert_eq!(rows.len(), 49, "cut {cut}");
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            good,
            "tail truncated"
        );
        db.put("after", "x", SYNC).unwrap();
        drop(db);
        let db = Db::open(dir.path(), small()).unwrap();
        assert_eq!(
            collect(&db).len(),
            50,
            "writes after recovery survive the next open"
        );
    }
}

#[test]
fn a_bit_flip_mid_wal_refuses_to_open_unless_salvaging() {
    let dir = populated(50);
    let wal = files(dir.path(), "wal").remove(0);
    let offset: u64 = (0..20).map(record_len).sum();
    flip(&wal, offset + 30);
    match Db::open(dir.path(), small()) {
        Err(Error::Corruption {
            path, offset: at, ..
        }) => {
            assert_eq!(path, wal);
            assert_eq!(at, offset);
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    let db = Db::open(
        dir.path(),
        Options {
            salvage_wal: true,
            ..small()
        },
    )
    .unwrap();
    let rows = collect(&db);
    assert_eq!(rows.len(), 20, "the records before the damage");
    assert_eq!(rows.last().unwrap().0, b"k0019");
}

#[test]
fn a_bit_flip_in_a_table_block_is_reported_with_file_and_offset() {
    let dir = populated(200);
    let db = Db::open(dir.path(), small()).unwrap();
    db.flush().unwrap();
    drop(db);
    let sst = files(dir.path(), "sst").remove(0);
    flip(&sst, 100);
    let db = Db::open(
        dir.path(),
        Options {
            block_cache_size: 0,
            ..small()
        },
    )
    .unwrap();
    match db.get("k0000") {
        Err(Error::Corruption { path, offset, .. }) => assert_eq!((path, offset), (sst.clone(), 0)),
        other => panic!("expected corruption, got {other:?}"),
    }
    let scanned: Vec<_> = db.scan::<&[u8]>(..).unwrap().collect();
    assert!(matches!(
        scanned.last(),
        Some(Err(Error::Corruption { .. }))
    ));
    drop(db);
    let len = std::fs::metadata(&sst).unwrap().len();
    flip(&sst, len - 10);
    match Db::open(dir.path(), small()) {
        Err(Error::Corruption { path, .. }) => assert_eq!(path, sst),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_bit_flip_in_the_manifest_refuses_to_open() {
    let dir = populated(10);
    let manifest = dir.path().join("MANIFEST");
    flip(&manifest, 20);
    match Db::open(dir.path(), small()) {
        Err(Error::Corruption { path, offset, .. }) => assert_eq!((path, offset), (manifest, 0)),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_truncated_table_refuses_to_open() {
    let dir = populated(100);
    let db = Db::open(dir.path(), small()).unwrap();
    db.flush().unwrap();
    drop(db);
    let sst = files(dir.path(), "sst").remove(0);
    let len = std::fs::metadata(&sst).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sst)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    match Db::open(dir.path(), small()) {
        Err(Error::Corruption { path, offset, .. }) => {
            assert_eq!((path, offset), (sst, len - 7 - 64))
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}
