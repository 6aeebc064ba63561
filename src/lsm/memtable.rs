//! The ordered in-memory table that takes writes before they reach an SSTable.
//!
//! Each entry's key and value sit side by side in an arena chunk the table's
//! entries share, so a write costs no allocation of its own and dropping the
//! table frees a few chunks, not every entry. Entries are never removed, so a
//! cursor can resume after releasing the lock and still see a consistent
//! snapshot: everything newer than its sequence is filtered out.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use bytes::{Bytes, BytesMut};

use super::batch::{Op, for_each_op};
use super::key::{self, KIND_DELETE, KIND_PUT, RangeTombstone};

/// A versioned entry: user key and value in one buffer, ordered by user key
/// ascending, then tag descending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemEntry {
    buf: Bytes,
    key_len: u32,
    pub(crate) tag: u64,
}

/// The size of the arena chunks entries are carved from.
const ARENA_CHUNK: usize = 1 << 20;

impl MemEntry {
    /// An entry of its own (a lookup probe).
    pub(crate) fn new(user: &[u8], tag: u64, value: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(user.len() + value.len());
        buf.extend_from_slice(user);
        buf.extend_from_slice(value);
        MemEntry {
            buf: Bytes::from(buf),
            key_len: user.len() as u32,
            tag,
        }
    }

    /// An entry carved from `arena`, which gets a new chunk when it has no
    /// room left. A large entry gets a buffer of its own instead, so that it
    /// never leaves the rest of a chunk unused.
    fn carve(arena: &mut BytesMut, user: &[u8], tag: u64, value: &[u8]) -> Self {
        let n = user.len() + value.len();
        if n > ARENA_CHUNK / 8 {
            return Self::new(user, tag, value);
        }
        if arena.capacity() - arena.len() < n {
            *arena = BytesMut::with_capacity(ARENA_CHUNK);
        }
        arena.extend_from_slice(user);
        arena.extend_from_slice(value);
        MemEntry {
            buf: arena.split().freeze(),
            key_len: user.len() as u32,
            tag,
        }
    }

    pub(crate) fn user(&self) -> &[u8] {
        &self.buf[..self.key_len as usize]
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.buf[self.key_len as usize..]
    }
}

impl Ord for MemEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        key::cmp_parts(self.user(), self.tag, other.user(), other.tag)
    }
}

impl PartialOrd for MemEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) type Map = BTreeSet<MemEntry>;

/// Carves the entries of a validated WAL payload from `arena`, handing each to `entry` and each
/// range tombstone to `tomb`; its highest sequence and the bytes it adds to a table.
fn entries_of(
    payload: &[u8],
    arena: &mut BytesMut,
    mut entry: impl FnMut(MemEntry),
    mut tomb: impl FnMut(RangeTombstone),
) -> (u64, usize) {
    let mut added = 0;
    let last = for_each_op(payload, |seq, op| {
        added += 48;
        match op {
            Op::Put(k, v) => {
                added += k.len() + v.len();
                entry(MemEntry::carve(arena, k, key::tag(seq, KIND_PUT), v));
            }
            Op::Delete(k) => {
                added += k.len();
                entry(MemEntry::carve(arena, k, key::tag(seq, KIND_DELETE), b""));
            }
            Op::DeleteRange(s, e) => {
                added += s.len() + e.len();
                tomb(RangeTombstone {
                    start: s.to_vec(),
                    end: e.to_vec(),
                    seq,
                });
            }
        }
    });
    (last.unwrap_or(0), added)
}

/// The memtable that open rebuilds from the WAL: its entries gathered, then sorted and built into
/// the tree at once. Inserted one by one, each searched the tree from its root, about half of
/// recovery's CPU; the WAL gives them mostly in order, which the sort passes through in one run,
/// and the tree is then built bottom up.
#[derive(Default)]
pub(crate) struct Replay {
    entries: Vec<MemEntry>,
    tombstones: Vec<RangeTombstone>,
    arena: BytesMut,
    size: usize,
}

