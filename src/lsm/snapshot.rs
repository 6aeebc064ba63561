//! A consistent read view: a sequence number plus the memtables and tables
//! that held the data at that moment (kept alive, and on disk, while it lives).

use std::ops::RangeBounds;
use std::sync::Arc;

use super::core::SuperVersion;
use super::error::Result;
use super::iter::InternalIter;
use super::iter::mem::MemIter;
use super::iter::merge::MergeIter;
use super::iter::user::DbIter;
use super::owned_bounds;

pub struct Snapshot {
    seq: u64,
    sv: Arc<SuperVersion>,
}

impl Snapshot {
    pub(crate) fn new(seq: u64, sv: Arc<SuperVersion>) -> Self {
        Snapshot { seq, sv }
    }

    /// The sequence number of the last write this snapshot sees.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.sv.get(key.as_ref(), self.seq)
    }

    /// Iterates over the keys in `range` as this snapshot saw them.
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<DbIter> {
        let (start, end) = owned_bounds(&range);
        let mut children: Vec<Box<dyn InternalIter>> =
            vec![Box::new(MemIter::new(self.sv.mem.clone()))];
        let mut tombstones = self.sv.mem.tombstones();
        for m in &self.sv.imms {
            children.push(Box::new(MemIter::new(m.clone())));
            tombstones.extend(m.tombstones());
        }
        self.sv.version.iters(&mut children)?;
        self.sv.version.tombstones(&mut tombstones)?;
        let merge = MergeIter::new(children);
        Ok(DbIter::new(
            self.sv.clone(),
            merge,
            self.seq,
            start,
            end,
            tombstones,
        ))
    }
}
