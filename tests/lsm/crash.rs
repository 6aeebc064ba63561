//! Crash safety: a child process doing sync writes is killed with SIGKILL at
//! random moments; after each reopen every acknowledged write is there, no
//! batch is half there, and what came back is a prefix of what was written.
//!
//! Like the write buffer it stands for, each writer consumes its own queue:
//! every hundredth batch also range-deletes all but the last hundred entries,
//! which keeps the data small and puts range tombstones under the same test.
//!
//! The child is this test binary itself, re-executed with `CHILD_ENV` set so
//! that `child_writer` runs the writer loop instead of returning at once.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use shardgate::lsm::{Db, Options, WriteBatch};

use crate::util::{SYNC, tiny};

const CHILD_ENV: &str = "SHARDGATE_LSM_CRASH_CHILD";
const THREADS: usize = 4;
const ROUNDS: usize = 200;

fn options() -> Options {
    Options {
        memtable_size: 32 << 10,
        table_size: 32 << 10,
        ..tiny()
    }
}

/// First index still present after batch `i`: its trims delete below `i - 100`.
fn low_water(i: u64) -> u64 {
    let last_trim = i / 100 * 100;
    if last_trim >= 200 { last_trim - 100 } else { 0 }
}

fn key(t: usize, i: u64, half: char) -> String {
    format!("t{t}/{i:010}/{half}")
}

fn value(t: usize, i: u64) -> Vec<u8> {
    let mut v = format!("{t}:{i}:").into_bytes();
    v.resize(120, b'.');
    v
}

/// The writer: each thread writes two-key batches with sync=true, in order,
/// and prints "ack <thread> <index>" once each write has returned.
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, starts) = spec.split_once('|').expect("spec is dir|starts");
    let starts: Vec<u64> = starts
        .split(',')
        .map(|s| s.parse().expect("start index"))
        .collect();
    let db = Arc::new(Db::open(dir, options()).expect("child open"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, start) = (db.clone(), starts[t]);
            std::thread::spawn(move || {
                for i in start.. {
                    let mut b = WriteBatch::new();
                    b.put(key(t, i, 'a'), value(t, i))
                        .put(key(t, i, 'b'), value(t, i));
                    if i % 100 == 0 && i >= 200 {
                        b.delete_range(format!("t{t}/"), key(t, i - 100, 'a'));
                    }
                    db.write(b, SYNC).expect("child write");
                    println!("ack {t} {i}");
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

/// Next index per thread after checking what survived: a contiguous run of
/// whole batches from the low-water mark of the last one, covering every ack.
fn verify(db: &Db, acked: &[Option<u64>]) -> Vec<u64> {
    (0..THREADS)
        .map(|t| {
            let prefix = format!("t{t}/");
            let end = format!("t{t}0");
            let rows: Vec<_> = db
                .scan(prefix.as_str()..end.as_str())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(rows.len() % 2, 0, "thread {t}: a batch is half there");
            let index = |k: &[u8]| -> u64 {
                std::str::from_utf8(&k[prefix.len()..prefix.len() + 10])
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            let Some(last) = rows.last().map(|r| index(&r.0)) else {
                assert_eq!(acked[t], None, "thread {t}: acknowledged writes lost");
                return 0;
            };
            let first = low_water(last);
            assert_eq!(
                rows.len() as u64,
                2 * (last - first + 1),
                "thread {t}: holes or stale entries below {last}"
            );
            for (n, pair) in rows.chunks(2).enumerate() {
                let i = first + n as u64;
                assert_eq!(
                    pair[0].0,
                    key(t, i, 'a').into_bytes(),
                    "thread {t}: hole before {i}"
                );
                assert_eq!(
                    pair[1].0,
                    key(t, i, 'b').into_bytes(),
                    "thread {t}: batch {i} half there"
                );
                assert_eq!((&pair[0].1, &pair[1].1), (&value(t, i), &value(t, i)));
            }
            if let Some(a) = acked[t] {
                assert!(
                    last >= a,
                    "thread {t}: acknowledged write {a} lost ({last} survived)"
                );
            }
            last + 1
        })
        .collect()
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut starts = vec![0u64; THREADS];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut killed_after_acks = 0;
    for round in 0..ROUNDS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let spec = format!(
            "{}|{}",
            dir.path().display(),
            starts
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (first_ack, got_first) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = vec![None::<u64>; THREADS];
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut parts = line.split(' ');
                if parts.next() != Some("ack") {
                    continue;
                }
                let (Some(t), Some(i)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let (t, i): (usize, u64) = (t.parse().unwrap(), i.parse().unwrap());
                acked[t] = acked[t].max(Some(i));
                let _ = first_ack.send(());
            }
            acked
        });
        // Most rounds kill mid-write; every tenth kills at a random point of startup or recovery.
        if round % 10 != 0 && got_first.recv_timeout(Duration::from_secs(30)).is_ok() {
            killed_after_acks += 1;
        }
        std::thread::sleep(Duration::from_micros(rng % 40_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        let db = Db::open(dir.path(), options()).unwrap();
        starts = verify(&db, &acked);
        db.close().unwrap();
    }
    assert!(
        killed_after_acks > ROUNDS / 2,
        "the child wrote in most rounds"
    );
    assert!(
        starts.iter().all(|&n| n > 300),
        "the writers got past several trims: {starts:?}"
    );
}
