//! Differential: one dataset in a plain PostgreSQL (the oracle) and through shardgate over 3 shards; every
//! query must give the same result on both, in text (simple protocol) and binary (extended protocol,
//! raw result bytes compared). In order when ORDER BY is total, as multisets otherwise.

use std::time::Duration;

use futures_util::StreamExt;
use postgres_protocol::message::frontend;
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::harness::raw::bind_execute;
use crate::harness::sharded::{SCHEMA, Sharded};
use crate::harness::{RawClient, Reply, client, one, shared, sqlstate};

/// A column value's raw binary bytes, whatever its type.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Three shards (`extra` in their map) holding the dataset, loaded through shardgate, and a client.
async fn with_dataset(extra: &str) -> (Sharded, Client) {
    let s = Sharded::start_n(shared(), 3, extra).await;
    let c = s.proxy.client().await;
    for stmt in dataset().split_inclusive(';') {
        c.batch_execute(stmt).await.unwrap();
    }
    (s, c)
}

fn dataset() -> String {
    let mut rows = Vec::new();
    for id in 1..=300i64 {
        let null = |every: i64, v: String| {
            if id % every == 0 {
                "NULL".to_owned()
            } else {
                v
            }
        };
        rows.push(format!(
            "({id}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            null(17, (id % 7).to_string()),
            null(13, format!("{}.{:02}", id * 37 % 1000, id % 100)),
            null(11, format!("{}", (id as f64 * 1.37).sin() * 100.0)),
            null(19, format!("'n{}'", id * 7919 % 97)),
            null(23, if id % 3 == 0 { "true" } else { "false" }.into()),
            null(29, format!("date '2024-01-01' + {}", id % 60)),
            null(
                31,
                format!(
                    "timestamptz '2024-03-30 12:00:00+00' + interval '{} hours'",
                    id * 5
                )
            ),
            null(37, format!("md5('{id}')::uuid")),
            null(41, (id % 50 - 25).to_string()),
            null(
                43,
                format!(
                    "timestamp '2024-03-30 12:00:00' + interval '{} minutes'",
                    id * 7 % 500
                )
            ),
        ));
    }
    let mut sql: String = rows
        .chunks(50)
        .map(|c| {
            format!(
                "INSERT INTO items (id, grp, price, score, name, flag, day, at, uid, qty, ts) VALUES {};",
                c.join(", ")
            )
        })
        .collect();
    // Users and their orders, co-located by user id; users 101 to 120 have no orders.
    let users: Vec<String> = (1..=120)
        .map(|id| format!("({id}, 'u{}@example.com')", id * 31 % 120))
        .collect();
    sql.push_str(&format!(
        "INSERT INTO users (id, email) VALUES {};",
        users.join(", ")
    ));
    let orders: Vec<String> = (1..=400)
        .map(|id| {
            format!(
                "({id}, {}, {}.{:02})",
                id % 100 + 1,
                id * 13 % 500,
                id % 100
            )
        })
        .collect();
    for chunk in orders.chunks(100) {
        sql.push_str(&format!(
            "INSERT INTO orders (id, user_id, amount) VALUES {};",
            chunk.join(", ")
        ));
    }
    sql
}

