// node-postgres LISTEN/NOTIFY through pgvalve in transaction pooling. Run by
// internal/app/node_test.go with DATABASE_URL set (a pool of 2 servers).
//
// A listening client gets, through client.on('notification'), every
// notification three other clients send (NOTIFY and pg_notify, several
// channels, payloads with quotes and non-ASCII text, some inside
// transactions), each channel's in the order sent, while BUSY clients keep
// both servers busy with transactions; after UNLISTEN none arrives.
import pg from 'pg';

const url = process.env.DATABASE_URL;
if (!url) fail('DATABASE_URL is not set');
const BUSY = Number(process.env.PG_BUSY ?? 20);
const PER_CHANNEL = 30;
const CHANNELS = ['jobs', 'events', 'Mixed Case'];

function fail(msg) {
  console.error(`pg-notify: FAIL: ${msg}`);
  process.exit(1);
}

function expect(what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

const quoteIdent = (s) => `"${s.replaceAll('"', '""')}"`;
const quoteLiteral = (s) => `'${s.replaceAll("'", "''")}'`;
const payload = (ch, i) => `${ch} #${i}: it's ünïcode`;

async function connect() {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

// until polls cond every 10ms until it holds or ms pass.
async function until(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// busy runs transactions on n clients until stop() is called.
async function busy(n) {
  const clients = await Promise.all(Array.from({ length: n }, connect));
  let running = true;
  let done = 0;
  const loops = clients.map(async (c) => {
    while (running) {
      await c.query('begin');
      await c.query('select pg_sleep(0.001)');
      await c.query('commit');
      done++;
    }
  });
  return async () => {
    running = false;
    await Promise.all(loops);
    await Promise.all(clients.map((c) => c.end()));
    return done;
  };
}

// send sends channel ch's notifications from its own client, in four ways.
async function send(ch) {
  const c = await connect();
  try {
    for (let i = 0; i < PER_CHANNEL; ) {
      switch (i % 4) {
        case 0:
          await c.query(`NOTIFY ${quoteIdent(ch)}, ${quoteLiteral(payload(ch, i++))}`);
          break;
        case 1:
          await c.query('select pg_notify($1, $2)', [ch, payload(ch, i++)]);
          break;
        case 2: // two in one transaction, delivered at its commit
          await c.query('begin');
          await c.query('select pg_notify($1, $2)', [ch, payload(ch, i++)]);
          await c.query(`NOTIFY ${quoteIdent(ch)}, ${quoteLiteral(payload(ch, i++))}`);
          await c.query('commit');
          break;
        default: // a rolled-back notification is never delivered
          await c.query('begin');
          await c.query('select pg_notify($1, $2)', [ch, 'rolled back']);
          await c.query('rollback');
          await c.query('select pg_notify($1, $2)', [ch, payload(ch, i++)]);
      }
    }
  } finally {
    await c.end();
  }
}

async function main() {
  const stopBusy = await busy(BUSY);
  const listener = await connect();
  const got = new Map(CHANNELS.map((ch) => [ch, []]));
  const stray = [];
  listener.on('notification', (n) => (got.has(n.channel) ? got.get(n.channel) : stray).push(n.payload));
  try {
    for (const ch of CHANNELS) await listener.query(`LISTEN ${quoteIdent(ch)}`);
    // The listener keeps running queries while it listens.
    let querying = true;
    const queries = (async () => {
      while (querying) expect('listener query', (await listener.query('select 1 as v')).rows[0].v, 1);
    })();
    await Promise.all(CHANNELS.map(send));
    const total = () => [...got.values()].reduce((n, l) => n + l.length, 0);
    await until(`${CHANNELS.length * PER_CHANNEL} notifications (have ${total()})`, () => total() >= CHANNELS.length * PER_CHANNEL);
    querying = false;
    await queries;
    for (const ch of CHANNELS) {
      expect(`channel ${ch}, in order`, got.get(ch), Array.from({ length: PER_CHANNEL }, (_, i) => payload(ch, i)));
    }
    expect('notifications on channels never listened to', stray, []);

    // After UNLISTEN of one channel nothing more arrives on it; the
    // marker, sent after, shows the late one had its chance.
    await listener.query(`UNLISTEN ${quoteIdent('jobs')}`);
    const sender = await connect();
    await sender.query(`NOTIFY jobs, 'late'`);
    await sender.query(`select pg_notify('events', 'marker')`);
    await until('the marker', () => got.get('events').length === PER_CHANNEL + 1);
    expect('jobs after UNLISTEN jobs', got.get('jobs').length, PER_CHANNEL);
    expect('the marker', got.get('events')[PER_CHANNEL], 'marker');

    // After UNLISTEN * nothing arrives on any channel.
    await listener.query('UNLISTEN *');
    await listener.query('LISTEN final');
    got.set('final', []);
    for (const ch of CHANNELS) await sender.query('select pg_notify($1, $2)', [ch, 'after unlisten *']);
    await sender.query(`NOTIFY final, 'end'`);
    await until('the final marker', () => got.get('final').length === 1);
    expect('jobs after UNLISTEN *', got.get('jobs').length, PER_CHANNEL);
    expect('events after UNLISTEN *', got.get('events').length, PER_CHANNEL + 1);
    expect('Mixed Case after UNLISTEN *', got.get('Mixed Case').length, PER_CHANNEL);
    await sender.end();
  } finally {
    await listener.end();
    const txns = await stopBusy();
    console.log(`pg-notify: ${BUSY} busy clients ran ${txns} transactions meanwhile`);
  }
}

try {
  const start = Date.now();
  await main();
  console.log(`pg-notify: ok: ${CHANNELS.length} channels x ${PER_CHANNEL} notifications in order, ` +
    `none after UNLISTEN, in ${Date.now() - start}ms`);
} catch (e) {
  fail(e.stack ?? e);
}
