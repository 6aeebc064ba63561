//! `shardgate migrate`: applies `migrations/NNNN_name.sql` to every shard of the map, one transaction per
//! migration per shard, recorded in `shardgate_migrations` on each shard. `files` reads the directory,
//! `plan` decides what runs (pure), `run` talks to the servers.

mod error;
mod files;
mod plan;
mod run;

pub use error::{Disagreement, Drift, MigrateError};
pub use files::{Migration, load_dir};
pub use run::{Options, Outcome, Summary, migrate};
