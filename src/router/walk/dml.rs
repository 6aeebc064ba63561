//! UPDATE and DELETE (and INSERT's targets, through `router::insert`): their target tables are
//! written; a SET of the shard key is refused, since it would move a row between shards.

use sqlparser::ast::{
    AssignmentTarget, Delete, FromTable, ObjectName, Statement, Update, UpdateTableFromKind,
};

use super::{Walker, name_of};
use crate::router::plan::Refusal;

impl Walker<'_> {
    /// INSERT (targets only; `router::insert` reads the rows), UPDATE and DELETE inside a statement.
    pub(crate) fn dml(&mut self, stmt: &Statement, top: bool) {
        match stmt {
            Statement::Update(u) => self.update(u, top),
            Statement::Delete(d) => self.delete(d, top),
            Statement::Insert(_) => crate::router::insert::nested(self, stmt),
            _ => self.facts.refuse(Refusal::unsupported(
                "this statement is not supported inside a query",
                "send it on its own",
            )),
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
}
