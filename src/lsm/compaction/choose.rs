//! Decides which compaction to run next, from a version's shape alone.
//!
//! Level 0 is scored by table count against its trigger, deeper levels by size
//! against a target that grows by `level_size_ratio` per level. The level with
//! the highest score of at least 1 is compacted into the next level.

use std::sync::Arc;

use crate::lsm::options::Options;
use crate::lsm::version::{NUM_LEVELS, TableFile, Version};

pub(crate) struct Choice {
    pub(crate) level: usize,
    pub(crate) output_level: usize,
    pub(crate) inputs: Vec<Arc<TableFile>>,
    /// Tables of `output_level` overlapping the inputs (merged with them).
    pub(crate) next: Vec<Arc<TableFile>>,
    /// No deeper level holds data in the key range: tombstones may be dropped.
    pub(crate) bottom: bool,
    /// A single table with nothing to merge against: just relink it.
    pub(crate) trivial_move: bool,
}

pub(crate) fn level_target(o: &Options, level: usize) -> u64 {
    let mut t = o.level1_size.max(1);
    for _ in 1..level {
        t = t.saturating_mul(o.level_size_ratio.max(2));
    }
    t
}

pub(crate) fn choose(v: &Version, o: &Options) -> Option<Choice> {
    let mut best: Option<(f64, usize)> = None;
    for level in 0..NUM_LEVELS - 1 {
        let score = if level == 0 {
            v.levels[0].len() as f64 / o.l0_compaction_trigger.max(1) as f64
        } else {
            v.level_bytes(level) as f64 / level_target(o, level) as f64
        };
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    }
    let (_, level) = best?;
    let inputs = if level == 0 {
        v.levels[0].clone()
    } else {
        vec![pick_file(v, level)]
    };
    Some(plan(v, level, level + 1, inputs, true))
}

/// The next step of a manual full compaction: push the shallowest level down
/// until all data is in one level, then rewrite that level in place (which
/// drops every tombstone). The caller stops after an in-place step.
pub(crate) fn choose_manual(v: &Version) -> Option<Choice> {
    let shallowest = (0..NUM_LEVELS).find(|&l| !v.levels[l].is_empty())?;
    let deepest = (0..NUM_LEVELS).rev().find(|&l| !v.levels[l].is_empty())?;
    let inputs = v.levels[shallowest].clone();
    if shallowest < deepest || shallowest == 0 {
        return Some(plan(v, shallowest, shallowest + 1, inputs, false));
    }
    Some(plan(v, shallowest, shallowest, inputs, false))
}

fn pick_file(v: &Version, level: usize) -> Arc<TableFile> {
    let files = &v.levels[level];
    let pointer = &v.compact_pointer[level];
    files
        .iter()
        .find(|f| f.meta.smallest > *pointer)
        .unwrap_or(&files[0])
        .clone()
}

fn plan(
    v: &Version,
    level: usize,
    output_level: usize,
    inputs: Vec<Arc<TableFile>>,
    allow_move: bool,
) -> Choice {
    let lo = inputs
        .iter()
        .map(|f| f.meta.smallest.as_slice())
        .min()
        .unwrap_or_default()
        .to_vec();
    let hi = inputs
        .iter()
        .map(|f| f.meta.largest.as_slice())
        .max()
        .unwrap_or_default()
        .to_vec();
    let next = if output_level == level {
        Vec::new()
    } else {
        v.overlapping(output_level, &lo, &hi)
    };
    let (lo, hi) = next.iter().fold((lo, hi), |(lo, hi), f| {
        (
            lo.min(f.meta.smallest.clone()),
            hi.max(f.meta.largest.clone()),
        )
    });
    let bottom = (output_level + 1..NUM_LEVELS).all(|l| v.overlapping(l, &lo, &hi).is_empty());
    let trivial_move = allow_move && inputs.len() == 1 && next.is_empty() && output_level != level;
    Choice {
        level,
        output_level,
        inputs,
        next,
        bottom,
        trivial_move,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::version::FileMeta;

    fn file(number: u64, lo: &str, hi: &str, size: u64) -> Arc<TableFile> {
        TableFile::detached(FileMeta {
            number,
            size,
            smallest: lo.into(),
            largest: hi.into(),
            max_seq: number,
            ..FileMeta::default()
        })
    }

    fn version(levels: &[&[Arc<TableFile>]]) -> Version {
        let mut v = Version::default();
        for (l, files) in levels.iter().enumerate() {
            v.levels[l] = files.to_vec();
        }
        v.sort();
        v
    }

    fn numbers(files: &[Arc<TableFile>]) -> Vec<u64> {
        let mut n: Vec<u64> = files.iter().map(|f| f.meta.number).collect();
        n.sort();
        n
    }

    fn opts() -> Options {
        Options {
            l0_compaction_trigger: 2,
            level1_size: 100,
            level_size_ratio: 10,
            ..Options::default()
        }
    }

    #[test]
    fn decisions_follow_scores() {
        /// (level, inputs, next-level inputs, bottom, trivial move)
        type Want = Option<(usize, Vec<u64>, Vec<u64>, bool, bool)>;
        struct Case {
            name: &'static str,
            v: Version,
            want: Want,
        }
        let cases = [
            Case {
                name: "quiet",
                v: version(&[&[file(1, "a", "c", 10)], &[file(2, "a", "z", 50)]]),
                want: None,
            },
            Case {
                name: "l0 full pulls overlapping l1",
                v: version(&[
                    &[file(5, "a", "c", 10), file(6, "b", "d", 10)],
                    &[file(2, "a", "b", 10), file(3, "x", "z", 10)],
                ]),
                want: Some((0, vec![5, 6], vec![2], true, false)),
            },
            Case {
                name: "l1 over target, data below",
                v: version(&[
                    &[],
                    &[file(2, "a", "f", 150)],
                    &[file(3, "g", "k", 10)],
                    &[file(4, "a", "c", 10)],
                ]),
                want: Some((1, vec![2], vec![], false, true)),
            },
            Case {
                name: "l2 over target is bottom",
                v: version(&[
                    &[],
                    &[],
                    &[file(3, "a", "k", 2000)],
                    &[file(4, "m", "z", 10)],
                ]),
                want: Some((2, vec![3], vec![], true, true)),
            },
        ];
        for c in cases {
            let got = choose(&c.v, &opts()).map(|ch| {
                (
                    ch.level,
                    numbers(&ch.inputs),
                    numbers(&ch.next),
                    ch.bottom,
                    ch.trivial_move,
                )
            });
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn manual_compaction_walks_down_then_rewrites_in_place() {
        let v = version(&[&[file(5, "a", "c", 10)], &[], &[file(3, "b", "k", 10)]]);
        let c = choose_manual(&v).unwrap();
        assert_eq!((c.level, c.output_level, c.trivial_move), (0, 1, false));
        let v = version(&[&[], &[], &[file(3, "b", "k", 10)]]);
        let c = choose_manual(&v).unwrap();
        assert_eq!((c.level, c.output_level, c.bottom), (2, 2, true));
        assert!(choose_manual(&Version::default()).is_none());
    }
}
