//! The sharding issue's distribution checks: PostgreSQL's partition hash over `even(1024, 4)` spreads a
//! million sequential integers, or a million random UUIDs, evenly; adding a fifth shard moves a fifth of
//! the keys, all of them to the new shard.

use super::*;
use crate::sharding::hash::{
    HASH_PARTITION_SEED, hash_int8_extended, hash_uuid_extended, partition_combine,
};

const KEYS: u64 = 1_000_000;
const BUCKETS: u32 = 1024;

/// Keys per bucket, for keys with these extended hashes (seeded with `HASH_PARTITION_SEED`).
fn per_bucket(hashes: impl Iterator<Item = u64>) -> Vec<u64> {
    let map = BucketMap::even(BUCKETS, 1);
    let mut keys = vec![0u64; BUCKETS as usize];
    for hash in hashes {
        keys[map.bucket_of(partition_combine(hash)).0 as usize] += 1;
    }
    keys
}

fn loads(map: &BucketMap, per_bucket: &[u64]) -> Vec<u64> {
    let mut loads = vec![0u64; map.shard_count()];
    for (b, keys) in per_bucket.iter().enumerate() {
        loads[map.owner(Bucket(b as u32)).0] += keys;
    }
    loads
}

fn check_even(map: &BucketMap, per_bucket: &[u64]) {
    let mean = KEYS as f64 / map.shard_count() as f64;
    for (shard, load) in loads(map, per_bucket).iter().enumerate() {
        let off = (*load as f64 - mean).abs() / mean;
        assert!(off <= 0.02, "shard {shard} has {load} keys, mean {mean}");
    }
}

fn check(per_bucket: &[u64]) {
    assert_eq!(per_bucket.iter().sum::<u64>(), KEYS);
    let four = BucketMap::even(BUCKETS, 4);
    check_even(&four, per_bucket);
    let (five, moved) = four.plan_add_shard();
    check_even(&five, per_bucket);
    let moved_keys: u64 = moved.iter().map(|b| per_bucket[b.0 as usize]).sum();
    let fraction = moved_keys as f64 / KEYS as f64;
    assert!((0.19..=0.21).contains(&fraction), "moved {fraction}");
    let between_old: u64 = (0..BUCKETS)
        .map(Bucket)
        .filter(|b| five.owner(*b) != four.owner(*b) && five.owner(*b) != ShardId(4))
        .map(|b| per_bucket[b.0 as usize])
        .sum();
    assert_eq!(between_old, 0);
}

#[test]
fn sequential_integers() {
    check(&per_bucket(
        (1..=KEYS as i64).map(|v| hash_int8_extended(v, HASH_PARTITION_SEED)),
    ));
}

/// xorshift64* (Vigna): plenty for test keys, and no crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A version 4 (random) UUID.
    fn uuid(&mut self) -> [u8; 16] {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&self.next().to_be_bytes());
        u[8..].copy_from_slice(&self.next().to_be_bytes());
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        u
    }
}

#[test]
fn random_uuids() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    check(&per_bucket((0..KEYS).map(|_| {
        hash_uuid_extended(&rng.uuid(), HASH_PARTITION_SEED)
    })));
}
