//! How the rows of a read that runs on several shards become the rows one PostgreSQL would return: the
//! statement every shard runs (LIMIT widened by OFFSET, sort keys added as hidden columns), the sort keys,
//! LIMIT and OFFSET, and how aggregate columns combine. Made from the syntax tree at plan time; what
//! cannot be merged exactly is refused with the reason. Pure.

use sqlparser::ast::{
    Distinct, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, LimitClause, OrderByKind, OrderBySort, Query, SelectItem, SetExpr, Value,
};

use super::having::{self, Filter};
use super::plan::Refusal;

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
    /// Columns added at the end of the shard query for sorting; stripped before the client sees rows.
    pub hidden: usize,
}

/// A sort key: an output column, counted from the start, or one of the hidden columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortColumn {
    pub column: SortRef,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortRef {
    Output(usize),
    Hidden(usize),
}

/// A LIMIT or OFFSET: a number, or a Bind parameter (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Value(u64),
    Param(usize),
}

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

fn refuse(what: &str) -> Refusal {
    Refusal::unsupported(
        format!("{what} over several shards is not supported yet"),
        "add a condition on the shard key, or a /* shardgate: shard=NAME */ hint",
    )
}

/// The merge plan of a read that may run on several shards. `keys`: the (alias, column) shard keys of
/// its sharded tables.
pub(crate) fn merge_plan(q: &Query, keys: &[(String, String)]) -> Result<MergePlan, Refusal> {
    if q.with.is_some() {
        return Err(refuse("a WITH query"));
    }
    if q.fetch.is_some() {
        return Err(refuse("FETCH FIRST"));
    }
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(refuse("UNION, INTERSECT, EXCEPT or VALUES"));
    };
    let is_key = |e: &Expr| is_shard_key(e, keys);
    match &select.distinct {
        None | Some(Distinct::All) => {}
        // Rows that differ in the shard key live on different shards or on the same one: each shard's
        // DISTINCT rows are distinct from every other shard's, so they only need concatenating.
        Some(Distinct::Distinct)
            if select.projection.iter().any(|i| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => is_key(e),
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
    let whole_groups = group_by.iter().any(&is_key);
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
    let aggregated = !whole_groups
        && (aggregates.iter().any(Option::is_some)
            || !group_by.is_empty()
            || select.having.is_some());
    if aggregated && wildcard {
        return Err(refuse("* with aggregates"));
    }
    // Every group key must be an output column, so that shard rows of one group can be recognised.
    if aggregated {
        for g in &group_by {
            if position(select, &items, g).is_none() {
                return Err(refuse(&format!("GROUP BY {g} not in the select list")));
            }
        }
    }
    let mut shard = q.clone();
    // Columns after the client's, aliased, with how each combines when the query aggregates.
    let mut hidden: Vec<SelectItem> = Vec::new();
    let mut hidden_aggs: Vec<Agg> = Vec::new();
    let having = match &select.having {
        Some(h) if aggregated => {
            let mut column = |e: &Expr| -> Result<Option<usize>, Refusal> {
                if let Some(i) = position(select, &items, e) {
                    return Ok(Some(i));
                }
                let Some(agg) = aggregate(e, &is_key)? else {
                    return Ok(None);
                };
                let at = items.len() + hidden.len();
                let alias = |k: usize| Ident::new(format!("__shardgate_having_{k}"));
                if let Agg::Avg { .. } = agg {
                    // avg(x) as sum(x) and count(x), divided after merging.
                    let item = SelectItem::UnnamedExpr(e.clone());
                    let (Some(sum), Some(cnt)) = (renamed(&item, "sum"), renamed(&item, "count"))
                    else {
                        return Err(refuse("this avg()"));
                    };
                    hidden.push(realias(sum, alias(hidden.len())));
                    hidden_aggs.push(Agg::Avg {
                        count: hidden.len(),
                    });
                    hidden.push(realias(cnt, alias(hidden.len())));
                    hidden_aggs.push(Agg::Count);
                } else {
                    hidden.push(SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: alias(hidden.len()),
                    });
                    hidden_aggs.push(agg);
                }
                Ok(Some(at))
            };
            Some(having::filter(h, &mut column)?)
        }
        _ => None,
    };
    let mut order_by = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(exprs) = &ob.kind else {
            return Err(refuse("ORDER BY ALL"));
        };
        for o in exprs {
            let descending = match o.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return Err(refuse("ORDER BY ... USING")),
            };
            let column = match position(select, &items, &o.expr) {
                Some(i) => SortRef::Output(i),
                None if aggregated => {
                    return Err(refuse(&format!(
                        "ORDER BY {} not in the select list",
                        o.expr
                    )));
                }
                None => {
                    hidden.push(SelectItem::ExprWithAlias {
                        expr: o.expr.clone(),
                        alias: Ident::new(format!("__shardgate_sort_{}", hidden.len())),
                    });
                    SortRef::Hidden(hidden.len() - 1)
                }
            };
            order_by.push(SortColumn {
                column,
                descending,
                nulls_first: o.options.nulls_first.unwrap_or(descending),
            });
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, None),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) if limit_by.is_empty() => (
            limit.as_ref().map(count).transpose()?.flatten(),
            offset
                .as_ref()
                .map(|o| count(&o.value))
                .transpose()?
                .flatten(),
        ),
        Some(_) => return Err(refuse("this LIMIT form")),
    };
    let mut aggregates = aggregates;
    if let SetExpr::Select(s) = shard.body.as_mut() {
        // The shards run without the HAVING; one with parameters stays as `(...) OR true`, which
        // PostgreSQL folds away, so that the parameters keep the types it infers for them.
        match (&having, s.having.take()) {
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
        // avg(x) runs as sum(x) in its place, with count(x) after every other column.
        for (j, agg) in aggregates.iter_mut().enumerate() {
            let Some(Agg::Avg { count }) = agg else {
                continue;
            };
            let (Some(sum), Some(cnt)) = (
                renamed(&s.projection[j], "sum"),
                renamed(&s.projection[j], "count"),
            ) else {
                return Err(refuse("this avg()"));
            };
            *count = hidden.len();
            s.projection[j] = sum;
            hidden.push(realias(cnt, Ident::new(format!("__shardgate_count_{j}"))));
            hidden_aggs.push(Agg::Count);
        }
        s.projection.extend(hidden.iter().cloned());
    }
    shard.limit_clause = if aggregated {
        // Groups combine across shards before LIMIT and OFFSET can apply.
        None
    } else {
        shard_limit(limit, offset)
    };
    Ok(MergePlan {
        shard_sql: shard.to_string(),
        order_by,
        limit,
        offset,
        aggregates: if aggregated {
            // Every hidden column of an aggregating query is an aggregate (no hidden sort keys).
            aggregates.extend(hidden_aggs.into_iter().map(Some));
            aggregates
        } else {
            Vec::new()
        },
        grouped: !group_by.is_empty(),
        having,
        hidden: hidden.len(),
    })
}

