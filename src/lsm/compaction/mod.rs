//! Leveled compaction: a pure decision (`choose`) kept apart from the worker
//! that carries it out (`run`).

pub(crate) mod choose;
pub(crate) mod run;
pub(crate) mod writer;
