//! `SET shardgate.shard = 'NAME'` and `RESET shardgate.shard`: the session's statements go to one
//! shard until reset. Every other SET stays on the session's server.

use sqlparser::ast::{ContextModifier, Expr, Set, Value};

use crate::protocol::sqlstate;
use crate::router::plan::{Command, Plan, Refusal, Target, TxControl};
use crate::router::walk::name_of;
use crate::sharding::ShardMap;

pub(super) fn is_shardgate(name: &str) -> bool {
    name.starts_with("shardgate.")
}

pub(super) fn set(s: &Set, map: &ShardMap) -> Plan {
    if is_transaction_setting(s) {
        return Plan::new(
            Command::Transaction(TxControl::Setting),
            Target::Any,
            "a setting of the current transaction stays on its server",
        );
    }
    let Set::SingleAssignment {
        scope,
        variable,
        values,
        ..
    } = s
    else {
        return Plan::new(
            Command::Session,
            Target::Any,
            "session command stays on the session's server",
        );
    };
    let name = name_of(variable);
    if !is_shardgate(&name) {
        return Plan::new(
            Command::Session,
            Target::Any,
            "session command stays on the session's server",
        );
    }
    if matches!(scope, Some(ContextModifier::Local)) {
        return Plan::refuse(
            Command::Session,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: "SET LOCAL shardgate.shard is not supported".into(),
                hint: Some(
                    "use SET shardgate.shard = 'NAME' and RESET it after the transaction".into(),
                ),
            },
        );
    }
    let value = match values.as_slice() {
        [Expr::Value(v)] => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        [Expr::Identifier(i)]
            if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
        {
            return set_shard(&name, None, map);
        }
        [Expr::Identifier(i)] => Some(i.value.clone()),
        _ => None,
    };
    match value {
        Some(v) => set_shard(&name, Some(v), map),
        None => Plan::refuse(
            Command::Session,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: "SET shardgate.shard takes a shard name".into(),
                hint: Some(format!("shards: {}", shard_names(map))),
            },
        ),
    }
}

/// SET LOCAL (but of shardgate.shard, refused below), SET TRANSACTION and SET LOCAL ROLE: they
/// last until the transaction ends.
fn is_transaction_setting(s: &Set) -> bool {
    let local = |m: &Option<ContextModifier>| matches!(m, Some(ContextModifier::Local));
    match s {
        Set::SingleAssignment {
            scope, variable, ..
        } => local(scope) && !is_shardgate(&name_of(variable)),
        Set::SetTransaction { session, .. } => !session,
        Set::SetRole {
            context_modifier, ..
        } => local(context_modifier),
        _ => false,
    }
}

pub(super) fn set_shard(name: &str, value: Option<String>, map: &ShardMap) -> Plan {
    if name != "shardgate.shard" {
        return Plan::refuse(
            Command::Session,
            Refusal {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: format!("unknown setting {name}"),
                hint: Some("shardgate.shard is the only shardgate setting".into()),
            },
        );
    }
    if let Some(v) = &value
        && map.shard_named(v).is_none()
    {
        // A mistyped shard name is an error even under an earlier SET shardgate.shard (which would
        // otherwise send the statement to that shard, where PostgreSQL would accept it silently).
        let mut plan = Plan::refuse(Command::Session, unknown_shard(v, map));
        plan.hinted = true;
        return plan;
    }
    let reason = match &value {
        Some(v) => format!("the session's later statements go to shard {v}"),
        None => "the session's statements are routed by the map again".to_owned(),
    };
    Plan::new(Command::SetShard(value), Target::Any, reason)
}

fn shard_names(map: &ShardMap) -> String {
    map.shards
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn unknown_shard(name: &str, map: &ShardMap) -> Refusal {
    Refusal {
        code: sqlstate::INVALID_PARAMETER_VALUE,
        message: format!("unknown shard {name:?}"),
        hint: Some(format!("shards: {}", shard_names(map))),
    }
}