/// The queries: hand-written for each feature, and generated ORDER BY / LIMIT / GROUP BY combinations.
/// `true` when the order of the rows is defined (compared in order), else compared as multisets.
fn queries() -> Vec<(String, bool)> {
    let mut q: Vec<(String, bool)> = [
        "SELECT * FROM items",
        "SELECT id, name FROM items WHERE grp = 3",
        "SELECT id FROM items WHERE price > 500",
        "SELECT count(*) FROM items",
        "SELECT count(*), count(grp), count(name) FROM items",
        "SELECT sum(grp), sum(price), sum(qty) FROM items",
        "SELECT min(id), max(id), min(price), max(price), min(name), max(name) FROM items",
        "SELECT min(day), max(day), min(at), max(at), min(score), max(score) FROM items",
        "SELECT bool_and(flag), bool_or(flag), every(flag) FROM items",
        "SELECT pg_catalog.count(*), PG_CATALOG.sum(qty), pg_catalog.max(name), pg_catalog.avg(price) FROM items",
        "SELECT count(*) FROM items WHERE id < 0",
        "SELECT sum(price), max(name) FROM items WHERE id < 0",
        "SELECT grp, count(*) FROM items GROUP BY grp",
        "SELECT flag, count(*), sum(price), min(at) FROM items GROUP BY flag",
        "SELECT grp, flag, count(*) FROM items GROUP BY grp, flag",
        "SELECT grp, sum(qty), bool_or(flag) FROM items GROUP BY 1",
        "SELECT day, count(*) FROM items GROUP BY day",
        "SELECT grp FROM items GROUP BY grp",
        "SELECT grp, -grp * 2 + 1 AS g2, 'x' AS tag, count(*) FROM items GROUP BY grp",
        "SELECT i.grp, upper(grp::text), coalesce(GRP, 0), CASE WHEN grp > 2 THEN 'hi' END, count(*) FROM items i GROUP BY i.grp",
        "SELECT count(*) FROM items WHERE name LIKE 'n1%'",
        // A count cast (node-postgres users cast it to int): the shards cast, the merge adds.
        "SELECT count(*)::int, CAST(count(grp) AS smallint), count(name)::numeric, count(*)::float8 FROM items",
        "SELECT grp, count(*)::integer AS n FROM items GROUP BY grp ORDER BY n DESC, grp",
        "SELECT count(*)::int4 FROM items WHERE id < 0",
        "SELECT avg(price), avg(grp), avg(qty), avg(id) FROM items",
        "SELECT avg(price) FROM items WHERE id < 0",
        "SELECT grp, avg(price), avg(qty) AS q, count(*) FROM items GROUP BY grp",
        "SELECT flag, avg(id) FROM items GROUP BY flag",
        "SELECT DISTINCT id, grp FROM items",
        "SELECT DISTINCT items.id, flag FROM items WHERE grp > 2",
        "SELECT count(DISTINCT id) FROM items",
        "SELECT grp, count(DISTINCT id), count(*) FROM items GROUP BY grp",
        "SELECT id, sum(qty) FROM items GROUP BY id HAVING sum(qty) > 10",
        "SELECT id, grp, avg(price), count(DISTINCT name) FROM items GROUP BY id, grp HAVING count(*) = 1",
        // HAVING after the groups combine: aggregates shown or not, constants of other number types,
        // NULL logic, BETWEEN, IN, a GROUP BY column, no GROUP BY at all.
        "SELECT grp, count(*) FROM items GROUP BY grp HAVING count(*) > 40",
        "SELECT grp FROM items GROUP BY grp HAVING sum(price) >= 6000.5",
        "SELECT grp, count(*) FROM items GROUP BY grp HAVING avg(qty) < 0",
        "SELECT grp, avg(price) FROM items GROUP BY grp HAVING avg(price) > 480 OR grp IS NULL",
        "SELECT flag, max(name) FROM items GROUP BY flag HAVING max(name) > 'n9' AND min(day) <= '2024-01-01'",
        "SELECT day, count(*) FROM items GROUP BY day HAVING count(*) BETWEEN 4 AND 5",
        "SELECT day, count(*) FROM items GROUP BY day HAVING count(*) NOT BETWEEN 4 AND 5",
        "SELECT qty, sum(grp) FROM items GROUP BY qty HAVING sum(grp) IN (0, 7, 12)",
        "SELECT qty, sum(grp) FROM items GROUP BY qty HAVING sum(grp) IS NULL OR NOT (qty > 0)",
        "SELECT grp, bool_or(flag) FROM items GROUP BY grp HAVING bool_and(flag) = false",
        "SELECT grp, count(*) FROM items GROUP BY grp HAVING grp <> 3 AND max(at) > '2024-04-30 00:00:00+00'",
        "SELECT count(*) FROM items HAVING count(*) > 1",
        "SELECT count(*), sum(qty) FROM items HAVING count(*) > 1000",
        "SELECT grp, min(score) FROM items GROUP BY grp HAVING min(score) < -99.5",
        "SELECT grp, count(*) FROM items GROUP BY grp HAVING min(at) < '2024-04-01 00:00:00+00' AND max(day) >= '2024-02-28'",
        // Joins of co-located tables on the shard key: each shard joins its own rows.
        "SELECT u.id, u.email, o.id, o.amount FROM users u JOIN orders o ON o.user_id = u.id",
        "SELECT u.email, o.amount FROM orders o JOIN users u ON u.id = o.user_id WHERE o.amount > 400",
        "SELECT u.id, count(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id",
        // Grouped by the key of the table whose rows are kept: whole on each shard (Django's annotate).
        "SELECT u.id, u.email, count(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id",
        // The outer join's NULL keys come from every shard: one NULL group, one NULL row.
        "SELECT o.user_id, count(*) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY o.user_id",
        "SELECT count(DISTINCT o.user_id), count(*) FROM users u LEFT JOIN orders o ON o.user_id = u.id",
        // As Django writes it: quoted names, no aliases.
        "SELECT \"orders\".\"user_id\", count(*) FROM \"users\" LEFT OUTER JOIN \"orders\" ON (\"users\".\"id\" = \"orders\".\"user_id\") GROUP BY \"orders\".\"user_id\"",
        "SELECT o.user_id, count(*) FROM orders o RIGHT JOIN users u ON o.user_id = u.id GROUP BY o.user_id",
        "SELECT u.id, sum(o.amount), max(o.id) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id HAVING count(*) > 3",
        "SELECT count(*), sum(o.amount), avg(o.amount), min(u.email) FROM users u JOIN orders o ON o.user_id = u.id",
        "SELECT u.email, count(*) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.email HAVING sum(o.amount) > 1000",
        "SELECT u.id FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
    ]
    .iter()
    .map(|s| (s.to_string(), false))
    .collect();
    q.extend(
        [
            "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY grp",
            "SELECT grp, count(*) AS n FROM items GROUP BY grp ORDER BY n DESC, grp",
            "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY grp NULLS FIRST LIMIT 3",
            "SELECT grp, sum(price) FROM items GROUP BY grp ORDER BY 2 DESC NULLS LAST, 1 LIMIT 4 OFFSET 1",
            "SELECT count(*) FROM items LIMIT 1",
            "SELECT DISTINCT id, name FROM items ORDER BY id DESC LIMIT 20",
            "SELECT id, avg(price) FROM items GROUP BY id HAVING avg(price) > 100 ORDER BY avg(price) DESC, id LIMIT 15",
            "SELECT grp, count(*) AS n FROM items GROUP BY grp HAVING count(*) > 40 ORDER BY n DESC, grp LIMIT 3",
            "SELECT o.id, o.amount, u.email FROM users u JOIN orders o ON o.user_id = u.id ORDER BY o.amount DESC, o.id LIMIT 10",
            "SELECT u.id, count(o.id) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id ORDER BY n, u.id LIMIT 25",
            "SELECT u.email, sum(o.amount) AS total FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.email ORDER BY total DESC, u.email LIMIT 5",
            "SELECT day, avg(price) FROM items GROUP BY day HAVING avg(price) > 400 ORDER BY 2 DESC, 1 LIMIT 5 OFFSET 2",
            "SELECT id, count(*) FROM items GROUP BY id ORDER BY id LIMIT 5 OFFSET 100",
            "SELECT grp, avg(price) AS a FROM items GROUP BY grp ORDER BY a DESC NULLS LAST, grp",
            "SELECT day, avg(qty) FROM items GROUP BY day ORDER BY 2, 1 NULLS FIRST LIMIT 9",
            "SELECT count(*) FROM items OFFSET 1",
            "SELECT * FROM items ORDER BY id",
            "SELECT * FROM items ORDER BY id DESC LIMIT 7",
            "SELECT id FROM items ORDER BY id LIMIT 10 OFFSET 290",
            "SELECT id FROM items ORDER BY id LIMIT 0",
            "SELECT id FROM items ORDER BY id OFFSET 1000",
            "SELECT name, id FROM items ORDER BY name COLLATE \"C\", id",
            "SELECT id, price FROM items ORDER BY price, id",
            // A bare ORDER BY name is an output column's name first, folded like PostgreSQL folds it.
            "SELECT id AS raw, id * -1 AS id, name FROM items ORDER BY id LIMIT 20",
            "SELECT price AS Total, id FROM items ORDER BY total, id",
            "SELECT *, price * 2 AS p2 FROM items ORDER BY p2, id",
        ]
        .iter()
        .map(|s| (s.to_string(), true)),
    );
    let columns = [
        "grp",
        "price",
        "score",
        "flag",
        "day",
        "at",
        "ts",
        "uid",
        "qty",
        "name COLLATE \"C\"",
    ];
    for col in columns {
        for dir in ["", " DESC"] {
            for nulls in ["", " NULLS FIRST", " NULLS LAST"] {
                let shown = col.split(' ').next().unwrap();
                q.push((
                    format!("SELECT id, {shown} FROM items ORDER BY {col}{dir}{nulls}, id"),
                    true,
                ));
                q.push((
                    format!("SELECT id, {shown} FROM items ORDER BY {col}{dir}{nulls}, id DESC LIMIT 5 OFFSET 3"),
                    true,
                ));
                // Sorted by a column that is not shown.
                q.push((
                    format!("SELECT id FROM items ORDER BY {col}{dir}{nulls}, id LIMIT 12"),
                    true,
                ));
            }
        }
    }
    // sum() of float8 is left out: float addition depends on the order of the rows, so even one
    // PostgreSQL gives different last digits for another physical order; see float_sums_agree_closely.
    for agg in [
        "count(*)",
        "sum(price)",
        "min(name)",
        "max(at)",
        "min(score)",
        "bool_and(flag)",
        "bool_or(flag)",
        "count(uid)",
        "sum(qty)",
        "max(day)",
        "min(ts)",
    ] {
        for key in ["grp", "flag", "day", "qty"] {
            q.push((
                format!("SELECT {key}, {agg} FROM items GROUP BY {key}"),
                false,
            ));
            q.push((
                format!("SELECT {key}, {agg} AS a FROM items GROUP BY {key} ORDER BY {key} NULLS FIRST LIMIT 4"),
                true,
            ));
        }
        q.push((format!("SELECT {agg} FROM items WHERE grp = 2"), false));
        q.push((
            format!(
                "SELECT grp, {agg} FROM items GROUP BY grp HAVING count(*) > 41 OR {agg} IS NULL"
            ),
            false,
        ));
    }
    for g in 0..7 {
        q.push((
            format!("SELECT id, name, price FROM items WHERE grp = {g}"),
            false,
        ));
        q.push((
            format!("SELECT count(*), sum(price), min(at) FROM items WHERE grp = {g}"),
            false,
        ));
    }
    for limit in [1, 5, 50] {
        for offset in [0, 7, 299] {
            q.push((
                format!("SELECT id, price FROM items ORDER BY price DESC NULLS LAST, id LIMIT {limit} OFFSET {offset}"),
                true,
            ));
        }
    }
    q
}

