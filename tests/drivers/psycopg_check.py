"""psycopg 3 through shardgate, as its users drive it: server-side prepared statements (after
prepare_threshold), binary parameters, executemany and pipeline mode (one Sync for many statements),
transactions, a co-located join, a named cursor, set_config and savepoints of a transaction, COPY both ways, cancel, errors by SQLSTATE, merged
reads over both shards, and threads that each must get their own results. A batch before one Sync
is one transaction: executemany over several shards is refused whole. Connects with the PG* environment variables; the
users table holds ids 1-40 and 100-149 afterwards."""

import threading
import time

import psycopg
from psycopg import errors


def main():
    with psycopg.connect(autocommit=True) as conn:
        for i in range(1, 41):
            conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)", (i, f"u{i}@x"))
        # Past the 5th execution psycopg prepares the statement under a name of its own.
        for i in range(1, 41):
            row = conn.execute("SELECT email FROM users WHERE id = %s", (i,)).fetchone()
            assert row == (f"u{i}@x",), (i, row)
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT id, email FROM users WHERE id = %b", (7,))
            assert cur.fetchone() == (7, "u7@x")
        # executemany pipelines every INSERT before one Sync: on one shard key it runs whole.
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO orders (id, user_id, amount) VALUES (%s, %s, %s)",
                [(j, 1, j) for j in range(50)],
            )
        try:
            conn.cursor().executemany("INSERT INTO users (id, email) VALUES (%s, 'many')", [(i,) for i in range(200, 210)])
            raise AssertionError("executemany over several shards ran")
        except errors.FeatureNotSupported:
            pass
        assert conn.execute("SELECT count(*) FROM users WHERE id >= 200").fetchone() == (0,)
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int, email FROM users WHERE id = %s", (k, 3)) for k in range(10)]
        assert [c.fetchone() for c in curs] == [(k, "u3@x") for k in range(10)]
        # Reads over both shards, merged.
        assert conn.execute("SELECT count(*), sum(amount) FROM orders").fetchone() == (50, sum(range(50)))
        ids = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY id DESC LIMIT 3")]
        assert ids == [40, 39, 38], ids
        try:
            conn.execute("INSERT INTO users (id, email) VALUES (%s, 'again')", (1,))
            raise AssertionError("a duplicate key was accepted")
        except errors.UniqueViolation:
            pass
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with conn.cursor() as cur:
            with cur.copy("COPY users (id, email) FROM STDIN") as copy:
                for i in range(100, 150):
                    copy.write_row((i, f"c{i}"))
            with cur.copy("COPY (SELECT id, email FROM users WHERE id = 120) TO STDOUT") as copy:
                rows = list(copy.rows())
            assert rows == [("120", "c120")], rows
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (90,)
        conn.execute("INSERT INTO countries (code, name) VALUES ('nz', 'New Zealand'), ('jp', 'Japan')")
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT code FROM countries ORDER BY code) TO STDOUT") as copy:
                assert list(copy.rows()) == [("jp",), ("nz",)]
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        try:
            conn.execute("SELECT pg_sleep(30) FROM users WHERE id = 3")
            raise AssertionError("the cancel did not reach the query")
        except errors.QueryCanceled:
            pass
        timer.join()
        assert conn.execute("SELECT 1").fetchone() == (1,)

    with psycopg.connect() as conn:
        # psycopg opens a transaction before this read; it runs beside it, on both shards.
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (90,)
        conn.commit()
        with conn.transaction():
            conn.execute("UPDATE users SET email = 'tx' WHERE id = %s", (2,))
            conn.execute("INSERT INTO orders (id, user_id, amount) VALUES (1, %s, 9.5)", (2,))
        row = conn.execute(
            "SELECT u.email, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = %s", (2,)
        ).fetchone()
        assert row == ("tx", 9.5), row
        conn.commit()
        try:
            with conn.transaction():
                conn.execute("UPDATE users SET email = 'undone' WHERE id = %s", (2,))
                raise KeyError("roll back")
        except KeyError:
            pass
        assert conn.execute("SELECT email FROM users WHERE id = %s", (2,)).fetchone() == ("tx",)
        conn.commit()
        # A named cursor is DECLARE and FETCH inside the transaction, on the key's shard.
        with conn.cursor(name="by_key") as cur:
            cur.itersize = 2
            cur.execute("SELECT id FROM orders WHERE user_id = %s ORDER BY id", (1,))
            assert [r[0] for r in cur] == list(range(50))
        conn.commit()
        # A transaction's setting from a parameter (row-level security by tenant sets it so), in a
        # nested block (a SAVEPOINT), then a statement keyed to either shard; prepared by name after
        # the 5th time.
        for i in range(1, 11):
            with conn.transaction(), conn.transaction():
                row = conn.execute("SELECT set_config('app.tenant', %s, true)", (f"t{i}",)).fetchone()
                assert row == (f"t{i}",), row
                row = conn.execute("SELECT current_setting('app.tenant') FROM users WHERE id = %s", (i,)).fetchone()
                assert row == (f"t{i}",), (i, row)

    errs = []

    def client(t):
        try:
            with psycopg.connect(autocommit=True) as c:
                for k in range(100):
                    i = 1 + (t * 7 + k) % 40
                    row = c.execute("SELECT id, %s::int FROM users WHERE id = %s", (t, i)).fetchone()
                    if row != (i, t):
                        errs.append((t, k, row))
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(repr(e))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errs, errs[:5]
    print("psycopg ok")


main()
