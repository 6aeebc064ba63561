//! Shard key values: the column types a table can be sharded on, and reading a key from SQL text or
//! from a bind parameter in text or binary format (PostgreSQL's send/recv formats, 55.2.3 / `*send`).

use std::fmt;

use super::hash;

/// The type of a table's shard key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Int2,
    Int4,
    Int8,
    /// text and varchar: both hash with `hashtextextended`.
    Text,
    Uuid,
}

/// A shard key read from a statement, already checked against the column's type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    Int(i64),
    Text(String),
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {ty} shard key")]
pub struct KeyError {
    pub ty: KeyType,
    pub value: String,
}

impl KeyType {
    /// The names a shard map may use for a key type.
    pub fn from_name(name: &str) -> Option<KeyType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "int2" | "smallint" => KeyType::Int2,
            "int4" | "int" | "integer" => KeyType::Int4,
            "int8" | "bigint" => KeyType::Int8,
            "text" | "varchar" | "character varying" => KeyType::Text,
            "uuid" => KeyType::Uuid,
            _ => return None,
        })
    }

    /// Reads a key from its text form (a SQL literal's content, a text-format parameter, a hint).
    pub fn parse_text(self, s: &str) -> Result<KeyValue, KeyError> {
        let bad = || KeyError {
            ty: self,
            value: s.to_owned(),
        };
        let int = |min: i64, max: i64| {
            let v: i64 = s.trim().parse().map_err(|_| bad())?;
            if v < min || v > max {
                return Err(bad());
            }
            Ok(KeyValue::Int(v))
        };
        match self {
            KeyType::Int2 => int(i16::MIN.into(), i16::MAX.into()),
            KeyType::Int4 => int(i32::MIN.into(), i32::MAX.into()),
            KeyType::Int8 => int(i64::MIN, i64::MAX),
            KeyType::Text => Ok(KeyValue::Text(s.to_owned())),
            KeyType::Uuid => parse_uuid(s).map(KeyValue::Uuid).ok_or_else(bad),
        }
    }

    /// Reads a key from a binary-format parameter.
    pub fn parse_binary(self, b: &[u8]) -> Result<KeyValue, KeyError> {
        let bad = || KeyError {
            ty: self,
            value: format!("binary {b:02x?}"),
        };
        match (self, b.len()) {
            (KeyType::Int2, 2) => Ok(KeyValue::Int(i16::from_be_bytes([b[0], b[1]]).into())),
            (KeyType::Int4, 4) => Ok(KeyValue::Int(
                i32::from_be_bytes(b.try_into().expect("len 4")).into(),
            )),
            // A driver may send a wider or narrower integer than the column; the value is what counts.
            (KeyType::Int2 | KeyType::Int4 | KeyType::Int8, 8) => {
                let v = i64::from_be_bytes(b.try_into().expect("len 8"));
                self.parse_text(&v.to_string())
            }
            (KeyType::Int8, 2) => Ok(KeyValue::Int(i16::from_be_bytes([b[0], b[1]]).into())),
            (KeyType::Int8, 4) => Ok(KeyValue::Int(
                i32::from_be_bytes(b.try_into().expect("len 4")).into(),
            )),
            (KeyType::Text, _) => std::str::from_utf8(b)
                .map(|s| KeyValue::Text(s.to_owned()))
                .map_err(|_| bad()),
            (KeyType::Uuid, 16) => Ok(KeyValue::Uuid(b.try_into().expect("len 16"))),
            _ => Err(bad()),
        }
    }
}

impl KeyValue {
    /// What PostgreSQL's hash partitioning computes for this key as a one-column partition key; the
    /// value's bucket is this modulo the bucket count.
    pub fn partition_hash(&self) -> u64 {
        let seed = hash::HASH_PARTITION_SEED;
        hash::partition_combine(match self {
            KeyValue::Int(v) => hash::hash_int8_extended(*v, seed),
            KeyValue::Text(s) => hash::hash_text_extended(s.as_bytes(), seed),
            KeyValue::Uuid(u) => hash::hash_uuid_extended(u, seed),
        })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Int2 => "int2",
            KeyType::Int4 => "int4",
            KeyType::Int8 => "int8",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
        })
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Text(s) => write!(f, "{s:?}"),
            KeyValue::Uuid(u) => {
                for (i, byte) in u.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// PostgreSQL's uuid input: 32 hex digits, optionally braced, with hyphens after any group of four.
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if digits.len() != 32 || s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ty: KeyType, text: &str, want: Option<&str>) {
        let got = ty.parse_text(text).ok().map(|v| v.to_string());
        assert_eq!(got.as_deref(), want, "{ty} {text:?}");
    }

    #[test]
    fn text_forms() {
        check(KeyType::Int2, "32767", Some("32767"));
        check(KeyType::Int2, "32768", None);
        check(KeyType::Int4, "-2147483648", Some("-2147483648"));
        check(KeyType::Int4, "2147483648", None);
        check(KeyType::Int8, " 42 ", Some("42"));
        check(KeyType::Int8, "4x", None);
        check(KeyType::Text, "acme", Some("\"acme\""));
        let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        check(KeyType::Uuid, u, Some(u));
        check(KeyType::Uuid, "{A0EEBC999C0B4EF8BB6D6BB9BD380A11}", Some(u));
        check(KeyType::Uuid, "a0eebc99-9c0b", None);
        check(KeyType::Uuid, "-a0eebc999c0b4ef8bb6d6bb9bd380a11", None);
    }

    #[test]
    fn binary_forms() {
        let i = |ty: KeyType, b: &[u8]| ty.parse_binary(b).ok();
        assert_eq!(
            i(KeyType::Int8, &7i64.to_be_bytes()),
            Some(KeyValue::Int(7))
        );
        assert_eq!(
            i(KeyType::Int4, &(-7i32).to_be_bytes()),
            Some(KeyValue::Int(-7))
        );
        assert_eq!(
            i(KeyType::Int2, &3i16.to_be_bytes()),
            Some(KeyValue::Int(3))
        );
        assert_eq!(
            i(KeyType::Int8, &3i32.to_be_bytes()),
            Some(KeyValue::Int(3))
        );
        assert_eq!(i(KeyType::Int4, &(1i64 << 40).to_be_bytes()), None);
        assert_eq!(i(KeyType::Int4, &[1, 2, 3]), None);
        assert_eq!(i(KeyType::Uuid, &[9; 16]), Some(KeyValue::Uuid([9; 16])));
        assert_eq!(i(KeyType::Text, b"x"), Some(KeyValue::Text("x".into())));
        assert_eq!(i(KeyType::Text, &[0xff]), None);
    }
}
