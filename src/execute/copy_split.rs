//! COPY FROM STDIN data cut into rows, each with its shard key's field, for a COPY into a sharded
//! table. Text: a row ends at a newline no backslash escapes, fields at an unescaped delimiter. CSV: a
//! row ends at a newline outside quotes. A HEADER line goes to every shard. Binary: the header and the
//! trailer go to every shard, tuples are length-prefixed. A `\.` line ends text and CSV data. Line
//! ends are `\n` or `\r\n`; a bare `\r` line end is refused (the rows could not be told apart). A
//! partial row is scanned once, whatever the CopyData messages cut it into. Pure.

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

/// A row may not grow past this while its end is awaited.
const MAX_ROW: usize = 64 << 20;

pub(crate) struct Splitter {
    format: CopyFormat,
    /// The key's position among the row's fields.
    key_at: usize,
    buf: Vec<u8>,
    /// The CSV header or binary header is behind.
    started: bool,
    /// The end marker (`\.`, or the binary trailer) came: the rest is ignored, as PostgreSQL does.
    ended: bool,
    /// How far the partial row at the head of `buf` was scanned, and whether that point is inside a
    /// CSV quote.
    scanned: usize,
    quoted: bool,
}

impl Splitter {
    pub(crate) fn new(format: CopyFormat, key_at: usize) -> Splitter {
        Splitter {
            format,
            key_at,
            buf: Vec::new(),
            started: false,
            ended: false,
            scanned: 0,
            quoted: false,
        }
    }

    /// Key fields come as sent in binary format (else as text).
    pub(crate) fn binary(&self) -> bool {
        self.format == CopyFormat::Binary
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
        if result.is_ok() && self.buf.len() > MAX_ROW {
            return Err(format!("a COPY row longer than {} MB", MAX_ROW >> 20));
        }
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
        if self.binary() {
            return self.next_binary(pos);
        }
        // Borrowed field by field: the format is read, the scan state written, nothing cloned per row.
        let Splitter {
            format,
            key_at,
            buf,
            started,
            ended,
            scanned,
            quoted,
        } = self;
        let b = &buf[pos..];
        let (scan, header) = match format {
            CopyFormat::Text { header, .. } => (text_line(b, *scanned)?, *header),
            CopyFormat::Csv {
                quote,
                escape,
                header,
                ..
            } => (csv_line(b, *scanned, *quoted, *quote, *escape)?, *header),
            CopyFormat::Binary => unreachable!("binary rows are cut above"),
        };
        let len = match scan {
            Scan::Whole(len) => len,
            Scan::Partial((at, q)) => {
                (*scanned, *quoted) = (at, q);
                return Ok(None);
            }
        };
        (*scanned, *quoted) = (0, false);
        let end = pos + len;
        if header && !*started {
            *started = true;
            return Ok(Some((end, Some(Pending::Every(pos..end)))));
        }
        let line = &buf[pos..end];
        if is_end_marker(line) {
            *ended = true;
            return Ok(Some((end, None)));
        }
        let key = match format {
            CopyFormat::Text {
                delimiter, null, ..
            } => text_field(content(line), *delimiter, null, *key_at),
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
                ..
            } => csv_field(content(line), *delimiter, *quote, *escape, null, *key_at),
            CopyFormat::Binary => unreachable!("binary rows are cut above"),
        };
        Ok(Some((end, Some(Pending::Row(pos..end, key)))))
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

/// A row's end: found (the row's length, its line end included), or where to go on scanning once
/// more data came, and whether that point is inside a CSV quote.
enum Scan {
    Whole(usize),
    Partial((usize, bool)),
}

const BARE_CR: &str = "COPY data with carriage-return line ends (no newline) is not supported";

/// A carriage return ends a line only before a newline; one at the end of the data so far waits.
fn bare_cr(b: &[u8], i: usize) -> bool {
    b.get(i + 1).is_some_and(|&n| n != b'\n')
}

/// The text row at the start of `b`, scanned from `from`: a backslash escapes the byte after it (a
/// newline too).
fn text_line(b: &[u8], from: usize) -> Result<Scan, String> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 == b.len() => return Ok(Scan::Partial((i, false))),
            b'\\' => i += 2,
            b'\n' => return Ok(Scan::Whole(i + 1)),
            b'\r' if bare_cr(b, i) => return Err(BARE_CR.into()),
            b'\r' if i + 1 == b.len() => return Ok(Scan::Partial((i, false))),
            _ => i += 1,
        }
    }
    Ok(Scan::Partial((i, false)))
}

