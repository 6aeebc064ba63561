//! Writes the tables of a flush or compaction, cutting a new table when one
//! reaches its target size and giving each table the slice of the range
//! tombstones that falls within its key range.

use crate::lsm::core::Shared;
use crate::lsm::error::Result;
use crate::lsm::key::{self, RangeTombstone};
use crate::lsm::sstable::builder::TableBuilder;
use crate::lsm::sstable::table_path;
use crate::lsm::version::FileMeta;

pub(crate) struct Outputs<'a> {
    shared: &'a Shared,
    split_at: u64,
    current: Option<TableBuilder>,
    /// Lower user-key bound of the current table (None: unbounded).
    lower: Option<Vec<u8>>,
    last_user: Vec<u8>,
    done: Vec<FileMeta>,
}

impl<'a> Outputs<'a> {
    pub(crate) fn new(shared: &'a Shared, split_at: u64) -> Self {
        Outputs {
            shared,
            split_at,
            current: None,
            lower: None,
            last_user: Vec::new(),
            done: Vec::new(),
        }
    }

    fn builder(&mut self) -> Result<&mut TableBuilder> {
        if self.current.is_none() {
            let number = self.shared.new_file_number();
            let o = &self.shared.opts;
            let path = table_path(&self.shared.dir, number);
            let b = TableBuilder::create(
                path,
                number,
                o.block_size,
                o.bloom_bits_per_key,
                self.shared.stats.clone(),
            )?;
            self.current = Some(b);
        }
        Ok(self.current.as_mut().expect("builder was just created"))
    }

    /// Adds an entry; entries arrive in internal-key order, one version per key.
    pub(crate) fn add(
        &mut self,
        ikey: &[u8],
        value: &[u8],
        tombstones: &[RangeTombstone],
    ) -> Result<()> {
        let (user, _) = key::split(ikey);
        let full = self
            .current
            .as_ref()
            .is_some_and(|b| b.estimated_size() >= self.split_at);
        if full && user != self.last_user.as_slice() {
            self.finish_current(Some(user.to_vec()), tombstones)?;
        }
        self.last_user.clear();
        self.last_user.extend_from_slice(user);
        self.builder()?.add(ikey, value)
    }

    fn finish_current(
        &mut self,
        upper: Option<Vec<u8>>,
        tombstones: &[RangeTombstone],
    ) -> Result<()> {
        let lower = std::mem::replace(&mut self.lower, upper.clone());
        for t in tombstones {
            let start = lower
                .as_ref()
                .map_or(t.start.clone(), |l| l.clone().max(t.start.clone()));
            let end = upper
                .as_ref()
                .map_or(t.end.clone(), |u| u.clone().min(t.end.clone()));
            if start < end {
                self.builder()?.add_tombstone(RangeTombstone {
                    start,
                    end,
                    seq: t.seq,
                });
            }
        }
        if let Some(b) = self.current.take() {
            if b.is_empty() {
                b.abandon();
            } else {
                self.done.push(b.finish()?);
            }
        }
        Ok(())
    }

    /// Finishes the last table; returns every table written.
    pub(crate) fn finish(mut self, tombstones: &[RangeTombstone]) -> Result<Vec<FileMeta>> {
        self.finish_current(None, tombstones)?;
        Ok(std::mem::take(&mut self.done))
    }

    /// Removes everything written (the job failed before its edit was logged).
    pub(crate) fn abandon(mut self) {
        if let Some(b) = self.current.take() {
            b.abandon();
        }
        for m in &self.done {
            let _ = std::fs::remove_file(table_path(&self.shared.dir, m.number));
        }
    }
}
