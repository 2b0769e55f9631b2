// How fast the SCIM API reads as the store grows: GET one user and a page of 100 (first
// and deep) at 1k and 100k users, measured as interleaved runs (order rotated each
// repetition) so that a noisy machine slows every arm alike, and the process RSS idle and
// at peak under list load. Reads never touch the homeserver, so it is kept in memory.
// Run: npm run bench:reads   (REPS=n and SECONDS_PER_RUN=s to change the effort)
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import { groupBackend, userBackend } from '../src/provisioning/backends.ts';
import { GroupProvisioner } from '../src/provisioning/groups.ts';
import { UserProvisioner } from '../src/provisioning/users.ts';
import { createScimServer } from '../src/scim/listener.ts';
import { createScimApp } from '../src/scim/server.ts';
import { SqliteStore } from '../src/store/sqlite.ts';
import { InMemoryHomeserver } from '../test/http/fakeHomeserver.ts';
import { InMemoryRooms } from '../test/http/fakeRooms.ts';
import { makeUser, seededRandom } from '../test/support/syntheticUsers.ts';

const SIZES = [1_000, 100_000];
const GROUPS = 20;
const TOKEN = 'bench-reads-token-0123456789';
const REPS = Number(process.env['REPS'] ?? 5);
const SECONDS_PER_RUN = Number(process.env['SECONDS_PER_RUN'] ?? 1);
/** Requests in flight at once, as an IdP sync or a console would make them. */
const CONCURRENCY = 4;
const MiB = 1024 * 1024;

interface Bridge {
  size: number;
  base: string;
  ids: string[];
  close(): Promise<void>;
}

/**
 * Writes `size` users (and GROUPS groups, each user a member of one) straight into a
 * migrated store in one transaction: the same rows the store writes, 20× faster than
 * one insertUser per user. No journal entries: nothing is pending, as after a sync.
 */
function seed(file: string, size: number): string[] {
  const db = new DatabaseSync(file);
  const insertUser = db.prepare(
    `INSERT INTO users (id, user_name, user_name_lower, external_id, matrix_id, display_name, display_name_lower, active,
       document, version, created, last_modified, state, acknowledged, applied, owner)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 'provisioned', 1, '{}', NULL)`,
  );
  const insertGroup = db.prepare(
    `INSERT INTO groups (id, display_name, display_name_lower, external_id, document, version, created, last_modified, state, applied, owner)
     VALUES (?, ?, ?, NULL, '{}', 1, ?, ?, 'active', '{}', NULL)`,
  );
  const insertMember = db.prepare('INSERT INTO group_members (group_id, user_id) VALUES (?, ?)');
  const random = seededRandom(size);
  const ids: string[] = [];
  db.exec('BEGIN');
  const created = new Date(Date.UTC(2025, 0, 1)).toISOString();
  for (let g = 0; g < GROUPS; g++) insertGroup.run(`group-${g}`, `Group ${g}`, `group ${g}`, created, created);
  for (let i = 0; i < size; i++) {
    const u = makeUser(i, random);
    insertUser.run(
      u.id,
      u.userName,
      u.userName.toLowerCase(),
      u.externalId,
      u.matrixId,
      u.displayName,
      u.displayName?.toLowerCase() ?? null,
      u.active ? 1 : 0,
      JSON.stringify(u.document),
      u.created,
      u.lastModified,
    );
    insertMember.run(`group-${i % GROUPS}`, u.id);
    ids.push(u.id);
  }
  db.exec('COMMIT');
  db.close();
  return ids;
}

/** Seeds `file` in a process of its own, so that the bridge's RSS holds nothing of the seeding. */
async function seedApart(file: string, size: number): Promise<string[]> {
  const seeder = fork(fileURLToPath(import.meta.url), ['--seed', file, String(size)], { execArgv: ['--disable-warning=DEP0060'] });
  const exited = once(seeder, 'exit');
  const [ids] = (await once(seeder, 'message')) as [string[]];
  await exited;
  return ids;
}