/// The text result (simple protocol), each row as its cells joined.
async fn text(c: &Client, sql: &str) -> Result<Vec<String>, String> {
    let messages = c.simple_query(sql).await.map_err(|e| e.to_string())?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("∅").to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}

/// Each row as its raw cells.
fn raw_cells(rows: &[tokio_postgres::Row]) -> Vec<Vec<Raw>> {
    rows.iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Raw>(i)).collect())
        .collect()
}

/// The binary result (extended protocol), each row as its raw cells.
async fn binary(c: &Client, sql: &str) -> Result<Vec<Vec<Raw>>, String> {
    let rows = c.query(sql, &[]).await.map_err(|e| e.to_string())?;
    Ok(raw_cells(&rows))
}

/// The binary result of `sql` with parameters `p`.
async fn rows(c: &Client, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Vec<Vec<Raw>> {
    let rows = c.query(sql, p).await;
    raw_cells(&rows.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// The oracle and the sharded setup, loaded with the same rows.
async fn loaded() -> (Sharded, Client, Client) {
    let cluster = shared();
    let (s, proxy) = with_dataset("").await;
    let oracle_db = cluster.create_db("oracle");
    let oracle = client(cluster, &oracle_db).await;
    oracle.batch_execute(SCHEMA).await.unwrap();
    for stmt in dataset().split_inclusive(';') {
        oracle.batch_execute(stmt).await.unwrap();
    }
    (s, oracle, proxy)
}

/// Records a difference between the oracle's result and shardgate's (in order, or as multisets).
fn differs<T: Ord + std::fmt::Debug>(
    sql: &str,
    format: &str,
    want: Result<Vec<T>, String>,
    got: Result<Vec<T>, String>,
    ordered: bool,
    bad: &mut Vec<String>,
) {
    let (mut want, mut got) = match (want, got) {
        (Ok(w), Ok(g)) => (w, g),
        (w, g) => {
            bad.push(format!("{sql} ({format}): oracle {w:?}\n  shardgate {g:?}"));
            return;
        }
    };
    if !ordered {
        want.sort();
        got.sort();
    }
    if want != got {
        bad.push(format!(
            "{sql} ({format}):\n  oracle    {want:?}\n  shardgate {got:?}"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_sums_agree_closely() {
    let (_s, oracle, proxy) = loaded().await;
    for sql in [
        "SELECT sum(score) FROM items",
        "SELECT grp, sum(score) FROM items GROUP BY grp ORDER BY grp",
        "SELECT flag, sum(score) FROM items GROUP BY flag ORDER BY flag",
        "SELECT avg(score) FROM items",
        "SELECT grp, avg(score) FROM items GROUP BY grp ORDER BY grp",
    ] {
        let (want, got) = (
            text(&oracle, sql).await.unwrap(),
            text(&proxy, sql).await.unwrap(),
        );
        assert_eq!(want.len(), got.len(), "{sql}");
        for (w, g) in want.iter().zip(&got) {
            let (w, g) = (w.rsplit('|').next().unwrap(), g.rsplit('|').next().unwrap());
            let (w, g): (f64, f64) = (w.parse().unwrap(), g.parse().unwrap());
            assert!(
                (w - g).abs() <= 1e-12 * w.abs().max(1.0),
                "{sql}: {w} vs {g}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_gather_matches_a_single_postgresql() {
    let cluster = shared();
    let (s, oracle, proxy) = loaded().await;
    // Every shard got some rows.
    for i in 0..3 {
        let n: i64 = s
            .direct(cluster, i)
            .await
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get(0);
        assert!(n > 50, "shard {i} has {n} rows");
    }
    let queries = queries();
    assert!(queries.len() >= 300, "{} queries", queries.len());
    let mut bad = Vec::new();
    for (sql, ordered) in &queries {
        let (want, got) = (text(&oracle, sql).await, text(&proxy, sql).await);
        differs(sql, "text", want, got, *ordered, &mut bad);
        let (want, got) = (binary(&oracle, sql).await, binary(&proxy, sql).await);
        differs(sql, "binary", want, got, *ordered, &mut bad);
    }
    assert!(
        bad.is_empty(),
        "{} of {} queries differ:\n{}",
        bad.len(),
        queries.len(),
        bad.join("\n")
    );
}

/// HAVING with Bind parameters (binary, of other types than the aggregate's) filters the combined
/// groups like a single PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn having_reads_bind_parameters() {
    let (_s, oracle, proxy) = loaded().await;
    let sql = "SELECT grp, count(*), avg(price) FROM items GROUP BY grp \
               HAVING count(*) > $1::int4 AND avg(price) < $2::float8 ORDER BY grp";
    for (n, p) in [(40i32, 600.0f64), (0, 1e9), (41, 0.5)] {
        let (want, got) = (
            rows(&oracle, sql, &[&n, &p]).await,
            rows(&proxy, sql, &[&n, &p]).await,
        );
        assert_eq!(got, want, "{n} {p}");
    }
    let sql = "SELECT grp, sum(qty) FROM items GROUP BY grp HAVING sum(qty) >= $1 ORDER BY grp";
    for n in [-100i64, 0, 50] {
        let (want, got) = (
            rows(&oracle, sql, &[&n]).await,
            rows(&proxy, sql, &[&n]).await,
        );
        assert_eq!(got, want, "{n}");
    }
    assert!(rows(&proxy, sql, &[&Option::<i64>::None]).await.is_empty());
}

/// LIMIT and OFFSET parameters (types left to the server, as most drivers do) stay in the shards'
/// statement even where the shards must return every row (groups combine first; OFFSET without
/// LIMIT), so that the client's Bind fits it; NULL means no LIMIT, no OFFSET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_offset_parameters() {
    let (_s, oracle, proxy) = loaded().await;
    let cases: [(&str, Vec<Option<i64>>); 6] = [
        (
            "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY 2 DESC, grp LIMIT $1",
            vec![Some(3)],
        ),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY grp LIMIT $1 OFFSET $2",
            vec![Some(2), Some(1)],
        ),
        (
            "SELECT id FROM items ORDER BY id OFFSET $1",
            vec![Some(250)],
        ),
        (
            "SELECT id FROM items ORDER BY id LIMIT $1 OFFSET $2",
            vec![Some(5), Some(10)],
        ),
        ("SELECT id FROM items ORDER BY id LIMIT $1", vec![None]),
        (
            "SELECT id FROM items ORDER BY id LIMIT 3 OFFSET $1",
            vec![None],
        ),
    ];
    for (sql, params) in cases {
        let p: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        assert_eq!(
            rows(&proxy, sql, &p).await,
            rows(&oracle, sql, &p).await,
            "{sql} {params:?}"
        );
    }
}

/// An enum (any type of the database's own) has another oid on each shard: its rows still merge,
/// grouped by it too; only an order by it is refused.
#[tokio::test]
async fn types_of_the_databases_own_merge() {
    let s = Sharded::start_n(shared(), 2, "").await;
    for shard in 0..2 {
        let d = s.direct(shared(), shard).await;
        // Shard 1 numbers its types differently.
        if shard == 1 {
            d.batch_execute("CREATE TYPE filler AS ENUM ('x')")
                .await
                .unwrap();
        }
        d.batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); ALTER TABLE items ADD COLUMN m mood",
        )
        .await
        .unwrap();
    }
    let c = s.proxy.client().await;
    let values: Vec<String> = (1..=30)
        .map(|g| format!("({g}, '{}')", ["sad", "ok", "happy"][g % 3]))
        .collect();
    c.batch_execute(&format!(
        "INSERT INTO items (id, m) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    let texts = text(&c, "SELECT id, m FROM items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(texts.len(), 30);
    assert_eq!(texts[0], "1|ok");
    // Groups by the enum.
    let grouped = c
        .simple_query("SELECT m, count(*) FROM items GROUP BY m")
        .await
        .unwrap()
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(grouped, 3);
    let e = c
        .simple_query("SELECT id FROM items ORDER BY m, id")
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a refusal");
    assert_eq!(db.code().code(), "0A000", "{}", db.message());
    assert!(
        db.message().contains("cannot be merged"),
        "{}",
        db.message()
    );
}

/// What cannot merge exactly is refused with 0A000 and the reason; the session goes on.
#[tokio::test]
async fn what_cannot_merge_is_refused() {
    let s = Sharded::start_n(shared(), 3, "").await;
    let c = s.proxy.client().await;
    for (sql, reason) in [
        ("SELECT avg(DISTINCT price) FROM items", "avg(DISTINCT"),
        // Another schema's function of a builtin's name is not the builtin.
        ("SELECT app.sum(qty) FROM items", "the aggregate app.sum()"),
        ("SELECT DISTINCT grp FROM items", "DISTINCT"),
        ("SELECT count(DISTINCT grp) FROM items", "count(DISTINCT"),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp HAVING max(name) LIKE 'n9%'",
            "an expression over aggregates (max(name) LIKE 'n9%')",
        ),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp HAVING max(qty) - min(qty) > 1",
            "an expression over aggregates",
        ),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp HAVING length(max(name)) > 1",
            "an expression over aggregates (length(max(name)))",
        ),
        (
            "SELECT id FROM items UNION SELECT id FROM items",
            "no shard key condition",
        ),
        (
            "SELECT count(*) + 1 FROM items",
            "an expression over aggregates",
        ),
        (
            "SELECT sum(qty)::int4 FROM items",
            "an expression over aggregates (sum(qty)::INT4)",
        ),
        ("SELECT grp, row_number() OVER () FROM items", "window"),
        // Aggregates that do not combine across shards, which must not pass for plain columns.
        ("SELECT stddev(price) FROM items", "the aggregate stddev()"),
        (
            "SELECT grp, string_agg(name, ',') FROM items GROUP BY grp",
            "the aggregate string_agg()",
        ),
        (
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY price) FROM items",
            "WITHIN GROUP",
        ),
        (
            "SELECT coalesce(sum(qty), 0) FROM items",
            "an expression over aggregates",
        ),
        // Each shard's plan: no rows to merge.
        (
            "EXPLAIN SELECT * FROM items",
            "EXPLAIN of a read over several shards",
        ),
        (
            "SELECT u.id, o.id FROM users u JOIN orders o ON o.id = u.id",
            "orders, users are not joined on their shard keys",
        ),
        // GROUP BY at is the column at (PostgreSQL reads input columns first), not the alias.
        (
            "SELECT date_trunc('day', at) AS at, count(*) FROM items GROUP BY at",
            "GROUP BY at not in the select list",
        ),
        (
            "SELECT grp, count(*) FROM items GROUP BY 3",
            "GROUP BY 3 not in the select list",
        ),
        // Differs from shard to shard: it would split the one row into one per shard.
        (
            "SELECT now() AS as_of, count(*) FROM items",
            "neither a GROUP BY expression nor made of them",
        ),
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db.code().code(), "0A000", "{sql}");
        assert!(db.message().contains(reason), "{sql}: {}", db.message());
        c.simple_query("SELECT 1").await.unwrap();
    }
}

/// An error on one shard reaches the client once, naming the shard; the session goes on.
#[tokio::test]
async fn an_error_on_one_shard_reaches_the_client_once() {
    let (s, c) = with_dataset("").await;
    for sql in [
        "SELECT id, 10 / (id - 5) FROM items ORDER BY id",
        "SELECT count(10 / (id - 5)) FROM items",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db.code().code(), "22012", "{sql}");
        assert!(db.message().starts_with("on shard s"), "{}", db.message());
        let e = c.query(sql, &[]).await.unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db.code().code(), "22012", "{sql}");
        assert!(db.message().starts_with("on shard s"), "{}", db.message());
        let n: i64 = c
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 300);
        // On the wire: one ErrorResponse, then ReadyForQuery, in both protocols.
        let mut raw = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
        let simple = raw.simple(sql).await;
        raw.send(|b| {
            frontend::parse("", sql, [], b).unwrap();
            bind_execute(b, "", &[]);
            frontend::sync(b);
        })
        .await;
        let extended = raw.until_ready().await;
        for replies in [simple, extended] {
            let errors: Vec<&Reply> = replies
                .iter()
                .filter(|r| matches!(r, Reply::Error { .. }))
                .collect();
            assert!(
                matches!(errors.as_slice(), [Reply::Error { code, .. }] if code == "22012"),
                "{sql}: {replies:?}"
            );
            assert_eq!(replies.last(), Some(&Reply::Ready(b'I')), "{sql}");
        }
    }
}

