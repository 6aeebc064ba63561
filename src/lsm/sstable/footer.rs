//! The fixed-size table footer: where the index, filter and range-tombstone
//! blocks are, checksummed, ending in a magic number.
//!
//! ```text
//! index: off u64, len u64 | filter: off u64, len u64 | tombstones: off u64, len u64
//! | format version u32 | crc32c of the 52 bytes before it u32 | magic u64   (all LE)
//! ```

use crate::lsm::codec::{u32_at, u64_at};

pub(crate) const FOOTER_LEN: usize = 64;
pub(crate) const MAGIC: u64 = 0x5348_4752_4c53_4d31; // "SHGRLSM1"
const VERSION: u32 = 1;

/// Where a block is: `len` excludes its 4-byte checksum trailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Handle {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) index: Handle,
    pub(crate) filter: Handle,
    pub(crate) tombstones: Handle,
}

impl Footer {
    pub(crate) fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        let words = [
            self.index.offset,
            self.index.len,
            self.filter.offset,
            self.filter.len,
            self.tombstones.offset,
            self.tombstones.len,
        ];
        for (i, w) in words.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out[48..52].copy_from_slice(&VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&out[..52]);
        out[52..56].copy_from_slice(&crc.to_le_bytes());
        out[56..64].copy_from_slice(&MAGIC.to_le_bytes());
        out
    }

    /// Decodes and verifies a footer; `Err` says what is wrong.
    pub(crate) fn decode(b: &[u8]) -> Result<Footer, &'static str> {
        if b.len() != FOOTER_LEN {
            return Err("file too short for a footer");
        }
        if u64_at(b, 56) != Some(MAGIC) {
            return Err("bad magic number");
        }
        if u32_at(b, 52) != Some(crc32c::crc32c(&b[..52])) {
            return Err("footer checksum mismatch");
        }
        if u32_at(b, 48) != Some(VERSION) {
            return Err("unknown table format version");
        }
        let w = |i: usize| u64_at(b, i * 8).unwrap_or(0);
        let h = |i: usize| Handle {
            offset: w(i),
            len: w(i + 1),
        };
        Ok(Footer {
            index: h(0),
            filter: h(2),
            tombstones: h(4),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_bytes_are_exact_and_checked() {
        let f = Footer {
            index: Handle { offset: 1, len: 2 },
            filter: Handle { offset: 3, len: 4 },
            tombstones: Handle { offset: 5, len: 6 },
        };
        let b = f.encode();
        assert_eq!(&b[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[48..52], &[1, 0, 0, 0]);
        assert_eq!(&b[56..], b"1MSLRGHS");
        assert_eq!(Footer::decode(&b), Ok(f));
        for byte in 0..FOOTER_LEN {
            let mut bad = b;
            bad[byte] ^= 4;
            assert!(Footer::decode(&bad).is_err(), "flip at {byte}");
        }
    }
}
