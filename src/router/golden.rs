//! The golden routing table: SQL and parameters in, the route's display out, including every
//! statement the router refuses and why.

use std::path::Path;

use super::params::Params;
use super::{Beside, Router, plan, resolve};
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
    if params.is_empty() {
        matches(sql, &simple_route(map, sql), want);
    }
}

/// The route the simple protocol takes: planned with literals as placeholders (one plan per statement
/// shape), the literals read back as parameters. Must agree with planning the text as sent.
fn simple_route(map: &ShardMap, sql: &str) -> String {
    let (plan, literals) = super::Router::new(16).plan_simple(sql, map);
    let values: Vec<Option<&[u8]>> = literals.iter().map(|l| Some(l.as_bytes())).collect();
    super::resolve(&plan, map, &Params::new(&[], &values), None).to_string()
}

#[track_caller]
fn matches(sql: &str, got: &str, want: &str) {
    if let Some(diff) = differs(sql, got, want) {
        panic!("{diff}");
    }
}

fn differs(sql: &str, got: &str, want: &str) -> Option<String> {
    let ok = match want.strip_prefix("refused: ") {
        Some(rest) => {
            let (code, part) = rest.split_once(' ').unwrap_or((rest, ""));
            got.starts_with(&format!("refused: {code} ")) && got.contains(part)
        }
        None => got == want,
    };
    (!ok).then(|| format!("\n  sql:  {sql}\n  got:  {got}\n  want: {want}"))
}

/// Checks every row and reports all mismatches at once.
#[track_caller]
fn table(map: &ShardMap, rows: &[(&str, &[Option<&str>], &str)]) {
    let mut bad = String::new();
    for (sql, params, want) in rows {
        let values: Vec<Option<&[u8]>> = params.iter().map(|p| p.map(str::as_bytes)).collect();
        let got = route(map, sql, &Params::new(&[], &values));
        bad.extend(differs(sql, &got, want));
        if params.is_empty() {
            bad.extend(
                differs(sql, &simple_route(map, sql), want)
                    .map(|d| format!("{d} (simple protocol)")),
            );
        }
    }
    assert!(bad.is_empty(), "{bad}");
}

