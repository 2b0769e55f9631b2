// How long filtered lists take as the user count grows: eq and sw must stay flat (answered
// from indexes); co is printed as it is. Both sizes are seeded first, then measured in
// interleaved runs (the order of sizes rotated each repetition), so that a noisy machine
// slows both alike; printed: median and min per size, and the ratio 100k/1k of the medians.
// Run: npm run bench:filters [-- --engine postgres]   (postgres: a throw-away server is started)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { startPostgres, type PostgresServer } from '../scripts/lib/postgres.ts';
import { parseFilter } from '../src/scim/filter/parse.ts';
import { openPostgresStore } from '../src/store/postgres.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import type { SqlStore } from '../src/store/sqlStore.ts';
import { makeUser, seededRandom } from '../test/support/syntheticUsers.ts';

const { values } = parseArgs({ options: { engine: { type: 'string', default: 'sqlite' } } });
const engine = values.engine === 'postgres' ? 'postgres' : 'sqlite';
if (values.engine !== engine) throw new Error(`--engine is sqlite or postgres, not ${values.engine}`);

const SIZES = [1_000, 100_000] as const;
/** Filters by name; {userName} is a userName that exists at every size. */
const FILTERS: Record<string, string> = {
  'userName eq': 'userName eq "{userName}"',
  'externalId eq': 'externalId eq "EXT-7"',
  'userName sw': 'userName sw "bonnie12"',
  // The same single user at both sizes: the index seek alone, whatever the result size.
  'userName sw (1)': 'userName sw "{userName}"',
  'userName co': 'userName co "nnie12"',
  'emails[...] or sw': 'emails[type eq "work" and value co "example.org"] or userName sw "bo"',
};
const REPS = Number(process.env['REPS'] ?? 5);
const RUNS_PER_REP = 10;
/** Inserts in flight while seeding PostgreSQL (one transaction each). */
const SEED_CONCURRENCY = 16;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const dir = mkdtempSync(path.join(tmpdir(), 'msb-bench-'));
let postgres: PostgresServer | undefined;
const stores = new Map<number, { store: SqlStore; known: string }>();
try {
  if (engine === 'postgres') postgres = await startPostgres({ log: (m) => console.log(m) });
  for (const size of SIZES) {
    const store =
      engine === 'postgres' && postgres
        ? await openPostgresStore({ url: await postgres.createDatabase(`users_${size}`), ssl: { mode: 'disable' }, poolSize: SEED_CONCURRENCY })
        : await openSqliteStore(path.join(dir, `users-${size}.db`));
    const random = seededRandom(size);
    const users = Array.from({ length: size }, (_, i) => makeUser(i, random));
    const seedStart = performance.now();
    let next = 0;
    const workers = engine === 'postgres' ? SEED_CONCURRENCY : 1;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = next++; i < size; i = next++) await store.insertUser(users[i]!, 'sync');
      }),
    );
    console.log(`seeded ${size.toLocaleString('en')} users on ${engine} in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
    stores.set(size, { store, known: users[777]!.userName.toUpperCase() });
  }

  const times = new Map<string, number[]>();
  const totals = new Map<string, number>();
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? [...SIZES] : [...SIZES].reverse();
    for (const [name, text] of Object.entries(FILTERS)) {
      for (const size of order) {
        const { store, known } = stores.get(size)!;
        const filter = parseFilter(text.replace('{userName}', known));
        const key = `${name}@${size}`;
        for (let run = 0; run < RUNS_PER_REP; run++) {
          const start = performance.now();
          totals.set(key, (await store.listUsers({ filter, startIndex: 1, count: 100 })).totalResults);
          times.set(key, [...(times.get(key) ?? []), performance.now() - start]);
        }
      }
    }
  }

  console.log(`\n${engine}: one filtered page (count=100, with totalResults), ${REPS} interleaved repetitions of ${RUNS_PER_REP} runs`);
  console.log(['filter'.padEnd(20), ...SIZES.map((s) => `${s.toLocaleString('en')} users: median (min)`.padEnd(36)), 'ratio 100k/1k'].join(''));
  for (const name of Object.keys(FILTERS)) {
    const cells = SIZES.map((s) => {
      const xs = times.get(`${name}@${s}`) ?? [];
      return `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}) ms, ${totals.get(`${name}@${s}`)?.toLocaleString('en')} match`.padEnd(36);
    });
    const ratio = median(times.get(`${name}@${SIZES[1]}`) ?? []) / median(times.get(`${name}@${SIZES[0]}`) ?? []);
    console.log([name.padEnd(20), ...cells, ratio.toFixed(2)].join(''));
  }
  console.log('\ntarget (issue 10): eq and sw flat from 1k to 100k users (ratio near 1), on both engines');
} finally {
  for (const { store } of stores.values()) await store.close();
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
}
