//! A BEGIN shardgate holds until the transaction's first statement says which shard it runs on, with
//! the settings of the transaction made before it (SET LOCAL, SET TRANSACTION). The client was told
//! BEGIN (and SET) and sees its transaction meanwhile: in progress, or failed once an error (from a
//! prepare a server answered) ended it, as PostgreSQL's would.

use bytes::BytesMut;

use super::raise::raise_sql;
use crate::protocol::backend::{ErrorFields, Severity};
use crate::protocol::frontend as msg;
use crate::protocol::sqlstate::RAISE_EXCEPTION;

pub(super) struct HeldBegin {
    /// What opens the transaction on the server it goes to: the client's BEGIN, then its settings.
    sql: String,
    failed: bool,
}

impl HeldBegin {
    /// The client's BEGIN, as it sent it.
    pub(super) fn new(begin: &str) -> HeldBegin {
        HeldBegin {
            sql: statement(begin).to_owned(),
            failed: false,
        }
    }

    /// A setting of the transaction (SET LOCAL, SET TRANSACTION), made on its server after the
    /// BEGIN. Should it fail there, the client's next statement gets 25P02, as the statement after a
    /// failed SET would on one server, but the SET's own error is not the client's to see.
    pub(super) fn add(&mut self, setting: &str) {
        // On a line of its own: the statement before may end in a -- comment.
        self.sql.push_str("\n;\n");
        self.sql.push_str(statement(setting));
    }

    /// An error ended the transaction: it now opens failed on its server, where every statement but
    /// ROLLBACK (or COMMIT, which rolls back) gets 25P02 from PostgreSQL itself.
    pub(super) fn fail(&mut self) {
        if self.failed {
            return;
        }
        self.failed = true;
        let e = ErrorFields::new(
            Severity::Error,
            RAISE_EXCEPTION,
            "the transaction failed at an earlier error",
        );
        self.sql = format!("BEGIN; {}", raise_sql(&e));
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// Whether a read may run beside the transaction, outside it: it has not failed, and neither
    /// it nor the session's settings (`desired`) ask for REPEATABLE READ or SERIALIZABLE, whose
    /// statements share one snapshot that several shards cannot give.
    pub(super) fn reads_outside(&self, desired: &[(String, String)]) -> bool {
        let isolated = |s: &str| {
            let s = s.to_ascii_lowercase();
            s.contains("repeatable") || s.contains("serializable")
        };
        let session_isolated = desired.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("default_transaction_isolation") && isolated(value)
        });
        !self.failed && !isolated(&self.sql) && !session_isolated
    }

    /// The transaction status the client sees (ReadyForQuery): in a transaction, or a failed one.
    pub(super) fn status(&self) -> u8 {
        if self.failed { b'E' } else { b'T' }
    }

    /// The Query message that opens it on a server; its replies are not the client's.
    pub(super) fn query(&self) -> BytesMut {
        let mut query = BytesMut::new();
        msg::write_query(&mut query, &self.sql);
        query
    }
}

/// One statement's text without the semicolons and blanks that end it.
pub(super) fn statement(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_begin_past_its_comments() {
        let mut held = HeldBegin::new("BEGIN ISOLATION LEVEL SERIALIZABLE -- from the ORM ;");
        held.add(" SET LOCAL statement_timeout = 1000;");
        held.add("SET LOCAL app.tenant = 'a;b' -- tenant");
        let mut want = BytesMut::new();
        msg::write_query(
            &mut want,
            "BEGIN ISOLATION LEVEL SERIALIZABLE -- from the ORM\n;\nSET LOCAL statement_timeout = 1000\n;\nSET LOCAL app.tenant = 'a;b' -- tenant",
        );
        assert_eq!(held.query(), want);
    }
}
