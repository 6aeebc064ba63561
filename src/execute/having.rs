//! Evaluates a HAVING filter (the router's `Filter`) on one combined group, with SQL's three-valued
//! logic. A constant or parameter is read as the type of the column it is compared with; numbers of
//! different classes compare by value (an int8 count with a numeric or float constant). Pure.

use std::cmp::Ordering;

use super::rows::Field;
use super::value::{self, Decimal, FORMAT_TEXT, Kind, Value, kind_of};
use crate::router::{CmpOp, Filter, Operand};

/// A Bind parameter the filter reads: its format, bytes and the type its Parse declared (if not 0),
/// `None` for NULL.
pub(crate) type ParamValue = Option<(i16, Vec<u8>, Option<u32>)>;

/// The parameters of one execution, by index.
#[derive(Debug, Default, Clone)]
pub(crate) struct FilterParams(pub Vec<(usize, ParamValue)>);

impl FilterParams {
    fn get(&self, i: usize) -> Option<&ParamValue> {
        self.0.iter().find(|(k, _)| *k == i).map(|(_, v)| v)
    }
}

/// A group's combined columns: their fields (as the client sees them) and encoded values.
pub(crate) struct Group<'a> {
    pub fields: &'a [Field],
    pub values: &'a [Option<&'a [u8]>],
}

/// Whether the group passes: only a true condition keeps it (unknown does not).
pub(crate) fn keeps(filter: &Filter, group: &Group, params: &FilterParams) -> Result<bool, String> {
    Ok(eval(filter, group, params)? == Some(true))
}

fn eval(filter: &Filter, g: &Group, params: &FilterParams) -> Result<Option<bool>, String> {
    Ok(match filter {
        Filter::And(a, b) => match (eval(a, g, params)?, eval(b, g, params)?) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Filter::Or(a, b) => match (eval(a, g, params)?, eval(b, g, params)?) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Filter::Not(a) => eval(a, g, params)?.map(|b| !b),
        Filter::IsNull(o) => Some(match o {
            Operand::Column(i) => column(g, *i)?.1.is_none(),
            Operand::Param(i, _) => matches!(params.get(*i), Some(None)),
            Operand::Null => true,
            Operand::Literal(_) => false,
        }),
        Filter::Truth(o) => match typed(o, g, params, None)? {
            None => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                return Err("HAVING over several shards: a condition that is not boolean".into());
            }
        },
        Filter::Compare(a, op, b) => {
            // The column side types the other side.
            let type_of = |o: &Operand| match o {
                Operand::Column(i) => column(g, *i).ok().map(|(f, _)| f.type_oid),
                _ => None,
            };
            let ty = type_of(a).or_else(|| type_of(b));
            let (Some(x), Some(y)) = (typed(a, g, params, ty)?, typed(b, g, params, ty)?) else {
                return Ok(None);
            };
            let order = compare_mixed(&x, &y).ok_or_else(|| {
                "HAVING over several shards: values of different types compared".to_string()
            })?;
            Some(match op {
                CmpOp::Eq => order == Ordering::Equal,
                CmpOp::NotEq => order != Ordering::Equal,
                CmpOp::Lt => order == Ordering::Less,
                CmpOp::LtEq => order != Ordering::Greater,
                CmpOp::Gt => order == Ordering::Greater,
                CmpOp::GtEq => order != Ordering::Less,
            })
        }
    })
}

fn column<'a>(g: &'a Group, i: usize) -> Result<(&'a Field, Option<&'a [u8]>), String> {
    match (g.fields.get(i), g.values.get(i)) {
        (Some(f), Some(v)) => Ok((f, *v)),
        _ => Err(format!("HAVING column {} is not in the result", i + 1)),
    }
}

