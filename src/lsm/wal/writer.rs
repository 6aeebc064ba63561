//! Appends records to the current WAL segment.
//!
//! Segments are preallocated, and files of retired segments are reused, so an
//! fdatasync rarely has to journal a change of file size or block allocation.
//! A reused file still holds records of its former life: they carry the old
//! segment number, and recovery stops at the first one.

use std::fs::{File, OpenOptions};
use std::io::Write;
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

pub(crate) struct WalWriter {
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    segment: u64,
    buf: Vec<u8>,
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
        let file = match pool.pop() {
            Some(old) => {
                std::fs::rename(&old, &path).map_err(|e| Error::io(&old, e))?;
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
            cfg,
        })
    }

    /// Frames `payload`; it reaches the OS when the buffer fills or on `flush`/`sync`.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<()> {
        self.frame(KIND_BATCH, payload);
        if self.buf.len() >= self.cfg.buffer_limit {
            self.flush()?;
        }
        Ok(())
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
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))?;
        self.cfg.stats.add_wal_sync();
        Ok(())
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
