//! Group keys as PostgreSQL compares them. Rows of two shards belong to one group when their keys are
//! equal, which for some types is not equality of the bytes sent: numeric 5.0 = 5.00, float -0 = 0,
//! bpchar 'a' = 'a  '. Each key cell is brought to one spelling per value before groups are matched;
//! the client sees the first spelling met, as a hash aggregate shows one of its group's.

use std::borrow::Cow;

use super::decode::array;
use super::numeric_binary::NAN;
use super::{FORMAT_BINARY, oid};

/// One spelling of `raw` per value of its type, for matching groups only.
pub(crate) fn canonical(type_oid: u32, format: i16, raw: &[u8]) -> Cow<'_, [u8]> {
    match (type_oid, format == FORMAT_BINARY) {
        (oid::NUMERIC, false) => Cow::Borrowed(numeric_text(raw)),
        (oid::NUMERIC, true) => numeric_binary(raw),
        (oid::FLOAT4 | oid::FLOAT8, false) if raw == b"-0" => Cow::Borrowed(b"0"),
        (oid::FLOAT4, true) => float4_binary(raw),
        (oid::FLOAT8, true) => float8_binary(raw),
        (oid::INTERVAL, true) => interval_binary(raw),
        (oid::BPCHAR, _) => Cow::Borrowed(super::decode::bpchar_trimmed(raw)),
        _ => Cow::Borrowed(raw),
    }
}

const F4_NAN: [u8; 4] = f32::NAN.to_be_bytes();
const F8_NAN: [u8; 8] = f64::NAN.to_be_bytes();

/// Binary IEEE 754: -0 as 0 (the pattern 0.0 matches both), and every NaN as one (PostgreSQL's NaN
/// equals NaN).
fn float4_binary(raw: &[u8]) -> Cow<'_, [u8]> {
    match <[u8; 4]>::try_from(raw).map(f32::from_be_bytes) {
        Ok(0.0) => Cow::Borrowed(&[0; 4]),
        Ok(f) if f.is_nan() => Cow::Borrowed(&F4_NAN),
        _ => Cow::Borrowed(raw),
    }
}

fn float8_binary(raw: &[u8]) -> Cow<'_, [u8]> {
    match <[u8; 8]>::try_from(raw).map(f64::from_be_bytes) {
        Ok(0.0) => Cow::Borrowed(&[0; 8]),
        Ok(f) if f.is_nan() => Cow::Borrowed(&F8_NAN),
        _ => Cow::Borrowed(raw),
    }
}

/// Binary interval (µs, days, months) as PostgreSQL compares it: one span, a month as 30 days and a
/// day as 24 hours ('1 mon' = '30 days' = '720 hours'). In text, spellings of one span still differ.
fn interval_binary(raw: &[u8]) -> Cow<'_, [u8]> {
    if raw.len() != 16 {
        return Cow::Borrowed(raw);
    }
    let us = i64::from_be_bytes(array(&raw[..8]));
    let days = i32::from_be_bytes(array(&raw[8..12]));
    let months = i32::from_be_bytes(array(&raw[12..]));
    const DAY_US: i128 = 86_400_000_000;
    let span = (i128::from(months) * 30 + i128::from(days)) * DAY_US + i128::from(us);
    Cow::Owned(span.to_be_bytes().to_vec())
}

/// Text: without the fraction's trailing zeros (numeric output has no exponent; zero is never
/// negative).
fn numeric_text(raw: &[u8]) -> &[u8] {
    let Some(dot) = raw.iter().position(|&b| b == b'.') else {
        return raw;
    };
    let mut end = raw.len();
    while end > dot + 1 && raw[end - 1] == b'0' {
        end -= 1;
    }
    if end == dot + 1 {
        end = dot;
    }
    &raw[..end]
}