/// An operand's value (None for NULL); a constant or parameter read as type `ty`.
fn typed(
    o: &Operand,
    g: &Group,
    params: &FilterParams,
    ty: Option<u32>,
) -> Result<Option<Value>, String> {
    let (format, raw, cast) = match o {
        Operand::Column(i) => {
            let (f, raw) = column(g, *i)?;
            return value::decode_column(f.type_oid, f.format, raw)
                .map_err(|e| format!("HAVING over several shards: {e}"));
        }
        Operand::Null => return Ok(None),
        Operand::Literal(text) => (FORMAT_TEXT, text.as_bytes(), None),
        Operand::Param(i, cast) => match params.get(*i) {
            Some(Some((format, raw, declared))) => (*format, raw.as_slice(), cast.or(*declared)),
            Some(None) => return Ok(None),
            None => return Err(format!("HAVING parameter ${} was not bound", i + 1)),
        },
    };
    let ty = ty.ok_or("HAVING over several shards: a comparison without a column")?;
    // A binary parameter is in its own type: the cast's or the declared one, else the column's
    // (PostgreSQL's inference).
    let ty = if format == FORMAT_TEXT {
        ty
    } else {
        cast.unwrap_or(ty)
    };
    constant(ty, format, raw).map(Some).ok_or_else(|| {
        format!(
            "HAVING over several shards: {} does not read as a value of type oid {ty}",
            String::from_utf8_lossy(raw)
        )
    })
}

