//! INSERT: the target's key per VALUES row, INSERT ... SELECT linked through the key column, and
//! printing one INSERT per shard with only that shard's rows and renumbered parameters.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Insert, OnConflictAction, OnInsert, SetExpr, Statement, TableObject, Value, VisitMut,
    VisitorMut,
};

use super::facts::Rel;
use super::keys;
use super::plan::{KeySource, Refusal};
use super::walk::{Walker, name_of};

/// What an INSERT's source says about the target's key.
#[derive(Debug)]
pub(crate) enum Source {
    /// VALUES: the key of each row.
    Rows(Vec<KeySource>),
    /// INSERT ... SELECT: linked to the SELECT's key column, if it selects one.
    Select,
    /// The target is not sharded: the key does not matter.
    Unkeyed,
}

/// Walks an INSERT in a scope of its own; returns the target binding and the source.
pub(crate) fn walk(w: &mut Walker, stmt: &Statement) -> Option<(usize, Source)> {
    let Statement::Insert(ins) = stmt else {
        return None;
    };
    let TableObject::TableName(name) = &ins.table else {
        w.facts.refuse(Refusal::unsupported(
            "INSERT into a table function is not supported",
            "insert into a table",
        ));
        return None;
    };
    w.push_scope();
    let alias = ins.table_alias.as_ref().map(|a| &a.alias);
    let target = w.table(name, alias, true, true);
    let source = source(w, ins, target);
    if let Some(OnInsert::OnConflict(c)) = &ins.on {
        if let OnConflictAction::DoUpdate(u) = &c.action {
            for a in &u.assignments {
                if let sqlparser::ast::AssignmentTarget::ColumnName(col) = &a.target {
                    w.refuse_key_assignment(&[target], col, "ON CONFLICT DO UPDATE");
                }
            }
        }
        w.subqueries(c);
    }
    w.subqueries(&ins.returning);
    w.pop_scope();
    Some((target, source))
}

fn source(w: &mut Walker, ins: &Insert, target: usize) -> Source {
    let Rel::Sharded(_) = w.facts.bindings[target].rel else {
        if let Some(q) = &ins.source {
            w.query(q, &[], false);
        }
        return Source::Unkeyed;
    };
    let table = w.facts.bindings[target].name.clone();
    let key = w.key_column(target).unwrap_or_default().to_owned();
    let refuse = |w: &mut Walker, message: String, hint: &str| {
        w.facts.refuse(Refusal::unsupported(message, hint));
        Source::Unkeyed
    };
    if ins.columns.is_empty() {
        return refuse(
            w,
            format!("INSERT into sharded table {table} without a column list"),
            &format!("list the columns, including the shard key {key}"),
        );
    }
    let Some(pos) = ins
        .columns
        .iter()
        .position(|c| name_of(c).rsplit('.').next() == Some(key.as_str()))
    else {
        return refuse(
            w,
            format!(
                "INSERT into {table} does not set the shard key {key} (a DEFAULT key is not supported)"
            ),
            &format!("give {table}.{key} a value"),
        );
    };
    let Some(q) = &ins.source else {
        return refuse(
            w,
            format!("INSERT into {table} with DEFAULT VALUES has no shard key"),
            &format!("give {table}.{key} a value"),
        );
    };
    match q.body.as_ref() {
        SetExpr::Values(v) if q.with.is_none() => {
            let mut rows = Vec::with_capacity(v.rows.len());
            for row in &v.rows {
                let value = match row.content.get(pos) {
                    Some(e) => key_value(w, target, e),
                    None => Err(Refusal::unsupported(
                        format!("an INSERT row into {table} has no value for the shard key {key}"),
                        "give every row a key",
                    )),
                };
                match value {
                    Ok(k) => rows.push(k),
                    Err(r) => {
                        w.facts.refuse(r);
                        return Source::Unkeyed;
                    }
                }
            }
            w.subqueries(v);
            Source::Rows(rows)
        }
        _ => {
            let out = w.query(q, &[], false);
            if let Some(Some(b)) = out.get(pos) {
                w.co_located(target, *b);
            }
            Source::Select
        }
    }
}

fn key_value(w: &Walker, target: usize, e: &Expr) -> Result<KeySource, Refusal> {
    let bd = &w.facts.bindings[target];
    let key = w.key_column(target).unwrap_or_default();
    let Rel::Sharded(i) = bd.rel else {
        return Err(Refusal::unsupported("not a sharded table", ""));
    };
    let crate::sharding::TableKind::Sharded(s) = &w.map().tables[i].kind else {
        return Err(Refusal::unsupported("not a sharded table", ""));
    };
    match keys::value(e, s.key_type) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(Refusal::unsupported(
            format!(
                "the shard key {}.{key} of an INSERT row is `{e}`: only a literal or a parameter can be routed",
                bd.name
            ),
            "compute the key in the application and send it as a value",
        )),
        Err(err) => Err(w.invalid(target, err)),
    }
}

/// An INSERT inside a data-modifying CTE: only one row (or one key) can be routed.
pub(crate) fn nested(w: &mut Walker, stmt: &Statement) {
    match walk(w, stmt) {
        Some((target, Source::Rows(rows))) => {
            let first = rows.first().cloned();
            if rows.iter().all(|r| Some(r) == first.as_ref()) {
                w.facts.restrict(target, rows);
            } else {
                w.facts.refuse(Refusal::unsupported(
                    "a multi-row INSERT inside WITH cannot be split across shards",
                    "send the INSERT on its own",
                ));
            }
        }
        Some((_, Source::Select)) => w.facts.refuse(Refusal::unsupported(
            "INSERT ... SELECT inside WITH is not supported",
            "send the INSERT on its own",
        )),
        _ => {}
    }
}

/// The INSERT with only the rows at `keep`, its parameters renumbered `$1..$k` in order of first
/// appearance; returns the text and, for each new parameter, its original 0-based index.
pub(crate) fn render(template: &Statement, keep: &[usize]) -> (String, Vec<usize>) {
    let mut stmt = template.clone();
    if let Statement::Insert(ins) = &mut stmt
        && let Some(q) = &mut ins.source
        && let SetExpr::Values(v) = q.body.as_mut()
    {
        let rows = std::mem::take(&mut v.rows);
        v.rows = rows
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, r)| r)
            .collect();
    }
    let mut renumber = Renumber::default();
    let _ = stmt.visit(&mut renumber);
    (stmt.to_string(), renumber.original)
}

#[derive(Default)]
struct Renumber {
    original: Vec<usize>,
}

impl VisitorMut for Renumber {
    type Break = ();

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = e
            && let Value::Placeholder(p) = &mut v.value
            && let Some(old) = keys::placeholder(p)
        {
            let new = match self.original.iter().position(|&o| o == old) {
                Some(n) => n,
                None => {
                    self.original.push(old);
                    self.original.len() - 1
                }
            };
            *p = format!("${}", new + 1);
        }
        ControlFlow::Continue(())
    }
}
