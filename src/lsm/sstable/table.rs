//! Opens a table file and serves point lookups; every block read from disk is
//! checksum-verified before use.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::block_iter::{Block, BlockIter};
use super::cache::BlockCache;
use super::footer::{FOOTER_LEN, Footer, Handle};
use crate::lsm::bloom;
use crate::lsm::codec::Cursor;
use crate::lsm::error::{Error, Result};
use crate::lsm::key::{self, KIND_PUT, RangeTombstone};
use crate::lsm::memtable::Found;

pub(crate) struct IndexEntry {
    /// Last internal key of the block.
    pub(crate) last: Vec<u8>,
    pub(crate) handle: Handle,
}

pub(crate) struct Table {
    pub(crate) path: PathBuf,
    pub(crate) number: u64,
    file: File,
    /// Where the footer starts: no block may extend past it.
    limit: u64,
    pub(crate) index: Vec<IndexEntry>,
    filter: Vec<u8>,
    pub(crate) tombstones: Vec<RangeTombstone>,
    cache: Option<Arc<BlockCache>>,
}

impl Table {
    pub(crate) fn open(path: &Path, number: u64, cache: Option<Arc<BlockCache>>) -> Result<Table> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let at = len
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| Error::corruption(path, 0, "file too short"))?;
        let mut fb = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut fb, at)
            .map_err(|e| Error::io(path, e))?;
        let footer = Footer::decode(&fb).map_err(|r| Error::corruption(path, at, r))?;
        let mut t = Table {
            path: path.to_path_buf(),
            number,
            file,
            limit: at,
            index: Vec::new(),
            filter: Vec::new(),
            tombstones: Vec::new(),
            cache,
        };
        t.filter = t.read_raw(footer.filter, at)?;
        t.tombstones = t.read_tombstones(footer.tombstones, at)?;
        t.index = t.read_index(footer.index, at)?;
        Ok(t)
    }

    /// Reads a block and verifies its checksum; `limit` is where blocks must end.
    fn read_raw(&self, h: Handle, limit: u64) -> Result<Vec<u8>> {
        let end = h.offset.checked_add(h.len).and_then(|e| e.checked_add(4));
        if end.is_none_or(|e| e > limit) || h.len > 1 << 31 {
            return Err(Error::corruption(
                &self.path,
                h.offset,
                "block handle out of bounds",
            ));
        }
        let mut buf = vec![0u8; h.len as usize + 4];
        self.file
            .read_exact_at(&mut buf, h.offset)
            .map_err(|e| Error::io(&self.path, e))?;
        let (body, crc) = buf.split_at(h.len as usize);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(Error::corruption(
                &self.path,
                h.offset,
                "block checksum mismatch",
            ));
        }
        buf.truncate(h.len as usize);
        Ok(buf)
    }

    fn read_tombstones(&self, h: Handle, limit: u64) -> Result<Vec<RangeTombstone>> {
        let raw = self.read_raw(h, limit)?;
        let bad = || Error::corruption(&self.path, h.offset, "malformed range-tombstone block");
        let mut c = Cursor::new(&raw);
        let n = c.varint().ok_or_else(bad)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let (s, e) = (c.bytes().ok_or_else(bad)?, c.bytes().ok_or_else(bad)?);
            out.push(RangeTombstone {
                start: s.to_vec(),
                end: e.to_vec(),
                seq: c.varint().ok_or_else(bad)?,
            });
        }
        Ok(out)
    }

    fn read_index(&self, h: Handle, limit: u64) -> Result<Vec<IndexEntry>> {
        let block = self.parse(self.read_raw(h, limit)?, h.offset)?;
        let mut it = BlockIter::new(Arc::new(block));
        let bad =
            |o: usize| Error::corruption(&self.path, h.offset + o as u64, "malformed index entry");
        it.seek_to_first().map_err(bad)?;
        let mut out = Vec::new();
        while it.valid() {
            let mut c = Cursor::new(it.value());
            let handle = match (c.varint(), c.varint()) {
                (Some(offset), Some(len)) if it.key().len() >= key::TAG_LEN => {
                    Handle { offset, len }
                }
                _ => return Err(bad(0)),
            };
            out.push(IndexEntry {
                last: it.key().to_vec(),
                handle,
            });
            it.advance().map_err(bad)?;
        }
        Ok(out)
    }

    fn parse(&self, raw: Vec<u8>, offset: u64) -> Result<Block> {
        Block::new(raw).map_err(|o| {
            Error::corruption(&self.path, offset + o as u64, "malformed block trailer")
        })
    }

    /// A data block, from the cache or from disk (verified).
    pub(crate) fn block(&self, h: Handle) -> Result<Arc<Block>> {
        if let Some(b) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(self.number, h.offset))
        {
            return Ok(b);
        }
        let b = Arc::new(self.parse(self.read_raw(h, self.limit)?, h.offset)?);
        if let Some(c) = &self.cache {
            c.insert(self.number, h.offset, b.clone());
        }
        Ok(b)
    }

    pub(crate) fn corrupt_entry(&self, h: Handle, at: usize) -> Error {
        Error::corruption(&self.path, h.offset + at as u64, "malformed block entry")
    }

    /// Index of the first block whose last key is >= `ikey`.
    pub(crate) fn find_block(&self, ikey: &[u8]) -> usize {
        self.index
            .partition_point(|e| key::cmp(&e.last, ikey) == std::cmp::Ordering::Less)
    }

    /// The newest version of `user` visible at `snapshot` in this table.
    /// `hash` is `bloom::hash(user)`, computed once per lookup.
    pub(crate) fn get(&self, user: &[u8], hash: u64, snapshot: u64) -> Result<Option<Found>> {
        let tomb = key::max_covering(&self.tombstones, user, snapshot);
        let point = if bloom::may_contain_hash(&self.filter, hash) {
            self.get_point(user, snapshot)?
        } else {
            None
        };
        Ok(match point {
            Some((seq, _)) if seq < tomb => Some(Found::Deleted),
            Some((_, found)) => Some(found),
            None if tomb > 0 => Some(Found::Deleted),
            None => None,
        })
    }

    fn get_point(&self, user: &[u8], snapshot: u64) -> Result<Option<(u64, Found)>> {
        let mut probe = Vec::with_capacity(user.len() + key::TAG_LEN);
        key::encode(&mut probe, user, key::lookup_tag(snapshot));
        let i = self.find_block(&probe);
        let Some(entry) = self.index.get(i) else {
            return Ok(None);
        };
        let mut it = BlockIter::new(self.block(entry.handle)?);
        it.seek(&probe, key::cmp)
            .map_err(|o| self.corrupt_entry(entry.handle, o))?;
        if !it.valid() || it.key().len() < key::TAG_LEN {
            return Ok(None);
        }
        let (u, tag) = key::split(it.key());
        if u != user {
            return Ok(None);
        }
        let found = if key::tag_kind(tag) == KIND_PUT {
            Found::Value(it.value().to_vec())
        } else {
            Found::Deleted
        };
        Ok(Some((key::tag_seq(tag), found)))
    }
}
