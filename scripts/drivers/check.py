"""psycopg 3 and asyncpg through shardgate (scripts/dev.sh up): keyed reads and writes, prepared
statements, binary formats, transactions, co-located joins, scatter reads, COPY, cancel, settings.
Executemany across shards is refused by design (a batch before one Sync is one transaction)."""
import asyncio, decimal, sys
import psycopg, asyncpg
DSN = "host=127.0.0.1 port=6432 dbname=app user=app password=app"
ok = 0; bad = 0
def check(name, f):
    global ok, bad
    try:
        f(); ok += 1; print("ok  ", name)
    except Exception as e:
        bad += 1; print("FAIL", name, type(e).__name__, str(e).splitlines()[0] if str(e) else "")

class raises:
    """`with raises(E): ...` passes only if the block raises E."""
    def __init__(self, exc):
        self.exc = exc
    def __enter__(self):
        return self
    def __exit__(self, t, v, tb):
        if t is None:
            raise AssertionError(f"{self.exc.__name__} not raised")
        return issubclass(t, self.exc)

def pg():
    with psycopg.connect(DSN, autocommit=True) as c:
        for i in range(900000, 900100):
            c.execute("DELETE FROM orders WHERE user_id = %s", (i,))
            c.execute("DELETE FROM users WHERE id = %s", (i,))
    def inserts():
        with psycopg.connect(DSN, autocommit=True) as c:
            for i in range(900000, 900020):
                c.execute("INSERT INTO users (id, email) VALUES (%s, %s)", (i, f"u{i}@x"))
            r = c.execute("SELECT email FROM users WHERE id = %s", (900007,)).fetchone()
            assert r == ("u900007@x",), r
    check("psycopg autocommit insert/select (extended, text)", inserts)
    def prepared():
        with psycopg.connect(DSN, autocommit=True) as c:
            for _ in range(3):
                for i in range(900000, 900020):
                    r = c.execute("SELECT id FROM users WHERE id = %s", (i,), prepare=True).fetchone()
                    assert r == (i,), r
    check("psycopg prepared (named statements)", prepared)
    def binary():
        with psycopg.connect(DSN, autocommit=True) as c:
            cur = c.cursor(binary=True)
            for i in range(900000, 900020):
                r = cur.execute("SELECT id, email FROM users WHERE id = %b", (i,)).fetchone()
                assert r == (i, f"u{i}@x"), r
    check("psycopg binary params/results", binary)
    def tx():
        with psycopg.connect(DSN) as c:
            with c.transaction():
                c.execute("INSERT INTO orders (id, user_id, amount) VALUES (1, %s, 9.5)", (900001,))
                c.execute("UPDATE users SET email = 'changed' WHERE id = %s", (900001,))
            r = c.execute("SELECT u.email, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = %s", (900001,)).fetchone()
            assert r == ("changed", decimal.Decimal("9.50")), r
            c.rollback()
    check("psycopg transaction on one shard + co-located join", tx)
    def executemany_one_shard():
        with psycopg.connect(DSN, autocommit=True) as c:
            c.cursor().executemany("INSERT INTO orders (id, user_id, amount) VALUES (%s, %s, 1)", [(i, 900002) for i in range(10, 20)])
            r = c.execute("SELECT count(*) FROM orders WHERE user_id = %s", (900002,)).fetchone()
            assert r == (10,), r
    check("psycopg executemany, one shard", executemany_one_shard)
    def executemany_many():
        # One batch before one Sync is one transaction: across shards it is refused (0A000).
        with psycopg.connect(DSN, autocommit=True) as c:
            with raises(psycopg.errors.FeatureNotSupported):
                c.cursor().executemany("INSERT INTO orders (id, user_id, amount) VALUES (1, %s, 1)", [(i,) for i in range(900003, 900013)])
            assert c.execute("SELECT 1").fetchone() == (1,)
    check("psycopg executemany across shards is refused", executemany_many)
    def scatter():
        with psycopg.connect(DSN, autocommit=True) as c:
            r = c.execute("SELECT id FROM users WHERE id BETWEEN %s AND %s ORDER BY id DESC LIMIT 3", (900000, 900019)).fetchall()
            assert r == [(900019,), (900018,), (900017,)], r
            r = c.execute("SELECT count(*), sum(id) FROM users WHERE id BETWEEN 900000 AND 900019").fetchone()
            assert r == (20, sum(range(900000, 900020))), r
    check("psycopg scatter ORDER BY/LIMIT, aggregates", scatter)
    def copy_in():
        with psycopg.connect(DSN, autocommit=True) as c:
            with c.cursor().copy("COPY users (id, email) FROM STDIN") as cp:
                for i in range(900030, 900040):
                    cp.write_row((i, f"c{i}"))
            r = c.execute("SELECT count(*) FROM users WHERE id BETWEEN 900030 AND 900039").fetchone()
            assert r == (10,), r
    check("psycopg COPY FROM STDIN into a sharded table", copy_in)
    def copy_out():
        with psycopg.connect(DSN, autocommit=True) as c:
            with c.cursor().copy("COPY (SELECT code FROM countries ORDER BY code) TO STDOUT") as cp:
                rows = list(cp.rows())
    check("psycopg COPY TO STDOUT (reference table)", copy_out)
    def cursor_named():
        with psycopg.connect(DSN) as c:
            cur = c.cursor(name="sc")
            cur.execute("SELECT id FROM users WHERE id = %s", (900005,))
            assert cur.fetchall() == [(900005,)]
            c.rollback()
    check("psycopg server-side cursor on one shard", cursor_named)
    def cancel():
        with psycopg.connect(DSN, autocommit=True) as c:
            import threading, time
            t = threading.Timer(0.3, c.cancel)
            t.start()
            with raises(psycopg.errors.QueryCanceled):
                c.execute("SELECT pg_sleep(5) FROM users WHERE id = 900001")
            assert c.execute("SELECT 1").fetchone() == (1,)
    check("psycopg cancel", cancel)
    def pipeline():
        with psycopg.connect(DSN, autocommit=True) as c:
            with c.pipeline():
                curs = [c.execute("SELECT id FROM users WHERE id = %s", (i,)) for i in (900000, 900001, 900004)]
            assert [x.fetchone()[0] for x in curs] == [900000, 900001, 900004]
    check("psycopg pipeline of reads across shards", pipeline)

