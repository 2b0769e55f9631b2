// Creates through the bridge against raw admin PUTs, on one throw-away Synapse.
// Each repetition creates N users through the bridge (SCIM POST with displayName and one
// email) and N through a raw `PUT /_synapse/admin/v2/users/<id>` with the same displayname
// and email (as the bootstrap admin), at concurrency 1 and 8, the arms' order rotated per
// repetition. Prints users/s per arm (median and min over the repetitions), the ratio
// bridge/raw, the Synapse calls per bridge create
// and Synapse's CPU time per created user for each arm, from /proc/<pid>/stat (stable where
// wall time is not). The bridge talks to Synapse directly; its calls are counted by
// wrapping fetch. Asserts nothing.
// Run: npm run bench:provision   (MSB_BENCH_USERS=50 MSB_BENCH_REPS=3 for a shorter run;
// -- --synapse-postgres runs Synapse on a throw-away PostgreSQL, as production does)

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { start, type BridgeHandles } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { parseArgs } from 'node:util';
import { bootstrapHomeserver, type BootstrappedHomeserver } from '../scripts/lib/bootstrap.ts';
import { startPostgres, type PostgresServer } from '../scripts/lib/postgres.ts';

const { values: flags } = parseArgs({ options: { 'synapse-postgres': { type: 'boolean', default: false } } });

const USERS = Number(process.env['MSB_BENCH_USERS'] ?? 200);
const REPS = Number(process.env['MSB_BENCH_REPS'] ?? 3);
const CONCURRENCIES = [1, 8] as const;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

type Arm = 'bridge' | 'raw';
interface Sample {
  usersPerS: number;
  cpuMsPerUser: number;
  /** CPU of Synapse's main (reactor) thread per created user: requests are served there. */
  mainMsPerUser: number;
  /** Synapse's CPU time over wall time: 1.0 is one core busy. */
  synapseBusy: number;
  /** Synapse's main thread CPU time over wall time. */
  mainBusy: number;
  /** CPU of this process (the bridge and the bench's own client) per created user. */
  nodeCpuMsPerUser: number;
  callsPerCreate: number;
}

/** Synapse's CPU time so far, in seconds (utime + stime). */
function cpuSeconds(pid: number, task?: number): number {
  const stat = readFileSync(task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), counted from field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * Counts the bridge's calls to Synapse without a proxy (a proxy in this process would
 * cost the bridge arm CPU the raw arm does not pay): the bridge's homeserver client uses
 * the global fetch, so that is wrapped; the raw arm calls the unwrapped one.
 */
const rawFetch = globalThis.fetch;
let synapseCalls = 0;
let synapseUrl = '';
globalThis.fetch = (input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (synapseUrl && url.startsWith(synapseUrl)) synapseCalls++;
  return rawFetch(input, init);
};

async function send(method: string, url: string, token: string, body: unknown): Promise<number> {
  const res = await rawFetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/scim+json, application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`${method} ${url}: HTTP ${res.status} ${text}`);
  return res.status;
}

/** Runs `n` creates, `concurrency` at a time. */
async function createAll(n: number, concurrency: number, create: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) await create(i);
    }),
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
};
const min = (xs: number[]) => Math.min(...xs);

