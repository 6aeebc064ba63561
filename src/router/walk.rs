//! The walk over a statement's syntax tree: binds every table reference in its scope, reads key
//! conditions in positions where they filter rows (the AND chain of WHERE, inner-join ON, EXISTS
//! and IN subqueries under it) and links bindings joined on their keys. Anything it does not look
//! into is still caught: every relation the parser saw and the walk did not bind becomes an
//! unrestricted binding, so an overlooked table can only make a route wider or refused.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Delete, Expr, FromTable, Ident, JoinConstraint, JoinOperator,
    ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor, TableWithJoins,
    Update, UpdateTableFromKind, Visit, Visitor,
};

use super::facts::{Binding, Facts, Rel};
use super::keys;
use super::plan::{KeySource, Refusal};
use crate::sharding::{ShardMap, TableKind};

pub(crate) struct Walker<'m> {
    map: &'m ShardMap,
    pub(crate) facts: Facts,
    /// Bindings per query block, innermost last.
    scopes: Vec<Vec<usize>>,
    /// CTE names per WITH, innermost last.
    ctes: Vec<Vec<String>>,
    /// Every relation name the walk bound, to compare with what the parser saw.
    seen: Vec<String>,
}

/// A column reference that names a sharded binding's key column.
type KeyRef = usize;

