//! The walk over a statement's syntax tree: binds every table reference in its scope, reads key
//! conditions in positions where they filter rows (the AND chain of WHERE, inner-join ON, EXISTS
//! and IN subqueries under it) and links bindings joined on their keys. Anything it does not look
//! into is still caught: every relation the parser saw and the walk did not bind becomes an
//! unrestricted binding, so an overlooked table can only make a route wider or refused.
//!
//! - `query`: query blocks (WITH, set operations, SELECT). `from`: FROM items and joins.
//! - `dml`: UPDATE, DELETE (and INSERT's targets) inside a statement.
//! - `condition`: WHERE and ON, and the links between bindings joined on their keys.
//! - `restriction`: the key values a condition allows. `key_ref`: which key a column names.
//! - `subqueries`: subqueries elsewhere in a statement, each walked as a block of its own.

mod condition;
mod dml;
mod from;
mod key_ref;
mod query;
mod restriction;
mod subqueries;

use std::ops::ControlFlow;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Statement};

use super::facts::{Binding, Facts, Rel};
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
        match self.map.table_index(name) {
            Some(i) => match &self.map.tables[i].kind {
                TableKind::Sharded(_) => Rel::Sharded(i),
                TableKind::Reference => Rel::Reference,
            },
            // Drivers read the catalogs (asyncpg's type introspection, JDBC's metadata, SQLAlchemy's
            // first connect, inside a transaction another statement opened): alike on every shard,
            // they are read where the client is, as a reference table is.
            None if is_catalog(name) => Rel::Reference,
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
            nullable: false,
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

    pub(crate) fn map(&self) -> &'m ShardMap {
        self.map
    }
}

/// An identifier as PostgreSQL folds it: unquoted names are lowercase.
/// PostgreSQL's own catalogs and views: relations of `pg_catalog` and `information_schema`, and
/// unqualified `pg_` names, which the search path looks up in `pg_catalog` first.
fn is_catalog(name: &str) -> bool {
    match name.split_once('.') {
        Some((schema, _)) => schema == "pg_catalog" || schema == "information_schema",
        None => name.starts_with("pg_"),
    }
}

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
