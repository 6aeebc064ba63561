//! Framing: a whole message must be buffered before it is looked at; an incomplete one is `Ok(None)`.
//! Regular messages are a tag byte and an i32 length that counts itself (55.7); the startup packet has
//! no tag.

use bytes::{BufMut, BytesMut};

use super::ProtocolError;

/// Bytes of a tagged message header: the tag and the length.
pub(crate) const HEADER_LEN: usize = 5;

/// The transaction status a ReadyForQuery frame (header included) reports; 'E' when it is missing.
pub(crate) fn ready_status(frame: &[u8]) -> u8 {
    frame.get(HEADER_LEN).copied().unwrap_or(b'E')
}

/// Length in bytes of the first complete tagged message in `buf`, or `None` if more bytes are needed.
pub(crate) fn tagged_len(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(ProtocolError::BadLength { len: len.into() });
    }
    let total = len as usize + 1;
    if total > max {
        return Err(ProtocolError::TooLarge { len: total, max });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Length of a complete untagged startup packet at the head of `buf`, or `None` if more bytes are needed.
pub(crate) fn startup_len(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    // The smallest startup-type packet is an SSLRequest: length and code, 8 bytes.
    if len < 8 {
        return Err(ProtocolError::BadLength { len: len.into() });
    }
    let total = len as usize;
    if total > max {
        return Err(ProtocolError::TooLarge { len: total, max });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Writes a tagged message: the tag, a length placeholder, the body from `body`, then patches the length.
pub(crate) fn write_message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    body(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a NUL-terminated string.
pub(crate) fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// A read cursor over a message body; every getter fails cleanly on truncated input.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, what }
    }

    fn malformed(&self) -> ProtocolError {
        ProtocolError::Malformed { what: self.what }
    }

    pub(crate) fn cstr(&mut self) -> Result<&'a str, ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.malformed())?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| self.malformed())?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| self.malformed())?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(self.malformed());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The column values of a DataRow frame (`None` for NULL); `None` if malformed.
pub(crate) fn data_row(frame_bytes: &[u8]) -> Option<Vec<Option<&[u8]>>> {
    let mut c = Cursor::new(frame_bytes.get(HEADER_LEN..)?, "DataRow");
    let n = c.i16().ok()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = c.i32().ok()?;
        out.push(if len < 0 {
            None
        } else {
            Some(c.take(len as usize).ok()?)
        });
    }
    Some(out)
}

/// One field of an ErrorResponse or NoticeResponse frame (55.8: a code byte, then a C string), if
/// present.
pub(crate) fn error_field(frame_bytes: &[u8], code: u8) -> Option<&[u8]> {
    frame_bytes
        .get(HEADER_LEN..)?
        .split(|&b| b == 0)
        .find(|f| f.first() == Some(&code))
        .map(|f| &f[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_fields_by_code() {
        let mut e = BytesMut::new();
        write_message(&mut e, b'E', |b| {
            b.put_slice(b"SERROR\0C0A000\0Mcached plan\0\0");
        });
        assert_eq!(error_field(&e, b'C'), Some(&b"0A000"[..]));
        assert_eq!(error_field(&e, b'M'), Some(&b"cached plan"[..]));
        assert_eq!(error_field(&e, b'D'), None);
        assert_eq!(error_field(b"E", b'C'), None);
    }

    fn check(buf: &[u8], max: usize, want: Result<Option<usize>, ProtocolError>) {
        assert_eq!(tagged_len(buf, max), want, "{buf:?}");
    }

    #[test]
    fn tagged_framing() {
        check(b"Q\0\0", 100, Ok(None));
        check(b"Q\0\0\0\x04", 100, Ok(Some(5)));
        check(b"Q\0\0\0\x05", 100, Ok(None));
        check(b"Q\0\0\0\x05x", 100, Ok(Some(6)));
        check(b"Q\0\0\0\x05xyz", 100, Ok(Some(6)));
        check(
            b"Q\0\0\0\x03",
            100,
            Err(ProtocolError::BadLength { len: 3 }),
        );
        check(
            b"Q\xff\xff\xff\xff",
            100,
            Err(ProtocolError::BadLength { len: -1 }),
        );
        check(
            b"Q\0\0\x01\0",
            100,
            Err(ProtocolError::TooLarge { len: 257, max: 100 }),
        );
    }

    #[test]
    fn startup_framing() {
        assert_eq!(startup_len(b"\0\0\0\x08\x04\xd2", 100), Ok(None));
        assert_eq!(startup_len(b"\0\0\0\x08\x04\xd2\x16\x2f", 100), Ok(Some(8)));
        assert_eq!(
            startup_len(b"GET / HTTP/1.1", 100),
            Err(ProtocolError::TooLarge {
                len: 1195725856,
                max: 100
            })
        );
        assert_eq!(
            startup_len(b"\0\0\0\x02", 100),
            Err(ProtocolError::BadLength { len: 2 })
        );
    }

    #[test]
    fn cursor_rejects_truncation() {
        let mut c = Cursor::new(b"ab\0\x01", "Parse");
        assert_eq!(c.cstr(), Ok("ab"));
        assert_eq!(c.i16(), Err(ProtocolError::Malformed { what: "Parse" }));
    }
}
