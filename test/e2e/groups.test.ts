// SCIM groups become Matrix rooms, checked against Synapse's OWN view (admin API: room
// details, joined members, room state, timeline), not only against the bridge's replies.
//
// The tests run in order and share the group and users they create (an IdP's life cycle
// of a group: create, look up, change members, rename, refuse bad input, disable a
// member, delete); each one says what it relies on.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import {
  AdminApi,
  roomDetails,
  roomMembers,
  roomNotices,
  roomsNamed,
  roomState,
  roomTimeline,
  ScimClient,
  stateEvent,
  waitFor,
  type HttpResult,
  type Json,
} from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const MS_GROUP = 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** The people of this file; localparts start with "grp." so no other suite clashes. */
const PEOPLE = ['ann', 'ben', 'cid', 'dee', 'eve', 'fay'] as const;
type Person = (typeof PEOPLE)[number];
const mxid = (p: Person) => `@grp.${p}:${SERVER_NAME}`;

function expectScimError(res: HttpResult, status: number, scimType?: string): void {
  expect(res.status, res.text).to.equal(status);
  expect(res.headers.get('content-type')).to.match(/^application\/scim\+json/);
  expect(res.body['schemas']).to.deep.equal([ERROR_SCHEMA]);
  expect(res.body['status']).to.equal(String(status));
  expect(res.body['detail']).to.be.a('string').that.is.not.empty;
  if (scimType) expect(res.body['scimType']).to.equal(scimType);
}

const patch = (...operations: Json[]) => ({ schemas: [PATCH_OP], Operations: operations });

