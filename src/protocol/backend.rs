//! Builders for the backend messages shardgate itself sends to clients (55.7). Each appends one whole
//! message to an output buffer.

use bytes::{BufMut, BytesMut};

use super::frame::{HEADER_LEN, put_cstr, write_message};

pub(crate) fn auth_ok(out: &mut BytesMut) {
    write_message(out, b'R', |b| b.put_i32(0));
}

pub(crate) fn auth_md5(out: &mut BytesMut, salt: [u8; 4]) {
    write_message(out, b'R', |b| {
        b.put_i32(5);
        b.put_slice(&salt);
    });
}

pub(crate) fn auth_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    write_message(out, b'R', |b| {
        b.put_i32(10);
        for m in mechanisms {
            put_cstr(b, m);
        }
        b.put_u8(0);
    });
}

pub(crate) fn auth_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    write_message(out, b'R', |b| {
        b.put_i32(11);
        b.put_slice(data);
    });
}

pub(crate) fn auth_sasl_final(out: &mut BytesMut, data: &[u8]) {
    write_message(out, b'R', |b| {
        b.put_i32(12);
        b.put_slice(data);
    });
}

pub(crate) fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    write_message(out, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

pub(crate) fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    write_message(out, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

pub(crate) fn ready_for_query(out: &mut BytesMut, status: u8) {
    write_message(out, b'Z', |b| b.put_u8(status));
}

pub(crate) fn parse_complete(out: &mut BytesMut) {
    write_message(out, b'1', |_| {});
}

pub(crate) fn bind_complete(out: &mut BytesMut) {
    write_message(out, b'2', |_| {});
}

pub(crate) fn no_data(out: &mut BytesMut) {
    write_message(out, b'n', |_| {});
}

pub(crate) fn close_complete(out: &mut BytesMut) {
    write_message(out, b'3', |_| {});
}

/// An Execute's row limit was reached before the portal's end.
pub(crate) fn portal_suspended(out: &mut BytesMut) {
    write_message(out, b's', |_| {});
}

pub(crate) fn command_complete(out: &mut BytesMut, tag: &str) {
    write_message(out, b'C', |b| put_cstr(b, tag));
}

/// A RowDescription of text columns (type oid 25), as the admin console sends.
pub(crate) fn row_description_text(out: &mut BytesMut, columns: &[&str]) {
    write_message(out, b'T', |b| {
        b.put_i16(columns.len() as i16);
        for c in columns {
            put_cstr(b, c);
            b.put_i32(0); // table oid
            b.put_i16(0); // column number
            b.put_i32(25); // text
            b.put_i16(-1); // variable size
            b.put_i32(-1); // no type modifier
            b.put_i16(0); // text format
        }
    });
}

pub(crate) fn data_row(out: &mut BytesMut, values: &[Option<&str>]) {
    data_row_bytes(out, values.iter().map(|v| v.map(str::as_bytes)));
}

/// A DataRow of raw column values (`None` for NULL), in whatever format they were sent.
pub(crate) fn data_row_bytes<'a>(
    out: &mut BytesMut,
    values: impl ExactSizeIterator<Item = Option<&'a [u8]>>,
) {
    write_message(out, b'D', |b| {
        b.put_i16(values.len() as i16);
        for v in values {
            match v {
                Some(v) => {
                    b.put_i32(v.len() as i32);
                    b.put_slice(v);
                }
                None => b.put_i32(-1),
            }
        }
    });
}

/// Severity of an ErrorResponse or NoticeResponse ('S' and 'V' fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Fatal,
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
        }
    }
}

/// The fields of an ErrorResponse (or NoticeResponse) that shardgate fills in (55.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    pub(crate) severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ErrorFields {
    pub(crate) fn new(severity: Severity, code: &'static str, message: impl Into<String>) -> Self {
        ErrorFields {
            severity,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
}

/// The fields of an ErrorResponse frame, by their type byte, in order.
pub(crate) fn error_fields(m: &[u8]) -> Vec<(u8, String)> {
    m[HEADER_LEN..]
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

/// An ErrorResponse of these fields.
pub(crate) fn write_error_fields(out: &mut BytesMut, fields: &[(u8, String)]) {
    write_message(out, b'E', |b| {
        for (code, value) in fields {
            b.put_u8(*code);
            put_cstr(b, value);
        }
        b.put_u8(0);
    });
}

pub(crate) fn error_response(out: &mut BytesMut, e: &ErrorFields) {
    let tag = if e.severity == Severity::Notice {
        b'N'
    } else {
        b'E'
    };
    write_message(out, tag, |b| {
        b.put_u8(b'S');
        put_cstr(b, e.severity.as_str());
        b.put_u8(b'V');
        put_cstr(b, e.severity.as_str());
        b.put_u8(b'C');
        put_cstr(b, e.code);
        b.put_u8(b'M');
        put_cstr(b, &e.message);
        if let Some(d) = &e.detail {
            b.put_u8(b'D');
            put_cstr(b, d);
        }
        if let Some(h) = &e.hint {
            b.put_u8(b'H');
            put_cstr(b, h);
        }
        b.put_u8(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(build: impl FnOnce(&mut BytesMut), want: &[u8]) {
        let mut out = BytesMut::new();
        build(&mut out);
        assert_eq!(&out[..], want);
    }

    #[test]
    fn byte_exact() {
        check(auth_ok, b"R\0\0\0\x08\0\0\0\0");
        check(|o| auth_md5(o, *b"abcd"), b"R\0\0\0\x0c\0\0\0\x05abcd");
        check(
            |o| auth_sasl(o, &["SCRAM-SHA-256"]),
            b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0",
        );
        check(
            |o| auth_sasl_continue(o, b"r=x"),
            b"R\0\0\0\x0b\0\0\0\x0br=x",
        );
        check(|o| auth_sasl_final(o, b"v=y"), b"R\0\0\0\x0b\0\0\0\x0cv=y");
        check(|o| parameter_status(o, "a", "b"), b"S\0\0\0\x08a\0b\0");
        check(
            |o| backend_key_data(o, 1, 2),
            b"K\0\0\0\x0c\0\0\0\x01\0\0\0\x02",
        );
        check(|o| ready_for_query(o, b'I'), b"Z\0\0\0\x05I");
        check(parse_complete, b"1\0\0\0\x04");
        check(close_complete, b"3\0\0\0\x04");
        check(|o| command_complete(o, "SHOW"), b"C\0\0\0\x09SHOW\0");
        check(
            |o| data_row(o, &[Some("x"), None]),
            b"D\0\0\0\x0f\0\x02\0\0\0\x01x\xff\xff\xff\xff",
        );
        check(
            |o| row_description_text(o, &["n"]),
            b"T\0\0\0\x1a\0\x01n\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0",
        );
        check(
            |o| error_response(o, &ErrorFields::new(Severity::Fatal, "28P01", "no")),
            b"E\0\0\0\x1eSFATAL\0VFATAL\0C28P01\0Mno\0\0",
        );
    }
}
