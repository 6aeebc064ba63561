//! Conditions: the AND chain of a WHERE or inner-join ON, with EXISTS and IN subqueries under it;
//! `a.key = b.key` links two bindings of one co-location group.

use sqlparser::ast::{BinaryOperator, Expr};

use super::Walker;

impl Walker<'_> {
    /// A condition whose every AND-ed part filters the rows of the bindings in `filtered`.
    pub(super) fn condition(&mut self, e: &Expr, filtered: &[usize]) {
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
    pub(super) fn link(&mut self, a: usize, b: usize, filtered: &[usize]) {
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
}
