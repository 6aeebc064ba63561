//! COPY FROM STDIN data cut into rows, each with its shard key's field, for a COPY into a sharded
//! table. Text: a row ends at a newline no backslash escapes, fields at an unescaped delimiter. CSV: a
//! row ends at a newline outside quotes; a header line goes to every shard. Binary: the header and the
//! trailer go to every shard, tuples are length-prefixed. A `\.` line ends text and CSV data. Pure.

use crate::router::CopyFormat;

/// What the data holds, piece by piece, in the order sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// For every shard: a CSV header line, the binary header or trailer.
    Every(&'a [u8]),
    /// One row as the client sent it (its line end included) and its key field.
    Row { bytes: &'a [u8], key: Field },
}

/// A row's key field: the value (text unescaped, binary as sent), NULL, or absent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Value(Vec<u8>),
    Null,
    Missing,
}

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

pub(crate) struct Splitter {
    format: CopyFormat,
    /// The key's position among the row's fields.
    key_at: usize,
    buf: Vec<u8>,
    /// The CSV header or binary header is behind.
    started: bool,
    /// The end marker (`\.`, or the binary trailer) came: the rest is ignored, as PostgreSQL does.
    ended: bool,
}

impl Splitter {
    pub(crate) fn new(format: CopyFormat, key_at: usize) -> Splitter {
        Splitter {
            format,
            key_at,
            buf: Vec::new(),
            started: false,
            ended: false,
        }
    }

    /// Takes the next CopyData bytes and passes on every whole piece. `emit` may stop it with an
    /// error, which is returned.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.ended {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = loop {
            match self.next(pos) {
                Ok(Some((end, piece))) => {
                    pos = end;
                    if let Some(p) = piece
                        && let Err(e) = emit(p.resolve(&self.buf))
                    {
                        break Err(e);
                    }
                    if self.ended {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..pos);
        result
    }

    /// At CopyDone: a last text or CSV row may lack its line end; anything else left over is a
    /// truncated row.
    pub(crate) fn finish(
        &mut self,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.ended || self.buf.is_empty() {
            return Ok(());
        }
        if matches!(self.format, CopyFormat::Binary) {
            return Err("the COPY data ends in the middle of a binary row".into());
        }
        self.buf.push(b'\n');
        let fed = self.feed(&[], emit);
        match fed {
            Ok(()) if self.buf.is_empty() || self.ended => Ok(()),
            Ok(()) => Err("the COPY data ends inside a quoted CSV field".into()),
            Err(e) => Err(e),
        }
    }

    /// The piece starting at `pos`: where it ends and what it is (`None`: nothing to pass on, the
    /// end marker); `Ok(None)` when it is not whole yet.
    fn next(&mut self, pos: usize) -> Result<Option<(usize, Option<Pending>)>, String> {
        let b = &self.buf[pos..];
        match self.format.clone() {
            CopyFormat::Binary => self.next_binary(pos),
            CopyFormat::Text { delimiter, null } => {
                let Some(len) = text_line(b) else {
                    return Ok(None);
                };
                let line = &b[..len];
                if is_end_marker(line) {
                    self.ended = true;
                    return Ok(Some((pos + len, None)));
                }
                let key = text_field(content(line), delimiter, &null, self.key_at);
                Ok(Some((pos + len, Some(Pending::Row(pos..pos + len, key)))))
            }
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
                header,
            } => {
                let Some(len) = csv_line(b, quote, escape) else {
                    return Ok(None);
                };
                let line = &b[..len];
                if header && !self.started {
                    self.started = true;
                    return Ok(Some((pos + len, Some(Pending::Every(pos..pos + len)))));
                }
                if is_end_marker(line) {
                    self.ended = true;
                    return Ok(Some((pos + len, None)));
                }
                let key = csv_field(content(line), delimiter, quote, escape, &null, self.key_at);
                Ok(Some((pos + len, Some(Pending::Row(pos..pos + len, key)))))
            }
        }
    }