/// Binary (ndigits, weight, sign, dscale, base-10000 digits): display scale 0, trailing zero digits
/// dropped, and zero as one value.
fn numeric_binary(raw: &[u8]) -> Cow<'_, [u8]> {
    if raw.len() < 8 {
        return Cow::Borrowed(raw);
    }
    let ndigits = i16::from_be_bytes([raw[0], raw[1]]).max(0) as usize;
    let digits = raw.get(8..8 + 2 * ndigits).unwrap_or_default();
    let kept = digits
        .chunks(2)
        .rposition(|d| d != [0, 0])
        .map_or(0, |i| i + 1);
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let mut out = Vec::with_capacity(8 + 2 * kept);
    out.extend_from_slice(&(kept as i16).to_be_bytes());
    if kept == 0 && sign & NAN != NAN {
        // Zero: no weight, no sign (NaN and the infinities, which have NaN's bits set, keep theirs).
        out.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        out.extend_from_slice(&raw[2..6]);
    }
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&digits[..2 * kept]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::value::FORMAT_TEXT;

    fn same(type_oid: u32, format: i16, a: &[u8], b: &[u8]) -> bool {
        canonical(type_oid, format, a) == canonical(type_oid, format, b)
    }

    /// Binary numeric: ndigits, weight, sign, dscale, digits.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn equal_values_spelled_differently_match() {
        let t = FORMAT_TEXT;
        assert!(same(oid::NUMERIC, t, b"5.0", b"5.00"));
        assert!(same(oid::NUMERIC, t, b"5", b"5.000"));
        assert!(same(oid::NUMERIC, t, b"-1.50", b"-1.5"));
        assert!(same(oid::NUMERIC, t, b"0.00", b"0"));
        assert!(!same(oid::NUMERIC, t, b"50", b"5.0"));
        assert!(!same(oid::NUMERIC, t, b"100", b"1.00"));
        assert!(same(oid::NUMERIC, t, b"NaN", b"NaN"));
        assert!(same(oid::FLOAT8, t, b"-0", b"0"));
        assert!(!same(oid::FLOAT8, t, b"-1", b"1"));
        assert!(same(oid::BPCHAR, t, b"ab  ", b"ab"));
        assert!(!same(oid::TEXT, t, b"ab  ", b"ab"));
        let b = FORMAT_BINARY;
        assert!(same(
            oid::NUMERIC,
            b,
            &numeric(0, 0, 1, &[5]),
            &numeric(0, 0, 2, &[5])
        ));
        assert!(same(
            oid::NUMERIC,
            b,
            &numeric(0, 0, 4, &[5, 0]),
            &numeric(0, 0, 0, &[5])
        ));
        assert!(same(
            oid::NUMERIC,
            b,
            &numeric(0, 0x4000, 2, &[]),
            &numeric(-1, 0, 0, &[])
        ));
        assert!(!same(
            oid::NUMERIC,
            b,
            &numeric(1, 0, 0, &[5]),
            &numeric(0, 0, 0, &[5])
        ));
        assert!(!same(
            oid::NUMERIC,
            b,
            &numeric(0, 0x4000, 0, &[5]),
            &numeric(0, 0, 0, &[5])
        ));
        assert!(!same(
            oid::NUMERIC,
            b,
            &numeric(0, 0xC000, 0, &[]),
            &numeric(0, 0, 0, &[])
        ));
        assert!(same(
            oid::FLOAT8,
            b,
            &(-0.0f64).to_be_bytes(),
            &0.0f64.to_be_bytes()
        ));
        assert!(!same(
            oid::FLOAT4,
            b,
            &(-1.0f32).to_be_bytes(),
            &1.0f32.to_be_bytes()
        ));

        let f8 = |a: f64, b: f64| {
            same(
                oid::FLOAT8,
                FORMAT_BINARY,
                &a.to_be_bytes(),
                &b.to_be_bytes(),
            )
        };
        let f4 = |a: f32, b: f32| {
            same(
                oid::FLOAT4,
                FORMAT_BINARY,
                &a.to_be_bytes(),
                &b.to_be_bytes(),
            )
        };
        assert!(f4(-0.0, 0.0));
        // Bytes after the first all zero, yet not zero.
        assert!(!f8(2.0, 0.0));
        assert!(!f4(0.5, 0.0));
        assert!(!f4(0.5, 2.0));
        assert!(f8(f64::from_bits(0xfff8_0000_0000_0001), f64::NAN));
        assert!(!f8(f64::INFINITY, f64::NAN));

        let interval = |us: i64, days: i32, months: i32| {
            let mut v = us.to_be_bytes().to_vec();
            v.extend_from_slice(&days.to_be_bytes());
            v.extend_from_slice(&months.to_be_bytes());
            v
        };
        let iv = |a: &[u8], b: &[u8]| same(oid::INTERVAL, FORMAT_BINARY, a, b);
        assert!(iv(&interval(0, 30, 0), &interval(0, 0, 1)));
        assert!(iv(&interval(86_400_000_000, 0, 0), &interval(0, 1, 0)));
        assert!(!iv(&interval(1, 0, 0), &interval(0, 0, 0)));
    }
}