/// The shards are read at once: an error on one reaches the client while another is still busy, and
/// the busy one is cancelled.
#[tokio::test]
async fn an_error_is_not_held_up_by_a_slow_shard() {
    let (s, c) = with_dataset("").await;
    // The first shard sleeps 60 s on its first row; the others divide by zero.
    let slow = &s.dbs[0];
    for sql in [
        format!(
            "SELECT count(CASE WHEN current_database() = '{slow}' THEN pg_sleep(60)::text ELSE (1 / 0)::text END) FROM items"
        ),
        format!(
            "SELECT id FROM items WHERE CASE WHEN current_database() = '{slow}' THEN pg_sleep(60) IS NOT NULL ELSE 1 / 0 = 1 END ORDER BY id"
        ),
    ] {
        let e = tokio::time::timeout(Duration::from_secs(30), c.simple_query(&sql))
            .await
            .expect("the error arrives long before the slow shard would finish")
            .unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db.code().code(), "22012", "{sql}");
        c.simple_query("SELECT 1").await.unwrap();
    }
    // The slow shard's query was cancelled, not left sleeping.
    let direct = s.direct(shared(), 0).await;
    backends_running(&direct, "pg_sleep(60)", 0).await;
}

/// Rows in no order come from whichever shard has one: a shard that sent a row and then stalls holds
/// up neither the other shards' rows (they reach the client while it stalls) nor their errors.
#[tokio::test]
async fn an_unordered_read_is_not_held_up_by_a_shard_that_stalls_midway() {
    let (s, c) = with_dataset("").await;
    // A notice makes the server send what it holds (the row before), then it sleeps.
    c.batch_execute(
        "CREATE FUNCTION stall() RETURNS bool LANGUAGE plpgsql AS \
         $$ BEGIN RAISE NOTICE 'stalling'; PERFORM pg_sleep(60); RETURN true; END $$",
    )
    .await
    .unwrap();
    // Each shard's first row in scan order, and its row count.
    let (mut first, mut rows) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let direct = s.direct(shared(), i).await;
        first.push(one::<i64>(&direct, "SELECT id FROM items LIMIT 1").await);
        rows.push(one::<i64>(&direct, "SELECT count(*) FROM items").await);
    }
    let slow = &s.dbs[0];

    // The first shard sends a row and stalls; every row of the others arrives meanwhile.
    let sql = format!(
        "SELECT id FROM items WHERE current_database() <> '{slow}' OR id = {} OR stall()",
        first[0]
    );
    let expected = rows[1] + rows[2] + 1;
    let mut got = 0;
    let mut stream = None;
    let streamed = tokio::time::timeout(Duration::from_secs(20), async {
        let rows = stream.insert(Box::pin(
            c.query_raw(&sql, Vec::<i64>::new()).await.unwrap(),
        ));
        while got < expected {
            rows.next().await.expect("more rows").unwrap();
            got += 1;
        }
    })
    .await;
    // Cancelled in any case: the first shard would sleep 60 s at each of its rows.
    c.cancel_token().cancel_query(NoTls).await.unwrap();
    assert!(
        streamed.is_ok(),
        "{got} of the other shards' {expected} rows arrived while the first one stalled"
    );
    let mut stream = stream.expect("started");
    let e = loop {
        match stream
            .next()
            .await
            .expect("the cancelled read ends in an error")
        {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(sqlstate(&e), Some("57014"), "{e}");
    let direct = s.direct(shared(), 0).await;
    backends_running(&direct, "stall()", 0).await;

    // The others divide by zero after their first row (not a constant: no shard may fail while it
    // plans); their error is not held up either.
    let sql = format!(
        "SELECT id FROM items WHERE CASE WHEN current_database() = '{slow}' \
         THEN id = {} OR stall() ELSE id IN ({}, {}) OR 1 / (id - id) = 1 END",
        first[0], first[1], first[2]
    );
    let e = tokio::time::timeout(Duration::from_secs(30), c.simple_query(&sql))
        .await
        .expect("the error arrives long before the stalled shard would go on")
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22012"), "{e}");
    c.simple_query("SELECT 1").await.unwrap();
    backends_running(&direct, "stall()", 0).await;
}

/// A cast count that fits on every shard but not in total fails as on one server: 22003.
#[tokio::test]
async fn a_cast_count_out_of_range_fails_as_on_one_server() {
    let s = Sharded::start(shared(), "").await;
    for shard in 0..2 {
        let direct = s.direct(shared(), shard).await;
        direct
            .batch_execute(&format!(
                "INSERT INTO users SELECT g, 'x' FROM generate_series({}, {}) g",
                shard * 20_000 + 1,
                shard * 20_000 + 20_000
            ))
            .await
            .unwrap();
    }
    let c = s.proxy.client().await;
    let n: i32 = c
        .query_one("SELECT count(*)::int FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 40_000);
    let e = c
        .query_one("SELECT count(*)::int2 FROM users", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22003"), "{e}");
    let e = c
        .simple_query("SELECT count(*)::smallint FROM users")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22003"), "{e}");
    c.simple_query("SELECT 1").await.unwrap();
}

/// A merged read ends with one CommandComplete whose count is the rows the client got.
#[tokio::test]
async fn a_merged_read_is_tagged_with_its_row_count() {
    let (_s, c) = with_dataset("").await;
    for (sql, rows) in [
        ("SELECT id FROM items", 300),
        ("SELECT id FROM items ORDER BY id DESC LIMIT 7 OFFSET 2", 7),
        ("SELECT grp, count(*) FROM items GROUP BY grp", 8),
    ] {
        let messages = c.simple_query(sql).await.unwrap();
        let got = messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count() as u64;
        let tags: Vec<u64> = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!((got, tags), (rows, vec![rows]), "{sql}");
    }
}

/// Shards whose RowDescriptions disagree (a column added on one shard past shardgate) give no merged
/// rows: the read is refused with 0A000, and the session goes on.
#[tokio::test]
async fn shards_that_return_different_shapes_are_refused() {
    let (s, c) = with_dataset("").await;
    let direct = s.direct(shared(), 1).await;
    direct
        .batch_execute("ALTER TABLE items ADD COLUMN extra int")
        .await
        .unwrap();
    for sql in ["SELECT * FROM items", "SELECT * FROM items ORDER BY id"] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{sql}: {e}");
        let message = e.as_db_error().unwrap().message();
        assert!(message.contains("different result shapes"), "{message}");
        let e = c.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{sql}: {e}");
        let message = e.as_db_error().unwrap().message();
        assert!(message.contains("different result shapes"), "{message}");
    }
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM items").await, 300);
}

/// With `multi_shard_writes`, an UPDATE or DELETE without a shard key runs on every shard; the client
/// gets one tag with the rows of all of them.
#[tokio::test]
async fn a_write_without_a_key_runs_on_every_shard() {
    let (s, c) = with_dataset("multi_shard_writes: true\n").await;
    let mut per_shard = Vec::new();
    for i in 0..3 {
        let direct = s.direct(shared(), i).await;
        per_shard.push(one::<i64>(&direct, "SELECT count(*) FROM items WHERE id % 3 = 0").await);
    }
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "every shard holds some: {per_shard:?}"
    );
    let changed = c
        .execute("UPDATE items SET qty = -100 WHERE id % 3 = 0", &[])
        .await
        .unwrap();
    assert_eq!(changed, 100);
    for (i, &had) in per_shard.iter().enumerate() {
        let direct = s.direct(shared(), i).await;
        let updated = one::<i64>(&direct, "SELECT count(*) FROM items WHERE qty = -100").await;
        assert_eq!(updated, had, "shard {i}");
    }
    let gone = c
        .execute("DELETE FROM items WHERE qty = -100", &[])
        .await
        .unwrap();
    assert_eq!(gone, 100);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM items").await, 200);
    for i in 0..3 {
        let direct = s.direct(shared(), i).await;
        assert_eq!(
            one::<i64>(&direct, "SELECT count(*) FROM items WHERE id % 3 = 0").await,
            0
        );
    }
}

/// A client's cancel reaches every shard a scatter-gather or a fan-out runs on.
#[tokio::test]
async fn cancel_reaches_every_shard() {
    let (s, c) = with_dataset("multi_shard_writes: true\n").await;
    let direct = s.direct(shared(), 2).await;
    for sql in [
        "SELECT count(pg_sleep(61)) FROM items",
        "UPDATE items SET qty = qty WHERE pg_sleep(61) IS NOT NULL",
    ] {
        let running = async { c.simple_query(sql).await };
        let canceller = async {
            // Every shard is running it.
            backends_running(&direct, "pg_sleep(61)", 3).await;
            c.cancel_token().cancel_query(NoTls).await.unwrap();
        };
        let (result, ()) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(running, canceller)
        })
        .await
        .expect("the cancelled statement ends long before pg_sleep would");
        let e = result.expect_err("cancelled");
        assert_eq!(sqlstate(&e), Some("57014"), "{sql}: {e}");
        backends_running(&direct, "pg_sleep(61)", 0).await;
        c.simple_query("SELECT 1").await.unwrap();
    }
}

