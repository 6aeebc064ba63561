//! Appends records to the current WAL segment.
//!
//! Segments are preallocated, and files of retired segments are reused, so an
//! fdatasync rarely has to journal a change of file size. A reused file still
//! holds records of its former life: they carry the old segment number, and
//! recovery stops at the first one.
//!
//! A new segment is preallocated sparse (a fast open), and its blocks are only
//! allocated when written. So that not every fdatasync journals an allocation,
//! a write that is about to be synced first writes zeros a stretch ahead of
//! itself ([`ZERO_AHEAD`]): one fdatasync in many allocates, the way
//! PostgreSQL's `wal_init_zero` fills a segment up front. Zeros read as the
//! preallocated, unwritten space that recovery already stops at.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::record::{Encode, KIND_BATCH, KIND_END, Record};
use super::{segment_path, sync_dir};
use crate::lsm::error::{Error, Result};
use crate::lsm::stats::Stats;

/// Retired segment files waiting to be reused.
pub(crate) type RecyclePool = Arc<Mutex<Vec<PathBuf>>>;

#[derive(Clone)]
pub(crate) struct WalConfig {
    /// Non-sync bytes buffered in user space before they reach the OS.
    pub(crate) buffer_limit: usize,
    /// Size a new segment file is extended to up front.
    pub(crate) prealloc: u64,
    pub(crate) pool: RecyclePool,
    pub(crate) stats: Arc<Stats>,
}

/// How far ahead of a synced write the segment is zero-filled. Writing and
/// fdatasyncing 7.5 kB groups into a sparse file took 220-320 us each on this
/// machine's disk, into a zero-filled one 130-185 us; zeroing 256 kB ahead
/// (every ~35 groups) gave 96-164 us, smaller and larger stretches less.
const ZERO_AHEAD: u64 = 256 << 10;

static ZEROS: [u8; ZERO_AHEAD as usize] = [0; ZERO_AHEAD as usize];

pub(crate) struct WalWriter {
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    segment: u64,
    buf: Vec<u8>,
    /// Bytes handed to the OS: the file offset of the next write (after a
    /// failed write, which poisons the engine, no more are made).
    written: u64,
    /// The file is zero-filled (or holds records) up to here; `u64::MAX`
    /// zeroes no more: a reused file, or one whose zero-fill failed.
    zeroed: u64,
    cfg: WalConfig,
}

impl WalWriter {
    /// Starts segment `segment`, in a reused file when one is free, and makes
    /// its directory entry durable before any record is acknowledged from it.
    pub(crate) fn create(dir: &Path, segment: u64, cfg: WalConfig) -> Result<Self> {
        let path = segment_path(dir, segment);
        // The pool stays locked across the rename, so that retiring segments
        // (which lists the directory under the same lock) never sees a file
        // half-way between its old and new name.
        let mut pool = cfg.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut zeroed = 0;
        let file = match pool.pop() {
            Some(old) => {
                std::fs::rename(&old, &path).map_err(|e| Error::io(&old, e))?;
                zeroed = u64::MAX;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?
            }
            None => {
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&path);
                let f = f.map_err(|e| Error::io(&path, e))?;
                f.set_len(cfg.prealloc)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| Error::io(&path, e))?;
                f
            }
        };
        drop(pool);
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            path,
            file: Arc::new(file),
            segment,
            buf: Vec::new(),
            written: 0,
            zeroed,
            cfg,
        })
    }

    /// Frames `payload`; it reaches the OS when the buffer fills, on `flush`,
    /// or at once when it is about to be synced.
    pub(crate) fn append(&mut self, payload: &[u8], to_sync: bool) -> Result<()> {
        self.frame(KIND_BATCH, payload);
        if to_sync {
            self.flush_to_sync()
        } else if self.buf.len() >= self.cfg.buffer_limit {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Hands the buffer to the OS ahead of an fdatasync, zero-filling the
    /// preallocated space past it first if that space is not yet.
    pub(crate) fn flush_to_sync(&mut self) -> Result<()> {
        let end = self.written + self.buf.len() as u64;
        if end > self.zeroed && end < self.cfg.prealloc {
            // From the end of this write (the bytes before it are written
            // now). Only an optimisation: a failure (a full disk, say) stops
            // it and fails no write; zeros past `written` read as unwritten.
            let to = (end + ZERO_AHEAD).min(self.cfg.prealloc);
            let zeros = &ZEROS[..(to - end) as usize];
            self.zeroed = match self.file.write_all_at(zeros, end) {
                Ok(()) => to,
                Err(_) => u64::MAX,
            };
        }
        self.flush()
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) {
        Record {
            kind,
            segment: self.segment,
            payload,
        }
        .encode(&mut self.buf);
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = (&*self.file).write_all(&self.buf);
        // Written or not, the bytes go: a failed write poisons the engine, and writing them again
        // (at close) could make a write that failed durable, or leave a torn record before a good one.
        let len = self.buf.len() as u64;
        self.buf.clear();
        written.map_err(|e| Error::io(&self.path, e))?;
        self.written += len;
        self.cfg.stats.add_wal_bytes(len);
        Ok(())
    }

    /// The current segment, for an fdatasync made without holding the writer.
    pub(crate) fn sync_handle(&self) -> (Arc<File>, PathBuf) {
        (self.file.clone(), self.path.clone())
    }

    /// Makes every appended record durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.flush()?;
        sync_segment(&self.file, &self.path, &self.cfg.stats)
    }

    /// Marks the end of this segment and syncs it; a clean close does this so
    /// the next open need not read the preallocated space after the records.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.frame(KIND_END, &[]);
        self.sync()
    }

    /// Ends this segment and starts `next`. The end marker is synced first: a
    /// segment before the last one is then known to be complete, so damage in
    /// it can never be mistaken for a torn tail.
    pub(crate) fn rotate(&mut self, next: u64) -> Result<()> {
        self.finish()?;
        let fresh = WalWriter::create(&self.dir, next, self.cfg.clone())?;
        *self = fresh;
        Ok(())
    }
}

