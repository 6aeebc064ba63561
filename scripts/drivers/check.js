// node-postgres through shardgate (scripts/dev.sh up): parameters, named statements, a transaction,
// a scatter read, and a SET that follows the client from shard to shard.
const { Client } = require('pg');
(async () => {
  const c = new Client({ host: '127.0.0.1', port: 6432, user: 'app', password: 'app', database: 'app' });
  await c.connect();
  const out = [];
  const check = async (name, f) => { try { await f(); out.push('ok   ' + name); } catch (e) { out.push('FAIL ' + name + ' ' + e.message); } };
  await check('param select', async () => { const r = await c.query('SELECT id, email FROM users WHERE id = $1', [900001]); if (r.rows.length !== 1) throw new Error(JSON.stringify(r.rows)); });
  await check('named prepared', async () => { for (let i = 0; i < 5; i++) { const r = await c.query({ name: 'byid', text: 'SELECT id FROM users WHERE id = $1', values: [900000 + i] }); if (r.rows[0].id !== String(900000 + i)) throw new Error(JSON.stringify(r.rows)); } });
  await check('transaction', async () => { await c.query('BEGIN'); await c.query('UPDATE users SET email = $2 WHERE id = $1', [900002, 'n@x']); await c.query('COMMIT'); });
  await check('scatter', async () => { const r = await c.query('SELECT count(*) AS n FROM users WHERE id BETWEEN $1 AND $2', [900000, 900019]); if (r.rows[0].n !== '20') throw new Error(JSON.stringify(r.rows)); });
  await check('SET then other shard', async () => { await c.query("SET TIME ZONE 'Asia/Tokyo'"); for (const id of [900000, 900001, 900002, 900003]) { const r = await c.query("SELECT current_setting('TimeZone') AS tz FROM users WHERE id = $1", [id]); if (r.rows[0].tz !== 'Asia/Tokyo') throw new Error(r.rows[0].tz); } });
  await c.end();
  console.log(out.join("\n"));
  process.exit(out.some((l) => l.startsWith("FAIL")) ? 1 : 0);
})();