/// A constant of a column's type; for a number column, any number (10.5 against a count).
fn constant(ty: u32, format: i16, raw: &[u8]) -> Option<Value> {
    let kind = kind_of(ty)?;
    let numeric = matches!(kind, Kind::Int | Kind::Float | Kind::Numeric);
    if format == FORMAT_TEXT {
        if let Ok(v) = value::decode(kind, format, raw, ty) {
            return Some(v);
        }
        if !numeric {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?.trim();
        return text
            .parse::<i64>()
            .map(Value::Int)
            .ok()
            .or_else(|| Decimal::parse(text.as_bytes()).ok().map(Value::Numeric))
            .or_else(|| text.parse::<f64>().ok().map(Value::Float));
    }
    // Binary integers: the length tells the width (an int4 parameter against a count).
    if kind == Kind::Int {
        let as_type = match raw.len() {
            2 => value::oid::INT2,
            4 => value::oid::INT4,
            _ => value::oid::INT8,
        };
        return value::decode(kind, format, raw, as_type).ok();
    }
    value::decode(kind, format, raw, ty).ok()
}

/// Two values in PostgreSQL's order; numbers of different classes by value (int with numeric as
/// numeric, anything with float as float8). None for values that do not compare.
fn compare_mixed(a: &Value, b: &Value) -> Option<Ordering> {
    let int = |i: i64| Decimal::Finite {
        mantissa: i128::from(i),
        scale: 0,
    };
    let float = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Numeric(d) => match d {
            Decimal::NaN => Some(f64::NAN),
            Decimal::Infinity => Some(f64::INFINITY),
            Decimal::NegInfinity => Some(f64::NEG_INFINITY),
            Decimal::Finite { .. } => std::str::from_utf8(&d.to_text()).ok()?.parse().ok(),
        },
        _ => None,
    };
    Some(match (a, b) {
        (Value::Int(x), Value::Numeric(y)) => int(*x).cmp_pg(y),
        (Value::Numeric(x), Value::Int(y)) => x.cmp_pg(&int(*y)),
        (Value::Float(_), _) | (_, Value::Float(_))
            if std::mem::discriminant(a) != std::mem::discriminant(b) =>
        {
            value::compare(&Value::Float(float(a)?), &Value::Float(float(b)?))
        }
        _ if std::mem::discriminant(a) == std::mem::discriminant(b) => value::compare(a, b),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::value::oid;

    fn field(type_oid: u32, format: i16) -> Field {
        Field {
            name: b"c".to_vec(),
            type_oid,
            typlen: -1,
            typmod: -1,
            format,
        }
    }

    fn lit(s: &str) -> Operand {
        Operand::Literal(s.into())
    }

    fn cmp(a: Operand, op: CmpOp, b: Operand) -> Filter {
        Filter::Compare(a, op, b)
    }

    #[test]
    fn comparisons_and_logic() {
        let fields = [
            field(oid::INT8, 0),
            field(oid::NUMERIC, 0),
            field(oid::FLOAT8, 1),
            field(oid::TEXT, 0),
            field(oid::BOOL, 0),
            field(oid::INT8, 0),
        ];
        let two = 2.5f64.to_be_bytes();
        let values: [Option<&[u8]>; 6] = [
            Some(b"3"),
            Some(b"10.50"),
            Some(&two),
            Some(b"b"),
            Some(b"t"),
            None,
        ];
        let g = Group {
            fields: &fields,
            values: &values,
        };
        let params = FilterParams(vec![
            (0, Some((1, 4i32.to_be_bytes().to_vec(), None))),
            (1, None),
        ]);
        let check = |f: Filter, want: Option<bool>| {
            assert_eq!(eval(&f, &g, &params).unwrap(), want, "{f:?}");
        };
        use Operand::{Column, Null};
        let param = |i| Operand::Param(i, None);
        check(cmp(Column(0), CmpOp::Gt, lit("2")), Some(true));
        check(cmp(Column(0), CmpOp::Lt, lit("2.5")), Some(false));
        check(cmp(lit("3"), CmpOp::Eq, Column(0)), Some(true));
        check(cmp(Column(1), CmpOp::Eq, lit("10.5")), Some(true));
        check(cmp(Column(1), CmpOp::Gt, lit("10")), Some(true));
        check(cmp(Column(2), CmpOp::LtEq, lit("2.5")), Some(true));
        check(cmp(Column(2), CmpOp::Lt, lit("3")), Some(true));
        check(cmp(Column(3), CmpOp::Gt, lit("a")), Some(true));
        check(cmp(Column(0), CmpOp::Lt, param(0)), Some(true));
        check(cmp(Column(0), CmpOp::Lt, param(1)), None);
        // A float8 parameter (by its cast) against a numeric column.
        let params = FilterParams(vec![(2, Some((1, 10.25f64.to_be_bytes().to_vec(), None)))]);
        let f = cmp(Column(1), CmpOp::Gt, Operand::Param(2, Some(oid::FLOAT8)));
        assert_eq!(eval(&f, &g, &params).unwrap(), Some(true));
        // The same type declared by the Parse instead of a cast; a count against a float8 2.0.
        let declared = |v: f64| {
            FilterParams(vec![(
                2,
                Some((1, v.to_be_bytes().to_vec(), Some(oid::FLOAT8))),
            )])
        };
        let f = cmp(Column(1), CmpOp::Gt, Operand::Param(2, None));
        assert_eq!(eval(&f, &g, &declared(10.25)).unwrap(), Some(true));
        let f = cmp(Column(0), CmpOp::Gt, Operand::Param(2, None));
        assert_eq!(eval(&f, &g, &declared(2.0)).unwrap(), Some(true));
        assert_eq!(eval(&f, &g, &declared(3.5)).unwrap(), Some(false));
        check(cmp(Column(5), CmpOp::Eq, lit("1")), None);
        check(cmp(Column(0), CmpOp::Eq, Null), None);
        check(Filter::Truth(Column(4)), Some(true));
        check(Filter::IsNull(Column(5)), Some(true));
        check(Filter::IsNull(Column(0)), Some(false));
        let unknown = || Box::new(cmp(Column(5), CmpOp::Eq, lit("1")));
        let yes = || Box::new(cmp(Column(0), CmpOp::Eq, lit("3")));
        let no = || Box::new(cmp(Column(0), CmpOp::Eq, lit("4")));
        check(Filter::And(unknown(), no()), Some(false));
        check(Filter::And(unknown(), yes()), None);
        check(Filter::Or(unknown(), yes()), Some(true));
        check(Filter::Or(unknown(), no()), None);
        check(Filter::Not(unknown()), None);
        check(Filter::Not(no()), Some(true));
        assert!(!keeps(&Filter::And(unknown(), yes()), &g, &params).unwrap());
        assert!(eval(&cmp(Column(0), CmpOp::Eq, lit("abc")), &g, &params).is_err());
    }
}