describe('Groups: SCIM groups become Matrix rooms', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;
  let bot = '';
  const ids = {} as Record<Person, string>;
  let groupId = '';
  let roomId = '';

  /** Waits until Synapse shows exactly these people (and the bot) joined to the room. */
  async function expectJoined(people: Person[], what: string): Promise<void> {
    const wanted = [...people.map(mxid), bot].sort();
    let seen: string[] = [];
    await waitFor(
      async () => {
        seen = await roomMembers(admin, roomId);
        return JSON.stringify(seen) === JSON.stringify(wanted);
      },
      60_000,
      what,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n  wanted ${JSON.stringify(wanted)}\n  Synapse shows ${JSON.stringify(seen)}`);
    });
  }

  /** The membership event of a user in the room's current state. */
  async function memberEvent(person: Person): Promise<Json | undefined> {
    return stateEvent(await roomState(admin, roomId), 'm.room.member', mxid(person));
  }

  async function expectKicked(person: Person): Promise<void> {
    const event = await memberEvent(person);
    const content = (event?.['content'] ?? {}) as Json;
    expect(content['membership'], `${mxid(person)}'s membership`).to.equal('leave');
    expect(event?.['sender'], 'kicked by the bot, not left by themselves').to.equal(bot);
    expect(content['reason'], 'the kick gives a reason').to.be.a('string').that.is.not.empty;
  }

  async function groupMembers(): Promise<string[]> {
    const res = await scim.get(`/Groups/${groupId}`);
    expect(res.status, res.text).to.equal(200);
    const members = Array.isArray(res.body['members']) ? (res.body['members'] as Json[]) : [];
    return members.map((m) => String(m['value'])).sort();
  }

  /** Waits for the group's journal work to be done (nothing left for its rooms). */
  async function settled(id = groupId): Promise<void> {
    await waitFor(async () => (await bridge.store.journalFor(id)).length === 0, 60_000, `the journal of group ${id} to be empty`);
  }

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({
      database: { path: workFile('groups-test.db') },
      // One notice per event (no digests), so that each group event can be found.
      adminRoom: { burstThreshold: 1000 },
    });
    bot = bridge.botUserId;
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    for (const p of PEOPLE) {
      const res = await scim.post('/Users', {
        schemas: [CORE_USER],
        userName: `grp.${p}@example.com`,
        displayName: `${p[0]!.toUpperCase()}${p.slice(1)} Group-Test`,
        emails: [{ value: `grp.${p}@example.com`, type: 'work', primary: true }],
      });
      expect(res.status, res.text).to.equal(201);
      ids[p] = String(res.body['id']);
    }
  });

  after(async function () {
    await bridge?.stop();
  });

  describe('create', function () {
    it('POST /Groups "Engineering" with two members: 201, and Synapse has a private room named "Engineering" holding exactly them and the bot', async function () {
      const res = await scim.post('/Groups', {
        schemas: [CORE_GROUP],
        displayName: 'Engineering',
        members: [{ value: ids.ann }, { value: ids.ben }],
      });
      expect(res.status, res.text).to.equal(201);
      groupId = String(res.body['id']);
      expect(res.headers.get('location')).to.equal(`${bridge.scimUrl}/Groups/${groupId}`);
      expect(res.body['displayName']).to.equal('Engineering');
      const members = (res.body['members'] as Json[]).map((m) => String(m['value'])).sort();
      expect(members).to.deep.equal([ids.ann, ids.ben].sort());

      roomId = await waitFor(async () => (await bridge.store.groups.get(groupId))?.applied.roomId, 60_000, 'the group room to be created');
      await expectJoined(['ann', 'ben'], 'Ann and Ben joined to the group room');

      const details = await roomDetails(admin, roomId);
      expect(details?.['name']).to.equal('Engineering');
      expect(details?.['join_rules'], 'invite-only').to.equal('invite');
      expect(details?.['public'], 'not in the room directory').to.equal(false);
      expect(details?.['creator']).to.equal(bot);
      const found = (await roomsNamed(admin, 'Engineering')).map((r) => r['room_id']);
      expect(found, 'the admin API finds the room by its name').to.include(roomId);
    });
  });

  describe('Entra ID shapes', function () {
    it('finds the group with excludedAttributes=members and a filter on displayName in another case, without members', async function () {
      const filter = encodeURIComponent('displayName eq "engineering"');
      const res = await scim.get(`/Groups?excludedAttributes=members&filter=${filter}`);
      expect(res.status, res.text).to.equal(200);
      expect(res.body['totalResults']).to.equal(1);
      const found = (res.body['Resources'] as Json[])[0];
      expect(found?.['id']).to.equal(groupId);
      expect(found?.['displayName']).to.equal('Engineering');
      expect(found, 'members excluded').to.not.have.property('members');
    });

    it('GET /Users/<id> lists the user\'s groups (read-only "groups")', async function () {
      const res = await scim.get(`/Users/${ids.ann}`);
      expect(res.status, res.text).to.equal(200);
      const groups = Array.isArray(res.body['groups']) ? (res.body['groups'] as Json[]) : [];
      expect(groups.map((g) => ({ value: g['value'], display: g['display'] }))).to.deep.equal([{ value: groupId, display: 'Engineering' }]);
      const other = await scim.get(`/Users/${ids.cid}`);
      const none = other.body['groups'];
      expect(none === undefined || (Array.isArray(none) && none.length === 0), `Cid is in no group: ${JSON.stringify(none)}`).to.equal(true);
    });

    it('remove by value ({"value": id, "$ref": null}): 204 without a body; Ben is kicked with a reason, Ann stays', async function () {
      const res = await scim.patch(`/Groups/${groupId}`, patch({ op: 'Remove', path: 'members', value: [{ value: ids.ben, $ref: null }] }));
      expect(res.status, res.text).to.equal(204);
      expect(res.text).to.equal('');
      expect(await groupMembers()).to.deep.equal([ids.ann]);
      await expectJoined(['ann'], 'only Ann left in the room');
      await expectKicked('ben');
    });

    it('a group created without members under Microsoft\'s schema URN gets a room; "Add" with "$ref": null joins the member', async function () {
      const created = await scim.post('/Groups', { schemas: [CORE_GROUP, MS_GROUP], displayName: 'Entra Sales', externalId: 'entra-sales-1' });
      expect(created.status, created.text).to.equal(201);
      const salesId = String(created.body['id']);
      const salesRoom = await waitFor(async () => (await bridge.store.groups.get(salesId))?.applied.roomId, 60_000, 'the Entra Sales room');
      expect((await roomDetails(admin, salesRoom))?.['name']).to.equal('Entra Sales');
      expect(await roomMembers(admin, salesRoom)).to.deep.equal([bot]);

      const added = await scim.patch(`/Groups/${salesId}`, patch({ op: 'Add', path: 'members', value: [{ value: ids.fay, $ref: null }] }));
      expect(added.status, added.text).to.equal(204);
      await waitFor(
        async () => JSON.stringify(await roomMembers(admin, salesRoom)) === JSON.stringify([mxid('fay'), bot].sort()),
        60_000,
        'Fay joined to the Entra Sales room',
      );
      const deleted = await scim.delete(`/Groups/${salesId}`);
      expect(deleted.status, deleted.text).to.equal(204);
      await waitFor(async () => JSON.stringify(await roomMembers(admin, salesRoom)) === JSON.stringify([bot]), 60_000, 'Fay out of the Entra Sales room');
    });
  });

  describe('Okta shapes', function () {
    it('replace members with two others: exactly those two are in the room; Ann is kicked', async function () {
      const res = await scim.patch(
        `/Groups/${groupId}`,
        patch({ op: 'replace', path: 'members', value: [{ value: ids.cid, display: 'grp.cid@example.com' }, { value: ids.dee, display: 'grp.dee@example.com' }] }),
      );
      expect(res.status, res.text).to.equal(204);
      expect(await groupMembers()).to.deep.equal([ids.cid, ids.dee].sort());
      await expectJoined(['cid', 'dee'], 'exactly Cid and Dee in the room');
      await expectKicked('ann');
    });

    it('remove members[value eq "x"]: only that member leaves', async function () {
      const res = await scim.patch(`/Groups/${groupId}`, patch({ op: 'remove', path: `members[value eq "${ids.cid}"]` }));
      expect(res.status, res.text).to.equal(204);
      await expectJoined(['dee'], 'only Dee in the room');
      await expectKicked('cid');
    });

    it('replace members with []: nobody but the bot is left', async function () {
      const res = await scim.patch(`/Groups/${groupId}`, patch({ op: 'replace', path: 'members', value: [] }));
      expect(res.status, res.text).to.equal(204);
      expect(await groupMembers()).to.deep.equal([]);
      await expectJoined([], 'an empty room (bot only)');
      await expectKicked('dee');
    });

    it('?attributes= on a PATCH gets 200 with the group instead of 204', async function () {
      const res = await scim.patch(`/Groups/${groupId}?attributes=members`, patch({ op: 'add', path: 'members', value: [{ value: ids.ann }] }));
      expect(res.status, res.text).to.equal(200);
      expect((res.body['members'] as Json[] | undefined)?.map((m) => m['value'])).to.deep.equal([ids.ann]);
      await expectJoined(['ann'], 'Ann back in the room');
    });
  });

  describe('rename', function () {
    it('PATCH replace displayName renames the room (m.room.name in its state)', async function () {
      const res = await scim.patch(`/Groups/${groupId}`, patch({ op: 'Replace', path: 'displayName', value: 'Engineering Team' }));
      expect(res.status, res.text).to.equal(204);
      await waitFor(
        async () => ((stateEvent(await roomState(admin, roomId), 'm.room.name')?.['content'] ?? {}) as Json)['name'] === 'Engineering Team',
        60_000,
        'the room to be named "Engineering Team"',
      );
      expect((await roomDetails(admin, roomId))?.['name']).to.equal('Engineering Team');
      await expectJoined(['ann'], 'membership unchanged by the rename');
    });

    it('Okta\'s path-less replace with id in the value renames it too (the id is ignored)', async function () {
      const res = await scim.patch(`/Groups/${groupId}`, patch({ op: 'replace', value: { id: groupId, displayName: 'Platform Engineering' } }));
      expect(res.status, res.text).to.equal(204);
      const got = await scim.get(`/Groups/${groupId}`);
      expect(got.body['id']).to.equal(groupId);
      expect(got.body['displayName']).to.equal('Platform Engineering');
      await waitFor(
        async () => ((stateEvent(await roomState(admin, roomId), 'm.room.name')?.['content'] ?? {}) as Json)['name'] === 'Platform Engineering',
        60_000,
        'the room to be named "Platform Engineering"',
      );
    });
  });

  describe('refused requests change nothing', function () {
    it('an unknown member id in a PATCH is 400 naming it; the group and the room are unchanged', async function () {
      await settled();
      const before = await scim.get(`/Groups/${groupId}`);
      const roomBefore = await roomMembers(admin, roomId);
      const res = await scim.patch(
        `/Groups/${groupId}`,
        patch({ op: 'add', path: 'members', value: [{ value: ids.eve }, { value: 'no-such-user-4711' }] }),
      );
      expectScimError(res, 400);
      expect(String(res.body['detail'])).to.contain('no-such-user-4711');
      const after = await scim.get(`/Groups/${groupId}`);
      expect((after.body['meta'] as Json)['version'], 'version unchanged').to.equal((before.body['meta'] as Json)['version']);
      expect(await groupMembers()).to.deep.equal([ids.ann]);
      // Give a wrongly started background change the time to show up, then look.
      await bridge.runJournal();
      await new Promise((ok) => setTimeout(ok, 1_000));
      expect(await roomMembers(admin, roomId)).to.deep.equal(roomBefore);
      expect(await memberEvent('eve'), 'Eve was never invited').to.equal(undefined);
    });

    it('an unknown member id in a POST is 400 naming it; no group and no room are made', async function () {
      const res = await scim.post('/Groups', { schemas: [CORE_GROUP], displayName: 'Ghosts', members: [{ value: ids.eve }, { value: 'no-such-user-0815' }] });
      expectScimError(res, 400);
      expect(String(res.body['detail'])).to.contain('no-such-user-0815');
      const listed = await scim.get(`/Groups?filter=${encodeURIComponent('displayName eq "Ghosts"')}`);
      expect(listed.body['totalResults']).to.equal(0);
      await bridge.runJournal();
      expect(await roomsNamed(admin, 'Ghosts')).to.deep.equal([]);
    });

    it('a second group with the same displayName (any case) is 409 uniqueness', async function () {
      const res = await scim.post('/Groups', { schemas: [CORE_GROUP], displayName: 'platform ENGINEERING' });
      expectScimError(res, 409, 'uniqueness');
    });
  });

  describe('disabled and deleted members', function () {
    it('a disabled member (active false → locked) stays in the room', async function () {
      const res = await scim.patch(`/Users/${ids.ann}`, patch({ op: 'replace', path: 'active', value: false }));
      expect(res.status, res.text).to.equal(200);
      expect((await admin.user(mxid('ann')))?.['locked']).to.equal(true);
      await bridge.runJournal();
      await settled();
      expect((await memberEvent('ann'))?.['content']).to.have.property('membership', 'join');
      expect(await roomMembers(admin, roomId)).to.deep.equal([mxid('ann'), bot].sort());
      const enabled = await scim.patch(`/Users/${ids.ann}`, patch({ op: 'replace', path: 'active', value: true }));
      expect(enabled.status, enabled.text).to.equal(200);
    });

    it('a deleted user (deactivated) leaves the room and the group', async function () {
      const added = await scim.patch(`/Groups/${groupId}`, patch({ op: 'add', path: 'members', value: [{ value: ids.eve }] }));
      expect(added.status, added.text).to.equal(204);
      await expectJoined(['ann', 'eve'], 'Eve joined');
      const res = await scim.delete(`/Users/${ids.eve}`);
      expect(res.status, res.text).to.equal(204);
      expect(await groupMembers()).to.deep.equal([ids.ann]);
      await expectJoined(['ann'], 'Eve out of the room after her deactivation');
      await settled();
    });
  });

  describe('delete', function () {
    it('DELETE: 204; GET is 404; the members are removed from the room, which is kept', async function () {
      const res = await scim.delete(`/Groups/${groupId}`);
      expect(res.status, res.text).to.equal(204);
      expect(res.text).to.equal('');
      expectScimError(await scim.get(`/Groups/${groupId}`), 404);
      await expectJoined([], 'the room emptied of members');
      await expectKicked('ann');
      const details = await roomDetails(admin, roomId);
      expect(details, 'onDelete: keep leaves the room').to.not.equal(undefined);
      expect(details?.['name']).to.equal('Platform Engineering');
      const user = await scim.get(`/Users/${ids.ann}`);
      const groups = user.body['groups'];
      expect(groups === undefined || (Array.isArray(groups) && groups.length === 0), `Ann's groups: ${JSON.stringify(groups)}`).to.equal(true);
      await settled();
    });
  });

  describe('admin room', function () {
    it('holds notices from the bot for group created, updated (members added, removed) and deleted', async function () {
      const expected: Record<string, RegExp> = {
        created: /Created group "Engineering"/,
        added: /Updated group "[^"]*Engineering[^"]*"[^\n]*members added/,
        removed: /Updated group "[^"]*Engineering[^"]*"[^\n]*members removed/,
        renamed: /Updated group "Engineering Team"[^\n]*renamed/,
        deleted: /Deleted group "Platform Engineering"/,
      };
      let bodies: string[] = [];
      await waitFor(
        async () => {
          bodies = (await roomNotices(admin, bridge.adminRoomId)).filter((n) => n.sender === bot).map((n) => n.body);
          return Object.values(expected).every((re) => bodies.some((b) => re.test(b)));
        },
        60_000,
        'group notices',
      ).catch((error: unknown) => {
        const missing = Object.entries(expected).filter(([, re]) => !bodies.some((b) => re.test(b))).map(([k]) => k);
        const shown = bodies.filter((b) => /group/i.test(b)).map((b) => `  ${b}`).join('\n');
        throw new Error(`${(error as Error).message}; missing: ${missing.join(', ')}\ngroup notices seen:\n${shown}`);
      });
    });
  });
});

