import { expect } from 'chai';
import { startHttpBridge, type HttpBridge } from './harness.ts';

const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

describe('SCIM Groups over HTTP (in-memory homeserver)', () => {
  let bridge: HttpBridge;
  const ids: Record<string, string> = {};
  const mx = (name: string) => `@${name}:example.org`;

  async function user(name: string): Promise<string> {
    const reply = await bridge.call('POST', '/Users', { userName: name, displayName: `${name} display` });
    expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
    ids[name] = String(reply.body['id']);
    return ids[name];
  }

  async function group(displayName: string, members: string[]): Promise<string> {
    const reply = await bridge.call('POST', '/Groups', { schemas: [GROUP], displayName, members: members.map((m) => ({ value: ids[m] })) });
    expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
    return String(reply.body['id']);
  }

  const patch = (id: string, ...Operations: unknown[]) => bridge.call('PATCH', `/Groups/${id}`, { schemas: [PATCH_OP], Operations });

  function roomOf(groupId: string) {
    return async () => {
      const record = await bridge.store.groups.getAnyState(groupId);
      const roomId = record?.applied.roomId;
      expect(roomId, 'the group has a room').to.be.a('string');
      return bridge.rooms.rooms.get(roomId!)!;
    };
  }

  beforeEach(async () => {
    bridge = await startHttpBridge();
    for (const name of ['ann', 'ben', 'cat', 'dan']) await user(name);
  });
  afterEach(() => bridge.close());

  it('creates a group: 201, members shown, a room named after it with exactly those members', async () => {
    const reply = await bridge.call('POST', '/Groups', { schemas: [GROUP], displayName: 'Engineering', members: [{ value: ids['ann'] }, { value: ids['ben'] }] });
    expect(reply.status).to.equal(201);
    expect(reply.headers.get('location')).to.match(/\/Groups\/[0-9a-f-]+$/);
    expect((reply.body['members'] as { value: string }[]).map((m) => m.value).sort()).to.deep.equal([ids['ann'], ids['ben']].sort());
    const named = await bridge.call('GET', `/Groups/${String(reply.body['id'])}?attributes=members.display`);
    expect((named.body['members'] as { display: string }[]).map((m) => m.display).sort()).to.deep.equal(['ann display', 'ben display']);
    await bridge.drain();
    const room = await roomOf(String(reply.body['id']))();
    expect(room.name).to.equal('Engineering');
    expect([...room.members].sort()).to.deep.equal([mx('ann'), mx('ben')]);
  });

  it('refuses unknown member ids with 400 naming them, and applies nothing', async () => {
    const id = await group('Sales', ['ann']);
    const reply = await patch(id, { op: 'add', path: 'members', value: [{ value: ids['ben'] }, { value: 'no-such-user' }] });
    expect(reply.status).to.equal(400);
    expect(reply.body['detail']).to.match(/no-such-user/);
    const members = (await bridge.call('GET', `/Groups/${id}`)).body['members'] as unknown[];
    expect(members).to.have.length(1);
    const create = await bridge.call('POST', '/Groups', { displayName: 'Ghosts', members: [{ value: 'ghost-1' }] });
    expect(create.status).to.equal(400);
    expect((await bridge.call('GET', '/Groups?filter=displayName eq "Ghosts"')).body['totalResults']).to.equal(0);
  });

  it('keeps displayName unique, in any case: 409 uniqueness', async () => {
    await group('Engineering', []);
    const reply = await bridge.call('POST', '/Groups', { displayName: 'ENGINEERING' });
    expect(reply.status).to.equal(409);
    expect(reply.body['scimType']).to.equal('uniqueness');
  });

  it('applies membership changes in every IdP shape', async () => {
    const id = await group('Team', ['ann', 'ben', 'cat']);
    const members = async () =>
      ((await bridge.call('GET', `/Groups/${id}`)).body['members'] as { value: string }[] | undefined ?? []).map((m) => m.value).sort();
    // Entra: remove by value, $ref null.
    expect((await patch(id, { op: 'Remove', path: 'members', value: [{ value: ids['ann'], $ref: null }] })).status).to.equal(204);
    expect(await members()).to.deep.equal([ids['ben'], ids['cat']].sort());
    // Entra: add with $ref null.
    await patch(id, { op: 'Add', path: 'members', value: [{ value: ids['dan'], $ref: null }] });
    expect(await members()).to.have.length(3);
    // Okta: remove by filter with or.
    await patch(id, { op: 'remove', path: `members[value eq "${ids['ben']}" or value eq "${ids['cat']}"]` });
    expect(await members()).to.deep.equal([ids['dan']]);
    // Okta: replace members.
    await patch(id, { op: 'replace', path: 'members', value: [{ value: ids['ann'] }, { value: ids['ben'] }] });
    expect(await members()).to.deep.equal([ids['ann'], ids['ben']].sort());
    // replace with [] and remove all.
    await patch(id, { op: 'replace', path: 'members', value: [] });
    expect(await members()).to.deep.equal([]);
    await patch(id, { op: 'add', path: 'members', value: [{ value: ids['cat'] }] });
    await patch(id, { op: 'remove', path: 'members' });
    expect(await members()).to.deep.equal([]);
  });

  it('leaves the room with exactly the group after the journal ran', async () => {
    const id = await group('Ops', ['ann', 'ben']);
    await bridge.drain();
    await patch(id, { op: 'Remove', path: 'members', value: [{ value: ids['ann'] }] }, { op: 'Add', path: 'members', value: [{ value: ids['cat'] }] });
    await bridge.drain();
    expect([...(await roomOf(id)()).members].sort()).to.deep.equal([mx('ben'), mx('cat')]);
  });

  it('renames the room when the group is renamed (Okta: path-less replace with id)', async () => {
    const id = await group('Old name', ['ann']);
    await bridge.drain();
    await patch(id, { op: 'replace', value: { id, displayName: 'New name' } });
    await bridge.drain();
    expect((await roomOf(id)()).name).to.equal('New name');
  });

  it('answers excludedAttributes=members without members, and filters by displayName and member', async () => {
    const id = await group('Design', ['ann']);
    await group('Support', ['ben']);
    let loads = 0;
    const members = bridge.store.groups.members.bind(bridge.store.groups);
    bridge.store.groups.members = async (groupId: string) => {
      loads++;
      return members(groupId);
    };
    const entra = await bridge.call('GET', `/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "design"')}`);
    expect(entra.body['totalResults']).to.equal(1);
    const [found] = entra.body['Resources'] as Record<string, unknown>[];
    expect(found!['id']).to.equal(id);
    expect(found).to.not.have.property('members');
    expect(loads, 'members were not loaded').to.equal(0);
    const byMember = await bridge.call('GET', `/Groups?filter=${encodeURIComponent(`members[value eq "${ids['ben']}"]`)}`);
    expect((byMember.body['Resources'] as { displayName: string }[]).map((g) => g.displayName)).to.deep.equal(['Support']);
  });

  it("lists a user's groups in its read-only groups attribute", async () => {
    await group('Alpha', ['ann']);
    await group('Beta', ['ann', 'ben']);
    const ann = await bridge.call('GET', `/Users/${ids['ann']}`);
    expect((ann.body['groups'] as { display: string }[]).map((g) => g.display)).to.deep.equal(['Alpha', 'Beta']);
  });

  it('adds 1,000 members at once: answered before any join, joined exactly once each even across a failure', async function () {
    // 1,000 users are created first: about 2 s on a busy 2-core machine, past mocha's default.
    this.timeout(20_000);
    const newcomers: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const reply = await bridge.call('POST', '/Users', { userName: `bulk${i}` });
      newcomers.push(String(reply.body['id']));
    }
    const id = await group('Everyone', []);
    await bridge.drain();
    const reply = await patch(id, { op: 'add', path: 'members', value: newcomers.map((value) => ({ value })) });
    expect(reply.status).to.equal(204);
    expect(bridge.rooms.log.filter((l) => l.startsWith('join'))).to.have.length(0);
    bridge.rooms.failAfter = 350; // the homeserver goes away part-way through
    await bridge.journal.run(new Date(Date.now() + 3_600_000));
    await bridge.journal.run(new Date(Date.now() + 3_600_000));
    bridge.rooms.failAfter = Infinity;
    await bridge.drain(2);
    const joins = bridge.rooms.log.filter((l) => l.startsWith('join'));
    expect(joins).to.have.length(1000);
    expect(new Set(joins).size).to.equal(1000);
    expect((await roomOf(id)()).members.size).to.equal(1000);
  });

  it('gives members the configured power level and takes it back when they leave the group', async () => {
    await bridge.close();
    bridge = await startHttpBridge({ memberPowerLevel: 50 });
    for (const name of ['ann', 'ben']) await user(name);
    const id = await group('Moderators', ['ann', 'ben']);
    await bridge.drain();
    expect((await roomOf(id)()).levels).to.deep.equal({ [mx('ann')]: 50, [mx('ben')]: 50 });
    await patch(id, { op: 'remove', path: `members[value eq "${ids['ann']}"]` });
    await bridge.drain();
    expect((await roomOf(id)()).levels).to.deep.equal({ [mx('ben')]: 50 });
  });

  it('deletes a group: 204, its members removed from the room, the room kept', async () => {
    const id = await group('Temp', ['ann', 'ben']);
    await bridge.drain();
    expect((await bridge.call('DELETE', `/Groups/${id}`)).status).to.equal(204);
    expect((await bridge.call('GET', `/Groups/${id}`)).status).to.equal(404);
    await bridge.drain();
    const room = await roomOf(id)();
    expect(room.members.size).to.equal(0);
    expect(room.closed).to.equal(false);
    expect((await bridge.store.groups.getAnyState(id))?.state).to.equal('deleted');
  });

  it('takes a deleted user out of its groups', async () => {
    const id = await group('Leavers', ['ann', 'ben']);
    await bridge.call('DELETE', `/Users/${ids['ann']}`);
    const members = (await bridge.call('GET', `/Groups/${id}`)).body['members'] as { value: string }[];
    expect(members.map((m) => m.value)).to.deep.equal([ids['ben']]);
  });

  it('counts room joins and kicks still to do, member by member', async () => {
    const id = await group('Counted', ['ann', 'ben']);
    expect(await bridge.store.groups.pendingMembership()).to.deep.equal({ joins: 2, kicks: 0 });
    await bridge.drain();
    expect(await bridge.store.groups.pendingMembership()).to.deep.equal({ joins: 0, kicks: 0 });
    await patch(id, { op: 'remove', path: `members[value eq "${ids['ben']}"]` });
    expect(await bridge.store.groups.pendingMembership()).to.deep.equal({ joins: 0, kicks: 1 });
    await bridge.drain();
    expect(await bridge.store.groups.pendingMembership()).to.deep.equal({ joins: 0, kicks: 0 });
  });

  it('reports group events to the admin room', async () => {
    const id = await group('Reported', ['ann']);
    await patch(id, { op: 'add', path: 'members', value: [{ value: ids['ben'] }] });
    await bridge.drain();
    const groupEvents = bridge.events.filter((e) => e.subject === 'group');
    expect(groupEvents.map((e) => e.kind)).to.deep.equal(['created', 'updated', 'updated']);
    expect(groupEvents[1]!.changed).to.deep.equal(['1 members added']);
    // The notice of the room names it, once the journal has made it.
    expect(groupEvents[2]).to.deep.include({ reason: 'its room was created' });
    expect(groupEvents[2]!.matrixId).to.match(/^!room/);
  });
});
