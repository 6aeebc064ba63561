//! Opening a database: read the manifest, replay the WAL, clean up leftovers.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::batch::for_each_op;
use super::commit::CommitQueue;
use super::core::{Shared, State, SuperVersion, WalState};
use super::error::{Error, Result};
use super::manifest::{self, ManifestState, ManifestWriter};
use super::memtable::{Memtable, Replay};
use super::options::Options;
use super::sstable::cache::BlockCache;
use super::sstable::table_path;
use super::stats::Stats;
use super::turns::Turns;
use super::version::{TableFile, Version};
use super::wal::reader::{self, End};
use super::wal::writer::{RecyclePool, WalConfig, WalWriter};
use super::wal::{segment_path, sync_dir};

/// Numbers of the files in `dir` named `NNNNNN.<ext>`.
pub(crate) fn list_numbers(dir: &Path, ext: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let name = entry.map_err(|e| Error::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(ext)
            .and_then(|s| s.strip_suffix('.'))
            .and_then(|s| s.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // A process forked elsewhere in this program holds a copy of a closed
    // database's descriptor (and so its lock) until it execs: retry briefly.
    for attempt in 0..20 {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if attempt < 19 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    Err(Error::Locked(dir.to_path_buf()))
}

/// Replays WAL segments `>= log_number` into one memtable; returns the highest
/// sequence seen. A torn tail is cut off; salvage cuts at the first corruption.
fn replay(dir: &Path, log_number: u64, salvage: bool, mem: &mut Replay) -> Result<u64> {
    let segments: Vec<u64> = list_numbers(dir, "wal")?
        .into_iter()
        .filter(|&n| n >= log_number)
        .collect();
    let mut max_seq = 0;
    for (i, &seg) in segments.iter().enumerate() {
        let path = segment_path(dir, seg);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let is_last = i + 1 == segments.len();
        let end = reader::scan(&path, seg, file, is_last, salvage, |payload, offset| {
            for_each_op(payload, |_, _| {}).map_err(|o| {
                Error::corruption(
                    &path,
                    offset + 17 + o as u64,
                    "malformed batch in WAL record",
                )
            })?;
            max_seq = max_seq.max(mem.apply_payload(payload));
            Ok(())
        })?;
        match end {
            End::Clean => {}
            End::Tail { valid_len } => reader::truncate(&path, valid_len)?,
            End::Salvaged { valid_len } => {
                reader::truncate(&path, valid_len)?;
                for &later in &segments[i + 1..] {
                    let p = segment_path(dir, later);
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
                break;
            }
        }
    }
    Ok(max_seq)
}

/// Removes files no live state names: orphan tables of jobs that never
/// committed, WAL segments already flushed, a half-written manifest.
fn remove_leftovers(dir: &Path, ms: &ManifestState) -> Result<()> {
    for n in list_numbers(dir, "sst")? {
        if !ms.files.contains_key(&n) {
            let p = table_path(dir, n);
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    for n in list_numbers(dir, "wal")? {
        if n < ms.log_number {
            let p = segment_path(dir, n);
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let _ = std::fs::remove_file(dir.join("MANIFEST.tmp"));
    Ok(())
}

pub(crate) fn open(dir: &Path, opts: Options) -> Result<Arc<Shared>> {
    opts.check()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock = lock_dir(dir)?;
    let mut ms = manifest::read(dir)?.unwrap_or_default();
    let highest = list_numbers(dir, "wal")?
        .into_iter()
        .chain(list_numbers(dir, "sst")?)
        .max()
        .unwrap_or(0);
    ms.next_file = ms.next_file.max(highest + 1).max(1);
    let mut replayed = Replay::default();
    ms.last_seq = ms
        .last_seq
        .max(replay(dir, ms.log_number, opts.salvage_wal, &mut replayed)?);
    let recovered = replayed.finish();
    remove_leftovers(dir, &ms)?;
    let cache =
        (opts.block_cache_size > 0).then(|| Arc::new(BlockCache::new(opts.block_cache_size)));
    let mut version = Version::default();
    for (level, meta) in ms.files.values() {
        let f = TableFile::open(dir, meta.clone(), cache.clone())?;
        version.levels[*level as usize].push(f);
    }
    version.sort();
    let stats = Arc::new(Stats::default());
    let segment = ms.next_file;
    ms.next_file += 1;
    let wal_pool = RecyclePool::default();
    let wal_config = WalConfig {
        buffer_limit: opts.wal_buffer_size,
        prealloc: (opts.memtable_size as u64).clamp(1 << 20, 64 << 20),
        pool: wal_pool.clone(),
        stats: stats.clone(),
    };
    let writer = WalWriter::create(dir, segment, wal_config)?;
    let manifest = ManifestWriter::create(dir, &ms)?;
    sync_dir(dir)?;
    let mut imms = VecDeque::new();
    if !recovered.is_empty() {
        recovered.set_next_segment(segment);
        imms.push_back(Arc::new(recovered));
    }
    let last_seq = ms.last_seq;
    let state = State {
        mem: Arc::new(Memtable::new()),
        imms,
        version: Arc::new(version),
        manifest,
        mstate: ms,
        compacting: HashSet::new(),
        shutdown: false,
        error: None,
        manual_compaction: false,
    };
    let sv = SuperVersion {
        mem: state.mem.clone(),
        imms: state.imms.iter().rev().cloned().collect(),
        version: state.version.clone(),
    };
    Ok(Arc::new(Shared {
        dir: dir.to_path_buf(),
        commit: CommitQueue::new(opts.max_group_bytes),
        opts,
        stats,
        cache,
        assigned_seq: AtomicU64::new(last_seq),
        turns: Turns::new(last_seq),
        current: RwLock::new(Arc::new(sv)),
        state: Mutex::new(state),
        cv: Condvar::new(),
        wal: Mutex::new(WalState::new(writer, last_seq)),
        wal_pool,
        _lock: lock,
    }))
}
