//! COPY FROM STDIN into a sharded table: every row lands on the shard that owns its key (checked on
//! each shard directly), in text, CSV and binary format, with or without a column list; a bad row, a
//! shard's error or the client's CopyFail leaves no row on any shard, and the session goes on.

use bytes::Bytes;
use futures_util::SinkExt;
use shardgate::sharding::{KeyValue, Placement, ShardId, TableKind};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::harness::sharded::Sharded;
use crate::harness::tools::run;
use crate::harness::{shared, sqlstate};

/// Sends `data` in CopyData messages of `chunk` bytes; the rows copied, or the error.
async fn copy(
    c: &Client,
    sql: &str,
    data: &[u8],
    chunk: usize,
) -> Result<u64, tokio_postgres::Error> {
    let sink = c.copy_in::<_, Bytes>(sql).await?;
    futures_util::pin_mut!(sink);
    for part in data.chunks(chunk) {
        sink.send(Bytes::copy_from_slice(part)).await?;
    }
    sink.finish().await
}

/// The users rows through shardgate (a read over every shard).
async fn users(c: &Client) -> i64 {
    c.query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0)
}

/// On each shard directly: the ids of `users` there, sorted.
async fn ids_by_shard(s: &Sharded) -> Vec<Vec<i64>> {
    let mut all = Vec::new();
    for i in 0..s.dbs.len() {
        let c = s.direct(shared(), i).await;
        let rows = c
            .query("SELECT id FROM users ORDER BY id", &[])
            .await
            .unwrap();
        all.push(rows.iter().map(|r| r.get(0)).collect());
    }
    all
}

/// Where the map puts each id, as `ids_by_shard` would list them.
fn expected(s: &Sharded, ids: impl Iterator<Item = i64>) -> Vec<Vec<i64>> {
    let map = s.map();
    let Some(TableKind::Sharded(t)) = map.table("users").map(|t| t.kind.clone()) else {
        panic!("users is sharded")
    };
    let mut all = vec![Vec::new(); s.dbs.len()];
    for id in ids {
        match map.place(&t, &KeyValue::Int(id)) {
            Placement::Shard(ShardId(i)) => all[i].push(id),
            other => panic!("{other:?}"),
        }
    }
    for v in &mut all {
        v.sort();
    }
    all
}

#[tokio::test]
async fn rows_land_on_the_shard_of_their_key_in_every_format() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    // Text, with a column list, cut into CopyData messages that split rows and escapes.
    let mut text = String::new();
    for id in 1..=300 {
        text.push_str(&format!("{id}\tuser\\t{id}@example.com\n"));
    }
    assert_eq!(
        copy(&c, "COPY users (id, email) FROM STDIN", text.as_bytes(), 7)
            .await
            .unwrap(),
        300
    );
    // CSV with a header and no column list (the table's own order): quoted commas and newlines.
    let mut csv = String::from("id,email\n");
    for id in 301..=400 {
        csv.push_str(&format!("\"{id}\",\"a,\"\"b\"\"\nc{id}\"\n"));
    }
    let sql = "COPY users FROM STDIN WITH (FORMAT csv, HEADER true)";
    assert_eq!(copy(&c, sql, csv.as_bytes(), 1000).await.unwrap(), 100);
    // Binary, as asyncpg and tokio-postgres write it.
    let sink = c
        .copy_in("COPY users (id, email) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT]);
    futures_util::pin_mut!(writer);
    for id in 401..=500i64 {
        writer
            .as_mut()
            .write(&[&id, &format!("b{id}")])
            .await
            .unwrap();
    }
    assert_eq!(writer.finish().await.unwrap(), 100);
    // psql sends its COPY as a simple Query.
    let mut script = String::from("COPY users (id, email) FROM STDIN;\n");
    for id in 501..=550 {
        script.push_str(&format!("{id}\tp{id}\n"));
    }
    script.push_str("\\.\n");
    let mut psql = s.proxy.command("psql", "app", "secret");
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    let out = run(psql, &script).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ids_by_shard(&s).await, expected(&s, 1..=550));
    // Quoted and escaped text arrived as it was meant.
    for (id, want) in [(333i64, "a,\"b\"\nc333"), (7, "user\t7@example.com")] {
        let row = c
            .query_one("SELECT email FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), want);
    }
}

