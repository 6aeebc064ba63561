//! The merge plans of sample queries: the shard statement, sort keys, LIMIT, aggregates, HAVING.

use super::*;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn check(sql: &str, want: &str) {
    let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .unwrap()
        .remove(0);
    let Statement::Query(q) = stmt else { panic!() };
    let key = ShardKey {
        alias: "t".into(),
        column: "id".into(),
        nullable: false,
    };
    let got = match merge_plan(&q, &[key]) {
        Ok(p) => format!(
            "{} | order {:?} limit {:?} offset {:?} aggs {:?} grouped {} hidden {} having {:?}",
            p.shard_sql,
            p.order_by
                .iter()
                .map(|k| (k.column, k.descending, k.nulls_first))
                .collect::<Vec<_>>(),
            p.limit,
            p.offset,
            p.aggregates,
            p.grouped,
            p.hidden,
            p.having
        ),
        Err(r) => format!("refused: {}", r.message),
    };
    assert!(
        got.starts_with(want),
        "{sql}\n  got:  {got}\n  want: {want}"
    );
}

#[test]
fn plans() {
    check(
        "SELECT id, email FROM users ORDER BY email DESC LIMIT 10 OFFSET 5",
        "SELECT id, email FROM users ORDER BY email DESC LIMIT (10 + 5) | order [(Output(1), true, true)] limit Some(Value(10)) offset Some(Value(5)) aggs [] grouped false hidden 0",
    );
    check(
        "SELECT * FROM users ORDER BY id",
        "SELECT *, id AS __shardgate_sort_0 FROM users ORDER BY id | order [(Hidden(0), false, false)]",
    );
    check(
        "SELECT id FROM users ORDER BY 1 NULLS FIRST LIMIT $1",
        "SELECT id FROM users ORDER BY 1 NULLS FIRST LIMIT $1::INT8 | order [(Output(0), false, true)] limit Some(Param(0))",
    );
    check(
        "SELECT u.id AS k FROM users u ORDER BY k",
        "SELECT u.id AS k FROM users u ORDER BY k | order [(Output(0), false, false)]",
    );
    check(
        "SELECT count(*), sum(x), min(y) FROM t",
        "SELECT count(*), sum(x), min(y) FROM t | order [] limit None offset None aggs [Some(Count), Some(Sum), Some(Min)] grouped false",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC LIMIT 3",
        "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC | order [(Output(1), true, true)] limit Some(Value(3)) offset None aggs [None, Some(Count)] grouped true",
    );
    check(
        "SELECT a FROM t GROUP BY b",
        "refused: GROUP BY b not in the select list",
    );
    check(
        "SELECT g, avg(x) FROM t GROUP BY g",
        "SELECT g, sum(x) AS avg, count(x) AS __shardgate_count_1 FROM t GROUP BY g | order [] limit None offset None aggs [None, Some(Avg { count: 0 }), Some(Count)] grouped true hidden 1",
    );
    check(
        "SELECT count(DISTINCT x) FROM t",
        "refused: count(DISTINCT ...)",
    );
    check("SELECT DISTINCT a FROM t", "refused: DISTINCT");
    // Grouped by the shard key: a window function is refused, the word in a string is not.
    check(
        "SELECT id, 1 + row_number() OVER () FROM t GROUP BY id",
        "refused: a window function",
    );
    check(
        "SELECT id, 'game over ' || count(*) FROM t GROUP BY id",
        "SELECT id, 'game over ' || count(*) FROM t GROUP BY id | order [] limit None offset None aggs [] grouped true",
    );
    // The merge compares text bytewise: a collation the query names must be one that does too.
    check(
        "SELECT a FROM t ORDER BY a COLLATE \"C\"",
        "SELECT a, a COLLATE \"C\" AS __shardgate_sort_0 FROM t ORDER BY a COLLATE \"C\" | order [(Hidden(0), false, false)]",
    );
    check(
        "SELECT a FROM t ORDER BY a COLLATE \"de-x-icu\"",
        "refused: ORDER BY with COLLATE \"de-x-icu\" over several shards",
    );
    check(
        "SELECT a COLLATE \"de-x-icu\" AS n FROM t ORDER BY n",
        "refused: ORDER BY with COLLATE",
    );
    check(
        "SELECT max(a COLLATE \"en_US\") FROM t",
        "refused: min()/max() with COLLATE",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a HAVING a COLLATE \"en_US\" > 'x'",
        "refused: HAVING with COLLATE",
    );
    // Grouped by the shard key, each group's max is final on its shard; sorting by it is not.
    check(
        "SELECT id, max(a COLLATE \"en_US\") FROM t GROUP BY id",
        "SELECT id, max(a COLLATE \"en_US\") FROM t GROUP BY id | order []",
    );
    check(
        "SELECT id, max(a COLLATE \"en_US\") FROM t GROUP BY id ORDER BY 2",
        "refused: ORDER BY with COLLATE",
    );
    check("SELECT a FROM t UNION SELECT a FROM u", "refused: UNION");
    check(
        "SELECT count(*) + 1 FROM t",
        "refused: an expression over aggregates",
    );
    // A count cast to a type its parts add up in exactly: the shards cast, the merge adds.
    check(
        "SELECT count(*)::int AS n, CAST(count(x) AS bigint), count(*)::numeric, (count(*))::float8 FROM t",
        "SELECT count(*)::INT AS n, CAST(count(x) AS BIGINT), count(*)::NUMERIC, (count(*))::FLOAT8 FROM t | order [] limit None offset None aggs [Some(Count), Some(Count), Some(Count), Some(Count)]",
    );
    check(
        "SELECT a, count(*)::int4 FROM t GROUP BY a ORDER BY 2 DESC",
        "SELECT a, count(*)::INT4 FROM t GROUP BY a ORDER BY 2 DESC | order [(Output(1), true, true)] limit None offset None aggs [None, Some(Count)] grouped true",
    );
    check(
        "SELECT count(DISTINCT id)::int FROM t",
        "SELECT count(DISTINCT id)::INT FROM t | order [] limit None offset None aggs [Some(Count)]",
    );
    check(
        "SELECT count(DISTINCT x)::int FROM t",
        "refused: count(DISTINCT ...)",
    );
    for sql in [
        "SELECT sum(x)::int FROM t",
        "SELECT max(x)::int FROM t",
        "SELECT count(*)::real FROM t",
        "SELECT count(*)::numeric(10, 2) FROM t",
        "SELECT count(*)::text FROM t",
        "SELECT TRY_CAST(count(*) AS int) FROM t",
    ] {
        check(sql, "refused: an expression over aggregates");
    }
    check(
        "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1",
        "SELECT a, count(*) FROM t GROUP BY a | order [] limit None offset None aggs [None, Some(Count)] grouped true hidden 0 having Some(Compare(Column(1), Gt, Literal(\"1\")))",
    );
    check(
        "SELECT a FROM t GROUP BY a HAVING avg(x) >= $1 AND NOT max(y) IS NULL",
        "SELECT a, sum(x) AS __shardgate_having_0, count(x) AS __shardgate_having_1, max(y) AS __shardgate_having_2 FROM t GROUP BY a HAVING (avg(x) >= $1 AND NOT max(y) IS NULL) OR true | order [] limit None offset None aggs [None, Some(Avg { count: 1 }), Some(Count), Some(Max)] grouped true hidden 3 having Some(And(Compare(Column(1), GtEq, Param(0, None)), Not(IsNull(Column(3)))))",
    );
    check(
        "SELECT sum(x) FROM t HAVING count(*) BETWEEN -1 AND 10",
        "SELECT sum(x), count(*) AS __shardgate_having_0 FROM t | order [] limit None offset None aggs [Some(Sum), Some(Count)] grouped false hidden 1 having Some(And(Compare(Column(1), GtEq, Literal(\"-1\")), Compare(Column(1), LtEq, Literal(\"10\"))))",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a HAVING sum(x) / count(*) > 1",
        "refused: an expression over aggregates (sum(x) / count(*))",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a HAVING b > 1",
        "refused: HAVING b (not an aggregate or a GROUP BY column)",
    );
    // An ordinal past the select list (PostgreSQL raises its own error on the shards).
    check(
        "SELECT * FROM t ORDER BY 2",
        "SELECT * FROM t ORDER BY 2 | order [(Output(1), false, false)]",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 2.7::int",
        "refused: HAVING 2.7::INT",
    );
    // An output alias is not a column HAVING can name.
    check(
        "SELECT a, count(*) AS n FROM t GROUP BY a HAVING n > 1",
        "refused: HAVING n (not an aggregate or a GROUP BY column)",
    );
    check(
        "SELECT a AS k, count(*) AS n FROM t GROUP BY a HAVING a > 1 AND count(*) > 2",
        "SELECT a AS k, count(*) AS n FROM t GROUP BY a | order [] limit None offset None aggs [None, Some(Count)] grouped true hidden 0 having Some(And(Compare(Column(0), Gt, Literal(\"1\")), Compare(Column(1), Gt, Literal(\"2\"))))",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a HAVING 1 = 1",
        "refused: HAVING 1 = 1 (no aggregate",
    );
    check(
        "SELECT id, count(*) FROM t GROUP BY id HAVING count(*) > 1",
        "SELECT id, count(*) FROM t GROUP BY id HAVING count(*) > 1 | order [] limit None offset None aggs [] grouped true hidden 0 having None",
    );
    check(
        "SELECT a, count(*) FROM t GROUP BY a ORDER BY sum(b)",
        "refused: ORDER BY sum(b) not in the select list",
    );
}
