//! How the rows of a read that runs on several shards become the rows one PostgreSQL would return: the
//! statement every shard runs (LIMIT widened by OFFSET, sort keys added as hidden columns), the sort keys,
//! LIMIT and OFFSET, and how aggregate columns combine. Made from the syntax tree at plan time; what
//! cannot be merged exactly is refused with the reason. Pure.
//!
//! - `order`: ORDER BY as sort keys. `limit`: LIMIT and OFFSET, and the shards' LIMIT.
//! - `aggregate`: which output columns are aggregates and how each combines.

mod aggregate;
mod hidden;
mod limit;
mod order;
#[cfg(test)]
mod tests;

use sqlparser::ast::{
    Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query,
    Select, SelectItem, SetExpr, Value,
};

use super::having::{self, Filter};
use super::plan::Refusal;
use super::walk::ident;
pub use aggregate::Agg;
use aggregate::{aggregate, bare_name, contains_window, shard_key};
use hidden::Hidden;
pub use limit::Count;
use limit::{limit_and_offset, shard_limit};
pub use order::{SortColumn, SortRef};
use order::{foreign_collation, group_position, same_expression, sort_columns};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// What every shard runs.
    pub shard_sql: String,
    pub order_by: Vec<SortColumn>,
    pub limit: Option<Count>,
    pub offset: Option<Count>,
    /// Per shard column (visible, then hidden) when the query aggregates: how its shard values combine
    /// (`None` for a group key). Empty for a query without aggregates.
    pub aggregates: Vec<Option<Agg>>,
    /// Aggregates with GROUP BY: rows with equal group keys combine into one.
    pub grouped: bool,
    /// HAVING, applied to each combined group (the shards run without it).
    pub having: Option<Filter>,
    /// Columns added at the end of the shard query (sort keys, the aggregates HAVING reads, avg's
    /// counts); stripped before the client sees rows.
    pub hidden: usize,
    /// FOR UPDATE / FOR SHARE: the read locks rows, which only its transaction may hold.
    pub locks_rows: bool,
}

fn refuse(what: &str) -> Refusal {
    Refusal::unsupported(
        format!("{what} over several shards is not supported yet"),
        "add a condition on the shard key, or a /* shardgate: shard=NAME */ hint",
    )
}

/// A sharded table's key column as the statement refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardKey {
    /// The alias, or the table's last name part (folded).
    pub alias: String,
    pub column: String,
    /// The table is on the side of an outer join that may come out NULL.
    pub nullable: bool,
}

