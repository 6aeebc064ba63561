//! A refusal raised inside the server's transaction, so that it aborts as PostgreSQL's would: the DO
//! block that raises it, and its ErrorResponse made shardgate's own again.

use bytes::BytesMut;

use crate::protocol::backend::{self, ErrorFields};
use crate::protocol::frontend as msg;

/// Marks the ErrorResponse of shardgate's DO block, in its schema field: no error of the client's
/// has it unless its own RAISE ... USING SCHEMA names it so.
const MARK: &str = "shardgate";

/// A statement that fails on the server with `e`.
pub(super) fn raise_sql(e: &ErrorFields) -> String {
    format!(
        "DO $shardgate$BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = {}, HINT = {}, SCHEMA = '{MARK}'; END$shardgate$",
        e.code,
        msg::quote_literal(&e.message),
        msg::quote_literal(e.hint.as_deref().unwrap_or_default())
    )
}

/// The ErrorResponse `m` as the client should see it, if it is the DO block's: without what PL/pgSQL
/// adds (the CONTEXT "PL/pgSQL function inline_code_block line 1 at RAISE", its source file, line
/// and routine), the mark, or an empty hint. `None` for any other error, which goes as it is.
pub(super) fn own_error(m: &[u8]) -> Option<BytesMut> {
    let fields = backend::error_fields(m);
    if !fields.iter().any(|(c, v)| *c == b's' && v == MARK) {
        return None;
    }
    let mut out = BytesMut::new();
    backend::write_error_fields(&mut out, &what_failed(fields));
    Some(out)
}

/// The fields of an error that say what failed, not where in shardgate's own SQL: severity, code,
/// message, detail and a hint if it has one.
pub(super) fn what_failed(fields: Vec<(u8, String)>) -> Vec<(u8, String)> {
    fields
        .into_iter()
        .filter(|(c, v)| {
            matches!(c, b'S' | b'V' | b'C' | b'M' | b'D') || *c == b'H' && !v.is_empty()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::backend::Severity;

    fn error(fields: &[(u8, &str)]) -> BytesMut {
        let owned: Vec<(u8, String)> = fields.iter().map(|(c, v)| (*c, (*v).to_owned())).collect();
        let mut out = BytesMut::new();
        backend::write_error_fields(&mut out, &owned);
        out
    }

    #[test]
    fn the_raise_is_shardgates_own_error_again() {
        let server = error(&[
            (b'S', "ERROR"),
            (b'V', "ERROR"),
            (b'C', "0A000"),
            (b'M', "statement routes to shard s1"),
            (b'H', ""),
            (b'W', "PL/pgSQL function inline_code_block line 1 at RAISE"),
            (b's', MARK),
            (b'F', "pl_exec.c"),
            (b'L', "3891"),
            (b'R', "exec_stmt_raise"),
        ]);
        let mut want = BytesMut::new();
        let e = ErrorFields::new(Severity::Error, "0A000", "statement routes to shard s1");
        backend::error_response(&mut want, &e);
        assert_eq!(own_error(&server), Some(want));
    }

    #[test]
    fn other_errors_are_not_touched() {
        let theirs = error(&[
            (b'S', "ERROR"),
            (b'C', "P0001"),
            (b'M', "mine"),
            (b'W', "PL/pgSQL function inline_code_block line 1 at RAISE"),
        ]);
        assert_eq!(own_error(&theirs), None);
    }

    #[test]
    fn the_raise_names_the_mark() {
        let e = ErrorFields::new(Severity::Error, "0A000", "it's refused");
        let sql = raise_sql(&e);
        assert!(sql.contains("SCHEMA = 'shardgate'"), "{sql}");
        assert!(sql.contains("MESSAGE = E'it''s refused'"), "{sql}");
    }
}
