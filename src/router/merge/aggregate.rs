//! Aggregates over several shards: which output columns are aggregates and how each combines
//! (count and sum add up, min and max pick, avg as sum and count); the shard key, over which
//! DISTINCT and grouping need no merge.

use sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, SelectItem,
};

use super::refuse;
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
    if let Expr::Function(f) = e {
        if f.over.is_some() {
            return Err(refuse("a window function"));
        }
        let name = f.name.to_string().to_ascii_lowercase();
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
    }
    if contains_aggregate(e) {
        return Err(refuse(&format!("an expression over aggregates ({e})")));
    }
    Ok(None)
}

/// A column reference to one of the shard keys (`key`, or `alias.key`).
pub(super) fn is_shard_key(e: &Expr, keys: &[(String, String)]) -> bool {
    match e {
        Expr::Identifier(i) => keys.iter().any(|(_, k)| *k == i.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [.., alias, col] => keys.iter().any(|(a, k)| {
                a.eq_ignore_ascii_case(&alias.value) && *k == col.value.to_ascii_lowercase()
            }),
            _ => false,
        },
        Expr::Nested(inner) => is_shard_key(inner, keys),
        _ => false,
    }
}

pub(super) fn contains_window(e: &Expr) -> bool {
    e.to_string().to_ascii_lowercase().contains(" over ")
}

/// Whether an aggregate or window function appears anywhere inside.
fn contains_aggregate(e: &Expr) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    [
        "count(",
        "sum(",
        "min(",
        "max(",
        "avg(",
        "bool_and(",
        "bool_or(",
        "every(",
        " over ",
        "array_agg(",
        "string_agg(",
        "json_agg(",
        "jsonb_agg(",
    ]
    .iter()
    .any(|f| text.contains(f))
}