#[track_caller]
fn table_no_params(map: &ShardMap, rows: &[(&str, &str)]) {
    let rows: Vec<(&str, &[Option<&str>], &str)> =
        rows.iter().map(|(s, w)| (*s, &[][..], *w)).collect();
    table(map, &rows);
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
    table(&refusing(), rows);
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
    table(&refusing(), rows);
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

const ALL4: &str = "scatter: shard0, shard1, shard2, shard3";

#[test]
fn joins_and_subqueries() {
    let rows: &[(&str, &str)] = &[
        (
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE o.user_id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON u.id = o.user_id AND u.id = 7",
            "shard shard1",
        ),
        (
            "SELECT * FROM users u, orders o WHERE o.user_id = u.id AND u.id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u JOIN orders o USING (id) WHERE u.id = 5",
            "refused: 0A000 orders has no shard key",
        ),
        (
            "SELECT * FROM orders o JOIN items i USING (user_id) WHERE o.user_id = 1",
            "shard shard2",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id JOIN items i ON i.user_id = o.user_id WHERE u.id = 4",
            "shard shard0",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id",
            ALL4,
        ),
        (
            "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id",
            ALL4,
        ),
        (
            "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.user_id = 5",
            "refused: 0A000 users has no shard key condition",
        ),
        (
            "SELECT * FROM users u FULL JOIN orders o ON o.user_id = u.id WHERE u.id = 5",
            "refused: 0A000 orders",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON o.id = u.id WHERE u.id = 5",
            "refused: 0A000 orders has no shard key",
        ),
        ("SELECT * FROM users, orders", "refused: 0A000 not joined"),
        (
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 5 AND o.user_id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON true WHERE u.id = 1 AND o.user_id = 2",
            "shard shard2",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON true WHERE u.id = 1 AND o.user_id = 4",
            "refused: 0A000 not known to agree",
        ),
        (
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1",
            "refused: 42P02",
        ),
        (
            "SELECT * FROM users u JOIN events e ON e.day = 5 WHERE u.id = 4",
            "shard shard0",
        ),
        (
            "SELECT * FROM users u JOIN events e ON e.day = 150 WHERE u.id = 4",
            "refused: 0A000 events, users",
        ),
        (
            "SELECT * FROM users u JOIN accounts a ON a.id = u.id",
            "refused: 0A000 accounts, users",
        ),
        (
            "SELECT * FROM users u JOIN countries c ON c.code = u.country WHERE u.id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u JOIN countries c ON c.code = u.country",
            ALL4,
        ),
        ("SELECT * FROM countries", "any shard"),
        ("SELECT * FROM countries WHERE code = 'NZ'", "any shard"),
        (
            "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 5)",
            ALL4,
        ),
        (
            "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE user_id = 5)",
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 5 AND id IN (SELECT user_id FROM orders)",
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE name IN (SELECT name FROM orders)",
            "refused: 0A000 not joined",
        ),
        (
            "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) AND u.id = 1",
            "shard shard2",
        ),
        (
            "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.user_id = 1)",
            "shard shard2",
        ),
        (
            "SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.user_id = 1)",
            "refused: 0A000 users has no shard key",
        ),
        (
            "SELECT * FROM users u WHERE u.x = 1 OR EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.user_id = 5)",
            "refused: 0A000 users has no shard key",
        ),
        (
            "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
            ALL4,
        ),
        (
            "SELECT u.*, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u WHERE u.id = 4",
            "shard shard0",
        ),
        (
            "SELECT (SELECT count(*) FROM users)",
            "refused: 0A000 in a subquery",
        ),
        (
            "SELECT * FROM (SELECT * FROM users WHERE id = 5) s",
            "shard shard3",
        ),
        (
            "SELECT * FROM (SELECT * FROM users) s",
            "refused: 0A000 in a subquery",
        ),
        (
            "SELECT * FROM countries WHERE code IN (SELECT country FROM users WHERE id = 9)",
            "shard shard3",
        ),
        (
            "SELECT * FROM countries WHERE code IN (SELECT country FROM users)",
            "refused: 0A000 in a subquery",
        ),
        (
            "WITH x AS (SELECT * FROM users WHERE id = 5) SELECT * FROM x",
            "shard shard3",
        ),
        (
            "WITH x AS (SELECT * FROM users WHERE id = 5) SELECT * FROM x JOIN orders o ON o.user_id = x.id",
            "refused: 0A000",
        ),
        (
            "WITH users AS (SELECT 1 AS id) SELECT * FROM users",
            "any shard",
        ),
        (
            "WITH x AS (SELECT * FROM orders WHERE user_id = 1) SELECT * FROM users WHERE id = 2",
            "shard shard2",
        ),
        (
            "WITH x AS (SELECT * FROM orders WHERE user_id = 1) SELECT * FROM users WHERE id = 4",
            "refused: 0A000 not known to agree",
        ),
        (
            "WITH d AS (DELETE FROM orders WHERE user_id = 5 RETURNING *) SELECT * FROM d",
            "shard shard3",
        ),
        (
            "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
            "refused: 0A000 in a subquery",
        ),
        (
            "WITH d AS (UPDATE users SET id = 1 WHERE id = 5 RETURNING *) SELECT * FROM d",
            "refused: 0A000 moving a row",
        ),
        (
            "WITH i AS (INSERT INTO orders (user_id, total) VALUES (5, 1) RETURNING *) SELECT * FROM i",
            "shard shard3",
        ),
        (
            "SELECT * FROM users WHERE id = 1 UNION SELECT * FROM users WHERE id = 2",
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id = 1 UNION ALL SELECT * FROM users WHERE id = 4",
            "refused: 0A000 not known to agree",
        ),
        (
            "SELECT * FROM users UNION SELECT * FROM orders",
            "refused: 0A000",
        ),
        (
            "SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id) x WHERE u.id = 5",
            "shard shard3",
        ),
        ("SELECT * FROM generate_series(1, 3)", "any shard"),
        (
            "SELECT * FROM users u JOIN generate_series(1, 3) g ON true WHERE u.id = 5",
            "shard shard3",
        ),
        ("SELECT 1", "any shard"),
        ("SELECT now(), nextval('seq')", "shard shard0"),
        (
            "SELECT * FROM users u1 JOIN users u2 ON u1.id = u2.id WHERE u1.id = 8",
            "shard shard1",
        ),
        (
            "SELECT * FROM users u1 JOIN users u2 ON u1.manager = u2.id WHERE u1.id = 8",
            "refused: 0A000 users",
        ),
        // Unqualified `id`: only users has that key; were orders to have an id column, PostgreSQL
        // would reject the ambiguity itself.
        (
            "SELECT * FROM users JOIN orders ON orders.user_id = users.id WHERE id = 5",
            "shard shard3",
        ),
        (
            "SELECT * FROM users u1 JOIN users u2 ON u1.id = u2.id WHERE id = 5",
            ALL4,
        ),
        (
            "SELECT * FROM users WHERE id IN (SELECT id FROM accounts WHERE id = $1)",
            "refused: 0A000",
        ),
        (
            "SELECT * FROM users JOIN orders ON orders.user_id = users.id WHERE user_id = 5",
            "shard shard3",
        ),
    ];
    table_no_params(&refusing(), rows);
}

#[test]
fn writes() {
    let rows: &[(&str, &[Option<&str>], &str)] = &[
        (
            "INSERT INTO users (id, name) VALUES (5, 'x')",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO users (name, id) VALUES ($1, $2)",
            &[Some("x"), Some("4")],
            "shard shard0",
        ),
        (
            "INSERT INTO users (id, name) VALUES (5, 'x') RETURNING id",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO users (id, name) VALUES (5, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO users (id, name) VALUES (5, 'x') ON CONFLICT (id) DO UPDATE SET id = 6",
            &[],
            "refused: 0A000 moving a row",
        ),
        (
            "INSERT INTO users (id, name) VALUES (5, 'x') ON CONFLICT DO NOTHING",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO users (id) VALUES (1), (2), (3)",
            &[],
            "shard shard2",
        ),
        (
            "INSERT INTO users (id) VALUES (1), (4), (2)",
            &[],
            "split: shard0 (1 row), shard2 (2 rows)",
        ),
        (
            "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)",
            &[Some("1"), Some("a"), Some("5"), Some("b")],
            "split: shard2 (1 row), shard3 (1 row)",
        ),
        (
            "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)",
            &[Some("1"), Some("a"), Some("2"), Some("b")],
            "shard shard2",
        ),
        (
            "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)",
            &[Some("1"), Some("a"), None, Some("b")],
            "refused: 22023 is NULL",
        ),
        (
            "INSERT INTO users VALUES (5, 'x')",
            &[],
            "refused: 0A000 list the columns",
        ),
        (
            "INSERT INTO users (name) VALUES ('x')",
            &[],
            "refused: 0A000 does not set the shard key id",
        ),
        (
            "INSERT INTO users (id, name) VALUES (DEFAULT, 'x')",
            &[],
            "refused: 0A000 only a literal or a parameter",
        ),
        (
            "INSERT INTO users (id, name) VALUES (nextval('users_id_seq'), 'x')",
            &[],
            "refused: 0A000 only a literal",
        ),
        (
            "INSERT INTO users (id, name) VALUES (5 + 1, 'x')",
            &[],
            "refused: 0A000 only a literal",
        ),
        (
            "INSERT INTO users (id, name) VALUES ('x', 'y')",
            &[],
            "refused: 22P02 users.id",
        ),
        ("INSERT INTO users DEFAULT VALUES", &[], "refused: 0A000"),
        (
            "INSERT INTO users (id, created) VALUES (5, now())",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO orders (user_id, id) VALUES (5, nextval('orders_id_seq'))",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO tenants_data (tenant, v) VALUES ('acme', 1), ('globex', 2), ('acme', 3)",
            &[],
            "split: shard1 (2 rows), shard2 (1 row)",
        ),
        (
            "INSERT INTO accounts (id) VALUES ($1)",
            &[Some(U3)],
            "shard shard3",
        ),
        (
            "INSERT INTO events (day, v) VALUES (50, 1), (-1, 2)",
            &[],
            "split: shard0 (1 row), shard3 (1 row)",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT id, 0 FROM users WHERE id = 5",
            &[],
            "shard shard3",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT id, 0 FROM users WHERE id = $1",
            &[Some("4")],
            "shard shard0",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT id, 0 FROM users WHERE id IN (1, 4)",
            &[],
            "refused: 0A000 one shard key",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT id, 0 FROM users",
            &[],
            "refused: 0A000 INSERT ... SELECT into orders",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT 5, 0 FROM countries",
            &[],
            "refused: 0A000",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT id, 0 FROM accounts WHERE id = $1",
            &[Some(U3)],
            "refused: 0A000",
        ),
        (
            "INSERT INTO countries (code) VALUES ('NZ')",
            &[],
            "all shards",
        ),
        (
            "INSERT INTO countries (code) VALUES ('NZ'), ('AU')",
            &[],
            "all shards",
        ),
        (
            "INSERT INTO countries SELECT * FROM countries",
            &[],
            "all shards",
        ),
        (
            "INSERT INTO countries (code) SELECT country FROM users WHERE id = 5",
            &[],
            "refused: 0A000 reference table countries",
        ),
        (
            "UPDATE countries SET name = 'x' WHERE code = 'NZ'",
            &[],
            "all shards",
        ),
        ("DELETE FROM countries", &[], "all shards"),
        (
            "UPDATE users SET name = 'x' WHERE id = 5",
            &[],
            "shard shard3",
        ),
        (
            "UPDATE users u SET name = 'x' WHERE u.id = 7",
            &[],
            "shard shard1",
        ),
        (
            "UPDATE users SET name = 'x' WHERE id IN (1, 2)",
            &[],
            "shard shard2",
        ),
        (
            "UPDATE users SET name = 'x' WHERE id IN (1, 4)",
            &[],
            "refused: 0A000 several shards",
        ),
        (
            "UPDATE users SET name = 'x'",
            &[],
            "refused: 0A000 add a condition on users.id or set multi_shard_writes",
        ),
        (
            "UPDATE users SET name = 'x' WHERE name = 'y'",
            &[],
            "refused: 0A000 without a shard key",
        ),
        (
            "UPDATE users SET id = 6 WHERE id = 5",
            &[],
            "refused: 0A000 moving a row",
        ),
        (
            "UPDATE users SET (id, name) = (6, 'x') WHERE id = 5",
            &[],
            "refused: 0A000 moving a row",
        ),
        (
            "UPDATE orders o SET total = 0 FROM users u WHERE o.user_id = u.id AND u.id = 5",
            &[],
            "shard shard3",
        ),
        (
            "UPDATE orders SET total = (SELECT count(*) FROM items i WHERE i.user_id = orders.user_id) WHERE user_id = 4",
            &[],
            "shard shard0",
        ),
        (
            "UPDATE orders SET code = c.code FROM countries c WHERE orders.user_id = 5",
            &[],
            "shard shard3",
        ),
        ("DELETE FROM users WHERE id = 5", &[], "shard shard3"),
        (
            "DELETE FROM users WHERE id = 5 RETURNING *",
            &[],
            "shard shard3",
        ),
        (
            "DELETE FROM users",
            &[],
            "refused: 0A000 without a shard key",
        ),
        (
            "DELETE FROM orders USING users u WHERE orders.user_id = u.id AND u.id = 1",
            &[],
            "shard shard2",
        ),
        (
            "DELETE FROM orders WHERE user_id IN (SELECT id FROM users WHERE id = 9)",
            &[],
            "shard shard3",
        ),
        (
            "DELETE FROM tenants_data WHERE tenant = 'globex'",
            &[],
            "shard shard2",
        ),
        (
            "UPDATE users SET name = 'x' FROM countries WHERE countries.code = users.country AND users.id = 5",
            &[],
            "shard shard3",
        ),
        (
            "UPDATE countries SET name = u.name FROM users u WHERE u.id = 5",
            &[],
            "refused: 0A000 reference table countries",
        ),
        (
            "INSERT INTO nowhere (a) VALUES (1)",
            &[],
            "refused: 0A000 nowhere is not in the shard map",
        ),
        (
            "SELECT * FROM nowhere",
            &[],
            "refused: 0A000 add it to shardmap.yaml",
        ),
        (
            "SELECT * FROM users u JOIN nowhere n ON n.id = u.id WHERE u.id = 5",
            &[],
            "refused: 0A000 nowhere",
        ),
    ];
    table(&refusing(), rows);
}

#[test]
fn split_renumbers_parameters() {
    let map = refusing();
    let sql = "INSERT INTO users (id, name) VALUES ($1, $2), ($3, lower($4)), ($5, $2) ON CONFLICT (id) DO UPDATE SET name = $6 RETURNING id";
    let p = plan(sql, &map);
    let values: Vec<Option<&[u8]>> = ["1", "a", "4", "B", "2", "z"]
        .iter()
        .map(|v| Some(v.as_bytes()))
        .collect();
    let route = resolve(&p, &map, &Params::new(&[], &values), None);
    let super::Route::Split(parts) = route else {
        panic!("{route}")
    };
    let got: Vec<(usize, &str, &[usize])> = parts
        .iter()
        .map(|p| (p.shard.0, p.sql.as_str(), p.params.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                "INSERT INTO users (id, name) VALUES ($1, lower($2)) ON CONFLICT(id) DO UPDATE SET name = $3 RETURNING id",
                &[2, 3, 5][..]
            ),
            (
                2,
                "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $2) ON CONFLICT(id) DO UPDATE SET name = $4 RETURNING id",
                &[0, 1, 4, 5][..]
            ),
        ]
    );
}

#[test]
fn lenient_map() {
    let rows: &[(&str, &[Option<&str>], &str)] = &[
        ("SELECT * FROM nowhere", &[], "shard shard0"),
        (
            "INSERT INTO nowhere (a) VALUES (1), (2)",
            &[],
            "shard shard0",
        ),
        (
            "SELECT * FROM nowhere n JOIN users u ON u.id = n.user_id WHERE u.id = 4",
            &[],
            "shard shard0",
        ),
        (
            "SELECT * FROM nowhere n JOIN users u ON u.id = n.user_id WHERE u.id = 5",
            &[],
            "refused: 0A000 nowhere",
        ),
        (
            "SELECT * FROM nowhere n JOIN users u ON u.id = n.user_id WHERE u.id = $1",
            &[Some("4")],
            "refused: 0A000 nowhere",
        ),
        (
            "SELECT * FROM nowhere n JOIN users u ON u.id = n.user_id",
            &[],
            "refused: 0A000 users has no shard key",
        ),
        (
            "INSERT INTO nowhere (a) SELECT id FROM users WHERE id = 4",
            &[],
            "shard shard0",
        ),
        (
            "UPDATE users SET name = 'x'",
            &[],
            "multi: shard0, shard1, shard2, shard3",
        ),
        (
            "DELETE FROM orders WHERE total = 0",
            &[],
            "multi: shard0, shard1, shard2, shard3",
        ),
        (
            "UPDATE users SET name = 'x' WHERE id IN (1, 4)",
            &[],
            "multi: shard0, shard2",
        ),
        (
            "DELETE FROM users WHERE id = ANY($1)",
            &[Some("{1,5,7}")],
            "multi: shard1, shard2, shard3",
        ),
        (
            "UPDATE users SET id = 2 WHERE id = 1",
            &[],
            "refused: 0A000 moving a row",
        ),
        (
            "INSERT INTO orders (user_id, total) SELECT id, 0 FROM users",
            &[],
            "refused: 0A000 INSERT ... SELECT",
        ),
        ("COPY nowhere FROM STDIN", &[], "shard shard0"),
        ("COPY nowhere TO STDOUT", &[], "shard shard0"),
        (
            "INSERT INTO countries (code) SELECT a FROM nowhere",
            &[],
            "refused: 0A000 reference table countries",
        ),
    ];
    table(&lenient(), rows);
}

/// TRUNCATE goes where the rows are: unlisted tables' on the default shard, a listed table's on every
/// shard (and so, with any listed table among them, all of them).
#[test]
fn truncate() {
    table_no_params(
        &lenient(),
        &[
            ("TRUNCATE nowhere", "shard shard0"),
            (
                "TRUNCATE TABLE nowhere, elsewhere RESTART IDENTITY",
                "shard shard0",
            ),
            ("TRUNCATE nowhere, users", "all shards"),
            ("TRUNCATE countries", "all shards"),
        ],
    );
    table_no_params(&refusing(), &[("TRUNCATE nowhere", "all shards")]);
}

/// Drivers read the catalogs; alike on every shard, they go where unlisted tables go, or to any shard
/// when the map refuses those.
#[test]
fn catalogs() {
    let rows: &[(&str, &[Option<&str>], &str)] = &[
        (
            "SELECT typname FROM pg_catalog.pg_type WHERE oid = $1",
            &[Some("23")],
            "any shard",
        ),
        (
            "SELECT * FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace",
            &[],
            "any shard",
        ),
        (
            "SELECT table_name FROM information_schema.tables",
            &[],
            "any shard",
        ),
        (
            "SELECT u.name, c.relname FROM users u, pg_class c WHERE u.id = 5 AND c.relname = 'users'",
            &[],
            "shard shard3",
        ),
        // A schema named is that schema's table.
        (
            "SELECT * FROM public.pg_type",
            &[],
            "refused: 0A000 public.pg_type is not in the shard map",
        ),
    ];
    table(&refusing(), rows);
    table(
        &lenient(),
        &[("SELECT * FROM pg_catalog.pg_type", &[], "any shard")],
    );
}

#[test]
fn statements_without_keys() {
    let rows: &[(&str, &str)] = &[
        ("CREATE TABLE t (id int8 primary key)", "all shards"),
        ("CREATE INDEX ON users (name)", "all shards"),
        (
            "CREATE UNIQUE INDEX users_name ON users (name)",
            "all shards",
        ),
        ("CREATE VIEW v AS SELECT * FROM users", "all shards"),
        ("CREATE SEQUENCE s", "all shards"),
        ("CREATE SCHEMA app", "all shards"),
        ("CREATE EXTENSION IF NOT EXISTS pgcrypto", "all shards"),
        ("CREATE TYPE mood AS ENUM ('a', 'b')", "all shards"),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
            "all shards",
        ),
        ("ALTER TABLE users ADD COLUMN age int", "all shards"),
        ("DROP TABLE IF EXISTS t", "all shards"),
        ("DROP INDEX users_name", "all shards"),
        ("COMMENT ON TABLE users IS 'people'", "all shards"),
        ("GRANT SELECT ON users TO app", "all shards"),
        ("REVOKE SELECT ON users FROM app", "all shards"),
        ("TRUNCATE users", "all shards"),
        // DDL the parser cannot read goes where the parsed kind goes; databases and roles do not.
        (
            "ALTER TABLE users ALTER COLUMN email TYPE text COLLATE \"en-US-x-icu\"",
            "all shards",
        ),
        (
            "CREATE DATABASE other WITH OWNER = app",
            "refused: 0A000 shardgate cannot route CREATE statements",
        ),
        (
            "CREATE TABLE t4 (a) AS EXECUTE p",
            "refused: 0A000 shardgate cannot route CREATE statements",
        ),
        (
            "COMMENT ON TABLESPACE x IS NULL",
            "refused: 0A000 shardgate cannot route COMMENT statements",
        ),
        (
            "GRANT pg_read_all_data TO bob WITH ADMIN OPTION GRANTED BY CURRENT_USER",
            "refused: 0A000 shardgate cannot route GRANT statements",
        ),
        (
            "CREATE TABLE t2 AS SELECT * FROM users",
            "refused: 0A000 CREATE TABLE ... AS",
        ),
        ("SELECT * INTO t3 FROM users", "refused: 0A000 SELECT INTO"),
        ("VACUUM", "all shards"),
        ("VACUUM ANALYZE users", "all shards"),
        ("ANALYZE users", "all shards"),
        ("CHECKPOINT", "all shards"),
        ("REINDEX TABLE users", "all shards"),
        ("CLUSTER users USING users_pkey", "all shards"),
        ("BEGIN", "any shard"),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", "any shard"),
        ("START TRANSACTION", "any shard"),
        ("COMMIT", "any shard"),
        ("END", "any shard"),
        ("ROLLBACK", "any shard"),
        ("ABORT", "any shard"),
        ("SAVEPOINT a", "any shard"),
        ("RELEASE SAVEPOINT a", "any shard"),
        ("ROLLBACK TO SAVEPOINT a", "any shard"),
        ("PREPARE TRANSACTION 'x'", "refused: 0A000 two-phase commit"),
        ("COMMIT PREPARED 'x'", "refused: 0A000 two-phase commit"),
        (
            "ROLLBACK PREPARED 'x'",
            "refused: 0A000 shardgate manages cross-shard commit",
        ),
        ("SET search_path TO app", "any shard"),
        ("SET statement_timeout = 5000", "any shard"),
        ("SET LOCAL statement_timeout = 5000", "any shard"),
        ("RESET statement_timeout", "any shard"),
        ("RESET ALL", "any shard"),
        ("SHOW server_version", "any shard"),
        ("SHOW ALL", "any shard"),
        ("LISTEN chan", "any shard"),
        ("UNLISTEN chan", "any shard"),
        ("NOTIFY chan, 'x'", "any shard"),
        ("DISCARD ALL", "any shard"),
        ("DEALLOCATE ALL", "any shard"),
        ("DEALLOCATE stmt1", "any shard"),
        ("FETCH 10 FROM c", "any shard"),
        ("MOVE NEXT IN c", "any shard"),
        ("CLOSE c", "any shard"),
        (
            "DECLARE c CURSOR FOR SELECT * FROM users WHERE id = 5",
            "shard shard3",
        ),
        (
            "DECLARE c CURSOR FOR SELECT * FROM users",
            "refused: 0A000 cursor over every shard",
        ),
        (
            "PREPARE q AS SELECT 1",
            "refused: 0A000 protocol-level prepared statements",
        ),
        ("EXECUTE q", "refused: 0A000 protocol-level"),
        ("EXPLAIN SELECT * FROM users WHERE id = 5", "shard shard3"),
        (
            "EXPLAIN ANALYZE SELECT * FROM users WHERE id = 4",
            "shard shard0",
        ),
        (
            "EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET name = 'x' WHERE id = 7",
            "shard shard1",
        ),
        ("EXPLAIN SELECT * FROM users", ALL4),
        (
            "EXPLAIN INSERT INTO users (id) VALUES (1), (4)",
            "refused: 0A000 EXPLAIN of a multi-row INSERT",
        ),
        (
            "EXPLAIN UPDATE users SET name = 'x'",
            "refused: 0A000 without a shard key",
        ),
        ("", "any shard"),
        (";", "any shard"),
        ("-- nothing", "any shard"),
    ];
    table_no_params(&refusing(), rows);
}

