// node-postgres through shardgate, as its users drive it: unnamed and named prepared statements (the
// same names on many pooled connections), array row mode, transactions, a transaction's setting from a parameter (set_config), a setting that follows the
// client from shard to shard, errors by SQLSTATE, multi-statement strings, merged reads over both shards, and a pool whose clients each must get
// their own results. Connects with the PG* environment variables; the users table holds ids 1-40
// afterwards.
const assert = require('node:assert/strict');
const { Client, Pool } = require('pg');

async function main() {
  const c = new Client();
  await c.connect();
  for (let i = 1; i <= 40; i++) {
    await c.query('INSERT INTO users (id, email) VALUES ($1, $2)', [i, `u${i}@x`]);
  }
  for (let i = 1; i <= 40; i++) {
    const r = await c.query({ name: 'by_id', text: 'SELECT id, email FROM users WHERE id = $1', values: [i] });
    assert.deepEqual(r.rows, [{ id: String(i), email: `u${i}@x` }]);
  }
  const arr = await c.query({ text: 'SELECT id, email FROM users WHERE id = $1', values: [4], rowMode: 'array' });
  assert.deepEqual(arr.rows, [['4', 'u4@x']]);
  await c.query('BEGIN');
  await c.query('UPDATE users SET email = $2 WHERE id = $1', [2, 'undone']);
  await c.query('ROLLBACK');
  assert.equal((await c.query('SELECT email FROM users WHERE id = $1', [2])).rows[0].email, 'u2@x');
  // Row-level security by tenant: the transaction's setting from a parameter, then a read keyed to
  // either shard that sees it.
  for (let i = 1; i <= 8; i++) {
    await c.query('BEGIN');
    const set = await c.query("SELECT set_config('app.tenant', $1, true) AS t", [`t${i}`]);
    assert.deepEqual(set.rows, [{ t: `t${i}` }]);
    const r = await c.query("SELECT current_setting('app.tenant') AS t FROM users WHERE id = $1", [i]);
    assert.deepEqual(r.rows, [{ t: `t${i}` }]);
    await c.query('COMMIT');
  }
  await c.query("SET TIME ZONE 'Asia/Tokyo'");
  for (let i = 1; i <= 8; i++) {
    const r = await c.query("SELECT current_setting('TimeZone') AS tz FROM users WHERE id = $1", [i]);
    assert.deepEqual(r.rows, [{ tz: 'Asia/Tokyo' }]);
  }
  await assert.rejects(c.query('SELECT 1 / 0'), (e) => e.code === '22012');
  await assert.rejects(c.query("INSERT INTO users (id, email) VALUES (1, 'again')"), (e) => e.code === '23505');
  // node-postgres returns int8 as a string, so its users cast counts to int.
  const n = await c.query('SELECT count(*)::int AS n, max(id) AS top FROM users');
  assert.deepEqual(n.rows, [{ n: 40, top: '40' }]);
  const multi = await c.query('SELECT 1 AS a; SELECT 2 AS b');
  assert.equal(multi.length, 2);
  assert.equal(multi[1].rows[0].b, 2);
  await c.end();

  const pool = new Pool({ max: 16 });
  await Promise.all([...Array(16).keys()].map(async (t) => {
    for (let k = 0; k < 100; k++) {
      const i = 1 + ((t * 7 + k) % 40);
      const r = await pool.query({ name: `q${t % 3}`, text: 'SELECT id, $2::int AS t FROM users WHERE id = $1', values: [i, t] });
      assert.deepEqual(r.rows, [{ id: String(i), t }]);
    }
  }));
  await pool.end();
  console.log('node-postgres ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
