//! FROM items and their joins: tables, derived tables and functions bound; the ON or USING of a
//! join read as a condition on the sides it filters (both for an inner join, the nullable side for
//! an outer join).

use sqlparser::ast::{JoinConstraint, JoinOperator, TableFactor, TableWithJoins};

use super::{Walker, ident, name_of};
use crate::router::facts::Rel;
use crate::router::plan::Refusal;

impl Walker<'_> {
    /// One FROM item with its joins; returns the bindings it made.
    pub(super) fn join_tree(
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
            let nullable: &[&[usize]] = match &join.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => &[&right],
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => &[&left],
                JoinOperator::FullOuter(_) => &[&left, &right],
                _ => &[],
            };
            for &b in nullable.iter().copied().flatten() {
                self.facts.bindings[b].nullable = true;
            }
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
}