/// The CSV row at the start of `b`, scanned from `from` (inside quotes or not): newlines inside
/// quotes are data.
fn csv_line(
    b: &[u8],
    from: usize,
    mut quoted: bool,
    quote: u8,
    escape: u8,
) -> Result<Scan, String> {
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        if quoted && c == escape && escape != quote {
            if i + 1 == b.len() {
                return Ok(Scan::Partial((i, quoted)));
            }
            i += 2;
            continue;
        }
        if c == quote {
            quoted = !quoted;
        } else if !quoted && c == b'\n' {
            return Ok(Scan::Whole(i + 1));
        } else if !quoted && c == b'\r' {
            if bare_cr(b, i) {
                return Err(BARE_CR.into());
            }
            if i + 1 == b.len() {
                return Ok(Scan::Partial((i, quoted)));
            }
        }
        i += 1;
    }
    Ok(Scan::Partial((i, quoted)))
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
            // A backslash may end the row (it escaped the line's CR, which `content` took off).
            i = (i + 2).min(row.len());
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
        let hex = |from: usize| {
            let n = raw[from..]
                .iter()
                .take(2)
                .take_while(|d| d.is_ascii_hexdigit())
                .count();
            let v = std::str::from_utf8(&raw[from..from + n])
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok());
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
                // Up to three octal digits; PostgreSQL keeps the low byte of `\777`.
                let n = raw[i - 1..]
                    .iter()
                    .take(3)
                    .take_while(|d| (b'0'..=b'7').contains(*d))
                    .count();
                let v = raw[i - 1..i - 1 + n]
                    .iter()
                    .fold(0u16, |v, d| v * 8 + u16::from(d - b'0'));
                out.push(v as u8);
                i += n - 1;
            }
            b'x' => match hex(i) {
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
        // Only the key field's bytes are kept.
        let keep = field == at;
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
                        if keep {
                            value.push(row[i + 1]);
                        }
                        i += 2;
                        continue;
                    }
                }
                if c == quote {
                    quoted = false;
                } else if keep {
                    value.push(c);
                }
            } else if c == quote {
                quoted = true;
                was_quoted = true;
            } else if c == delimiter {
                break;
            } else if keep {
                value.push(c);
            }
            i += 1;
        }
        if keep {
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
            header: false,
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
    fn end_marker_crlf_header_and_bare_cr() {
        let data = b"1\ta\r\n2\tb\r\n\\.\r\n9\tignored\n";
        for cut in 0..data.len() {
            let got = split(text(), 0, &[&data[..cut], &data[cut..]]).unwrap();
            assert_eq!(keys(&got), [Some(&v("1")), Some(&v("2"))], "cut at {cut}");
        }
        let header = CopyFormat::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
            header: true,
        };
        let got = split(header, 0, &[b"id\tname\n1\ta\n"]).unwrap();
        assert_eq!(keys(&got), [None, Some(&v("1"))]);
        assert!(split(text(), 0, &[b"1\ta\r2\tb\r"]).is_err());
        assert!(split(csv(false), 0, &[b"1,a\r2,b\r"]).is_err());
        let got = split(csv(false), 1, &[b"1,\"a\rb\"\n"]).unwrap();
        assert_eq!(keys(&got), [Some(&v("a\rb"))]);
        let got = split(text(), 0, &[b"\\777\\x41\n"]).unwrap();
        assert_eq!(keys(&got), [Some(&Field::Value(vec![0xff, b'A']))]);
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

    fn formats() -> Vec<CopyFormat> {
        vec![
            text(),
            csv(true),
            CopyFormat::Csv {
                delimiter: b';',
                quote: b'\'',
                escape: b'\\',
                null: b"NULL".to_vec(),
                header: false,
            },
            CopyFormat::Binary,
        ]
    }

    /// Feeds and finishes, ignoring the outcome: only a panic fails.
    fn split_all(format: CopyFormat, key_at: usize, chunks: &[Vec<u8>]) {
        let mut s = Splitter::new(format, key_at);
        let mut emit = |_: Piece<'_>| Ok(());
        for c in chunks {
            if s.feed(c, &mut emit).is_err() {
                return;
            }
        }
        let _ = s.finish(&mut emit);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Whatever a client sends as COPY data, the splitter answers (rows or an error).
        #[test]
    fn copy_data_never_panics(
        chunks in proptest::prelude::prop::collection::vec(
            proptest::prelude::prop::collection::vec(proptest::prelude::prop::sample::select(b"1a\t,;\\\r\n\"'N.\xc3\xa9\0\xff".to_vec()), 0..24),
            0..6,
        ),
        key_at in 0usize..3,
    ) {
        for f in formats() {
            split_all(f, key_at, &chunks);
        }
    }
    }

    #[test]
    fn a_text_row_ending_in_a_backslash_before_crlf() {
        // The backslash escapes the CR, the LF ends the line: the row's last byte is the backslash.
        // Its rows pass whole, a trailing backslash is kept in the key, wherever the data is cut.
        let data = b"7\\\r\n8\tx\\\r\n";
        for cut in 0..data.len() {
            for (key_at, want) in [(0, [v("7\\"), v("8")]), (1, [Field::Missing, v("x\\")])] {
                let got = split(text(), key_at, &[&data[..cut], &data[cut..]]).unwrap();
                let rows: Vec<&[u8]> = got.iter().map(|(b, _)| b.as_slice()).collect();
                assert_eq!(rows, [&b"7\\\r\n"[..], b"8\tx\\\r\n"], "cut {cut}");
                assert_eq!(
                    keys(&got),
                    want.iter().map(Some).collect::<Vec<_>>(),
                    "cut {cut}"
                );
            }
        }
    }
}
