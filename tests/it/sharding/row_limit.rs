//! An Execute row limit on a read merged from several shards: the client gets at most that many rows
//! and then PortalSuspended, as from one PostgreSQL; fewer rows left than the limit end with
//! CommandComplete.

use postgres_protocol::message::frontend;

use crate::harness::raw::{RawClient, Reply};
use crate::harness::sharded::Sharded;
use crate::harness::shared;

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

fn row(v: &str) -> Reply {
    Reply::Row(vec![Some(v.to_owned())])
}

#[tokio::test]
async fn a_row_limit_suspends_a_merged_read() {
    let s = Sharded::start(shared(), "").await;
    let client = s.proxy.client().await;
    let values: Vec<String> = (1..=50)
        .map(|i| format!("({i}, {}, 'n{i}')", i % 3))
        .collect();
    let insert = format!(
        "INSERT INTO items (id, grp, name) VALUES {}",
        values.join(", ")
    );
    client.batch_execute(&insert).await.unwrap();
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    let (parsed, bound, suspended, done) = (
        Reply::Other(b'1'),
        Reply::Other(b'2'),
        Reply::Other(b's'),
        Reply::Other(b'C'),
    );
    // Sorted, with OFFSET: rows 6 and 7 of the merged order, then suspended.
    let replies = execute(&mut c, "SELECT id FROM items ORDER BY id DESC OFFSET 5", 2).await;
    assert_eq!(
        replies,
        [
            parsed.clone(),
            bound.clone(),
            row("45"),
            row("44"),
            suspended.clone(),
            Reply::Ready(b'I')
        ]
    );
    // Exactly as many rows as the limit: PostgreSQL suspends too (it cannot know the portal ended).
    let replies = execute(&mut c, "SELECT id FROM items ORDER BY id LIMIT 3", 3).await;
    assert_eq!(replies[2..5], [row("1"), row("2"), row("3")]);
    assert_eq!(replies[5..], [suspended.clone(), Reply::Ready(b'I')]);
    // Fewer rows than the limit: the portal ran to its end.
    let replies = execute(&mut c, "SELECT id FROM items WHERE id > 48 ORDER BY id", 10).await;
    assert_eq!(
        replies,
        [
            parsed.clone(),
            bound.clone(),
            row("49"),
            row("50"),
            done,
            Reply::Ready(b'I')
        ]
    );
    // Groups combine from every shard's rows before the limit applies.
    let replies = execute(
        &mut c,
        "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY grp",
        1,
    )
    .await;
    assert_eq!(
        replies,
        [
            parsed,
            bound,
            Reply::Row(vec![Some("0".into()), Some("16".into())]),
            suspended,
            Reply::Ready(b'I')
        ]
    );
    // The connection goes on as usual.
    let rows: Vec<Reply> = c.simple("SELECT 1").await;
    assert!(rows.contains(&row("1")), "{rows:?}");
}
