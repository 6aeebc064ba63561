//! Plan + Bind parameters -> Route: reads the keys, places them on shards, groups INSERT rows.

use super::insert;
use super::params::{ParamError, Params};
use super::plan::{Command, KeySource, Plan, Refusal, Target};
use super::route::{Route, SplitPart};
use crate::protocol::sqlstate;
use crate::sharding::{KeyValue, Placement, ShardId, ShardMap, Sharded, TableKind};

/// Where one execution of `plan` goes. `session_shard` (from `SET shardgate.shard`) sends every
/// statement there, except those with a hint of their own and session and transaction commands,
/// which stay on the server the client holds (a COMMIT or ROLLBACK must reach its transaction).
pub fn resolve(
    plan: &Plan,
    map: &ShardMap,
    params: &Params,
    session_shard: Option<ShardId>,
) -> Route {
    let stays = matches!(plan.command, Command::SetShard(_))
        || plan.command.is_session_or_transaction() && plan.target == Target::Any;
    if let (Some(s), false, false) = (session_shard, plan.hinted, stays) {
        return Route::Shard(s);
    }
    match &plan.target {
        Target::Shard(s) => Route::Shard(*s),
        Target::Any => Route::Any,
        Target::All => Route::All,
        Target::EveryShard => Route::Multi(map.all_shards().collect()),
        Target::Scatter => Route::Scatter(map.all_shards().collect()),
        Target::CopyIn(c) => Route::CopyIn(c.clone()),
        Target::Refuse(r) => Route::Refused(r.clone()),
        Target::Keys { table, keys, write } => match keyed(map, *table, keys, params) {
            Ok(Placed::Shards(shards)) => spread(map, shards, *write, *table),
            Ok(Placed::Lookup(key)) => Route::Lookup { table: *table, key },
            Err(r) => Route::Refused(r),
        },
        Target::Insert {
            table,
            rows,
            template,
        } => {
            let mut per_row = Vec::with_capacity(rows.len());
            for k in rows {
                match keyed(map, *table, std::slice::from_ref(k), params) {
                    Ok(Placed::Shards(s)) if s.len() == 1 => per_row.push(s[0]),
                    Ok(Placed::Lookup(_)) => {
                        return Route::Refused(Refusal::unsupported(
                            "a multi-row INSERT with directory keys that need a lookup",
                            "insert one row per statement",
                        ));
                    }
                    Ok(_) => {
                        return Route::Refused(Refusal::unsupported(
                            "an INSERT row's key placed on no single shard",
                            "insert one row per statement",
                        ));
                    }
                    Err(r) => return Route::Refused(r),
                }
            }
            let mut shards = per_row.clone();
            shards.sort();
            shards.dedup();
            if let [one] = shards.as_slice() {
                return Route::Shard(*one);
            }
            Route::Split(
                shards
                    .into_iter()
                    .map(|s| {
                        let keep: Vec<usize> =
                            (0..per_row.len()).filter(|&i| per_row[i] == s).collect();
                        let (sql, params) = insert::render(&template.statement, &keep);
                        SplitPart {
                            shard: s,
                            sql,
                            params,
                            rows: keep.len(),
                        }
                    })
                    .collect(),
            )
        }
    }
}

enum Placed {
    /// Ascending, deduplicated; empty when the key set is empty (`= ANY('{}')`).
    Shards(Vec<ShardId>),
    Lookup(KeyValue),
}

fn spread(map: &ShardMap, shards: Vec<ShardId>, write: bool, table: usize) -> Route {
    match shards.as_slice() {
        [] => Route::Any,
        [one] => Route::Shard(*one),
        _ if !write => Route::Scatter(shards),
        _ if map.multi_shard_writes => Route::Multi(shards),
        _ => {
            let t = &map.tables[table];
            let key = match &t.kind {
                TableKind::Sharded(s) => s.key.as_str(),
                TableKind::Reference => "",
            };
            Route::Refused(Refusal::unsupported(
                format!("a write to {} whose keys live on several shards", t.name),
                format!(
                    "write one {}.{key} per statement, or set multi_shard_writes in shardmap.yaml",
                    t.name
                ),
            ))
        }
    }
}

fn keyed(
    map: &ShardMap,
    table: usize,
    keys: &[KeySource],
    params: &Params,
) -> Result<Placed, Refusal> {
    let spec = &map.tables[table];
    let TableKind::Sharded(s) = &spec.kind else {
        return Err(Refusal::unsupported(
            format!("{} is not sharded", spec.name),
            "",
        ));
    };
    let mut values = Vec::with_capacity(keys.len());
    for k in keys {
        match k {
            KeySource::Value(v) => values.push(v.clone()),
            KeySource::Param(i) => values.push(
                params
                    .key(*i, s.key_type)
                    .map_err(|e| bad(spec.name.as_str(), s, *i, e))?,
            ),
            KeySource::ParamArray(i) => values.extend(
                params
                    .keys(*i, s.key_type)
                    .map_err(|e| bad(spec.name.as_str(), s, *i, e))?,
            ),
        }
    }
    let mut shards = Vec::with_capacity(values.len());
    for v in &values {
        match map.place(s, v) {
            Placement::Shard(p) => shards.push(p),
            Placement::Lookup if values.len() == 1 => return Ok(Placed::Lookup(v.clone())),
            Placement::Lookup => {
                return Err(Refusal::unsupported(
                    format!("several keys of {} need a directory lookup", spec.name),
                    "send one key per statement",
                ));
            }
            Placement::Nowhere(why) => {
                return Err(Refusal::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("no shard holds {}.{} = {v}: {why}", spec.name, s.key),
                ));
            }
        }
    }
    shards.sort();
    shards.dedup();
    Ok(Placed::Shards(shards))
}

fn bad(table: &str, s: &Sharded, i: usize, e: ParamError) -> Refusal {
    let n = i + 1;
    match e {
        ParamError::Missing => Refusal::new(
            sqlstate::UNDEFINED_PARAMETER,
            format!(
                "there is no parameter ${n} (the shard key {table}.{})",
                s.key
            ),
        ),
        ParamError::Null => Refusal::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("parameter ${n}, the shard key {table}.{}, is NULL", s.key),
        ),
        ParamError::Invalid(why) => Refusal::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("parameter ${n}, the shard key {table}.{}: {why}", s.key),
        ),
    }
}
