// node-postgres logs in to pgvalve with SCRAM-SHA-256 over TLS, checking
// pgvalve's certificate against the CA in PGSSLROOTCERT. Run by
// internal/app/node_test.go with DATABASE_URL set.
import fs from 'node:fs';
import pg from 'pg';

const url = process.env.DATABASE_URL;
const ca = process.env.PGSSLROOTCERT;
if (!url || !ca) {
  console.error('pg-scram-tls: FAIL: DATABASE_URL and PGSSLROOTCERT must be set');
  process.exit(1);
}

const client = new pg.Client({ connectionString: url, ssl: { ca: fs.readFileSync(ca), servername: 'localhost' } });
try {
  await client.connect();
  const { rows } = await client.query('select 41 + 1 as answer');
  if (rows[0].answer !== 42) throw new Error(`got ${JSON.stringify(rows)}`);
  if (!client.connection.stream.encrypted) throw new Error('the connection is not encrypted');
  console.log('pg-scram-tls: ok (SCRAM over TLS)');
} catch (err) {
  console.error(`pg-scram-tls: FAIL: ${err.message}`);
  process.exitCode = 1;
} finally {
  await client.end().catch(() => {});
}
