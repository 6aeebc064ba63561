//! WAL record framing, shared with the manifest.
//!
//! ```text
//! crc32c: u32 LE | length: u32 LE | kind: u8 | segment: u64 LE | payload[length]
//! ```
//! The CRC32C (Castagnoli, hardware accelerated) covers everything after itself.
//! The segment number inside each record lets a reused segment file never replay
//! stale records left from its previous life: they carry another number.

pub(crate) const HEADER_LEN: usize = 17;
/// Records larger than this are taken as a damaged length field.
pub(crate) const MAX_PAYLOAD: usize = 256 << 20;

pub(crate) const KIND_BATCH: u8 = 1;
pub(crate) const KIND_EDIT: u8 = 2;
/// Marks the clean end of a WAL segment that was rotated away from.
pub(crate) const KIND_END: u8 = 3;

/// Something that frames itself into a byte buffer.
pub(crate) trait Encode {
    fn encode(&self, buf: &mut Vec<u8>);
}

/// A record about to be written.
pub(crate) struct Record<'a> {
    pub(crate) kind: u8,
    pub(crate) segment: u64,
    pub(crate) payload: &'a [u8],
}

impl Encode for Record<'_> {
    fn encode(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        buf.push(self.kind);
        buf.extend_from_slice(&self.segment.to_le_bytes());
        buf.extend_from_slice(self.payload);
        let crc = crc32c::crc32c(&buf[start + 4..]);
        buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// What sits at the front of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole record with a good checksum; `len` is its framed length.
    Good {
        kind: u8,
        segment: u64,
        payload: &'a [u8],
        len: usize,
    },
    /// The slice ends before the record does (a torn write, or the end).
    Incomplete,
    /// The record fits but its checksum or length is wrong.
    Bad,
}

pub(crate) fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let (crc, len) = (word(0), word(4) as usize);
    if len > MAX_PAYLOAD {
        return Decoded::Bad;
    }
    let Some(body) = buf.get(4..HEADER_LEN + len) else {
        return Decoded::Incomplete;
    };
    if crc32c::crc32c(body) != crc {
        return Decoded::Bad;
    }
    let mut seg = [0u8; 8];
    seg.copy_from_slice(&buf[9..17]);
    Decoded::Good {
        kind: buf[8],
        segment: u64::from_le_bytes(seg),
        payload: &buf[HEADER_LEN..HEADER_LEN + len],
        len: HEADER_LEN + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(kind: u8, segment: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        Record {
            kind,
            segment,
            payload,
        }
        .encode(&mut buf);
        buf
    }

    #[test]
    fn record_bytes_are_exact() {
        let buf = framed(KIND_BATCH, 0x0102, b"hi");
        let body = [2, 0, 0, 0, 1, 0x02, 0x01, 0, 0, 0, 0, 0, 0, b'h', b'i'];
        let mut want = crc32c::crc32c(&body).to_le_bytes().to_vec();
        want.extend_from_slice(&body);
        assert_eq!(buf, want);
        assert_eq!(
            crc32c::crc32c(b"123456789"),
            0xe306_9283,
            "Castagnoli check value"
        );
    }

    #[test]
    fn decode_classifies_every_prefix_and_flip() {
        let buf = framed(KIND_EDIT, 9, b"payload");
        let good = Decoded::Good {
            kind: KIND_EDIT,
            segment: 9,
            payload: b"payload",
            len: buf.len(),
        };
        assert_eq!(decode(&buf), good);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
        for byte in 0..buf.len() {
            let mut bad = buf.clone();
            bad[byte] ^= 0x10;
            let got = decode(&bad);
            assert!(
                matches!(got, Decoded::Bad | Decoded::Incomplete),
                "flip at {byte}: {got:?}"
            );
        }
    }
}
