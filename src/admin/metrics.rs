//! Metric names and HELP texts, the process-wide Prometheus recorder, and per-shard handles registered
//! once so the hot path never looks a metric up by name. Names follow
//! `shardgate_<subsystem>_<name>_<unit>`; counters end in `_total`; label values come from small enums.

use std::sync::OnceLock;

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub(crate) const CLIENTS_ACTIVE: &str = "shardgate_clients_active_connections";
pub(crate) const CLIENTS_WAITING: &str = "shardgate_clients_waiting_connections";
pub(crate) const CLIENTS_TOTAL: &str = "shardgate_clients_connections_total";
pub(crate) const CLIENTS_REJECTED: &str = "shardgate_clients_rejected_total";
pub(crate) const POOL_IDLE: &str = "shardgate_pool_idle_connections";
pub(crate) const POOL_ACTIVE: &str = "shardgate_pool_active_connections";
pub(crate) const POOL_WAITING: &str = "shardgate_pool_waiting_clients";
pub(crate) const POOL_CHECKOUT_WAIT: &str = "shardgate_pool_checkout_wait_seconds";
pub(crate) const QUERIES: &str = "shardgate_queries_total";
pub(crate) const QUERY_DURATION: &str = "shardgate_query_duration_seconds";
pub(crate) const TRANSACTIONS: &str = "shardgate_transactions_total";
pub(crate) const TRANSACTION_DURATION: &str = "shardgate_transaction_duration_seconds";
pub(crate) const ERRORS: &str = "shardgate_errors_total";
pub(crate) const RECEIVED: &str = "shardgate_network_received_bytes_total";
pub(crate) const SENT: &str = "shardgate_network_sent_bytes_total";
pub(crate) const STATEMENTS: &str = "shardgate_statements_prepared";
pub(crate) const MAP_VERSION: &str = "shardgate_map_version";
pub(crate) const MAP_RELOADS: &str = "shardgate_map_reloads_total";
pub(crate) const PARSE_CACHE_HITS: &str = "shardgate_router_parse_cache_hits_total";
pub(crate) const PARSE_CACHE_MISSES: &str = "shardgate_router_parse_cache_misses_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide recorder; installed once, shared by every proxy in the process (tests run several).
pub(crate) fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed by an embedding program; then ours only renders.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    describe_gauge!(CLIENTS_ACTIVE, "Client connections open now.");
    describe_gauge!(
        CLIENTS_WAITING,
        "Clients waiting for a server connection now."
    );
    describe_counter!(CLIENTS_TOTAL, "Client connections accepted.");
    describe_counter!(CLIENTS_REJECTED, "Client connections refused, by reason.");
    describe_gauge!(POOL_IDLE, "Idle server connections per shard.");
    describe_gauge!(POOL_ACTIVE, "Server connections in use per shard.");
    describe_gauge!(
        POOL_WAITING,
        "Clients waiting for a server connection per shard."
    );
    describe_histogram!(
        POOL_CHECKOUT_WAIT,
        Unit::Seconds,
        "Time to get a server connection from the pool."
    );
    describe_counter!(
        QUERIES,
        "Queries (simple queries and extended-protocol syncs) per shard and route kind."
    );
    describe_histogram!(
        QUERY_DURATION,
        Unit::Seconds,
        "Query latency, from sending to ReadyForQuery, per shard and route kind."
    );
    describe_counter!(
        TRANSACTIONS,
        "Transactions (server checkouts) per shard and route kind."
    );
    describe_histogram!(
        TRANSACTION_DURATION,
        Unit::Seconds,
        "How long a client held a server, per shard and route kind."
    );
    describe_counter!(ERRORS, "Errors that ended a client session, by kind.");
    describe_counter!(RECEIVED, "Bytes received from clients.");
    describe_counter!(SENT, "Bytes sent to clients.");
    describe_gauge!(
        STATEMENTS,
        "Distinct prepared statements known to the proxy."
    );
    describe_gauge!(MAP_VERSION, "Version of the shard map in use.");
    describe_counter!(MAP_RELOADS, "Shard map reloads, by result (ok, failed).");
    describe_counter!(
        PARSE_CACHE_HITS,
        "Statements routed with a plan from the parse cache."
    );
    describe_counter!(
        PARSE_CACHE_MISSES,
        "Statements the router had to parse (not in the parse cache)."
    );
}

