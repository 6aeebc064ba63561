//! A BEGIN shardgate holds until the transaction's first statement says which shard it runs on. The
//! client was told BEGIN and sees its transaction meanwhile: in progress, or failed once an error
//! (from a prepare a server answered) ended it, as PostgreSQL's would.

use bytes::BytesMut;

use super::route::raise_sql;
use crate::protocol::backend::{ErrorFields, Severity};
use crate::protocol::frontend as msg;
use crate::protocol::sqlstate::RAISE_EXCEPTION;

pub(super) struct HeldBegin {
    /// The Query message that opens the transaction on the server it goes to.
    query: BytesMut,
    failed: bool,
}

impl HeldBegin {
    /// The client's BEGIN, as it sent it.
    pub(super) fn new(query_message: &[u8]) -> HeldBegin {
        HeldBegin {
            query: BytesMut::from(query_message),
            failed: false,
        }
    }

    /// An error ended the transaction: it now opens failed on its server, where every statement but
    /// ROLLBACK (or COMMIT, which rolls back) gets 25P02 from PostgreSQL itself.
    pub(super) fn fail(&mut self) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.query.clear();
        let e = ErrorFields::new(
            Severity::Error,
            RAISE_EXCEPTION,
            "the transaction failed at an earlier error",
        );
        msg::write_query(&mut self.query, &format!("BEGIN; {}", raise_sql(&e)));
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// The transaction status the client sees (ReadyForQuery): in a transaction, or a failed one.
    pub(super) fn status(&self) -> u8 {
        if self.failed { b'E' } else { b'T' }
    }

    /// The Query message that opens it on a server; its replies are not the client's.
    pub(super) fn query(&self) -> &[u8] {
        &self.query
    }
}
