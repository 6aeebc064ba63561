//! From a DataRow column's bytes to a `Value`, in the text format (what the type's output function
//! prints) or the binary format (what its send function writes; see the `*send` functions in
//! PostgreSQL's `src/backend/utils/adt`).

use super::decimal::Decimal;
use super::{
    FORMAT_BINARY, FORMAT_TEXT, Kind, Value, ValueError, datetime, kind_of, numeric_binary, oid,
};

/// Decodes one non-NULL value of a column of class `kind` and type `type_oid`.
pub(crate) fn decode(
    kind: Kind,
    format: i16,
    raw: &[u8],
    type_oid: u32,
) -> Result<Value, ValueError> {
    let value = match format {
        FORMAT_TEXT => text(kind, raw, type_oid),
        FORMAT_BINARY => binary(kind, raw, type_oid),
        _ => return Err(ValueError::UnknownFormat(format)),
    };
    value?.ok_or(ValueError::Malformed { kind, format })
}

/// Decodes one DataRow column, NULL as None, for a type we understand.
pub(crate) fn decode_column(
    type_oid: u32,
    format: i16,
    raw: Option<&[u8]>,
) -> Result<Option<Value>, ValueError> {
    let kind = kind_of(type_oid).ok_or(ValueError::UnsupportedType(type_oid))?;
    raw.map(|raw| decode(kind, format, raw, type_oid))
        .transpose()
}

/// bpchar compares without its trailing blanks (bpcharcmp), so "a\t" sorts after "a  ".
fn text_value(raw: &[u8], type_oid: u32) -> Value {
    let text = match type_oid {
        oid::BPCHAR => bpchar_trimmed(raw),
        _ => raw,
    };
    Value::Text(text.to_vec())
}

/// A bpchar value without its trailing blanks, as PostgreSQL compares it.
pub(super) fn bpchar_trimmed(raw: &[u8]) -> &[u8] {
    let end = raw.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &raw[..end]
}

