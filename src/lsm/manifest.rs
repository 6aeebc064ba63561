//! The manifest: a log of version edits that makes flushes and compactions
//! atomic across crashes. A flush or compaction counts only once its edit is
//! fsynced here; files it wrote before that are orphans, removed at open.
//!
//! Edit encoding (one WAL-framed record each, segment 0):
//! ```text
//! tag 1 log_number | 2 next_file | 3 last_seq : varint
//! tag 4 deleted    : level u8, number varint
//! tag 5 added      : level u8, number, size, min_seq, max_seq, entries varints,
//!                    smallest, largest length-prefixed
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::codec::{Cursor, put_bytes, put_varint};
use super::error::{Error, Result};
use super::version::FileMeta;
use super::wal::record::{Decoded, Encode, KIND_EDIT, Record, decode};
use super::wal::sync_dir;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VersionEdit {
    pub(crate) log_number: Option<u64>,
    pub(crate) next_file: Option<u64>,
    pub(crate) last_seq: Option<u64>,
    pub(crate) deleted: Vec<(u8, u64)>,
    pub(crate) added: Vec<(u8, FileMeta)>,
}

impl Encode for VersionEdit {
    fn encode(&self, b: &mut Vec<u8>) {
        for (tag, v) in [
            (1u8, self.log_number),
            (2, self.next_file),
            (3, self.last_seq),
        ] {
            if let Some(v) = v {
                b.push(tag);
                put_varint(b, v);
            }
        }
        for (level, number) in &self.deleted {
            b.extend_from_slice(&[4, *level]);
            put_varint(b, *number);
        }
        for (level, m) in &self.added {
            b.extend_from_slice(&[5, *level]);
            for v in [m.number, m.size, m.min_seq, m.max_seq, m.entries] {
                put_varint(b, v);
            }
            put_bytes(b, &m.smallest);
            put_bytes(b, &m.largest);
        }
    }
}

impl VersionEdit {
    pub(crate) fn decode(buf: &[u8]) -> Option<VersionEdit> {
        let mut c = Cursor::new(buf);
        let mut e = VersionEdit::default();
        while !c.is_empty() {
            match c.u8()? {
                1 => e.log_number = Some(c.varint()?),
                2 => e.next_file = Some(c.varint()?),
                3 => e.last_seq = Some(c.varint()?),
                4 => e.deleted.push((c.u8()?, c.varint()?)),
                5 => {
                    let level = c.u8()?;
                    let mut m = FileMeta {
                        number: c.varint()?,
                        size: c.varint()?,
                        ..FileMeta::default()
                    };
                    (m.min_seq, m.max_seq, m.entries) = (c.varint()?, c.varint()?, c.varint()?);
                    m.smallest = c.bytes()?.to_vec();
                    m.largest = c.bytes()?.to_vec();
                    e.added.push((level, m));
                }
                _ => return None,
            }
        }
        Some(e)
    }
}

/// The state a manifest describes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ManifestState {
    pub(crate) log_number: u64,
    pub(crate) next_file: u64,
    pub(crate) last_seq: u64,
    /// file number -> (level, meta)
    pub(crate) files: BTreeMap<u64, (u8, FileMeta)>,
}

impl ManifestState {
    pub(crate) fn apply(&mut self, e: &VersionEdit) {
        self.log_number = e.log_number.unwrap_or(self.log_number).max(self.log_number);
        self.next_file = e.next_file.unwrap_or(self.next_file).max(self.next_file);
        self.last_seq = e.last_seq.unwrap_or(self.last_seq).max(self.last_seq);
        for (_, n) in &e.deleted {
            self.files.remove(n);
        }
        for (level, m) in &e.added {
            self.files.insert(m.number, (*level, m.clone()));
        }
    }

    /// One edit that recreates this whole state.
    pub(crate) fn snapshot(&self) -> VersionEdit {
        VersionEdit {
            log_number: Some(self.log_number),
            next_file: Some(self.next_file),
            last_seq: Some(self.last_seq),
            deleted: Vec::new(),
            added: self.files.values().cloned().collect(),
        }
    }
}

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("MANIFEST")
}

