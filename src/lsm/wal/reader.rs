//! WAL recovery: replays segments in order, truncating a torn tail and refusing
//! to open on corruption in the middle of the log unless salvage is asked for.

use std::fs::OpenOptions;
use std::io::Read;
use std::path::Path;

use super::record::{Decoded, HEADER_LEN, KIND_BATCH, KIND_END, MAX_PAYLOAD, decode};
use crate::lsm::error::{Error, Result};

/// How a segment's scan ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte was a good record.
    Clean,
    /// A torn or stale tail starting at `valid_len`, safe to cut off.
    Tail { valid_len: u64 },
    /// Corruption at `valid_len` accepted under salvage: the log stops there.
    Salvaged { valid_len: u64 },
}

/// Bytes read from a segment at a time: reused, so recovery does not fault in
/// a buffer as large as the log.
const CHUNK: usize = 4 << 20;

/// Reads a segment from `src` and calls `apply(payload, offset)` for each good
/// record, in order.
pub(crate) fn scan(
    path: &Path,
    segment: u64,
    mut src: impl Read,
    is_last: bool,
    salvage: bool,
    mut apply: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<End> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let (mut base, mut pos, mut eof) = (0u64, 0usize, false);
    loop {
        if pos == buf.len() && eof {
            return Ok(End::Clean);
        }
        let reason = match decode(&buf[pos..]) {
            Decoded::Good {
                kind: KIND_BATCH,
                segment: s,
                payload,
                len,
            } if s == segment => {
                apply(payload, base + pos as u64)?;
                pos += len;
                continue;
            }
            Decoded::Good {
                kind: KIND_END,
                segment: s,
                ..
            } if s == segment => return Ok(End::Clean),
            // A record from this file's earlier life as another segment: the end.
            Decoded::Good { segment: s, .. } if s != segment => {
                return Ok(End::Tail {
                    valid_len: base + pos as u64,
                });
            }
            Decoded::Incomplete if !eof => {
                buf.drain(..pos);
                base += pos as u64;
                pos = 0;
                eof = refill(&mut src, &mut buf).map_err(|e| Error::io(path, e))?;
                continue;
            }
            Decoded::Good { kind, .. } => format!("unknown record kind {kind}"),
            Decoded::Incomplete => "record runs past the end of the segment".to_string(),
            Decoded::Bad => "record checksum mismatch".to_string(),
        };
        src.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
        let at = base + pos as u64;
        // A torn write can only be at the end of the last segment, and then
        // nothing valid of this segment follows it (often only preallocated zeros).
        let rest = &buf[pos..];
        if is_last && (all_zero(rest) || !later_record(&rest[1..], segment)) {
            return Ok(End::Tail { valid_len: at });
        }
        if salvage {
            return Ok(End::Salvaged { valid_len: at });
        }
        return Err(Error::corruption(path, at, reason));
    }
}

/// Reads at least one more chunk (or a whole pending record); true at end of file.
fn refill(src: impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let declared = match buf.get(4..8) {
        Some(l) => HEADER_LEN + u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
        None => HEADER_LEN,
    };
    let want = declared
        .min(HEADER_LEN + MAX_PAYLOAD)
        .max(buf.len() + CHUNK);
    buf.reserve(want - buf.len());
    // `read_to_end` fills spare capacity without zeroing it first.
    let n = src.take((want - buf.len()) as u64).read_to_end(buf)?;
    Ok(n == 0)
}

fn all_zero(b: &[u8]) -> bool {
    // Folding 64-byte chunks with OR lets the compiler vectorise the check.
    let chunks = b.chunks_exact(64);
    let tail = chunks.remainder().iter().fold(0, |a, &x| a | x);
    tail == 0
        && chunks
            .into_iter()
            .all(|c| c.iter().fold(0, |a, &x| a | x) == 0)
}

/// Whether a good batch record of `segment` starts anywhere in `rest`.
fn later_record(rest: &[u8], segment: u64) -> bool {
    let want = segment.to_le_bytes();
    (0..rest.len().saturating_sub(HEADER_LEN - 1)).any(|p| {
        rest[p + 9..p + 17] == want
            && matches!(
                decode(&rest[p..]),
                Decoded::Good {
                    kind: KIND_BATCH,
                    ..
                }
            )
    })
}

/// Cuts a segment back to its last good record and makes the cut durable.
pub(crate) fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.set_len(len).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::wal::record::{Encode, Record};

    fn log(segment: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            Record {
                kind: KIND_BATCH,
                segment,
                payload: p,
            }
            .encode(&mut buf);
        }
        buf
    }

    fn check(
        data: &[u8],
        is_last: bool,
        salvage: bool,
        want_records: usize,
        want: Result<End, u64>,
    ) {
        let mut seen = 0;
        let got = scan(Path::new("x.wal"), 3, data, is_last, salvage, |_, _| {
            seen += 1;
            Ok(())
        });
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w),
            (Err(Error::Corruption { offset, .. }), Err(w)) => assert_eq!(offset, w),
            (g, w) => panic!("got {g:?}, want {w:?}"),
        }
        assert_eq!(seen, want_records);
    }

    #[test]
    fn torn_tails_stale_records_and_mid_log_corruption() {
        let full = log(3, &[b"one", b"two", b"three"]);
        let second = (HEADER_LEN + 3) as u64;
        let third = 2 * second;
        check(&full, true, false, 3, Ok(End::Clean));
        check(
            &full[..full.len() - 2],
            true,
            false,
            2,
            Ok(End::Tail { valid_len: third }),
        );
        check(&full[..full.len() - 2], false, false, 2, Err(third));
        let mut zeros = full.clone();
        zeros.extend_from_slice(&[0; 40]);
        check(
            &zeros,
            true,
            false,
            3,
            Ok(End::Tail {
                valid_len: full.len() as u64,
            }),
        );
        let mut stale = full.clone();
        stale.extend_from_slice(&log(1, &[b"old"]));
        check(
            &stale,
            true,
            false,
            3,
            Ok(End::Tail {
                valid_len: full.len() as u64,
            }),
        );
        let mut flipped = full.clone();
        flipped[second as usize + HEADER_LEN] ^= 1;
        check(&flipped, true, false, 1, Err(second));
        check(
            &flipped,
            true,
            true,
            1,
            Ok(End::Salvaged { valid_len: second }),
        );
        let mut ended = full.clone();
        Record {
            kind: KIND_END,
            segment: 3,
            payload: b"",
        }
        .encode(&mut ended);
        ended.extend_from_slice(&[0xee; 9]); // leftovers of the reused file
        check(&ended, false, false, 3, Ok(End::Clean));
        let mut last_flipped = full.clone();
        last_flipped[third as usize + HEADER_LEN] ^= 1;
        check(
            &last_flipped,
            true,
            false,
            2,
            Ok(End::Tail { valid_len: third }),
        );
    }
}
