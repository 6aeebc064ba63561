//! Combining the per-shard partial results of one aggregate column into the value one server would
//! have returned, encoded as that server would have sent it.
//!
//! Float sums add the shards' partial sums in shard order, so, as with a parallel aggregate on one
//! server, the last bits can differ from a serial scan's.

use std::cmp::Ordering;

use super::decimal::Decimal;
use super::{
    FORMAT_BINARY, FORMAT_TEXT, Kind, Value, ValueError, compare, decode, encode, kind_of, oid,
};

/// The aggregates whose partial results combine with themselves (the router's: avg must be asked of
/// the shards as sum and count, and divided after merging).
pub(crate) use crate::router::Agg;

/// Combines the per-shard partial results of one aggregate column (all of the same type oid and
/// format, which for sum is already the result type: int8 for sum(int2/int4), numeric for
/// sum(int8/numeric)); returns the encoded value (text or binary as `format`), None for NULL.
pub(crate) fn merge(
    agg: Agg,
    type_oid: u32,
    format: i16,
    parts: &[Option<&[u8]>],
) -> Result<Option<Vec<u8>>, ValueError> {
    if format != FORMAT_TEXT && format != FORMAT_BINARY {
        return Err(ValueError::UnknownFormat(format));
    }
    let unsupported = ValueError::UnsupportedAggregate { agg, type_oid };
    let kind = kind_of(type_oid).ok_or(unsupported.clone())?;
    let values = || {
        parts
            .iter()
            .flatten()
            .map(move |raw| decode(kind, format, raw, type_oid))
    };
    match (agg, kind) {
        // count is never NULL; a NULL part (an empty shard's outer join, say) counts nothing
        (Agg::Count, Kind::Int) => {
            let total = values().try_fold(0i64, |sum, v| add_ints(sum, v?))?;
            encode::int(type_oid, format, total).map(Some)
        }
        // A count cast to numeric or float8 (the router lets a count be cast to no other of these).
        (Agg::Count, Kind::Numeric) => {
            let zero = Decimal::Finite {
                mantissa: 0,
                scale: 0,
            };
            let total = values().try_fold(zero, |sum, v| match v? {
                Value::Numeric(d) => sum.checked_add(&d),
                _ => Err(unsupported.clone()),
            })?;
            encode::numeric(format, &total).map(Some)
        }
        (Agg::Count, Kind::Float) if type_oid == oid::FLOAT8 => {
            let total = values().try_fold(Some(0.0), |sum, v| add_floats(sum, as_float(v?)?))?;
            encode::float8(format, total.unwrap_or(0.0)).map(Some)
        }
        (Agg::Sum, Kind::Int) if type_oid != oid::OID => {
            let total =
                values().try_fold(None, |sum, v| add_ints(sum.unwrap_or(0), v?).map(Some))?;
            total
                .map(|total| encode::int(type_oid, format, total))
                .transpose()
        }
        (Agg::Sum, Kind::Float) if type_oid == oid::FLOAT4 => {
            let mut floats = values().map(|v| v.and_then(|v| as_float(v).map(|f| f as f32)));
            let total = floats.try_fold(None, |sum, f| add_floats(sum, f?))?;
            total.map(|total| encode::float4(format, total)).transpose()
        }
        (Agg::Sum, Kind::Float) => {
            let total = values().try_fold(None, |sum, v| add_floats(sum, as_float(v?)?))?;
            total.map(|total| encode::float8(format, total)).transpose()
        }
        (Agg::Sum, Kind::Numeric) => {
            let total = values().try_fold(None, |sum: Option<Decimal>, v| match v? {
                Value::Numeric(d) => sum.map_or(Ok(d), |sum| sum.checked_add(&d)).map(Some),
                _ => Err(unsupported.clone()),
            })?;
            total
                .map(|total| encode::numeric(format, &total))
                .transpose()
        }
        (Agg::Min, _) => pick(kind, type_oid, format, parts, Ordering::Less),
        (Agg::Max, _) => pick(kind, type_oid, format, parts, Ordering::Greater),
        (Agg::BoolAnd | Agg::BoolOr, Kind::Bool) => {
            let total = values().try_fold(None, |acc, v| match v? {
                Value::Bool(b) if agg == Agg::BoolAnd => Ok(Some(acc.unwrap_or(true) && b)),
                Value::Bool(b) => Ok(Some(acc.unwrap_or(false) || b)),
                _ => Err(unsupported.clone()),
            })?;
            total.map(|total| encode::bool(format, total)).transpose()
        }
        _ => Err(unsupported),
    }
}

fn add_ints(sum: i64, value: Value) -> Result<i64, ValueError> {
    match value {
        Value::Int(n) => sum.checked_add(n).ok_or(ValueError::OutOfRange(Kind::Int)),
        _ => Err(ValueError::OutOfRange(Kind::Int)),
    }
}

fn as_float(value: Value) -> Result<f64, ValueError> {
    match value {
        Value::Float(f) => Ok(f),
        _ => Err(ValueError::OutOfRange(Kind::Float)),
    }
}

