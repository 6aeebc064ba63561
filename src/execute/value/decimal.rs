//! `Decimal`: PostgreSQL numeric values that fit 38 significant digits, exact. Anything wider is an
//! `OutOfRange` error, never a rounded answer. Text form here; the binary form is in `numeric_binary`.

use std::cmp::Ordering;

use super::{Kind, ValueError};

/// A numeric value: `mantissa / 10^scale`, or one of the special values of PostgreSQL 14+.
///
/// `scale` is PostgreSQL's display scale (dscale), so `PartialEq` is representation equality
/// (1.50 != 1.5); `Decimal::cmp_pg` is value order (1.50 == 1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decimal {
    Finite { mantissa: i128, scale: u16 },
    NaN,
    Infinity,
    NegInfinity,
}

const OUT_OF_RANGE: ValueError = ValueError::OutOfRange(Kind::Numeric);

/// `m * 10^n`, or None if that does not fit.
pub(super) fn shift(m: i128, n: u32) -> Option<i128> {
    if m == 0 {
        return Some(0);
    }
    m.checked_mul(10i128.checked_pow(n)?)
}

impl Decimal {
    /// Parses numeric_out's text: `[-]digits[.digits]`, `NaN`, `Infinity`, `-Infinity`.
    pub(crate) fn parse(raw: &[u8]) -> Result<Decimal, ValueError> {
        let malformed = ValueError::Malformed {
            kind: Kind::Numeric,
            format: super::FORMAT_TEXT,
        };
        match raw {
            b"NaN" => return Ok(Decimal::NaN),
            b"Infinity" => return Ok(Decimal::Infinity),
            b"-Infinity" => return Ok(Decimal::NegInfinity),
            _ => {}
        }
        let (negative, body) = match raw {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            _ => (false, raw),
        };
        let (int, frac) = match body.iter().position(|&b| b == b'.') {
            Some(dot) => (&body[..dot], &body[dot + 1..]),
            None => (body, &body[body.len()..]),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(malformed);
        }
        let mut magnitude: i128 = 0;
        for &b in int.iter().chain(frac) {
            if !b.is_ascii_digit() {
                return Err(malformed);
            }
            magnitude = shift(magnitude, 1)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or(OUT_OF_RANGE)?;
        }
        let scale = u16::try_from(frac.len()).map_err(|_| OUT_OF_RANGE)?;
        let mantissa = if negative { -magnitude } else { magnitude };
        Ok(Decimal::Finite { mantissa, scale })
    }