/// Waits (up to 10 s) until exactly `n` backends of the cluster run a query containing `text`.
async fn backends_running(direct: &Client, text: &str, n: i64) {
    for _ in 0..100 {
        let running: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
                &[&text],
            )
            .await
            .unwrap()
            .get(0);
        if running == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not {n} backends running {text}");
}

/// Inserts five names whose bytewise order differs from every linguistic one; then each statement is
/// refused with 0A000 and a message that says what is given, and COLLATE "C" and a non-text key still
/// merge.
async fn only_bytewise_merges(c: &Client, refused: &[(&str, &str)]) {
    c.batch_execute(
        "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'B'), (3, 'b'), (4, 'A'), (5, '_x')",
    )
    .await
    .unwrap();
    for (sql, says) in refused {
        let e = c.simple_query(sql).await.unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db.code().code(), "0A000", "{sql}");
        assert!(db.message().contains(says), "{sql}: {}", db.message());
    }
    let names: Vec<String> = c
        .query("SELECT name FROM items ORDER BY name COLLATE \"C\"", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["A", "B", "_x", "a", "b"]);
    let ids: Vec<i64> = c
        .query("SELECT id FROM items ORDER BY id DESC", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [5, 4, 3, 2, 1]);
}

/// Shards whose databases order text linguistically (ICU, en-US): a merge that would compare text
/// bytewise is refused with the reason; COLLATE "C" and non-text keys merge as before.
#[tokio::test]
async fn text_merges_need_a_bytewise_collation() {
    let icu = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'";
    let s = Sharded::start_with(shared(), 2, "", icu).await;
    let c = s.proxy.client().await;
    let refused = [
        "SELECT id, name FROM items ORDER BY name",
        "SELECT id FROM items ORDER BY name DESC LIMIT 2",
        "SELECT min(name) FROM items",
        "SELECT id % 2, max(name) FROM items GROUP BY 1",
        "SELECT name, count(*) FROM items GROUP BY name HAVING name > 'a'",
    ]
    .map(|sql| (sql, "database collation"));
    only_bytewise_merges(&c, &refused).await;
    let n: i64 = c
        .query_one("SELECT count(DISTINCT id) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
}

/// C databases, but a column with a linguistic collation of its own (ICU, en-US): merges comparing it,
/// or text computed from any column where such columns exist, are refused naming the collation;
/// COLLATE "C" and other columns merge as before.
#[tokio::test]
async fn a_column_collation_is_seen_too() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    c.batch_execute("ALTER TABLE items ALTER COLUMN name TYPE text COLLATE \"en-US-x-icu\"")
        .await
        .unwrap();
    let refused = [
        (
            "SELECT id, name FROM items ORDER BY name",
            "\"en-US-x-icu\"",
        ),
        ("SELECT max(name) FROM items", "computed text"),
        ("SELECT id FROM items ORDER BY lower(name)", "computed text"),
    ];
    only_bytewise_merges(&c, &refused).await;
}

