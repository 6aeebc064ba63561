//! A cursor over a whole table: walks the index, then each data block.

use std::sync::Arc;

use super::block_iter::BlockIter;
use super::table::Table;
use crate::lsm::error::Result;
use crate::lsm::iter::InternalIter;

pub(crate) struct TableIter {
    table: Arc<Table>,
    block: usize,
    iter: Option<BlockIter>,
}

impl TableIter {
    pub(crate) fn new(table: Arc<Table>) -> Self {
        TableIter {
            table,
            block: 0,
            iter: None,
        }
    }

    fn load(&mut self, i: usize) -> Result<bool> {
        self.block = i;
        let Some(e) = self.table.index.get(i) else {
            self.iter = None;
            return Ok(false);
        };
        self.iter = Some(BlockIter::new(self.table.block(e.handle)?));
        Ok(true)
    }

    /// Skips forward past exhausted blocks.
    fn settle(&mut self) -> Result<()> {
        while self.iter.as_ref().is_some_and(|it| !it.valid()) {
            if !self.load(self.block + 1)? {
                return Ok(());
            }
            let h = self.table.index[self.block].handle;
            if let Some(it) = self.iter.as_mut() {
                it.seek_to_first()
                    .map_err(|o| self.table.corrupt_entry(h, o))?;
            }
        }
        Ok(())
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<()> {
        if self.load(0)? {
            let h = self.table.index[0].handle;
            if let Some(it) = self.iter.as_mut() {
                it.seek_to_first()
                    .map_err(|o| self.table.corrupt_entry(h, o))?;
            }
        }
        self.settle()
    }
}

impl InternalIter for TableIter {
    fn valid(&self) -> bool {
        self.iter.as_ref().is_some_and(BlockIter::valid)
    }

    fn key(&self) -> &[u8] {
        self.iter.as_ref().map_or(&[], BlockIter::key)
    }

    fn value(&self) -> &[u8] {
        self.iter.as_ref().map_or(&[], BlockIter::value)
    }

    fn next(&mut self) -> Result<()> {
        let h = self
            .table
            .index
            .get(self.block)
            .map(|e| e.handle)
            .unwrap_or_default();
        if let Some(it) = self.iter.as_mut() {
            it.advance().map_err(|o| self.table.corrupt_entry(h, o))?;
        }
        self.settle()
    }

    fn seek(&mut self, ikey: &[u8]) -> Result<()> {
        let i = self.table.find_block(ikey);
        if self.load(i)? {
            let h = self.table.index[i].handle;
            if let Some(it) = self.iter.as_mut() {
                it.seek(ikey, crate::lsm::key::cmp)
                    .map_err(|o| self.table.corrupt_entry(h, o))?;
            }
        }
        self.settle()
    }
}
