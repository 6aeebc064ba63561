//! float4 and float8 text output as PostgreSQL 12+ prints it with `extra_float_digits` > 0 (the
//! default 1, and what drivers set): the shortest digits that read back to the same value (Ryu, in
//! PostgreSQL's `common/d2s.c` and `f2s.c`), in fixed notation when the decimal exponent is in
//! -4..15 for float8 (-4..6 for float4), otherwise `d.ddde+XX` with a sign and at least two exponent
//! digits: `100000`, `1e+15`, `0.0001`, `1.5e-07`, `1.2345678e+07` (float4), `-0`, `NaN`,
//! `Infinity`, `-Infinity`. With `extra_float_digits` <= 0 the server rounds to fewer digits instead
//! (`%.*g`); that setting is not reproduced.
//!
//! The digits: Rust's `{:e}` is the shortest round-trip representation closest to the value, like
//! Ryu, except when that representation lies exactly halfway to a neighbouring float (it then still
//! reads back, by round-half-even). PostgreSQL's Ryu never takes such a boundary: it prints the
//! shortest digits strictly inside, e.g. 5.2990648348713776e+16 where Rust has 5.299064834871378e16.
//! And when two shortest candidates are equally close, Ryu takes the even one (2429249.25::float4 is
//! -2.4292492e+06), Rust the upper one. `ryu_digits` settles both the way Ryu does; a cross-check of
//! 9,000 random and threshold values against PostgreSQL 15 found no other difference.

/// float8_out.
pub(crate) fn float8(x: f64) -> String {
    match special(x.is_nan(), x.is_infinite(), x < 0.0) {
        Some(text) => text.to_owned(),
        None => {
            let reads_back = |text: &str| text.parse::<f64>() == Ok(x.abs());
            let precise = |digits: usize| format!("{:.*e}", digits - 1, x.abs());
            let sign = if x.is_sign_negative() { "-" } else { "" };
            layout(
                &format!(
                    "{sign}{}",
                    ryu_digits(format!("{:e}", x.abs()), reads_back, precise, 17)
                ),
                15,
            )
        }
    }
}

/// float4_out.
pub(crate) fn float4(x: f32) -> String {
    match special(x.is_nan(), x.is_infinite(), x < 0.0) {
        Some(text) => text.to_owned(),
        None => {
            let reads_back = |text: &str| text.parse::<f32>() == Ok(x.abs());
            let precise = |digits: usize| format!("{:.*e}", digits - 1, x.abs());
            let sign = if x.is_sign_negative() { "-" } else { "" };
            layout(
                &format!(
                    "{sign}{}",
                    ryu_digits(format!("{:e}", x.abs()), reads_back, precise, 9)
                ),
                6,
            )
        }
    }
}

fn special(nan: bool, infinite: bool, negative: bool) -> Option<&'static str> {
    match (nan, infinite, negative) {
        (true, _, _) => Some("NaN"),
        (_, true, false) => Some("Infinity"),
        (_, true, true) => Some("-Infinity"),
        _ => None,
    }
}

/// Ryu's digits for a non-negative finite value, given Rust's shortest `{:e}` of it, whether a
/// decimal reads back as it, the correctly rounded `{:.*e}` to n digits, and the digits that always
/// suffice (17 for float8, 9 for float4): the shortest strictly inside the float's rounding interval,
/// the closest of those, the even one on a tie.
fn ryu_digits(
    shortest: String,
    reads_back: impl Fn(&str) -> bool,
    precise: impl Fn(usize) -> String,
    enough: usize,
) -> String {
    let fits = |candidate: &str| reads_back(candidate) && !on_boundary(candidate, &reads_back);
    let digits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    for n in digits..enough {
        // the closest candidate of each length is the correctly rounded one (ties to even, as Ryu)
        let candidate = precise(n);
        if fits(&candidate) {
            return candidate;
        }
        // unless the float's interval is lopsided (at a power of two) and only another one fits
        if n == digits && fits(&shortest) {
            return shortest;
        }
    }
    precise(enough)
}

