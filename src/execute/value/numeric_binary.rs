//! numeric's binary wire form (numeric_send / numeric_recv in PostgreSQL's `utils/adt/numeric.c`):
//! i16 ndigits, i16 weight, u16 sign, u16 dscale, then ndigits base-10000 digits, most significant
//! first; the value is the sum of digit[i] * 10000^(weight - i).

use super::decimal::{Decimal, shift};
use super::{FORMAT_BINARY, Kind, ValueError};

const POS: u16 = 0x0000;
const NEG: u16 = 0x4000;
pub(super) const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
/// numeric_send of ±Infinity sends 32 as dscale: it reads the dscale bits of the special value's
/// short header (0xD000 & 0x1F80 >> 7). Copied so our bytes equal the server's.
const INF_DSCALE: u16 = 0x20;

const MALFORMED: ValueError = ValueError::Malformed {
    kind: Kind::Numeric,
    format: FORMAT_BINARY,
};
const OUT_OF_RANGE: ValueError = ValueError::OutOfRange(Kind::Numeric);

fn be16(raw: &[u8], at: usize) -> Result<u16, ValueError> {
    match raw.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(MALFORMED),
    }
}

/// Decodes numeric_send's bytes. Digits below the display scale must be zero, as the server sends them.
pub(crate) fn decode(raw: &[u8]) -> Result<Decimal, ValueError> {
    let ndigits = be16(raw, 0)? as i16;
    let weight = be16(raw, 2)? as i16;
    let sign = be16(raw, 4)?;
    let dscale = be16(raw, 6)?;
    let ndigits = usize::try_from(ndigits).map_err(|_| MALFORMED)?;
    if raw.len() != 8 + 2 * ndigits {
        return Err(MALFORMED);
    }
    match sign {
        POS | NEG => {}
        NAN => return Ok(Decimal::NaN),
        PINF => return Ok(Decimal::Infinity),
        NINF => return Ok(Decimal::NegInfinity),
        _ => return Err(MALFORMED),
    }
    // value = acc * 10^acc_exp, built one decimal digit at a time down to 10^-dscale
    let lowest = -i64::from(dscale);
    let (mut acc, mut acc_exp) = (0i128, 0i64);
    for i in 0..ndigits {
        let group = be16(raw, 8 + 2 * i)?;
        if group > 9999 {
            return Err(MALFORMED);
        }
        let group_exp = 4 * (i64::from(weight) - i as i64);
        for (k, unit) in [1000, 100, 10, 1].into_iter().enumerate() {
            let digit = i128::from(group / unit % 10);
            let exp = group_exp + 3 - k as i64;
            if exp < lowest {
                if digit != 0 {
                    return Err(MALFORMED);
                }
            } else if acc != 0 || digit != 0 {
                // digits come most significant first, so acc_exp > exp once acc holds one
                let gap = if acc == 0 { 0 } else { (acc_exp - exp) as u32 };
                acc = shift(acc, gap)
                    .and_then(|a| a.checked_add(digit))
                    .ok_or(OUT_OF_RANGE)?;
                acc_exp = exp;
            }
        }
    }
    if acc != 0 {
        let gap = u32::try_from(acc_exp - lowest).map_err(|_| OUT_OF_RANGE)?;
        acc = shift(acc, gap).ok_or(OUT_OF_RANGE)?;
    }
    let mantissa = if sign == NEG { -acc } else { acc };
    Ok(Decimal::Finite {
        mantissa,
        scale: dscale,
    })
}

/// Encodes as numeric_send does: leading and trailing zero groups stripped, zero as no digits with
/// weight 0 and a positive sign.
pub(crate) fn encode(value: &Decimal) -> Vec<u8> {
    let (mantissa, scale) = match *value {
        Decimal::NaN => return header(0, 0, NAN, 0),
        Decimal::Infinity => return header(0, 0, PINF, INF_DSCALE),
        Decimal::NegInfinity => return header(0, 0, NINF, INF_DSCALE),
        Decimal::Finite { mantissa, scale } => (mantissa, scale),
    };
    let width = usize::from(scale);
    let digits = format!("{:0>w$}", mantissa.unsigned_abs(), w = width + 1);
    let (int, frac) = digits.split_at(digits.len() - width);
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let aligned: Vec<u8> = std::iter::repeat_n(b'0', int_pad)
        .chain(digits.bytes())
        .chain(std::iter::repeat_n(b'0', frac_pad))
        .collect();
    let mut groups: Vec<u16> = aligned
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |g, &b| g * 10 + u16::from(b - b'0')))
        .collect();
    let mut weight = ((int.len() + int_pad) / 4) as i64 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (weight, sign) = match groups.is_empty() {
        true => (0, POS),
        false => (weight, if mantissa < 0 { NEG } else { POS }),
    };
    // a 38-digit mantissa has at most 10 groups, and |weight| <= 16383 / 4 + 10 fits in i16
    let mut out = header(groups.len() as i16, weight as i16, sign, scale);
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn header(ndigits: i16, weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 2 * ndigits.max(0) as usize);
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Byte-exact against `SELECT numeric_send(...)` on PostgreSQL 15.
    #[test]
    fn round_trips_server_bytes() {
        fn check(text: &str, send: &str) {
            let value = Decimal::parse(text.as_bytes()).unwrap();
            assert_eq!(decode(&hex(send)), Ok(value), "decode {text}");
            assert_eq!(encode(&value), hex(send), "encode {text}");
        }
        check("0.00", "0000000000000002");
        check("0", "0000000000000000");
        check("1.50", "000200000000000200011388");
        check("-12345.6789", "0003000140000004000109291a85");
        check("10000", "00010001000000000001");
        check("0.0001", "0001ffff000000040001");
        check("123456789.000100", "0004000200000006000109291a850001");
        check("NaN", "00000000c0000000");
        check("Infinity", "00000000d0000020");
        check("-Infinity", "00000000f0000020");
    }

    #[test]
    fn rejects_malformed_and_too_wide() {
        fn check(send: &str, want: ValueError) {
            assert_eq!(decode(&hex(send)), Err(want), "{send}");
        }
        check("", MALFORMED);
        check("000100000000000000", MALFORMED); // one digit announced, none sent
        check("0001000000000000270f00", MALFORMED); // a byte too many
        check("0001000000000000ffff", MALFORMED); // digit > 9999
        check("0000000012340000", MALFORMED); // unknown sign
        check("ffff000000000000", MALFORMED); // negative ndigits
        check("000100000000000000011388", MALFORMED); // 0.5 in a digit below dscale 0
        check("0001000a000000000001", OUT_OF_RANGE); // 10000^10 = 1e40
    }

    #[test]
    fn wide_but_representable_values_decode() {
        // 9999...9 (38 nines) = digits [99, 9999 x 9], weight 9
        let mut send = hex("000a0009000000000063");
        send.extend(std::iter::repeat_n([0x27, 0x0f], 9).flatten());
        let want = Decimal::parse("99999999999999999999999999999999999999".as_bytes()).unwrap();
        assert_eq!(decode(&send), Ok(want));
        assert_eq!(encode(&want), send);
    }
}
