//! The public range iterator: the newest visible version of each key in a
//! range, as of one snapshot, with deletions and range tombstones applied.

use std::ops::Bound;
use std::sync::Arc;

use super::InternalIter;
use super::merge::MergeIter;
use crate::lsm::SuperVersion;
use crate::lsm::error::Result;
use crate::lsm::key::{self, KIND_PUT, RangeTombstone};
use crate::lsm::tombstones::TombstoneCursor;

/// Iterator over `(key, value)` pairs of a consistent snapshot, in key order.
pub struct DbIter {
    inner: MergeIter,
    snapshot: u64,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    tombstones: TombstoneCursor,
    last_user: Option<Vec<u8>>,
    started: bool,
    done: bool,
    /// Keeps the memtables and tables this iterator reads from alive.
    _pin: Arc<SuperVersion>,
}

impl DbIter {
    pub(crate) fn new(
        pin: Arc<SuperVersion>,
        inner: MergeIter,
        snapshot: u64,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        tombstones: Vec<RangeTombstone>,
    ) -> Self {
        let tombstones = TombstoneCursor::new(tombstones, snapshot);
        DbIter {
            inner,
            snapshot,
            start,
            end,
            tombstones,
            last_user: None,
            started: false,
            done: false,
            _pin: pin,
        }
    }

    fn past_end(&self, user: &[u8]) -> bool {
        match &self.end {
            Bound::Included(e) => user > e.as_slice(),
            Bound::Excluded(e) => user >= e.as_slice(),
            Bound::Unbounded => false,
        }
    }

    fn seek_start(&mut self) -> Result<()> {
        let mut ik = Vec::new();
        match &self.start {
            Bound::Included(s) | Bound::Excluded(s) => {
                key::encode(&mut ik, s, key::lookup_tag(key::MAX_SEQ))
            }
            Bound::Unbounded => key::encode(&mut ik, b"", key::lookup_tag(key::MAX_SEQ)),
        }
        if let Bound::Excluded(s) = &self.start {
            self.last_user = Some(s.clone());
        }
        self.inner.seek(&ik)
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if !self.started {
            self.started = true;
            self.seek_start()?;
        }
        while self.inner.valid() {
            let (user, tag) = key::split(self.inner.key());
            if self.past_end(user) {
                return Ok(None);
            }
            let seq = key::tag_seq(tag);
            let skip = seq > self.snapshot || self.last_user.as_deref() == Some(user);
            if !skip {
                self.last_user = Some(user.to_vec());
                let live = key::tag_kind(tag) == KIND_PUT && self.tombstones.covering(user) <= seq;
                if live {
                    let item = (user.to_vec(), self.inner.value().to_vec());
                    self.inner.next()?;
                    return Ok(Some(item));
                }
            }
            self.inner.next()?;
        }
        Ok(None)
    }
}

impl Iterator for DbIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
