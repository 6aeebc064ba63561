//! Sweeps range tombstones alongside keys visited in ascending order, so a
//! scan, flush or compaction pays for the tombstones near its position, not
//! for every tombstone on each key.

use super::key::RangeTombstone;

pub(crate) struct TombstoneCursor {
    /// Tombstones visible at the snapshot, sorted by start key.
    by_start: Vec<RangeTombstone>,
    next: usize,
    /// Indices of tombstones that started at or before the last key seen.
    active: Vec<usize>,
}

impl TombstoneCursor {
    pub(crate) fn new(mut tombs: Vec<RangeTombstone>, snapshot: u64) -> Self {
        tombs.retain(|t| t.seq <= snapshot && t.start < t.end);
        tombs.sort_by(|a, b| a.start.cmp(&b.start));
        TombstoneCursor {
            by_start: tombs,
            next: 0,
            active: Vec::new(),
        }
    }

    /// The newest sequence of a tombstone covering `user`, or 0. Keys must come
    /// in non-decreasing order.
    pub(crate) fn covering(&mut self, user: &[u8]) -> u64 {
        while self
            .by_start
            .get(self.next)
            .is_some_and(|t| t.start.as_slice() <= user)
        {
            self.active.push(self.next);
            self.next += 1;
        }
        let by_start = &self.by_start;
        self.active.retain(|&i| user < by_start[i].end.as_slice());
        self.active
            .iter()
            .map(|&i| by_start[i].seq)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: &str, end: &str, seq: u64) -> RangeTombstone {
        RangeTombstone {
            start: start.into(),
            end: end.into(),
            seq,
        }
    }

    #[test]
    fn sweeps_in_key_order() {
        let tombs = vec![
            t("m", "p", 7),
            t("b", "d", 5),
            t("c", "k", 9),
            t("x", "x", 3),
            t("q", "z", 20),
        ];
        let mut c = TombstoneCursor::new(tombs, 10);
        let check = |c: &mut TombstoneCursor, key: &str, want: u64| {
            assert_eq!(c.covering(key.as_bytes()), want, "{key}")
        };
        check(&mut c, "a", 0);
        check(&mut c, "b", 5);
        check(&mut c, "c", 9);
        check(&mut c, "d", 9);
        check(&mut c, "k", 0);
        check(&mut c, "n", 7);
        check(&mut c, "p", 0);
        check(&mut c, "r", 0); // seq 20 is above the snapshot
        check(&mut c, "x", 0); // empty range
    }
}