/// fdatasyncs a segment file, counting the sync and the time it took.
pub(crate) fn sync_segment(file: &File, path: &Path, stats: &Stats) -> Result<()> {
    let start = std::time::Instant::now();
    file.sync_data().map_err(|e| Error::io(path, e))?;
    stats.add_wal_sync(start.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::lsm::wal::reader::{End, scan};

    fn writer(dir: &Path, segment: u64, pool: &RecyclePool) -> WalWriter {
        let cfg = WalConfig {
            buffer_limit: 0,
            prealloc: 4 << 20,
            pool: pool.clone(),
            stats: Arc::default(),
        };
        WalWriter::create(dir, segment, cfg).unwrap()
    }

    /// Bytes of disk the segment's file holds (a sparse file holds only what was written).
    fn allocated(w: &WalWriter) -> u64 {
        std::fs::metadata(&w.path).unwrap().blocks() * 512
    }

    fn records(w: &WalWriter) -> (Vec<Vec<u8>>, End) {
        let mut got = Vec::new();
        let file = File::open(&w.path).unwrap();
        let end = scan(&w.path, w.segment, file, true, false, |p, _| {
            got.push(p.to_vec());
            Ok(())
        });
        (got, end.unwrap())
    }

    #[test]
    fn a_write_to_be_synced_zero_fills_ahead_of_itself_and_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1, &RecyclePool::default());
        w.append(b"plain", false).unwrap();
        assert!(
            allocated(&w) < ZERO_AHEAD,
            "a write not to be synced zeroes nothing"
        );
        w.append(b"synced", true).unwrap();
        assert!(
            allocated(&w) >= ZERO_AHEAD,
            "zeroed {} bytes",
            allocated(&w)
        );
        w.sync().unwrap();
        let (got, end) = records(&w);
        assert_eq!(got, [b"plain".to_vec(), b"synced".to_vec()]);
        assert!(matches!(end, End::Tail { valid_len } if valid_len == w.written));
    }

    #[test]
    fn a_reused_file_is_not_zeroed_again() {
        let dir = tempfile::tempdir().unwrap();
        let pool = RecyclePool::default();
        let mut first = writer(dir.path(), 1, &pool);
        first.finish().unwrap();
        pool.lock().unwrap().push(first.path.clone());
        let mut reused = writer(dir.path(), 2, &pool);
        assert_eq!(reused.zeroed, u64::MAX);
        reused.append(b"x", true).unwrap();
        assert_eq!(reused.zeroed, u64::MAX);
        assert!(
            allocated(&reused) < ZERO_AHEAD,
            "zeroed {} bytes",
            allocated(&reused)
        );
        assert_eq!(records(&reused).0, [b"x".to_vec()]);
    }
}
