//! Whether a merge may compare a shard's text values bytewise, as it does: the columns whose values
//! it compares (sort keys, min/max, HAVING) against how the shard's database orders text. Pure.

use crate::backend::TextOrder;
use crate::execute::rows::Field;
use crate::execute::value;
use crate::router::{Agg, MergePlan, SortRef};

/// Why this shard's rows cannot be merged as text bytes, if they cannot. `sources`: the shard's
/// (table oid, attribute number) of each field, (0, 0) for a computed one.
pub(super) fn text_order_problem(
    plan: &MergePlan,
    fields: &[Field],
    sources: &[(u32, i16)],
    order: &TextOrder,
) -> Option<String> {
    for (i, what) in compared_text(plan, fields) {
        if !order.bytewise {
            return Some(format!(
                "{what} over several shards: the merge compares text bytewise (the C collation), but \
                 a shard's database collation orders text otherwise; add COLLATE \"C\", or use a \
                 C-collated database"
            ));
        }
        let source = sources.get(i).copied().unwrap_or((0, 0));
        if source.0 == 0 && !order.linguistic.is_empty() {
            return Some(format!(
                "{what} over several shards: the merge compares text bytewise (the C collation), \
                 and this computed text may carry a collation of its own (the shard has columns \
                 with collations other than C); add COLLATE \"C\""
            ));
        }
        if let Some(collation) = order.linguistic.get(&source) {
            return Some(format!(
                "{what} over several shards: the merge compares text bytewise (the C collation), \
                 but the column has collation \"{collation}\"; add COLLATE \"C\""
            ));
        }
    }
    None
}

/// The columns whose text values the merge compares, with what compares them: a sort key on a text
/// column (without COLLATE "C"), min/max of text, a HAVING comparison of text. (`name` always has
/// the C collation.)
fn compared_text(plan: &MergePlan, fields: &[Field]) -> Vec<(usize, String)> {
    let text = |i: usize| {
        fields.get(i).filter(|f| {
            value::kind_of(f.type_oid) == Some(value::Kind::Text) && f.type_oid != value::oid::NAME
        })
    };
    let name = |f: &Field| String::from_utf8_lossy(&f.name).into_owned();
    let visible = fields.len().saturating_sub(plan.hidden);
    let sorted = plan
        .order_by
        .iter()
        .filter(|k| !k.bytewise)
        .map(|k| match k.column {
            SortRef::Output(i) => i,
            SortRef::Hidden(j) => visible + j,
        });
    let sorted = sorted
        .filter_map(|i| text(i).map(|f| (i, format!("ORDER BY text column \"{}\"", name(f)))));
    let min_max = plan.aggregates.iter().enumerate().filter_map(|(i, a)| {
        text(i)
            .filter(|_| matches!(a, Some(Agg::Min | Agg::Max)))
            .map(|f| (i, format!("min()/max() of text column \"{}\"", name(f))))
    });
    let having = plan.having.iter().flat_map(|h| h.compared_columns());
    let having = having.filter_map(|i| {
        text(i).map(|f| (i, format!("HAVING comparing text column \"{}\"", name(f))))
    });
    sorted.chain(min_max).chain(having).collect()
}
