//! Write batches and their encoding inside a WAL record.
//!
//! A commit group is one WAL record holding several batches, each prefixed by
//! its first sequence number. The record's checksum makes every batch in it
//! atomic across a crash: it is replayed whole or not at all.

use super::codec::{Cursor, put_bytes};

const OP_DELETE: u8 = 0;
const OP_PUT: u8 = 1;
const OP_DELETE_RANGE: u8 = 2;

/// A set of writes applied atomically, with consecutive sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) rep: Vec<u8>,
    pub(crate) count: u32,
    /// Bytes of keys and values the caller handed in, for memtable accounting.
    pub(crate) user_bytes: usize,
}

/// One decoded operation of a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
    DeleteRange(&'a [u8], &'a [u8]),
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        self.push(OP_PUT, key.as_ref(), Some(value.as_ref()))
    }

    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(OP_DELETE, key.as_ref(), None)
    }

    /// Deletes every key `k` with `start <= k < end`.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> &mut Self {
        self.push(OP_DELETE_RANGE, start.as_ref(), Some(end.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn clear(&mut self) {
        self.rep.clear();
        self.count = 0;
        self.user_bytes = 0;
    }

    fn push(&mut self, op: u8, key: &[u8], second: Option<&[u8]>) -> &mut Self {
        self.rep
            .reserve(key.len() + second.map_or(0, <[u8]>::len) + 11);
        self.rep.push(op);
        put_bytes(&mut self.rep, key);
        if let Some(v) = second {
            put_bytes(&mut self.rep, v);
        }
        self.count += 1;
        self.user_bytes += key.len() + second.map_or(0, <[u8]>::len) + 16;
        self
    }

    /// The bytes `encode_into` appends.
    pub(crate) fn encoded_len(&self) -> usize {
        16 + self.rep.len()
    }

    /// Appends this batch, starting at sequence `seq`, to a WAL record payload.
    pub(crate) fn encode_into(&self, payload: &mut Vec<u8>, seq: u64) {
        payload.extend_from_slice(&seq.to_le_bytes());
        payload.extend_from_slice(&self.count.to_le_bytes());
        payload.extend_from_slice(&(self.rep.len() as u32).to_le_bytes());
        payload.extend_from_slice(&self.rep);
    }
}

/// Calls `f(sequence, op)` for every operation of a WAL record payload, in
/// order; returns the highest sequence, or the offset of the first malformed
/// byte. Run it once with a no-op `f` to validate before applying anything.
pub(crate) fn for_each_op<'a>(
    payload: &'a [u8],
    mut f: impl FnMut(u64, Op<'a>),
) -> Result<u64, usize> {
    let mut c = Cursor::new(payload);
    let mut last = 0;
    while !c.is_empty() {
        let at = c.pos;
        let (seq, count, len) = match (c.u64(), c.u32(), c.u32()) {
            (Some(s), Some(n), Some(l)) => (s, n, l as usize),
            _ => return Err(at),
        };
        let rep = c.take(len).ok_or(at)?;
        let mut ops = Cursor::new(rep);
        for i in 0..u64::from(count) {
            let op_at = ops.pos;
            let op = match ops.u8() {
                Some(OP_PUT) => ops.bytes().and_then(|k| Some(Op::Put(k, ops.bytes()?))),
                Some(OP_DELETE) => ops.bytes().map(Op::Delete),
                Some(OP_DELETE_RANGE) => ops
                    .bytes()
                    .and_then(|s| Some(Op::DeleteRange(s, ops.bytes()?))),
                _ => None,
            };
            f(seq + i, op.ok_or(at + 16 + op_at)?);
            last = seq + i;
        }
        if !ops.is_empty() {
            return Err(at + 16 + ops.pos);
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_are_exact() {
        let mut b = WriteBatch::new();
        b.put(b"k", b"vv").delete(b"d").delete_range(b"a", b"c");
        let mut payload = Vec::new();
        b.encode_into(&mut payload, 7);
        let want: Vec<u8> = [
            &7u64.to_le_bytes()[..],
            &3u32.to_le_bytes(),
            &14u32.to_le_bytes(),
            &[1, 1, b'k', 2, b'v', b'v'],
            &[0, 1, b'd'],
            &[2, 1, b'a', 1, b'c'],
        ]
        .concat();
        assert_eq!(payload, want);
        let mut ops = Vec::new();
        assert_eq!(for_each_op(&payload, |seq, op| ops.push((seq, op))), Ok(9));
        assert_eq!(
            ops,
            vec![
                (7, Op::Put(b"k", b"vv")),
                (8, Op::Delete(b"d")),
                (9, Op::DeleteRange(b"a", b"c"))
            ]
        );
    }

    #[test]
    fn malformed_payloads_report_an_offset() {
        let mut b = WriteBatch::new();
        b.put(b"key", b"value");
        let mut payload = Vec::new();
        b.encode_into(&mut payload, 1);
        for cut in 1..payload.len() {
            assert!(
                for_each_op(&payload[..cut], |_, _| {}).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = payload.clone();
        bad[16] = 9; // unknown op
        assert_eq!(for_each_op(&bad, |_, _| {}).err(), Some(16));
    }
}