impl<'m> Walker<'m> {
    pub(crate) fn new(map: &'m ShardMap) -> Walker<'m> {
        Walker {
            map,
            facts: Facts::default(),
            scopes: Vec::new(),
            ctes: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Ends the walk: relations the parser saw and the walk did not bind become unrestricted,
    /// unlinked bindings.
    pub(crate) fn finish(mut self, stmt: &Statement) -> Facts {
        let mut all = Vec::new();
        let _ = sqlparser::ast::visit_relations(stmt, |r: &ObjectName| {
            all.push(name_of(r));
            ControlFlow::<()>::Continue(())
        });
        for name in all {
            if let Some(i) = self.seen.iter().position(|s| *s == name) {
                self.seen.swap_remove(i);
                continue;
            }
            let rel = self.rel(&name);
            if rel != Rel::Opaque {
                self.add(rel, &name, &name, false, false);
            }
        }
        self.facts
    }

    fn rel(&self, name: &str) -> Rel {
        if !name.contains('.') && self.ctes.iter().flatten().any(|c| c == name) {
            return Rel::Opaque;
        }
        match self
            .map
            .tables
            .iter()
            .position(|t| t.name == crate::sharding::table::normalize(name))
        {
            Some(i) => match &self.map.tables[i].kind {
                TableKind::Sharded(_) => Rel::Sharded(i),
                TableKind::Reference => Rel::Reference,
            },
            None => Rel::Unlisted,
        }
    }

    fn add(&mut self, rel: Rel, name: &str, alias: &str, write: bool, top: bool) -> usize {
        self.facts.bindings.push(Binding {
            rel,
            name: name.to_owned(),
            alias: alias.to_owned(),
            write,
            top,
            own: None,
            follows: Vec::new(),
        });
        let id = self.facts.bindings.len() - 1;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(id);
        }
        id
    }

    /// Binds a named table in the current scope.
    pub(crate) fn table(
        &mut self,
        name: &ObjectName,
        alias: Option<&Ident>,
        write: bool,
        top: bool,
    ) -> usize {
        let full = name_of(name);
        self.seen.push(full.clone());
        let rel = self.rel(&full);
        let alias = match alias {
            Some(a) => ident(a),
            None => full.rsplit('.').next().unwrap_or(&full).to_owned(),
        };
        self.add(rel, &full, &alias, write, top)
    }

    pub(crate) fn push_scope(&mut self) {
        self.scopes.push(Vec::new());
    }

    pub(crate) fn pop_scope(&mut self) {
        self.scopes.pop();
    }

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

    /// INSERT (targets only; `insert.rs` reads the rows), UPDATE and DELETE inside a statement.
    pub(crate) fn dml(&mut self, stmt: &Statement, top: bool) {
        match stmt {
            Statement::Update(u) => self.update(u, top),
            Statement::Delete(d) => self.delete(d, top),
            Statement::Insert(_) => super::insert::nested(self, stmt),
            _ => self.facts.refuse(Refusal::unsupported(
                "this statement is not supported inside a query",
                "send it on its own",
            )),
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

    /// One FROM item with its joins; returns the bindings it made.
    pub(crate) fn join_tree(
        &mut self,
        twj: &TableWithJoins,
        inherited: &[usize],
        top: bool,
    ) -> Vec<usize> {
        let mut left = self.factor(&twj.relation, top);
        for join in &twj.joins {
            let right = self.factor(&join.relation, top);
            let (constraint, filtered): (Option<&JoinConstraint>, Vec<usize>) =
                match &join.join_operator {
                    JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                        let mut f = left.clone();
                        f.extend(&right);
                        f.extend_from_slice(inherited);
                        (Some(c), f)
                    }
                    // The ON of an outer join filters only the side that may come out NULL.
                    JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (Some(c), right.clone()),
                    JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (Some(c), left.clone()),
                    JoinOperator::FullOuter(c) => (Some(c), Vec::new()),
                    _ => {
                        self.facts.refuse(Refusal::unsupported(
                            "this join is not PostgreSQL syntax the router supports",
                            "use INNER, LEFT, RIGHT, FULL or CROSS JOIN",
                        ));
                        (None, Vec::new())
                    }
                };
            match constraint {
                Some(JoinConstraint::On(e)) => self.condition(e, &filtered),
                Some(JoinConstraint::Using(cols)) => {
                    for col in cols {
                        let col = name_of(col);
                        self.using(&left, &right, &col, &filtered);
                    }
                }
                _ => {}
            }
            left.extend(right);
        }
        left
    }

    /// `JOIN ... USING (col)`: links the bindings on each side whose key column is `col`.
    fn using(&mut self, left: &[usize], right: &[usize], col: &str, filtered: &[usize]) {
        let keyed = |w: &Walker, ids: &[usize]| -> Vec<usize> {
            ids.iter()
                .copied()
                .filter(|&b| w.key_column(b).is_some_and(|k| k == col))
                .collect()
        };
        for a in keyed(self, left) {
            for b in keyed(self, right) {
                self.link(a, b, filtered);
            }
        }
    }

    fn factor(&mut self, tf: &TableFactor, top: bool) -> Vec<usize> {
        match tf {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => vec![self.table(name, alias.as_ref().map(|a| &a.name), false, top)],
            TableFactor::Table { name, args, .. } => {
                // A set-returning function (`generate_series(1, 3)`), not a table.
                self.seen.push(name_of(name));
                self.subqueries(args);
                vec![self.add(Rel::Opaque, "", "", false, false)]
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery, &[], false);
                let alias = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_default();
                vec![self.add(Rel::Opaque, &alias, &alias, false, false)]
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.join_tree(table_with_joins, &[], top),
            other => {
                // Table functions, UNNEST and the like: rows from elsewhere; look for subqueries.
                self.subqueries(other);
                vec![self.add(Rel::Opaque, "", "", false, false)]
            }
        }
    }

    fn update(&mut self, u: &Update, top: bool) {
        self.push_scope();
        let target = self.join_tree(&u.table, &[], top);
        for b in &target {
            self.facts.bindings[*b].write = true;
        }
        if let Some(UpdateTableFromKind::AfterSet(from) | UpdateTableFromKind::BeforeSet(from)) =
            &u.from
        {
            for twj in from {
                self.join_tree(twj, &[], top);
            }
        }
        for a in &u.assignments {
            let cols: Vec<&ObjectName> = match &a.target {
                AssignmentTarget::ColumnName(c) => vec![c],
                AssignmentTarget::Tuple(cs) => cs.iter().collect(),
            };
            for c in cols {
                self.refuse_key_assignment(&target, c, "UPDATE");
            }
        }
        if let Some(w) = &u.selection {
            let filtered = self.scopes.last().cloned().unwrap_or_default();
            self.condition(w, &filtered);
        }
        self.subqueries(&u.assignments);
        self.subqueries(&u.returning);
        self.pop_scope();
    }

    /// `SET key = ...` would move a row to another shard.
    pub(crate) fn refuse_key_assignment(&mut self, target: &[usize], col: &ObjectName, what: &str) {
        let col = name_of(col);
        let col = col.rsplit('.').next().unwrap_or(&col);
        for &b in target {
            if self.key_column(b).is_some_and(|k| k == col) {
                let name = self.facts.bindings[b].name.clone();
                self.facts.refuse(Refusal::unsupported(
                    format!("{what} of the shard key {name}.{col}: moving a row between shards is not supported"),
                    "delete the row and insert it with the new key",
                ));
            }
        }
    }

    fn delete(&mut self, d: &Delete, top: bool) {
        self.push_scope();
        let from = match &d.from {
            FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
        };
        for (i, twj) in from.iter().enumerate() {
            let made = self.join_tree(twj, &[], top);
            if i == 0 {
                for b in made {
                    self.facts.bindings[b].write = true;
                }
            }
        }
        for twj in d.using.iter().flatten() {
            self.join_tree(twj, &[], top);
        }
        if let Some(w) = &d.selection {
            let filtered = self.scopes.last().cloned().unwrap_or_default();
            self.condition(w, &filtered);
        }
        self.subqueries(&d.returning);
        self.pop_scope();
    }

    /// A condition whose every AND-ed part filters the rows of the bindings in `filtered`.
    pub(crate) fn condition(&mut self, e: &Expr, filtered: &[usize]) {
        match e {
            Expr::Nested(inner) => self.condition(inner, filtered),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                self.condition(left, filtered);
                self.condition(right, filtered);
            }
            Expr::Exists { subquery, negated } => {
                let inherited = if *negated { &[][..] } else { filtered };
                self.query(subquery, inherited, false);
            }
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let inherited = if *negated { &[][..] } else { filtered };
                let out = self.query(subquery, inherited, false);
                if let (Some(a), [Some(b)]) = (self.key_ref(expr), out.as_slice()) {
                    // Only rows of b that match some a matter; a is filtered to b's keys unless NOT IN.
                    let f = if *negated { &[][..] } else { filtered };
                    self.link(a, *b, f);
                    self.co_located(*b, a);
                }
                self.subqueries(expr.as_ref());
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } if self.key_ref(left).is_some() && self.key_ref(right).is_some() => {
                let (a, b) = (self.key_ref(left), self.key_ref(right));
                if let (Some(a), Some(b)) = (a, b) {
                    self.link(a, b, filtered);
                }
            }
            other => {
                match self.restriction(other) {
                    Ok(Some((b, keys))) if filtered.contains(&b) => self.facts.restrict(b, keys),
                    Ok(_) => {}
                    Err(r) => self.facts.refuse(r),
                }
                self.subqueries(other);
            }
        }
    }

    /// `a.key = b.key` in a place that filters the bindings in `filtered`.
    fn link(&mut self, a: usize, b: usize, filtered: &[usize]) {
        if self.group(a).is_none() || self.group(a) != self.group(b) {
            return;
        }
        if filtered.contains(&a) {
            self.facts.follow(a, b);
        }
        if filtered.contains(&b) {
            self.facts.follow(b, a);
        }
    }

    /// `a`'s relevant rows are those joined to `b` on the key: recorded only when the keys share a
    /// co-location group (equal keys of different groups may live on different shards).
    pub(crate) fn co_located(&mut self, a: usize, b: usize) {
        if self.group(a).is_some() && self.group(a) == self.group(b) {
            self.facts.follow(a, b);
        }
    }

    fn group(&self, b: usize) -> Option<&str> {
        match self.facts.bindings[b].rel {
            Rel::Sharded(i) => match &self.map.tables[i].kind {
                TableKind::Sharded(s) => Some(&s.group),
                TableKind::Reference => None,
            },
            _ => None,
        }
    }

    pub(crate) fn key_column(&self, b: usize) -> Option<&str> {
        match self.facts.bindings[b].rel {
            Rel::Sharded(i) => match &self.map.tables[i].kind {
                TableKind::Sharded(s) => Some(&s.key),
                TableKind::Reference => None,
            },
            _ => None,
        }
    }

    fn key_type(&self, b: usize) -> Option<crate::sharding::KeyType> {
        match self.facts.bindings[b].rel {
            Rel::Sharded(i) => match &self.map.tables[i].kind {
                TableKind::Sharded(s) => Some(s.key_type),
                TableKind::Reference => None,
            },
            _ => None,
        }
    }

    /// The binding whose key column `e` names: qualified by alias or table name in any enclosing
    /// scope, or unqualified when exactly one binding of the innermost scope has that key.
    pub(crate) fn key_ref(&self, e: &Expr) -> Option<KeyRef> {
        match e {
            Expr::Nested(inner) => self.key_ref(inner),
            Expr::Identifier(col) => {
                let col = ident(col);
                let scope = self.scopes.last()?;
                let mut hits = scope
                    .iter()
                    .copied()
                    .filter(|&b| self.key_column(b) == Some(col.as_str()));
                let first = hits.next()?;
                hits.next().is_none().then_some(first)
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let col = ident(&parts[parts.len() - 1]);
                let qual: Vec<String> = parts[..parts.len() - 1].iter().map(ident).collect();
                let qual = qual.join(".");
                let b = self.scopes.iter().rev().find_map(|scope| {
                    scope.iter().rev().copied().find(|&b| {
                        let bd = &self.facts.bindings[b];
                        bd.alias == qual || (qual.contains('.') && bd.name == qual)
                    })
                })?;
                (self.key_column(b) == Some(col.as_str())).then_some(b)
            }
            _ => None,
        }
    }

    /// The key values an expression allows for one binding: `key = v`, `key IN (...)`,
    /// `key = ANY(...)`, and ORs of those on the same binding.
    fn restriction(&self, e: &Expr) -> Result<Option<(usize, Vec<KeySource>)>, Refusal> {
        match e {
            Expr::Nested(inner) => self.restriction(inner),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => Ok(match self.restriction(left)? {
                Some(r) => Some(r),
                None => self.restriction(right)?,
            }),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => Ok(match (self.restriction(left)?, self.restriction(right)?) {
                (Some((a, mut ka)), Some((b, kb))) if a == b => {
                    for k in kb {
                        if !ka.contains(&k) {
                            ka.push(k);
                        }
                    }
                    Some((a, ka))
                }
                _ => None,
            }),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let (b, other) = match (self.key_ref(left), self.key_ref(right)) {
                    (Some(b), None) => (b, right),
                    (None, Some(b)) => (b, left),
                    _ => return Ok(None),
                };
                Ok(self.value(b, other)?.map(|k| (b, vec![k])))
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                let Some(b) = self.key_ref(expr) else {
                    return Ok(None);
                };
                let mut keys = Vec::with_capacity(list.len());
                for item in list {
                    match self.value(b, item)? {
                        Some(k) if !keys.contains(&k) => keys.push(k),
                        Some(_) => {}
                        None => return Ok(None),
                    }
                }
                Ok(Some((b, keys)))
            }
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => {
                let Some(b) = self.key_ref(left) else {
                    return Ok(None);
                };
                let Some(ty) = self.key_type(b) else {
                    return Ok(None);
                };
                match keys::array(right, ty) {
                    Ok(Some(keys)) => Ok(Some((b, keys))),
                    Ok(None) => Ok(None),
                    Err(err) => Err(self.invalid(b, err)),
                }
            }
            _ => Ok(None),
        }
    }

