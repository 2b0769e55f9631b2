// A large group's room joins are worked off in batches from the journal. The bridge is
// stopped half-way through and a new bridge on the same database finishes the work:
// in the end the room holds exactly the group's members, and Synapse's timeline shows
// that nobody was invited or joined twice.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, membershipCounts, roomMembers, roomTimeline, ScimClient, waitFor, type Json } from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const SIZE = 40;
const BATCH = 5;

const localpart = (i: number) => `rst.user${String(i).padStart(2, '0')}`;
const mxid = (i: number) => `@${localpart(i)}:${SERVER_NAME}`;

describe('Groups: a restart half-way through a large membership change', function () {
  let bridge: BridgeHandles | undefined;
  let scim: ScimClient;
  let admin: AdminApi;
  let bot = '';
  const userIds: string[] = [];

  // Every bridge of this file: the same database (and the fixture's registration).
  const config = () => ({
    database: { path: workFile('groups-restart.db') },
    groups: { batchSize: BATCH },
  });

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge(config());
    bot = bridge.botUserId;
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    for (let i = 0; i < SIZE; i++) {
      const res = await scim.post('/Users', {
        schemas: [CORE_USER],
        userName: `${localpart(i)}@example.com`,
        displayName: `Restart User ${i}`,
      });
      expect(res.status, res.text).to.equal(201);
      userIds.push(String(res.body['id']));
    }
  });

  after(async function () {
    await bridge?.stop();
  });

  it(`${SIZE} members with groups.batchSize ${BATCH}: stopped after some joins, a new bridge joins the rest, each exactly once`, async function () {
    const first = bridge!;
    const created = await scim.post('/Groups', {
      schemas: [CORE_GROUP],
      displayName: 'Restart Crew',
      members: userIds.map((value) => ({ value })),
    });
    expect(created.status, created.text).to.equal(201);
    const groupId = String(created.body['id']);
    expect((created.body['members'] as Json[]).length).to.equal(SIZE);

    const roomId = await waitFor(async () => (await first.store.groups.get(groupId))?.applied.roomId, 60_000, 'the group room', 20);
    // Stop as soon as SOME members are joined.
    const early = await waitFor(
      async () => {
        const joined = (await roomMembers(admin, roomId)).filter((m) => m !== bot);
        return joined.length > 0 ? joined.length : undefined;
      },
      60_000,
      'the first joins',
      20,
    );
    await first.stop();
    bridge = undefined;
    const atStop = (await roomMembers(admin, roomId)).filter((m) => m !== bot).length;
    console.log(`    stopped the bridge with ${early} joined at first sight, ${atStop} of ${SIZE} once stopped`);
    expect(atStop, 'the bridge was stopped before it had joined everybody (else this test proves nothing)').to.be.below(SIZE);
    await new Promise((ok) => setTimeout(ok, 1_000));
    expect((await roomMembers(admin, roomId)).filter((m) => m !== bot).length, 'a stopped bridge does nothing more').to.equal(atStop);

    const second = await startBridge(config());
    bridge = second;
    const wanted = [...Array.from({ length: SIZE }, (_, i) => mxid(i)), bot].sort();
    let seen: string[] = [];
    await waitFor(
      async () => {
        seen = await roomMembers(admin, roomId);
        return JSON.stringify(seen) === JSON.stringify(wanted);
      },
      120_000,
      `all ${SIZE} members joined by the new bridge`,
    ).catch((error: unknown) => {
      const missing = wanted.filter((m) => !seen.includes(m));
      throw new Error(`${(error as Error).message}\n  missing in Synapse: ${JSON.stringify(missing)}\n  extra: ${JSON.stringify(seen.filter((m) => !wanted.includes(m)))}`);
    });
    await waitFor(async () => (await second.store.journalFor(groupId)).length === 0, 30_000, 'the group\'s journal entry to close');

    const counts = membershipCounts(await roomTimeline(admin, roomId));
    const twice: string[] = [];
    for (let i = 0; i < SIZE; i++) {
      const c = counts.get(mxid(i)) ?? {};
      if (c['join'] !== 1 || c['invite'] !== 1) twice.push(`${mxid(i)} ${JSON.stringify(c)}`);
    }
    expect(twice, 'each member invited once and joined once (m.room.member events in the timeline)').to.deep.equal([]);
    expect(counts.get(bot)?.['join'], 'the bot joined its room once').to.equal(1);

    const applied = await second.store.groups.roomMembers(groupId, roomId);
    expect([...applied.entries()].filter(([, state]) => state === 'joined').length, 'the store records every join').to.equal(SIZE);
  });
});
