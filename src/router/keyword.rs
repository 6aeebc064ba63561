//! The keyword classifier: what to do with a statement from its first words alone, for statements
//! the parser cannot read and parsed statements the router has no rule for. It never guesses a
//! shard: utilities go everywhere, transaction control stays put, the rest is refused with what to
//! do instead.

use super::plan::{Command, Plan, Refusal, Target, TxControl};

pub(crate) const HINT: &str = "add /* shardgate: shard=NAME */ to the statement (or SET shardgate.shard = 'NAME') to choose the shard";

/// Whether DDL in `sql` may change the columns a statement prepared before it returns: ALTER and
/// DROP (not of an index), CREATE [OR REPLACE] VIEW or RULE. Not CREATE TABLE: a new table is in
/// no statement prepared before it, and temporary tables come and go often.
pub(crate) fn changes_columns(sql: &str) -> bool {
    super::lex::statements(sql).iter().any(|s| {
        let w = |i: usize| s.words.get(i).map(String::as_str).unwrap_or("");
        match w(0) {
            "alter" | "drop" => w(1) != "index",
            // CREATE [OR REPLACE] [TEMP | TEMPORARY | RECURSIVE] VIEW, or RULE.
            "create" => s.words[1..]
                .iter()
                .map(String::as_str)
                .find(|w| !matches!(*w, "or" | "replace" | "temp" | "temporary" | "recursive"))
                .is_some_and(|w| matches!(w, "view" | "rule")),
            _ => false,
        }
    })
}

pub(crate) fn classify(words: &[String]) -> Plan {
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let first = w(0);
    let tx = |c: TxControl| {
        Plan::new(
            Command::Transaction(c),
            Target::Any,
            "transaction control stays on the session's server",
        )
    };
    match first {
        "vacuum" | "analyze" | "analyse" | "checkpoint" | "reindex" | "cluster" => Plan::new(
            Command::Utility,
            Target::All,
            format!("{} runs on every shard", first.to_ascii_uppercase()),
        ),
        "create" | "alter" | "drop" | "comment" | "grant" | "revoke" if schema_ddl(words) => {
            Plan::new(Command::Ddl, Target::All, "DDL runs on every shard")
        }
        "prepare" if w(1) == "transaction" => prepared(),
        "commit" | "rollback" if w(1) == "prepared" => prepared(),
        "begin" | "start" => tx(TxControl::Begin),
        "commit" | "end" => tx(TxControl::Commit),
        "rollback" | "abort" if words.iter().skip(1).any(|x| x == "to") => tx(TxControl::Savepoint),
        "rollback" | "abort" => tx(TxControl::Rollback),
        "savepoint" | "release" => tx(TxControl::Savepoint),
        "set" | "reset" if words.iter().any(|x| x == "shardgate") => Plan::refuse(
            Command::Session,
            Refusal {
                code: crate::protocol::sqlstate::INVALID_PARAMETER_VALUE,
                message: "unsupported form of SET shardgate.shard".into(),
                hint: Some("use SET shardgate.shard = 'NAME' or RESET shardgate.shard".into()),
            },
        ),
        "show" | "set" | "reset" | "listen" | "unlisten" | "notify" | "discard" | "deallocate"
        | "fetch" | "move" | "close" => Plan::new(
            Command::Session,
            Target::Any,
            "session command stays on the session's server",
        ),
        "" => Plan::new(Command::Read, Target::Any, "empty statement"),
        other => Plan::refuse(
            Command::Write,
            Refusal::unsupported(
                format!(
                    "shardgate cannot route {} statements",
                    other.to_ascii_uppercase()
                ),
                HINT,
            ),
        ),
    }
}

/// DDL the parser could not read on the objects whose parsed DDL runs on every shard: tables and what
/// lives in a database with them (not databases, roles or server settings).
fn schema_ddl(words: &[String]) -> bool {
    const OBJECTS: &[&str] = &[
        "table",
        "index",
        "unique",
        "view",
        "materialized",
        "sequence",
        "schema",
        "function",
        "procedure",
        "type",
        "domain",
        "extension",
        "trigger",
    ];
    const CLUSTER_WIDE: &[&str] = &["database", "tablespace", "role", "parameter"];
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    // What follows the first ON: the kind of object a GRANT, REVOKE or COMMENT is about.
    let on = || words.iter().position(|x| x == "on").map(|i| w(i + 1));
    // CREATE TABLE ... AS SELECT/VALUES/TABLE/EXECUTE/WITH fills the table from a query: refused as
    // the parsed kind is. (`AS` before anything else is a generated column's.)
    let fills = || {
        words.windows(2).any(|p| {
            p[0] == "as"
                && matches!(
                    p[1].as_str(),
                    "select" | "values" | "table" | "execute" | "with"
                )
        })
    };
    match w(0) {
        // A role granted to a role (no ON) is cluster-wide.
        "comment" | "grant" | "revoke" => on().is_some_and(|kind| !CLUSTER_WIDE.contains(&kind)),
        "create" if w(1) == "or" && w(2) == "replace" => OBJECTS.contains(&w(3)),
        "create" if w(1) == "table" && fills() => false,
        _ => OBJECTS.contains(&w(1)),
    }
}

fn prepared() -> Plan {
    Plan::refuse(
        Command::Transaction(TxControl::Prepared),
        Refusal::unsupported(
            "two-phase commit commands are not supported: shardgate manages cross-shard commit",
            "route the statement to one shard with /* shardgate: shard=NAME */",
        ),
    )
}

#[cfg(test)]
mod column_tests {
    use super::changes_columns;

    #[test]
    fn ddl_that_may_change_columns() {
        for (sql, want) in [
            ("ALTER TABLE t ADD COLUMN b int", true),
            (
                "/* shardgate: shard=s1 */ alter table t rename a to b",
                true,
            ),
            ("DROP TABLE t", true),
            ("CREATE OR REPLACE VIEW v AS SELECT 1", true),
            ("create view v as select 1", true),
            ("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", true),
            (
                "CREATE OR REPLACE RULE r AS ON INSERT TO t DO NOTHING",
                true,
            ),
            (
                "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
                false,
            ),
            ("BEGIN; ALTER TABLE t ADD b int; COMMIT", true),
            ("CREATE TABLE t (a int)", false),
            ("CREATE TEMP TABLE t (a int)", false),
            ("CREATE INDEX ON t (a)", false),
            ("DROP INDEX i", false),
            ("ALTER INDEX i RENAME TO j", false),
            ("SELECT 'alter table'", false),
        ] {
            assert_eq!(changes_columns(sql), want, "{sql}");
        }
    }
}
