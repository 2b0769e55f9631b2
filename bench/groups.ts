// How a large group behaves: a throw-away Synapse and a bridge, 1,000 users, one group,
// then ONE PATCH that adds all 1,000 members. Prints how long the SCIM answer took and
// how long until Synapse showed every member joined. Asserts nothing about time.
// Run: npm run bench:groups   (MSB_BENCH_USERS=200 for a shorter run)

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { start, type BridgeHandles } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { bootstrapHomeserver, type BootstrappedHomeserver } from '../scripts/lib/bootstrap.ts';

const USERS = Number(process.env['MSB_BENCH_USERS'] ?? 1_000);
const CONCURRENCY = 8;
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

type Json = Record<string, unknown>;

async function call(method: string, url: string, token: string, body?: unknown): Promise<{ status: number; body: Json; text: string }> {
  const res = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/scim+json, application/json',
      ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: Json = {};
  try {
    parsed = text ? (JSON.parse(text) as Json) : {};
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed, text };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const dir = await mkdtemp(join(tmpdir(), 'msb-bench-groups-'));
let hs: BootstrappedHomeserver | undefined;
let bridge: BridgeHandles | undefined;
try {
  console.log(`starting Synapse in ${dir} …`);
  hs = await bootstrapHomeserver({ dir, serverName: 'bench.localhost' });
  bridge = await start(
    parseConfig(hs.bridgeConfig({ database: { path: join(dir, 'bench.db') }, logging: { level: 'error' } }), hs.dir),
    hs.registration,
  );
  const scim = (method: string, path: string, body?: unknown) => call(method, `${bridge!.scimUrl}${path}`, hs!.scimToken, body);
  const adminGet = (path: string) => call('GET', `${hs!.synapse.url}${path}`, hs!.admin.accessToken);
  console.log(`Synapse ${hs.synapse.version}; bridge at ${bridge.scimUrl}`);

  // 1. Users, a few at a time (what an IdP's first sync does).
  const ids: string[] = new Array<string>(USERS);
  let next = 0;
  const usersStart = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < USERS; i = next++) {
        const res = await scim('POST', '/Users', {
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
          userName: `bench.user${String(i).padStart(4, '0')}@example.com`,
          displayName: `Bench User ${i}`,
        });
        if (res.status !== 201) throw new Error(`POST /Users #${i}: HTTP ${res.status} ${res.text}`);
        ids[i] = String(res.body['id']);
      }
    }),
  );
  const usersMs = performance.now() - usersStart;
  console.log(`created ${USERS.toLocaleString('en')} users in ${seconds(usersMs)} (${(USERS / (usersMs / 1000)).toFixed(0)}/s)`);

  // 2. An empty group, and its room.
  const group = await scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Bench Everyone' });
  if (group.status !== 201) throw new Error(`POST /Groups: HTTP ${group.status} ${group.text}`);
  const groupId = String(group.body['id']);
  let roomId: string | undefined;
  while (!(roomId = (await bridge.store.groups.get(groupId))?.applied.roomId)) await new Promise((ok) => setTimeout(ok, 50));

  // 3. ONE PATCH adding everybody.
  const patchStart = performance.now();
  const patched = await scim('PATCH', `/Groups/${groupId}`, {
    schemas: [PATCH_OP],
    Operations: [{ op: 'add', path: 'members', value: ids.map((value) => ({ value })) }],
  });
  const answeredMs = performance.now() - patchStart;
  if (patched.status !== 204 && patched.status !== 200) throw new Error(`PATCH /Groups: HTTP ${patched.status} ${patched.text}`);
  console.log(`PATCH adding ${USERS.toLocaleString('en')} members answered ${patched.status} in ${answeredMs.toFixed(0)} ms`);

  // 4. Until Synapse shows them all joined (bot + members).
  let joined = 0;
  let lastPrint = performance.now();
  const deadline = performance.now() + 30 * 60_000;
  for (;;) {
    const res = await adminGet(`/_synapse/admin/v1/rooms/${encodeURIComponent(roomId)}/members`);
    if (res.status !== 200) throw new Error(`GET room members: HTTP ${res.status} ${res.text}`);
    joined = Number(res.body['total']) - 1;
    if (joined >= USERS) break;
    if (performance.now() > deadline) throw new Error(`gave up after 30 minutes with ${joined} of ${USERS} joined`);
    if (performance.now() - lastPrint > 10_000) {
      console.log(`  … ${joined.toLocaleString('en')} joined after ${seconds(performance.now() - patchStart)}`);
      lastPrint = performance.now();
    }
    await new Promise((ok) => setTimeout(ok, 200));
  }
  const allJoinedMs = performance.now() - patchStart;
  const journal = await bridge.store.journalFor(groupId);

  console.log('\nresults');
  console.log(`  users                              ${USERS.toLocaleString('en')}`);
  console.log(`  groups.batchSize                   200 (default)`);
  console.log(`  SCIM PATCH response time           ${answeredMs.toFixed(0)} ms`);
  console.log(`  until all joined in Synapse        ${seconds(allJoinedMs)} (${(USERS / (allJoinedMs / 1000)).toFixed(1)} joins/s)`);
  console.log(`  journal entry open at that moment  ${journal.length > 0 ? 'yes (closing)' : 'no'}`);
} finally {
  await bridge?.stop().catch((e: unknown) => console.error('stopping the bridge:', e));
  await hs?.synapse.stop().catch((e: unknown) => console.error('stopping Synapse:', e));
  if (process.env['MSB_BENCH_KEEP']) console.log(`kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}