describe('Groups: spaces, linked rooms, power levels, onDelete close, the deactivate policy', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;
  let bot = '';
  let linkedRoom = '';
  const ids: Record<string, string> = {};
  const who = (p: string) => `@grp2.${p}:${SERVER_NAME}`;
  const LINKED_ALIAS = `#grp-ops-existing:${SERVER_NAME}`;

  async function joined(roomId: string): Promise<string[]> {
    return roomMembers(admin, roomId);
  }

  async function waitJoined(roomId: string, wanted: string[], what: string): Promise<void> {
    const sorted = [...wanted].sort();
    let seen: string[] = [];
    await waitFor(
      async () => {
        seen = await joined(roomId);
        return JSON.stringify(seen) === JSON.stringify(sorted);
      },
      60_000,
      what,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n  wanted ${JSON.stringify(sorted)}\n  Synapse shows ${JSON.stringify(seen)}`);
    });
  }

  async function powerOf(roomId: string, userId: string): Promise<unknown> {
    const levels = (stateEvent(await roomState(admin, roomId), 'm.room.power_levels')?.['content'] ?? {}) as Json;
    return ((levels['users'] ?? {}) as Json)[userId];
  }

  before(async function () {
    const hs = homeserver();
    bot = hs.botUserId;
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    // An existing room the operator made and invited the bot to (with power to manage it).
    const made = await admin.request('POST', '/_matrix/client/v3/createRoom', {
      name: 'Ops (existing)',
      preset: 'private_chat',
      room_alias_name: 'grp-ops-existing',
      invite: [bot],
      // (room version 12: the creator has unlimited power and must not be listed in users)
      power_level_content_override: { users: { [bot]: 100 } },
    });
    expect(made.status, made.text).to.equal(200);
    linkedRoom = String(made.body['room_id']);
    bridge = await startBridge({
      database: { path: workFile('groups-variants-test.db') },
      adminRoom: { burstThreshold: 1000 },
      provisioning: { onDisable: 'deactivate' },
      groups: {
        roomType: 'space',
        onDelete: 'close',
        memberPowerLevel: 50,
        // By alias: a room ID of room version 12 (Synapse's default) has no ":server" part
        // and the config refuses it (see the test at the end of this suite).
        links: [{ displayName: 'Linked Ops', rooms: [LINKED_ALIAS], powerLevel: 20 }],
      },
    });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    for (const p of ['gus', 'hal', 'ida']) {
      const res = await scim.post('/Users', { schemas: [CORE_USER], userName: `grp2.${p}@example.com`, displayName: `${p} Variant` });
      expect(res.status, res.text).to.equal(201);
      ids[p] = String(res.body['id']);
    }
  });

  after(async function () {
    await bridge?.stop();
  });

  let spaceGroup = '';
  let spaceRoom = '';

  it('roomType space: the group becomes a space; members join with memberPowerLevel', async function () {
    const res = await scim.post('/Groups', { schemas: [CORE_GROUP], displayName: 'Design Space', members: [{ value: ids['gus'] }] });
    expect(res.status, res.text).to.equal(201);
    spaceGroup = String(res.body['id']);
    spaceRoom = await waitFor(async () => (await bridge.store.groups.get(spaceGroup))?.applied.roomId, 60_000, 'the space');
    await waitJoined(spaceRoom, [who('gus'), bot], 'Gus in the space');
    const details = await roomDetails(admin, spaceRoom);
    expect(details?.['room_type']).to.equal('m.space');
    expect(details?.['name']).to.equal('Design Space');
    await waitFor(async () => (await powerOf(spaceRoom, who('gus'))) === 50, 30_000, 'Gus at power level 50');
  });

  it('PUT replaces name and members of the group wholesale', async function () {
    const res = await scim.put(`/Groups/${spaceGroup}`, {
      schemas: [CORE_GROUP],
      displayName: 'Design Space 2',
      members: [{ value: ids['hal'] }],
    });
    expect(res.status, res.text).to.equal(200);
    expect((res.body['members'] as Json[]).map((m) => m['value'])).to.deep.equal([ids['hal']]);
    await waitJoined(spaceRoom, [who('hal'), bot], 'Hal in, Gus out');
    await waitFor(async () => (await roomDetails(admin, spaceRoom))?.['name'] === 'Design Space 2', 30_000, 'the space renamed');
  });

  it('a linked group (links, matched in any case): members join the existing room at the link\'s power level; no room is made', async function () {
    const res = await scim.post('/Groups', { schemas: [CORE_GROUP], displayName: 'linked ops', members: [{ value: ids['ida'] }] });
    expect(res.status, res.text).to.equal(201);
    const gid = String(res.body['id']);
    await waitJoined(linkedRoom, [homeserver().admin.userId, bot, who('ida')], 'Ida (and the bot) in the linked room');
    await waitFor(async () => (await powerOf(linkedRoom, who('ida'))) === 20, 30_000, 'Ida at power level 20');
    await waitFor(async () => (await bridge.store.journalFor(gid)).length === 0, 30_000, 'the linked group settled');
    expect((await bridge.store.groups.get(gid))?.applied.roomId, 'no room of its own').to.equal(undefined);
    expect(await roomsNamed(admin, 'linked ops')).to.deep.equal([]);

    // Removed while the group lives: kicked from the linked room.
    const removed = await scim.patch(`/Groups/${gid}`, patch({ op: 'remove', path: `members[value eq "${ids['ida']}"]` }));
    expect(removed.status, removed.text).to.equal(204);
    await waitJoined(linkedRoom, [homeserver().admin.userId, bot], 'Ida kicked from the linked room');
    const back = await scim.patch(`/Groups/${gid}`, patch({ op: 'add', path: 'members', value: [{ value: ids['ida'] }] }));
    expect(back.status, back.text).to.equal(204);
    await waitJoined(linkedRoom, [homeserver().admin.userId, bot, who('ida')], 'Ida back in the linked room');
    await waitFor(async () => (await bridge.store.journalFor(gid)).length === 0, 30_000, 'the linked group settled');

    // Deleted: its members leave the linked room, which is neither closed nor left.
    const del = await scim.delete(`/Groups/${gid}`);
    expect(del.status, del.text).to.equal(204);
    await waitJoined(linkedRoom, [homeserver().admin.userId, bot], 'Ida out of the linked room after the group was deleted').catch(
      async (error: unknown) => {
        const byId = Object.fromEntries(await bridge.store.groups.roomMembers(gid, linkedRoom));
        const byAlias = Object.fromEntries(await bridge.store.groups.roomMembers(gid, LINKED_ALIAS));
        const group = await bridge.store.groups.getAnyState(gid);
        const journal = await bridge.store.journalFor(gid);
        throw new Error(
          `${(error as Error).message}\n  store: group state ${group?.state}, applied ${JSON.stringify(group?.applied)}, journal ${JSON.stringify(journal)}` +
            `\n  room_members under the room ID ${JSON.stringify(byId)}, under the alias ${JSON.stringify(byAlias)}`,
        );
      },
    );
    expect((await roomDetails(admin, linkedRoom))?.['name']).to.equal('Ops (existing)');
  });

  it('onDisable deactivate: a disabled member leaves the group room', async function () {
    const res = await scim.patch(`/Users/${ids['hal']}`, patch({ op: 'replace', path: 'active', value: false }));
    expect(res.status, res.text).to.equal(200);
    expect((await admin.user(who('hal')))?.['deactivated']).to.equal(true);
    await waitJoined(spaceRoom, [bot], 'Hal out of the space');
    await waitFor(async () => (await bridge.store.journalFor(spaceGroup)).length === 0, 30_000, 'the space group settled');
  });

  it('onDisable deactivate: re-enabled, the member is joined to its group room again', async function () {
    const res = await scim.patch(`/Users/${ids['hal']}`, patch({ op: 'replace', path: 'active', value: true }));
    expect(res.status, res.text).to.equal(200);
    expect((await admin.user(who('hal')))?.['deactivated']).to.equal(false);
    await waitJoined(spaceRoom, [who('hal'), bot], 'Hal back in the space');
  });

  it('onDelete close: deleting the group empties the room, renames it "(closed)" and the bot leaves', async function () {
    const add = await scim.patch(`/Groups/${spaceGroup}`, patch({ op: 'add', path: 'members', value: [{ value: ids['gus'] }] }));
    expect(add.status, add.text).to.equal(204);
    await waitJoined(spaceRoom, [who('gus'), who('hal'), bot], 'Gus back in the space');
    const res = await scim.delete(`/Groups/${spaceGroup}`);
    expect(res.status, res.text).to.equal(204);
    await waitJoined(spaceRoom, [], 'everyone, the bot included, out of the closed space');
    // Once nobody of this server is in the room, Synapse drops its current state: read
    // the rename and the bot's leave from the timeline instead.
    const timeline = await roomTimeline(admin, spaceRoom);
    const name = ((timeline.find((e) => e['type'] === 'm.room.name')?.['content'] ?? {}) as Json)['name'];
    const botLeft = timeline.find((e) => e['type'] === 'm.room.member' && e['state_key'] === bot);
    expect(((botLeft?.['content'] ?? {}) as Json)['membership'], 'the bot\'s last membership').to.equal('leave');
    expect(name).to.equal('Design Space 2 (closed)');
  });

  it('groups.links accepts the room ID of an existing room of room version 12 (no ":server" part)', function () {
    expect(linkedRoom, 'the room made in before()').to.match(/^!/);
    const hs = homeserver();
    const raw = hs.bridgeConfig({ groups: { links: [{ displayName: 'Linked Ops', rooms: [linkedRoom] }] } });
    expect(() => parseConfig(raw, hs.dir), `links with ${linkedRoom}`).to.not.throw();
  });
});