/// The merge plan of a read that may run on several shards, whose sharded tables have `keys`.
pub(crate) fn merge_plan(q: &Query, keys: &[ShardKey]) -> Result<MergePlan, Refusal> {
    if q.with.is_some() {
        return Err(refuse("a WITH query"));
    }
    if q.fetch.is_some() {
        return Err(refuse("FETCH FIRST"));
    }
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(refuse("UNION, INTERSECT, EXCEPT or VALUES"));
    };
    let is_key = |e: &Expr| shard_key(e, keys).is_some();
    // A shard key value lives on one shard, but the NULLs an outer join fills in come from every
    // shard: the shortcuts below (rows or groups by the key are whole on one shard) take keys of the
    // tables whose rows are kept only.
    let whole_by_key = |e: &Expr| shard_key(e, keys).is_some_and(|k| !k.nullable);
    match &select.distinct {
        None | Some(Distinct::All) => {}
        // Rows that differ in the shard key live on different shards or on the same one: each shard's
        // DISTINCT rows are distinct from every other shard's, so they only need concatenating.
        Some(Distinct::Distinct)
            if select.projection.iter().any(|i| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    whole_by_key(e)
                }
                _ => false,
            }) => {}
        Some(_) => return Err(refuse("DISTINCT (except over the shard key)")),
    }
    if !select.named_window.is_empty() || select.qualify.is_some() {
        return Err(refuse("a window"));
    }
    let items: Vec<Option<&Expr>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .collect();
    let wildcard = items.iter().any(Option::is_none);
    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
        GroupByExpr::Expressions(..) | GroupByExpr::All(_) => {
            return Err(refuse("GROUP BY ROLLUP, CUBE, GROUPING SETS or ALL"));
        }
    };
    // Grouped by the shard key, every group lives on one shard: each shard's groups (with their HAVING,
    // any aggregate) are final, and the rows merge like rows without aggregates.
    let whole_groups = group_by.iter().any(whole_by_key);
    let aggregates = if whole_groups {
        for e in items.iter().flatten() {
            if contains_window(e) {
                return Err(refuse("a window function"));
            }
        }
        vec![None; items.len()]
    } else {
        items
            .iter()
            .map(|e| e.map_or(Ok(None), |e| aggregate(e, &is_key)))
            .collect::<Result<Vec<_>, _>>()?
    };
    // min/max and HAVING compare text as the merge does, bytewise, not in a collation the query names.
    for (e, agg) in items.iter().zip(&aggregates) {
        if let (Some(e), Some(Agg::Min | Agg::Max)) = (e, agg)
            && let Some(c) = foreign_collation(e)
        {
            return Err(refuse(&format!("min()/max() with COLLATE {c}")));
        }
    }
    let aggregated = !whole_groups
        && (aggregates.iter().any(Option::is_some)
            || !group_by.is_empty()
            || select.having.is_some());
    if aggregated && let Some(c) = select.having.as_ref().and_then(foreign_collation) {
        return Err(refuse(&format!("HAVING with COLLATE {c}")));
    }
    if aggregated && wildcard {
        return Err(refuse("* with aggregates"));
    }
    // Every group key must be an output column, so that shard rows of one group can be recognised;
    // and every other plain output column must follow from the keys, or it would split a group
    // where shards differ in it (now(), random(), current_database()).
    if aggregated {
        let mut keys: Vec<&Expr> = Vec::new();
        for g in &group_by {
            let Some(i) = group_position(select, &items, g) else {
                return Err(refuse(&format!("GROUP BY {g} not in the select list")));
            };
            keys.extend(std::iter::once(g).chain(items.get(i).copied().flatten()));
        }
        for (e, agg) in items.iter().zip(&aggregates) {
            if let (Some(e), None) = (e, agg)
                && !follows_from(e, &keys)
            {
                return Err(refuse(&format!(
                    "{e} next to aggregates, being neither a GROUP BY expression nor made of them"
                )));
            }
        }
    }
    let mut hidden = Hidden::default();
    let having = match &select.having {
        Some(h) if aggregated => {
            let mut column = |e: &Expr| -> Result<Option<usize>, Refusal> {
                if let Some(i) = same_expression(select, &items, e) {
                    return Ok(Some(i));
                }
                match aggregate(e, &is_key)? {
                    Some(agg) => hidden.having_aggregate(e, agg, items.len()).map(Some),
                    None => Ok(None),
                }
            };
            Some(having::filter(h, &mut column)?)
        }
        _ => None,
    };
    let order_by = sort_columns(q, select, &items, aggregated, &mut hidden.items)?;
    let (limit, offset) = limit_and_offset(q)?;
    let mut aggregates = aggregates;
    let mut shard = q.clone();
    if let SetExpr::Select(s) = shard.body.as_mut() {
        shard_select(s, having.as_ref(), &mut aggregates, &mut hidden)?;
    }
    shard.limit_clause = shard_limit(limit, offset, aggregated);
    Ok(MergePlan {
        shard_sql: shard.to_string(),
        order_by,
        limit,
        offset,
        aggregates: if aggregated {
            // Every hidden column of an aggregating query is an aggregate (no hidden sort keys).
            aggregates.extend(hidden.aggs.into_iter().map(Some));
            aggregates
        } else {
            Vec::new()
        },
        grouped: !group_by.is_empty(),
        having,
        hidden: hidden.items.len(),
        locks_rows: !q.locks.is_empty(),
    })
}