    fn value(&self, b: usize, e: &Expr) -> Result<Option<KeySource>, Refusal> {
        let Some(ty) = self.key_type(b) else {
            return Ok(None);
        };
        keys::value(e, ty).map_err(|err| self.invalid(b, err))
    }

    pub(crate) fn invalid(&self, b: usize, err: String) -> Refusal {
        let bd = &self.facts.bindings[b];
        keys::invalid(&bd.name, self.key_column(b).unwrap_or(""), err)
    }

    /// Walks every subquery directly inside `node` (not those nested in them) as a block of its own:
    /// its conditions filter only its own bindings.
    pub(crate) fn subqueries<V: Visit + ?Sized>(&mut self, node: &V) {
        let mut found = Subqueries::default();
        let _ = node.visit(&mut found);
        for q in found.top {
            self.query(&q, &[], false);
        }
    }

    pub(crate) fn map(&self) -> &'m ShardMap {
        self.map
    }
}

#[derive(Default)]
struct Subqueries {
    depth: usize,
    top: Vec<Query>,
}

impl Visitor for Subqueries {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.top.push(q.clone());
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// An identifier as PostgreSQL folds it: unquoted names are lowercase.
pub(crate) fn ident(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_ascii_lowercase(),
    }
}

pub(crate) fn name_of(n: &ObjectName) -> String {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => ident(i),
                ObjectNamePart::Function(f) => ident(&f.name),
            })
            .collect();
    parts.join(".")
}
