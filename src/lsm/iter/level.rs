//! A cursor over one sorted, non-overlapping level: opens one table at a time.

use std::sync::Arc;

use super::InternalIter;
use crate::lsm::error::Result;
use crate::lsm::key;
use crate::lsm::sstable::iter::TableIter;
use crate::lsm::version::TableFile;

pub(crate) struct LevelIter {
    files: Vec<Arc<TableFile>>,
    index: usize,
    current: Option<TableIter>,
}

impl LevelIter {
    pub(crate) fn new(files: Vec<Arc<TableFile>>) -> Self {
        LevelIter {
            files,
            index: 0,
            current: None,
        }
    }

    fn open(&mut self, i: usize) -> Result<()> {
        self.index = i;
        self.current = match self.files.get(i) {
            Some(f) => Some(TableIter::new(f.table()?.clone())),
            None => None,
        };
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            self.open(self.index + 1)?;
            if let Some(c) = self.current.as_mut() {
                c.seek_to_first()?;
            }
        }
        Ok(())
    }
}

impl InternalIter for LevelIter {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.value())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.next()?;
        }
        self.settle()
    }

    fn seek(&mut self, ikey: &[u8]) -> Result<()> {
        let (user, _) = key::split(ikey);
        let i = self
            .files
            .partition_point(|f| f.meta.largest.as_slice() < user);
        self.open(i)?;
        if let Some(c) = self.current.as_mut() {
            c.seek(ikey)?;
        }
        self.settle()
    }
}