/// An output column `f(args)` as `name(args)` (same alias).
fn renamed(item: &SelectItem, name: &str) -> Option<SelectItem> {
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
fn realias(item: SelectItem, alias: Ident) -> SelectItem {
    match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
            SelectItem::ExprWithAlias { expr, alias }
        }
        other => other,
    }
}

/// Each shard returns the first LIMIT + OFFSET rows of its own; the merge skips OFFSET of them all.
fn shard_limit(limit: Option<Count>, offset: Option<Count>) -> Option<LimitClause> {
    let limit = limit?;
    let expr = |c: Count| match c {
        Count::Value(v) => format!("{v}"),
        Count::Param(i) => format!("${}::int8", i + 1),
    };
    let text = match offset {
        None => expr(limit),
        Some(o) => format!("({} + {})", expr(limit), expr(o)),
    };
    let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .ok()?;
    Some(LimitClause::LimitOffset {
        limit: Some(parsed),
        offset: None,
        limit_by: Vec::new(),
    })
}

fn count(e: &Expr) -> Result<Option<Count>, Refusal> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<u64>()
                .map(|n| Some(Count::Value(n)))
                .map_err(|_| refuse("a LIMIT that is not a whole number")),
            Value::Null => Ok(None),
            Value::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .map(|n| Some(Count::Param(n - 1)))
                .ok_or_else(|| refuse("this LIMIT parameter")),
            _ => Err(refuse("this LIMIT")),
        },
        Expr::Cast { expr, .. } => count(expr),
        _ => Err(refuse("a computed LIMIT or OFFSET")),
    }
}

