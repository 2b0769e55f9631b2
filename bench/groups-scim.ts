// How promptly the SCIM side of large groups answers, without a homeserver in the way
// (rooms in memory; the real joins are measured by bench/groups.ts). Prints figures only.
// Run: npm run bench:groups-scim
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { startHttpBridge } from '../test/http/harness.ts';

const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const bridge = await startHttpBridge();
try {
  const ids: string[] = [];
  const now = new Date().toISOString();
  for (let i = 0; i < 11_000; i++) {
    const id = randomUUID();
    ids.push(id);
    await bridge.store.insertUser(
      {
        id,
        userName: `member${i}`,
        externalId: null,
        matrixId: `@member${i}:example.org`,
        displayName: null,
        active: true,
        document: { userName: `member${i}` },
        version: 1,
        created: now,
        lastModified: now,
        state: 'provisioned',
        acknowledged: true,
        applied: {},
      },
      'sync',
    );
  }
  const time = async (what: string, run: () => Promise<{ status: number }>) => {
    const start = performance.now();
    const reply = await run();
    console.log(`${what.padEnd(58)} ${(performance.now() - start).toFixed(0).padStart(6)} ms  (HTTP ${reply.status})`);
  };
  let groupId = '';
  await time('POST /Groups with 10,000 members', async () => {
    const reply = await bridge.call('POST', '/Groups?excludedAttributes=members', {
      schemas: [GROUP],
      displayName: 'Everyone',
      members: ids.slice(0, 10_000).map((value) => ({ value })),
    });
    groupId = String(reply.body['id']);
    return reply;
  });
  await time('PATCH adding 1,000 members to it', () =>
    bridge.call('PATCH', `/Groups/${groupId}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'add', path: 'members', value: ids.slice(10_000).map((value) => ({ value })) }],
    }),
  );
  await time('GET /Groups?excludedAttributes=members&filter=displayName eq', () =>
    bridge.call('GET', `/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "everyone"')}`),
  );
  await time('GET /Groups/{id} with its 11,000 members', () => bridge.call('GET', `/Groups/${groupId}`));
} finally {
  await bridge.close();
}
