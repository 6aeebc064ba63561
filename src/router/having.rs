//! HAVING over several shards, when groups combine after the merge: the condition as data the merge
//! evaluates on each combined group. Every aggregate it reads becomes a shard column (an output column
//! when the select list has the same one, a hidden one otherwise); the shards run without the HAVING.
//! Pure.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use super::plan::Refusal;

/// A HAVING condition, with SQL's three-valued logic: a comparison with NULL is unknown, and a group
/// is kept only when the whole condition is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare(Operand, CmpOp, Operand),
    IsNull(Operand),
    /// The value of a bool column (`HAVING bool_and(ok)`).
    Truth(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// One side of a comparison. A constant or parameter has no type of its own: it is read as the type
/// of the column it is compared with, as PostgreSQL reads an untyped literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A column of the shard rows, counted from the start (hidden columns after the visible ones).
    Column(usize),
    /// A constant in its text form.
    Literal(String),
    /// A Bind parameter (0-based), with the type OID of its cast (`$1::float8`) when it has one: a
    /// binary value is read as that type.
    Param(usize, Option<u32>),
    Null,
}

impl Filter {
    /// The Bind parameters the condition reads.
    pub fn params(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.visit(&mut |o| {
            if let Operand::Param(i, _) = o {
                out.push(*i);
            }
        });
        out
    }

    /// The columns the condition compares (by order, so text among them depends on the collation).
    pub fn compared_columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.visit_compares(&mut |a, b| {
            for o in [a, b] {
                if let Operand::Column(i) = o {
                    out.push(*i);
                }
            }
        });
        out
    }

    fn visit_compares(&self, f: &mut dyn FnMut(&Operand, &Operand)) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.visit_compares(f);
                b.visit_compares(f);
            }
            Filter::Not(a) => a.visit_compares(f),
            Filter::Compare(a, _, b) => f(a, b),
            Filter::IsNull(_) | Filter::Truth(_) => {}
        }
    }

    fn visit(&self, f: &mut dyn FnMut(&Operand)) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Filter::Not(a) => a.visit(f),
            Filter::Compare(a, _, b) => {
                f(a);
                f(b);
            }
            Filter::IsNull(a) | Filter::Truth(a) => f(a),
        }
    }
}

fn refuse(what: impl std::fmt::Display) -> Refusal {
    Refusal::unsupported(
        format!("HAVING {what} over several shards is not supported yet"),
        "compare aggregates or GROUP BY columns with constants, or add a condition on the shard key",
    )
}

/// The filter of a HAVING expression. `column` gives the shard column of an aggregate or a group key
/// (adding a hidden column when needed), or None for an expression that is neither.
pub(super) fn filter(
    e: &Expr,
    column: &mut dyn FnMut(&Expr) -> Result<Option<usize>, Refusal>,
) -> Result<Filter, Refusal> {
    Ok(match e {
        Expr::Nested(inner) => filter(inner, column)?,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Filter::And(
                Box::new(filter(left, column)?),
                Box::new(filter(right, column)?),
            ),
            BinaryOperator::Or => Filter::Or(
                Box::new(filter(left, column)?),
                Box::new(filter(right, column)?),
            ),
            op => {
                let op = cmp_op(op).ok_or_else(|| refuse(e))?;
                compare(operand(left, column)?, op, operand(right, column)?, e)?
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Filter::Not(Box::new(filter(expr, column)?)),
        Expr::IsNull(a) => Filter::IsNull(operand(a, column)?),
        Expr::IsNotNull(a) => Filter::Not(Box::new(Filter::IsNull(operand(a, column)?))),
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = operand(expr, column)?;
            let within = Filter::And(
                Box::new(compare(x.clone(), CmpOp::GtEq, operand(low, column)?, e)?),
                Box::new(compare(x, CmpOp::LtEq, operand(high, column)?, e)?),
            );
            negate_if(*negated, within)
        }
        Expr::InList {
            expr,
            list,
            negated,
        } if !list.is_empty() => {
            let x = operand(expr, column)?;
            let mut any: Option<Filter> = None;
            for item in list {
                let eq = compare(x.clone(), CmpOp::Eq, operand(item, column)?, e)?;
                any = Some(match any {
                    None => eq,
                    Some(prev) => Filter::Or(Box::new(prev), Box::new(eq)),
                });
            }
            negate_if(*negated, any.expect("list is not empty"))
        }
        other => match operand(other, column)? {
            o @ Operand::Column(_) => Filter::Truth(o),
            _ => return Err(refuse(e)),
        },
    })
}