/// `ORDER BY 2`: the 1-based output column.
fn ordinal(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok().filter(|&n| n > 0),
            _ => None,
        },
        _ => None,
    }
}

/// The output column an ORDER BY / GROUP BY expression names: by ordinal, by alias, or by being the
/// same expression; only while every column before it is one column (no `*`).
fn position(select: &sqlparser::ast::Select, items: &[Option<&Expr>], e: &Expr) -> Option<usize> {
    if let Some(n) = ordinal(e) {
        // The n-th column of the output as PostgreSQL expands it; hidden columns come after all of them.
        return Some(n - 1);
    }
    let text = e.to_string();
    let name = match e {
        Expr::Identifier(i) => Some(i.value.as_str()),
        _ => None,
    };
    for (i, item) in select.projection.iter().enumerate() {
        if items[..i].iter().any(Option::is_none) {
            return None;
        }
        let hit = match item {
            SelectItem::ExprWithAlias { alias, expr } => {
                name.is_some_and(|n| n == alias.value) || expr.to_string() == text
            }
            SelectItem::UnnamedExpr(expr) => {
                expr.to_string() == text || unqualified(expr).is_some_and(|c| Some(c) == name)
            }
            _ => false,
        };
        if hit {
            return Some(i);
        }
    }
    None
}

/// `t.col` answers to `col`.
fn unqualified(e: &Expr) -> Option<&str> {
    match e {
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.as_str()),
        Expr::Identifier(i) => Some(i.value.as_str()),
        _ => None,
    }
}