/// Reads the manifest, if any. A torn tail is an edit that never completed
/// (edits are fsynced before being acted on) and is ignored.
pub(crate) fn read(dir: &Path) -> Result<Option<ManifestState>> {
    let path = manifest_path(dir);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut state = ManifestState::default();
    let mut pos = 0;
    while pos < data.len() {
        match decode(&data[pos..]) {
            Decoded::Good {
                kind: KIND_EDIT,
                payload,
                len,
                ..
            } => {
                let edit = VersionEdit::decode(payload).ok_or_else(|| {
                    Error::corruption(&path, pos as u64, "malformed version edit")
                })?;
                state.apply(&edit);
                pos += len;
            }
            Decoded::Incomplete => break,
            _ => {
                return Err(Error::corruption(
                    &path,
                    pos as u64,
                    "manifest record checksum mismatch",
                ));
            }
        }
    }
    if pos == 0 {
        return Err(Error::corruption(
            &path,
            0,
            "manifest holds no complete edit",
        ));
    }
    Ok(Some(state))
}

pub(crate) struct ManifestWriter {
    path: PathBuf,
    file: File,
    pub(crate) size: u64,
}

impl ManifestWriter {
    /// Writes a fresh manifest holding `state` beside the old one, then renames
    /// it into place: the rename is the commit point, so a crash leaves either
    /// the old manifest or the new one, never a mix.
    pub(crate) fn create(dir: &Path, state: &ManifestState) -> Result<Self> {
        let tmp = dir.join("MANIFEST.tmp");
        let path = manifest_path(dir);
        let mut buf = Vec::new();
        encode_edit(&mut buf, &state.snapshot());
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&buf)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(ManifestWriter {
            path,
            file,
            size: buf.len() as u64,
        })
    }

    /// Appends an edit and fsyncs it: after this returns the edit survives a crash.
    pub(crate) fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        let mut buf = Vec::new();
        encode_edit(&mut buf, edit);
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

fn encode_edit(buf: &mut Vec<u8>, edit: &VersionEdit) {
    let mut payload = Vec::new();
    edit.encode(&mut payload);
    Record {
        kind: KIND_EDIT,
        segment: 0,
        payload: &payload,
    }
    .encode(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_bytes_are_exact() {
        let meta = FileMeta {
            number: 7,
            size: 300,
            smallest: b"a".to_vec(),
            largest: b"z".to_vec(),
            min_seq: 1,
            max_seq: 2,
            entries: 3,
        };
        let e = VersionEdit {
            log_number: Some(5),
            next_file: None,
            last_seq: Some(200),
            deleted: vec![(1, 4)],
            added: vec![(2, meta)],
        };
        let mut b = Vec::new();
        e.encode(&mut b);
        let want = [
            1, 5, 3, 0xc8, 0x01, 4, 1, 4, 5, 2, 7, 0xac, 0x02, 1, 2, 3, 1, b'a', 1, b'z',
        ];
        assert_eq!(b, want);
        assert_eq!(VersionEdit::decode(&b), Some(e));
        for cut in 1..b.len() {
            let d = VersionEdit::decode(&b[..cut]);
            assert!(
                d.is_none() || cut == 2 || cut == 5 || cut == 8,
                "cut {cut} decoded {d:?}"
            );
        }
    }

    #[test]
    fn survives_rewrite_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ManifestState {
            log_number: 1,
            next_file: 2,
            ..Default::default()
        };
        let mut w = ManifestWriter::create(dir.path(), &s).unwrap();
        let e = VersionEdit {
            last_seq: Some(9),
            added: vec![(
                0,
                FileMeta {
                    number: 3,
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        w.append(&e).unwrap();
        s.apply(&e);
        assert_eq!(read(dir.path()).unwrap(), Some(s.clone()));
        let p = manifest_path(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        ]);
        bytes[w.size as usize + 4] = 0xff; // declared length runs past the end
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(s));
    }
}
