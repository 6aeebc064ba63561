//! date, timestamp and timestamptz text as PostgreSQL prints them with `DateStyle = ISO`
//! (`2024-02-29`, `2024-02-29 13:05:09.25`, `... 13:05:09.25+05:30`, `0044-03-15 BC`, `infinity`),
//! turned into the numbers the binary format carries: days or microseconds since 2000-01-01.

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 (the epoch of `days_from_civil`) to 2000-01-01 (PostgreSQL's epoch).
const UNIX_TO_PG_DAYS: i64 = 10_957;

/// Days since 2000-01-01 of a proleptic Gregorian date, astronomical years (1 BC = 0),
/// from Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - UNIX_TO_PG_DAYS
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A cursor over the text; every method consumes only on success.
struct Text<'a>(&'a [u8]);

impl Text<'_> {
    /// Between `min` and `max` ASCII digits, as a number and how many there were.
    fn number(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let n = self
            .0
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let value = self.0[..n]
            .iter()
            .fold(0i64, |v, &b| v * 10 + i64::from(b - b'0'));
        self.0 = &self.0[n..];
        Some((value, n))
    }

    fn fixed(&mut self, digits: usize, max: i64) -> Option<i64> {
        self.number(digits, digits)
            .map(|(v, _)| v)
            .filter(|&v| v <= max)
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.0.first() == Some(&byte);
        if hit {
            self.0 = &self.0[1..];
        }
        hit
    }

    /// `YYYY-MM-DD`, four or more year digits, as days since 2000-01-01; `bc` flips the era.
    fn date(&mut self, bc: bool) -> Option<i64> {
        // PostgreSQL's dates end in 5874897 AD: seven digits are enough and cannot overflow
        let (year, _) = self.number(4, 7)?;
        if year == 0 || !self.eat(b'-') {
            return None;
        }
        let year = if bc { 1 - year } else { year };
        let month = self.fixed(2, 12).filter(|&m| m >= 1)?;
        if !self.eat(b'-') {
            return None;
        }
        let day = self
            .fixed(2, days_in_month(year, month))
            .filter(|&d| d >= 1)?;
        Some(days_from_civil(year, month, day))
    }

    /// `HH:MM:SS[.ffffff]` as microseconds since midnight.
    fn time(&mut self) -> Option<i64> {
        let hour = self.fixed(2, 23)?;
        let minute = self.eat(b':').then(|| self.fixed(2, 59))??;
        let second = self.eat(b':').then(|| self.fixed(2, 59))??;
        let mut micros = 0;
        if self.eat(b'.') {
            let (fraction, digits) = self.number(1, 6)?;
            micros = fraction * 10i64.pow(6 - digits as u32);
        }
        Some(((hour * 60 + minute) * 60 + second) * 1_000_000 + micros)
    }

    /// `+HH`, `-HH:MM` or `+HH:MM:SS` as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.0.first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return None,
        };
        self.0 = &self.0[1..];
        let mut seconds = self.fixed(2, 23)? * 3600;
        if self.eat(b':') {
            seconds += self.fixed(2, 59)? * 60;
            if self.eat(b':') {
                seconds += self.fixed(2, 59)?;
            }
        }
        Some(sign * seconds)
    }

    fn end(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits off the ` BC` that follows dates before year 1.
fn era(raw: &[u8]) -> (&[u8], bool) {
    match raw.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (raw, false),
    }
}

/// date text as days since 2000-01-01; `infinity` and `-infinity` as i32::MAX and i32::MIN.
pub(crate) fn parse_date(raw: &[u8]) -> Option<i32> {
    match raw {
        b"infinity" => return Some(i32::MAX),
        b"-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let (body, bc) = era(raw);
    let mut text = Text(body);
    let days = text.date(bc)?;
    text.end().then(|| i32::try_from(days).ok())?
}

/// timestamp text (`with_offset` false) or timestamptz text (true) as microseconds since
/// 2000-01-01 00:00 (UTC for timestamptz); `infinity` and `-infinity` as i64::MAX and i64::MIN.
pub(crate) fn parse_timestamp(raw: &[u8], with_offset: bool) -> Option<i64> {
    match raw {
        b"infinity" => return Some(i64::MAX),
        b"-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (body, bc) = era(raw);
    let mut text = Text(body);
    let days = text.date(bc)?;
    let time = text.eat(b' ').then(|| text.time())??;
    let offset = if with_offset { text.offset()? } else { 0 };
    if !text.end() {
        return None;
    }
    days.checked_mul(MICROS_PER_DAY)?
        .checked_add(time)?
        .checked_sub(offset * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // expected values from `SELECT date - '2000-01-01'` on PostgreSQL 15
        fn check(text: &str, want: Option<i32>) {
            assert_eq!(parse_date(text.as_bytes()), want, "{text}");
        }
        check("2000-01-01", Some(0));
        check("2000-01-02", Some(1));
        check("1999-12-31", Some(-1));
        check("1970-01-01", Some(-10957));
        check("2024-02-29", Some(8825));
        check("2000-03-01", Some(60));
        check("0001-01-01", Some(-730119));
        check("0001-12-31 BC", Some(-730120));
        check("0044-03-15 BC", Some(-746117));
        check("4714-11-24 BC", Some(-2451545)); // Julian day 0
        check("4713-11-24 BC", Some(-2451179));
        check("5874897-12-31", Some(2145031948));
        check("12345-06-07", Some(3778591));
        check("infinity", Some(i32::MAX));
        check("-infinity", Some(i32::MIN));
        check("2023-02-29", None);
        check("2000-13-01", None);
        check("2000-00-10", None);
        check("2000-1-01", None);
        check("0000-01-01", None);
        check("2000-01-01 ", None);
        check("2000-01-01 AD", None);
        check("Infinity", None);
        check("", None);
    }

    #[test]
    fn timestamps() {
        fn check(text: &str, with_offset: bool, want: Option<i64>) {
            assert_eq!(
                parse_timestamp(text.as_bytes(), with_offset),
                want,
                "{text}"
            );
        }
        let day = MICROS_PER_DAY;
        check("2000-01-01 00:00:00", false, Some(0));
        check("2000-01-02 00:00:01", false, Some(day + 1_000_000));
        check("1999-12-31 23:59:59.999999", false, Some(-1));
        check("2000-01-01 00:00:00.5", false, Some(500_000));
        check("2000-01-01 00:00:00.000123", false, Some(123));
        check(
            "0001-01-01 00:00:00 BC",
            false,
            Some(-366 * day - 730119 * day),
        );
        check("infinity", false, Some(i64::MAX));
        check("-infinity", true, Some(i64::MIN));
        check("2000-01-01 00:00:00+00", true, Some(0));
        check("2000-01-01 05:30:00+05:30", true, Some(0));
        check("1999-12-31 19:00:00-05", true, Some(0));
        check("2000-01-01 00:19:32+00:19:32", true, Some(0));
        check(
            "0001-01-01 05:53:28+05:53:28 BC",
            true,
            Some(-366 * day - 730119 * day),
        );
        check("2000-01-01 00:00:00", true, None); // offset missing
        check("2000-01-01 00:00:00+00", false, None); // offset not expected
        check("2000-01-01 24:00:00", false, None);
        check("2000-01-01 00:60:00", false, None);
        check("2000-01-01 00:00:00.", false, None);
        check("2000-01-01 00:00:00.1234567", false, None);
        check("2000-01-01T00:00:00", false, None);
        check("2000-01-01 00:00", false, None);
        check("2000-01-01", false, None);
    }
}