/// float4pl / float8pl: an infinite sum of finite operands is an overflow error on the server too.
fn add_floats<F>(sum: Option<F>, value: F) -> Result<Option<F>, ValueError>
where
    F: Copy + std::ops::Add<Output = F> + Into<f64>,
{
    let Some(sum) = sum else {
        return Ok(Some(value));
    };
    let total = sum + value;
    if total.into().is_infinite() && !sum.into().is_infinite() && !value.into().is_infinite() {
        return Err(ValueError::OutOfRange(Kind::Float));
    }
    Ok(Some(total))
}

/// min or max: the first part that no later part beats, as the shard sent it.
fn pick(
    kind: Kind,
    type_oid: u32,
    format: i16,
    parts: &[Option<&[u8]>],
    wanted: Ordering,
) -> Result<Option<Vec<u8>>, ValueError> {
    let mut best: Option<(Value, &[u8])> = None;
    for raw in parts.iter().flatten() {
        let value = decode(kind, format, raw, type_oid)?;
        if best
            .as_ref()
            .is_none_or(|(b, _)| compare(&value, b) == wanted)
        {
            best = Some((value, raw));
        }
    }
    Ok(best.map(|(_, raw)| raw.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Agg::*;

    /// Text-format parts separated by `|`, `NULL` for NULL; the wanted text, `NULL`, or an error.
    fn check(agg: Agg, type_oid: u32, parts: &str, want: Result<&str, ValueError>) {
        let parts: Vec<Option<&[u8]>> = parts
            .split('|')
            .filter(|p| !p.is_empty())
            .map(|p| (p != "NULL").then_some(p.as_bytes()))
            .collect();
        let got = merge(agg, type_oid, FORMAT_TEXT, &parts);
        let got = got.map(|v| v.map_or("NULL".to_owned(), |v| String::from_utf8(v).unwrap()));
        assert_eq!(
            got.as_deref().map_err(Clone::clone),
            want,
            "{agg:?} oid {type_oid} {parts:?}"
        );
    }

    /// Binary-format parts; the wanted bytes or None.
    fn check_binary(agg: Agg, type_oid: u32, parts: &[&[u8]], want: Option<&[u8]>) {
        let parts: Vec<Option<&[u8]>> = parts.iter().map(|p| Some(*p)).collect();
        let got = merge(agg, type_oid, FORMAT_BINARY, &parts);
        assert_eq!(
            got,
            Ok(want.map(<[u8]>::to_vec)),
            "{agg:?} oid {type_oid} {parts:?}"
        );
    }

    fn unsupported(agg: Agg, type_oid: u32) -> Result<&'static str, ValueError> {
        Err(ValueError::UnsupportedAggregate { agg, type_oid })
    }

    const INT_RANGE: Result<&str, ValueError> = Err(ValueError::OutOfRange(Kind::Int));
    const FLOAT_RANGE: Result<&str, ValueError> = Err(ValueError::OutOfRange(Kind::Float));

    #[test]
    fn count() {
        check(Count, 20, "3|0|4", Ok("7"));
        check(Count, 20, "0|0", Ok("0"));
        check(Count, 20, "", Ok("0"));
        check(Count, 20, "NULL|2", Ok("2"));
        check(Count, 20, "9223372036854775807|1", INT_RANGE);
        check(
            Count,
            20,
            "x",
            Err(ValueError::Malformed {
                kind: Kind::Int,
                format: 0,
            }),
        );
        check(Count, 25, "1", unsupported(Count, 25));
        // count(...) cast by the shards (the router allows int2, int4, int8, numeric and float8).
        check(Count, 23, "3|4", Ok("7"));
        check(Count, 23, "2147483647|1", INT_RANGE);
        check(Count, 21, "32767|0", Ok("32767"));
        check(Count, 21, "32767|1", INT_RANGE);
        check(Count, 1700, "3|0|4", Ok("7"));
        check(Count, 1700, "", Ok("0"));
        check(Count, 701, "3|4", Ok("7"));
        check(Count, 701, "", Ok("0"));
        check(Count, 700, "1", unsupported(Count, 700));
        check_binary(
            Count,
            20,
            &[&256i64.to_be_bytes(), &5i64.to_be_bytes()],
            Some(&261i64.to_be_bytes()),
        );
    }

    #[test]
    fn sum_of_ints() {
        // sum(int2) and sum(int4) are int8
        check(Sum, 20, "5|NULL|-7", Ok("-2"));
        check(Sum, 20, "NULL|NULL", Ok("NULL"));
        check(Sum, 20, "", Ok("NULL"));
        check(Sum, 20, "-9223372036854775808|-1", INT_RANGE);
        check(Sum, 23, "2147483647|1", INT_RANGE);
        check(Sum, 26, "1", unsupported(Sum, 26));
        check_binary(
            Sum,
            20,
            &[&2i64.to_be_bytes(), &3i64.to_be_bytes()],
            Some(&5i64.to_be_bytes()),
        );
    }

    #[test]
    fn sum_of_numerics_keeps_the_largest_display_scale() {
        // sum(int8) and sum(numeric) are numeric
        check(Sum, 1700, "1.5|2.25", Ok("3.75"));
        check(Sum, 1700, "1.50|NULL|2", Ok("3.50"));
        check(
            Sum,
            1700,
            "9223372036854775807|9223372036854775807",
            Ok("18446744073709551614"),
        );
        check(Sum, 1700, "1|NaN", Ok("NaN"));
        check(Sum, 1700, "Infinity|-Infinity", Ok("NaN"));
        check(Sum, 1700, "-Infinity|5", Ok("-Infinity"));
        check(Sum, 1700, "NULL", Ok("NULL"));
        let too_wide = Err(ValueError::OutOfRange(Kind::Numeric));
        check(
            Sum,
            1700,
            "170141183460469231731687303715884105727|1",
            too_wide,
        );
        let one_and_a_half: &[u8] = &[0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]; // 1.50
        let two: &[u8] = &[0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
        let want: &[u8] = &[0, 2, 0, 0, 0, 0, 0, 2, 0, 3, 0x13, 0x88]; // 3.50
        check_binary(Sum, 1700, &[one_and_a_half, two], Some(want));
    }

    #[test]
    fn sum_of_floats_in_their_own_type() {
        check(Sum, 701, "0.1|0.2", Ok("0.30000000000000004"));
        check(Sum, 700, "0.1|0.2", Ok("0.3"));
        check(Sum, 701, "5e+19|5e+19", Ok("1e+20"));
        check(Sum, 700, "600000|400000", Ok("1e+06"));
        check(Sum, 701, "1e-07|5e-08", Ok("1.5e-07"));
        check(Sum, 701, "Infinity|-Infinity", Ok("NaN"));
        check(Sum, 701, "Infinity|1", Ok("Infinity"));
        check(Sum, 701, "-0|NULL", Ok("-0"));
        check(
            Sum,
            701,
            "1.7976931348623157e+308|1.7976931348623157e+308",
            FLOAT_RANGE,
        );
        check(Sum, 700, "3e+38|3e+38", FLOAT_RANGE);
        check(Sum, 25, "a", unsupported(Sum, 25));
        check(Sum, oid::INTERVAL, "1 day", unsupported(Sum, oid::INTERVAL));
        check_binary(
            Sum,
            701,
            &[&1.5f64.to_be_bytes(), &2.0f64.to_be_bytes()],
            Some(&3.5f64.to_be_bytes()),
        );
        check_binary(
            Sum,
            700,
            &[&1.5f32.to_be_bytes(), &2.0f32.to_be_bytes()],
            Some(&3.5f32.to_be_bytes()),
        );
    }

    #[test]
    fn min_max_return_the_chosen_bytes() {
        check(Min, 1700, "2.50|NULL|2.5|3", Ok("2.50"));
        check(Max, 1700, "2.50|NaN|Infinity", Ok("NaN"));
        check(
            Max,
            1184,
            "2000-01-01 05:30:00+05:30|2000-01-01 00:00:01+00",
            Ok("2000-01-01 00:00:01+00"),
        );
        check(Min, 25, "b|B|a", Ok("B"));
        check(Min, 1042, "a\t |a  ", Ok("a  "));
        check(Min, 23, "NULL|NULL", Ok("NULL"));
        check(Max, 2950, "", Ok("NULL"));
        check(Min, 16, "t|f", Ok("f"));
        check(Min, 1082, "2000-01-01|0010-01-01 BC", Ok("0010-01-01 BC"));
        check(
            Min,
            23,
            "1|one",
            Err(ValueError::Malformed {
                kind: Kind::Int,
                format: 0,
            }),
        );
        check(Max, 114, "{}", unsupported(Max, 114));
        let (minus_zero, zero) = ((-0.0f64).to_be_bytes(), 0.0f64.to_be_bytes());
        check_binary(Max, 701, &[&minus_zero, &zero], Some(&minus_zero));
    }

    #[test]
    fn bool_and_or() {
        check(BoolAnd, 16, "t|NULL|t", Ok("t"));
        check(BoolAnd, 16, "t|f", Ok("f"));
        check(BoolOr, 16, "f|NULL|t", Ok("t"));
        check(BoolOr, 16, "f|f", Ok("f"));
        check(BoolAnd, 16, "NULL|NULL", Ok("NULL"));
        check(BoolAnd, 23, "1", unsupported(BoolAnd, 23));
        check_binary(BoolOr, 16, &[&[0], &[1]], Some(&[1]));
    }

    #[test]
    fn unknown_format() {
        let want = Err(ValueError::UnknownFormat(2));
        assert_eq!(merge(Sum, 20, 2, &[Some(b"1")]), want);
        assert_eq!(merge(Max, 20, 2, &[]), want);
    }
}
