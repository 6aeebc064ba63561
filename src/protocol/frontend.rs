//! The frontend messages shardgate looks inside (55.7): Parse, Bind, Describe and Close carry statement
//! names that transaction pooling renames; Query carries SQL the session classifier reads. Each parser
//! takes the body (after tag and length). The writers rebuild a message with another statement name.

use bytes::{BufMut, BytesMut};

use super::ProtocolError;
use super::frame::{Cursor, put_cstr, write_message};

/// Parse ('P'): a statement name, its SQL and the raw parameter type section.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parse<'a> {
    pub name: &'a str,
    pub query: &'a str,
    /// The Int16 count and Int32 OIDs, kept raw: they only travel on.
    pub param_types: &'a [u8],
}

pub(crate) fn parse(body: &[u8]) -> Result<Parse<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Parse");
    let name = c.cstr()?;
    let query = c.cstr()?;
    let param_types = c.rest();
    let mut check = Cursor::new(param_types, "Parse");
    let n = check.i16()?;
    if n < 0 || check.rest().len() != n as usize * 4 {
        return Err(ProtocolError::Malformed { what: "Parse" });
    }
    Ok(Parse {
        name,
        query,
        param_types,
    })
}

/// Bind ('B'): the portal, the statement, and everything after them unparsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    pub rest: &'a [u8],
}

pub(crate) fn bind(body: &[u8]) -> Result<Bind<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Bind");
    let portal = c.cstr()?;
    let statement = c.cstr()?;
    Ok(Bind {
        portal,
        statement,
        rest: c.rest(),
    })
}

/// The parameters of a Bind, from its `rest` (55.7, Bind): per-parameter formats as sent (none = all
/// text, one = all that format, else one each) and values (`None` for NULL).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BindParams<'a> {
    pub formats: Vec<i16>,
    pub values: Vec<Option<&'a [u8]>>,
    /// The result-column format codes and everything after the values, as sent.
    pub tail: &'a [u8],
}

impl BindParams<'_> {
    /// The format of parameter `i`: 0 text, 1 binary.
    pub(crate) fn format(&self, i: usize) -> i16 {
        match self.formats.len() {
            0 => 0,
            1 => self.formats[0],
            _ => self.formats.get(i).copied().unwrap_or(0),
        }
    }
}

pub(crate) fn bind_params(rest: &[u8]) -> Result<BindParams<'_>, ProtocolError> {
    let mut c = Cursor::new(rest, "Bind");
    let nformats = c.i16()?.max(0) as usize;
    let formats = (0..nformats)
        .map(|_| c.i16())
        .collect::<Result<Vec<_>, _>>()?;
    let nvalues = c.i16()?.max(0) as usize;
    let mut values = Vec::with_capacity(nvalues);
    for _ in 0..nvalues {
        let len = c.i32()?;
        values.push(if len < 0 {
            None
        } else {
            Some(c.take(len as usize)?)
        });
    }
    Ok(BindParams {
        formats,
        values,
        tail: c.rest(),
    })
}

/// A Bind's `rest` for a subset of the parameters (`pick[j]` = original index of new parameter j), with
/// the result formats unchanged: the Bind of one part of a split INSERT.
pub(crate) fn write_bind_rest(out: &mut BytesMut, p: &BindParams, pick: &[usize]) {
    out.put_i16(pick.len() as i16);
    for &i in pick {
        out.put_i16(p.format(i));
    }
    out.put_i16(pick.len() as i16);
    for &i in pick {
        match p.values.get(i).copied().flatten() {
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
            None => out.put_i32(-1),
        }
    }
    out.put_slice(p.tail);
}

/// Execute ('E'): the portal and the row limit (0 = all).
pub(crate) fn execute(body: &[u8]) -> Result<(&str, i32), ProtocolError> {
    let mut c = Cursor::new(body, "Execute");
    Ok((c.cstr()?, c.i32()?))
}

/// What a Describe or Close names: a prepared statement ('S') or a portal ('P').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Statement(&'a str),
    Portal(&'a str),
}

/// The body of Describe ('D') and Close ('C'), which share a layout.
pub(crate) fn target<'a>(body: &'a [u8], what: &'static str) -> Result<Target<'a>, ProtocolError> {
    let mut c = Cursor::new(body, what);
    let kind = c.u8()?;
    let name = c.cstr()?;
    if !c.is_empty() {
        return Err(ProtocolError::Malformed { what });
    }
    match kind {
        b'S' => Ok(Target::Statement(name)),
        b'P' => Ok(Target::Portal(name)),
        _ => Err(ProtocolError::Malformed { what }),
    }
}

/// Query ('Q'): the SQL text.
pub(crate) fn query(body: &[u8]) -> Result<&str, ProtocolError> {
    let mut c = Cursor::new(body, "Query");
    let sql = c.cstr()?;
    if !c.is_empty() {
        return Err(ProtocolError::Malformed { what: "Query" });
    }
    Ok(sql)
}

/// A string as an SQL literal in the statements shardgate writes itself (`'it''s'`; with
/// standard_conforming_strings, PostgreSQL's default, nothing else needs escaping).
/// A string literal that reads the same whatever `standard_conforming_strings` says (an escape
/// string, with quotes and backslashes doubled).
pub(crate) fn quote_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A dotted name (`app.user`) with each part a quoted identifier, whatever it holds.
pub(crate) fn quote_ident_path(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn write_parse(out: &mut BytesMut, name: &str, query: &str, param_types: &[u8]) {
    write_message(out, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, query);
        b.put_slice(param_types);
    });
}

