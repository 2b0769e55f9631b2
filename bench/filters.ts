// How long filtered lists take as the user count grows: eq and sw must stay flat
// (answered from indexes); co is printed as it is. Run: npm run bench:filters
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SqliteStore } from '../src/store/sqlite.ts';
import { parseFilter } from '../src/scim/filter/parse.ts';
import { makeUser, seededRandom } from '../test/support/syntheticUsers.ts';

const SIZES = [1_000, 100_000];
/** Filters by name; {userName} is a userName that exists at every size. */
const FILTERS: Record<string, string> = {
  'userName eq': 'userName eq "{userName}"',
  'externalId eq': 'externalId eq "EXT-7"',
  'userName sw': 'userName sw "bonnie12"',
  'userName co': 'userName co "nnie12"',
  'emails[...] or sw': 'emails[type eq "work" and value co "example.org"] or userName sw "bo"',
};
const RUNS = 20;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const dir = mkdtempSync(path.join(tmpdir(), 'msb-bench-'));
const results: Record<string, Record<number, string>> = {};
try {
  for (const size of SIZES) {
    const store = await SqliteStore.open(path.join(dir, `users-${size}.db`));
    const random = seededRandom(size);
    const seedStart = performance.now();
    let known = '';
    for (let i = 0; i < size; i++) {
      const user = makeUser(i, random);
      if (i === 777) known = user.userName.toUpperCase();
      await store.insertUser(user, 'sync');
    }
    console.log(`seeded ${size.toLocaleString('en')} users in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
    for (const [name, text] of Object.entries(FILTERS)) {
      const filter = parseFilter(text.replace('{userName}', known));
      const times: number[] = [];
      let total = 0;
      for (let run = 0; run < RUNS; run++) {
        const start = performance.now();
        total = (await store.listUsers({ filter, startIndex: 1, count: 100 })).totalResults;
        times.push(performance.now() - start);
      }
      (results[name] ??= {})[size] = `${median(times).toFixed(2)} ms (${total.toLocaleString('en')} match)`;
    }
    await store.close();
  }
  console.log(`\nmedian time of one filtered page (count=100, with totalResults), ${RUNS} runs each:`);
  console.log(['filter'.padEnd(20), ...SIZES.map((s) => `${s.toLocaleString('en')} users`.padEnd(28))].join(''));
  for (const [name, bySize] of Object.entries(results)) {
    console.log([name.padEnd(20), ...SIZES.map((s) => (bySize[s] ?? '').padEnd(28))].join(''));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
