//! Sorted string tables: immutable files of checksummed blocks.
//!
//! ```text
//! data block | crc32c ... | filter block | crc | tombstone block | crc | index block | crc | footer
//! ```

pub(crate) mod block;
pub(crate) mod block_iter;
pub(crate) mod builder;
pub(crate) mod cache;
pub(crate) mod footer;
pub(crate) mod iter;
pub(crate) mod table;

use std::path::{Path, PathBuf};

pub(crate) fn table_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.sst"))
}
