//! The golden routing table: SQL and parameters in, the route's display out, including every
//! statement the router refuses and why.

use std::path::Path;

use super::params::Params;
use super::{Router, plan, resolve};
use crate::sharding::{KeyValue, Placement, ShardId, ShardMap, TableKind};

const SHARDS: &str = "\
version: 1
buckets: 16
shards:
  - {name: s0, host: h, port: 1, database: d, buckets: [0-3]}
  - {name: s1, host: h, port: 1, database: d, buckets: [4-7]}
  - {name: s2, host: h, port: 1, database: d, buckets: [8-11]}
  - {name: s3, host: h, port: 1, database: d, buckets: [12-15]}
tables:
  - {name: users, key: id, type: int8, strategy: hash}
  - {name: orders, key: user_id, colocate_with: users}
  - {name: items, key: user_id, colocate_with: users}
  - {name: accounts, key: id, type: uuid, strategy: hash}
  - name: tenants_data
    key: tenant
    type: text
    strategy: directory
    entries: {acme: s1, globex: s2}
    default: s3
  - name: events
    key: day
    type: int4
    strategy: range
    ranges:
      - {to: 0, shard: s3}
      - {from: 0, to: 100, shard: s0}
      - {from: 100, to: 200, shard: s1}
      - {from: 200, shard: s2}
  - {name: countries, strategy: reference}
";

fn refusing() -> ShardMap {
    ShardMap::parse(
        &format!("{SHARDS}default: refuse\n"),
        Path::new("golden.yaml"),
    )
    .expect("fixture")
}

#[allow(dead_code)]
fn lenient() -> ShardMap {
    ShardMap::parse(
        &format!("{SHARDS}default: s0\nmulti_shard_writes: true\n"),
        Path::new("golden.yaml"),
    )
    .expect("fixture")
}

fn route(map: &ShardMap, sql: &str, params: &Params) -> String {
    resolve(&plan(sql, map), map, params, None).to_string()
}

/// `want` is the route's display; for a refusal, `refused: CODE` then a distinctive part of the
/// message or hint.
#[track_caller]
fn check_in(map: &ShardMap, sql: &str, params: &[Option<&str>], want: &str) {
    let values: Vec<Option<&[u8]>> = params.iter().map(|p| p.map(str::as_bytes)).collect();
    let got = route(map, sql, &Params::new(&[], &values));
    matches(sql, &got, want);
}

#[track_caller]
fn matches(sql: &str, got: &str, want: &str) {
    let ok = match want.strip_prefix("refused: ") {
        Some(rest) => {
            let (code, part) = rest.split_once(' ').unwrap_or((rest, ""));
            got.starts_with(&format!("refused: {code} ")) && got.contains(part)
        }
        None => got == want,
    };
    assert!(ok, "\n  sql:  {sql}\n  got:  {got}\n  want: {want}");
}

#[track_caller]
fn check(sql: &str, params: &[Option<&str>], want: &str) {
    check_in(&refusing(), sql, params, want);
}

// Hash placements in this fixture (16 buckets over s0..s3), fixed by PostgreSQL's partition hash:
// 1,2,3 -> s2; 4,6,11,0 -> s0; 7,8,10,-1 -> s1; 5,9,12 -> s3.
const U3: &str = "00000000-0000-0000-0000-000000000001"; // -> s3

#[test]
fn fixture_placements() {
    let map = refusing();
    let TableKind::Sharded(users) = &map.tables[0].kind else {
        unreachable!("users is sharded")
    };
    let shard = |i: i64| map.place(users, &KeyValue::Int(i));
    for (key, s) in [
        (1, 2),
        (2, 2),
        (3, 2),
        (4, 0),
        (5, 3),
        (7, 1),
        (8, 1),
        (0, 0),
        (-1, 1),
    ] {
        assert_eq!(shard(key), Placement::Shard(ShardId(s)), "users.id = {key}");
    }
}