/// Ok(None) is malformed; Err is a well-formed value we cannot represent.
fn text(kind: Kind, raw: &[u8], type_oid: u32) -> Result<Option<Value>, ValueError> {
    let parse = || std::str::from_utf8(raw).ok();
    Ok(match kind {
        Kind::Int => parse().and_then(|s| s.parse().ok()).map(Value::Int),
        // float4 through f32, so that text and binary give the same value
        Kind::Float if type_oid == oid::FLOAT4 => parse()
            .and_then(|s| s.parse::<f32>().ok())
            .map(|f| Value::Float(f64::from(f))),
        Kind::Float => parse().and_then(|s| s.parse().ok()).map(Value::Float),
        Kind::Numeric => Some(Value::Numeric(Decimal::parse(raw)?)),
        Kind::Bool => match raw {
            b"t" => Some(Value::Bool(true)),
            b"f" => Some(Value::Bool(false)),
            _ => None,
        },
        Kind::Text => Some(text_value(raw, type_oid)),
        Kind::Date => datetime::parse_date(raw).map(Value::Days),
        Kind::Timestamp => datetime::parse_timestamp(raw, false).map(Value::Micros),
        Kind::TimestampTz => datetime::parse_timestamp(raw, true).map(Value::Micros),
        Kind::Uuid => uuid_text(raw).map(Value::Uuid),
    })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as uuid_out prints it.
fn uuid_text(raw: &[u8]) -> Option<[u8; 16]> {
    if raw.len() != 36 || [8, 13, 18, 23].iter().any(|&i| raw[i] != b'-') {
        return None;
    }
    let mut hex = raw
        .iter()
        .filter(|&&b| b != b'-')
        .map(|&b| (b as char).to_digit(16));
    let mut out = [0u8; 16];
    for byte in &mut out {
        *byte = (hex.next()?? * 16 + hex.next()??) as u8;
    }
    Some(out)
}

fn binary(kind: Kind, raw: &[u8], type_oid: u32) -> Result<Option<Value>, ValueError> {
    Ok(match (kind, raw.len()) {
        (Kind::Int, 2)
            if type_oid != oid::INT4 && type_oid != oid::INT8 && type_oid != oid::OID =>
        {
            Some(Value::Int(i16::from_be_bytes([raw[0], raw[1]]).into()))
        }
        (Kind::Int, 4) if type_oid == oid::OID => {
            Some(Value::Int(u32::from_be_bytes(array(raw)).into()))
        }
        (Kind::Int, 4) if type_oid != oid::INT2 && type_oid != oid::INT8 => {
            Some(Value::Int(i32::from_be_bytes(array(raw)).into()))
        }
        (Kind::Int, 8)
            if type_oid != oid::INT2 && type_oid != oid::INT4 && type_oid != oid::OID =>
        {
            Some(Value::Int(i64::from_be_bytes(array(raw))))
        }
        (Kind::Float, 4) => Some(Value::Float(f32::from_be_bytes(array(raw)).into())),
        (Kind::Float, 8) => Some(Value::Float(f64::from_be_bytes(array(raw)))),
        (Kind::Numeric, _) => Some(Value::Numeric(numeric_binary::decode(raw)?)),
        (Kind::Bool, 1) if raw[0] <= 1 => Some(Value::Bool(raw[0] == 1)),
        (Kind::Text, _) => Some(text_value(raw, type_oid)),
        (Kind::Date, 4) => Some(Value::Days(i32::from_be_bytes(array(raw)))),
        (Kind::Timestamp | Kind::TimestampTz, 8) => {
            Some(Value::Micros(i64::from_be_bytes(array(raw))))
        }
        (Kind::Uuid, 16) => Some(Value::Uuid(array(raw))),
        _ => None,
    })
}

/// The bytes as an array; callers have checked the length.
pub(super) fn array<const N: usize>(raw: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&raw[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(type_oid: u32, format: i16, raw: &[u8], want: Result<Value, ValueError>) {
        let kind = kind_of(type_oid).unwrap();
        assert_eq!(
            decode(kind, format, raw, type_oid),
            want,
            "oid {type_oid} format {format} {raw:?}"
        );
    }

    fn malformed(kind: Kind, format: i16) -> Result<Value, ValueError> {
        Err(ValueError::Malformed { kind, format })
    }

    #[test]
    fn text_format() {
        use Value::*;
        check(23, 0, b"-42", Ok(Int(-42)));
        check(20, 0, b"9223372036854775807", Ok(Int(i64::MAX)));
        check(26, 0, b"4294967295", Ok(Int(4294967295)));
        check(23, 0, b"4x", malformed(Kind::Int, 0));
        check(20, 0, b"", malformed(Kind::Int, 0));
        check(701, 0, b"1.5e-07", Ok(Float(1.5e-7)));
        check(701, 0, b"Infinity", Ok(Float(f64::INFINITY)));
        check(701, 0, b"-Infinity", Ok(Float(f64::NEG_INFINITY)));
        check(700, 0, b"0.1", Ok(Float(f64::from(0.1f32))));
        check(701, 0, b"one", malformed(Kind::Float, 0));
        let nan = decode(Kind::Float, 0, b"NaN", 701);
        assert!(matches!(nan, Ok(Float(f)) if f.is_nan()));
        check(
            1700,
            0,
            b"-1.50",
            Ok(Numeric(Decimal::Finite {
                mantissa: -150,
                scale: 2,
            })),
        );
        check(1700, 0, b"NaN", Ok(Numeric(Decimal::NaN)));
        check(1700, 0, b"-Infinity", Ok(Numeric(Decimal::NegInfinity)));
        check(16, 0, b"t", Ok(Bool(true)));
        check(16, 0, b"f", Ok(Bool(false)));
        check(16, 0, b"true", malformed(Kind::Bool, 0));
        check(25, 0, b"caf\xc3\xa9 ", Ok(Text(b"caf\xc3\xa9 ".to_vec())));
        check(1043, 0, b"", Ok(Text(vec![])));
        check(1042, 0, b"ab  ", Ok(Text(b"ab".to_vec())));
        check(1042, 0, b"   ", Ok(Text(vec![])));
        check(19, 0, b"pg_class", Ok(Text(b"pg_class".to_vec())));
        check(1082, 0, b"2000-01-02", Ok(Days(1)));
        check(1082, 0, b"infinity", Ok(Days(i32::MAX)));
        check(1082, 0, b"2000-02-30", malformed(Kind::Date, 0));
        check(1114, 0, b"2000-01-01 00:00:01.5", Ok(Micros(1_500_000)));
        check(1184, 0, b"2000-01-01 01:00:01.5+01", Ok(Micros(1_500_000)));
        check(1184, 0, b"-infinity", Ok(Micros(i64::MIN)));
        check(
            1114,
            0,
            b"2000-01-01 00:00:01+01",
            malformed(Kind::Timestamp, 0),
        );
        let uuid = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        check(
            2950,
            0,
            b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            Ok(Uuid(uuid)),
        );
        check(
            2950,
            0,
            b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            Ok(Uuid(uuid)),
        );
        check(
            2950,
            0,
            b"a0eebc999c0b4ef8bb6d6bb9bd380a11",
            malformed(Kind::Uuid, 0),
        );
        check(
            2950,
            0,
            b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            malformed(Kind::Uuid, 0),
        );
        check(
            2950,
            0,
            b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1\xc3",
            malformed(Kind::Uuid, 0),
        );
    }

    #[test]
    fn binary_format() {
        use Value::*;
        check(21, 1, &[0xff, 0xfe], Ok(Int(-2)));
        check(23, 1, &[0xff, 0xff, 0xff, 0xfe], Ok(Int(-2)));
        check(20, 1, &(-2i64).to_be_bytes(), Ok(Int(-2)));
        check(26, 1, &[0xff, 0xff, 0xff, 0xfe], Ok(Int(4294967294)));
        check(23, 1, &[0, 1], malformed(Kind::Int, 1));
        check(20, 1, &[0, 0, 0, 1], malformed(Kind::Int, 1));
        check(21, 1, &[0, 0, 0, 1], malformed(Kind::Int, 1));
        check(700, 1, &1.5f32.to_be_bytes(), Ok(Float(1.5)));
        check(701, 1, &(-0.25f64).to_be_bytes(), Ok(Float(-0.25)));
        check(701, 1, &[0; 3], malformed(Kind::Float, 1));
        check(
            1700,
            1,
            &[0, 1, 0, 0, 0x40, 0, 0, 0, 0, 7],
            Ok(Numeric(Decimal::Finite {
                mantissa: -7,
                scale: 0,
            })),
        );
        check(1700, 1, &[0, 1], malformed(Kind::Numeric, 1));
        check(16, 1, &[1], Ok(Bool(true)));
        check(16, 1, &[0], Ok(Bool(false)));
        check(16, 1, &[2], malformed(Kind::Bool, 1));
        check(16, 1, &[], malformed(Kind::Bool, 1));
        check(25, 1, b"x y", Ok(Text(b"x y".to_vec())));
        check(1042, 1, b"x  ", Ok(Text(b"x".to_vec())));
        check(1082, 1, &(-1i32).to_be_bytes(), Ok(Days(-1)));
        check(1082, 1, &i32::MAX.to_be_bytes(), Ok(Days(i32::MAX)));
        check(1114, 1, &1_500_000i64.to_be_bytes(), Ok(Micros(1_500_000)));
        check(1184, 1, &i64::MIN.to_be_bytes(), Ok(Micros(i64::MIN)));
        check(1184, 1, &[0; 4], malformed(Kind::TimestampTz, 1));
        check(2950, 1, &[7; 16], Ok(Uuid([7; 16])));
        check(2950, 1, &[7; 15], malformed(Kind::Uuid, 1));
    }

    #[test]
    fn unknown_format_and_type() {
        check(23, 2, b"1", Err(ValueError::UnknownFormat(2)));
        assert_eq!(
            decode_column(114, 0, Some(b"{}")),
            Err(ValueError::UnsupportedType(114))
        );
        assert_eq!(decode_column(23, 0, None), Ok(None));
        assert_eq!(decode_column(23, 0, Some(b"5")), Ok(Some(Value::Int(5))));
    }
}
