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

pub(crate) fn write_query(out: &mut BytesMut, sql: &str) {
    write_message(out, b'Q', |b| put_cstr(b, sql));
}

#[cfg(test)]
mod tests {
    use super::*;

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
