//! Live reloads of the shard map: a bad edit is refused with file:line (by the file watch and by admin
//! RELOAD) while traffic goes on; a good one is swapped in, and a transaction already running finishes
//! on the map it started with.

use std::time::Duration;

use shardgate::sharding::{KeyValue, Placement, ShardId, TableKind};

use crate::harness::connect_as;
use crate::harness::sharded::Sharded;
use crate::harness::shared;

fn owner(s: &Sharded, id: i64) -> usize {
    let map = s.map();
    let Some(TableKind::Sharded(t)) = map.table("users").map(|t| &t.kind) else {
        unreachable!()
    };
    match map.place(t, &KeyValue::Int(id)) {
        Placement::Shard(ShardId(i)) => i,
        other => panic!("{other:?}"),
    }
}

async fn count(s: &Sharded, shard: usize, id: i64) -> i64 {
    s.direct(shared(), shard)
        .await
        .query_one("SELECT count(*) FROM users WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

/// Waits for the file watch (every 100 ms in tests) to have seen the file.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn bad_edits_are_refused_good_ones_swap_and_running_transactions_keep_their_map() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    let admin = connect_as(&format!(
        "host=127.0.0.1 port={} user=admin password=admin dbname=shardgate",
        s.proxy.addr.port()
    ))
    .await
    .unwrap();
    let good = std::fs::read_to_string(&s.map_path).unwrap();
    let on0: Vec<i64> = (1..200).filter(|&k| owner(&s, k) == 0).take(3).collect();

    // A bad edit: the watch refuses it, RELOAD says where, traffic goes on with the old map.
    let bad = good.replace("buckets: [8-15]", "buckets: [8-14]");
    std::fs::write(&s.map_path, &bad).unwrap();
    settle().await;
    let e = admin.simple_query("RELOAD").await.unwrap_err();
    let text = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(
        text.contains("shardmap.yaml:2:") && text.contains("bucket"),
        "{text}"
    );
    c.execute("INSERT INTO users (id, email) VALUES ($1, 'a')", &[&on0[0]])
        .await
        .unwrap();
    assert_eq!(count(&s, 0, on0[0]).await, 1);

    // A transaction starts under version 1 (every bucket of on0 on s0)...
    std::fs::write(&s.map_path, &good).unwrap();
    settle().await;
    c.batch_execute("BEGIN").await.unwrap();
    c.execute("INSERT INTO users (id, email) VALUES ($1, 'b')", &[&on0[1]])
        .await
        .unwrap();
    // ...then version 2 moves every bucket to s1.
    let moved = good
        .replace("version: 1", "version: 2")
        .replace("buckets: [0-7]}", "buckets: []}")
        .replace("buckets: [8-15]", "buckets: [0-15]");
    std::fs::write(&s.map_path, &moved).unwrap();
    settle().await;
    // The running transaction finishes on its old map: on0[2] still goes to s0 with it.
    c.execute("INSERT INTO users (id, email) VALUES ($1, 'c')", &[&on0[2]])
        .await
        .unwrap();
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&s, 0, on0[1]).await, 1);
    assert_eq!(count(&s, 0, on0[2]).await, 1);
    // New statements use version 2.
    let fresh = on0[0] + 1000;
    c.execute("INSERT INTO users (id, email) VALUES ($1, 'd')", &[&fresh])
        .await
        .unwrap();
    assert_eq!(count(&s, 1, fresh).await, 1);
    let shown = admin.simple_query("SHOW MAP").await.unwrap();
    let versions: Vec<&str> = shown
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get("version"),
            _ => None,
        })
        .collect();
    assert_eq!(versions, ["2", "2"], "{shown:?}");
}
