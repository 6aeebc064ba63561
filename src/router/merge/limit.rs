//! LIMIT and OFFSET over several shards: each shard returns its first LIMIT + OFFSET rows, the
//! merge skips OFFSET of them all and stops at LIMIT.

use sqlparser::ast::{Expr, LimitClause, Offset, OffsetRows, Query, Value};

use super::refuse;
use crate::router::plan::Refusal;

/// A LIMIT or OFFSET: a number, or a Bind parameter (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Value(u64),
    Param(usize),
}

/// The client's LIMIT and OFFSET.
pub(super) fn limit_and_offset(q: &Query) -> Result<(Option<Count>, Option<Count>), Refusal> {
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
    Ok((limit, offset))
}

/// Each shard returns the first LIMIT + OFFSET rows of its own; the merge skips OFFSET of them all.
/// Without a LIMIT, or when groups combine across shards first (`aggregated`), the shards return
/// every row; a LIMIT or OFFSET parameter then stays in the statement as `OFFSET 0 * (...)`, so that
/// the client's Bind still fits it (with the type PostgreSQL infers for it), and offsets nothing.
pub(super) fn shard_limit(
    limit: Option<Count>,
    offset: Option<Count>,
    aggregated: bool,
) -> Option<LimitClause> {
    let expr = |c: Count| match c {
        Count::Value(v) => format!("{v}"),
        Count::Param(i) => format!("${}::int8", i + 1),
    };
    let parse = |text: &str| {
        sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .ok()
    };
    if let (Some(l), false) = (limit, aggregated) {
        let text = match offset {
            None => expr(l),
            Some(o) => format!("({} + {})", expr(l), expr(o)),
        };
        return Some(LimitClause::LimitOffset {
            limit: Some(parse(&text)?),
            offset: None,
            limit_by: Vec::new(),
        });
    }
    let params: Vec<String> = [limit, offset]
        .into_iter()
        .flatten()
        .filter(|c| matches!(c, Count::Param(_)))
        .map(expr)
        .collect();
    if params.is_empty() {
        return None;
    }
    Some(LimitClause::LimitOffset {
        limit: None,
        offset: Some(Offset {
            value: parse(&format!("0 * ({})", params.join(" + ")))?,
            rows: OffsetRows::None,
        }),
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