/// Functions whose value may differ from shard to shard for the same arguments.
const VARIES_BY_SHARD: &[&str] = &[
    "now",
    "random",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "current_database",
    "current_setting",
    "pg_backend_pid",
    "inet_server_addr",
    "inet_server_port",
    "txid_current",
    "pg_current_xact_id",
    "nextval",
    "currval",
    "lastval",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "version",
    "pg_postmaster_start_time",
    "current_timestamp",
    "current_time",
    "current_date",
    "localtime",
    "localtimestamp",
];

/// Whether `e` is the same for every row of a group wherever it comes from: a group key (as written,
/// or the same column however qualified or cased), a constant, or operators, casts, CASE and
/// function calls over those, except functions that differ from shard to shard (`now()`). `keys`:
/// the group key expressions. (sqlparser's equality ignores source positions; comparing printed
/// text instead would print every subtree at every level of a long operator chain.)
fn follows_from(e: &Expr, keys: &[&Expr]) -> bool {
    if keys.iter().any(|k| *k == e || same_column(k, e)) {
        return true;
    }
    match e {
        Expr::Value(_) | Expr::TypedString(_) => true,
        Expr::BinaryOp { left, right, .. } => follows_from(left, keys) && follows_from(right, keys),
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
            follows_from(expr, keys)
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => operand
            .iter()
            .chain(else_result.iter())
            .map(|b| b.as_ref())
            .chain(conditions.iter().flat_map(|c| [&c.condition, &c.result]))
            .all(|x| follows_from(x, keys)),
        Expr::Function(f) => {
            let args_follow = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(list) => list.args.iter().all(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(x),
                        ..
                    } => follows_from(x, keys),
                    _ => false,
                }),
                FunctionArguments::Subquery(_) => false,
            };
            f.over.is_none()
                && f.filter.is_none()
                && !VARIES_BY_SHARD.contains(&bare_name(f).as_str())
                && args_follow
        }
        _ => false,
    }
}

/// Two references to one column: `grp`, `i.grp` and `GRP` are the same (the query has one such
/// column, or PostgreSQL would have refused it as ambiguous).
fn same_column(a: &Expr, b: &Expr) -> bool {
    fn parts(e: &Expr) -> Option<&[Ident]> {
        match e {
            Expr::Identifier(i) => Some(std::slice::from_ref(i)),
            Expr::CompoundIdentifier(p) => Some(p.as_slice()),
            _ => None,
        }
    }

    let (Some(x), Some(y)) = (parts(a), parts(b)) else {
        return false;
    };
    let same = |p: &[Ident], q: &[Ident]| p.iter().zip(q).all(|(m, n)| ident(m) == ident(n));
    same(&x[x.len() - 1..], &y[y.len() - 1..])
        && (x.len() == 1 || y.len() == 1 || x.len() == y.len() && same(x, y))
}

/// The SELECT the shards run: without the HAVING the merge applies (one with parameters stays as
/// `(...) OR true`, which PostgreSQL folds away, so that the parameters keep the types it infers for
/// them); avg(x) as sum(x) in its place, with count(x) hidden; the hidden columns last.
fn shard_select(
    s: &mut Select,
    having: Option<&Filter>,
    aggregates: &mut [Option<Agg>],
    hidden: &mut Hidden,
) -> Result<(), Refusal> {
    match (having, s.having.take()) {
        (Some(f), Some(h)) if !f.params().is_empty() => {
            s.having = Some(Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(h))),
                op: sqlparser::ast::BinaryOperator::Or,
                right: Box::new(Expr::value(Value::Boolean(true))),
            });
        }
        (Some(_), _) => {}
        (None, h) => s.having = h,
    }
    for (j, agg) in aggregates.iter_mut().enumerate() {
        if let Some(Agg::Avg { count }) = agg {
            let (sum, at) = hidden.avg_count(j, &s.projection[j])?;
            s.projection[j] = sum;
            *count = at;
        }
    }
    s.projection.extend(hidden.items.iter().cloned());
    Ok(())
}
