//! What can stop a migration run: a bad migrations directory, shards that disagree about what ran
//! (drift), a shard out of reach, or a migration that failed.

use std::fmt;
use std::path::PathBuf;

use super::run::Summary;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{file}: a migration file is named NNNN_name.sql (4 or more digits, then letters, digits, _ or -)"
    )]
    BadName { file: String },
    #[error("{first} and {second}: both have number {number}")]
    DuplicateNumber {
        number: u64,
        first: String,
        second: String,
    },
    #[error("{0}")]
    Drift(Drift),
    #[error("{shard}: {message}")]
    Shard { shard: String, message: String },
    #[error(
        "{shard}: {migration} failed and was rolled back on {shard}: {message}\napplied before the failure:\n{applied}"
    )]
    Failed {
        shard: String,
        migration: String,
        message: String,
        applied: Summary,
    },
}

/// Shards whose recorded migrations do not fit the files: nothing is applied while any remains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift(pub Vec<Disagreement>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disagreement {
    /// `missing` never ran on `shard`, but the later `later` did.
    Hole {
        shard: String,
        missing: String,
        later: String,
        /// The shards where `missing` did run.
        applied_on: Vec<String>,
    },
    /// The file changed after it ran on `shard`.
    Changed { shard: String, name: String },
    /// `shard` records a migration that is not in the directory.
    Unknown { shard: String, name: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the shards' migrations have drifted; nothing was applied:"
        )?;
        for d in &self.0 {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::Hole {
                shard,
                missing,
                later,
                applied_on,
            } => {
                write!(
                    f,
                    "{shard}: {missing} was never applied, but the later {later} was"
                )?;
                if !applied_on.is_empty() {
                    write!(f, " ({missing} is applied on {})", applied_on.join(", "))?;
                }
                Ok(())
            }
            Disagreement::Changed { shard, name } => {
                write!(
                    f,
                    "{shard}: {name} changed after it was applied (checksum differs)"
                )
            }
            Disagreement::Unknown { shard, name } => {
                write!(
                    f,
                    "{shard}: {name} is recorded as applied but is not in the migrations directory"
                )
            }
        }
    }
}