/// The OID of a type named in a cast, for the types a merge reads.
fn type_oid(name: &str) -> Option<u32> {
    Some(match name.to_ascii_lowercase().as_str() {
        "smallint" | "int2" => 21,
        "int" | "integer" | "int4" => 23,
        "bigint" | "int8" => 20,
        "real" | "float4" => 700,
        "double precision" | "float8" | "float" => 701,
        "numeric" | "decimal" => 1700,
        "text" | "varchar" => 25,
        "boolean" | "bool" => 16,
        "date" => 1082,
        "timestamp" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "uuid" => 2950,
        _ => return None,
    })
}

fn negate_if(negated: bool, f: Filter) -> Filter {
    if negated { Filter::Not(Box::new(f)) } else { f }
}

/// A comparison needs a column on at least one side: that column's type reads the other side.
fn compare(a: Operand, op: CmpOp, b: Operand, e: &Expr) -> Result<Filter, Refusal> {
    if !matches!(a, Operand::Column(_)) && !matches!(b, Operand::Column(_)) {
        return Err(refuse(format!("{e} (no aggregate or group column in it)")));
    }
    Ok(Filter::Compare(a, op, b))
}

fn cmp_op(op: &BinaryOperator) -> Option<CmpOp> {
    Some(match op {
        BinaryOperator::Eq => CmpOp::Eq,
        BinaryOperator::NotEq => CmpOp::NotEq,
        BinaryOperator::Lt => CmpOp::Lt,
        BinaryOperator::LtEq => CmpOp::LtEq,
        BinaryOperator::Gt => CmpOp::Gt,
        BinaryOperator::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

fn operand(
    e: &Expr,
    column: &mut dyn FnMut(&Expr) -> Result<Option<usize>, Refusal>,
) -> Result<Operand, Refusal> {
    if let Some(c) = constant(e) {
        return Ok(c);
    }
    match e {
        Expr::Nested(inner) => operand(inner, column),
        _ => column(e)?
            .map(Operand::Column)
            .ok_or_else(|| refuse(format!("{e} (not an aggregate or a GROUP BY column)"))),
    }
}

/// A constant or parameter, casts ignored: the column compared with gives the type.
fn constant(e: &Expr) -> Option<Operand> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(Operand::Literal(n.clone())),
            Value::SingleQuotedString(s) => Some(Operand::Literal(s.clone())),
            Value::Boolean(b) => Some(Operand::Literal(if *b { "t" } else { "f" }.into())),
            Value::Null => Some(Operand::Null),
            Value::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .map(|n| Operand::Param(n - 1, None)),
            _ => None,
        },
        Expr::Cast {
            expr, data_type, ..
        } => match constant(expr)? {
            Operand::Param(i, _) => Some(Operand::Param(i, type_oid(&data_type.to_string()))),
            // `2.7::int` is 3: a fraction cast to an integer type is not the number as written.
            Operand::Literal(n)
                if matches!(type_oid(&data_type.to_string()), Some(20 | 21 | 23))
                    && n.contains(['.', 'e', 'E']) =>
            {
                None
            }
            other => Some(other),
        },
        Expr::Nested(inner) => constant(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match constant(expr)? {
            Operand::Literal(n) if !n.starts_with('-') => Some(Operand::Literal(format!("-{n}"))),
            _ => None,
        },
        _ => None,
    }
}
