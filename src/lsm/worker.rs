//! Background threads: one flushes frozen memtables, one compacts, so a long
//! compaction never holds up the flush that frees writers.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::compaction::choose::{choose, choose_manual};
use super::compaction::run;
use super::core::Shared;
use super::flush::flush_oldest;

pub(crate) fn spawn(shared: &Arc<Shared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    let (a, b) = (shared.clone(), shared.clone());
    Ok(vec![
        std::thread::Builder::new()
            .name("lsm-flush".into())
            .spawn(move || flusher(&a))?,
        std::thread::Builder::new()
            .name("lsm-compact".into())
            .spawn(move || compactor(&b))?,
    ])
}

fn flusher(shared: &Shared) {
    loop {
        let mem = {
            let mut st = shared.lock_state();
            while !st.shutdown && st.error.is_none() && st.imms.is_empty() {
                st = shared.wait(st);
            }
            if st.shutdown || st.error.is_some() {
                return;
            }
            st.imms.front().cloned()
        };
        if let Some(mem) = mem
            && let Err(e) = flush_oldest(shared, &mem)
        {
            shared.poison(&e);
            return;
        }
    }
}

fn compactor(shared: &Shared) {
    loop {
        let (choice, manual) = {
            let mut st = shared.lock_state();
            loop {
                if st.shutdown || st.error.is_some() {
                    return;
                }
                let manual = st.manual_compaction && st.imms.is_empty();
                let c = if manual {
                    choose_manual(&st.version)
                } else {
                    choose(&st.version, &shared.opts)
                };
                let nothing_to_do = c.is_none();
                // A flush may have reserved tables it is about to drop: wait for it.
                let c = c.filter(|c| {
                    c.inputs
                        .iter()
                        .chain(&c.next)
                        .all(|f| !st.compacting.contains(&f.meta.number))
                });
                if let Some(c) = c {
                    st.compacting
                        .extend(c.inputs.iter().chain(&c.next).map(|f| f.meta.number));
                    break (c, manual);
                }
                if manual && nothing_to_do {
                    st.manual_compaction = false;
                    shared.cv.notify_all();
                }
                st = shared.wait(st);
            }
        };
        let result = run::run(shared, &choice);
        let numbers: Vec<u64> = choice
            .inputs
            .iter()
            .chain(&choice.next)
            .map(|f| f.meta.number)
            .collect();
        let manual_done = manual && choice.level == choice.output_level;
        // Let go of the input tables before anyone is told the job is done,
        // so the ones it retired are already deleted by then.
        drop(choice);
        let mut st = shared.lock_state();
        for n in &numbers {
            st.compacting.remove(n);
        }
        if let Err(e) = result {
            drop(st);
            shared.poison(&e);
            return;
        }
        if manual_done {
            st.manual_compaction = false;
        }
        shared.cv.notify_all();
    }
}
