//! What the router decides once per statement text (and map version): the command kind and where it
//! goes, with the shard keys still to be read from Bind parameters.

use std::fmt;
use std::sync::Arc;

use sqlparser::ast::Statement;

use super::merge::MergePlan;
use crate::protocol::sqlstate;
use crate::sharding::{KeyValue, ShardId};

/// Made once per statement text (and map version), cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub command: Command,
    pub target: Target,
    /// One line a DBA reads in `shardgate map route`: why this target.
    pub reason: String,
    /// The target came from a `/* shardgate: ... */` hint, which wins over a session's
    /// `SET shardgate.shard`.
    pub hinted: bool,
    /// For a read that may run on several shards: how their rows merge, or why they cannot.
    pub merge: Option<Result<Arc<MergePlan>, Refusal>>,
    /// What the statement does that lets it run outside a transaction whose BEGIN is still held.
    pub beside: Option<Beside>,
}

/// A statement that may run outside the client's transaction while its BEGIN is held, so that the
/// shard it runs on does not become the transaction's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beside {
    /// It only draws from or sets sequences (nextval, setval), which no transaction undoes.
    Sequences,
    /// It only makes these settings of the current transaction (`SELECT set_config(name, value,
    /// true)`, one or more), which are then made again inside it.
    Settings(Vec<LocalConfig>),
}

/// One `set_config(name, value, true)`: a setting of the current transaction, made by a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    pub name: ConfigArg,
    pub value: ConfigArg,
}

/// An argument of `set_config`: a text literal, or a parameter (from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigArg {
    Text(String),
    Param(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Read,
    Write,
    Ddl,
    Utility,
    Transaction(TxControl),
    /// `SET shardgate.shard = 'name'` (Some) or `RESET shardgate.shard` / `... TO DEFAULT` (None): the
    /// session answers it.
    SetShard(Option<String>),
    /// RESET ALL: a session command that also resets `shardgate.shard`.
    ResetAll,
    /// SET, SHOW, LISTEN...: stays on the client's current server.
    Session,
}

impl Command {
    /// SET, SHOW, RESET ALL, LISTEN..., BEGIN/COMMIT/ROLLBACK: about the session's server, not rows.
    pub fn is_session_or_transaction(&self) -> bool {
        matches!(
            self,
            Command::Session | Command::ResetAll | Command::Transaction(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxControl {
    Begin,
    Commit,
    Rollback,
    /// SAVEPOINT, RELEASE, ROLLBACK TO.
    Savepoint,
    /// PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED.
    Prepared,
    /// A setting of the current transaction only: SET LOCAL, SET TRANSACTION, SET LOCAL ROLE.
    Setting,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Known at parse: hint, unlisted default, literal keys that agree across tables.
    Shard(ShardId),
    /// A reference-table read, or no table at all (SELECT 1, SHOW, SET): any one shard.
    Any,
    /// Every shard, replies combined: DDL, utilities, reference-table writes.
    All,
    /// A write without a shard key on a map with `multi_shard_writes`: `Route::Multi` of every shard.
    EveryShard,
    /// Rows of one co-location group selected by key; resolved at Bind.
    Keys {
        /// Index in `map.tables`.
        table: usize,
        keys: Vec<KeySource>,
        write: bool,
    },
    /// A multi-row INSERT: one key per VALUES row; may split across shards.
    Insert {
        table: usize,
        rows: Vec<KeySource>,
        template: InsertTemplate,
    },
    /// A read without a shard key over one co-location group: every shard, merged.
    Scatter,
    /// COPY FROM STDIN into a sharded table: each row to the shard of its key.
    CopyIn(CopyIn),
    Refuse(Refusal),
}

/// How a COPY FROM STDIN into a sharded table is split: which column holds the key, and how rows
/// and fields are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyIn {
    /// Index in `map.tables`.
    pub table: usize,
    /// The columns as listed (lowercase unless quoted); empty: every column, in the table's order.
    pub columns: Vec<String>,
    pub format: CopyFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFormat {
    Text {
        delimiter: u8,
        null: Vec<u8>,
        header: bool,
    },
    Csv {
        delimiter: u8,
        quote: u8,
        escape: u8,
        null: Vec<u8>,
        header: bool,
    },
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Value(KeyValue),
    /// 0-based parameter index.
    Param(usize),
    /// `key = ANY($n)`: every element of an array parameter.
    ParamArray(usize),
}

/// A multi-row INSERT kept as its syntax tree, so a split can print one INSERT per shard with only
/// that shard's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertTemplate {
    pub(crate) statement: Box<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SQLSTATE, e.g. "0A000".
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// 0A000: what shardgate cannot route, with what to do instead.
    pub(crate) fn unsupported(message: impl Into<String>, hint: impl Into<String>) -> Refusal {
        Refusal {
            code: sqlstate::FEATURE_NOT_SUPPORTED,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl Plan {
    pub(crate) fn new(command: Command, target: Target, reason: impl Into<String>) -> Plan {
        Plan {
            command,
            target,
            reason: reason.into(),
            hinted: false,
            merge: None,
            beside: None,
        }
    }

    /// Whether resolving this plan reads Bind parameters (keys, a LIMIT or OFFSET, settings of the
    /// transaction); when it does not, a Bind's values need not even be parsed.
    pub fn reads_params(&self) -> bool {
        let param = |k: &KeySource| !matches!(k, KeySource::Value(_));
        let keyed = match &self.target {
            Target::Keys { keys, .. } => keys.iter().any(param),
            Target::Insert { rows, .. } => rows.iter().any(param),
            _ => false,
        };
        let counted = match &self.merge {
            Some(Ok(m)) => {
                [m.limit, m.offset]
                    .iter()
                    .any(|c| matches!(c, Some(super::merge::Count::Param(_))))
                    || m.having.as_ref().is_some_and(|h| !h.params().is_empty())
            }
            _ => false,
        };
        let configured = match &self.beside {
            Some(Beside::Settings(calls)) => calls.iter().any(|c| {
                [&c.name, &c.value]
                    .iter()
                    .any(|a| matches!(a, ConfigArg::Param(_)))
            }),
            _ => false,
        };
        keyed || counted || configured
    }

    pub(crate) fn refuse(command: Command, refusal: Refusal) -> Plan {
        let reason = format!("refused: {}", refusal.message);
        Plan::new(command, Target::Refuse(refusal), reason)
    }
}
