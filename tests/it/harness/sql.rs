//! Small helpers around SQL errors and server activity.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

/// The SQLSTATE a tokio-postgres error carries, if the server (or shardgate) sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// The first column of the one row `sql` returns.
pub async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(c: &Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The rows of a simple query, each cell as text (NULL as "").
pub async fn text_rows(c: &Client, sql: &str) -> Vec<Vec<String>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The pid of the backend running exactly `query` right now, seen through a direct client; waits up to
/// 10 s for it to show up.
pub async fn active_backend(direct: &Client, query: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = direct
            .query_opt(
                "select pid from pg_stat_activity where query = $1 and state = 'active' limit 1",
                &[&query],
            )
            .await
            .expect("pg_stat_activity");
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(Instant::now() < deadline, "no backend is running {query:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
