// node-postgres named prepared statements through pgvalve in transaction
// pooling mode. Run by internal/app/node_test.go with DATABASE_URL set.
//
// node-postgres prepares a named query once per connection (Parse with the
// name) and afterwards sends only Bind/Execute with that name. Behind a
// transaction pooler each execution may land on another server, and two
// clients may use one name for different SQL: pgvalve must keep each
// client's statement its own.
import pg from 'pg';

const url = process.env.DATABASE_URL;
if (!url) fail('DATABASE_URL is not set');
const POOL_CLIENTS = Number(process.env.PG_CLIENTS ?? 50);
const ROUNDS = 200;

function fail(msg) {
  console.error(`pg-named: FAIL: ${msg}`);
  process.exit(1);
}

function expect(what, got, want) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// Two clients, one statement name, different SQL and result types.
async function sameNameDifferentSQL() {
  const a = new pg.Client({ connectionString: url });
  const b = new pg.Client({ connectionString: url });
  await Promise.all([a.connect(), b.connect()]);
  try {
    const runA = async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const r = await a.query({ name: 'q', text: 'select $1::int + 1 as v', values: [i] });
        expect(`client a round ${i}`, r.rows[0].v, i + 1);
      }
    };
    const runB = async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const r = await b.query({ name: 'q', text: "select $1::text || '-b' as v", values: [`r${i}`] });
        expect(`client b round ${i}`, r.rows[0].v, `r${i}-b`);
      }
    };
    await Promise.all([runA(), runB()]);
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

// Statements every pool client prepares: shared names, some with the same
// text on every client, some with text that differs per client.
const shapes = [
  { name: 'echo', text: 'select $1::int as id, $2::int as n', check: (r, id, n) => r.id === id && r.n === n },
  { name: 'sum', text: 'select $1::int as id, $2::int * 2 as n', check: (r, id, n) => r.id === id && r.n === n * 2 },
  { name: 'txt', text: "select $1::int as id, 'n' || $2::text as n", check: (r, id, n) => r.id === id && r.n === `n${n}` },
  { name: 'rows', text: 'select $1::int as id, g as n from generate_series(1, $2::int) g', rows: true },
];

// Each pool client runs its own connection (pool.connect) so its statement
// cache is its own, interleaving named queries with a transaction.
async function poolClient(pool, id) {
  const c = await pool.connect();
  try {
    for (let i = 0; i < 20; i++) {
      for (const s of shapes) {
        const n = (i % 5) + 1;
        const r = await c.query({ name: s.name, text: s.text, values: [id, n] });
        if (s.rows) {
          expect(`client ${id} ${s.name} row count`, r.rows.length, n);
          r.rows.forEach((row, k) => { expect(`client ${id} ${s.name} id`, row.id, id); expect(`client ${id} ${s.name} n`, row.n, k + 1); });
        } else if (r.rows.length !== 1 || !s.check(r.rows[0], id, n)) {
          throw new Error(`client ${id} ${s.name}: got ${JSON.stringify(r.rows)} for (${id}, ${n})`);
        }
      }
      // A name whose SQL is this client's own: only this client knows it.
      const own = await c.query({ name: 'own', text: `select $1::int as id, ${id} as k`, values: [id] });
      expect(`client ${id} own k`, own.rows[0].k, id);
      // Named statements inside a transaction, which holds one server.
      await c.query('begin');
      const t = await c.query({ name: 'echo', text: shapes[0].text, values: [id, i] });
      expect(`client ${id} in tx`, t.rows[0].n, i);
      await c.query('commit');
    }
  } finally {
    c.release();
  }
}

async function pooled() {
  const pool = new pg.Pool({ connectionString: url, max: POOL_CLIENTS });
  try {
    const ids = Array.from({ length: POOL_CLIENTS }, (_, id) => id);
    await Promise.all(ids.map((id) => poolClient(pool, id)));
  } finally {
    await pool.end();
  }
}

try {
  const start = Date.now();
  await sameNameDifferentSQL();
  await pooled();
  console.log(`pg-named: ok: 2 clients x ${ROUNDS} rounds of one name with different SQL, ` +
    `${POOL_CLIENTS} pool clients x 20 rounds of ${shapes.length + 2} named queries, in ${Date.now() - start}ms`);
} catch (e) {
  fail(e.stack ?? e);
}
