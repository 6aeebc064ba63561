//! A memtable cursor that copies a chunk of entries at a time, so it never
//! holds the memtable's lock between calls.

use std::ops::Bound;
use std::sync::Arc;

use super::InternalIter;
use crate::lsm::error::Result;
use crate::lsm::key;
use crate::lsm::memtable::{MemEntry, Memtable};

const CHUNK: usize = 256;

pub(crate) struct MemIter {
    mem: Arc<Memtable>,
    buf: Vec<(Vec<u8>, MemEntry)>,
    pos: usize,
    resume: Option<MemEntry>,
}

impl MemIter {
    pub(crate) fn new(mem: Arc<Memtable>) -> Self {
        MemIter {
            mem,
            buf: Vec::new(),
            pos: 0,
            resume: None,
        }
    }

    fn fill(&mut self, from: Bound<&MemEntry>) {
        let chunk = self.mem.chunk(from, CHUNK);
        self.resume = if chunk.len() == CHUNK {
            chunk.last().cloned()
        } else {
            None
        };
        self.buf = chunk
            .into_iter()
            .map(|e| {
                let mut ik = Vec::with_capacity(e.user().len() + key::TAG_LEN);
                key::encode(&mut ik, e.user(), e.tag);
                (ik, e)
            })
            .collect();
        self.pos = 0;
    }
}

impl InternalIter for MemIter {
    fn valid(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn key(&self) -> &[u8] {
        &self.buf[self.pos].0
    }

    fn value(&self) -> &[u8] {
        self.buf[self.pos].1.value()
    }

    fn next(&mut self) -> Result<()> {
        self.pos += 1;
        if self.pos >= self.buf.len() {
            match self.resume.take() {
                Some(k) => self.fill(Bound::Excluded(&k)),
                None => self.buf.clear(),
            }
        }
        Ok(())
    }

    fn seek(&mut self, ikey: &[u8]) -> Result<()> {
        let (user, tag) = key::split(ikey);
        let k = MemEntry::new(user, tag, b"");
        self.fill(Bound::Included(&k));
        Ok(())
    }
}