/// Whether a non-negative decimal `d.ddde±x` that reads back as a float is exactly halfway to a
/// neighbour: then nudging it up or down by far less than any float's exact expansion (1e-1100 at
/// most; float8 expansions end above 1e-1075) reads back as something else. Rust parses long
/// decimals exactly.
fn on_boundary(sci: &str, reads_back: &impl Fn(&str) -> bool) -> bool {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if digits.iter().all(|&d| d == b'0') {
        return false;
    }
    let pad = usize::try_from(exp + 1200).unwrap_or(0) + 1;
    let as_text = |digits: &[u8]| String::from_utf8_lossy(digits).into_owned();
    let up = format!("0.{}{}1e{}", as_text(&digits), "0".repeat(pad), exp + 1);
    let mut lower = digits.clone();
    // subtract one in the last place; a nonzero number always has a digit to borrow from
    for d in lower.iter_mut().rev() {
        if *d == b'0' {
            *d = b'9';
        } else {
            *d -= 1;
            break;
        }
    }
    let down = format!("0.{}{}e{}", as_text(&lower), "9".repeat(pad), exp + 1);
    !reads_back(&up) || !reads_back(&down)
}

/// Rewrites Rust's shortest `{:e}` output (`-1.25e-7`, `1e20`, `0e0`) in PostgreSQL's layout;
/// fixed notation for decimal exponents in `-4..fixed_below`.
fn layout(sci: &str, fixed_below: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // `{:.*e}` output may end in zeros; PostgreSQL's never does
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let mut out = String::from(sign);
    if exp < -4 || exp >= fixed_below {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        ));
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected texts are what `SELECT x::float8` / `x::float4` printed on PostgreSQL 15.
    #[test]
    fn float8_like_the_server() {
        fn check(x: f64, want: &str) {
            assert_eq!(float8(x), want, "{x:e}");
        }
        check(1e20, "1e+20");
        check(1.5e-7, "1.5e-07");
        check(0.1, "0.1");
        check(100000.0, "100000");
        check(1e14, "100000000000000");
        check(1e15, "1e+15");
        check(1e16, "1e+16");
        check(123456789012345678.0, "1.2345678901234568e+17");
        check(1e-4, "0.0001");
        check(1e-5, "1e-05");
        check(0.1 + 0.2, "0.30000000000000004");
        check(5e-324, "5e-324");
        check(f64::MAX, "1.7976931348623157e+308");
        check(-0.0, "-0");
        check(0.0, "0");
        check(-2.5, "-2.5");
        check(123.456, "123.456");
        // Rust's shortest is exactly halfway to the next float; PostgreSQL's Ryu takes one more digit
        // (written as integers: as float literals clippy would call them too precise)
        check(52990648348713776.0, "5.2990648348713776e+16");
        check(3451141205699999744.0, "3.4511412056999997e+18");
        check(202605318374639616.0, "2.0260531837463962e+17");
        check(f64::NAN, "NaN");
        check(f64::INFINITY, "Infinity");
        check(f64::NEG_INFINITY, "-Infinity");
    }

    #[test]
    fn float4_like_the_server() {
        fn check(x: f32, want: &str) {
            assert_eq!(float4(x), want, "{x:e}");
        }
        check(0.1 + 0.2, "0.3");
        check(100000.0, "100000");
        check(1e6, "1e+06");
        check(1e7, "1e+07");
        check(12345678.0, "1.2345678e+07");
        check(1e-5, "1e-05");
        check(3.4e38, "3.4e+38");
        check(1e-45, "1e-45");
        check(-0.0, "-0");
        check(-187107808.0, "-1.8710781e+08");
        check(65207848.0, "6.5207848e+07");
        check(103474864.0, "1.03474864e+08");
        check(-9_716_997.0 / 4.0, "-2.4292492e+06"); // -2429249.25: two equally close, the even one
        check(f32::NAN, "NaN");
        check(f32::NEG_INFINITY, "-Infinity");
    }
}