#[test]
fn unparsed_statements() {
    let rows: &[(&str, &str)] = &[
        (
            "DO $$ BEGIN PERFORM 1; END $$",
            "refused: 0A000 shardgate: shard=NAME",
        ),
        ("CALL do_things(1)", "refused: 0A000 CALL"),
        (
            "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
            "refused: 0A000 LOCK",
        ),
        (
            "COPY users FROM STDIN",
            "copy: each row to the shard of its key",
        ),
        (
            "COPY users (id, email) FROM STDIN WITH (FORMAT csv, HEADER true)",
            "copy: each row to the shard of its key",
        ),
        (
            "COPY users FROM STDIN (FORMAT binary)",
            "copy: each row to the shard of its key",
        ),
        (
            "COPY users (email) FROM STDIN",
            "refused: 0A000 must include its shard key column id",
        ),
        (
            "COPY users FROM STDIN (FORMAT xml)",
            "refused: 0A000 COPY format xml is not known",
        ),
        (
            "COPY users TO STDOUT",
            "refused: 0A000 COPY of sharded table users",
        ),
        (
            "COPY (SELECT * FROM users) TO STDOUT",
            "scatter: shard0, shard1, shard2, shard3",
        ),
        (
            "COPY (SELECT * FROM users WHERE id = 1) TO STDOUT",
            "shard shard2",
        ),
        ("COPY (SELECT * FROM countries) TO STDOUT", "any shard"),
        ("COPY countries TO STDOUT", "any shard"),
        (
            "COPY users FROM STDIN WITH (FREEZE ON)",
            "refused: 0A000 COPY of sharded table users",
        ),
        (
            "COPY countries FROM STDIN",
            "refused: 0A000 reference table countries",
        ),
        (
            "COPY nowhere FROM STDIN",
            "refused: 0A000 nowhere is not in the shard map",
        ),
        ("COPY users FROM '/tmp/x.csv'", "refused: 0A000 server file"),
        ("SELEC * FROM users", "refused: 0A000 SELEC"),
        ("FROBNICATE everything", "refused: 0A000 FROBNICATE"),
        (
            "MERGE INTO users u USING orders o ON o.user_id = u.id WHEN MATCHED THEN DELETE",
            "refused: 0A000 MERGE",
        ),
        ("LOAD 'plugin'", "refused: 0A000 LOAD"),
        (
            "SECURITY LABEL ON TABLE users IS 'x'",
            "refused: 0A000 SECURITY",
        ),
        (
            "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y",
            "refused: 0A000 IMPORT",
        ),
    ];
    table_no_params(&refusing(), rows);
}

