//! A model test: random steps against the engine and a `BTreeMap`, compared
//! after every read, across flushes, compactions and reopens.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use shardgate::lsm::{Db, Snapshot, WriteBatch};

use shardgate::lsm::Options;

use crate::util::{NOSYNC, SYNC, tiny};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Step {
    Put(u8, Vec<u8>),
    Delete(u8),
    DeleteRange(u8, u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Scan(u8, u8),
    Flush,
    Compact,
    Reopen,
    TakeSnapshot,
    CheckSnapshot,
}

/// Keys share prefixes of varying length, to exercise prefix compression; one is the empty key,
/// which sorts before every other (compaction once skipped it).
fn key(k: u8) -> Vec<u8> {
    let k = k % 41;
    if k == 40 {
        return Vec::new();
    }
    format!("{}{k:02}", "ab".repeat(usize::from(k % 4))).into_bytes()
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => prop::collection::vec(any::<u8>(), 0..24), 1 => prop::collection::vec(any::<u8>(), 200..400)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => (any::<u8>(), value()).prop_map(|(k, v)| Step::Put(k, v)),
        8 => any::<u8>().prop_map(Step::Delete),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Step::DeleteRange(a, b)),
        6 => prop::collection::vec((any::<u8>(), prop::option::of(value())), 1..8).prop_map(Step::Batch),
        10 => any::<u8>().prop_map(Step::Get),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Step::Scan(a, b)),
        2 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
        2 => Just(Step::TakeSnapshot),
        2 => Just(Step::CheckSnapshot),
    ]
}

fn scan(db_or_snap: &Snapshot, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    db_or_snap
        .scan(lo..hi)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn model_range(m: &Model, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    if lo >= hi {
        return Vec::new();
    }
    m.range::<[u8], _>((Bound::Included(lo), Bound::Excluded(hi)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Even smaller than `tiny`: a few hundred bytes already spread over levels 1-3.
fn model_options() -> Options {
    Options {
        memtable_size: 2 << 10,
        table_size: 1 << 10,
        level1_size: 2 << 10,
        level_size_ratio: 2,
        ..tiny()
    }
}

fn run(steps: Vec<Step>) {
    let dir = scratch_dir();
    let mut db = Some(Db::open(dir.path(), model_options()).unwrap());
    let mut model = Model::new();
    let mut snap: Option<(Snapshot, Model)> = None;
    for (i, s) in steps.into_iter().enumerate() {
        let d = db.as_ref().unwrap();
        let opts = if i % 7 == 0 { SYNC } else { NOSYNC };
        match s {
            Step::Put(k, v) => {
                d.put(key(k), &v, opts).unwrap();
                model.insert(key(k), v);
            }
            Step::Delete(k) => {
                d.delete(key(k), opts).unwrap();
                model.remove(&key(k));
            }
            Step::DeleteRange(a, b) => {
                let (lo, hi) = (key(a), key(b));
                d.delete_range(&lo, &hi, opts).unwrap();
                for (k, _) in model_range(&model, &lo, &hi) {
                    model.remove(&k);
                }
            }
            Step::Batch(ops) => {
                let mut b = WriteBatch::new();
                for (k, v) in ops {
                    match v {
                        Some(v) => {
                            b.put(key(k), &v);
                            model.insert(key(k), v);
                        }
                        None => {
                            b.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                d.write(b, opts).unwrap();
            }
            Step::Get(k) => assert_eq!(
                d.get(key(k)).unwrap(),
                model.get(&key(k)).cloned(),
                "get {:?}",
                key(k)
            ),
            Step::Scan(a, b) => {
                let (lo, hi) = (key(a), key(b));
                assert_eq!(scan(&d.snapshot(), &lo, &hi), model_range(&model, &lo, &hi));
            }
            Step::Flush => d.flush().unwrap(),
            Step::Compact => d.compact().unwrap(),
            Step::Reopen => {
                snap = None;
                db.take().unwrap().close().unwrap();
                db = Some(Db::open(dir.path(), model_options()).unwrap());
            }
            Step::TakeSnapshot => snap = Some((d.snapshot(), model.clone())),
            Step::CheckSnapshot => {
                if let Some((s, m)) = &snap {
                    assert_eq!(
                        scan(s, b"", b"\xff"),
                        model_range(m, b"", b"\xff"),
                        "snapshot"
                    );
                }
            }
        }
    }
    let d = db.as_ref().unwrap();
    assert_eq!(
        scan(&d.snapshot(), b"", b"\xff"),
        model_range(&model, b"", b"\xff"),
        "final"
    );
}

/// The model checks logic, not durability: use memory-backed storage when the
/// machine has it, so thousands of cases do not wait on fsyncs.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap(steps in prop::collection::vec(step(), 1..80)) {
        run(steps);
    }
}