#[test]
fn single_table_keys() {
    let rows: &[(&str, &[Option<&str>], &str)] = &[
        ("SELECT * FROM users WHERE id = 1", &[], "shard shard2"),
        ("SELECT * FROM users WHERE id = 4", &[], "shard shard0"),
        ("select * from users where id = 5", &[], "shard shard3"),
        ("SELECT * FROM users WHERE 7 = id", &[], "shard shard1"),
        ("SELECT * FROM users WHERE id = -1", &[], "shard shard1"),
        ("SELECT * FROM users WHERE id = '5'", &[], "shard shard3"),
        (
            "SELECT * FROM users WHERE id = 5::bigint",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = '5'::int8",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = CAST(5 AS integer)",
            &[],
            "shard shard3",
        ),
        ("SELECT * FROM users WHERE id = (5)", &[], "shard shard3"),
        ("SELECT * FROM users WHERE (id = 5)", &[], "shard shard3"),
        ("SELECT * FROM users u WHERE u.id = 5", &[], "shard shard3"),
        (
            "SELECT * FROM users AS u WHERE u.id = 5",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE users.id = 5",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM public.users WHERE id = 5",
            &[],
            "shard shard3",
        ),
        ("SELECT * FROM USERS WHERE ID = 5", &[], "shard shard3"),
        (
            "SELECT * FROM users WHERE id = 5 AND name = 'x'",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE name = 'x' AND id = 5 AND age > 3",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 5 AND (name = 'x' OR name = 'y')",
            &[],
            "shard shard3",
        ),
        (
            "SELECT name, count(*) FROM users WHERE id = 5 GROUP BY name ORDER BY 2 LIMIT 3",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 5 FOR UPDATE",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id IN (1, 2, 3)",
            &[],
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id IN (1, 4)",
            &[],
            "scatter: shard0, shard2",
        ),
        (
            "SELECT * FROM users WHERE id IN (1, 4, 5, 7)",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 1 OR id = 2",
            &[],
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id = 1 OR id = 4",
            &[],
            "scatter: shard0, shard2",
        ),
        (
            "SELECT * FROM users WHERE (id = 1 AND a = 1) OR (id = 5 AND b = 2)",
            &[],
            "scatter: shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 1 OR name = 'x'",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id > 5",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id <> 5",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE NOT (id = 5)",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id NOT IN (1, 2)",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id IS NULL",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = NULL",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE lower(name) = 'x'",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id + 0 = 5",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 5.5",
            &[],
            "refused: 22P02 users.id",
        ),
        (
            "SELECT * FROM users WHERE id = 'abc'",
            &[],
            "refused: 22P02 users.id",
        ),
        (
            "SELECT * FROM users",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT count(*) FROM users",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = ANY(ARRAY[1, 2])",
            &[],
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id = ANY(ARRAY[1, 5])",
            &[],
            "scatter: shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = ANY(ARRAY[1, name])",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = nextval('s')",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 5 AND created < now()",
            &[],
            "shard shard3",
        ),
        ("SELECT * FROM events WHERE day = 50", &[], "shard shard0"),
        ("SELECT * FROM events WHERE day = 150", &[], "shard shard1"),
        (
            "SELECT * FROM events WHERE day = 100000",
            &[],
            "shard shard2",
        ),
        ("SELECT * FROM events WHERE day = -4", &[], "shard shard3"),
        (
            "SELECT * FROM events WHERE day IN (1, 150)",
            &[],
            "scatter: shard0, shard1",
        ),
        (
            "SELECT * FROM events WHERE day = 3000000000",
            &[],
            "refused: 22P02 events.day",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = 'acme'",
            &[],
            "shard shard1",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = 'globex'",
            &[],
            "shard shard2",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = 'initech'",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = 'acme'::text",
            &[],
            "shard shard1",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = 'acme'::varchar(3)",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = 5",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = E'acme'",
            &[],
            "shard shard1",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = $$acme$$",
            &[],
            "shard shard1",
        ),
        (
            "SELECT * FROM accounts WHERE id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            &[],
            "shard shard0",
        ),
        (
            "SELECT * FROM accounts WHERE id = '00000000-0000-0000-0000-000000000001'::uuid",
            &[],
            "shard shard3",
        ),
        (
            "SELECT * FROM accounts WHERE id = 'nope'",
            &[],
            "refused: 22P02 accounts.id",
        ),
        (
            "SELECT * FROM accounts WHERE id = 5",
            &[],
            "scatter: shard0, shard1, shard2, shard3",
        ),
    ];
    for (sql, params, want) in rows {
        check(sql, params, want);
    }
}