#[test]
fn hints() {
    let rows: &[(&str, &str)] = &[
        (
            "/* shardgate: shard=s2 */ SELECT * FROM users",
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id = 5 /* shardgate: shard=s0 */",
            "shard shard0",
        ),
        ("SELECT 1 -- shardgate: shard=s1", "shard shard1"),
        (
            "/* shardgate: shard=s9 */ SELECT 1",
            "refused: 22023 shards: s0, s1, s2, s3",
        ),
        (
            "/* shardgate: shard=s1 */ DO $$ BEGIN PERFORM 1; END $$",
            "shard shard1",
        ),
        ("/* shardgate: shard=s1 */ CALL f()", "shard shard1"),
        (
            "/* shardgate: shard=s3 */ COPY users FROM STDIN",
            "shard shard3",
        ),
        (
            "/* shardgate: shard=s3 */ UPDATE users SET name = 'x'",
            "shard shard3",
        ),
        (
            "/* shardgate: shard=s3 */ PREPARE TRANSACTION 'x'",
            "shard shard3",
        ),
        (
            "/* shardgate: key=5 */ SELECT * FROM users WHERE name = 'x'",
            "shard shard3",
        ),
        (
            "/* shardgate: key=4 */ UPDATE orders SET total = 0",
            "shard shard0",
        ),
        (
            "/* shardgate: key=4 */ SELECT * FROM users u JOIN orders o ON o.id = u.x",
            "shard shard0",
        ),
        (
            "/* shardgate: key='globex' */ DELETE FROM tenants_data",
            "shard shard2",
        ),
        (
            "/* shardgate: key=150 */ SELECT * FROM events",
            "shard shard1",
        ),
        (
            "/* shardgate: key=x */ SELECT * FROM users",
            "refused: 22P02 users.id",
        ),
        (
            "/* shardgate: key=5 */ SELECT 1",
            "refused: 0A000 needs a statement on a sharded table",
        ),
        (
            "/* shardgate: key=5 */ SELECT * FROM countries",
            "refused: 0A000 needs a statement on a sharded table",
        ),
        (
            "/* shardgate: key=5 */ SELECT * FROM users, events",
            "refused: 0A000 several co-location groups",
        ),
        (
            "/* shardgate: key=5 */ DO $$ BEGIN UPDATE users SET a = 1; END $$",
            "refused: 0A000 needs a statement",
        ),
        ("/* shardgate: key=5 */ LOCK TABLE users", "shard shard3"),
        (
            "/* shardgate: shrd=s1 */ SELECT 1",
            "refused: 22023 unknown shardgate hint",
        ),
        (
            "SELECT '/* shardgate: shard=s1 */' FROM users WHERE id = 5",
            "shard shard3",
        ),
    ];
    table_no_params(&refusing(), rows);
}

