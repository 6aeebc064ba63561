//! An Execute row limit on a read merged from several shards: the client gets at most that many rows
//! and then PortalSuspended, as from one PostgreSQL; fewer rows left than the limit end with
//! CommandComplete.

use std::net::SocketAddr;

use postgres_protocol::message::frontend;

use crate::harness::raw::{RawClient, Reply};
use crate::harness::sharded::{SCHEMA, Sharded};
use crate::harness::{client, shared};

/// Parse, Bind and Execute with `max_rows`, then Sync; the replies through ReadyForQuery.
async fn execute(c: &mut RawClient, sql: &str, max_rows: i32) -> Vec<Reply> {
    c.send(|b| {
        frontend::parse("", sql, [], b).expect("a Parse message");
        frontend::bind(
            "",
            "",
            [],
            [] as [&str; 0],
            |_, _| Ok(postgres_protocol::IsNull::No),
            [0],
            b,
        )
        .map_err(|_| "bind")
        .expect("a Bind message");
        frontend::execute("", max_rows, b).expect("an Execute message");
        frontend::sync(b);
    })
    .await;
    c.until_ready().await
}

/// Sorted with OFFSET; exactly as many rows as the limit (PostgreSQL suspends: it cannot know the
/// portal ended); fewer rows than the limit (it runs to its end); groups combined before the limit.
const CASES: [(&str, i32); 4] = [
    ("SELECT id FROM items ORDER BY id DESC OFFSET 5", 2),
    ("SELECT id FROM items ORDER BY id LIMIT 3", 3),
    ("SELECT id FROM items WHERE id > 48 ORDER BY id", 10),
    (
        "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY grp",
        1,
    ),
];

#[tokio::test]
async fn a_row_limit_suspends_a_merged_read() {
    let s = Sharded::start(shared(), "").await;
    let values: Vec<String> = (1..=50)
        .map(|i| format!("({i}, {}, 'n{i}')", i % 3))
        .collect();
    let insert = format!(
        "INSERT INTO items (id, grp, name) VALUES {}",
        values.join(", ")
    );
    s.proxy.client().await.batch_execute(&insert).await.unwrap();
    // The oracle: one PostgreSQL with the same rows.
    let oracle_db = shared().create_db("oracle");
    let oracle = client(shared(), &oracle_db).await;
    oracle.batch_execute(SCHEMA).await.unwrap();
    oracle.batch_execute(&insert).await.unwrap();
    let oracle_addr = SocketAddr::from(([127, 0, 0, 1], shared().port));
    let mut o = RawClient::login(oracle_addr, "postgres", &oracle_db).await;
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    for (sql, max_rows) in CASES {
        let want = execute(&mut o, sql, max_rows).await;
        assert_eq!(
            execute(&mut c, sql, max_rows).await,
            want,
            "{sql}, {max_rows} rows"
        );
    }
    // What the oracle said, spelled out once: rows 6 and 7 of the merged order, then suspended.
    let rows = |v: &[&str]| {
        v.iter()
            .map(|v| Reply::Row(vec![Some(v.to_string())]))
            .collect::<Vec<_>>()
    };
    let replies = execute(&mut c, CASES[0].0, CASES[0].1).await;
    assert_eq!(replies[2..4], rows(&["45", "44"]));
    assert_eq!(replies[4..], [Reply::Other(b's'), Reply::Ready(b'I')]);
    // The connection goes on as usual.
    let replies = c.simple("SELECT 1").await;
    assert!(replies.contains(&rows(&["1"])[0]), "{replies:?}");
}
