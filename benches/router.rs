//! Parse + route: a statement whose plan is in the parse cache (the hot path: a plan lookup by text,
//! then reading the key from the Bind parameter), the same for a simple-protocol statement (its
//! literals become placeholders first), and one that must be parsed (a cache miss).
//! Run with `cargo bench --bench router`; the goal for a cached statement is under 2 µs.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use shardgate::ShardMap;
use shardgate::router::{Params, Router, resolve};

const MAP: &str = "version: 1
buckets: 1024
shards:
  - {name: s0, host: h, port: 1, database: d, buckets: [0-255]}
  - {name: s1, host: h, port: 2, database: d, buckets: [256-511]}
  - {name: s2, host: h, port: 3, database: d, buckets: [512-767]}
  - {name: s3, host: h, port: 4, database: d, buckets: [768-1023]}
tables:
  - {name: users, key: id, type: int8, strategy: hash}
  - {name: orders, key: user_id, colocate_with: users}
";

const SQL: &str = "SELECT o.id, o.amount FROM orders o JOIN users u ON u.id = o.user_id WHERE u.id = $1 AND o.amount > 10";

/// pgbench -S's statement as the simple protocol sends it: the key is a literal in the text.
const SIMPLE: &str =
    "SELECT abalance FROM users WHERE id = 4211 AND email <> 'nobody@example.com';";

fn bench(c: &mut Criterion) {
    let map = ShardMap::parse(MAP, Path::new("bench.yaml")).expect("map");
    let router = Router::new(10_000);
    router.plan(SQL, &map);
    let key = 123_456_789i64.to_be_bytes();
    let values = [Some(&key[..])];
    let formats = [1i16];
    c.bench_function("route cached statement (plan lookup + binary key)", |b| {
        b.iter(|| {
            let plan = router.plan(black_box(SQL), &map);
            resolve(&plan, &map, &Params::new(&formats, &values), None)
        })
    });
    c.bench_function(
        "route simple-protocol statement (literals -> placeholders, lookup, text key)",
        |b| {
            b.iter(|| {
                let (plan, literals) = router.plan_simple(black_box(SIMPLE), &map);
                let values: Vec<Option<&[u8]>> =
                    literals.iter().map(|l| Some(l.as_bytes())).collect();
                resolve(&plan, &map, &Params::new(&[], &values), None)
            })
        },
    );
    let mut n = 0u64;
    c.bench_function("route new statement (parse + plan + resolve)", |b| {
        b.iter(|| {
            n += 1;
            // A new text each time: a comment makes every statement a cache miss.
            let sql = format!("{SQL} /* {n} */");
            let plan = Router::new(1).plan(&sql, &map);
            resolve(&plan, &map, &Params::new(&formats, &values), None)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