#[test]
fn set_shard_and_session_shard() {
    let map = refusing();
    let cmd = |sql: &str| plan(sql, &map).command;
    use super::Command;
    assert_eq!(
        cmd("SET shardgate.shard = 's1'"),
        Command::SetShard(Some("s1".into()))
    );
    assert_eq!(
        cmd("SET shardgate.shard TO s2"),
        Command::SetShard(Some("s2".into()))
    );
    assert_eq!(
        cmd("set SHARDGATE.SHARD to 's3'"),
        Command::SetShard(Some("s3".into()))
    );
    assert_eq!(cmd("RESET shardgate.shard"), Command::SetShard(None));
    assert_eq!(
        cmd("SET shardgate.shard TO DEFAULT"),
        Command::SetShard(None)
    );
    assert_eq!(
        cmd("SET shardgate.shard = DEFAULT"),
        Command::SetShard(None)
    );
    check(
        "SET shardgate.shard = 's9'",
        &[],
        "refused: 22023 unknown shard",
    );
    check(
        "SET shardgate.shrad = 's1'",
        &[],
        "refused: 22023 unknown setting",
    );
    check(
        "SET LOCAL shardgate.shard = 's1'",
        &[],
        "refused: 22023 SET LOCAL",
    );
    check(
        "SET shardgate.shard = 's1'; SELECT 1",
        &[],
        "refused: 0A000 send them separately",
    );
    let at = |sql: &str, session: Option<usize>| {
        resolve(
            &plan(sql, &map),
            &map,
            &Params::none(),
            session.map(ShardId),
        )
        .to_string()
    };
    assert_eq!(at("SELECT * FROM users", Some(1)), "shard shard1");
    assert_eq!(at("UPDATE users SET a = 1", Some(2)), "shard shard2");
    assert_eq!(at("DO $$ BEGIN END $$", Some(3)), "shard shard3");
    assert_eq!(at("CREATE TABLE t (a int)", Some(0)), "shard shard0");
    assert_eq!(
        at("/* shardgate: shard=s2 */ SELECT 1", Some(0)),
        "shard shard2"
    );
    assert_eq!(at("SELECT * FROM users WHERE id = 5", None), "shard shard3");
    let set = plan("RESET shardgate.shard", &map);
    assert_eq!(
        resolve(&set, &map, &Params::none(), Some(ShardId(1))),
        super::Route::Any
    );
}

