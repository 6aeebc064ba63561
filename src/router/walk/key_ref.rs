//! Which binding's shard key a column reference names, and that binding's key column, key type and
//! co-location group.

use sqlparser::ast::Expr;

use super::{KeyRef, Walker, ident};
use crate::router::facts::Rel;
use crate::sharding::{KeyType, Sharded, TableKind};

impl Walker<'_> {
    /// The sharding of binding `b`'s table; `None` for a reference, unlisted or derived table.
    fn sharding(&self, b: usize) -> Option<&Sharded> {
        match self.facts.bindings[b].rel {
            Rel::Sharded(i) => match &self.map.tables[i].kind {
                TableKind::Sharded(s) => Some(s),
                TableKind::Reference => None,
            },
            _ => None,
        }
    }

    pub(super) fn group(&self, b: usize) -> Option<&str> {
        self.sharding(b).map(|s| s.group.as_str())
    }

    pub(crate) fn key_column(&self, b: usize) -> Option<&str> {
        self.sharding(b).map(|s| s.key.as_str())
    }

    pub(super) fn key_type(&self, b: usize) -> Option<KeyType> {
        self.sharding(b).map(|s| s.key_type)
    }

    /// The binding whose key column `e` names: qualified by alias or table name in any enclosing
    /// scope, or unqualified when exactly one binding of the innermost scope has that key.
    pub(super) fn key_ref(&self, e: &Expr) -> Option<KeyRef> {
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
}
