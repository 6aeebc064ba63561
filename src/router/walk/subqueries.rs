//! Subqueries outside the places the walk reads conditions from (select list, ORDER BY, function
//! arguments, ...): each walked as a block of its own, so its conditions filter only its bindings.

use std::ops::ControlFlow;

use sqlparser::ast::{Query, Visit, Visitor};

use super::Walker;

impl Walker<'_> {
    /// Walks every subquery directly inside `node` (not those nested in them) as a block of its own:
    /// its conditions filter only its own bindings.
    pub(crate) fn subqueries<V: Visit + ?Sized>(&mut self, node: &V) {
        let mut found = Subqueries::default();
        let _ = node.visit(&mut found);
        for q in found.top {
            self.query(&q, &[], false);
        }
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