#[test]
fn several_statements() {
    let rows: &[(&str, &str)] = &[
        (
            "BEGIN; UPDATE users SET a = 1 WHERE id = 5; COMMIT",
            "shard shard3",
        ),
        (
            "BEGIN; SELECT * FROM users WHERE id = 1; SELECT * FROM orders WHERE user_id = 2; COMMIT",
            "shard shard2",
        ),
        (
            "SELECT * FROM users WHERE id = 1; SELECT * FROM users WHERE id = 4",
            "refused: 0A000 send them separately",
        ),
        ("SELECT 1; SELECT 2", "any shard"),
        (
            "SET search_path TO app; SELECT * FROM users WHERE id = 4",
            "shard shard0",
        ),
        (
            "SELECT * FROM countries; SELECT * FROM users WHERE id = 4",
            "shard shard0",
        ),
        (
            "CREATE TABLE a (x int); CREATE TABLE b (x int)",
            "all shards",
        ),
        (
            "CREATE TABLE a (x int); SELECT * FROM users WHERE id = 4",
            "refused: 0A000 send them separately",
        ),
        (
            "BEGIN; INSERT INTO users (id) VALUES (1), (4); COMMIT",
            "refused: 0A000 multi-row INSERT",
        ),
        ("BEGIN; DO $$ BEGIN END $$; COMMIT", "refused: 0A000 DO"),
        ("SELECT * FROM users; SELECT 1", ALL4),
        ("VACUUM users; ANALYZE users", "all shards"),
        (
            "/* shardgate: shard=s1 */ BEGIN; UPDATE users SET a = 1; COMMIT",
            "shard shard1",
        ),
    ];
    table_no_params(&refusing(), rows);
    // On a map of one shard, every statement's shard is that one.
    let one = ShardMap::parse(
        "version: 1\ndefault: s0\nshards:\n  - {name: s0, host: h, port: 1, database: d}\n",
        Path::new("one.yaml"),
    )
    .expect("fixture");
    let rows: &[(&str, &str)] = &[
        (
            "CREATE TABLE t (a int); INSERT INTO t VALUES (1)",
            "shard shard0",
        ),
        ("SELECT 1; VACUUM", "shard shard0"),
    ];
    table_no_params(&one, rows);
}

