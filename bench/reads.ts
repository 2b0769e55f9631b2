// How fast the SCIM API reads as the store grows: GET one user and a page of 100 (first
// and deep) at 1k and 100k users, measured as interleaved runs (order rotated each
// repetition) so that a noisy machine slows every arm alike, and the RSS of the server
// idle and at peak under list load. Each store is served by a process of its own
// (bench/lib/readsServer.ts compiled to JavaScript as dist/ is, started as the launcher
// starts the bridge) and read from /proc, so the figure is an installed bridge's over one
// store, not the bench's. The 100k store is served a
// second time with Node's defaults, to show what bin/node-flags.js saves and costs. Reads never
// touch the homeserver, so it is kept in memory.
// Run: npm run bench:reads   (REPS=n and SECONDS_PER_RUN=s to change the effort)
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { openSqliteStore } from '../src/store/sqlite.ts';
import { makeUser, seededRandom } from '../test/support/syntheticUsers.ts';
import { describe, procMemory, resetPeak } from './lib/procMemory.ts';
import { BENCH_TOKEN, type ServerMessage, type ServerRequest } from './lib/readsServer.ts';

const SIZES = [1_000, 100_000];
const GROUPS = 20;
const TOKEN = BENCH_TOKEN;
const REPS = Number(process.env['REPS'] ?? 5);
const SECONDS_PER_RUN = Number(process.env['SECONDS_PER_RUN'] ?? 1);
/** Requests in flight at once, as an IdP sync or a console would make them. */
const CONCURRENCY = 4;

interface Bridge {
  size: number;
  /** The node flags its process runs with. */
  flags: string[];
  base: string;
  ids: string[];
  pid: number;
  /** V8's account of the server's memory, optionally after a full GC. */
  heap(memory: ServerRequest['memory']): Promise<string>;
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
  await (await openSqliteStore(file)).close();
  const started = performance.now();
  const ids = seed(file, size);
  console.log(`seeded ${size.toLocaleString('en')} users in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const step = Math.max(1, Math.floor(ids.length / 1000));
  process.send?.(ids.filter((_, i) => i % step === 0));
  process.disconnect();
}

/**
 * How the bridge's Node is started (bin/node-flags.js; the launcher restarts itself with
 * them): the bench starts its server the same way. Plain JavaScript without types: its
 * shape is given here.
 */
const { NODE_ENV, NODE_FLAGS } = (await import('../bin/node-flags.js' as string)) as {
  NODE_ENV: Record<string, string>;
  NODE_FLAGS: string[];
};

/**
 * The measured server compiled to JavaScript, as an installed bridge runs (dist/): run from
 * the TypeScript sources, Node's type stripper alone holds ~17 MiB more. Compiled into
 * .bench-build/ inside the checkout (git-ignored), so that node_modules resolves as from dist/.
 */
function compiledServer(): string {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const out = path.join(root, '.bench-build');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(
    path.join(out, 'tsconfig.json'),
    JSON.stringify({
      extends: '../tsconfig.json',
      compilerOptions: { rootDir: '..', outDir: '.', noEmit: false, declaration: false, sourceMap: false },
      include: ['../bench/lib/readsServer.ts'],
    }),
  );
  // src/version.ts reads the package.json one folder up from src/.
  copyFileSync(path.join(root, 'package.json'), path.join(out, 'package.json'));
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(out, 'tsconfig.json')], { stdio: 'inherit' });
  return path.join(out, 'bench/lib/readsServer.js');
}

let serverScript: string | undefined;

/** One measured server: a store of `size` users served by a process of its own, with `flags` and `env`. */
async function startBridge(file: string, size: number, flags: string[], env: Record<string, string>): Promise<Bridge> {
  serverScript ??= compiledServer();
  const server = fork(serverScript, [file], {
    execArgv: ['--disable-warning=DEP0060', '--expose-gc', ...flags],
    env: { ...process.env, ...env },
  });
  const [message] = (await once(server, 'message')) as [ServerMessage];
  if (!('port' in message)) throw new Error('the bench server did not start');
  const exited = once(server, 'exit');
  return {
    size,
    flags,
    base: `http://127.0.0.1:${message.port}/scim/v2`,
    ids: [],
    pid: server.pid!,
    heap(memory) {
      const reply = once(server, 'message') as Promise<[ServerMessage]>;
      server.send({ memory } satisfies ServerRequest);
      return reply.then(([answer]) => ('heap' in answer ? answer.heap : ''));
    },
    async close() {
      if (server.connected) server.disconnect();
      await exited;
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
    // A run that never reports (a server or the client gone) fails the bench instead of hanging it.
    const stalled = setTimeout(() => reject(new Error(`no result from the load process within ${SECONDS_PER_RUN + 30} s`)), (SECONDS_PER_RUN + 30) * 1000);
    client.once('message', (result: ClientResult) => {
      clearTimeout(stalled);
      if ('rate' in result) resolve(result.rate);
      else reject(new Error(result.error));
    });
    client.send({ urls } satisfies ClientRun);
  });
}