/// The aggregate an output column is, `None` for a plain expression; refused when an aggregate is
/// inside another expression or cannot combine across shards.
fn aggregate(e: &Expr, is_key: &dyn Fn(&Expr) -> bool) -> Result<Option<Agg>, Refusal> {
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
fn is_shard_key(e: &Expr, keys: &[(String, String)]) -> bool {
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

fn contains_window(e: &Expr) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Statement;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn check(sql: &str, want: &str) {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let Statement::Query(q) = stmt else { panic!() };
        let got = match merge_plan(&q, &[("t".into(), "id".into())]) {
            Ok(p) => format!(
                "{} | order {:?} limit {:?} offset {:?} aggs {:?} grouped {} hidden {} having {:?}",
                p.shard_sql,
                p.order_by
                    .iter()
                    .map(|k| (k.column, k.descending, k.nulls_first))
                    .collect::<Vec<_>>(),
                p.limit,
                p.offset,
                p.aggregates,
                p.grouped,
                p.hidden,
                p.having
            ),
            Err(r) => format!("refused: {}", r.message),
        };
        assert!(
            got.starts_with(want),
            "{sql}\n  got:  {got}\n  want: {want}"
        );
    }

    #[test]
    fn plans() {
        check(
            "SELECT id, email FROM users ORDER BY email DESC LIMIT 10 OFFSET 5",
            "SELECT id, email FROM users ORDER BY email DESC LIMIT (10 + 5) | order [(Output(1), true, true)] limit Some(Value(10)) offset Some(Value(5)) aggs [] grouped false hidden 0",
        );
        check(
            "SELECT * FROM users ORDER BY id",
            "SELECT *, id AS __shardgate_sort_0 FROM users ORDER BY id | order [(Hidden(0), false, false)]",
        );
        check(
            "SELECT id FROM users ORDER BY 1 NULLS FIRST LIMIT $1",
            "SELECT id FROM users ORDER BY 1 NULLS FIRST LIMIT $1::INT8 | order [(Output(0), false, true)] limit Some(Param(0))",
        );
        check(
            "SELECT u.id AS k FROM users u ORDER BY k",
            "SELECT u.id AS k FROM users u ORDER BY k | order [(Output(0), false, false)]",
        );
        check(
            "SELECT count(*), sum(x), min(y) FROM t",
            "SELECT count(*), sum(x), min(y) FROM t | order [] limit None offset None aggs [Some(Count), Some(Sum), Some(Min)] grouped false",
        );
        check(
            "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC LIMIT 3",
            "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC | order [(Output(1), true, true)] limit Some(Value(3)) offset None aggs [None, Some(Count)] grouped true",
        );
        check(
            "SELECT a FROM t GROUP BY b",
            "refused: GROUP BY b not in the select list",
        );
        check(
            "SELECT g, avg(x) FROM t GROUP BY g",
            "SELECT g, sum(x) AS avg, count(x) AS __shardgate_count_1 FROM t GROUP BY g | order [] limit None offset None aggs [None, Some(Avg { count: 0 }), Some(Count)] grouped true hidden 1",
        );
        check(
            "SELECT count(DISTINCT x) FROM t",
            "refused: count(DISTINCT ...)",
        );
        check("SELECT DISTINCT a FROM t", "refused: DISTINCT");
        check("SELECT a FROM t UNION SELECT a FROM u", "refused: UNION");
        check(
            "SELECT count(*) + 1 FROM t",
            "refused: an expression over aggregates",
        );
        check(
            "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1",
            "SELECT a, count(*) FROM t GROUP BY a | order [] limit None offset None aggs [None, Some(Count)] grouped true hidden 0 having Some(Compare(Column(1), Gt, Literal(\"1\")))",
        );
        check(
            "SELECT a FROM t GROUP BY a HAVING avg(x) >= $1 AND NOT max(y) IS NULL",
            "SELECT a, sum(x) AS __shardgate_having_0, count(x) AS __shardgate_having_1, max(y) AS __shardgate_having_2 FROM t GROUP BY a HAVING (avg(x) >= $1 AND NOT max(y) IS NULL) OR true | order [] limit None offset None aggs [None, Some(Avg { count: 1 }), Some(Count), Some(Max)] grouped true hidden 3 having Some(And(Compare(Column(1), GtEq, Param(0, None)), Not(IsNull(Column(3)))))",
        );
        check(
            "SELECT sum(x) FROM t HAVING count(*) BETWEEN -1 AND 10",
            "SELECT sum(x), count(*) AS __shardgate_having_0 FROM t | order [] limit None offset None aggs [Some(Sum), Some(Count)] grouped false hidden 1 having Some(And(Compare(Column(1), GtEq, Literal(\"-1\")), Compare(Column(1), LtEq, Literal(\"10\"))))",
        );
        check(
            "SELECT a, count(*) FROM t GROUP BY a HAVING sum(x) / count(*) > 1",
            "refused: an expression over aggregates (sum(x) / count(*))",
        );
        check(
            "SELECT a, count(*) FROM t GROUP BY a HAVING b > 1",
            "refused: HAVING b (not an aggregate or a GROUP BY column)",
        );
        check(
            "SELECT a, count(*) FROM t GROUP BY a HAVING 1 = 1",
            "refused: HAVING 1 = 1 (no aggregate",
        );
        check(
            "SELECT id, count(*) FROM t GROUP BY id HAVING count(*) > 1",
            "SELECT id, count(*) FROM t GROUP BY id HAVING count(*) > 1 | order [] limit None offset None aggs [] grouped true hidden 0 having None",
        );
        check(
            "SELECT a, count(*) FROM t GROUP BY a ORDER BY sum(b)",
            "refused: ORDER BY sum(b) not in the select list",
        );
    }
}