    fn next_binary(&mut self, pos: usize) -> Result<Option<(usize, Option<Pending>)>, String> {
        let b = &self.buf[pos..];
        if !self.started {
            // Signature, flags, then the header extension's length and the extension.
            if b.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &b[..SIGNATURE.len()] != SIGNATURE {
                return Err("COPY file signature not recognized".into());
            }
            let ext = i32_at(b, SIGNATURE.len() + 4);
            let Ok(ext) = usize::try_from(ext) else {
                return Err("invalid COPY file header (negative extension length)".into());
            };
            let len = SIGNATURE.len() + 8 + ext;
            if b.len() < len {
                return Ok(None);
            }
            self.started = true;
            return Ok(Some((pos + len, Some(Pending::Every(pos..pos + len)))));
        }
        if b.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([b[0], b[1]]);
        if fields == -1 {
            self.ended = true;
            return Ok(Some((pos + 2, Some(Pending::Every(pos..pos + 2)))));
        }
        let Ok(fields) = usize::try_from(fields) else {
            return Err(format!("invalid field count {fields} in a binary COPY row"));
        };
        let mut at = 2;
        let mut key = Field::Missing;
        for i in 0..fields {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let len = i32_at(b, at);
            at += 4;
            let value = match usize::try_from(len) {
                Ok(n) => {
                    if b.len() < at + n {
                        return Ok(None);
                    }
                    at += n;
                    Some(at - n..at)
                }
                Err(_) if len == -1 => None,
                Err(_) => return Err(format!("invalid field length {len} in a binary COPY row")),
            };
            if i == self.key_at {
                key = match value {
                    Some(r) => Field::Value(b[r].to_vec()),
                    None => Field::Null,
                };
            }
        }
        Ok(Some((pos + at, Some(Pending::Row(pos..pos + at, key)))))
    }
}

/// A piece found in the buffer, by position (the buffer cannot be lent while it is searched).
enum Pending {
    Every(std::ops::Range<usize>),
    Row(std::ops::Range<usize>, Field),
}

impl Pending {
    fn resolve(self, buf: &[u8]) -> Piece<'_> {
        match self {
            Pending::Every(r) => Piece::Every(&buf[r]),
            Pending::Row(r, key) => Piece::Row {
                bytes: &buf[r],
                key,
            },
        }
    }
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The length of the text row at the start of `b`, its newline included: a backslash escapes the
/// byte after it (a newline too).
fn text_line(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\n' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The length of the CSV row at the start of `b`, its newline included: newlines inside quotes are
/// data.
fn csv_line(b: &[u8], quote: u8, escape: u8) -> Option<usize> {
    let mut quoted = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if quoted && c == escape && escape != quote && b.get(i + 1).is_some() {
            i += 2;
            continue;
        }
        if c == quote {
            quoted = !quoted;
        } else if c == b'\n' && !quoted {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// A row without its line end (`\n` or `\r\n`).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_end_marker(line: &[u8]) -> bool {
    content(line) == b"\\."
}

/// Field `at` of a text row, unescaped; `Null` when it is the NULL string as written.
fn text_field(row: &[u8], delimiter: u8, null: &[u8], at: usize) -> Field {
    let mut field = 0;
    let mut start = 0;
    let mut i = 0;
    loop {
        let end = i >= row.len() || row[i] == delimiter;
        if end {
            if field == at {
                let raw = &row[start..i];
                return if raw == null {
                    Field::Null
                } else {
                    Field::Value(unescape(raw))
                };
            }
            if i >= row.len() {
                return Field::Missing;
            }
            field += 1;
            start = i + 1;
            i += 1;
        } else if row[i] == b'\\' {
            i += 2;
        } else {
            i += 1;
        }
    }
}

/// Text format's backslash escapes: `\b \f \n \r \t \v`, octal `\NNN`, hex `\xHH`, else the byte.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 == raw.len() {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        let digits = |from: usize, max: usize, radix: u32| {
            let n = raw[from..]
                .iter()
                .take(max)
                .take_while(|d| char::from(**d).is_digit(radix))
                .count();
            let v = std::str::from_utf8(&raw[from..from + n])
                .ok()
                .and_then(|s| u8::from_str_radix(s, radix).ok());
            (n, v)
        };
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let (n, v) = digits(i - 1, 3, 8);
                out.push(v.unwrap_or(c));
                i += n - 1;
            }
            b'x' => match digits(i, 2, 16) {
                (n, Some(v)) if n > 0 => {
                    out.push(v);
                    i += n;
                }
                _ => out.push(b'x'),
            },
            other => out.push(other),
        }
    }
    out
}