/// Servers keep a merged read prepared (a simple Query's too), for every client; after DDL changes the
/// columns it returns, PostgreSQL refuses the old statement ("cached plan must not change result
/// type"). shardgate prepares it again, and no client sees the refusal.
#[tokio::test]
async fn a_merged_read_sees_columns_added_since_it_last_ran() {
    let s = Sharded::start_n(shared(), 2, "").await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(s.proxy.client().await);
    }
    clients[0]
        .batch_execute("INSERT INTO users (id, email) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await
        .unwrap();
    let sql = "SELECT * FROM users ORDER BY id";
    let read_all = |want: usize| {
        let clients = &clients;
        async move {
            // At once, so that the reads use several servers of each pool.
            let reads = clients.iter().map(|c| async move {
                let rows = text(c, sql).await?;
                let typed = c.query(sql, &[]).await.map_err(|e| e.to_string())?;
                Ok::<_, String>((rows, typed.first().map(|r| r.len())))
            });
            for r in futures_util::future::join_all(reads).await {
                let (rows, typed_width) = r.unwrap_or_else(|e| panic!("{sql}: {e}"));
                assert_eq!(rows.len(), 3);
                assert_eq!(rows[0].split('|').count(), want, "{rows:?}");
                assert_eq!(typed_width, Some(want));
            }
        }
    };
    read_all(2).await;
    clients[0]
        .batch_execute("ALTER TABLE users ADD COLUMN note text DEFAULT 'x'")
        .await
        .unwrap();
    for _ in 0..3 {
        read_all(3).await;
    }
    // DDL made past shardgate: PostgreSQL itself refuses the statements the servers kept, and
    // shardgate prepares a merged read again unseen.
    for i in 0..2 {
        let d = s.direct(shared(), i).await;
        d.batch_execute("ALTER TABLE users ADD COLUMN more int")
            .await
            .unwrap();
    }
    let reads = clients.iter().map(|c| text(c, sql));
    for r in futures_util::future::join_all(reads).await {
        let rows = r.unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(rows[0].split('|').count(), 4, "{rows:?}");
    }
}

