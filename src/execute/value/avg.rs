//! avg() over several shards: every shard returns sum(x) and count(x); the merged sum divided by the
//! merged count, computed as PostgreSQL's avg would: numeric_div of the sum by the count for integer
//! and numeric inputs (with its result scale rule, `select_div_scale` in numeric.c, rounded half away
//! from zero), float8 division for float8 inputs.

use super::decimal::{Decimal, shift};
use super::{FORMAT_TEXT, Kind, Value, ValueError, encode, oid};

/// PostgreSQL's NUMERIC_MIN_SIG_DIGITS, DEC_DIGITS and NUMERIC_MAX_DISPLAY_SCALE.
const MIN_SIG_DIGITS: i32 = 16;
const DEC_DIGITS: i32 = 4;
const MAX_DISPLAY_SCALE: i32 = 1000;

/// The type avg() returns for a sum of this type: numeric for integer and numeric sums, float8 for
/// float8. `None` for float4 sums (real's avg accumulates in float8; a float4 sum has lost that).
pub(crate) fn result_type(sum_type: u32) -> Option<u32> {
    match sum_type {
        oid::INT8 | oid::NUMERIC => Some(oid::NUMERIC),
        oid::FLOAT8 => Some(oid::FLOAT8),
        _ => None,
    }
}

/// The average of the merged `sum` (decoded, of the sum's type) over `count` rows, encoded in
/// `format` as avg()'s result type; NULL for no rows.
pub(crate) fn average(
    sum: Option<Value>,
    count: i64,
    format: i16,
) -> Result<Option<Vec<u8>>, ValueError> {
    let (Some(sum), true) = (sum, count > 0) else {
        return Ok(None);
    };
    let out_of_range = ValueError::OutOfRange(Kind::Numeric);
    match sum {
        Value::Float(f) => encode::float8(format, f / count as f64).map(Some),
        Value::Int(i) => {
            let d = divide(i128::from(i), 0, count).ok_or(out_of_range)?;
            encode::numeric(format, &d).map(Some)
        }
        Value::Numeric(Decimal::Finite { mantissa, scale }) => {
            let d = divide(mantissa, scale, count).ok_or(out_of_range)?;
            encode::numeric(format, &d).map(Some)
        }
        Value::Numeric(special) => encode::numeric(format, &special).map(Some),
        _ => Err(ValueError::Malformed {
            kind: Kind::Numeric,
            format: FORMAT_TEXT,
        }),
    }
}

/// `mantissa / 10^scale` divided by `count` at numeric_div's result scale.
fn divide(mantissa: i128, scale: u16, count: i64) -> Option<Decimal> {
    let (w1, d1) = weight_and_first_digit(mantissa.unsigned_abs(), i32::from(scale));
    let (w2, d2) = weight_and_first_digit(count.unsigned_abs().into(), 0);
    let mut qweight = w1 - w2;
    if d1 <= d2 {
        qweight -= 1;
    }
    let rscale = (MIN_SIG_DIGITS - qweight * DEC_DIGITS)
        .max(i32::from(scale))
        .clamp(0, MAX_DISPLAY_SCALE);
    let up = u32::try_from(rscale - i32::from(scale)).ok()?;
    let numerator = shift(mantissa, up)?;
    let count = i128::from(count);
    let (q, r) = (numerator / count, numerator % count);
    // Half away from zero, as PostgreSQL rounds.
    let q = if 2 * r.unsigned_abs() >= count.unsigned_abs() {
        q + numerator.signum()
    } else {
        q
    };
    Some(Decimal::Finite {
        mantissa: q,
        scale: u16::try_from(rscale).ok()?,
    })
}

/// A value's weight in base-10000 digits (PostgreSQL's NBASE) and its first nonzero base-10000 digit;
/// (0, 0) for zero, as numeric.c takes them.
fn weight_and_first_digit(magnitude: u128, scale: i32) -> (i32, u128) {
    if magnitude == 0 {
        return (0, 0);
    }
    let digits = magnitude.ilog10() as i32 + 1;
    // The exponent of the most significant decimal digit, then the base-10000 digit holding it.
    let msd = digits - 1 - scale;
    let weight = msd.div_euclid(DEC_DIGITS);
    let drop = scale + weight * DEC_DIGITS;
    let first = if drop >= 0 {
        magnitude / 10u128.pow(drop as u32)
    } else {
        magnitude * 10u128.pow((-drop) as u32)
    };
    (weight, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(mantissa: i128, scale: u16, count: i64, want: &str) {
        let d = divide(mantissa, scale, count).expect("fits");
        assert_eq!(
            String::from_utf8(d.to_text()).unwrap(),
            want,
            "{mantissa}e-{scale} / {count}"
        );
    }

    /// Expected values are PostgreSQL 15's `SELECT avg(...)` / `numeric_div` output.
    #[test]
    fn numeric_division_scale_and_rounding() {
        check(3, 0, 2, "1.5000000000000000"); // avg of 1, 2
        check(0, 0, 5, "0.00000000000000000000");
        check(10, 0, 4, "2.5000000000000000");
        check(-7, 0, 2, "-3.5000000000000000");
        check(2, 0, 3, "0.66666666666666666667");
        check(1, 0, 3, "0.33333333333333333333");
        check(100_000, 0, 3, "33333.333333333333");
        check(12345, 2, 10, "12.3450000000000000");
        check(123_456_789, 0, 1, "123456789.000000000000");
        check(5, 0, 1, "5.0000000000000000");
        check(1_000_000_000_000, 0, 7, "142857142857.14285714");
    }

    #[test]
    fn weights() {
        assert_eq!(weight_and_first_digit(3, 0), (0, 3));
        assert_eq!(weight_and_first_digit(12345, 0), (1, 1));
        assert_eq!(weight_and_first_digit(12345, 2), (0, 123));
        assert_eq!(weight_and_first_digit(5, 5), (-2, 5000));
    }
}
