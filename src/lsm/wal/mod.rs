//! The write-ahead log: numbered segment files of checksummed records.

pub(crate) mod reader;
pub(crate) mod record;
pub(crate) mod writer;

use std::path::{Path, PathBuf};

use super::error::{Error, Result};

pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.wal"))
}

/// Makes a file creation, rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
    f.sync_all().map_err(|e| Error::io(dir, e))
}
