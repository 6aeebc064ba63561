//! Reads a block: validates its restart array, seeks by binary search over the
//! restart points, and walks entries. Malformed bytes yield the offset inside
//! the block, never a panic.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::lsm::codec::{Cursor, u32_at};

pub(crate) struct Block {
    data: Vec<u8>,
    restarts_at: usize,
    restarts: usize,
}

impl Block {
    /// Takes ownership of a block's bytes (checksum already verified).
    pub(crate) fn new(data: Vec<u8>) -> Result<Self, usize> {
        let len = data.len();
        let restarts = u32_at(&data, len.checked_sub(4).ok_or(0usize)?).ok_or(0usize)? as usize;
        let restarts_at = restarts
            .checked_mul(4)
            .and_then(|n| len.checked_sub(4 + n))
            .ok_or(len.saturating_sub(4))?;
        if restarts == 0 {
            return Err(len - 4);
        }
        Ok(Block {
            data,
            restarts_at,
            restarts,
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    fn restart(&self, i: usize) -> usize {
        u32_at(&self.data, self.restarts_at + 4 * i).map_or(usize::MAX, |v| v as usize)
    }
}

/// A cursor over one block's entries.
pub(crate) struct BlockIter {
    block: Arc<Block>,
    /// Offset of the entry after the current one.
    next: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
}

impl BlockIter {
    pub(crate) fn new(block: Arc<Block>) -> Self {
        BlockIter {
            block,
            next: 0,
            key: Vec::new(),
            value: (0, 0),
            valid: false,
        }
    }

    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.block.data[self.value.0..self.value.1]
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<(), usize> {
        self.next = 0;
        self.key.clear();
        self.advance()
    }

    /// Moves to the next entry; past the last one the iterator is invalid.
    pub(crate) fn advance(&mut self) -> Result<(), usize> {
        let at = self.next;
        if at >= self.block.restarts_at {
            self.valid = false;
            return Ok(());
        }
        let data = &self.block.data[..self.block.restarts_at];
        let mut c = Cursor::new(data);
        c.pos = at;
        let (shared, unshared, vlen) = match (c.varint(), c.varint(), c.varint()) {
            (Some(s), Some(u), Some(v)) => (s as usize, u as usize, v as usize),
            _ => return Err(at),
        };
        if shared > self.key.len() {
            return Err(at);
        }
        let delta = c.take(unshared).ok_or(at)?;
        let vstart = c.pos;
        c.take(vlen).ok_or(at)?;
        self.key.truncate(shared);
        self.key.extend_from_slice(delta);
        self.value = (vstart, c.pos);
        self.next = c.pos;
        self.valid = true;
        Ok(())
    }

    /// Positions at the first entry whose key is `>= target` under `cmp`.
    pub(crate) fn seek(
        &mut self,
        target: &[u8],
        cmp: fn(&[u8], &[u8]) -> Ordering,
    ) -> Result<(), usize> {
        // Find the last restart point whose key is < target.
        let (mut lo, mut hi) = (0, self.block.restarts);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            self.next = self.block.restart(mid);
            self.key.clear();
            self.advance()?;
            if !self.valid {
                return Err(self.next);
            }
            if cmp(&self.key, target) == Ordering::Less {
                lo = mid
            } else {
                hi = mid
            }
        }
        self.next = self.block.restart(lo);
        self.key.clear();
        loop {
            self.advance()?;
            if !self.valid || cmp(&self.key, target) != Ordering::Less {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::sstable::block::BlockBuilder;

    fn build(keys: &[&str]) -> Arc<Block> {
        let mut b = BlockBuilder::new(3);
        for k in keys {
            b.add(k.as_bytes(), format!("v-{k}").as_bytes());
        }
        Arc::new(Block::new(b.finish()).unwrap())
    }

    fn check(keys: &[&str], target: &str, want: Option<&str>) {
        let mut it = BlockIter::new(build(keys));
        it.seek(target.as_bytes(), |a, b| a.cmp(b)).unwrap();
        let got = it
            .valid()
            .then(|| String::from_utf8(it.key().to_vec()).unwrap());
        assert_eq!(got.as_deref(), want, "seek {target} in {keys:?}");
        if let Some(w) = want {
            assert_eq!(it.value(), format!("v-{w}").as_bytes());
        }
    }

    #[test]
    fn seeks_land_on_the_first_key_not_less() {
        let keys = ["a", "ab", "abc", "b", "bb", "c", "d", "da", "db", "e"];
        check(&keys, "", Some("a"));
        check(&keys, "ab", Some("ab"));
        check(&keys, "abd", Some("b"));
        check(&keys, "d", Some("d"));
        check(&keys, "dz", Some("e"));
        check(&keys, "f", None);
        check(&["only"], "o", Some("only"));
    }

    #[test]
    fn scans_every_entry_and_rejects_garbage() {
        let keys = ["k1", "k2", "k3", "k4", "k5"];
        let mut it = BlockIter::new(build(&keys));
        it.seek_to_first().unwrap();
        let mut seen = Vec::new();
        while it.valid() {
            seen.push(String::from_utf8(it.key().to_vec()).unwrap());
            it.advance().unwrap();
        }
        assert_eq!(seen, keys);
        assert!(Block::new(vec![1, 2]).is_err());
        assert!(Block::new(vec![0xff, 0xff, 0xff, 0x0f]).is_err());
        let mut bad = BlockBuilder::new(3);
        bad.add(b"k", b"v");
        let mut bytes = bad.finish();
        bytes[0] = 9; // shared longer than any previous key
        let mut it = BlockIter::new(Arc::new(Block::new(bytes).unwrap()));
        assert_eq!(it.seek_to_first(), Err(0));
    }
}