/// Field `at` of a CSV row, quotes removed; `Null` when unquoted and equal to the NULL string.
fn csv_field(row: &[u8], delimiter: u8, quote: u8, escape: u8, null: &[u8], at: usize) -> Field {
    let mut field = 0;
    let mut i = 0;
    loop {
        let mut value = Vec::new();
        let mut was_quoted = false;
        let start = i;
        let mut quoted = false;
        while i < row.len() {
            let c = row[i];
            if quoted {
                if c == escape && row.get(i + 1).is_some_and(|&n| n == quote || n == escape) {
                    // With escape == quote this is a doubled quote; a lone closing quote is not.
                    if escape != quote || row[i + 1] == quote {
                        value.push(row[i + 1]);
                        i += 2;
                        continue;
                    }
                }
                if c == quote {
                    quoted = false;
                } else {
                    value.push(c);
                }
            } else if c == quote {
                quoted = true;
                was_quoted = true;
            } else if c == delimiter {
                break;
            } else {
                value.push(c);
            }
            i += 1;
        }
        if field == at {
            return if !was_quoted && row[start..i] == *null {
                Field::Null
            } else {
                Field::Value(value)
            };
        }
        if i >= row.len() {
            return Field::Missing;
        }
        field += 1;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
        }
    }

    fn csv(header: bool) -> CopyFormat {
        CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: Vec::new(),
            header,
        }
    }

    /// A piece as (bytes, key), with `None` for a piece for every shard.
    type Got = (Vec<u8>, Option<Field>);

    /// Feeds `chunks` one after another, then finishes; every piece.
    fn split(format: CopyFormat, key_at: usize, chunks: &[&[u8]]) -> Result<Vec<Got>, String> {
        let mut s = Splitter::new(format, key_at);
        let mut got = Vec::new();
        let mut emit = |p: Piece<'_>| {
            got.push(match p {
                Piece::Every(b) => (b.to_vec(), None),
                Piece::Row { bytes, key } => (bytes.to_vec(), Some(key)),
            });
            Ok(())
        };
        for c in chunks {
            s.feed(c, &mut emit)?;
        }
        s.finish(&mut emit)?;
        Ok(got)
    }

    fn keys(pieces: &[Got]) -> Vec<Option<&Field>> {
        pieces.iter().map(|(_, k)| k.as_ref()).collect()
    }

    fn v(s: &str) -> Field {
        Field::Value(s.as_bytes().to_vec())
    }

    #[test]
    fn text_rows_split_anywhere_with_escapes() {
        let data = b"1\tone\n2\ttwo\\\nlines\n\\N\tnull key\n4\\t4\tescaped tab\n5";
        // The same pieces however the data is cut into CopyData messages.
        for cut in 0..data.len() {
            let got = split(text(), 0, &[&data[..cut], &data[cut..]]).unwrap();
            assert_eq!(
                keys(&got),
                [
                    Some(&v("1")),
                    Some(&v("2")),
                    Some(&Field::Null),
                    Some(&v("4\t4")),
                    Some(&v("5"))
                ],
                "cut at {cut}"
            );
            assert_eq!(got[1].0, b"2\ttwo\\\nlines\n");
            assert_eq!(got[4].0, b"5\n");
        }
        let got = split(text(), 1, &[b"1\tx\\x41\\101\n2\n"]).unwrap();
        assert_eq!(keys(&got), [Some(&v("xAA")), Some(&Field::Missing)]);
    }

    #[test]
    fn end_marker_and_crlf() {
        let got = split(text(), 0, &[b"1\ta\r\n\\.\r\n9\tignored\n"]).unwrap();
        assert_eq!(keys(&got), [Some(&v("1"))]);
    }

    #[test]
    fn csv_quotes_header_and_null() {
        let data =
            b"id,name\n\"1\",\"a,b\"\n2,\"line\nbreak \"\"q\"\"\"\n,empty key\n\"\",quoted empty\n";
        for cut in 0..data.len() {
            let got = split(csv(true), 0, &[&data[..cut], &data[cut..]]).unwrap();
            assert_eq!(
                keys(&got),
                [
                    None,
                    Some(&v("1")),
                    Some(&v("2")),
                    Some(&Field::Null),
                    Some(&v(""))
                ],
                "cut at {cut}"
            );
            assert_eq!(got[0].0, b"id,name\n");
        }
        let got = split(csv(false), 1, &[b"1,\"x\"\"y\"\n"]).unwrap();
        assert_eq!(keys(&got), [Some(&v("x\"y"))]);
        assert!(split(csv(false), 0, &[b"1,\"open"]).is_err());
    }

    #[test]
    fn binary_header_rows_and_trailer() {
        let mut data = SIGNATURE.to_vec();
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let row = |key: Option<i64>| {
            let mut r = vec![0, 2];
            match key {
                Some(k) => {
                    r.extend_from_slice(&8i32.to_be_bytes());
                    r.extend_from_slice(&k.to_be_bytes());
                }
                None => r.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            r.extend_from_slice(&1i32.to_be_bytes());
            r.push(b'x');
            r
        };
        data.extend(row(Some(7)));
        data.extend(row(None));
        data.extend_from_slice(&[0xff, 0xff]);
        for cut in 0..data.len() {
            let got = split(CopyFormat::Binary, 0, &[&data[..cut], &data[cut..]]).unwrap();
            assert_eq!(
                keys(&got),
                [
                    None,
                    Some(&Field::Value(7i64.to_be_bytes().to_vec())),
                    Some(&Field::Null),
                    None
                ],
                "cut at {cut}"
            );
            assert_eq!(got[0].0.len(), 19);
            assert_eq!(got[3].0, [0xff, 0xff]);
        }
        assert!(split(CopyFormat::Binary, 0, &[b"not a copy file at all"]).is_err());
        assert!(split(CopyFormat::Binary, 0, &[&data[..25]]).is_err());
    }
}
