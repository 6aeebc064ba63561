//! Bind parameters as the router reads them: each one's format and value, and PostgreSQL's array
//! format for `key = ANY($n)` (text `{1,2,"a b",NULL}`, binary per `array_send`).

use crate::sharding::{KeyType, KeyValue};

/// The parameters of one Bind. Formats follow PostgreSQL's rules (55.7, Bind): no format codes means
/// all text, one applies to every parameter, otherwise one per parameter.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    formats: &'a [i16],
    values: &'a [Option<&'a [u8]>],
}

/// Why a parameter gives no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamError {
    Missing,
    Null,
    /// The value does not parse for the key type (the text says what was wrong).
    Invalid(String),
}

impl<'a> Params<'a> {
    /// `values[i]` is `None` for a NULL.
    pub fn new(formats: &'a [i16], values: &'a [Option<&'a [u8]>]) -> Params<'a> {
        Params { formats, values }
    }

    /// A simple Query: no parameters.
    pub fn none() -> Params<'static> {
        Params {
            formats: &[],
            values: &[],
        }
    }

    fn binary(&self, i: usize) -> bool {
        match self.formats {
            [] => false,
            [one] => *one == 1,
            many => many.get(i) == Some(&1),
        }
    }

    fn raw(&self, i: usize) -> Result<&'a [u8], ParamError> {
        match self.values.get(i) {
            None => Err(ParamError::Missing),
            Some(None) => Err(ParamError::Null),
            Some(Some(v)) => Ok(v),
        }
    }