    /// numeric_out's text: every digit of the display scale, no exponent.
    pub(crate) fn to_text(self) -> Vec<u8> {
        let (mantissa, scale) = match self {
            Decimal::NaN => return b"NaN".to_vec(),
            Decimal::Infinity => return b"Infinity".to_vec(),
            Decimal::NegInfinity => return b"-Infinity".to_vec(),
            Decimal::Finite { mantissa, scale } => (mantissa, usize::from(scale)),
        };
        let digits = format!("{:0>width$}", mantissa.unsigned_abs(), width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        let mut out = String::with_capacity(digits.len() + 2);
        if mantissa < 0 {
            out.push('-');
        }
        out.push_str(int);
        if scale > 0 {
            out.push('.');
            out.push_str(frac);
        }
        out.into_bytes()
    }

    /// PostgreSQL's btree order: -Infinity < finite values < Infinity < NaN, and NaN equals NaN.
    /// Scales do not matter: 1.50 == 1.5. Exact for every representable value.
    pub(crate) fn cmp_pg(&self, other: &Decimal) -> Ordering {
        fn rank(d: &Decimal) -> u8 {
            match d {
                Decimal::NegInfinity => 0,
                Decimal::Finite { .. } => 1,
                Decimal::Infinity => 2,
                Decimal::NaN => 3,
            }
        }
        match (*self, *other) {
            (
                Decimal::Finite {
                    mantissa: a,
                    scale: sa,
                },
                Decimal::Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) => cmp_finite(a, sa, b, sb),
            _ => rank(self).cmp(&rank(other)),
        }
    }

    /// `self + other` as PostgreSQL's numeric_add computes it: the result's display scale is the larger
    /// one; NaN absorbs everything, Infinity + -Infinity is NaN.
    pub(crate) fn checked_add(&self, other: &Decimal) -> Result<Decimal, ValueError> {
        use Decimal::*;
        Ok(match (*self, *other) {
            (NaN, _) | (_, NaN) | (Infinity, NegInfinity) | (NegInfinity, Infinity) => NaN,
            (Infinity, _) | (_, Infinity) => Infinity,
            (NegInfinity, _) | (_, NegInfinity) => NegInfinity,
            (
                Finite {
                    mantissa: a,
                    scale: sa,
                },
                Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) => {
                let scale = sa.max(sb);
                let a = shift(a, u32::from(scale - sa)).ok_or(OUT_OF_RANGE)?;
                let b = shift(b, u32::from(scale - sb)).ok_or(OUT_OF_RANGE)?;
                Finite {
                    mantissa: a.checked_add(b).ok_or(OUT_OF_RANGE)?,
                    scale,
                }
            }
        })
    }
}

/// Compares `a / 10^sa` with `b / 10^sb` without rounding: when bringing `a` to the larger scale
/// overflows, its magnitude exceeds every i128, so the sign of `a` decides.
fn cmp_finite(a: i128, sa: u16, b: i128, sb: u16) -> Ordering {
    if sa > sb {
        return cmp_finite(b, sb, a, sa).reverse();
    }
    match shift(a, u32::from(sb - sa)) {
        Some(a) => a.cmp(&b),
        None if a > 0 => Ordering::Greater,
        None => Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn parse_and_print_round_trip() {
        fn check(text: &str, want: Result<Decimal, ValueError>) {
            let got = Decimal::parse(text.as_bytes());
            assert_eq!(got, want, "{text}");
            if let Ok(value) = got {
                assert_eq!(
                    String::from_utf8(value.to_text()).unwrap(),
                    text.trim_start_matches('+')
                );
            }
        }
        let fin = |mantissa, scale| Ok(Decimal::Finite { mantissa, scale });
        let malformed = Err(ValueError::Malformed {
            kind: Kind::Numeric,
            format: 0,
        });
        check("0", fin(0, 0));
        check("0.00", fin(0, 2));
        check("1.50", fin(150, 2));
        check("-1.5", fin(-15, 1));
        check("-0.0001", fin(-1, 4));
        check("+7", fin(7, 0));
        check(
            "123456789012345678901234567890.12345678",
            fin(12345678901234567890123456789012345678, 8),
        );
        check("NaN", Ok(Decimal::NaN));
        check("Infinity", Ok(Decimal::Infinity));
        check("-Infinity", Ok(Decimal::NegInfinity));
        check(
            "1234567890123456789012345678901234567890",
            Err(OUT_OF_RANGE),
        );
        check("", malformed.clone());
        check("-", malformed.clone());
        check(".", malformed.clone());
        check("1e5", malformed.clone());
        check("1.2.3", malformed.clone());
        check("nan", malformed);
    }

    #[test]
    fn order_ignores_scale_and_puts_nan_last() {
        fn check(a: &str, want: Ordering, b: &str) {
            assert_eq!(d(a).cmp_pg(&d(b)), want, "{a} vs {b}");
            assert_eq!(d(b).cmp_pg(&d(a)), want.reverse(), "{b} vs {a}");
        }
        check("1.50", Ordering::Equal, "1.5");
        check("2", Ordering::Equal, "2.000");
        check("0", Ordering::Equal, "-0.00");
        check("1.49", Ordering::Less, "1.5");
        check("-1.49", Ordering::Greater, "-1.5");
        check("-3", Ordering::Less, "0.0001");
        check("NaN", Ordering::Equal, "NaN");
        check("NaN", Ordering::Greater, "Infinity");
        check(
            "Infinity",
            Ordering::Greater,
            "99999999999999999999999999999999999999",
        );
        check(
            "-Infinity",
            Ordering::Less,
            "-99999999999999999999999999999999999999",
        );
        // rescaling overflows i128: the comparison must still be exact
        check(
            "99999999999999999999999999999999999999",
            Ordering::Greater,
            "0.00000000000000000000000000000000000001",
        );
        check(
            "-99999999999999999999999999999999999999",
            Ordering::Less,
            "0.00000000000000000000000000000000000001",
        );
        check(
            "-99999999999999999999999999999999999999",
            Ordering::Less,
            "-0.00000000000000000000000000000000000001",
        );
        check(
            "0",
            Ordering::Less,
            "0.00000000000000000000000000000000000000000000000001",
        );
    }

    #[test]
    fn add_keeps_the_larger_display_scale() {
        fn check(a: &str, b: &str, want: Result<&str, ValueError>) {
            let got = d(a)
                .checked_add(&d(b))
                .map(|v| String::from_utf8(v.to_text()).unwrap());
            assert_eq!(got.as_deref().map_err(Clone::clone), want, "{a} + {b}");
        }
        check("1.5", "2.25", Ok("3.75"));
        check("1.50", "2", Ok("3.50"));
        check("-1.5", "1.5", Ok("0.0"));
        check("0.1", "-0.35", Ok("-0.25"));
        check("NaN", "1", Ok("NaN"));
        check("Infinity", "-Infinity", Ok("NaN"));
        check("Infinity", "1", Ok("Infinity"));
        check("-5", "-Infinity", Ok("-Infinity"));
        check(
            "99999999999999999999999999999999999999",
            "1",
            Ok("100000000000000000000000000000000000000"),
        );
        check(
            "170141183460469231731687303715884105727",
            "1",
            Err(OUT_OF_RANGE),
        ); // i128::MAX + 1
        check(
            "9999999999999999999999999999999999999",
            "0.01",
            Err(OUT_OF_RANGE),
        );
    }
}
