import { expect } from 'chai';
import type { ProvisioningEvent } from '../../src/provisioning/events.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';
import type { InMemoryHomeserver } from './fakeHomeserver.ts';
import { Reconciler } from '../../src/provisioning/reconciler.ts';
import { startHttpBridge, type HttpBridge, type Reply } from './harness.ts';

/** The homeserver is shared with operators: what they do there is kept and reported. */
describe('An operator\'s changes on the homeserver (in-memory homeserver)', () => {
  let bridge: HttpBridge;
  let store: SqlStore;
  let homeserver: InMemoryHomeserver;
  let events: ProvisioningEvent[];
  const BOB = '@bob:example.org';

  const call = (method: string, path: string, body?: unknown): Promise<Reply> => bridge.call(method, path, body);
  const patch = (id: string, ...Operations: Record<string, unknown>[]) => call('PATCH', `/Users/${id}`, { Operations });
  const bob = (overrides: Record<string, unknown> = {}) => ({
    userName: 'bob',
    displayName: 'Bob',
    emails: [{ value: 'bob@example.com', primary: true }],
    ...overrides,
  });

  async function start(settings: Parameters<typeof startHttpBridge>[1] = {}): Promise<string> {
    bridge = await startHttpBridge({}, settings);
    ({ store, homeserver, events } = bridge);
    const created = await call('POST', '/Users', bob());
    expect(created.status).to.equal(201);
    return String(created.body['id']);
  }

  afterEach(() => bridge.close());

  it('an unrelated PATCH leaves an operator\'s lock in place and reports the drift once', async () => {
    const id = await start();
    homeserver.operator(BOB, { locked: true });
    const writes = homeserver.writes.length;
    expect((await patch(id, { op: 'replace', path: 'title', value: 'Boss' })).status).to.equal(200);
    expect((await patch(id, { op: 'replace', path: 'title', value: 'Chief' })).status).to.equal(200);
    expect(homeserver.accounts.get(BOB)?.locked).to.equal(true);
    expect(homeserver.writes.length).to.equal(writes);
    const drift = events.filter((e) => e.kind === 'drift');
    expect(drift).to.have.length(1);
    expect(drift[0]?.reason).to.match(/locked on the homeserver/);
  });

  it('a PATCH of displayName does not reactivate an account an operator deactivated, nor does active:true by default', async () => {
    const id = await start();
    homeserver.operator(BOB, { deactivated: true });
    expect((await patch(id, { op: 'replace', path: 'displayName', value: 'Robert' })).status).to.equal(200);
    expect(homeserver.accounts.get(BOB)).to.include({ deactivated: true, displayName: 'Bob' });
    const asked = await patch(id, { op: 'replace', path: 'active', value: true });
    expect(asked.status).to.equal(200);
    expect(asked.body['active']).to.equal(true);
    expect(homeserver.accounts.get(BOB)?.deactivated).to.equal(true);
    expect(events.filter((e) => e.kind === 'drift').map((e) => e.reason)).to.deep.equal([
      'display name is "Bob" on the homeserver, "Robert" in the IdP',
      'account is deactivated on the homeserver, active in the IdP',
    ]);
  });

  it('with operatorDisabled: idp-wins, the IdP\'s own active:true reactivates, an unrelated change still does not', async () => {
    const id = await start({ operatorDisabled: 'idp-wins' });
    homeserver.operator(BOB, { deactivated: true });
    await patch(id, { op: 'replace', path: 'title', value: 'Boss' });
    expect(homeserver.accounts.get(BOB)?.deactivated).to.equal(true);
    await patch(id, { op: 'replace', value: { active: 'True' } });
    expect(homeserver.accounts.get(BOB)?.deactivated).to.equal(false);
  });

  it('keeps a display name an operator set when the IdP changes something else', async () => {
    const id = await start();
    homeserver.operator(BOB, { displayName: 'Bob (on call)' });
    await call('PUT', `/Users/${id}`, bob({ title: 'Boss' }));
    expect(homeserver.accounts.get(BOB)?.displayName).to.equal('Bob (on call)');
    await patch(id, { op: 'replace', path: 'displayName', value: 'Robert' });
    expect(homeserver.accounts.get(BOB)?.displayName).to.equal('Robert');
  });

  it('adopts an existing account only when allowed, reports it as Adopted, and never adopts a server admin', async () => {
    bridge = await startHttpBridge({}, { adoptExistingUsers: true });
    ({ homeserver, events } = bridge);
    homeserver.operator('@carol:example.org', { displayName: 'carol' });
    homeserver.operator('@root:example.org', { admin: true });
    const adopted = await call('POST', '/Users', { userName: 'carol', displayName: 'Carol' });
    expect(adopted.status).to.equal(201);
    expect(homeserver.accounts.get('@carol:example.org')?.displayName).to.equal('Carol');
    const admin = await call('POST', '/Users', { userName: 'root', password: 'from-the-idp' });
    expect(admin.status).to.equal(409);
    expect(admin.body['detail']).to.match(/server admin/);
    expect(homeserver.accounts.get('@root:example.org')?.password).to.equal(undefined);
    expect(events.map((e) => e.kind)).to.deep.equal(['adopted', 'refused']);
  });

  it('a value the homeserver refuses for good is a 400, and the request leaves nothing behind', async () => {
    const id = await start();
    homeserver.refuseNext = true;
    const refused = await call('POST', '/Users', bob({ userName: 'dave', emails: [] }));
    expect(refused.status).to.equal(400);
    expect(refused.body).to.include({ scimType: 'invalidValue' });
    expect(await store.findByUserName('dave')).to.equal(undefined);

    const before = await call('GET', `/Users/${id}`);
    homeserver.refuseNext = true;
    const patched = await patch(id, { op: 'replace', path: 'displayName', value: 'Robert' });
    expect(patched.status).to.equal(400);
    const after = await call('GET', `/Users/${id}`);
    expect(after.body).to.deep.equal(before.body);
    expect(await store.journalFor(id)).to.deep.equal([]);
  });

  it('reports refusals (409s, protected users) to the operators', async () => {
    await start();
    expect((await call('POST', '/Users', bob())).status).to.equal(409);
    expect((await call('POST', '/Users', bob({ userName: 'admin', emails: [] }))).status).to.equal(403);
    const refused = events.filter((e) => e.kind === 'refused');
    expect(refused.map((e) => e.source)).to.deep.equal(['test-idp', 'test-idp']);
    expect(refused[1]?.reason).to.match(/protected/);
  });

  describe('the drift check', () => {
    const reconciler = () =>
      new Reconciler(bridge.store, bridge.users, bridge.rooms, { report: (e) => events.push(e) }, { repair: [], wakeJournal: () => undefined });

    it('reports a difference once, and once more when it is gone', async () => {
      await start();
      homeserver.operator(BOB, { displayName: 'Bobby' });
      const first = await reconciler().run();
      expect(first.differences).to.deep.equal([`${BOB}: display name is "Bobby" on the homeserver, "Bob" in the IdP`]);
      await reconciler().run();
      expect(events.filter((e) => e.kind === 'drift')).to.have.length(1);
      homeserver.operator(BOB, { displayName: 'Bob' });
      expect((await reconciler().run()).differences).to.deep.equal([]);
      expect(events.filter((e) => e.kind === 'drift-resolved')).to.have.length(1);
      expect(homeserver.accounts.get(BOB)?.displayName).to.equal('Bob');
    });

    it('runs a repair asked for while another run is under way, after it', async () => {
      await start();
      homeserver.operator(BOB, { displayName: 'Bobby' });
      const checker = reconciler();
      const [plain, repaired] = await Promise.all([checker.run({ repair: [] }), checker.run({ repair: ['displayName'] })]);
      expect(plain.differences).to.have.length(1);
      expect(repaired.differences).to.deep.equal([]);
      expect(homeserver.accounts.get(BOB)?.displayName).to.equal('Bob');
    });

    it('repairs only what the operator asks for', async () => {
      await start();
      homeserver.operator(BOB, { displayName: 'Bobby', locked: true });
      const result = await reconciler().run({ repair: ['displayName'] });
      expect(homeserver.accounts.get(BOB)).to.include({ displayName: 'Bob', locked: true });
      expect(result.differences).to.deep.equal([`${BOB}: account is locked on the homeserver, active in the IdP`]);
    });

    it('finds a group member an operator kicked from the group\'s room, and rejoins it only on request', async () => {
      const id = await start();
      const group = await call('POST', '/Groups', { displayName: 'Ops', members: [{ value: id }] });
      expect(group.status).to.equal(201);
      await bridge.drain();
      const [roomId, room] = [...bridge.rooms.rooms.entries()][0] ?? [];
      room?.members.delete(BOB);
      const found = await reconciler().run();
      expect(found.differences).to.deep.equal([`group "Ops": ${BOB} is a member of the group but not joined to ${String(roomId)}`]);
      expect(room?.members.has(BOB)).to.equal(false);
      await reconciler().run({ repair: ['members'] });
      await bridge.drain();
      expect(room?.members.has(BOB)).to.equal(true);
    });
  });
});
