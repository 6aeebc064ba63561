//! A bloom filter over user keys, about 10 bits per key for a ~1% false-positive rate.
//!
//! Layout: `bits[m/8] | k: u8`. Probes use double hashing (Kirsch-Mitzenmacher)
//! over one 64-bit hash, so a lookup hashes the key once.

pub(crate) struct BloomBuilder {
    hashes: Vec<u64>,
    bits_per_key: usize,
}

impl BloomBuilder {
    pub(crate) fn new(bits_per_key: usize) -> Self {
        BloomBuilder { hashes: Vec::new(), bits_per_key: bits_per_key.max(1) }
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
        let bits = (self.hashes.len() * self.bits_per_key).max(64).next_multiple_of(8);
        let mut out = vec![0u8; bits / 8 + 1];
        for &h in &self.hashes {
            for bit in probes(h, k, bits as u64) {
                out[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        out[bits / 8] = k;
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
    let Some((&k, bits)) = filter.split_last() else { return true };
    if bits.is_empty() || k == 0 || k > 30 {
        return true;
    }
    let m = bits.len() as u64 * 8;
    probes(h, k, m).all(|bit| bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
}

fn probes(h: u64, k: u8, m: u64) -> impl Iterator<Item = u64> {
    let h1 = h;
    let h2 = h.rotate_left(32) | 1;
    (0..u64::from(k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
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
        let fp = (0..100_000u32).filter(|i| may_contain(&f, format!("miss{i:08}").as_bytes())).count();
        let rate = fp as f64 / 100_000.0;
        eprintln!("bloom filter, 10 bits per key: measured false-positive rate {:.3}%", rate * 100.0);
        assert!((0.005..0.015).contains(&rate), "false-positive rate {rate}");
    }

    #[test]
    fn filter_bytes_are_exact() {
        let mut b = BloomBuilder::new(10);
        b.add(b"a");
        let f = b.finish();
        assert_eq!(f.len(), 64 / 8 + 1, "minimum 64 bits plus k");
        assert_eq!(*f.last().unwrap(), 7);
        let set: u32 = f[..8].iter().map(|b| b.count_ones()).sum();
        assert!((1..=7).contains(&set));
        assert!(may_contain(&[], b"a"), "an empty filter says maybe");
    }
}
