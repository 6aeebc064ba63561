//! SQL + shard map -> Plan (at Parse, cached), Plan + Bind parameters -> Route. Pure: no I/O.
//!
//! - `planner`: hints, parsing (sqlparser, PostgreSQL dialect), one plan per query string.
//! - `walk`, `facts`, `keys`, `insert`, `decide`: table references, key conditions, the target.
//! - `keyword`, `lex`, `hint`: what the parser cannot read, read from the words and comments.
//! - `resolve`, `params`: the route of one execution. `cache`: the `Router` with its parse cache.
//!
//! Invariant: a statement is never sent where it could see or change other rows than the client
//! asked for; when the router is unsure it refuses (0A000) and says what to do instead.

mod cache;
mod decide;
mod facts;
mod having;
mod hint;
mod home;
mod insert;
mod keys;
mod keyword;
pub(crate) mod lex;
mod literals;
pub(crate) mod local_config;
mod merge;
mod params;
mod plan;
mod planner;
mod resolve;
mod route;
mod walk;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod robustness;

pub use cache::Router;
pub use having::{CmpOp, Filter, Operand};
pub(crate) use keyword::changes_columns;
pub use merge::{Agg, Count, MergePlan, SortColumn, SortRef};
pub use params::Params;
pub use plan::{
    Beside, Command, ConfigArg, CopyFormat, CopyIn, InsertTemplate, KeySource, LocalConfig, Plan,
    Refusal, Target, TxControl,
};
pub use planner::plan;
pub use resolve::resolve;
pub use route::{Route, SplitPart};