#[test]
fn parameters() {
    let rows: &[(&str, &[Option<&str>], &str)] = &[
        (
            "SELECT * FROM users WHERE id = $1",
            &[Some("5")],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[Some("1")],
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE $1 = id",
            &[Some("4")],
            "shard shard0",
        ),
        (
            "SELECT * FROM users WHERE id = $1::int8",
            &[Some("5")],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE name = $1 AND id = $2",
            &[Some("x"), Some("7")],
            "shard shard1",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[None],
            "refused: 22023 is NULL",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[Some("x")],
            "refused: 22P02 users.id",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[],
            "refused: 42P02 no parameter $1",
        ),
        (
            "SELECT * FROM users WHERE id IN ($1, $2)",
            &[Some("1"), Some("2")],
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id IN ($1, $2)",
            &[Some("1"), Some("5")],
            "scatter: shard2, shard3",
        ),
        (
            "SELECT * FROM users WHERE id IN ($1, 4)",
            &[Some("1")],
            "scatter: shard0, shard2",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[Some("{1,2,3}")],
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[Some("{1,4}")],
            "scatter: shard0, shard2",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1::int8[])",
            &[Some("{5, NULL}")],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[Some("{}")],
            "any shard",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[Some("{1,x}")],
            "refused: 22P02 users.id",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[Some("1,2")],
            "refused: 22P02 not an array",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[None],
            "refused: 22023 is NULL",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = ANY($1)",
            &[Some("{acme,\"globex\"}")],
            "scatter: shard1, shard2",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = $1",
            &[Some("acme")],
            "shard shard1",
        ),
        (
            "SELECT * FROM accounts WHERE id = $1",
            &[Some(U3)],
            "shard shard3",
        ),
        (
            "SELECT * FROM accounts WHERE id = $1",
            &[Some("zz")],
            "refused: 22P02 accounts.id",
        ),
        (
            "SELECT * FROM events WHERE day = $1",
            &[Some("150")],
            "shard shard1",
        ),
        (
            "SELECT * FROM events WHERE day = $1",
            &[Some("99999999999")],
            "refused: 22P02 events.day",
        ),
        (
            "UPDATE users SET name = $1 WHERE id = $2",
            &[Some("x"), Some("5")],
            "shard shard3",
        ),
        (
            "DELETE FROM users WHERE id = ANY($1)",
            &[Some("{1,2}")],
            "shard shard2",
        ),
        (
            "DELETE FROM users WHERE id = ANY($1)",
            &[Some("{1,4}")],
            "refused: 0A000 several shards",
        ),
    ];
    for (sql, params, want) in rows {
        check(sql, params, want);
    }
}

#[test]
fn binary_parameters() {
    let map = refusing();
    let five = 5i64.to_be_bytes();
    let four = 4i32.to_be_bytes();
    let seven = 7i16.to_be_bytes();
    let uuid = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let array = super::params::binary_int8_array(&[Some(1), None, Some(4)]);
    let bad = [1u8, 2, 3];
    type Case<'a> = (&'a str, &'a [i16], &'a [Option<&'a [u8]>], &'a str);
    let cases: &[Case] = &[
        (
            "SELECT * FROM users WHERE id = $1",
            &[1],
            &[Some(&five)],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[1],
            &[Some(&four)],
            "shard shard0",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[1],
            &[Some(&seven)],
            "shard shard1",
        ),
        (
            "SELECT * FROM users WHERE name = $1 AND id = $2",
            &[0, 1],
            &[Some(b"x"), Some(&five)],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[1],
            &[Some(&bad)],
            "refused: 22P02 users.id",
        ),
        (
            "SELECT * FROM users WHERE id = $1",
            &[1],
            &[None],
            "refused: 22023 is NULL",
        ),
        (
            "SELECT * FROM accounts WHERE id = $1",
            &[1],
            &[Some(&uuid)],
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[1],
            &[Some(&array)],
            "scatter: shard0, shard2",
        ),
        (
            "SELECT * FROM users WHERE id = ANY($1)",
            &[1],
            &[Some(&bad)],
            "refused: 22P02 binary array",
        ),
        (
            "SELECT * FROM tenants_data WHERE tenant = $1",
            &[1],
            &[Some(b"globex")],
            "shard shard2",
        ),
    ];
    for (sql, formats, values, want) in cases {
        let got = route(&map, sql, &Params::new(formats, values));
        matches(sql, &got, want);
    }
}

#[test]
fn cache() {
    let map = refusing();
    let router = Router::new(32);
    let sql = "SELECT * FROM users WHERE id = $1";
    let a = router.plan(sql, &map);
    let b = router.plan(sql, &map);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!((router.hits(), router.misses()), (1, 1));
    let mut next = map.clone();
    next.version += 1;
    let c = router.plan(sql, &next);
    assert!(
        !std::sync::Arc::ptr_eq(&a, &c),
        "a new map version re-plans"
    );
    assert_eq!(router.misses(), 2);
    for i in 0..1000 {
        router.plan(&format!("SELECT {i}"), &map);
    }
    assert!(router.len() <= 32 + 16, "bounded: {}", router.len());
    let five = 5i64.to_be_bytes();
    let values = [Some(&five[..])];
    let params = Params::new(&[1], &values);
    let start = std::time::Instant::now();
    for _ in 0..10_000 {
        let plan = router.plan(sql, &map);
        std::hint::black_box(resolve(&plan, &map, &params, None));
    }
    // Debug builds are slow; the release target is < 2 us.
    let per = start.elapsed() / 10_000;
    assert!(
        per < std::time::Duration::from_micros(50),
        "{per:?} per lookup + resolve"
    );
}
