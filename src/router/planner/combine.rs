//! Several statements in one query string: one plan when they agree on one target.

use super::reason;
use crate::router::plan::{Command, KeySource, Plan, Refusal, Target};
use crate::sharding::{ShardMap, TableKind};

/// Several statements in one query string go together only when they agree on one target.
pub(super) fn combine(mut plans: Vec<Plan>, map: &ShardMap) -> Plan {
    if plans.len() <= 1 {
        return plans
            .pop()
            .unwrap_or_else(|| Plan::new(Command::Read, Target::Any, "empty query"));
    }
    if let Some(p) = plans.iter().find(|p| matches!(p.target, Target::Refuse(_))) {
        return p.clone();
    }
    let separately = |what: &str| {
        Plan::refuse(
            Command::Write,
            Refusal::unsupported(
                format!("a query string with several statements {what}"),
                "send them separately",
            ),
        )
    };
    if plans
        .iter()
        .any(|p| matches!(p.command, Command::SetShard(_)))
    {
        return separately("including SET shardgate.shard");
    }
    if plans
        .iter()
        .any(|p| matches!(p.target, Target::Insert { .. }))
    {
        return separately("including a multi-row INSERT");
    }
    if plans.iter().any(|p| matches!(p.target, Target::CopyIn(_))) {
        return separately("including a COPY into a sharded table");
    }
    let mut command: Option<Command> = None;
    let mut target: Option<Target> = None;
    for p in &plans {
        if !p.command.is_session_or_transaction() {
            command = match (command, &p.command) {
                (Some(Command::Write), _) => Some(Command::Write),
                (_, c) => Some(c.clone()),
            };
        }
        if matches!(p.command, Command::Transaction(_)) || p.target == Target::Any {
            continue;
        }
        let t = literal(&p.target, map);
        target = match target {
            None => Some(t),
            Some(prev) if prev == t => Some(prev),
            Some(_) => return separately("that go to different shards"),
        };
    }
    let command = command.unwrap_or_else(|| plans[0].command.clone());
    let target = target.unwrap_or(Target::Any);
    let reason = reason(&target, "several statements");
    Plan::new(command, target, reason)
}

/// Keys that are literals on one shard, as that shard (so statements on one shard compare equal); on
/// a map of one shard, what goes to every shard goes to that one.
fn literal(t: &Target, map: &ShardMap) -> Target {
    if map.shards.len() == 1 && matches!(t, Target::All | Target::EveryShard | Target::Scatter) {
        return Target::Shard(crate::sharding::ShardId(0));
    }
    if let Target::Keys { table, keys, .. } = t
        && let TableKind::Sharded(s) = &map.tables[*table].kind
    {
        let mut shard = None;
        for k in keys {
            let KeySource::Value(v) = k else {
                return t.clone();
            };
            let crate::sharding::Placement::Shard(p) = map.place(s, v) else {
                return t.clone();
            };
            if shard.is_some_and(|x| x != p) {
                return t.clone();
            }
            shard = Some(p);
        }
        if let Some(s) = shard {
            return Target::Shard(s);
        }
    }
    t.clone()
}