#[tokio::test]
async fn a_failed_copy_leaves_no_row_on_any_shard() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    c.execute("INSERT INTO users (id, email) VALUES (50, 'there')", &[])
        .await
        .unwrap();
    let before = ids_by_shard(&s).await;
    let rows =
        |ids: std::ops::RangeInclusive<i64>| ids.map(|id| format!("{id}\tx\n")).collect::<String>();
    // A NULL key: shardgate refuses the row.
    let data = format!("{}\\N\tnull key\n{}", rows(1..=20), rows(21..=40));
    let e = copy(&c, "COPY users (id, email) FROM STDIN", data.as_bytes(), 64)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22P04"), "{e}");
    // Bad data at the very end: a last row (no newline) with a NULL key; an unclosed CSV quote.
    let data = format!("{}\\N\tlast", rows(1..=20));
    let e = copy(&c, "COPY users (id, email) FROM STDIN", data.as_bytes(), 64)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22P04"), "{e}");
    let sql = "COPY users (id, email) FROM STDIN (FORMAT csv)";
    let e = copy(&c, sql, b"1,a\n2,\"open", 64).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("22P04"), "{e}");
    // A duplicate key: one shard's COPY fails, and the others roll back with it.
    let e = copy(
        &c,
        "COPY users (id, email) FROM STDIN",
        rows(41..=60).as_bytes(),
        64,
    )
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"), "{e}");
    let message = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("on shard s"), "{message}");
    // The same early in a long COPY: the failed shard's error and ReadyForQuery are read while rows
    // still stream (its COPY is over; it must not be sent CopyDone and waited on).
    let long = format!("{}{}", rows(41..=60), rows(1000..=60_000));
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        copy(
            &c,
            "COPY users (id, email) FROM STDIN",
            long.as_bytes(),
            8192,
        ),
    )
    .await
    .expect("a failed long COPY ends")
    .unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"), "{e}");
    // The client gives up: CopyFail (the sink dropped unfinished).
    {
        let sink = c
            .copy_in::<_, Bytes>("COPY users (id, email) FROM STDIN")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(Bytes::from(rows(61..=80))).await.unwrap();
    }
    assert_eq!(ids_by_shard(&s).await, before);
    // The session goes on, and so does COPY, on servers that went back to the pools clean (the
    // last one used is the next one taken, so one left in a COPY or a transaction would be met).
    for _ in 0..4 {
        assert_eq!(users(&c).await, 1);
    }
    assert_eq!(
        copy(
            &c,
            "COPY users (id, email) FROM STDIN",
            rows(100..=110).as_bytes(),
            5
        )
        .await
        .unwrap(),
        11
    );
    assert_eq!(users(&c).await, 12);
}

/// A statement sent in the middle of a one-shard COPY (pipelined before the CopyInResponse, as the
/// fuzzer did) fails the COPY as PostgreSQL would, and is itself dropped; nothing waits on a server
/// that takes only COPY data (it ignores the Flush shardgate would ask with).
#[tokio::test]
async fn a_statement_during_a_copy_fails_it() {
    use crate::harness::raw::{RawClient, Reply, first_error};
    use postgres_protocol::message::frontend;
    let s = Sharded::start(shared(), "").await;
    let mut c = RawClient::login(s.proxy.addr, "trustuser", "app").await;
    c.send(|b| {
        frontend::query(
            "/* shardgate: shard=s0 */ COPY users (id, email) FROM STDIN",
            b,
        )
        .unwrap();
        frontend::query("SET shardgate.shard = 's1'", b).unwrap();
        frontend::copy_done(b);
    })
    .await;
    let replies = tokio::time::timeout(std::time::Duration::from_secs(20), c.until_ready())
        .await
        .expect("the COPY ends");
    assert_eq!(first_error(&replies), Some("57014"), "{replies:?}");
    // The session goes on.
    let rows = c.simple("SELECT count(*) FROM users").await;
    assert!(matches!(rows.last(), Some(Reply::Ready(b'I'))), "{rows:?}");
}