/// Group keys equal as PostgreSQL compares them but spelled differently on different shards (numeric
/// 5 and 5.0 and 5.00, float 0 and -0) make one group, as on one server.
#[tokio::test]
async fn equal_group_keys_spelled_differently_make_one_group() {
    let s = Sharded::start_n(shared(), 3, "").await;
    // Loaded on each shard directly, each spelling the same amount its way: a merged read does not
    // care which shard owns a row.
    for (i, amount) in ["5", "5.0", "5.00"].iter().enumerate() {
        let d = s.direct(shared(), i).await;
        let rows: Vec<String> = (0..4)
            .map(|j| format!("({}, {}, {amount})", i * 4 + j, i * 4 + j))
            .collect();
        d.batch_execute(&format!(
            "INSERT INTO orders (id, user_id, amount) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    }
    let c = s.proxy.client().await;
    for sql in [
        "SELECT amount, count(*) FROM orders GROUP BY amount",
        // 0 on the shards with ids 4 to 11, -0 on the one with ids 0 to 3.
        "SELECT (amount - 5)::float8 * CASE WHEN id < 4 THEN -1 ELSE 1 END AS z, count(*) \
         FROM orders GROUP BY 1",
    ] {
        let rows = text(&c, sql).await.unwrap();
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        assert!(rows[0].ends_with("|12"), "{sql}: {rows:?}");
        let typed = c.query(sql, &[]).await.unwrap();
        assert_eq!(typed.len(), 1, "{sql} (binary)");
        assert_eq!(typed[0].get::<_, i64>(1), 12);
    }
}

/// A client's own error that reads like PostgreSQL's stale-statement refusal is only an error: it
/// reaches the client, and nothing is retried.
#[tokio::test]
async fn a_raised_error_like_the_stale_statement_refusal_is_passed_on() {
    let s = Sharded::start_n(shared(), 2, "").await;
    let c = s.proxy.client().await;
    // Each call counts itself in a sequence, which no rollback undoes: a retry would show.
    c.batch_execute("CREATE SEQUENCE boom_calls").await.unwrap();
    c.batch_execute(
        "CREATE FUNCTION boom() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
         PERFORM nextval('boom_calls'); \
         RAISE EXCEPTION USING ERRCODE = '0A000', \
         MESSAGE = 'cached plan must not change result type'; END $$",
    )
    .await
    .unwrap();
    c.batch_execute("INSERT INTO users (id, email) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await
        .unwrap();
    for _ in 0..3 {
        for sql in ["SELECT boom() FROM users", "SELECT boom(), '$' FROM users"] {
            let e = c.simple_query(sql).await.unwrap_err();
            assert_eq!(sqlstate(&e), Some("0A000"), "{sql}: {e}");
            let e = c.query(sql, &[]).await.unwrap_err();
            assert_eq!(sqlstate(&e), Some("0A000"), "{sql}: {e}");
        }
    }
    assert_eq!(text(&c, "SELECT count(*) FROM users").await.unwrap(), ["3"]);
    // Once more, prepared on the servers by now: each shard calls boom() at most once a statement.
    let mut direct = Vec::new();
    for i in 0..2 {
        let d = s.direct(shared(), i).await;
        d.batch_execute("SELECT setval('boom_calls', 1, false)")
            .await
            .unwrap();
        direct.push(d);
    }
    c.simple_query("SELECT boom() FROM users")
        .await
        .unwrap_err();
    // A reference-table write runs on every shard, where an error after the Bind could be retried.
    let e = c
        .execute(
            "INSERT INTO countries (code, name) SELECT boom()::text, 'x'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    for d in &direct {
        let calls: i64 = d
            .query_one(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM boom_calls",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(calls <= 2, "boom() ran {calls} times on one shard: retried");
    }
}
