//! A version: the immutable set of live table files, level by level.
//!
//! Readers hold an `Arc<Version>`; a table dropped by a compaction is deleted
//! from disk only when the last version naming it is gone.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{Error, Result};
use super::iter::InternalIter;
use super::iter::level::LevelIter;
use super::key::RangeTombstone;
use super::manifest::VersionEdit;
use super::memtable::Found;
use super::sstable::cache::BlockCache;
use super::sstable::iter::TableIter;
use super::sstable::table::Table;
use super::sstable::table_path;

pub(crate) const NUM_LEVELS: usize = 7;

/// What the manifest records about a table. Bounds are user keys and include
/// the table's range tombstones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileMeta {
    pub(crate) number: u64,
    pub(crate) size: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    pub(crate) min_seq: u64,
    pub(crate) max_seq: u64,
    pub(crate) entries: u64,
}

impl FileMeta {
    pub(crate) fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.smallest.as_slice() <= hi && lo <= self.largest.as_slice()
    }

    pub(crate) fn contains(&self, user: &[u8]) -> bool {
        self.overlaps(user, user)
    }
}

/// A live table: its metadata and its open reader.
pub(crate) struct TableFile {
    pub(crate) meta: FileMeta,
    table: Option<Arc<Table>>,
    obsolete: AtomicBool,
}

impl TableFile {
    pub(crate) fn open(
        dir: &Path,
        meta: FileMeta,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Arc<TableFile>> {
        let table = Table::open(&table_path(dir, meta.number), meta.number, cache)?;
        Ok(Arc::new(TableFile {
            meta,
            table: Some(Arc::new(table)),
            obsolete: AtomicBool::new(false),
        }))
    }

    /// Metadata only, for planning tests.
    #[cfg(test)]
    pub(crate) fn detached(meta: FileMeta) -> Arc<TableFile> {
        Arc::new(TableFile {
            meta,
            table: None,
            obsolete: AtomicBool::new(false),
        })
    }

    pub(crate) fn table(&self) -> Result<&Arc<Table>> {
        self.table.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("table {} has no reader", self.meta.number))
        })
    }

    /// Called once an edit removing this table is durable in the manifest.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire)
            && let Some(t) = &self.table
        {
            // Best effort: a leftover is found again as an orphan at open.
            let _ = std::fs::remove_file(&t.path);
        }
    }
}

#[derive(Clone, Default)]
pub(crate) struct Version {
    /// Level 0 newest first (tables may overlap); deeper levels sorted by key.
    pub(crate) levels: [Vec<Arc<TableFile>>; NUM_LEVELS],
    /// Where the next size-triggered compaction of each level starts.
    pub(crate) compact_pointer: [Vec<u8>; NUM_LEVELS],
}

impl Version {
    /// A new version with `edit` applied; `added` holds the opened tables it adds.
    pub(crate) fn apply(&self, edit: &VersionEdit, added: &[Arc<TableFile>]) -> Version {
        let mut v = self.clone();
        for (level, number) in &edit.deleted {
            v.levels[*level as usize].retain(|f| f.meta.number != *number);
        }
        for ((level, _), file) in edit.added.iter().zip(added) {
            v.levels[*level as usize].push(file.clone());
        }
        v.sort();
        v
    }

    pub(crate) fn sort(&mut self) {
        self.levels[0].sort_by_key(|f| std::cmp::Reverse((f.meta.max_seq, f.meta.number)));
        for l in &mut self.levels[1..] {
            l.sort_by(|a, b| a.meta.smallest.cmp(&b.meta.smallest));
        }
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|f| f.meta.size).sum()
    }

    pub(crate) fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<TableFile>> {
        self.levels[level]
            .iter()
            .filter(|f| f.meta.overlaps(lo, hi))
            .cloned()
            .collect()
    }

    /// Whether a table accepted by `keep` overlaps `lo..=hi`: level 0 is
    /// scanned, deeper levels are binary-searched.
    pub(crate) fn any_overlapping(
        &self,
        lo: &[u8],
        hi: &[u8],
        keep: impl Fn(&Arc<TableFile>) -> bool,
    ) -> bool {
        self.levels[0]
            .iter()
            .any(|f| f.meta.overlaps(lo, hi) && keep(f))
            || self.levels[1..].iter().any(|level| {
                let start = level.partition_point(|f| f.meta.largest.as_slice() < lo);
                level[start..]
                    .iter()
                    .take_while(|f| f.meta.smallest.as_slice() <= hi)
                    .any(&keep)
            })
    }

    pub(crate) fn files(&self) -> impl Iterator<Item = (usize, &Arc<TableFile>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, fs)| fs.iter().map(move |f| (l, f)))
    }

    /// The newest version of `user` at `snapshot`. Newer data for a key always
    /// sits in a shallower level, so the first level with an answer decides.
    pub(crate) fn get(&self, user: &[u8], snapshot: u64) -> Result<Option<Found>> {
        let hash = super::bloom::hash(user);
        for f in &self.levels[0] {
            if f.meta.contains(user)
                && let Some(found) = f.table()?.get(user, hash, snapshot)?
            {
                return Ok(Some(found));
            }
        }
        for level in &self.levels[1..] {
            let start = level.partition_point(|f| f.meta.largest.as_slice() < user);
            // Range tombstones may make neighbours touch: check each file that contains the key.
            let mut best: Option<Found> = None;
            for f in level[start..]
                .iter()
                .take_while(|f| f.meta.smallest.as_slice() <= user)
            {
                match f.table()?.get(user, hash, snapshot)? {
                    Some(Found::Deleted) => best = Some(Found::Deleted),
                    Some(v) if best.is_none() => best = Some(v),
                    _ => {}
                }
            }
            if best.is_some() {
                return Ok(best);
            }
        }
        Ok(None)
    }

    /// Cursors over every table, newest first: level-0 tables one by one, then one per level.
    pub(crate) fn iters(&self, out: &mut Vec<Box<dyn InternalIter>>) -> Result<()> {
        for f in &self.levels[0] {
            out.push(Box::new(TableIter::new(f.table()?.clone())));
        }
        for level in &self.levels[1..] {
            if !level.is_empty() {
                out.push(Box::new(LevelIter::new(level.clone())));
            }
        }
        Ok(())
    }

    pub(crate) fn tombstones(&self, out: &mut Vec<RangeTombstone>) -> Result<()> {
        for (_, f) in self.files() {
            out.extend(f.table()?.tombstones.iter().cloned());
        }
        Ok(())
    }
}