impl Replay {
    /// Takes a WAL record payload that `for_each_op` has already validated; returns its highest
    /// sequence.
    pub(crate) fn apply_payload(&mut self, payload: &[u8]) -> u64 {
        let (entries, tombstones) = (&mut self.entries, &mut self.tombstones);
        let (last, added) = entries_of(
            payload,
            &mut self.arena,
            |e| entries.push(e),
            |t| tombstones.push(t),
        );
        self.size += added;
        last
    }

    pub(crate) fn finish(self) -> Memtable {
        let m = Memtable::new();
        *m.map.write().unwrap_or_else(|e| e.into_inner()) = self.entries.into_iter().collect();
        *m.tombstones.write().unwrap_or_else(|e| e.into_inner()) = self.tombstones;
        *m.arena.lock().unwrap_or_else(|e| e.into_inner()) = self.arena;
        m.size.store(self.size, Ordering::Relaxed);
        m
    }
}

/// What a point lookup found in one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Value(Vec<u8>),
    Deleted,
}

pub(crate) struct Memtable {
    map: RwLock<Map>,
    /// The chunk new entries are carved from; taken under the map's write lock.
    arena: Mutex<BytesMut>,
    tombstones: RwLock<Vec<RangeTombstone>>,
    /// Approximate bytes held, including per-entry overhead.
    size: AtomicUsize,
    /// The WAL segment that takes the writes made after this table is frozen;
    /// once this table is flushed every older segment can go.
    next_segment: AtomicU64,
    /// The last sequence in it, set when it is frozen: it is flushed only once every write up to
    /// there is visible (durable), so no table ever holds a version readers may not see yet.
    last_seq: AtomicU64,
    /// Whether a commit group was staged for it; its entries arrive later.
    staged: AtomicBool,
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Memtable {
            map: RwLock::new(BTreeSet::new()),
            arena: Mutex::new(BytesMut::new()),
            tombstones: RwLock::new(Vec::new()),
            size: AtomicUsize::new(0),
            next_segment: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            staged: AtomicBool::new(false),
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    pub(crate) fn set_next_segment(&self, segment: u64) {
        self.next_segment.store(segment, Ordering::Release);
    }

    pub(crate) fn next_segment(&self) -> u64 {
        self.next_segment.load(Ordering::Acquire)
    }

    pub(crate) fn set_last_seq(&self, seq: u64) {
        self.last_seq.store(seq, Ordering::Release);
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Applies a WAL record payload that `for_each_op` has already validated;
    /// returns its highest sequence.
    pub(crate) fn apply_payload(&self, payload: &[u8]) -> u64 {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let mut arena = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        let (last, added) = entries_of(
            payload,
            &mut arena,
            |e| {
                map.insert(e);
            },
            |t| {
                self.tombstones
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(t)
            },
        );
        self.size.fetch_add(added, Ordering::Relaxed);
        last
    }

    /// The newest version of `user` visible at `snapshot`, honouring range tombstones.
    pub(crate) fn get(&self, user: &[u8], snapshot: u64) -> Option<Found> {
        let tomb = {
            let tombs = self.tombstones.read().unwrap_or_else(|e| e.into_inner());
            key::max_covering(&tombs, user, snapshot)
        };
        let probe = MemEntry::new(user, key::lookup_tag(snapshot), b"");
        let map = self.read();
        let point = map
            .range((Bound::Included(&probe), Bound::Unbounded))
            .next()
            .filter(|e| e.user() == user);
        match point {
            Some(e) if key::tag_seq(e.tag) < tomb => Some(Found::Deleted),
            Some(e) if key::tag_kind(e.tag) == KIND_PUT => Some(Found::Value(e.value().to_vec())),
            Some(_) => Some(Found::Deleted),
            None if tomb > 0 => Some(Found::Deleted),
            None => None,
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn tombstones(&self) -> Vec<RangeTombstone> {
        self.tombstones
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Notes that a commit group was staged for this table.
    pub(crate) fn set_staged(&self) {
        self.staged.store(true, Ordering::Release);
    }

    /// Whether no write reached this table and none is on its way: a group
    /// staged for it may not be in it yet.
    pub(crate) fn is_empty(&self) -> bool {
        !self.staged.load(Ordering::Acquire)
            && self.read().is_empty()
            && self
                .tombstones
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    /// Up to `max` entries starting at `from` (inclusive) or just after it.
    pub(crate) fn chunk(&self, from: Bound<&MemEntry>, max: usize) -> Vec<MemEntry> {
        let map = self.read();
        map.range((from, Bound::Unbounded))
            .take(max)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::batch::WriteBatch;

    fn apply(m: &Memtable, seq: u64, b: &mut WriteBatch) {
        let mut payload = Vec::new();
        b.encode_into(&mut payload, seq);
        m.apply_payload(&payload);
    }

    #[test]
    fn lookups_see_the_newest_version_at_the_snapshot() {
        let m = Memtable::new();
        apply(&m, 1, WriteBatch::new().put(b"a", b"1").put(b"b", b"1"));
        apply(&m, 3, WriteBatch::new().delete(b"a").put(b"b", b"2"));
        apply(
            &m,
            5,
            WriteBatch::new().delete_range(b"b", b"c").put(b"bb", b"3"),
        );
        let check = |k: &[u8], snap: u64, want: Option<Found>| {
            assert_eq!(m.get(k, snap), want, "{k:?}@{snap}")
        };
        check(b"a", 1, Some(Found::Value(b"1".to_vec())));
        check(b"a", 2, Some(Found::Value(b"1".to_vec())));
        check(b"a", 3, Some(Found::Deleted));
        check(b"b", 3, Some(Found::Value(b"1".to_vec())));
        check(b"b", 4, Some(Found::Value(b"2".to_vec())));
        check(b"b", 5, Some(Found::Deleted));
        check(b"bb", 6, Some(Found::Value(b"3".to_vec())));
        check(b"bz", 6, Some(Found::Deleted));
        check(b"c", 6, None);
        check(b"a", 0, None);
        assert!(m.size() > 0);
    }

    /// A table rebuilt from the WAL holds what applying each payload in turn gives: entries, range
    /// tombstones and size, whatever order the keys come in.
    #[test]
    fn a_replayed_table_is_the_applied_one() {
        let applied = Memtable::new();
        let mut replay = Replay::default();
        for i in 0..300u64 {
            let k = format!("k{:03}", (i * 7919) % 120);
            let mut b = WriteBatch::new();
            match i % 5 {
                0 => b.delete(&k),
                1 => b.delete_range(&k, format!("{k}x")),
                _ => b.put(&k, format!("v{i}")),
            };
            let mut payload = Vec::new();
            b.encode_into(&mut payload, i + 1);
            applied.apply_payload(&payload);
            assert_eq!(replay.apply_payload(&payload), i + 1);
        }
        let replayed = replay.finish();
        let all = |m: &Memtable| m.chunk(Bound::Unbounded, usize::MAX);
        assert_eq!(all(&replayed), all(&applied));
        assert_eq!(replayed.tombstones(), applied.tombstones());
        assert_eq!(replayed.size(), applied.size());
        assert_eq!(
            replayed.get(b"k007", u64::MAX),
            applied.get(b"k007", u64::MAX)
        );
    }

    /// Entries carved from shared chunks keep their own bytes: across chunk
    /// ends, larger than a chunk, and after the table that carved them is gone.
    #[test]
    fn arena_entries_keep_their_bytes() {
        let value = |i: usize| {
            let len = match i % 50 {
                0 => ARENA_CHUNK + 3,
                1 => ARENA_CHUNK / 8 + 1,
                n => n * 97,
            };
            vec![(i % 251) as u8; len]
        };
        let m = Memtable::new();
        for i in 0..600 {
            apply(
                &m,
                i as u64 + 1,
                WriteBatch::new().put(format!("k{i:04}"), value(i)),
            );
        }
        let entries = m.chunk(std::ops::Bound::Unbounded, usize::MAX);
        drop(m);
        assert_eq!(entries.len(), 600);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.user(), format!("k{i:04}").as_bytes());
            assert_eq!(e.value(), &value(i)[..], "entry {i}");
        }
    }
}
