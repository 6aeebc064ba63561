//! A sharded, size-bounded cache of verified data blocks, FIFO-evicted.
//!
//! Blocks enter only after their checksum passed, so a hit needs no re-check.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::block_iter::Block;

const SHARDS: usize = 16;

type Key = (u64, u64); // (table number, block offset)

/// Keys are two trusted integers: a multiply-mix hash beats SipHash here.
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<Key, Arc<Block>, BuildHasherDefault<MixHasher>>,
    order: VecDeque<Key>,
    used: usize,
}

pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl BlockCache {
    pub(crate) fn new(capacity: usize) -> Self {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity / SHARDS,
        }
    }

    fn shard(&self, key: Key) -> &Mutex<Shard> {
        let h = key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (key.1 >> 12);
        &self.shards[(h as usize) % SHARDS]
    }

    pub(crate) fn get(&self, table: u64, offset: u64) -> Option<Arc<Block>> {
        let s = self
            .shard((table, offset))
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        s.map.get(&(table, offset)).cloned()
    }

    pub(crate) fn insert(&self, table: u64, offset: u64, block: Arc<Block>) {
        if self.per_shard == 0 {
            return;
        }
        let key = (table, offset);
        let mut s = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let size = block.size();
        if s.map.insert(key, block).is_none() {
            s.order.push_back(key);
            s.used += size;
        }
        while s.used > self.per_shard {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            if let Some(b) = s.map.remove(&old) {
                s.used -= b.size();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::sstable::block::BlockBuilder;

    fn block(n: usize) -> Arc<Block> {
        let mut b = BlockBuilder::new(16);
        b.add(b"k", &vec![0; n]);
        Arc::new(Block::new(b.finish()).unwrap())
    }

    #[test]
    fn stays_within_capacity() {
        let c = BlockCache::new(SHARDS * 1000);
        for i in 0..1000 {
            c.insert(1, i << 12, block(300));
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().used).sum();
        assert!(total <= SHARDS * 1000);
        assert!(c.get(1, 999 << 12).is_some(), "newest survives");
        assert!(c.get(1, 0).is_none(), "oldest evicted");
    }
}