function urlsOf(bridge: Bridge, scenario: Scenario): string[] {
  return Array.from({ length: 1000 }, (_, n) => bridge.base + scenario.path(bridge, n));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function megabytes(value: number | undefined): string {
  return value === undefined ? 'n/a' : `${value.toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'msb-bench-reads-'));
  const bridges: Bridge[] = [];
  const client = fork(fileURLToPath(import.meta.url), ['--client'], { execArgv: ['--disable-warning=DEP0060'] });
  const [small, large] = [SIZES[0]!, SIZES[SIZES.length - 1]!];
  try {
    for (const size of SIZES) {
      const file = path.join(dir, `users-${size}.db`);
      const ids = await seedApart(file, size);
      bridges.push({ ...(await startBridge(file, size, NODE_FLAGS, NODE_ENV)), ids });
    }
    // The same 100k users again, served with Node's defaults: what the flags cost and save.
    // A copy, since the bridge locks its database file against a second bridge.
    const largeFile = path.join(dir, `users-${large}.db`);
    const defaultsFile = path.join(dir, `users-${large}-node-defaults.db`);
    copyFileSync(largeFile, defaultsFile);
    const largeBridge = bridges[bridges.length - 1]!;
    const defaults = { ...(await startBridge(defaultsFile, large, [], {})), ids: largeBridge.ids };
    bridges.push(defaults);
    const arms = bridges.flatMap((bridge) => SCENARIOS.map((scenario) => ({ bridge, scenario, urls: urlsOf(bridge, scenario) })));
    const keyOf = (bridge: Bridge, scenario: Scenario) => `${scenario.name}@${bridge.size}${bridge === defaults ? ' defaults' : ''}`;

    // Warm up each arm (JIT, SQLite page cache), then measure each process idle.
    for (const { bridge, scenario } of arms) {
      const response = await fetch(bridge.base + scenario.path(bridge, 0), { headers: { authorization: `Bearer ${TOKEN}` } });
      await response.text();
    }
    const idleHeap = new Map<Bridge, string>();
    for (const bridge of bridges) idleHeap.set(bridge, await bridge.heap('after-gc'));
    await sleep(200);
    const idle = new Map(bridges.map((bridge) => [bridge, procMemory(bridge.pid)]));

    const rates = new Map<string, number[]>(arms.map((a) => [keyOf(a.bridge, a.scenario), []]));
    const peaks = new Map<Bridge, { rss: number; detail: string }>();
    for (let rep = 0; rep < REPS; rep++) {
      for (let k = 0; k < arms.length; k++) {
        const { bridge, scenario, urls } = arms[(k + rep) % arms.length]!;
        const watched = scenario.list && bridge.size === large;
        // VmHWM counts every page touched in between, even between two samples; the
        // samples add V8's view of the moment the RSS was highest.
        const peakReset = watched && resetPeak(bridge.pid);
        let peak = peaks.get(bridge) ?? { rss: 0, detail: '' };
        let sampling = false;
        const sampler = watched
          ? setInterval(() => {
              const now = procMemory(bridge.pid);
              if (!now || now.rss <= peak.rss || sampling) return;
              sampling = true;
              peak = { rss: now.rss, detail: describe(now) };
              void bridge.heap('now').then((heap) => {
                peak.detail = `${describe(now)}, ${heap}`;
                sampling = false;
              });
            }, 20)
          : undefined;
        try {
          rates.get(keyOf(bridge, scenario))!.push(await rate(client, urls));
        } finally {
          clearInterval(sampler);
        }
        if (watched) {
          const hwm = peakReset ? (procMemory(bridge.pid)?.hwm ?? 0) : 0;
          if (hwm > peak.rss) peak = { rss: hwm, detail: `${peak.detail} (VmHWM ${hwm.toFixed(0)})` };
          peaks.set(bridge, peak);
        }
      }
    }

    const label = (size: number) => `${size.toLocaleString('en')} users`;
    const rateOf = (key: string) => rates.get(key)!;
    console.log(`\nrequests/s, ${CONCURRENCY} in flight from a separate process, ${REPS} interleaved runs of ${SECONDS_PER_RUN} s each: median (min)`);
    const started = [...NODE_FLAGS, ...Object.entries(NODE_ENV).map(([name, value]) => `${name}=${value}`)];
    console.log(`each store served by a process of its own, started as the launcher starts the bridge: ${started.join(' ') || 'Node defaults'}`);
    console.log(
      ['scenario'.padEnd(24), label(small).padEnd(20), label(large).padEnd(20), `ratio ${large / 1000}k/${small / 1000}k`.padEnd(16), `${label(large)}, node defaults`].join(''),
    );
    for (const scenario of SCENARIOS) {
      const cell = (key: string) => `${median(rateOf(key)).toFixed(0)} (${Math.min(...rateOf(key)).toFixed(0)})`.padEnd(20);
      const [atSmall, atLarge, atDefaults] = [bridges[0]!, largeBridge, defaults].map((bridge) => keyOf(bridge, scenario)) as [string, string, string];
      console.log([scenario.name.padEnd(24), cell(atSmall), cell(atLarge), (median(rateOf(atLarge)) / median(rateOf(atSmall))).toFixed(2).padEnd(16), cell(atDefaults)].join(''));
    }
    const firstPage = SCENARIOS.find((scenario) => scenario.name === 'list 100, first page')!;
    const listRate = (bridge: Bridge) => median(rateOf(keyOf(bridge, firstPage)));
    const listRatio = listRate(largeBridge) / listRate(bridges[0]!);
    const listCost = 1 - listRate(largeBridge) / listRate(defaults);
    console.log(`\nlist of 100 at ${label(large)} / at ${label(small)}: ${listRatio.toFixed(2)} (target >= 0.80)`);
    console.log(
      `list of 100 at ${label(large)}, started as the bridge / with node defaults: ${(1 - listCost).toFixed(2)} (costs ${(listCost * 100).toFixed(0)}% of the rate; noise is ±10% here)`,
    );
    for (const bridge of [bridges[0]!, largeBridge, defaults]) {
      const name = `${label(bridge.size)}${bridge === defaults ? ', node defaults' : ''}`;
      console.log(`bridge RSS idle, ${name}, after warm-up and GC: ${megabytes(idle.get(bridge)?.rss)}`);
    }
    console.log(`bridge RSS peak under list load at ${label(large)}: ${megabytes(peaks.get(largeBridge)?.rss)} (target <= 200 MiB)`);
    console.log(`  (with node defaults instead: ${megabytes(peaks.get(defaults)?.rss)})`);
    for (const bridge of [largeBridge, defaults]) {
      const name = bridge === defaults ? 'node defaults' : 'as the bridge';
      console.log(`  ${name}, idle: ${describe(idle.get(bridge)!)}, ${idleHeap.get(bridge)}`);
      console.log(`  ${name}, peak: ${peaks.get(bridge)?.detail}`);
    }
  } finally {
    client.disconnect();
    for (const bridge of bridges) await bridge.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--client') serveAsClient();
else if (process.argv[2] === '--seed') await serveAsSeeder(process.argv[3]!, Number(process.argv[4]));
else await main();
