//! Ordering values and rows as PostgreSQL's btree operators and `ORDER BY` do, for the k-way merge of
//! sorted shard results.

use std::cmp::Ordering;

use super::Value;

/// One `ORDER BY` key: a column of the rows and its direction. PostgreSQL's defaults are NULLS LAST
/// for ASC and NULLS FIRST for DESC; the caller states it explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SortKey {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// PostgreSQL's order of two values of the same column:
/// - floats and numerics: NaN above everything and equal to NaN, -0 equal to 0, infinities at the ends;
/// - text: bytewise, which is exact for the C collation only (merges of text in other collations are
///   refused, see `scatter::collation`);
/// - bool: false < true; dates and timestamps by number (infinities at the ends); uuid bytewise.
///
/// Values of different variants never meet in one column; they are ordered by variant so the order
/// stays total.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Float(a), Value::Float(b)) => compare_floats(*a, *b),
        (Value::Numeric(a), Value::Numeric(b)) => a.cmp_pg(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (Value::Days(a), Value::Days(b)) => a.cmp(b),
        (Value::Micros(a), Value::Micros(b)) => a.cmp(b),
        (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// float8's btree order (float8_cmp_internal): NaN is the largest value and equals itself.
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // both are numbers, so partial_cmp answers; -0.0 == 0.0
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Int(_) => 0,
        Value::Float(_) => 1,
        Value::Numeric(_) => 2,
        Value::Bool(_) => 3,
        Value::Text(_) => 4,
        Value::Days(_) => 5,
        Value::Micros(_) => 6,
        Value::Uuid(_) => 7,
    }
}

/// Orders two rows by `keys`, the first difference deciding. A column beyond a row's end counts as
/// NULL. NULL placement is the key's `nulls_first`, whatever its direction.
pub(crate) fn compare_rows(keys: &[SortKey], a: &[Option<Value>], b: &[Option<Value>]) -> Ordering {
    for key in keys {
        let left = a.get(key.column).and_then(Option::as_ref);
        let right = b.get(key.column).and_then(Option::as_ref);
        let order = match (left, right) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) if key.nulls_first => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) if key.nulls_first => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if key.descending => compare(x, y).reverse(),
            (Some(x), Some(y)) => compare(x, y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::value::decode_column;
    use Ordering::{Equal, Greater, Less};

    /// Decodes text as PostgreSQL would send it in the text format.
    fn v(type_oid: u32, text: &str) -> Value {
        decode_column(type_oid, 0, Some(text.as_bytes()))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn values() {
        fn check(type_oid: u32, a: &str, want: Ordering, b: &str) {
            let (a, b) = (v(type_oid, a), v(type_oid, b));
            assert_eq!(compare(&a, &b), want, "{a:?} vs {b:?}");
            assert_eq!(compare(&b, &a), want.reverse(), "{b:?} vs {a:?}");
        }
        check(20, "-5", Less, "3");
        check(26, "4294967295", Greater, "1");
        check(701, "NaN", Equal, "NaN");
        check(701, "NaN", Greater, "Infinity");
        check(701, "Infinity", Greater, "1e+308");
        check(701, "-Infinity", Less, "-1e+308");
        check(701, "-0", Equal, "0");
        check(701, "0.1", Less, "0.2");
        check(700, "NaN", Greater, "3.4e+38");
        check(1700, "1.50", Equal, "1.5");
        check(1700, "1.499", Less, "1.5");
        check(1700, "NaN", Greater, "Infinity");
        check(1700, "-Infinity", Less, "-100000");
        check(16, "f", Less, "t");
        check(25, "B", Less, "a"); // C collation: uppercase first
        check(25, "a", Less, "ab");
        check(25, "\u{e9}", Greater, "z"); // é is 0xc3 0xa9 in UTF-8
        check(1042, "a\t ", Greater, "a  "); // bpchar ignores trailing blanks
        check(1082, "0001-01-01 BC", Less, "0001-01-01");
        check(1082, "-infinity", Less, "4714-11-24 BC");
        check(1082, "infinity", Greater, "5874897-12-31");
        check(
            1114,
            "2000-01-01 00:00:00.000001",
            Greater,
            "2000-01-01 00:00:00",
        );
        check(1114, "infinity", Greater, "294276-12-31 23:59:59.999999");
        check(
            1184,
            "2000-01-01 05:30:00+05:30",
            Equal,
            "1999-12-31 19:00:00-05",
        );
        check(
            1184,
            "2000-01-01 05:30:00+05:30",
            Less,
            "2000-01-01 01:00:01+01",
        );
        check(
            1184,
            "1900-01-01 00:00:00+00:19:32",
            Equal,
            "1899-12-31 23:40:28+00",
        );
        check(
            2950,
            "00000000-0000-0000-0000-0000000000ff",
            Less,
            "10000000-0000-0000-0000-000000000000",
        );
    }

    #[test]
    fn rows() {
        fn key(column: usize, descending: bool, nulls_first: bool) -> SortKey {
            SortKey {
                column,
                descending,
                nulls_first,
            }
        }
        fn row(cells: &[Option<i64>]) -> Vec<Option<Value>> {
            cells.iter().map(|c| c.map(Value::Int)).collect()
        }
        fn check(keys: &[SortKey], a: &[Option<i64>], want: Ordering, b: &[Option<i64>]) {
            let (a, b) = (row(a), row(b));
            assert_eq!(compare_rows(keys, &a, &b), want, "{keys:?}: {a:?} vs {b:?}");
            assert_eq!(
                compare_rows(keys, &b, &a),
                want.reverse(),
                "{keys:?}: {b:?} vs {a:?}"
            );
        }
        let asc = key(0, false, false); // ASC NULLS LAST, the default
        let desc = key(0, true, true); // DESC NULLS FIRST, the default
        check(&[asc], &[Some(1)], Less, &[Some(2)]);
        check(&[desc], &[Some(1)], Greater, &[Some(2)]);
        check(&[asc], &[None], Greater, &[Some(2)]);
        check(&[desc], &[None], Less, &[Some(2)]);
        check(&[key(0, false, true)], &[None], Less, &[Some(2)]); // ASC NULLS FIRST
        check(&[key(0, true, false)], &[None], Greater, &[Some(2)]); // DESC NULLS LAST
        check(&[asc], &[None], Equal, &[None]);
        check(&[asc], &[], Equal, &[None]); // a missing column is NULL
        // the second key decides ties of the first
        let two = [key(1, false, false), key(0, true, true)];
        check(&two, &[Some(1), Some(5)], Greater, &[Some(2), Some(5)]);
        check(&two, &[Some(1), Some(4)], Less, &[Some(2), Some(5)]);
        check(&two, &[None, Some(5)], Less, &[Some(2), Some(5)]);
        check(&two, &[Some(2), Some(5)], Equal, &[Some(2), Some(5)]);
        check(&[], &[Some(1)], Equal, &[Some(2)]);
    }

    #[test]
    fn mixed_variants_still_order_totally() {
        assert_eq!(compare(&Value::Int(5), &Value::Text(vec![])), Less);
        assert_eq!(compare(&Value::Uuid([0; 16]), &Value::Bool(true)), Greater);
    }
}
