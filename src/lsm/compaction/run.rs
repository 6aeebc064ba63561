//! Carries out a chosen compaction: merges the input tables into new tables of
//! the output level, keeping only the newest version of each key, and installs
//! the result with one manifest edit.

use std::sync::Arc;

use super::choose::Choice;
use super::writer::Outputs;
use crate::lsm::core::Shared;
use crate::lsm::error::Result;
use crate::lsm::iter::InternalIter;
use crate::lsm::iter::level::LevelIter;
use crate::lsm::iter::merge::MergeIter;
use crate::lsm::key::{self, KIND_DELETE, RangeTombstone};
use crate::lsm::manifest::VersionEdit;
use crate::lsm::sstable::iter::TableIter;
use crate::lsm::tombstones::TombstoneCursor;
use crate::lsm::version::{FileMeta, TableFile};

fn inputs_iter(c: &Choice) -> Result<MergeIter> {
    let mut children: Vec<Box<dyn InternalIter>> = Vec::new();
    if c.level == 0 {
        // Level-0 tables overlap: one cursor each, newest first.
        for f in &c.inputs {
            children.push(Box::new(TableIter::new(f.table()?.clone())));
        }
    } else {
        children.push(Box::new(LevelIter::new(c.inputs.clone())));
    }
    if !c.next.is_empty() {
        children.push(Box::new(LevelIter::new(c.next.clone())));
    }
    Ok(MergeIter::new(children))
}

fn merge(shared: &Shared, c: &Choice, tombs: &[RangeTombstone]) -> Result<Vec<FileMeta>> {
    let mut it = inputs_iter(c)?;
    let mut out = Outputs::new(shared, shared.opts.table_size);
    // At the bottom nothing older remains for a range tombstone to hide.
    let keep: &[RangeTombstone] = if c.bottom { &[] } else { tombs };
    let mut cursor = TombstoneCursor::new(tombs.to_vec(), key::MAX_SEQ);
    let result = (|| {
        // Before every version of the first (maybe empty) key: tags sort newest first, so a zero
        // tag would land after the empty key's versions.
        let mut first = Vec::new();
        key::encode(&mut first, b"", key::lookup_tag(key::MAX_SEQ));
        it.seek(&first)?;
        let mut last: Option<Vec<u8>> = None;
        while it.valid() {
            let (user, tag) = key::split(it.key());
            // Snapshots pin the tables they read, so older versions can go now.
            let newest = last.as_deref() != Some(user);
            if newest {
                last = Some(user.to_vec());
                let covered = cursor.covering(user) > key::tag_seq(tag);
                let dead_tombstone = c.bottom && key::tag_kind(tag) == KIND_DELETE;
                if !covered && !dead_tombstone {
                    out.add(it.key(), it.value(), keep)?;
                }
            }
            it.next()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.abandon();
        return Err(e);
    }
    out.finish(keep)
}

pub(crate) fn run(shared: &Shared, c: &Choice) -> Result<()> {
    let mut edit = VersionEdit::default();
    for f in &c.inputs {
        edit.deleted.push((c.level as u8, f.meta.number));
    }
    for f in &c.next {
        edit.deleted.push((c.output_level as u8, f.meta.number));
    }
    let (files, obsolete): (Vec<Arc<TableFile>>, Vec<Arc<TableFile>>) = if c.trivial_move {
        edit.added
            .push((c.output_level as u8, c.inputs[0].meta.clone()));
        (c.inputs.clone(), Vec::new())
    } else {
        let mut tombs = Vec::new();
        for f in c.inputs.iter().chain(&c.next) {
            tombs.extend(f.table()?.tombstones.iter().cloned());
        }
        let metas = merge(shared, c, &tombs)?;
        let mut files = Vec::new();
        for m in metas {
            edit.added.push((c.output_level as u8, m.clone()));
            files.push(TableFile::open(&shared.dir, m, shared.cache.clone())?);
        }
        (files, c.inputs.iter().chain(&c.next).cloned().collect())
    };
    let mut st = shared.lock_for_install(&edit)?;
    shared.install(&mut st, edit, &files, &obsolete)?;
    if let Some(hi) = c.inputs.iter().map(|f| f.meta.largest.clone()).max() {
        let mut v = (*st.version).clone();
        v.compact_pointer[c.level] = hi;
        st.version = Arc::new(v);
    }
    shared.publish(&st);
    drop(st);
    shared.stats.add_compaction();
    Ok(())
}
