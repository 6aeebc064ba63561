//! Virtual buckets: the partition-hash space cut into a fixed number of buckets (fixed when the map is
//! created), each owned by exactly one shard. Resharding moves whole buckets. Pure.

use std::collections::BinaryHeap;
use std::ops::RangeInclusive;

use super::ShardId;

/// A bucket map larger than this is a configuration mistake, not a plan: it would cost memory per bucket.
pub const MAX_BUCKETS: u32 = 1 << 20;

/// One slice of the hash space. A key's bucket is its partition hash `% count`, the remainder PostgreSQL's
/// hash partitioning with modulus `count` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(pub u32);

/// The owner of every bucket. Invariant: at least one bucket and at least one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketMap {
    /// `owners[b]` owns bucket `b`.
    owners: Vec<ShardId>,
    /// Shards, including any that own no bucket.
    shards: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BucketError {
    #[error("a bucket map needs between 1 and {MAX_BUCKETS} buckets")]
    NoBuckets,
    #[error("shard {} is assigned bucket {bucket}, but there are only {count} buckets", .shard.0)]
    OutOfRange {
        bucket: u32,
        count: u32,
        shard: ShardId,
    },
    #[error("bucket {bucket} is assigned to both shard {} and shard {}", .first.0, .second.0)]
    Twice {
        bucket: u32,
        first: ShardId,
        second: ShardId,
    },
    #[error("{count} bucket(s) are assigned to no shard, the first is bucket {bucket}")]
    Unassigned { bucket: u32, count: u32 },
    #[error("bad bucket range {0:?}: expected \"first-last\" (first <= last) or one bucket number")]
    BadRange(String),
}

impl BucketMap {
    /// `assignments[i]` = bucket ranges (inclusive) owned by `ShardId(i)`; every bucket in `0..count` exactly
    /// once. A shard may own no bucket.
    pub fn from_ranges(
        count: u32,
        assignments: &[Vec<RangeInclusive<u32>>],
    ) -> Result<Self, BucketError> {
        if count == 0 || count > MAX_BUCKETS {
            return Err(BucketError::NoBuckets);
        }
        let mut owners: Vec<Option<ShardId>> = vec![None; count as usize];
        for (i, ranges) in assignments.iter().enumerate() {
            let shard = ShardId(i);
            for range in ranges {
                let (first, last) = (*range.start(), *range.end());
                if first > last {
                    return Err(BucketError::BadRange(format!("{first}-{last}")));
                }
                if last >= count {
                    let bucket = first.max(count);
                    return Err(BucketError::OutOfRange {
                        bucket,
                        count,
                        shard,
                    });
                }
                for bucket in first..=last {
                    let owner = &mut owners[bucket as usize];
                    if let Some(first) = *owner {
                        return Err(BucketError::Twice {
                            bucket,
                            first,
                            second: shard,
                        });
                    }
                    *owner = Some(shard);
                }
            }
        }
        let mut unassigned = (0..count).filter(|b| owners[*b as usize].is_none());
        if let Some(bucket) = unassigned.next() {
            let count = 1 + unassigned.count() as u32;
            return Err(BucketError::Unassigned { bucket, count });
        }
        Ok(BucketMap {
            owners: owners.into_iter().flatten().collect(),
            shards: assignments.len(),
        })
    }

    /// An even initial split of `count` buckets over `shards` shards in contiguous ranges (sizes differ by
    /// at most one; with more shards than buckets some shards own none).
    ///
    /// # Panics
    /// If `count` is not in `1..=MAX_BUCKETS` or `shards` is 0: validate such numbers from a user first.
    pub fn even(count: u32, shards: usize) -> BucketMap {
        assert!((1..=MAX_BUCKETS).contains(&count), "bucket count {count}");
        assert!(shards > 0, "an even split needs at least one shard");
        let start = |i: usize| (i as u64 * u64::from(count) / shards as u64) as usize;
        let mut owners = Vec::with_capacity(count as usize);
        for i in 0..shards {
            owners.resize(start(i + 1), ShardId(i));
        }
        BucketMap { owners, shards }
    }