/** The seeding process: migrates, seeds, and reports a thousand of the ids spread over the store. */
async function serveAsSeeder(file: string, size: number): Promise<void> {
  await (await SqliteStore.open(file)).close();
  const started = performance.now();
  const ids = seed(file, size);
  console.log(`seeded ${size.toLocaleString('en')} users in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const step = Math.max(1, Math.floor(ids.length / 1000));
  process.send?.(ids.filter((_, i) => i % step === 0));
  process.disconnect();
}

async function startBridge(dir: string, size: number): Promise<Bridge> {
  const file = path.join(dir, `users-${size}.db`);
  const ids = await seedApart(file, size);
  const store = await SqliteStore.open(file);
  const sink = { report: () => undefined };
  const users = new UserProvisioner(store, new InMemoryHomeserver(), sink, {
    domain: 'example.org',
    localpart: { stripEmailDomain: true, replacement: '_', prefix: '' },
    protectedUsers: [],
    adoptExistingUsers: false,
    eraseOnDelete: false,
    disablePolicy: 'lock',
    operatorDisabled: 'keep',
  });
  const groups = new GroupProvisioner(store, new InMemoryRooms(), sink, {
    roomType: 'room',
    onDelete: 'keep',
    links: [],
    batchSize: 200,
    inactiveLeaveRooms: false,
  }, () => undefined);
  let base = '';
  const app = createScimApp({
    baseUrl: () => base,
    tokens: [{ name: 'bench', token: TOKEN }],
    users: userBackend(users, store),
    groups: groupBackend(groups),
    readiness: async () => ({ ready: true, checks: {} }),
  });
  const server = createScimServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/scim/v2`;
  return {
    size,
    base,
    ids,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}

interface Scenario {
  name: string;
  /** The path to GET, for the n-th request. */
  path(bridge: Bridge, n: number): string;
  /** Counts towards the peak RSS under list load. */
  list: boolean;
}

/** Deep: the same page 90% in, again and again; paging on: page after page, as an IdP syncs. */
const SCENARIOS: Scenario[] = [
  { name: 'GET one user', path: (b, n) => `/Users/${b.ids[(n * 7919) % b.ids.length]}`, list: false },
  { name: 'list 100, first page', path: () => '/Users?count=100', list: true },
  { name: 'list 100, deep page', path: (b) => `/Users?count=100&startIndex=${Math.floor(b.size * 0.9) + 1}`, list: true },
  { name: 'list 100, paging on', path: (b, n) => `/Users?count=100&startIndex=${((n * 100) % b.size) + 1}`, list: true },
];

/** One timed run for the load process: cycle through `urls`, CONCURRENCY at a time. */
interface ClientRun {
  urls: string[];
}

type ClientResult = { rate: number } | { error: string };

/**
 * The load process: fetches what it is told and reports requests per second. It runs
 * apart from the bridge so that the bridge's RSS is its own, not the client's garbage.
 */
function serveAsClient(): void {
  process.on('message', (run: ClientRun) => {
    const until = performance.now() + SECONDS_PER_RUN * 1000;
    let done = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (performance.now() < until) {
        const url = run.urls[next++ % run.urls.length]!;
        const response = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
        const body = await response.text();
        if (response.status !== 200) throw new Error(`GET ${url}: ${response.status} ${body.slice(0, 200)}`);
        done++;
      }
    };
    const started = performance.now();
    Promise.all(Array.from({ length: CONCURRENCY }, worker)).then(
      () => process.send?.({ rate: done / ((performance.now() - started) / 1000) } satisfies ClientResult),
      (error: unknown) => process.send?.({ error: String(error) } satisfies ClientResult),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

/** Requests per second the load process reached on `urls`. */
function rate(client: ChildProcess, urls: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    client.once('message', (result: ClientResult) => ('rate' in result ? resolve(result.rate) : reject(new Error(result.error))));
    client.send({ urls } satisfies ClientRun);
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const collectGarbage = (globalThis as { gc?: () => void }).gc;

function rssMiB(): number {
  return process.memoryUsage.rss() / MiB;
}

/** On Linux, the RSS split into anonymous memory (heaps), mapped files and shared memory. */
function rssKinds(): string {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return ` (anon ${(kib('RssAnon') / 1024).toFixed(0)}, file ${(kib('RssFile') / 1024).toFixed(0)}, shmem ${(kib('RssShmem') / 1024).toFixed(0)})`;
  } catch {
    return '';
  }
}

/** RSS and what V8 holds of it, in MiB. */
function memory(): string {
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  const mib = (bytes: number) => (bytes / MiB).toFixed(0);
  const spaces = getHeapSpaceStatistics()
    .filter((space) => space.space_size >= MiB)
    .map((space) => `${space.space_name.replace(/_space$/, '')} ${mib(space.space_size)}`)
    .join(', ');
  return `RSS ${mib(rss)}${rssKinds()}, V8 heap ${mib(heapUsed)} used of ${mib(heapTotal)} (${spaces}), external ${mib(external)} (array buffers ${mib(arrayBuffers)})`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'msb-bench-reads-'));
  const bridges: Bridge[] = [];
  const client = fork(fileURLToPath(import.meta.url), ['--client'], { execArgv: ['--disable-warning=DEP0060'] });
  try {
    for (const size of SIZES) bridges.push(await startBridge(dir, size));
    const urlsOf = (bridge: Bridge, scenario: Scenario) => Array.from({ length: 1000 }, (_, n) => bridge.base + scenario.path(bridge, n));
    // Warm up each arm (JIT, SQLite page cache), then measure the idle process.
    for (const bridge of bridges) {
      for (const scenario of SCENARIOS) {
        const response = await fetch(bridge.base + scenario.path(bridge, 0), { headers: { authorization: `Bearer ${TOKEN}` } });
        await response.text();
      }
    }
    collectGarbage?.();
    await sleep(200);
    const idle = rssMiB();
    const idleDetail = memory();

    const arms = bridges.flatMap((bridge) => SCENARIOS.map((scenario) => ({ bridge, scenario, urls: urlsOf(bridge, scenario) })));
    const rates = new Map<string, number[]>(arms.map((a) => [`${a.scenario.name}@${a.bridge.size}`, []]));
    let peak = 0;
    let peakDetail = '';
    for (let rep = 0; rep < REPS; rep++) {
      for (let k = 0; k < arms.length; k++) {
        const { bridge, scenario, urls } = arms[(k + rep) % arms.length]!;
        const watched = scenario.list && bridge.size === SIZES[SIZES.length - 1];
        const sampler = watched
          ? setInterval(() => {
              if (rssMiB() > peak) {
                peak = rssMiB();
                peakDetail = memory();
              }
            }, 20)
          : undefined;
        try {
          rates.get(`${scenario.name}@${bridge.size}`)!.push(await rate(client, urls));
        } finally {
          clearInterval(sampler);
        }
      }
    }

    const [small, large] = [SIZES[0]!, SIZES[SIZES.length - 1]!];
    const label = (size: number) => `${size.toLocaleString('en')} users`;
    console.log(`\nrequests/s, ${CONCURRENCY} in flight from a separate process, ${REPS} interleaved runs of ${SECONDS_PER_RUN} s each: median (min)`);
    console.log(['scenario'.padEnd(24), label(small).padEnd(20), label(large).padEnd(20), `ratio ${large / 1000}k/${small / 1000}k (median)`].join(''));
    for (const scenario of SCENARIOS) {
      const at = (size: number) => rates.get(`${scenario.name}@${size}`)!;
      const cell = (size: number) => `${median(at(size)).toFixed(0)} (${Math.min(...at(size)).toFixed(0)})`.padEnd(20);
      console.log([scenario.name.padEnd(24), cell(small), cell(large), (median(at(large)) / median(at(small))).toFixed(2)].join(''));
    }
    const listRatio = median(rates.get(`list 100, first page@${large}`)!) / median(rates.get(`list 100, first page@${small}`)!);
    console.log(`\nlist of 100 at ${label(large)} / at ${label(small)}: ${listRatio.toFixed(2)} (target >= 0.80)`);
    console.log(`bridge RSS idle, both stores seeded${collectGarbage ? ', after GC' : ' (run with --expose-gc to collect first)'}: ${idle.toFixed(0)} MiB`);
    console.log(`bridge RSS peak under list load at ${label(large)}: ${peak.toFixed(0)} MiB (target <= 200 MiB)`);
    console.log(`  idle: ${idleDetail}\n  peak: ${peakDetail}`);
  } finally {
    client.disconnect();
    for (const bridge of bridges) await bridge.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--client') serveAsClient();
else if (process.argv[2] === '--seed') await serveAsSeeder(process.argv[3]!, Number(process.argv[4]));
else await main();
