//! A bloom filter over user keys, about 10 bits per key for a ~1% false-positive rate.
//!
//! Layout: `lines[n * 64] | k: u8`. It is cache-line blocked: the high half of
//! a key's 64-bit hash picks one 64-byte line and all k probes fall inside it
//! (double hashing on the low half), so a lookup costs one cache miss per table.

pub(crate) struct BloomBuilder {
    hashes: Vec<u64>,
    bits_per_key: usize,
}

impl BloomBuilder {
    pub(crate) fn new(bits_per_key: usize) -> Self {
        BloomBuilder {
            hashes: Vec::new(),
            bits_per_key: bits_per_key.max(1),
        }
    }

    pub(crate) fn add(&mut self, user_key: &[u8]) {
        let h = hash(user_key);
        // Versions of one key arrive together: skip the repeat.
        if self.hashes.last() != Some(&h) {
            self.hashes.push(h);
        }
    }

    pub(crate) fn finish(&self) -> Vec<u8> {
        let k = ((self.bits_per_key as f64) * 0.69).round().clamp(1.0, 30.0) as u8;
        let lines = (self.hashes.len() * self.bits_per_key)
            .div_ceil(LINE_BITS)
            .max(1);
        let mut out = vec![0u8; lines * LINE_BYTES + 1];
        for &h in &self.hashes {
            let line = line_of(h, lines) * LINE_BYTES;
            for bit in probes(h, k) {
                out[line + bit / 8] |= 1 << (bit % 8);
            }
        }
        out[lines * LINE_BYTES] = k;
        out
    }
}

/// Whether `user_key` may be in the set the filter was built from. A malformed
/// filter answers "maybe", which only costs a block read.
#[cfg(test)]
pub(crate) fn may_contain(filter: &[u8], user_key: &[u8]) -> bool {
    may_contain_hash(filter, hash(user_key))
}

/// `may_contain` for a key hashed once with [`hash`], for probing many tables.
pub(crate) fn may_contain_hash(filter: &[u8], h: u64) -> bool {
    let Some((&k, bits)) = filter.split_last() else {
        return true;
    };
    if bits.is_empty() || bits.len() % LINE_BYTES != 0 || k == 0 || k > 30 {
        return true;
    }
    let start = line_of(h, bits.len() / LINE_BYTES) * LINE_BYTES;
    let line = &bits[start..start + LINE_BYTES];
    probes(h, k).all(|bit| line[bit / 8] & (1 << (bit % 8)) != 0)
}

const LINE_BYTES: usize = 64;
const LINE_BITS: usize = LINE_BYTES * 8;

fn line_of(h: u64, lines: usize) -> usize {
    // Multiply-shift maps the high 32 bits onto 0..lines without a division.
    (((h >> 32) * lines as u64) >> 32) as usize
}

/// Bit positions inside the line: double hashing over the low 32 bits.
fn probes(h: u64, k: u8) -> impl Iterator<Item = usize> {
    let h1 = h as u32;
    let h2 = (h1.rotate_right(17)) | 1;
    (0..u32::from(k)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) as usize) % LINE_BITS)
}

/// A 64-bit hash with full avalanche: word-at-a-time multiply-xorshift, then a
/// splitmix64 finaliser.
pub(crate) fn hash(data: &[u8]) -> u64 {
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(M).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(M);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let mut b = BloomBuilder::new(10);
        for i in 0..20_000u32 {
            b.add(format!("key{i:08}").as_bytes());
        }
        let f = b.finish();
        for i in 0..20_000u32 {
            assert!(may_contain(&f, format!("key{i:08}").as_bytes()));
        }
        let fp = (0..100_000u32)
            .filter(|i| may_contain(&f, format!("miss{i:08}").as_bytes()))
            .count();
        let rate = fp as f64 / 100_000.0;
        eprintln!(
            "bloom filter, 10 bits per key: measured false-positive rate {:.3}%",
            rate * 100.0
        );
        assert!((0.005..0.015).contains(&rate), "false-positive rate {rate}");
    }

    #[test]
    fn filter_bytes_are_exact() {
        let mut b = BloomBuilder::new(10);
        b.add(b"a");
        let f = b.finish();
        assert_eq!(f.len(), 64 + 1, "one cache line plus k");
        assert_eq!(*f.last().unwrap(), 7);
        let set: u32 = f[..64].iter().map(|b| b.count_ones()).sum();
        assert!((1..=7).contains(&set));
        assert!(may_contain(&[], b"a"), "an empty filter says maybe");
        assert_eq!(
            hash(b"shardgate"),
            0x9220_ac3f_83cc_c5c1,
            "hash is part of the format"
        );
    }
}
