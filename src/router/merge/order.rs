//! ORDER BY over several shards: each sort key an output column, or a hidden column added to the
//! shard statement; the output column an ORDER BY or GROUP BY expression names.

use sqlparser::ast::{Expr, Ident, OrderByKind, OrderBySort, Query, Select, SelectItem, Value};

use super::refuse;
use crate::protocol::sqlstate;
use crate::router::plan::Refusal;
use crate::router::walk::ident;

/// A sort key: an output column, counted from the start, or one of the hidden columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortColumn {
    pub column: SortRef,
    pub descending: bool,
    pub nulls_first: bool,
    /// Sorted with COLLATE "C" (or "POSIX", "ucs_basic", C.UTF-8): text orders by its bytes whatever the
    /// database's collation, as the merge compares it.
    pub bytewise: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortRef {
    Output(usize),
    Hidden(usize),
}

/// The sort keys of ORDER BY: output columns, or (when the query does not aggregate) expressions
/// added to `hidden`, columns after the client's.
pub(super) fn sort_columns(
    q: &Query,
    select: &Select,
    items: &[Option<&Expr>],
    aggregated: bool,
    hidden: &mut Vec<SelectItem>,
) -> Result<Vec<SortColumn>, Refusal> {
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
            let item =
                position(select, items, &o.expr).and_then(|i| items.get(i).copied().flatten());
            if let Some(c) = foreign_collation(&o.expr).or_else(|| item.and_then(foreign_collation))
            {
                return Err(refuse(&format!("ORDER BY with COLLATE {c}")));
            }
            let (column, bytewise) = match position(select, items, &o.expr) {
                Some(i) => (
                    SortRef::Output(i),
                    collated_bytewise(&o.expr)
                        || items
                            .get(i)
                            .copied()
                            .flatten()
                            .is_some_and(collated_bytewise),
                ),
                None if ordinal(&o.expr).is_some() => {
                    return Err(Refusal::new(
                        sqlstate::INVALID_COLUMN_REFERENCE,
                        format!("ORDER BY position {} is not in select list", o.expr),
                    ));
                }
                None if aggregated => {
                    return Err(refuse(&format!(
                        "ORDER BY {} not in the select list",
                        o.expr
                    )));
                }
                None => {
                    // An alias past a `*` names an expression the shards must compute again.
                    let expr = aliased(select, &o.expr).unwrap_or(&o.expr);
                    hidden.push(SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(format!("__shardgate_sort_{}", hidden.len())),
                    });
                    (
                        SortRef::Hidden(hidden.len() - 1),
                        collated_bytewise(&o.expr),
                    )
                }
            };
            order_by.push(SortColumn {
                column,
                descending,
                nulls_first: o.options.nulls_first.unwrap_or(descending),
                bytewise,
            });
        }
    }
    Ok(order_by)
}

/// `x COLLATE "C"`: a collation that orders text by its bytes (UTF-8 byte order is code point order).
fn collated_bytewise(e: &Expr) -> bool {
    match e {
        Expr::Collate { collation, .. } => bytewise_name(&collation.to_string()),
        Expr::Nested(inner) => collated_bytewise(inner),
        _ => false,
    }
}

fn bytewise_name(collation: &str) -> bool {
    let name = collation.replace('"', "").to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    matches!(
        name,
        "c" | "posix" | "ucs_basic" | "c.utf8" | "c.utf-8" | "pg_c_utf8"
    )
}

