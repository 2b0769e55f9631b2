// No create is applied twice: 200 users created at once through a counting proxy, with the
// journal worker run alongside (it must leave alone the entries the requests are applying).
// Each user costs one read of the account, one owner lookup per email and one creating
// PUT; no user is written twice.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, CuttingProxy, ScimClient } from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const USERS = 200;

function userDoc(i: number): Record<string, unknown> {
  return {
    schemas: [CORE_USER],
    userName: `once.${i}@example.com`,
    displayName: `Once ${i}`,
    emails: [{ value: `once.${i}@example.com`, type: 'work', primary: true }],
  };
}

/** How often each request was seen. */
function tally(seen: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const request of seen) counts.set(request, (counts.get(request) ?? 0) + 1);
  return counts;
}

describe('Exactly once: concurrent creates with the journal worker running', function () {
  let proxy: CuttingProxy;
  let bridge: BridgeHandles | undefined;
  let scim: ScimClient;
  let admin: AdminApi;

  before(async function () {
    const hs = homeserver();
    proxy = await CuttingProxy.start(hs.synapse.url);
    bridge = await startBridge({ homeserver: { url: proxy.url }, database: { path: workFile('exactly-once.db') } });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });

  after(async function () {
    await bridge?.stop();
    await proxy?.close();
  });

  it('creates 200 users at once with one account read, one email lookup and one PUT each, none repeated', async function () {
    const running = bridge;
    if (!running) throw new Error('no bridge');
    const before = proxy.seen.length;
    let creating = true;
    // The worker, run again and again while the requests are in flight, and once more at a
    // time after any lease would have run out (as if the process had died): nothing is due.
    const worker = (async () => {
      let runs = 0;
      while (creating) {
        await running.runJournal();
        runs++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return runs;
    })();
    const results = await Promise.all(Array.from({ length: USERS }, (_, i) => scim.post('/Users', userDoc(i))));
    creating = false;
    expect(await worker).to.be.greaterThan(0);
    for (const res of results) expect(res.status, res.text).to.equal(201);
    expect(await running.runJournal(new Date(Date.now() + 3_600_000)), 'journal entries left behind').to.equal(0);

    const seen = proxy.seen.slice(before);
    const counts = tally(seen);
    const repeated = [...counts].filter(([request, n]) => n > 1 && !request.startsWith('GET /_matrix/client/versions'));
    expect(repeated, 'requests sent more than once').to.deep.equal([]);
    for (let i = 0; i < USERS; i++) {
      const id = `@once.${i}:${SERVER_NAME}`;
      expect(counts.get(`GET /_synapse/admin/v2/users/${id}`), `account read of ${id}`).to.equal(1);
      expect(counts.get(`PUT /_synapse/admin/v2/users/${id}`), `creating PUT of ${id}`).to.equal(1);
      expect(counts.get(`GET /_synapse/admin/v1/threepid/email/users/once.${i}@example.com`), `email lookup of ${id}`).to.equal(1);
    }
    const userWrites = seen.filter((r) => /^(PUT|POST|DELETE) /.test(r) && r.includes('once.'));
    expect(userWrites.length, 'user writes').to.equal(USERS);
    expect(seen.filter((r) => r.includes('/register')), 'registrations').to.deep.equal([]);
    // Calls about these users: exactly the three above each (the rest is the bridge's own
    // background, e.g. its health checks).
    const aboutUsers = seen.filter((r) => r.includes('once.'));
    console.log(`      ${seen.length} homeserver calls in all, ${aboutUsers.length} about the ${USERS} users`);
    expect(aboutUsers.length).to.equal(3 * USERS);

    // Synapse's own view: every user exists once, with its email.
    const sample = await admin.user(`@once.${USERS - 1}:${SERVER_NAME}`);
    expect(sample?.['displayname']).to.equal(`Once ${USERS - 1}`);
  });
});
