//! Internal keys: a user key plus a tag (sequence number << 8 | kind).
//!
//! Internal keys sort by user key ascending, then tag descending, so the newest
//! version of a key comes first and a lookup for (key, snapshot) lands on the
//! newest version the snapshot may see.

use std::cmp::Ordering;

pub(crate) const KIND_DELETE: u8 = 0;
pub(crate) const KIND_PUT: u8 = 1;
/// Largest sequence number: 56 bits, the tag keeps 8 bits for the kind.
pub(crate) const MAX_SEQ: u64 = (1 << 56) - 1;
pub(crate) const TAG_LEN: usize = 8;

pub(crate) fn tag(seq: u64, kind: u8) -> u64 {
    (seq << 8) | u64::from(kind)
}

pub(crate) fn tag_seq(tag: u64) -> u64 {
    tag >> 8
}

pub(crate) fn tag_kind(tag: u64) -> u8 {
    tag as u8
}

/// The tag that sorts before every version with a sequence at most `seq`.
pub(crate) fn lookup_tag(seq: u64) -> u64 {
    tag(seq, 0xff)
}

pub(crate) fn encode(buf: &mut Vec<u8>, user: &[u8], tag: u64) {
    buf.extend_from_slice(user);
    buf.extend_from_slice(&tag.to_le_bytes());
}

/// Splits an internal key; callers have checked that it is at least `TAG_LEN` long.
pub(crate) fn split(ikey: &[u8]) -> (&[u8], u64) {
    let n = ikey.len().saturating_sub(TAG_LEN);
    let mut t = [0u8; 8];
    t.copy_from_slice(&ikey[n..]);
    (&ikey[..n], u64::from_le_bytes(t))
}

pub(crate) fn cmp_parts(a_user: &[u8], a_tag: u64, b_user: &[u8], b_tag: u64) -> Ordering {
    a_user.cmp(b_user).then(b_tag.cmp(&a_tag))
}

pub(crate) fn cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (au, at) = split(a);
    let (bu, bt) = split(b);
    cmp_parts(au, at, bu, bt)
}

/// A range tombstone: every key in `start..end` older than `seq` is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeTombstone {
    pub(crate) start: Vec<u8>,
    pub(crate) end: Vec<u8>,
    pub(crate) seq: u64,
}

/// The newest range-tombstone sequence visible at `snapshot` that covers `user`, or 0.
pub(crate) fn max_covering(tombs: &[RangeTombstone], user: &[u8], snapshot: u64) -> u64 {
    tombs
        .iter()
        .filter(|t| t.seq <= snapshot && t.start.as_slice() <= user && user < t.end.as_slice())
        .map(|t| t.seq)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ik(user: &[u8], seq: u64, kind: u8) -> Vec<u8> {
        let mut b = Vec::new();
        encode(&mut b, user, tag(seq, kind));
        b
    }

    #[test]
    fn newest_version_sorts_first_and_prefixes_sort_before() {
        let cases = [
            (ik(b"a", 5, KIND_PUT), ik(b"a", 4, KIND_PUT), Ordering::Less),
            (
                ik(b"a", 5, KIND_PUT),
                ik(b"ab", 9, KIND_PUT),
                Ordering::Less,
            ),
            (
                ik(b"b", 1, KIND_PUT),
                ik(b"ab", 9, KIND_PUT),
                Ordering::Greater,
            ),
            (
                ik(b"a", 5, KIND_PUT),
                ik(b"a", 5, KIND_DELETE),
                Ordering::Less,
            ),
            (ik(b"", 1, KIND_PUT), ik(b"", 1, KIND_PUT), Ordering::Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(cmp(&a, &b), want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn internal_key_bytes_are_exact() {
        assert_eq!(
            ik(b"k", 0x0102, KIND_PUT),
            [b'k', 0x01, 0x02, 0x01, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            split(&ik(b"k", 7, KIND_DELETE)),
            (&b"k"[..], tag(7, KIND_DELETE))
        );
    }

    #[test]
    fn tombstone_coverage_respects_snapshot_and_bounds() {
        let t = [
            RangeTombstone {
                start: b"b".to_vec(),
                end: b"d".to_vec(),
                seq: 10,
            },
            RangeTombstone {
                start: b"c".to_vec(),
                end: b"e".to_vec(),
                seq: 5,
            },
        ];
        let check = |user: &[u8], snapshot: u64, want: u64| {
            assert_eq!(
                max_covering(&t, user, snapshot),
                want,
                "{user:?}@{snapshot}"
            )
        };
        check(b"b", 10, 10);
        check(b"c", 20, 10);
        check(b"d", 20, 5);
        check(b"e", 20, 0);
        check(b"c", 9, 5);
        check(b"a", 20, 0);
    }
}
