"""asyncpg through shardgate, as its users drive it: every statement prepared under asyncpg's own
names, type introspection (a custom codec, arrays), executemany (one Sync), a transaction with a
cursor, ids from a sequence in nested transactions, binary COPY, errors by SQLSTATE, merged reads over both shards, and a pool whose connections
each must get their own results. executemany over several shards (one Sync) is refused whole. Connects with the PG* environment variables; the users table holds
ids 1-40 and 100-149 afterwards."""

import asyncio
import json

import asyncpg


async def main():
    conn = await asyncpg.connect()
    for i in range(1, 41):
        await conn.execute("INSERT INTO users (id, email) VALUES ($1, $2)", i, f"u{i}@x")
    row = await conn.fetchrow("SELECT id, email FROM users WHERE id = $1", 5)
    assert (row["id"], row["email"]) == (5, "u5@x"), row
    await conn.executemany(
        "INSERT INTO orders (id, user_id, amount) VALUES ($1, $2, $3)",
        [(j, 1, j) for j in range(50)],
    )
    try:
        await conn.executemany("INSERT INTO users (id, email) VALUES ($1, 'many')", [(i,) for i in range(200, 210)])
        raise AssertionError("executemany over several shards ran")
    except asyncpg.FeatureNotSupportedError:
        pass
    assert await conn.fetchval("SELECT count(*) FROM users WHERE id >= 200") == 0
    assert await conn.fetchval("SELECT sum(amount) FROM orders WHERE user_id = $1", 1) == sum(range(50))
    assert await conn.fetchval("SELECT count(*) FROM orders") == 50
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id LIMIT 3 OFFSET 2")]
    assert ids == [3, 4, 5], ids
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    assert await conn.fetchval("SELECT $1::json", {"a": [1, 2]}) == {"a": [1, 2]}
    assert await conn.fetchval("SELECT $1::int8[]", [1, 2, 3]) == [1, 2, 3]
    n = await conn.fetchval("SELECT count(*) FROM users WHERE id = ANY($1::int8[])", [1, 2, 3, 40])
    assert n == 4, n
    async with conn.transaction():
        await conn.execute("UPDATE users SET email = 'tx' WHERE id = $1", 2)
        got = [r["id"] async for r in conn.cursor("SELECT id FROM orders WHERE user_id = $1 ORDER BY id", 1, prefetch=7)]
        assert got == list(range(50)), got
    try:
        async with conn.transaction():
            await conn.execute("UPDATE users SET email = 'undone' WHERE id = $1", 2)
            raise KeyError("roll back")
    except KeyError:
        pass
    assert await conn.fetchval("SELECT email FROM users WHERE id = $1", 2) == "tx"
    try:
        await conn.execute("INSERT INTO users (id, email) VALUES ($1, 'again')", 1)
        raise AssertionError("a duplicate key was accepted")
    except asyncpg.UniqueViolationError:
        pass
    await conn.copy_records_to_table("users", records=[(i, f"c{i}") for i in range(100, 150)], columns=["id", "email"])
    assert await conn.fetchval("SELECT count(*) FROM users") == 90
    stmt = await conn.prepare("SELECT email FROM users WHERE id = $1")
    for i in range(100, 150):
        assert await stmt.fetchval(i) == f"c{i}"
    # Ids drawn from one sequence, as ORMs draw them in a transaction before a keyed write, here in
    # a nested block (a SAVEPOINT): every draw from the same sequence, whichever shard the write is on.
    await conn.execute("CREATE SEQUENCE order_ids START 300")
    drawn = []
    for _ in range(6):
        async with conn.transaction():
            async with conn.transaction():
                i = await conn.fetchval("SELECT nextval('order_ids')")
                await conn.execute("INSERT INTO orders (id, user_id, amount) VALUES ($1, $1, 0)", i)
            drawn.append(i)
    assert drawn == list(range(300, 306)), drawn
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE id >= 300") == 6
    await conn.close()

    pool = await asyncpg.create_pool(min_size=4, max_size=16)

    async def client(t):
        async with pool.acquire() as c:
            for k in range(100):
                i = 1 + (t * 7 + k) % 40
                row = await c.fetchrow("SELECT id, $2::int AS t FROM users WHERE id = $1", i, t)
                assert (row["id"], row["t"]) == (i, t), (t, k, row)

    await asyncio.gather(*(client(t) for t in range(16)))
    await pool.close()
    print("asyncpg ok")


asyncio.run(main())
