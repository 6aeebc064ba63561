//! The measured workloads.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engines::{open_fjall, open_ours, ours_options, Engine, SyncCounts};

pub struct Row {
    pub name: String,
    pub ours: Option<f64>,
    pub fjall: Option<f64>,
    pub raw: Option<f64>,
}

fn row(name: impl Into<String>, ours: Option<f64>, fjall: Option<f64>, raw: Option<f64>) -> Row {
    Row { name: name.into(), ours, fjall, raw }
}

fn fresh(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Incompressible bytes to slice values from.
fn noise() -> Vec<u8> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..1 << 20).map(|_| r.next() as u8).collect()
}

/// Bytes this process has passed to write(2) so far.
fn wchar() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("wchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Runs `threads` writers (sync or not) for `secs`; returns (writes/s, writes).
fn writers_run(e: Arc<dyn Engine>, threads: usize, sync: bool, secs: f64) -> (f64, u64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let value = [t as u8; 256];
                let mut n = 0u64;
                while Instant::now() < deadline {
                    e.put(format!("d{t:03}-{n:011}").as_bytes(), &value, sync);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("writer")).sum();
    (total as f64 / start.elapsed().as_secs_f64(), total)
}

/// The floor: append a record-sized buffer and fdatasync, in a loop.
fn raw_loop(dir: &Path, secs: f64) -> f64 {
    let path = dir.join("raw.log");
    let mut f = OpenOptions::new().create(true).append(true).open(&path).expect("raw file");
    let buf = [7u8; 256 + 16 + 17 + 16];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f.write_all(&buf).expect("raw write");
        f.sync_data().expect("raw fdatasync");
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// `writers` concurrent async sync writes driven by one thread, as a tokio
/// caller would issue them; returns writes/s.
fn durable_async(db: &shardgate::lsm::Db, writers: usize, secs: f64) -> f64 {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let value = [9u8; 256];
    let mut n = 0u64;
    let submit = |n: &mut u64| {
        let mut b = shardgate::lsm::WriteBatch::new();
        b.put(format!("a-{n:012}"), value);
        *n += 1;
        Box::pin(db.write_async(b, shardgate::lsm::WriteOptions { sync: true }))
    };
    let mut pending: Vec<_> = (0..writers).map(|_| submit(&mut n)).collect();
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let mut progressed = false;
        for f in pending.iter_mut() {
            if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
                r.expect("async write");
                done += 1;
                *f = submit(&mut n);
                progressed = true;
            }
        }
        if !progressed {
            std::thread::park();
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// Runs `f` for ours and for fjall, alternating, `ROUNDS` times each, and keeps
/// the best of each: the disk and CPUs are shared, so a single run can land in
/// someone else's burst of I/O.
const ROUNDS: usize = 2;

fn best<T: Copy>(mut run: impl FnMut(bool) -> (f64, T)) -> ((f64, T), (f64, T)) {
    let (mut ours, mut fjall) = (run(true), run(false));
    for _ in 1..ROUNDS {
        let o = run(true);
        if o.0 > ours.0 {
            ours = o;
        }
        let f = run(false);
        if f.0 > fjall.0 {
            fjall = f;
        }
    }
    (ours, fjall)
}

fn open_durable(base: &Path, ours: bool) -> Arc<dyn Engine> {
    open_with_wal_buffer(base, ours, 0)
}

/// fjall keeps non-sync journal writes in an 8 kB `BufWriter`
/// (`JOURNAL_BUFFER_BYTES`) until it fills; ours, given the same buffer for
/// its WAL, loses no more than fjall would if the process dies.
const FJALL_JOURNAL_BUFFER: usize = 8 << 10;

/// Ours with `wal_buffer` bytes of WAL buffered in memory (fjall as it comes).
fn open_with_wal_buffer(base: &Path, ours: bool, wal_buffer: usize) -> Arc<dyn Engine> {
    if ours {
        let opts = shardgate::lsm::Options { wal_buffer_size: wal_buffer, ..ours_options() };
        Arc::new(open_ours(&fresh(base, "ours-durable"), opts))
    } else {
        Arc::new(open_fjall(&fresh(base, "fjall-durable"), 64 << 20))
    }
}

pub fn durable(base: &Path, secs: f64) -> Vec<Row> {
    let raw = (0..ROUNDS).map(|_| raw_loop(&fresh(base, "raw"), secs)).fold(0.0, f64::max);
    eprintln!("raw write+fdatasync: {raw:.0}/s");
    let mut rows = Vec::new();
    // BENCH_WRITERS: the writer thread counts to run (default "1,8,64").
    let writers: Vec<usize> = std::env::var("BENCH_WRITERS")
        .unwrap_or_else(|_| "1,8,64".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for threads in writers {
        let ((ours_rate, counts), (fj_rate, _)) = best(|ours| {
            let e = open_durable(base, ours);
            let (rate, _) = writers_run(e.clone(), threads, true, secs);
            (rate, e.sync_counts())
        });
        eprintln!("durable {threads} writers: ours {ours_rate:.0}/s ({}) fjall {fj_rate:.0}/s", sync_note(counts, secs));
        let raw_col = (threads == 1).then_some(raw);
        rows.push(row(format!("durable writes/s, 256 B, {threads} writers"), Some(ours_rate), Some(fj_rate), raw_col));
        rows.push(row(format!("  records per fsync, {threads} writers"), counts.map(|c| c.per_sync()), Some(1.0), None));
        if threads == 1 {
            let (a, b) = (1e6 / ours_rate, 1e6 / fj_rate);
            rows.push(row("  one writer's latency, us (raw = floor)", Some(a), Some(b), Some(1e6 / raw)));
            rows.push(row("  latency / raw loop latency", Some(a * raw / 1e6), Some(b * raw / 1e6), Some(1.0)));
        }
        if threads == 64 {
            let mut best_async = (0.0, None);
            for _ in 0..ROUNDS {
                let ours = open_ours(&fresh(base, "ours-async"), ours_options());
                let rate = durable_async(&ours.0, 64, secs);
                if rate > best_async.0 {
                    best_async = (rate, ours.sync_counts());
                }
            }
            eprintln!("durable 64 async writers: ours {:.0}/s ({})", best_async.0, sync_note(best_async.1, secs));
            rows.push(row("durable writes/s, 64 async writers on 1 thread (fjall: 64 threads)", Some(best_async.0), Some(fj_rate), None));
            rows.push(row("  records per fsync, 64 async writers", best_async.1.map(|c| c.per_sync()), Some(1.0), None));
            // The same 64 threads without sync, the WAL buffered as fjall's journal is: every write
            // still waits for its group to be applied.
            let ((ours_rate, _), (fj_rate, _)) =
                best(|ours| writers_run(open_with_wal_buffer(base, ours, FJALL_JOURNAL_BUFFER), 64, false, secs));
            eprintln!("non-durable 64 writers: ours {ours_rate:.0}/s fjall {fj_rate:.0}/s");
            rows.push(row("non-durable writes/s, 256 B, 64 writers, 8 kB WAL buffer", Some(ours_rate), Some(fj_rate), None));
        }
    }
    rows
}

/// How long our fdatasyncs took, and how much of the run one was under way:
/// the rest of the run is the commit path's own time between fsyncs.
fn sync_note(counts: Option<SyncCounts>, secs: f64) -> String {
    counts.map_or_else(String::new, |c| {
        let (avg, busy) = c.sync_time(secs);
        format!("fdatasync {avg:.0} us avg, in one {:.0}% of the run", busy * 100.0)
    })
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{i:016}").as_bytes());
    k
}

fn fill(e: &dyn Engine, n: u64, random: bool, noise: &[u8]) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        // An odd multiplier coprime with 10^k visits every key once, scattered.
        let k = if random { (i.wrapping_mul(2_654_435_761)) % n } else { i };
        let off = (i as usize * 7919) % (noise.len() - 100);
        e.put(&key(k), &noise[off..off + 100], false);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn reads(e: &dyn Engine, n: u64, missing: bool) -> f64 {
    let mut r = Rng(42);
    let count = n.min(500_000);
    let start = Instant::now();
    let mut found = 0u64;
    for _ in 0..count {
        let k = r.next() % n + if missing { n } else { 0 };
        found += u64::from(e.get(&key(k)));
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    assert_eq!(found, if missing { 0 } else { count }, "read results");
    rate
}

type Opener<'a> = &'a dyn Fn(&Path) -> Box<dyn Engine>;

fn fillseq(base: &Path, n: u64, open: Opener<'_>, name: &str, noise: &[u8]) -> f64 {
    let dir = fresh(base, &format!("{name}-fillseq"));
    let e = open(&dir);
    let rate = fill(e.as_ref(), n, false, noise);
    drop(e);
    let _ = std::fs::remove_dir_all(dir);
    rate
}

/// Fills a fresh database in random order; returns the rate, the write
/// amplification once background work is done, and the engine for reading.
fn fillrandom(base: &Path, n: u64, open: Opener<'_>, name: &str, noise: &[u8]) -> (f64, f64, Box<dyn Engine>) {
    let engine = open(&fresh(base, &format!("{name}-fillrandom")));
    let before = wchar();
    let rate = fill(engine.as_ref(), n, true, noise);
    engine.settle();
    let amp = (wchar() - before) as f64 / (n * 116) as f64;
    (rate, amp, engine)
}

pub fn fill_and_read(base: &Path, n: u64) -> Vec<Row> {
    let noise = noise();
    let ours: Opener<'_> = &|d| Box::new(open_ours(d, ours_options()));
    let fj: Opener<'_> = &|d| Box::new(open_fjall(d, 64 << 20));
    let open = |o: bool| if o { ours } else { fj };
    let ((seq_o, _), (seq_f, _)) = best(|o| (fillseq(base, n, open(o), if o { "ours" } else { "fjall" }, &noise), ()));
    let mut engines: [Option<Box<dyn Engine>>; 2] = [None, None];
    let mut amps = [0.0; 2];
    let ((rnd_o, _), (rnd_f, _)) = best(|o| {
        let slot = usize::from(!o);
        engines[slot] = None; // drop the previous round's database first
        let (rate, amp, e) = fillrandom(base, n, open(o), if o { "ours" } else { "fjall" }, &noise);
        engines[slot] = Some(e);
        amps[slot] = amp;
        (rate, ())
    });
    eprintln!("fillseq: ours {seq_o:.0}/s fjall {seq_f:.0}/s; fillrandom: ours {rnd_o:.0}/s fjall {rnd_f:.0}/s; amplification {:.2} / {:.2}", amps[0], amps[1]);
    let pick = |o: bool| engines[usize::from(!o)].as_deref().expect("filled engine");
    let ((read_o, _), (read_f, _)) = best(|o| (reads(pick(o), n, false), ()));
    let ((miss_o, _), (miss_f, _)) = best(|o| (reads(pick(o), n, true), ()));
    eprintln!("readrandom: ours {read_o:.0}/s fjall {read_f:.0}/s; missing: ours {miss_o:.0}/s fjall {miss_f:.0}/s");
    vec![
        row(format!("fillseq ops/s ({n} keys, 16 B + 100 B)"), Some(seq_o), Some(seq_f), None),
        row("fillrandom ops/s", Some(rnd_o), Some(rnd_f), None),
        row("readrandom ops/s (after fillrandom)", Some(read_o), Some(read_f), None),
        row("readrandom ops/s, missing keys", Some(miss_o), Some(miss_f), None),
        row("write amplification of fillrandom (bytes written / user bytes)", Some(amps[0]), Some(amps[1]), None),
    ]
}

/// Writes about `mb` MiB of WAL that no flush has absorbed, closes, and times the reopen.
pub fn recovery(base: &Path, mb: u64) -> Vec<Row> {
    let value = [3u8; 256];
    let writes = mb * (1 << 20) / (256 + 16 + 16 + 17 + 8);
    let dir = fresh(base, "ours-recovery");
    let wal_bytes = {
        let opts = shardgate::lsm::Options { memtable_size: 2 << 30, ..ours_options() };
        let e = open_ours(&dir, opts);
        for i in 0..writes {
            e.put(&key(i), &value, false);
        }
        let wal_bytes = e.0.stats().wal_bytes;
        e.0.close().expect("close");
        wal_bytes
    };
    let start = Instant::now();
    let e = open_ours(&dir, ours_options());
    let ours_secs = start.elapsed().as_secs_f64();
    assert!(e.get(&key(writes - 1)));
    drop(e);
    let dir = fresh(base, "fjall-recovery");
    {
        let e = open_fjall(&dir, 1 << 30);
        for i in 0..writes {
            e.put(&key(i), &value, false);
        }
        e.db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let start = Instant::now();
    let e = open_fjall(&dir, 1 << 30);
    let fj_secs = start.elapsed().as_secs_f64();
    assert!(e.get(&key(writes - 1)));
    drop(e);
    let mbs = wal_bytes as f64 / (1 << 20) as f64;
    eprintln!("recovery of {mbs:.0} MiB: ours {ours_secs:.3}s fjall {fj_secs:.3}s");
    vec![
        row(format!("open with {mbs:.0} MiB of WAL, seconds"), Some(ours_secs), Some(fj_secs), None),
        row("  recovery MB/s", Some(mbs / ours_secs), Some(mbs / fj_secs), None),
    ]
}
