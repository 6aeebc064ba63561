//! `SELECT set_config(name, value, true)`: a statement that only makes settings of the current
//! transaction, as drivers send one to set it from a parameter (`SET LOCAL` takes none). The
//! session holds such settings with a held BEGIN, as it holds `SET LOCAL`. Pure.

use sqlparser::ast::{
    CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query,
    SelectItem, SetExpr, Statement, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::router::plan::{ConfigArg, LocalConfig};
use crate::router::walk::name_of;

/// Whether the one statement `sql` only makes settings of the current transaction (see
/// [`local_config`]): it leaves nothing in the session.
pub(crate) fn is_local_config(sql: &str) -> bool {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql).as_deref() {
        Ok([Statement::Query(q)]) => local_config(q).is_some(),
        _ => false,
    }
}

/// The settings a query makes, if that is all it does: every column a `set_config` with `true` as
/// its third argument, and the first two literals or parameters; no FROM, WHERE or anything else.
pub(crate) fn local_config(q: &Query) -> Option<Vec<LocalConfig>> {
    let plain = q.with.is_none()
        && q.order_by.is_none()
        && q.limit_clause.is_none()
        && q.fetch.is_none()
        && q.locks.is_empty();
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let no_grouping = match &s.group_by {
        GroupByExpr::Expressions(e, m) => e.is_empty() && m.is_empty(),
        GroupByExpr::All(_) => false,
    };
    let bare = plain
        && no_grouping
        && s.from.is_empty()
        && s.selection.is_none()
        && s.having.is_none()
        && s.distinct.is_none()
        && s.into.is_none()
        && s.named_window.is_empty()
        && s.qualify.is_none();
    if !bare || s.projection.is_empty() {
        return None;
    }
    s.projection.iter().map(call).collect()
}

fn call(item: &SelectItem) -> Option<LocalConfig> {
    let (SelectItem::UnnamedExpr(Expr::Function(f))
    | SelectItem::ExprWithAlias {
        expr: Expr::Function(f),
        ..
    }) = item
    else {
        return None;
    };
    let name = name_of(&f.name).to_ascii_lowercase();
    if !matches!(name.as_str(), "set_config" | "pg_catalog.set_config")
        || f.filter.is_some()
        || f.over.is_some()
        || !f.within_group.is_empty()
        || !matches!(f.parameters, FunctionArguments::None)
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let args: Vec<&Expr> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match args.as_slice() {
        [name, value, Expr::Value(local)] if local.value == Value::Boolean(true) => {
            Some(LocalConfig {
                name: arg(name)?,
                value: arg(value)?,
            })
        }
        _ => None,
    }
}

/// A text literal or a parameter, also cast to text.
fn arg(e: &Expr) -> Option<ConfigArg> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(ConfigArg::Text(s.clone())),
            Value::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                Some(ConfigArg::Param(n.checked_sub(1)?))
            }
            _ => None,
        },
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            data_type: DataType::Text,
            format: None,
            ..
        } => arg(expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sql: &str) -> Option<Vec<LocalConfig>> {
        match Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().pop() {
            Some(Statement::Query(q)) => local_config(&q),
            _ => None,
        }
    }

    #[test]
    fn transaction_settings_by_query() {
        use ConfigArg::{Param, Text};
        let one = |name, value| vec![LocalConfig { name, value }];
        assert_eq!(
            of("SELECT set_config('app.tenant', $1, true)"),
            Some(one(Text("app.tenant".into()), Param(0)))
        );
        assert_eq!(
            of("select pg_catalog.set_config($2::text, 'x', TRUE) AS t"),
            Some(one(Param(1), Text("x".into())))
        );
        assert_eq!(
            of("SELECT set_config('a.b', $1, true), set_config('role', $2, true)").map(|c| c.len()),
            Some(2)
        );
    }

    #[test]
    fn anything_more_is_not_one() {
        for sql in [
            "SELECT set_config('a.b', 'x', false)",
            "SELECT set_config('a.b', 'x', $1)",
            "SELECT set_config('a.b', 'x', true), 1",
            "SELECT set_config('a.b', name, true) FROM t",
            "SELECT set_config('a.b', 'x', true) WHERE false",
            "SELECT set_config('a.b', 'x' || 'y', true)",
            "SELECT set_config('a.b', 1::text, true)",
            "SELECT set_config('a.b', 'x', true) LIMIT 0",
            "SELECT my.set_config('a.b', 'x', true)",
            "SELECT set_config('a.b', 'x')",
            "WITH c AS (SELECT 1) SELECT set_config('a.b', 'x', true)",
        ] {
            assert_eq!(of(sql), None, "{sql}");
        }
    }
}