const dir = await mkdtemp(join(tmpdir(), 'msb-bench-provision-'));
let hs: BootstrappedHomeserver | undefined;
let bridge: BridgeHandles | undefined;
let postgres: PostgresServer | undefined;
try {
  console.log(`starting Synapse in ${dir} …`);
  if (flags['synapse-postgres']) {
    postgres = await startPostgres();
    await postgres.createDatabase('synapse');
  }
  hs = await bootstrapHomeserver({
    dir,
    serverName: 'bench.localhost',
    ...(postgres ? { synapsePostgres: postgres.connection('synapse') } : {}),
  });
  const synapse = hs.synapse;
  const pid = synapse.pid;
  if (pid === undefined) throw new Error('Synapse has no pid: not running');
  synapseUrl = synapse.url;
  bridge = await start(
    parseConfig(
      hs.bridgeConfig({ database: { path: join(dir, 'bench.db') }, logging: { level: 'error' } }),
      hs.dir,
    ),
    hs.registration,
  );
  const scimUrl = bridge.scimUrl.replace(/\/$/, '');
  const scimToken = hs.scimToken;
  const adminToken = hs.admin.accessToken;
  const server = synapse.serverName;
  console.log(`Synapse ${synapse.version} on ${postgres ? 'PostgreSQL' : 'SQLite'} (pid ${pid}); ${USERS} users per arm, ${REPS} repetitions, CLK_TCK ${CLK_TCK}`);

  const arms: Record<Arm, (tag: string, i: number) => Promise<unknown>> = {
    bridge: (tag, i) =>
      send('POST', `${scimUrl}/Users`, scimToken, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: `bridge.${tag}.${i}`,
        displayName: `Bridge ${tag} ${i}`,
        emails: [{ value: `bridge.${tag}.${i}@example.com`, type: 'work', primary: true }],
      }),
    raw: (tag, i) =>
      send('PUT', `${synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(`@raw.${tag}.${i}:${server}`)}`, adminToken, {
        displayname: `Raw ${tag} ${i}`,
        threepids: [{ medium: 'email', address: `raw.${tag}.${i}@example.com` }],
      }),
  };

  // Warm-up (not counted): both paths once, so the first arm pays no first-call costs.
  await createAll(8, 4, (i) => arms.bridge('warm', i));
  await createAll(8, 4, (i) => arms.raw('warm', i));

  const samples = new Map<string, Sample[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const concurrency of CONCURRENCIES) {
      const order: Arm[] = (rep + concurrency) % 2 === 0 ? ['bridge', 'raw'] : ['raw', 'bridge'];
      for (const arm of order) {
        const tag = `r${rep}c${concurrency}`;
        const calls0 = synapseCalls;
        const cpu0 = cpuSeconds(pid);
        const main0 = cpuSeconds(pid, pid);
        const node0 = process.cpuUsage();
        const t0 = performance.now();
        await createAll(USERS, concurrency, (i) => arms[arm](tag, i));
        const ms = performance.now() - t0;
        const cpu = cpuSeconds(pid) - cpu0;
        const mainCpu = cpuSeconds(pid, pid) - main0;
        const node = process.cpuUsage(node0);
        const calls = synapseCalls - calls0;
        const sample: Sample = {
          usersPerS: USERS / (ms / 1000),
          cpuMsPerUser: (cpu * 1000) / USERS,
          mainMsPerUser: (mainCpu * 1000) / USERS,
          synapseBusy: cpu / (ms / 1000),
          mainBusy: mainCpu / (ms / 1000),
          nodeCpuMsPerUser: (node.user + node.system) / 1000 / USERS,
          callsPerCreate: arm === 'bridge' ? calls / USERS : 1,
        };
        const key = `${arm}@${concurrency}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        console.log(
          `  rep ${rep + 1} c${concurrency} ${arm.padEnd(6)} ${sample.usersPerS.toFixed(1).padStart(7)} users/s  ` +
            `${sample.cpuMsPerUser.toFixed(2).padStart(6)} ms Synapse CPU/user (${sample.mainMsPerUser.toFixed(2)} main thread)  busy ${sample.synapseBusy.toFixed(2)}/${sample.mainBusy.toFixed(2)}  ${sample.nodeCpuMsPerUser.toFixed(2).padStart(6)} ms node CPU/user  ${sample.callsPerCreate.toFixed(2)} calls/create`,
        );
      }
    }
  }

  console.log('\nresults (median, min over repetitions)');
  for (const concurrency of CONCURRENCIES) {
    const b = samples.get(`bridge@${concurrency}`) ?? [];
    const r = samples.get(`raw@${concurrency}`) ?? [];
    const ratios = b.map((s, i) => s.usersPerS / (r[i]?.usersPerS ?? NaN));
    const cpuRatios = b.map((s, i) => s.cpuMsPerUser / (r[i]?.cpuMsPerUser ?? NaN));
    const line = (label: string, xs: number[], digits: number) =>
      console.log(`  c${concurrency} ${label.padEnd(34)} ${median(xs).toFixed(digits).padStart(8)}  (min ${min(xs).toFixed(digits)}, max ${Math.max(...xs).toFixed(digits)})`);
    line('bridge users/s', b.map((s) => s.usersPerS), 1);
    line('raw users/s', r.map((s) => s.usersPerS), 1);
    line('throughput bridge/raw', ratios, 2);
    line('Synapse CPU ms/user, bridge', b.map((s) => s.cpuMsPerUser), 2);
    line('Synapse CPU ms/user, raw', r.map((s) => s.cpuMsPerUser), 2);
    line('Synapse CPU bridge/raw', cpuRatios, 2);
    // Synapse serves requests under one interpreter lock (about one core): the raw arm keeps
    // it busy, so the bridge cannot create faster than raw CPU / bridge CPU of the raw rate.
    line('ceiling for throughput (raw/bridge CPU)', cpuRatios.map((r) => 1 / r), 2);
    line('Synapse busy (CPU s per s), bridge', b.map((s) => s.synapseBusy), 2);
    line('Synapse busy (CPU s per s), raw', r.map((s) => s.synapseBusy), 2);
    line('node CPU ms/user, bridge (+client)', b.map((s) => s.nodeCpuMsPerUser), 2);
    line('node CPU ms/user, raw (client)', r.map((s) => s.nodeCpuMsPerUser), 2);
    line('Synapse calls per bridge create', b.map((s) => s.callsPerCreate), 2);
  }
  console.log('\ntargets (issue 9): Synapse CPU bridge/raw <= 1.3; throughput bridge/raw >= 0.8 at concurrency 8');
} finally {
  await bridge?.stop().catch((e: unknown) => console.error('stopping the bridge:', e));
  await hs?.synapse.stop().catch((e: unknown) => console.error('stopping Synapse:', e));
  await postgres?.stop();
  if (process.env['MSB_BENCH_KEEP']) console.log(`kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}
