//! Turns a frozen memtable into a level-0 table.
//!
//! Writes the queue-shaped path needs are dropped here rather than written:
//! versions shadowed inside the memtable, entries deleted by the memtable's own
//! range tombstones, and tombstones (point or range) that cover no older table.
//! A memtable whose entries were all deleted thus writes no table at all.

use std::sync::Arc;

use super::compaction::writer::Outputs;
use super::core::{Shared, State};
use super::error::Result;
use super::key::{self, KIND_DELETE, RangeTombstone};
use super::manifest::VersionEdit;
use super::memtable::Memtable;
use super::tombstones::TombstoneCursor;
use super::version::{FileMeta, TableFile, Version};

/// Whether a table not about to be dropped overlaps `lo..=hi`.
fn any_table_overlaps(v: &Version, dropping: &[Arc<TableFile>], lo: &[u8], hi: &[u8]) -> bool {
    v.any_overlapping(lo, hi, |f| !dropping.iter().any(|d| Arc::ptr_eq(d, f)))
}

fn write_table(
    shared: &Shared,
    mem: &Memtable,
    version: &Version,
    dropping: &[Arc<TableFile>],
) -> Result<Vec<FileMeta>> {
    let tombs = mem.tombstones();
    let mut cursor = TombstoneCursor::new(tombs.clone(), key::MAX_SEQ);
    let mut out = Outputs::new(shared, u64::MAX);
    let written = (|| {
        let map = mem.read();
        let mut last: Option<&[u8]> = None;
        let mut ikey = Vec::new();
        for e in map.iter() {
            let user = e.user();
            if last == Some(user) {
                continue;
            }
            last = Some(user);
            if cursor.covering(user) > key::tag_seq(e.tag) {
                continue;
            }
            if key::tag_kind(e.tag) == KIND_DELETE
                && !any_table_overlaps(version, dropping, user, user)
            {
                continue;
            }
            ikey.clear();
            key::encode(&mut ikey, user, e.tag);
            out.add(&ikey, e.value(), &[])?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        out.abandon();
        return Err(e);
    }
    let kept: Vec<RangeTombstone> = tombs
        .into_iter()
        .filter(|t| t.start < t.end && any_table_overlaps(version, dropping, &t.start, &t.end))
        .collect();
    out.finish(&kept)
}

/// Tables wholly inside a range the memtable deleted: they hold only older
/// data, so they are dropped outright. They are reserved (marked compacting)
/// so that no compaction picks them up meanwhile.
fn reserve_covered(st: &mut State, mem: &Memtable) -> Vec<(u8, Arc<TableFile>)> {
    let mut out: Vec<(u8, Arc<TableFile>)> = Vec::new();
    for t in mem.tombstones() {
        for (level, f) in st.version.files() {
            let inside = t.start <= f.meta.smallest && f.meta.largest < t.end;
            if inside
                && !st.compacting.contains(&f.meta.number)
                && !out.iter().any(|(_, d)| Arc::ptr_eq(d, f))
            {
                out.push((level as u8, f.clone()));
            }
        }
    }
    st.compacting.extend(out.iter().map(|(_, f)| f.meta.number));
    out
}

/// Flushes the oldest frozen memtable and retires its WAL segments.
pub(crate) fn flush_oldest(shared: &Shared, mem: &Arc<Memtable>) -> Result<()> {
    shared.wait_visible(mem.last_seq())?;
    let (version, dropping) = {
        let mut st = shared.lock_state();
        (st.version.clone(), reserve_covered(&mut st, mem))
    };
    let numbers: Vec<u64> = dropping.iter().map(|(_, f)| f.meta.number).collect();
    let result = install_flush(shared, mem, &version, dropping);
    // Our references to dropped tables are gone now, so a caller woken below
    // finds them deleted from disk.
    drop(version);
    let mut st = shared.lock_state();
    for n in &numbers {
        st.compacting.remove(n);
    }
    if result.is_ok() {
        shared.stats.add_flush();
        st.imms.pop_front();
    }
    shared.publish(&st);
    drop(st);
    let log_number = result?;
    shared.remove_old_segments(log_number)
}

fn install_flush(
    shared: &Shared,
    mem: &Arc<Memtable>,
    version: &Version,
    dropping: Vec<(u8, Arc<TableFile>)>,
) -> Result<u64> {
    let dropped: Vec<Arc<TableFile>> = dropping.iter().map(|(_, f)| f.clone()).collect();
    let metas = write_table(shared, mem, version, &dropped)?;
    let mut files = Vec::new();
    for m in &metas {
        files.push(TableFile::open(
            &shared.dir,
            m.clone(),
            shared.cache.clone(),
        )?);
    }
    let log_number = mem.next_segment();
    let mut edit = VersionEdit {
        log_number: Some(log_number),
        ..VersionEdit::default()
    };
    edit.added = metas.into_iter().map(|m| (0, m)).collect();
    edit.deleted = dropping.iter().map(|(l, f)| (*l, f.meta.number)).collect();
    let mut st = shared.lock_for_install(&edit)?;
    // Until the caller pops the memtable, readers may see its data twice
    // (in it and in the table), which is harmless: same keys, same sequences.
    shared.install(&mut st, edit, &files, &dropped)?;
    shared.publish(&st);
    Ok(log_number)
}