/// A COLLATE in `e` naming a collation that does not order text bytewise, which the merge (comparing
/// bytes) cannot follow: the shards' rows come in its order, the database's default says nothing.
pub(super) fn foreign_collation(e: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(e, |e| {
        if let Expr::Collate { collation, .. } = e
            && !bytewise_name(&collation.to_string())
        {
            found = Some(collation.to_string());
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
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
pub(super) fn position(select: &Select, items: &[Option<&Expr>], e: &Expr) -> Option<usize> {
    if let Some(n) = ordinal(e) {
        // The n-th column of the output as PostgreSQL expands it; hidden columns come after all of them.
        // Past the select list (when it has no `*` to expand) there is no such column.
        let expanded = items.iter().any(Option::is_none);
        return (expanded || n <= items.len()).then(|| n - 1);
    }
    find(select, items, e, true)
}

/// The output column that is the same expression as a HAVING operand: HAVING names no output column
/// by alias or ordinal, so those do not count (PostgreSQL would reject the statement).
pub(super) fn same_expression(select: &Select, items: &[Option<&Expr>], e: &Expr) -> Option<usize> {
    find(select, items, e, false)
}

fn find(select: &Select, items: &[Option<&Expr>], e: &Expr, by_alias: bool) -> Option<usize> {
    let text = e.to_string();
    let name = match e {
        Expr::Identifier(i) => Some(ident(i)),
        _ => None,
    };
    // Past a `*` the positions are unknown.
    let known = items
        .iter()
        .position(Option::is_none)
        .unwrap_or(items.len());
    let projection = &select.projection[..known.min(select.projection.len())];
    // A bare name is an output column's name first (PostgreSQL's rule for ORDER BY).
    if by_alias && let Some(n) = &name {
        for (i, item) in projection.iter().enumerate() {
            let output = match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(ident(alias)),
                SelectItem::UnnamedExpr(expr) => unqualified(expr).map(ident),
                _ => None,
            };
            if output.as_ref() == Some(n) {
                return Some(i);
            }
        }
    }
    projection.iter().position(|item| match item {
        SelectItem::ExprWithAlias { expr, .. } => expr.to_string() == text,
        SelectItem::UnnamedExpr(expr) => {
            expr.to_string() == text || name.is_some() && unqualified(expr).map(ident) == name
        }
        _ => false,
    })
}

/// The output column a GROUP BY key is. A bare name is an input column first (PostgreSQL's rule for
/// GROUP BY), so an alias counts only where its own expression does not read a column of that name
/// (`date_trunc('day', at) AS at ... GROUP BY at` groups by the column `at`, not the day).
pub(super) fn group_position(select: &Select, items: &[Option<&Expr>], e: &Expr) -> Option<usize> {
    let i = position(select, items, e)?;
    let shadowing = match (e, select.projection.get(i)?) {
        (Expr::Identifier(name), SelectItem::ExprWithAlias { expr, .. }) => {
            let name = ident(name);
            let mut reads = false;
            let _ = sqlparser::ast::visit_expressions(expr, |x| {
                reads |= unqualified(x).map(ident).as_ref() == Some(&name);
                std::ops::ControlFlow::<()>::Continue(())
            });
            reads && unqualified(expr).map(ident) != Some(name)
        }
        _ => false,
    };
    (!shadowing).then_some(i)
}

/// The expression an output alias stands for, when `e` is a bare name that is one.
fn aliased<'a>(select: &'a Select, e: &Expr) -> Option<&'a Expr> {
    let Expr::Identifier(name) = e else {
        return None;
    };
    let name = ident(name);
    select.projection.iter().find_map(|item| match item {
        SelectItem::ExprWithAlias { alias, expr } if ident(alias) == name => Some(expr),
        _ => None,
    })
}

/// `t.col` answers to `col`.
fn unqualified(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::CompoundIdentifier(parts) => parts.last(),
        Expr::Identifier(i) => Some(i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn bytewise_collations() {
        fn check(expr: &str, want: bool) {
            let e = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(expr)
                .and_then(|mut p| p.parse_expr())
                .unwrap();
            assert_eq!(collated_bytewise(&e), want, "{expr}");
        }
        check("name COLLATE \"C\"", true);
        check("(name COLLATE \"POSIX\")", true);
        check("name COLLATE pg_catalog.\"C\"", true);
        check("name COLLATE ucs_basic", true);
        check("name COLLATE \"en-US-x-icu\"", false);
        check("name", false);
    }
}
