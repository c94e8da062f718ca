// A Prisma 7 program run unchanged through pgvalve in transaction pooling
// mode: many concurrent workers doing reads, writes and interactive
// transactions, each checking what it reads back. Run by
// internal/app/node_test.go (node --import tsx prisma/main.ts) with
// DATABASE_URL pointing at pgvalve and the tables made from schema.sql.
import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

const url = process.env.DATABASE_URL;
const WORKERS = Number(process.env.PRISMA_WORKERS ?? 50);
const ROUNDS = 10;

function fail(msg: unknown): never {
  console.error(`prisma: FAIL: ${msg}`);
  process.exit(1);
}
if (!url) fail('DATABASE_URL is not set');

function expect(what: string, got: unknown, want: unknown) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

// The pg adapter caches prepared statements only when given a name
// generator: then every query is a named statement, prepared once per pg
// connection and re-executed by name, which is what pgvalve must track.
// The name must be unique per SQL text, so it is a hash of it.
const names = new Set<string>();
const adapter = new PrismaPg(
  { connectionString: url, max: WORKERS },
  {
    statementNameGenerator: (q) => {
      const name = 's' + createHash('sha1').update(q.sql).digest('hex').slice(0, 20);
      names.add(name);
      return name;
    },
  },
);
const prisma = new PrismaClient({ adapter });

async function worker(w: number, run: string) {
  const user = await prisma.user.create({ data: { email: `${run}-w${w}@test`, worker: w } });
  for (let i = 0; i < ROUNDS; i++) {
    // An interactive transaction: both writes and the read in it share one
    // server, and the read sees the uncommitted post.
    const n = await prisma.$transaction(async (tx) => {
      const post = await tx.post.create({ data: { title: `w${w}-p${i}`, authorId: user.id } });
      await tx.post.update({ where: { id: post.id }, data: { views: { increment: w + i } } });
      return tx.post.count({ where: { authorId: user.id } });
    });
    expect(`worker ${w} round ${i} count in tx`, n, i + 1);

    const got = await prisma.user.findUnique({ where: { email: user.email }, include: { posts: { orderBy: { id: 'asc' } } } });
    expect(`worker ${w} round ${i} user`, got?.worker, w);
    expect(`worker ${w} round ${i} titles`, got?.posts.map((p) => p.title),
      Array.from({ length: i + 1 }, (_, k) => `w${w}-p${k}`));
    expect(`worker ${w} round ${i} views`, got?.posts.map((p) => p.views),
      Array.from({ length: i + 1 }, (_, k) => w + k));
  }

  // A transaction that fails must leave nothing behind.
  await prisma.$transaction(async (tx) => {
    await tx.post.create({ data: { title: `w${w}-rolled-back`, authorId: user.id } });
    throw new Error('rollback');
  }).catch((e) => { if (e.message !== 'rollback') throw e; });

  const posts = await prisma.post.findMany({ where: { authorId: user.id }, select: { id: true, title: true } });
  expect(`worker ${w} posts after rollback`, posts.length, ROUNDS);
  const even = posts.filter((_, k) => k % 2 === 0).map((p) => p.id);
  const del = await prisma.post.deleteMany({ where: { id: { in: even } } });
  expect(`worker ${w} deleted`, del.count, even.length);
  // A batch transaction: several queries in one BEGIN/COMMIT.
  const [left, mine] = await prisma.$transaction([
    prisma.post.count({ where: { authorId: user.id } }),
    prisma.user.count({ where: { worker: w, email: { startsWith: run } } }),
  ]);
  expect(`worker ${w} posts left`, left, ROUNDS - even.length);
  expect(`worker ${w} users`, mine, 1);
  await prisma.user.delete({ where: { id: user.id } });
  expect(`worker ${w} posts after delete`, await prisma.post.count({ where: { authorId: user.id } }), 0);
}

try {
  const start = Date.now();
  const run = `r${process.pid}-${start}`;
  const results = await Promise.allSettled(Array.from({ length: WORKERS }, (_, w) => worker(w, run)));
  const errors = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  if (errors.length > 0) {
    throw new Error(`${errors.length} of ${WORKERS} workers failed; first: ${errors[0]?.stack ?? errors[0]}`);
  }
  expect('users left', await prisma.user.count({ where: { email: { startsWith: run } } }), 0);
  // Proof that the run went through named (cached) statements at all.
  if (names.size === 0) throw new Error('the adapter named no statements: caching is off');
  console.log(`prisma: ok: ${WORKERS} workers x ${ROUNDS} interactive transactions, reads, deletes, ` +
    `${names.size} distinct named statements, in ${Date.now() - start}ms`);
  await prisma.$disconnect();
} catch (e) {
  fail((e as Error).stack ?? e);
}
