//! shardgate's bucket of a key is PostgreSQL's own hash partition of it: checked against the SQL hash
//! functions for every key type, and with `satisfies_hash_partition` for 100,000 keys.

use shardgate::sharding::hash::{self, HASH_PARTITION_SEED};
use shardgate::sharding::{KeyType, KeyValue};
use tokio_postgres::Client;

use crate::harness::{client, shared};

const BUCKETS: u64 = 1024;
const SEED: i64 = HASH_PARTITION_SEED as i64;

async fn db() -> Client {
    let cluster = shared();
    let db = cluster.create_db("hash");
    client(cluster, &db).await
}

#[tokio::test]
async fn hash_functions_match_postgresql_for_every_key_type() {
    let c = db().await;
    for (ty, sql_type, pg_fn) in [
        (KeyType::Int2, "int2", "hashint2extended"),
        (KeyType::Int4, "int4", "hashint4extended"),
        (KeyType::Int8, "int8", "hashint8extended"),
        (KeyType::Text, "text", "hashtextextended"),
        (KeyType::Text, "varchar", "hashvarlenaextended"),
        (KeyType::Uuid, "uuid", "uuid_hash_extended"),
    ] {
        let values = match ty {
            KeyType::Int2 => "SELECT (g % 32767)::text FROM generate_series(-3000, 3000) g".into(),
            KeyType::Int4 | KeyType::Int8 => format!(
                "SELECT (g * 7919)::{sql_type}::text FROM generate_series(-3000, 3000) g"
            ),
            KeyType::Text => "SELECT repeat(chr(65 + g % 50), g % 40) || 'é' || g FROM generate_series(0, 3000) g".into(),
            KeyType::Uuid => "SELECT md5(g::text)::uuid::text FROM generate_series(0, 3000) g".into(),
        };
        let sql = if sql_type == "varchar" {
            // varchar hashes through the text opclass: hashtextextended of the same bytes.
            format!("SELECT v, hashtextextended(v::varchar, {SEED}) FROM ({values}) t(v)")
        } else {
            format!("SELECT v, {pg_fn}(v::{sql_type}, {SEED}) FROM ({values}) t(v)")
        };
        let rows = c.query(&sql, &[]).await.unwrap();
        assert!(rows.len() > 3000, "{sql_type}");
        for row in rows {
            let text: &str = row.get(0);
            let want = row.get::<_, i64>(1) as u64;
            let got = match ty.parse_text(text).unwrap() {
                KeyValue::Int(v) => hash::hash_int8_extended(v, HASH_PARTITION_SEED),
                KeyValue::Text(s) => hash::hash_text_extended(s.as_bytes(), HASH_PARTITION_SEED),
                KeyValue::Uuid(u) => hash::hash_uuid_extended(&u, HASH_PARTITION_SEED),
            };
            assert_eq!(got, want, "{pg_fn}({text:?})");
        }
    }
}

/// PostgreSQL decides with `satisfies_hash_partition` (its own hash partition routing) that each key
/// is in the bucket shardgate computed.
#[tokio::test]
async fn postgresql_agrees_on_the_bucket_of_100000_keys() {
    let c = db().await;
    for (sql_type, keys) in [
        ("int8", int_keys(-50_000, 50_000)),
        ("int4", int_keys(-10_000, 10_000)),
        ("text", (0..20_000).map(|i| format!("tenant-{i}")).collect()),
        (
            "uuid",
            (0..20_000u64)
                .map(|i| {
                    let h = hash::hash_bytes_extended(&i.to_le_bytes(), 7);
                    let x = (u128::from(h) << 64) | u128::from(h.rotate_left(17));
                    let b = x.to_be_bytes();
                    KeyValue::Uuid(b).to_string()
                })
                .collect(),
        ),
    ] {
        let ty = KeyType::from_name(sql_type).unwrap();
        let buckets: Vec<i32> = keys
            .iter()
            .map(|k| (ty.parse_text(k).unwrap().partition_hash() % BUCKETS) as i32)
            .collect();
        c.batch_execute(&format!(
            "CREATE TABLE p_{sql_type} (k {sql_type}) PARTITION BY HASH (k)"
        ))
        .await
        .unwrap();
        let sql = format!(
            "SELECT count(*) FILTER (WHERE NOT satisfies_hash_partition('p_{sql_type}'::regclass, {BUCKETS}, b, k::{sql_type})), count(*)
             FROM unnest($1::text[], $2::int4[]) AS t(k, b)"
        );
        let row = c.query_one(&sql, &[&keys, &buckets]).await.unwrap();
        let (wrong, total): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(total as usize, keys.len());
        assert_eq!(wrong, 0, "{sql_type}: {wrong} keys disagree");
    }
}

fn int_keys(from: i64, to: i64) -> Vec<String> {
    (from..to).map(|i| i.to_string()).collect()
}
