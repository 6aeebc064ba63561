//! Writes a table file from entries arriving in internal-key order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::block::BlockBuilder;
use super::footer::{Footer, Handle};
use crate::lsm::bloom::BloomBuilder;
use crate::lsm::codec::{put_bytes, put_varint};
use crate::lsm::error::{Error, Result};
use crate::lsm::key::{self, RangeTombstone};
use crate::lsm::stats::Stats;
use crate::lsm::version::FileMeta;

pub(crate) struct TableBuilder {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    data: BlockBuilder,
    index: BlockBuilder,
    bloom: BloomBuilder,
    block_size: usize,
    meta: FileMeta,
    tombstones: Vec<RangeTombstone>,
    stats: Arc<Stats>,
}

impl TableBuilder {
    pub(crate) fn create(
        path: PathBuf,
        number: u64,
        block_size: usize,
        bloom_bits: usize,
        stats: Arc<Stats>,
    ) -> Result<Self> {
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TableBuilder {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            offset: 0,
            data: BlockBuilder::new(16),
            index: BlockBuilder::new(1),
            bloom: BloomBuilder::new(bloom_bits),
            block_size,
            meta: FileMeta {
                number,
                min_seq: u64::MAX,
                ..FileMeta::default()
            },
            tombstones: Vec::new(),
            stats,
        })
    }

    /// Adds an entry; internal keys must arrive in increasing order.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let (user, tag) = key::split(ikey);
        if self.meta.entries == 0 {
            self.meta.smallest = user.to_vec();
        }
        self.meta.largest.clear();
        self.meta.largest.extend_from_slice(user);
        self.note_seq(key::tag_seq(tag));
        self.meta.entries += 1;
        self.bloom.add(user);
        self.data.add(ikey, value);
        if self.data.estimated_size() >= self.block_size {
            self.finish_data_block()?;
        }
        Ok(())
    }

    pub(crate) fn add_tombstone(&mut self, t: RangeTombstone) {
        self.note_seq(t.seq);
        self.tombstones.push(t);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.meta.entries == 0 && self.tombstones.is_empty()
    }

    pub(crate) fn estimated_size(&self) -> u64 {
        self.offset + self.data.estimated_size() as u64
    }

    fn note_seq(&mut self, seq: u64) {
        self.meta.min_seq = self.meta.min_seq.min(seq);
        self.meta.max_seq = self.meta.max_seq.max(seq);
    }

    fn finish_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let last = self.data.last_key().to_vec();
        let block = self.data.finish();
        let h = self.write_block(&block)?;
        let mut v = Vec::with_capacity(12);
        put_varint(&mut v, h.offset);
        put_varint(&mut v, h.len);
        self.index.add(&last, &v);
        Ok(())
    }

    fn write_block(&mut self, block: &[u8]) -> Result<Handle> {
        let h = Handle {
            offset: self.offset,
            len: block.len() as u64,
        };
        let crc = crc32c::crc32c(block).to_le_bytes();
        self.out
            .write_all(block)
            .and_then(|_| self.out.write_all(&crc))
            .map_err(|e| Error::io(&self.path, e))?;
        self.offset += block.len() as u64 + 4;
        Ok(h)
    }

    /// Writes the meta blocks and footer and fsyncs the file: the manifest may
    /// only name a table once all its bytes are durable.
    pub(crate) fn finish(mut self) -> Result<FileMeta> {
        self.finish_data_block()?;
        let filter = self.bloom.finish();
        let filter = self.write_block(&filter)?;
        let mut tb = Vec::new();
        put_varint(&mut tb, self.tombstones.len() as u64);
        for t in &self.tombstones {
            put_bytes(&mut tb, &t.start);
            put_bytes(&mut tb, &t.end);
            put_varint(&mut tb, t.seq);
            // Bounds cover the tombstones so compactions pull in what they delete.
            if self.meta.entries == 0
                && self.meta.smallest.is_empty()
                && self.meta.largest.is_empty()
            {
                self.meta.smallest = t.start.clone();
                self.meta.largest = t.end.clone();
            }
            self.meta.smallest = self.meta.smallest.clone().min(t.start.clone());
            self.meta.largest = self.meta.largest.clone().max(t.end.clone());
        }
        let tombstones = self.write_block(&tb)?;
        let index_block = self.index.finish();
        let index = self.write_block(&index_block)?;
        let footer = Footer {
            index,
            filter,
            tombstones,
        }
        .encode();
        self.out
            .write_all(&footer)
            .map_err(|e| Error::io(&self.path, e))?;
        self.offset += footer.len() as u64;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        self.stats.add_table_bytes(self.offset);
        self.meta.size = self.offset;
        if self.meta.min_seq == u64::MAX {
            self.meta.min_seq = 0;
        }
        Ok(self.meta)
    }

    /// Deletes a table that will not be used (nothing references it yet).
    pub(crate) fn abandon(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
