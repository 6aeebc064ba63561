//! Reading shard keys out of expressions: a literal, a parameter or a cast of one, as a key of the
//! column's type. Which column an expression names is the walker's business (`walk.rs`).

use sqlparser::ast::{CastKind, DataType, Expr, UnaryOperator, Value};

use super::plan::{KeySource, Refusal};
use crate::protocol::sqlstate;
use crate::sharding::KeyType;

/// A key-shaped value that does not parse for the key's type.
pub(crate) fn invalid(table: &str, key: &str, err: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("shard key {table}.{key}: {err}"),
    )
}

/// The key an expression stands for, if it is a literal, a parameter or a cast of one.
/// `Ok(None)`: not a key value (a function call, another column, a NULL...). `Err`: a literal of the
/// key's own shape that does not parse (`id = 'abc'` on an int8 key).
pub(crate) fn value(expr: &Expr, ty: KeyType) -> Result<Option<KeySource>, String> {
    match expr {
        Expr::Nested(e) => value(e, ty),
        Expr::Value(v) => literal(&v.value, ty, false),
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) if is_int(ty) => {
                    let text = if *op == UnaryOperator::Minus {
                        format!("-{n}")
                    } else {
                        n.clone()
                    };
                    parse(&text, ty)
                }
                _ => Ok(None),
            },
            _ => Ok(None),
        },
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type,
            format: None,
        } if same_family(data_type, ty) => value(expr, ty),
        Expr::TypedString(t) if same_family(&t.data_type, ty) => literal(&t.value.value, ty, true),
        _ => Ok(None),
    }
}

/// `ANY(...)`'s right side: an array parameter, an `ARRAY[...]` of key values, or an array literal.
pub(crate) fn array(expr: &Expr, ty: KeyType) -> Result<Option<Vec<KeySource>>, String> {
    match expr {
        Expr::Nested(e) => array(e, ty),
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => Ok(placeholder(p).map(|i| vec![KeySource::ParamArray(i)])),
            _ => Ok(None),
        },
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type: DataType::Array(_),
            format: None,
        } => array(expr, ty),
        Expr::Array(a) => {
            let mut out = Vec::with_capacity(a.elem.len());
            for e in &a.elem {
                match value(e, ty)? {
                    Some(k) => out.push(k),
                    None => return Ok(None),
                }
            }
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

fn literal(v: &Value, ty: KeyType, typed: bool) -> Result<Option<KeySource>, String> {
    match v {
        Value::Number(n, _) if is_int(ty) => parse(n, ty),
        // A number compared with a text or uuid column is PostgreSQL's type error, not a key.
        Value::Number(..) => Ok(None),
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => parse(s, ty),
        Value::DollarQuotedString(d) => parse(&d.value, ty),
        Value::Placeholder(p) if !typed => Ok(placeholder(p).map(KeySource::Param)),
        _ => Ok(None),
    }
}

fn parse(text: &str, ty: KeyType) -> Result<Option<KeySource>, String> {
    ty.parse_text(text)
        .map(|k| Some(KeySource::Value(k)))
        .map_err(|e| e.to_string())
}

/// `$n` as a 0-based index.
pub(crate) fn placeholder(p: &str) -> Option<usize> {
    p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)
}

fn is_int(ty: KeyType) -> bool {
    matches!(ty, KeyType::Int2 | KeyType::Int4 | KeyType::Int8)
}

/// Whether a cast keeps a key's value: to the key's own family (any integer width for integer
/// keys; plain text or varchar without a length for text; uuid). Casts that may change the value
/// (`::varchar(3)` truncates, `::numeric`) make the expression no key.
fn same_family(dt: &DataType, ty: KeyType) -> bool {
    let name = dt.to_string();
    match KeyType::from_name(&name) {
        Some(t) if is_int(t) => is_int(ty),
        Some(t) => t == ty,
        None => false,
    }
}
