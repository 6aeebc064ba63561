//! Simple and extended protocol through the proxy with tokio-postgres.

use crate::harness::{TestProxy, shared};

#[tokio::test]
async fn simple_and_extended_queries() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let c = p.client().await;
    let rows = c.simple_query("select 1; select 'a', null").await.unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}"); // per statement: RowDescription, row, CommandComplete
    let row = c
        .query_one("select $1::int8 + 1, $2::text", &[&41i64, &"x"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, &str>(1), "x");
}

#[tokio::test]
async fn binary_parameters_and_results() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let c = p.client().await;
    let bytes: Vec<u8> = (0..=255).collect();
    let row = c
        .query_one(
            "select $1::bytea, $2::float8, $3::bool",
            &[&bytes, &1.5f64, &true],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), bytes);
    assert_eq!(row.get::<_, f64>(1), 1.5);
    assert!(row.get::<_, bool>(2));
}

#[tokio::test]
async fn thousand_pipelined_queries() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let c = p.client().await;
    let stmt = c.prepare("select $1::int4 * 2").await.unwrap();
    let futures: Vec<_> = (0..1000i32)
        .map(|i| {
            let c = &c;
            let stmt = &stmt;
            async move { c.query_one(stmt, &[&i]).await.map(|r| r.get::<_, i32>(0)) }
        })
        .collect();
    let results = futures_util::future::join_all(futures).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as i32 * 2);
    }
}
