//! Virtual buckets: the partition-hash space cut into a fixed number of buckets (fixed when the map is
//! created), each owned by exactly one shard. Resharding moves whole buckets. Pure.

use std::ops::RangeInclusive;

use super::ShardId;

mod plan;

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
    #[error("a bucket map needs at least one bucket")]
    NoBuckets,
    #[error("{0} buckets is more than the {MAX_BUCKETS} a bucket map may have")]
    TooMany(u32),
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
        if count == 0 {
            return Err(BucketError::NoBuckets);
        }
        if count > MAX_BUCKETS {
            return Err(BucketError::TooMany(count));
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

    /// Every shard's ranges, by shard.
    pub(super) fn ranges(map: &BucketMap) -> Vec<Vec<RangeInclusive<u32>>> {
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
        check_from_ranges(
            MAX_BUCKETS + 1,
            &[vec![0..=MAX_BUCKETS]],
            Err(TooMany(MAX_BUCKETS + 1)),
        );
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