    /// Parameter `i` as sent: its format code and bytes, `None` for NULL.
    pub(crate) fn value(&self, i: usize) -> Result<Option<(i16, &'a [u8])>, ParamError> {
        match self.raw(i) {
            Ok(raw) => Ok(Some((i16::from(self.binary(i)), raw))),
            Err(ParamError::Null) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Parameter `i` read as a key of type `ty`.
    pub(crate) fn key(&self, i: usize, ty: KeyType) -> Result<KeyValue, ParamError> {
        let raw = self.raw(i)?;
        let parsed = if self.binary(i) {
            ty.parse_binary(raw)
        } else {
            let text =
                std::str::from_utf8(raw).map_err(|_| ParamError::Invalid("not UTF-8".into()))?;
            ty.parse_text(text)
        };
        parsed.map_err(|e| ParamError::Invalid(e.to_string()))
    }

    /// Array parameter `i` read as keys of type `ty`. NULL elements never equal a key and are skipped.
    pub(crate) fn keys(&self, i: usize, ty: KeyType) -> Result<Vec<KeyValue>, ParamError> {
        let raw = self.raw(i)?;
        if self.binary(i) {
            binary_array(raw, ty)
        } else {
            let text =
                std::str::from_utf8(raw).map_err(|_| ParamError::Invalid("not UTF-8".into()))?;
            let elems = text_array(text)
                .ok_or_else(|| ParamError::Invalid(format!("{text:?} is not an array literal")))?;
            elems
                .into_iter()
                .flatten()
                .map(|e| {
                    ty.parse_text(&e)
                        .map_err(|e| ParamError::Invalid(e.to_string()))
                })
                .collect()
        }
    }
}

/// `array_in`'s text form: braces (nested for more dimensions), commas, elements bare or double
/// quoted with backslash escapes; a bare NULL is a null. Returns the elements flattened.
fn text_array(s: &str) -> Option<Vec<Option<String>>> {
    let s = s.trim();
    let b = s.as_bytes();
    // Explicit bounds (`[1:3]={...}`) are rare in drivers: not supported.
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    // Whether an element may start here (after `{` or `,`), and whether the previous token was `}`.
    let mut expect_elem = true;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                expect_elem = true;
                i += 1;
            }
            b'}' => {
                depth = depth.checked_sub(1)?;
                expect_elem = false;
                i += 1;
                if depth == 0 {
                    return (s[i..].trim().is_empty()).then_some(out);
                }
            }
            b',' => {
                expect_elem = true;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'"' => {
                if !expect_elem {
                    return None;
                }
                let mut v = Vec::new();
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'\\' => {
                            v.push(*b.get(i + 1)?);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        c => {
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Some(String::from_utf8(v).ok()?));
                expect_elem = false;
            }
            _ => {
                if !expect_elem || depth == 0 {
                    return None;
                }
                let start = i;
                let mut v = Vec::new();
                while i < b.len() && !matches!(b[i], b',' | b'}' | b'{' | b'"') {
                    if b[i] == b'\\' {
                        v.push(*b.get(i + 1)?);
                        i += 2;
                    } else {
                        v.push(b[i]);
                        i += 1;
                    }
                }
                let raw = String::from_utf8(v).ok()?;
                let elem = raw.trim_end();
                let bare_null = elem.eq_ignore_ascii_case("null") && !s[start..i].contains('\\');
                out.push((!bare_null).then(|| elem.to_owned()));
                expect_elem = false;
            }
        }
    }
    None
}

/// `array_recv`'s binary form: ndim, has-null flag, element type oid, (size, lower bound) per
/// dimension, then each element as a length (-1 for NULL) and its bytes.
fn binary_array(b: &[u8], ty: KeyType) -> Result<Vec<KeyValue>, ParamError> {
    let bad = |what: &str| ParamError::Invalid(format!("binary array: {what}"));
    let mut r = Reader { b, at: 0 };
    let ndim = r.i32().ok_or_else(|| bad("short header"))?;
    let _has_null = r.i32().ok_or_else(|| bad("short header"))?;
    let _oid = r.i32().ok_or_else(|| bad("short header"))?;
    if !(0..=6).contains(&ndim) {
        return Err(bad("bad dimension count"));
    }
    let mut count: usize = if ndim == 0 { 0 } else { 1 };
    for _ in 0..ndim {
        let size = r.i32().ok_or_else(|| bad("short dimensions"))?;
        let _lower = r.i32().ok_or_else(|| bad("short dimensions"))?;
        let size = usize::try_from(size).map_err(|_| bad("negative size"))?;
        count = count.checked_mul(size).ok_or_else(|| bad("too large"))?;
    }
    // Each element takes at least its 4-byte length.
    if count > (b.len() - r.at) / 4 {
        return Err(bad("more elements than bytes"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.i32().ok_or_else(|| bad("short element"))?;
        if len == -1 {
            continue;
        }
        let len = usize::try_from(len).map_err(|_| bad("bad element length"))?;
        let elem = r.take(len).ok_or_else(|| bad("short element"))?;
        out.push(
            ty.parse_binary(elem)
                .map_err(|e| ParamError::Invalid(e.to_string()))?,
        );
    }
    if r.at != b.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

#[cfg(test)]
pub(crate) fn binary_int8_array(values: &[Option<i64>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&i32::from(values.iter().any(Option::is_none)).to_be_bytes());
    b.extend_from_slice(&20i32.to_be_bytes());
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    for v in values {
        match v {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                b.extend_from_slice(&8i32.to_be_bytes());
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, want: Option<&[Option<&str>]>) {
        let got = text_array(text);
        let want = want.map(|w| w.iter().map(|e| e.map(str::to_owned)).collect::<Vec<_>>());
        assert_eq!(got, want, "{text:?}");
    }

    #[test]
    fn text_arrays() {
        check("{1,2,3}", Some(&[Some("1"), Some("2"), Some("3")]));
        check(
            "{1,2,\"a b\",NULL}",
            Some(&[Some("1"), Some("2"), Some("a b"), None]),
        );
        check("{}", Some(&[]));
        check(" { 1 , 2 } ", Some(&[Some("1"), Some("2")]));
        check("{\"NULL\",null}", Some(&[Some("NULL"), None]));
        check("{\"a\\\"b\",c\\,d}", Some(&[Some("a\"b"), Some("c,d")]));
        check(
            "{{1,2},{3,4}}",
            Some(&[Some("1"), Some("2"), Some("3"), Some("4")]),
        );
        check("{1,2", None);
        check("1,2", None);
        check("[1:2]={1,2}", None);
        check("{1,2}x", None);
        check("{\"a\"b}", None);
    }

    #[test]
    fn binary_arrays() {
        let b = binary_int8_array(&[Some(1), None, Some(-7)]);
        assert_eq!(
            binary_array(&b, KeyType::Int8),
            Ok(vec![KeyValue::Int(1), KeyValue::Int(-7)])
        );
        assert!(binary_array(&b[..b.len() - 1], KeyType::Int8).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(binary_array(&long, KeyType::Int8).is_err());
        let empty = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20];
        assert_eq!(binary_array(&empty, KeyType::Int8), Ok(vec![]));
        let mut huge = binary_int8_array(&[Some(1)]);
        huge[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(binary_array(&huge, KeyType::Int8).is_err());
    }

    #[test]
    fn formats() {
        let one = 5i64.to_be_bytes();
        let vals = [Some(&b"7"[..]), Some(&one[..]), None];
        let p = Params::new(&[0, 1], &vals);
        assert_eq!(p.key(0, KeyType::Int8), Ok(KeyValue::Int(7)));
        assert_eq!(p.key(1, KeyType::Int8), Ok(KeyValue::Int(5)));
        assert_eq!(p.key(2, KeyType::Int8), Err(ParamError::Null));
        assert_eq!(p.key(3, KeyType::Int8), Err(ParamError::Missing));
        let all_binary = Params::new(&[1], &vals);
        assert!(all_binary.key(0, KeyType::Int8).is_err());
    }
}