pub(crate) fn write_bind(out: &mut BytesMut, portal: &str, statement: &str, rest: &[u8]) {
    write_message(out, b'B', |b| {
        put_cstr(b, portal);
        put_cstr(b, statement);
        b.put_slice(rest);
    });
}

pub(crate) fn write_describe_statement(out: &mut BytesMut, name: &str) {
    write_message(out, b'D', |b| {
        b.put_u8(b'S');
        put_cstr(b, name);
    });
}

pub(crate) fn write_close_statement(out: &mut BytesMut, name: &str) {
    write_message(out, b'C', |b| {
        b.put_u8(b'S');
        put_cstr(b, name);
    });
}

pub(crate) fn write_describe_portal(out: &mut BytesMut, name: &str) {
    write_message(out, b'D', |b| {
        b.put_u8(b'P');
        put_cstr(b, name);
    });
}

pub(crate) fn write_execute(out: &mut BytesMut, portal: &str, max_rows: i32) {
    write_message(out, b'E', |b| {
        put_cstr(b, portal);
        b.put_i32(max_rows);
    });
}

pub(crate) fn write_sync(out: &mut BytesMut) {
    write_message(out, b'S', |_| {});
}

/// CopyFail (55.7), its reason as a C string.
pub(crate) fn write_copy_fail(out: &mut BytesMut, reason: &str) {
    write_message(out, b'f', |b| put_cstr(b, reason));
}

pub(crate) fn write_flush(out: &mut BytesMut) {
    write_message(out, b'H', |_| {});
}

pub(crate) fn write_query(out: &mut BytesMut, sql: &str) {
    write_message(out, b'Q', |b| put_cstr(b, sql));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_their_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's"), "E'it''s'");
        assert_eq!(quote_literal(""), "E''");
        assert_eq!(quote_literal("a\\b\\"), "E'a\\\\b\\\\'");
        assert_eq!(quote_ident_path("app.user"), "\"app\".\"user\"");
        assert_eq!(quote_ident_path("x\";y"), "\"x\"\";y\"");
    }

    #[test]
    fn parse_roundtrip() {
        let mut out = BytesMut::new();
        write_parse(&mut out, "s1", "select $1", b"\0\x01\0\0\0\x17");
        assert_eq!(&out[..], b"P\0\0\0\x17s1\0select $1\0\0\x01\0\0\0\x17");
        let p = parse(&out[5..]).unwrap();
        assert_eq!(
            p,
            Parse {
                name: "s1",
                query: "select $1",
                param_types: b"\0\x01\0\0\0\x17"
            }
        );
        assert_eq!(
            parse(b"s\0q\0\0\x02\0\0\0\x17"),
            Err(ProtocolError::Malformed { what: "Parse" })
        );
    }

    #[test]
    fn bind_params_and_subsets() {
        // Formats [text, binary], values ["7", NULL, b"\x01"], result formats [1].
        let rest = b"\0\x02\0\0\0\x01\0\x03\0\0\0\x017\xff\xff\xff\xff\0\0\0\x01\x01\0\x01\0\x01";
        let p = bind_params(rest).unwrap();
        assert_eq!(p.formats, vec![0, 1]);
        assert_eq!(p.values, vec![Some(&b"7"[..]), None, Some(&b"\x01"[..])]);
        assert_eq!(p.tail, b"\0\x01\0\x01");
        assert_eq!((p.format(0), p.format(1), p.format(2)), (0, 1, 0));
        let mut out = BytesMut::new();
        write_bind_rest(&mut out, &p, &[2, 0]);
        assert_eq!(
            &out[..],
            b"\0\x02\0\0\0\0\0\x02\0\0\0\x01\x01\0\0\0\x017\0\x01\0\x01"
        );
        assert!(bind_params(b"\0\x01\0").is_err());
    }

    #[test]
    fn bind_roundtrip() {
        let mut out = BytesMut::new();
        write_bind(&mut out, "", "s1", b"\0\0\0\0\0\0");
        assert_eq!(&out[..], b"B\0\0\0\x0e\0s1\0\0\0\0\0\0\0");
        assert_eq!(
            bind(&out[5..]).unwrap(),
            Bind {
                portal: "",
                statement: "s1",
                rest: b"\0\0\0\0\0\0"
            }
        );
    }

    #[test]
    fn targets() {
        assert_eq!(target(b"Sabc\0", "Close"), Ok(Target::Statement("abc")));
        assert_eq!(target(b"P\0", "Describe"), Ok(Target::Portal("")));
        assert_eq!(
            target(b"X\0", "Describe"),
            Err(ProtocolError::Malformed { what: "Describe" })
        );
        let mut out = BytesMut::new();
        write_describe_statement(&mut out, "s");
        assert_eq!(&out[..], b"D\0\0\0\x07Ss\0");
    }

    #[test]
    fn query_text() {
        assert_eq!(query(b"select 1\0"), Ok("select 1"));
        assert_eq!(
            query(b"select 1"),
            Err(ProtocolError::Malformed { what: "Query" })
        );
        let mut out = BytesMut::new();
        write_query(&mut out, "x");
        assert_eq!(&out[..], b"Q\0\0\0\x06x\0");
    }
}
