//! Aggregates over several shards: every shard's rows (one per group) read at once, combined per
//! group (one group without GROUP BY), filtered by HAVING, sorted, then emitted with LIMIT and OFFSET.
//! Holds one row per group per shard, never the rows the groups were made of.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::BytesMut;
use futures_util::future::try_join_all;
use tokio::io::AsyncWrite;

use super::{Emitter, Stop, Stream, error_frame, merge_error, sort_keys, sort_values};
use crate::execute::having::{self, FilterParams, Group};
use crate::execute::rows::{self, Field};
use crate::execute::value::{self, Value};
use crate::protocol::backend;
use crate::router::{Agg, MergePlan};

/// The fields of the shards' rows and of the rows the client gets (avg columns change type).
#[derive(Clone, Copy)]
pub(super) struct Fields<'a> {
    pub shard: &'a [Field],
    pub shown: &'a [Field],
}

/// The fields the client sees for the shards' fields: an avg column has avg's result type, not the type
/// of the sum the shards returned in its place.
pub(super) fn output_fields(plan: &MergePlan, fields: &[Field]) -> Result<Vec<Field>, String> {
    let mut out = fields.to_vec();
    for (j, agg) in plan.aggregates.iter().enumerate() {
        let (Some(Agg::Avg { .. }), Some(f)) = (agg, out.get_mut(j)) else {
            continue;
        };
        let avg = value::avg_type(f.type_oid).ok_or_else(|| {
            format!(
                "avg() of type oid {} over several shards is not supported",
                f.type_oid
            )
        })?;
        f.typlen = if avg == value::oid::NUMERIC { -1 } else { 8 };
        f.type_oid = avg;
        f.typmod = -1;
    }
    Ok(out)
}

/// Column values as sent (`None` for NULL), borrowed from the shards' rows: a group key, or one
/// aggregate column's values per shard.
type Cells<'a> = Vec<Option<&'a [u8]>>;

/// What combining groups needs: the plan, the fields, the HAVING filter's parameters.
pub(super) struct Groups<'a> {
    pub plan: &'a MergePlan,
    pub fields: Fields<'a>,
    pub params: &'a FilterParams,
}

/// Aggregates: every shard's rows, combined per group (one group without GROUP BY), filtered by
/// HAVING, then sorted.
pub(super) async fn combine_groups<W: AsyncWrite + Unpin>(
    streams: &mut [Stream],
    job: Groups<'_>,
    emit: &mut Emitter<'_, W>,
) -> Result<(), Stop> {
    let Groups {
        plan,
        fields,
        params,
    } = job;
    // Every shard column, visible and hidden, has its entry.
    let width = plan.aggregates.len();
    let visible = width.saturating_sub(plan.hidden);
    // The groups in the order first seen: the key (the non-aggregate columns as sent) and each
    // aggregate column's shard values (empty for a key column); `index` finds a key's group.
    let mut groups: Vec<(Cells, Vec<Cells>)> = Vec::new();
    // Keys as PostgreSQL compares them (5.0 = 5.00): copied only where they were spelled anew.
    let mut index: HashMap<Vec<Option<Cow<'_, [u8]>>>, usize> = HashMap::new();
    // Every shard's group rows, read at once: the first error, from any shard, ends the reply.
    let per_shard = try_join_all(streams.iter_mut().map(group_rows)).await?;
    for m in per_shard.iter().flatten() {
        let all = fields.shard.len();
        let Some(cols) = rows::columns(m).filter(|c| c.len() == all && all >= width) else {
            return Err(Stop::Error(error_frame("a malformed DataRow")));
        };
        let key_columns = plan
            .aggregates
            .iter()
            .zip(cols.iter().zip(fields.shard))
            .filter(|(a, _)| a.is_none())
            .map(|(_, c)| c);
        // The group keeps its first spelling.
        let matched: Vec<_> = key_columns
            .clone()
            .map(|(c, f)| c.map(|c| value::group_key(f.type_oid, f.format, c)))
            .collect();
        let at = match index.get(&matched) {
            Some(&at) => at,
            None => {
                let key = key_columns.map(|(c, _)| *c).collect();
                index.insert(matched, groups.len());
                groups.push((key, vec![Vec::new(); all]));
                groups.len() - 1
            }
        };
        let parts = &mut groups[at].1;
        for (j, (c, agg)) in cols.iter().zip(&plan.aggregates).enumerate() {
            if agg.is_some() {
                parts[j].push(*c);
            }
        }
    }
    if !plan.grouped && groups.is_empty() {
        // Every shard answers an aggregate without GROUP BY with one row; none means no shard ran it.
        return Err(Stop::Error(error_frame(
            "no shard returned the aggregate row",
        )));
    }
    let mut rows_out: Vec<(Vec<Option<Value>>, BytesMut)> = Vec::with_capacity(groups.len());
    for (key, parts) in groups {
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(width);
        let mut keys = key.into_iter();
        for (j, agg) in plan.aggregates.iter().enumerate() {
            let merged = match agg {
                None => Ok(keys.next().flatten().map(<[u8]>::to_vec)),
                Some(Agg::Avg { count }) => average(
                    &fields.shard[j],
                    &fields.shard[visible + count],
                    &parts[j],
                    &parts[visible + count],
                ),
                Some(agg) => {
                    let f = &fields.shard[j];
                    value::merge(*agg, f.type_oid, f.format, &parts[j])
                }
            };
            match merged {
                Ok(v) => values.push(v),
                Err(e) => return Err(Stop::Error(merge_error(&e))),
            }
        }
        let cols: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        if let Some(filter) = &plan.having {
            let group = Group {
                fields: fields.shown,
                values: &cols,
            };
            if !having::keeps(filter, &group, params).map_err(|e| Stop::Error(error_frame(&e)))? {
                continue;
            }
        }
        let mut row = BytesMut::new();
        backend::data_row_bytes(&mut row, cols.iter().copied());
        let sort =
            sort_values(plan, fields.shown, &cols).map_err(|e| Stop::Error(error_frame(&e)))?;
        rows_out.push((sort, row));
    }
    if !plan.order_by.is_empty() {
        let keys = sort_keys(plan);
        rows_out.sort_by(|a, b| value::compare_rows(&keys, &a.0, &b.0));
    }
    for (_, row) in rows_out {
        emit.row(&row).await?;
    }
    Ok(())
}

/// A stream's rows (one per group) through its CommandComplete.
async fn group_rows(s: &mut Stream) -> Result<Vec<BytesMut>, Stop> {
    let mut rows = Vec::new();
    while !s.done {
        let m = s.conn.recv_frame(&s.shard).await?;
        match m[0] {
            b'D' => rows.push(m),
            b'C' => s.done = true,
            b'E' => return Err(s.error(&m)),
            _ => {}
        }
    }
    Ok(rows)
}

/// avg(): the merged sum (`sum` column) over the merged count (its hidden `count` column).
fn average(
    sum_field: &Field,
    count_field: &Field,
    sums: &[Option<&[u8]>],
    counts: &[Option<&[u8]>],
) -> Result<Option<Vec<u8>>, value::ValueError> {
    let (f, c) = (sum_field, count_field);
    let sum = value::merge(Agg::Sum, f.type_oid, f.format, sums)?;
    let sum = value::decode_column(f.type_oid, f.format, sum.as_deref())?;
    let count = value::merge(Agg::Count, c.type_oid, c.format, counts)?;
    let count = match value::decode_column(c.type_oid, c.format, count.as_deref())? {
        Some(Value::Int(n)) => n,
        _ => 0,
    };
    value::average(sum, count, f.format)
}
