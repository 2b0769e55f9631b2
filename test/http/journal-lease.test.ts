import { expect } from 'chai';
import { REQUEST_LEASE_MS } from '../../src/store/tables.ts';
import { startHttpBridge, type HttpBridge } from './harness.ts';

// One writer per journal entry: what a request applies itself is leased to it, and the
// worker neither takes a leased entry nor repeats one the request has finished.
describe('Journal: one writer per entry', () => {
  let bridge: HttpBridge;

  const alice = {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'alice@example.com',
    displayName: 'Alice',
    emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
  };

  beforeEach(async () => {
    bridge = await startHttpBridge();
  });

  afterEach(() => bridge.close());

  it('leases a user entry to the request that opened it; group work is due at once', async () => {
    const now = Date.now();
    await bridge.store.openJournal('user-1', 'sync');
    await bridge.store.openJournal('group-1', 'group-sync');
    const dueNow = await bridge.store.dueJournal(new Date(now + 1_000), 10);
    expect(dueNow.map((e) => e.resourceId)).to.deep.equal(['group-1']);
    const afterLease = await bridge.store.dueJournal(new Date(now + REQUEST_LEASE_MS + 1_000), 10);
    expect(afterLease.map((e) => e.resourceId).sort()).to.deep.equal(['group-1', 'user-1']);
  });

  it('a create leaves nothing for the worker, which writes nothing again', async () => {
    const created = await bridge.call('POST', '/Users', alice);
    expect(created.status).to.equal(201);
    const writes = bridge.homeserver.applyCalls;
    expect(await bridge.journal.run(new Date(Date.now() + 3_600_000))).to.equal(0);
    expect(bridge.homeserver.applyCalls).to.equal(writes);
  });

  it('the worker skips an entry it picked that a request has since finished', async () => {
    bridge.homeserver.failApplies = 1;
    expect((await bridge.call('POST', '/Users', alice)).status).to.equal(503);
    const id = (await bridge.store.findByUserName('alice@example.com'))!.id;
    const [picked] = await bridge.store.dueJournal(new Date(Date.now() + 3_600_000), 10);
    expect(picked?.resourceId).to.equal(id);
    // The IdP's retry finishes the user while the worker holds the entry it picked.
    expect((await bridge.call('POST', '/Users', alice)).status).to.equal(201);
    const writes = bridge.homeserver.applyCalls;
    await bridge.users.runEntry(picked!);
    expect(bridge.homeserver.applyCalls, 'no second write').to.equal(writes);
  });

  it('the worker skips an entry a request reopened after it was picked (the request holds it)', async () => {
    bridge.homeserver.failApplies = 1;
    expect((await bridge.call('POST', '/Users', alice)).status).to.equal(503);
    const [picked] = await bridge.store.dueJournal(new Date(Date.now() + 3_600_000), 10);
    await bridge.store.openJournal(picked!.resourceId, 'sync');
    const writes = bridge.homeserver.applyCalls;
    await bridge.users.runEntry(picked!);
    expect(bridge.homeserver.applyCalls).to.equal(writes);
    expect(await bridge.store.journalFor(picked!.resourceId), 'the newer entry stays open').to.have.length(1);
  });
});