    pub fn count(&self) -> u32 {
        self.owners.len() as u32
    }

    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// The bucket of a key whose partition hash (see `hash::partition_combine`) is `partition_hash`.
    pub fn bucket_of(&self, partition_hash: u64) -> Bucket {
        Bucket((partition_hash % u64::from(self.count())) as u32)
    }

    /// # Panics
    /// If `b` is not below `count()`; buckets from `bucket_of` always are.
    pub fn owner(&self, b: Bucket) -> ShardId {
        self.owners[b.0 as usize]
    }

    /// Inclusive ranges owned by a shard, ascending, merged.
    pub fn ranges_of(&self, shard: ShardId) -> Vec<RangeInclusive<u32>> {
        let mut ranges: Vec<RangeInclusive<u32>> = Vec::new();
        for bucket in self.buckets_of(shard) {
            match ranges.last_mut() {
                Some(last) if *last.end() + 1 == bucket => *last = *last.start()..=bucket,
                _ => ranges.push(bucket..=bucket),
            }
        }
        ranges
    }

    fn buckets_of(&self, shard: ShardId) -> impl Iterator<Item = u32> + '_ {
        (0..self.count()).filter(move |b| self.owners[*b as usize] == shard)
    }

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
        let mut heap: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = loads
            .iter()
            .enumerate()
            .map(|(i, load)| (*load, std::cmp::Reverse(i)))
            .collect();
        let mut given = vec![0usize; self.shards];
        for _ in 0..take {
            // take <= count, so some shard still has a bucket whenever we pop.
            let Some((load, std::cmp::Reverse(i))) = heap.pop() else {
                break;
            };
            given[i] += 1;
            heap.push((load - 1, std::cmp::Reverse(i)));
        }
        (0..self.shards)
            .filter(|i| given[*i] > 0)
            .map(|i| (given[i], ShardId(i)))
            .collect()
    }
}

/// Parses one bucket range as the shard map's YAML writes it: `"0-511"` or `"7"`.
pub fn parse_range(s: &str) -> Result<RangeInclusive<u32>, BucketError> {
    let bad = || BucketError::BadRange(s.to_string());
    let number = |text: &str| {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        text.parse::<u32>().map_err(|_| bad())
    };
    let (first, last) = match s.split_once('-') {
        Some((first, last)) => (number(first)?, number(last)?),
        None => (number(s)?, number(s)?),
    };
    if first > last {
        return Err(bad());
    }
    Ok(first..=last)
}

/// Formats a range the way [`parse_range`] reads it: `"0-511"`, or `"7"` for a single bucket.
pub fn format_range(r: &RangeInclusive<u32>) -> String {
    if r.start() == r.end() {
        r.start().to_string()
    } else {
        format!("{}-{}", r.start(), r.end())
    }
}

