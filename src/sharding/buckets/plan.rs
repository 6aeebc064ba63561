//! Adding a shard: which buckets the new shard takes, and from whom. Pure.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Bucket, BucketMap, ShardId};

impl BucketMap {
    /// The map after adding shard `ShardId(shard_count())`: it takes `ceil(count / (N + 1))` buckets, each
    /// from whichever old shard is most loaded at that moment, so no bucket moves between two old shards.
    /// A donor gives the low or high end of what it owns (low when that joins a range the new shard already
    /// got), so both keep few ranges. Returns the new map and the moved buckets, ascending.
    pub fn plan_add_shard(&self) -> (BucketMap, Vec<Bucket>) {
        let new = ShardId(self.shards);
        let take = u64::from(self.count()).div_ceil(self.shards as u64 + 1) as usize;
        let mut next = self.clone();
        next.shards += 1;
        let mut moved = Vec::with_capacity(take);
        // Donors in the order of their first bucket, so a donor below has already given its high end.
        let mut donors = self.quotas(take);
        donors.sort_by_key(|(_, shard)| self.owners.iter().position(|o| o == shard));
        for (quota, shard) in donors {
            let owned: Vec<u32> = self.buckets_of(shard).collect();
            let joins_below = owned[0] > 0 && next.owners[owned[0] as usize - 1] == new;
            let given = if joins_below {
                &owned[..quota]
            } else {
                &owned[owned.len() - quota..]
            };
            for &bucket in given {
                next.owners[bucket as usize] = new;
                moved.push(Bucket(bucket));
            }
        }
        moved.sort_unstable();
        (next, moved)
    }

    /// How many buckets each old shard gives when `take` are taken one at a time from the most loaded
    /// (ties: the lowest id). Only donors, i.e. non-zero quotas, are returned.
    fn quotas(&self, take: usize) -> Vec<(usize, ShardId)> {
        let mut loads = vec![0usize; self.shards];
        for owner in &self.owners {
            loads[owner.0] += 1;
        }
        let mut heap: BinaryHeap<(usize, Reverse<usize>)> = loads
            .iter()
            .enumerate()
            .map(|(i, load)| (*load, Reverse(i)))
            .collect();
        let mut given = vec![0usize; self.shards];
        for _ in 0..take {
            // The heap always holds every shard, and take <= count keeps the most loaded one non-empty.
            let Some((load, Reverse(i))) = heap.pop() else {
                break;
            };
            given[i] += 1;
            heap.push((load - 1, Reverse(i)));
        }
        (0..self.shards)
            .filter(|i| given[*i] > 0)
            .map(|i| (given[i], ShardId(i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;

    use super::*;
    use crate::sharding::buckets::tests::ranges;

    /// Checks the plan's invariants and that the map after it is `want`.
    fn check_add(before: &BucketMap, want: &[Vec<RangeInclusive<u32>>]) {
        let (after, moved) = before.plan_add_shard();
        let new = ShardId(before.shard_count());
        let take = before.count().div_ceil(before.shard_count() as u32 + 1);
        assert_eq!(after.shard_count(), before.shard_count() + 1);
        assert_eq!(
            moved.len() as u32,
            take,
            "moves exactly ceil(count / (N + 1))"
        );
        for b in (0..before.count()).map(Bucket) {
            let expected = if moved.contains(&b) {
                new
            } else {
                before.owner(b)
            };
            assert_eq!(
                after.owner(b),
                expected,
                "{b:?}: only moves to the new shard"
            );
        }
        // Greedy from the most loaded: a donor was the most loaded when it gave its last bucket.
        let load = |map: &BucketMap, s: usize| map.buckets_of(ShardId(s)).count();
        for d in 0..before.shard_count() {
            if load(&after, d) < load(before, d) {
                for s in 0..before.shard_count() {
                    assert!(load(&after, d) + 1 >= load(&after, s), "donor {d} vs {s}");
                }
            }
        }
        assert_eq!(ranges(&after), want);
    }

    #[test]
    fn plan_add_shard() {
        let from = |count, assignments: &[Vec<RangeInclusive<u32>>]| {
            BucketMap::from_ranges(count, assignments).expect("valid test map")
        };
        check_add(&BucketMap::even(4, 1), &[vec![0..=1], vec![2..=3]]);
        check_add(
            &BucketMap::even(3, 2),
            &[vec![0..=0], vec![1..=1], vec![2..=2]],
        );
        check_add(&BucketMap::even(1, 1), &[vec![], vec![0..=0]]);
        // The second of two neighbouring donors gives its low end, so the new shard's ranges join.
        check_add(
            &BucketMap::even(1024, 4),
            &[
                vec![0..=203],
                vec![307..=511],
                vec![512..=716],
                vec![819..=1023],
                vec![204..=306, 717..=818],
            ],
        );
        // Only the most loaded shard gives.
        check_add(
            &from(10, &[vec![0..=7], vec![8..=9]]),
            &[vec![0..=3], vec![8..=9], vec![4..=7]],
        );
        // A donor with two ranges gives from its high end, across them.
        check_add(
            &from(8, &[vec![0..=4, 7..=7], vec![5..=6]]),
            &[vec![0..=2], vec![5..=6], vec![3..=4, 7..=7]],
        );
        // Repeated adds keep the invariants.
        let mut map = BucketMap::even(1024, 2);
        while map.shard_count() < 12 {
            let (next, _) = map.plan_add_shard();
            check_add(&map, &ranges(&next));
            map = next;
        }
    }
}
