//! Iteration over internal entries, merged across memtables and tables.

pub(crate) mod level;
pub(crate) mod mem;
pub(crate) mod merge;
pub(crate) mod user;

use super::error::Result;

/// A sorted cursor over internal keys (user key ascending, sequence descending).
/// Keys must be at least `key::TAG_LEN` bytes long: producers validate that.
pub(crate) trait InternalIter: Send {
    fn valid(&self) -> bool;
    fn key(&self) -> &[u8];
    fn value(&self) -> &[u8];
    fn next(&mut self) -> Result<()>;
    /// Positions at the first entry whose internal key is `>= ikey`.
    fn seek(&mut self, ikey: &[u8]) -> Result<()>;
}