#[cfg(test)]
mod distribution;

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(map: &BucketMap) -> Vec<Vec<RangeInclusive<u32>>> {
        (0..map.shard_count())
            .map(|i| map.ranges_of(ShardId(i)))
            .collect()
    }

    fn check_from_ranges(
        count: u32,
        assignments: &[Vec<RangeInclusive<u32>>],
        want: Result<Vec<Vec<RangeInclusive<u32>>>, BucketError>,
    ) {
        let got = BucketMap::from_ranges(count, assignments);
        assert_eq!(got.map(|map| ranges(&map)), want, "{count} {assignments:?}");
    }

    #[test]
    fn from_ranges() {
        use BucketError::*;
        let s = ShardId;
        check_from_ranges(4, &[vec![0..=3]], Ok(vec![vec![0..=3]]));
        // Adjacent ranges merge; a shard may own nothing.
        check_from_ranges(
            6,
            &[vec![2..=3, 0..=1], vec![], vec![4..=4, 5..=5]],
            Ok(vec![vec![0..=3], vec![], vec![4..=5]]),
        );
        check_from_ranges(
            5,
            &[vec![0..=0, 4..=4], vec![1..=3]],
            Ok(vec![vec![0..=0, 4..=4], vec![1..=3]]),
        );
        check_from_ranges(0, &[vec![]], Err(NoBuckets));
        check_from_ranges(MAX_BUCKETS + 1, &[vec![0..=MAX_BUCKETS]], Err(NoBuckets));
        let out = |bucket, shard| {
            Err(OutOfRange {
                bucket,
                count: 4,
                shard,
            })
        };
        check_from_ranges(4, &[vec![0..=1], vec![2..=4]], out(4, s(1)));
        check_from_ranges(4, &[vec![0..=3, 7..=u32::MAX]], out(7, s(0)));
        check_from_ranges(
            4,
            &[vec![0..=2], vec![2..=3]],
            Err(Twice {
                bucket: 2,
                first: s(0),
                second: s(1),
            }),
        );
        check_from_ranges(
            4,
            &[vec![0..=3, 1..=1]],
            Err(Twice {
                bucket: 1,
                first: s(0),
                second: s(0),
            }),
        );
        check_from_ranges(
            8,
            &[vec![0..=1], vec![4..=5]],
            Err(Unassigned {
                bucket: 2,
                count: 4,
            }),
        );
        check_from_ranges(
            3,
            &[],
            Err(Unassigned {
                bucket: 0,
                count: 3,
            }),
        );
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 3..=1;
        check_from_ranges(4, &[vec![reversed]], Err(BadRange("3-1".into())));
    }

    #[test]
    fn even() {
        let check = |count, shards, want: Vec<Vec<RangeInclusive<u32>>>| {
            assert_eq!(
                ranges(&BucketMap::even(count, shards)),
                want,
                "{count} {shards}"
            );
        };
        check(1024, 1, vec![vec![0..=1023]]);
        check(
            1024,
            4,
            vec![
                vec![0..=255],
                vec![256..=511],
                vec![512..=767],
                vec![768..=1023],
            ],
        );
        check(10, 3, vec![vec![0..=2], vec![3..=5], vec![6..=9]]);
        check(2, 3, vec![vec![], vec![0..=0], vec![1..=1]]);
    }

    #[test]
    fn bucket_of_and_owner() {
        let map = BucketMap::even(1024, 4);
        let check = |hash: u64, bucket: u32, shard: usize| {
            assert_eq!(map.bucket_of(hash), Bucket(bucket), "{hash}");
            assert_eq!(map.owner(Bucket(bucket)), ShardId(shard), "{hash}");
        };
        check(0, 0, 0);
        check(1025, 1, 0);
        check(256, 256, 1);
        check(u64::MAX, 1023, 3);
    }

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

    #[test]
    fn parse_and_format_range() {
        let check = |text: &str, want: Result<RangeInclusive<u32>, ()>| {
            let got = parse_range(text);
            assert_eq!(
                got,
                want.clone()
                    .map_err(|()| BucketError::BadRange(text.into())),
                "{text:?}"
            );
            if let Ok(range) = want {
                assert_eq!(
                    parse_range(&format_range(&range)),
                    Ok(range),
                    "{text:?} round trip"
                );
            }
        };
        check("0-511", Ok(0..=511));
        check("7", Ok(7..=7));
        check("7-7", Ok(7..=7));
        check(" 3 - 9 ", Ok(3..=9));
        check("0-4294967295", Ok(0..=u32::MAX));
        for bad in [
            "",
            "-",
            "5-",
            "-5",
            "9-3",
            "a",
            "+5",
            "1-+2",
            "4294967296",
            "1-2-3",
            "1..2",
            "0x10",
        ] {
            check(bad, Err(()));
        }
        assert_eq!(format_range(&(0..=511)), "0-511");
        assert_eq!(format_range(&(7..=7)), "7");
    }
}