/// How a statement was routed; a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// One shard.
    Direct,
    /// Several shards, not all.
    Multi,
    /// Every shard.
    All,
}

impl RouteKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RouteKind::Direct => "direct",
            RouteKind::Multi => "multi",
            RouteKind::All => "all",
        }
    }
}

/// Handles for one shard's metrics.
pub(crate) struct ShardMetrics {
    pub checkout_wait: Histogram,
    pub queries: Counter,
    pub query_duration: Histogram,
    pub transactions: Counter,
    pub transaction_duration: Histogram,
    pub idle: Gauge,
    pub active: Gauge,
    pub waiting: Gauge,
}

impl ShardMetrics {
    pub(crate) fn new(shard: &str, route: RouteKind) -> ShardMetrics {
        handle();
        let s = shard.to_owned();
        let r = route.as_str();
        ShardMetrics {
            checkout_wait: histogram!(POOL_CHECKOUT_WAIT, "shard" => s.clone()),
            queries: counter!(QUERIES, "shard" => s.clone(), "route" => r),
            query_duration: histogram!(QUERY_DURATION, "shard" => s.clone(), "route" => r),
            transactions: counter!(TRANSACTIONS, "shard" => s.clone(), "route" => r),
            transaction_duration: histogram!(TRANSACTION_DURATION, "shard" => s.clone(), "route" => r),
            idle: gauge!(POOL_IDLE, "shard" => s.clone()),
            active: gauge!(POOL_ACTIVE, "shard" => s.clone()),
            waiting: gauge!(POOL_WAITING, "shard" => s),
        }
    }
}

/// Process-level handles.
pub(crate) struct ProxyMetrics {
    pub clients_total: Counter,
    pub clients_active: Gauge,
    pub clients_waiting: Gauge,
    pub received: Counter,
    pub sent: Counter,
    pub statements: Gauge,
    pub map_version: Gauge,
}

impl ProxyMetrics {
    pub(crate) fn new() -> ProxyMetrics {
        handle();
        ProxyMetrics {
            clients_total: counter!(CLIENTS_TOTAL),
            clients_active: gauge!(CLIENTS_ACTIVE),
            clients_waiting: gauge!(CLIENTS_WAITING),
            received: counter!(RECEIVED),
            sent: counter!(SENT),
            statements: gauge!(STATEMENTS),
            map_version: gauge!(MAP_VERSION),
        }
    }
}

pub(crate) fn rejected(reason: &'static str) {
    counter!(CLIENTS_REJECTED, "reason" => reason).increment(1);
}

pub(crate) fn error(kind: &'static str) {
    counter!(ERRORS, "kind" => kind).increment(1);
}

/// A statement run on several shards, counted on each.
pub(crate) fn fanout_query(shard: &str, route: RouteKind, took: std::time::Duration) {
    let (s, r) = (shard.to_owned(), route.as_str());
    counter!(QUERIES, "shard" => s.clone(), "route" => r).increment(1);
    histogram!(QUERY_DURATION, "shard" => s, "route" => r).record(took);
}

pub(crate) fn parse_cache(hits: u64, misses: u64) {
    counter!(PARSE_CACHE_HITS).absolute(hits);
    counter!(PARSE_CACHE_MISSES).absolute(misses);
}

pub(crate) fn map_reload(ok: bool) {
    counter!(MAP_RELOADS, "result" => if ok { "ok" } else { "failed" }).increment(1);
}
