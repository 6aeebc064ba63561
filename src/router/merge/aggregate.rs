//! Aggregates over several shards: which output columns are aggregates and how each combines
//! (count and sum add up, min and max pick, avg as sum and count); the shard key, over which
//! DISTINCT and grouping need no merge.

use sqlparser::ast::{
    CastKind, DataType, DuplicateTreatment, ExactNumberInfo, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, SelectItem,
};

use super::{ShardKey, refuse};
use crate::router::plan::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    /// Shards return sum(x) in its place and count(x) as hidden column `count`; merged sum / count.
    Avg {
        count: usize,
    },
}

/// An output column `f(args)` as `name(args)` (same alias).
pub(super) fn renamed(item: &SelectItem, name: &str) -> Option<SelectItem> {
    let rename = |e: &Expr| -> Option<Expr> {
        let inner = match e {
            Expr::Nested(inner) => inner.as_ref(),
            other => other,
        };
        let Expr::Function(f) = inner else {
            return None;
        };
        let mut f = f.clone();
        f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
        Some(Expr::Function(f))
    };
    match item {
        SelectItem::UnnamedExpr(e) => Some(SelectItem::ExprWithAlias {
            expr: rename(e)?,
            // PostgreSQL names the column after the function: keep the client's `avg`.
            alias: Ident::new("avg"),
        }),
        SelectItem::ExprWithAlias { expr, alias } => Some(SelectItem::ExprWithAlias {
            expr: rename(expr)?,
            alias: alias.clone(),
        }),
        _ => None,
    }
}

/// The expression of a select item under another alias.
pub(super) fn realias(item: SelectItem, alias: Ident) -> SelectItem {
    match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
            SelectItem::ExprWithAlias { expr, alias }
        }
        other => other,
    }
}

/// The aggregate an output column is, `None` for a plain expression; refused when an aggregate is
/// inside another expression or cannot combine across shards.
pub(super) fn aggregate(e: &Expr, is_key: &dyn Fn(&Expr) -> bool) -> Result<Option<Agg>, Refusal> {
    let e = match e {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    // `count(*)::int`, as node-postgres users write it: the shards cast their counts, which add up
    // to the cast of the total (which fails, as on one server, when it does not fit).
    if let Expr::Cast {
        kind: CastKind::Cast | CastKind::DoubleColon,
        expr,
        data_type,
        format: None,
    } = e
        && exact_for_counts(data_type)
        && aggregate(expr, is_key)? == Some(Agg::Count)
    {
        return Ok(Some(Agg::Count));
    }
    if let Expr::Function(f) = e {
        if f.over.is_some() {
            return Err(refuse("a window function"));
        }
        let name = catalog_name(f);
        if !f.within_group.is_empty() {
            return Err(refuse(&format!("{name}(...) WITHIN GROUP")));
        }
        let agg = match name.as_str() {
            "count" => Some(Agg::Count),
            "sum" => Some(Agg::Sum),
            "min" => Some(Agg::Min),
            "max" => Some(Agg::Max),
            "bool_and" | "every" => Some(Agg::BoolAnd),
            "bool_or" => Some(Agg::BoolOr),
            // The hidden count column is numbered when the shard statement is built.
            "avg" => Some(Agg::Avg { count: 0 }),
            _ => None,
        };
        if let Some(agg) = agg {
            if let FunctionArguments::List(list) = &f.args
                && list.duplicate_treatment == Some(DuplicateTreatment::Distinct)
            {
                // count(DISTINCT key): each key is counted on one shard only, so the counts add up.
                let on_key = matches!(list.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] if is_key(a));
                if !(agg == Agg::Count && on_key) {
                    return Err(refuse(&format!(
                        "{name}(DISTINCT ...) (except count(DISTINCT shard key))"
                    )));
                }
            }
            return Ok(Some(agg));
        }
        if is_aggregate(f) {
            return Err(refuse(&format!("the aggregate {name}()")));
        }
    }
    if contains_aggregate(e) {
        return Err(refuse(&format!("an expression over aggregates ({e})")));
    }
    Ok(None)
}