def apg():
    async def basic():
        c = await asyncpg.connect(host="127.0.0.1", port=6432, user="app", password="app", database="app")
        for i in range(900000, 900020):
            r = await c.fetchrow("SELECT id, email FROM users WHERE id = $1", i)
            assert r["id"] == i
        r = await c.fetch("SELECT id FROM users WHERE id = ANY($1::bigint[]) ORDER BY id", [900001, 900002, 900015])
        assert [x["id"] for x in r] == [900001, 900002, 900015], r
        async with c.transaction():
            await c.execute("UPDATE users SET email = $2 WHERE id = $1", 900003, "a@x")
        assert await c.fetchval("SELECT email FROM users WHERE id = $1", 900003) == "a@x"
        n = await c.fetchval("SELECT count(*) FROM users WHERE id BETWEEN $1 AND $2", 900000, 900019)
        assert n == 20, n
        await c.close()
    async def many_one_shard():
        c = await asyncpg.connect(host="127.0.0.1", port=6432, user="app", password="app", database="app")
        await c.executemany("INSERT INTO orders (id, user_id, amount) VALUES ($1, $2, 1)", [(i, 900004) for i in range(50, 60)])
        await c.close()
    async def many():
        c = await asyncpg.connect(host="127.0.0.1", port=6432, user="app", password="app", database="app")
        with raises(asyncpg.exceptions.FeatureNotSupportedError):
            await c.executemany("INSERT INTO orders (id, user_id, amount) VALUES (2, $1, 1)", [(i,) for i in range(900003, 900013)])
        assert await c.fetchval("SELECT 1") == 1
        await c.close()
    async def copy():
        c = await asyncpg.connect(host="127.0.0.1", port=6432, user="app", password="app", database="app")
        await c.copy_records_to_table("users", records=[(900050 + i, f"r{i}") for i in range(5)], columns=["id", "email"])
        await c.close()
    for name, f in [("asyncpg fetch/transaction/scatter", basic), ("asyncpg executemany one shard", many_one_shard),
                    ("asyncpg executemany across shards is refused", many), ("asyncpg copy_records_to_table", copy)]:
        check(name, lambda f=f: asyncio.run(f()))

pg()
apg()
print(ok, "passed,", bad, "failed")
sys.exit(1 if bad else 0)