/// Sequences and advisory locks live on one shard, the same for every client: the default shard,
/// else the first. A statement that also reads a sharded table goes where the table says; a hint
/// still wins.
#[test]
fn sequences_and_advisory_locks() {
    let rows: &[(&str, &str)] = &[
        ("SELECT nextval('orders_id_seq')", "shard shard0"),
        ("SELECT pg_advisory_xact_lock(42)", "shard shard0"),
        ("SELECT currval('s'), lastval()", "shard shard0"),
        (
            "SELECT nextval('s') FROM users WHERE id = 5",
            "shard shard3",
        ),
        (
            "/* shardgate: shard=s1 */ SELECT nextval('s')",
            "shard shard1",
        ),
    ];
    table_no_params(&refusing(), rows);
    let on_s2 = ShardMap::parse(&format!("{SHARDS}default: s2\n"), Path::new("golden.yaml"))
        .expect("fixture");
    let rows: &[(&str, &str)] = &[
        ("SELECT setval('s', 9)", "shard shard2"),
        (
            "SELECT pg_try_advisory_lock(hashtext('job'))",
            "shard shard2",
        ),
    ];
    table_no_params(&on_s2, rows);
    let map = refusing();
    let sequences = |sql: &str| plan(sql, &map).beside == Some(Beside::Sequences);
    assert!(sequences("SELECT nextval($1)"));
    assert!(!sequences("SELECT pg_advisory_xact_lock(1)"));
    assert!(!sequences("SELECT nextval('s'), now()"));
}

#[test]
fn plans_say_why() {
    let map = refusing();
    let p = plan("SELECT * FROM users WHERE id = $1", &map);
    assert_eq!(p.command, super::Command::Read);
    assert!(
        matches!(
            &p.target,
            super::Target::Keys {
                table: 0,
                write: false,
                ..
            }
        ),
        "{:?}",
        p.target
    );
    assert!(p.reason.contains("shard key"), "{}", p.reason);
    let p = plan("UPDATE users SET a = 1 WHERE id = $1", &map);
    assert_eq!(p.command, super::Command::Write);
    let p = plan("DELETE FROM users", &map);
    assert!(p.reason.starts_with("refused: "), "{}", p.reason);
    let super::Target::Refuse(r) = &p.target else {
        panic!("{:?}", p.target)
    };
    assert_eq!(r.code, "0A000");
    assert!(
        r.hint
            .as_deref()
            .unwrap_or("")
            .contains("multi_shard_writes")
    );
}
