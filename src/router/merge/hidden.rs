//! The columns a merge adds after the client's: the aggregates HAVING reads, avg's counts, sort keys.
//! The client never sees them; the merge reads them and strips them.

use sqlparser::ast::{Expr, Ident, SelectItem};

use super::aggregate::{Agg, realias, renamed};
use super::refuse;
use crate::router::plan::Refusal;

/// Hidden columns in order, with how each combines when the query aggregates.
#[derive(Default)]
pub(super) struct Hidden {
    pub items: Vec<SelectItem>,
    /// One per item of an aggregating query (there, every hidden column is an aggregate).
    pub aggs: Vec<Agg>,
}

impl Hidden {
    /// Adds aggregate `e`, which HAVING reads but the client did not ask for; `visible` output
    /// columns come first. Its column, counted from the start: avg(x) runs as sum(x) with count(x)
    /// after it, divided after merging.
    pub(super) fn having_aggregate(
        &mut self,
        e: &Expr,
        agg: Agg,
        visible: usize,
    ) -> Result<usize, Refusal> {
        let at = visible + self.items.len();
        let alias = |k: usize| Ident::new(format!("__shardgate_having_{k}"));
        if let Agg::Avg { .. } = agg {
            let item = SelectItem::UnnamedExpr(e.clone());
            let (Some(sum), Some(count)) = (renamed(&item, "sum"), renamed(&item, "count")) else {
                return Err(refuse("this avg()"));
            };
            self.items.push(realias(sum, alias(self.items.len())));
            self.aggs.push(Agg::Avg {
                count: self.items.len(),
            });
            self.items.push(realias(count, alias(self.items.len())));
            self.aggs.push(Agg::Count);
        } else {
            self.items.push(SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: alias(self.items.len()),
            });
            self.aggs.push(agg);
        }
        Ok(at)
    }

    /// Output column `j`, `avg(x)`, runs as `sum(x)` in its place with `count(x)` hidden: the sum
    /// for the column, and the index of the count among the hidden columns.
    pub(super) fn avg_count(
        &mut self,
        j: usize,
        column: &SelectItem,
    ) -> Result<(SelectItem, usize), Refusal> {
        let (Some(sum), Some(count)) = (renamed(column, "sum"), renamed(column, "count")) else {
            return Err(refuse("this avg()"));
        };
        self.items
            .push(realias(count, Ident::new(format!("__shardgate_count_{j}"))));
        self.aggs.push(Agg::Count);
        Ok((sum, self.items.len() - 1))
    }
}
