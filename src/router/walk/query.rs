//! Query blocks: WITH (each CTE body a block that nothing outside filters), set operations (neither
//! side filters anything outside), SELECT (its FROM bound in a scope of its own, its WHERE read).

use sqlparser::ast::{Query, Select, SetExpr};

use super::{KeyRef, Walker, ident};
use crate::router::plan::Refusal;

impl Walker<'_> {
    /// Walks a query; returns, per output column, the binding whose key column it is.
    pub(crate) fn query(
        &mut self,
        q: &Query,
        inherited: &[usize],
        top: bool,
    ) -> Vec<Option<KeyRef>> {
        let pushed = q.with.is_some();
        if let Some(with) = &q.with {
            self.ctes.push(
                with.cte_tables
                    .iter()
                    .map(|c| ident(&c.alias.name))
                    .collect(),
            );
            for cte in &with.cte_tables {
                // A CTE body is evaluated once, whatever references it: nothing outside filters it.
                self.query(&cte.query, &[], false);
            }
        }
        let out = self.set_expr(&q.body, inherited, top);
        self.subqueries(&q.order_by);
        self.subqueries(&q.limit_clause);
        self.subqueries(&q.fetch);
        if pushed {
            self.ctes.pop();
        }
        out
    }

    fn set_expr(&mut self, s: &SetExpr, inherited: &[usize], top: bool) -> Vec<Option<KeyRef>> {
        match s {
            SetExpr::Select(sel) => self.select(sel, inherited, top),
            SetExpr::Query(q) => self.query(q, inherited, top),
            SetExpr::SetOperation { left, right, .. } => {
                // Either side may produce a row: neither filters anything outside.
                self.set_expr(left, &[], false);
                self.set_expr(right, &[], false);
                Vec::new()
            }
            SetExpr::Values(v) => {
                self.subqueries(v);
                Vec::new()
            }
            SetExpr::Insert(stmt) | SetExpr::Update(stmt) | SetExpr::Delete(stmt) => {
                self.dml(stmt, false);
                Vec::new()
            }
            SetExpr::Table(_) | SetExpr::Merge(_) => {
                self.facts.refuse(Refusal::unsupported(
                    "this query form is not supported by the router",
                    "add /* shardgate: shard=NAME */ to choose the shard",
                ));
                Vec::new()
            }
        }
    }

    fn select(&mut self, sel: &Select, inherited: &[usize], top: bool) -> Vec<Option<KeyRef>> {
        self.push_scope();
        for twj in &sel.from {
            self.join_tree(twj, inherited, top);
        }
        if let Some(w) = &sel.selection {
            let mut filtered = self.scopes.last().cloned().unwrap_or_default();
            filtered.extend_from_slice(inherited);
            self.condition(w, &filtered);
        }
        let out = sel
            .projection
            .iter()
            .map(|item| match item {
                sqlparser::ast::SelectItem::UnnamedExpr(e)
                | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => self.key_ref(e),
                _ => None,
            })
            .collect();
        let mut rest = sel.clone();
        rest.from = Vec::new();
        rest.selection = None;
        self.subqueries(&rest);
        self.pop_scope();
        out
    }
}
