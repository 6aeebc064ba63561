//! PostgreSQL column values as a scatter-gather merge needs them: decoded from the text or binary wire
//! format (`decode`), ordered as PostgreSQL orders them (`order`), and partial aggregates combined and
//! re-encoded byte-for-byte as PostgreSQL would send them (`agg`). Pure: bytes in, bytes out.
//!
//! Assumes the server settings every PostgreSQL driver uses by default: `DateStyle` ISO (text dates
//! and timestamps), `extra_float_digits` > 0 (shortest round-trip float text, PostgreSQL 12+), and the
//! C collation for text ordering (other collations are not reproduced).

mod agg;
mod avg;
mod datetime;
mod decimal;
mod decode;
mod encode;
mod float_text;
mod group_key;
mod numeric_binary;
mod order;

pub(crate) use agg::{Agg, merge};
pub(crate) use avg::{average, result_type as avg_type};
pub(crate) use decimal::Decimal;
pub(crate) use decode::{decode, decode_column};
pub(crate) use group_key::canonical as group_key;
pub(crate) use order::{SortKey, compare, compare_rows};

/// Type OIDs we understand (`pg_type.oid`, stable across PostgreSQL versions).
pub(crate) mod oid {
    pub(crate) const BOOL: u32 = 16;
    pub(crate) const NAME: u32 = 19;
    pub(crate) const INT8: u32 = 20;
    pub(crate) const INT2: u32 = 21;
    pub(crate) const INT4: u32 = 23;
    pub(crate) const TEXT: u32 = 25;
    pub(crate) const OID: u32 = 26;
    pub(crate) const FLOAT4: u32 = 700;
    pub(crate) const FLOAT8: u32 = 701;
    pub(crate) const BPCHAR: u32 = 1042;
    pub(crate) const VARCHAR: u32 = 1043;
    pub(crate) const DATE: u32 = 1082;
    pub(crate) const TIMESTAMP: u32 = 1114;
    pub(crate) const TIMESTAMPTZ: u32 = 1184;
    pub(crate) const INTERVAL: u32 = 1186;
    pub(crate) const NUMERIC: u32 = 1700;
    pub(crate) const UUID: u32 = 2950;
}

/// Wire format codes of Bind / RowDescription ("Message Formats" in the PostgreSQL docs).
pub(crate) const FORMAT_TEXT: i16 = 0;
pub(crate) const FORMAT_BINARY: i16 = 1;

/// The classes of types whose values we can decode, order and merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Numeric,
    Bool,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
}

/// The class of a column's type, or None for a type we do not understand.
pub(crate) fn kind_of(type_oid: u32) -> Option<Kind> {
    Some(match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => Kind::Int,
        oid::FLOAT4 | oid::FLOAT8 => Kind::Float,
        oid::NUMERIC => Kind::Numeric,
        oid::BOOL => Kind::Bool,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => Kind::Text,
        oid::DATE => Kind::Date,
        oid::TIMESTAMP => Kind::Timestamp,
        oid::TIMESTAMPTZ => Kind::TimestampTz,
        oid::UUID => Kind::Uuid,
        _ => return None,
    })
}

/// A decoded value that orders like PostgreSQL orders it (see `compare`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    /// float4 values are widened, which is exact.
    Float(f64),
    Numeric(Decimal),
    Bool(bool),
    /// The bytes as sent; for bpchar without its trailing blanks, which bpchar comparison ignores.
    Text(Vec<u8>),
    /// date: days since 2000-01-01; i32::MIN / i32::MAX are -infinity / infinity.
    Days(i32),
    /// timestamp, timestamptz: microseconds since 2000-01-01 00:00 (UTC for timestamptz);
    /// i64::MIN / i64::MAX are -infinity / infinity.
    Micros(i64),
    Uuid([u8; 16]),
}

/// Why a value could not be decoded, combined or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    /// Bytes that are not a valid value of the column's type in that format.
    #[error("malformed {kind:?} value in format {format}")]
    Malformed { kind: Kind, format: i16 },
    #[error("unknown format code {0}")]
    UnknownFormat(i16),
    /// A type OID we cannot decode or merge.
    #[error("values of type oid {0} cannot be merged")]
    UnsupportedType(u32),
    /// An aggregate that does not apply to the type (e.g. bool_and of an int).
    #[error("{agg:?} of type oid {type_oid} cannot be merged")]
    UnsupportedAggregate { agg: Agg, type_oid: u32 },
    /// The result does not fit: PostgreSQL would have raised an error too (or, for numerics wider than
    /// 38 digits, we cannot represent it; refusing is better than a wrong answer).
    #[error("{} out of range", range_name(*.0))]
    OutOfRange(Kind),
}

/// What PostgreSQL calls a value out of range of its kind (`integer out of range`).
fn range_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "integer",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_of_known_and_unknown_oids() {
        fn check(type_oid: u32, want: Option<Kind>) {
            assert_eq!(kind_of(type_oid), want, "oid {type_oid}");
        }
        check(21, Some(Kind::Int));
        check(23, Some(Kind::Int));
        check(20, Some(Kind::Int));
        check(26, Some(Kind::Int));
        check(700, Some(Kind::Float));
        check(701, Some(Kind::Float));
        check(1700, Some(Kind::Numeric));
        check(16, Some(Kind::Bool));
        check(25, Some(Kind::Text));
        check(1043, Some(Kind::Text));
        check(1042, Some(Kind::Text));
        check(19, Some(Kind::Text));
        check(1082, Some(Kind::Date));
        check(1114, Some(Kind::Timestamp));
        check(1184, Some(Kind::TimestampTz));
        check(2950, Some(Kind::Uuid));
        check(114, None); // json
        check(oid::INTERVAL, None);
    }
}
