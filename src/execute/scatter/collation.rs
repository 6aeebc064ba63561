//! Whether a merge may compare a shard's text values bytewise, as it does: the columns whose values
//! it compares (sort keys, min/max, HAVING) against how the shard's database orders text. Pure.

use crate::backend::TextOrder;
use crate::execute::rows::Field;
use crate::execute::value;
use crate::router::{Agg, MergePlan, SortRef};

/// A column whose text values the merge compares, and what compares it.
pub(super) struct ComparedText {
    column: usize,
    by: &'static str,
}

/// Why this shard's rows cannot be merged as text bytes, if they cannot. `compared`: from
/// `compared_text`; `sources`: the shard's (table oid, attribute number) of each field, (0, 0) for a
/// computed one.
pub(super) fn text_order_problem(
    compared: &[ComparedText],
    fields: &[Field],
    sources: &[(u32, i16)],
    order: &TextOrder,
) -> Option<String> {
    for c in compared {
        let what = || {
            let name = fields
                .get(c.column)
                .map(|f| String::from_utf8_lossy(&f.name));
            format!("{} \"{}\"", c.by, name.unwrap_or_default())
        };
        if !order.bytewise {
            return Some(format!(
                "{} over several shards: the merge compares text bytewise (the C collation), but \
                 a shard's database collation orders text otherwise; add COLLATE \"C\", or use a \
                 C-collated database",
                what()
            ));
        }
        let source = sources.get(c.column).copied().unwrap_or((0, 0));
        if source.0 == 0 && !order.linguistic.is_empty() {
            return Some(format!(
                "{} over several shards: the merge compares text bytewise (the C collation), \
                 and this computed text may carry a collation of its own (the shard has columns \
                 with collations other than C); add COLLATE \"C\"",
                what()
            ));
        }
        if let Some(collation) = order.linguistic.get(&source) {
            return Some(format!(
                "{} over several shards: the merge compares text bytewise (the C collation), \
                 but the column has collation \"{collation}\"; add COLLATE \"C\"",
                what()
            ));
        }
    }
    None
}

/// The columns whose text values the merge compares: a sort key on a text column (without COLLATE
/// "C"), min/max of text, a HAVING comparison of text. (`name` always has the C collation.) The
/// same for every shard, and empty (no allocation) for a merge that compares no text.
pub(super) fn compared_text(plan: &MergePlan, fields: &[Field]) -> Vec<ComparedText> {
    let text = |i: &usize| {
        fields.get(*i).is_some_and(|f| {
            value::kind_of(f.type_oid) == Some(value::Kind::Text) && f.type_oid != value::oid::NAME
        })
    };
    let at = |by: &'static str| move |column: usize| ComparedText { column, by };
    let visible = fields.len().saturating_sub(plan.hidden);
    let sorted = plan
        .order_by
        .iter()
        .filter(|k| !k.bytewise)
        .map(|k| match k.column {
            SortRef::Output(i) => i,
            SortRef::Hidden(j) => visible + j,
        });
    let sorted = sorted.filter(text).map(at("ORDER BY text column"));
    let min_max = plan.aggregates.iter().enumerate();
    let min_max = min_max
        .filter(|(_, a)| matches!(a, Some(Agg::Min | Agg::Max)))
        .map(|(i, _)| i)
        .filter(text)
        .map(at("min()/max() of text column"));
    let having = plan.having.iter().flat_map(|h| h.compared_columns());
    let having = having.filter(text).map(at("HAVING comparing text column"));
    sorted.chain(min_max).chain(having).collect()
}