/// The types a count casts to exactly, so that the shards' cast counts add up to the cast total:
/// the integers, numeric without a typmod, and float8 (exact for counts below 2^53). Not float4,
/// whose sum of cast parts can round otherwise than the cast of the sum, nor a numeric typmod, whose
/// precision the total may exceed although no part does.
fn exact_for_counts(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int2(None)
            | DataType::SmallInt(None)
            | DataType::Int(None)
            | DataType::Int4(None)
            | DataType::Integer(None)
            | DataType::Int8(None)
            | DataType::BigInt(None)
            | DataType::Numeric(ExactNumberInfo::None)
            | DataType::Decimal(ExactNumberInfo::None)
            | DataType::Float8
            | DataType::DoublePrecision
            | DataType::Float(ExactNumberInfo::None)
    )
}

/// A column reference to one of the shard keys (`key`, or `alias.key`).
pub(super) fn shard_key<'k>(e: &Expr, keys: &'k [ShardKey]) -> Option<&'k ShardKey> {
    match e {
        Expr::Identifier(i) => keys
            .iter()
            .find(|k| k.column == i.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [.., alias, col] => keys.iter().find(|k| {
                k.alias.eq_ignore_ascii_case(&alias.value)
                    && k.column == col.value.to_ascii_lowercase()
            }),
            _ => None,
        },
        Expr::Nested(inner) => shard_key(inner, keys),
        _ => None,
    }
}

/// Whether a window function appears anywhere inside (not the word "over" in a string).
pub(super) fn contains_window(e: &Expr) -> bool {
    contains_function(e, |f| f.over.is_some())
}

/// Whether a function call `pick` chooses appears anywhere inside.
fn contains_function(e: &Expr, pick: impl Fn(&Function) -> bool) -> bool {
    sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::Function(f) if pick(f) => std::ops::ControlFlow::Break(()),
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

/// PostgreSQL's built-in aggregates (pg_aggregate, releases 15 to 17). Only count, sum, min, max,
/// avg, bool_and/or and every combine across shards; any other is refused rather than taken for a
/// plain column (which would give one row, or one group, per shard). An aggregate of the
/// application's own (CREATE AGGREGATE) is not known here: see the README.
const AGGREGATES: &[&str] = &[
    "any_value",
    "array_agg",
    "avg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "corr",
    "count",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "dense_rank",
    "every",
    "json_agg",
    "json_agg_strict",
    "json_arrayagg",
    "json_object_agg",
    "json_object_agg_strict",
    "json_object_agg_unique",
    "json_object_agg_unique_strict",
    "json_objectagg",
    "jsonb_agg",
    "jsonb_agg_strict",
    "jsonb_object_agg",
    "jsonb_object_agg_strict",
    "jsonb_object_agg_unique",
    "jsonb_object_agg_unique_strict",
    "max",
    "min",
    "mode",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "range_agg",
    "range_intersect_agg",
    "rank",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
    "xmlagg",
];

/// A function's name as the builtins are matched: lower case, without a `pg_catalog` schema
/// (`pg_catalog.sum` is the builtin `sum`); any other schema is kept (`app.sum` is not).
fn catalog_name(f: &Function) -> String {
    match f.name.0.as_slice() {
        [schema, _]
            if schema
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog")) =>
        {
            bare_name(f)
        }
        _ => f.name.to_string().to_ascii_lowercase(),
    }
}

/// A function's own name, without its schema, lower case (`pg_catalog."SUM"` is `sum`).
pub(super) fn bare_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_aggregate(f: &Function) -> bool {
    AGGREGATES.contains(&bare_name(f).as_str())
}

/// Whether an aggregate or window function appears anywhere inside.
fn contains_aggregate(e: &Expr) -> bool {
    contains_function(e, |f| {
        f.over.is_some() || !f.within_group.is_empty() || is_aggregate(f)
    })
}
