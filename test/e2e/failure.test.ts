// The homeserver goes away: the IdP is told to retry (503 + Retry-After), nothing is
// created twice or left half-done, and work the bridge accepted is finished by its
// journal, even by a new bridge process on the same database.
//
// The bridge here talks to Synapse through a CuttingProxy so that a request can also be
// cut at a chosen step (Synapse "dying" half-way through a POST). The tests run in
// order; the last one stops and replaces the bridge.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, CuttingProxy, ScimClient, roomNotices, waitFor, type Json } from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

const CAROL = `@carol.white:${SERVER_NAME}`;
const DAVE = `@dave.brown:${SERVER_NAME}`;

const carol = {
  schemas: [CORE_USER],
  userName: 'carol.white@example.com',
  displayName: 'Carol White',
  emails: [{ value: 'carol.white@example.com', type: 'work', primary: true }],
};
const dave = {
  schemas: [CORE_USER],
  userName: 'dave.brown@example.com',
  displayName: 'Dave Brown',
  emails: [{ value: 'dave.brown@example.com', type: 'work', primary: true }],
};

function expectRetryLater(res: { status: number; headers: Headers; body: Json; text: string }): void {
  expect(res.status, res.text).to.equal(503);
  expect(res.headers.get('content-type')).to.match(/^application\/scim\+json/);
  expect(res.body['schemas']).to.deep.equal([ERROR_SCHEMA]);
  expect(res.body['status']).to.equal('503');
  expect(res.body['detail']).to.be.a('string').that.is.not.empty;
  expect(res.headers.get('retry-after'), 'Retry-After in seconds').to.match(/^[1-9]\d*$/);
}

function threepids(user: Json | undefined): { medium: string; address: string }[] {
  const list = user?.['threepids'];
  return Array.isArray(list) ? (list as Json[]).map((t) => ({ medium: String(t['medium']), address: String(t['address']) })) : [];
}

describe('Failures: the homeserver goes away', function () {
  let proxy: CuttingProxy;
  let bridge: BridgeHandles | undefined;
  let scim: ScimClient;
  let admin: AdminApi;
  let synapseUp = true;
  let carolId = '';

  // The same configuration for every bridge instance of this file: same database, same
  // registration and appservice port (the registration's url), homeserver via the proxy.
  const config = () => ({
    homeserver: { url: proxy.url },
    database: { path: workFile('failure-test.db') },
  });

  async function stopSynapse(): Promise<void> {
    synapseUp = false;
    await homeserver().synapse.stop();
  }

  async function startSynapse(): Promise<void> {
    await homeserver().synapse.start();
    synapseUp = true;
  }

  before(async function () {
    const hs = homeserver();
    proxy = await CuttingProxy.start(hs.synapse.url);
    bridge = await startBridge(config());
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });

  after(async function () {
    if (proxy) proxy.failWhen = undefined;
    // Leave the shared homeserver running for the other test files.
    if (!synapseUp) await startSynapse();
    await bridge?.stop();
    await proxy?.close();
  });

  it('answers 503 with Retry-After while Synapse is down; the retried POST creates exactly one complete user', async function () {
    const synapseUsers = await admin.userCount();
    await stopSynapse();
    const refused = await scim.post('/Users', carol);
    expectRetryLater(refused);
    expect(await scim.count('userName eq "carol.white@example.com"')).to.equal(0);

    await startSynapse();
    expect(await admin.userCount(), 'nothing was created in Synapse').to.equal(synapseUsers);
    const created = await scim.post('/Users', carol);
    expect(created.status, created.text).to.equal(201);
    carolId = String(created.body['id']);

    const user = await admin.user(CAROL);
    expect(user?.['displayname']).to.equal('Carol White');
    expect(threepids(user)).to.deep.equal([{ medium: 'email', address: 'carol.white@example.com' }]);
    expect(await scim.count('userName eq "carol.white@example.com"')).to.equal(1);
    expect(await admin.userCount()).to.equal(synapseUsers + 1);
  });

  it('a POST cut at the account write is 503; the retried POST finishes the same user', async function () {
    const writeAccount = `/_synapse/admin/v2/users/${DAVE}`;
    proxy.failWhen = (method, path) => method === 'PUT' && path === writeAccount;
    const refused = await scim.post('/Users', dave);
    expectRetryLater(refused);
    expect(proxy.cut, 'the account write was attempted and cut').to.include(`PUT ${writeAccount}`);

    // Accepted and visible to SCIM (the IdP can find it, nothing is hidden), and nothing
    // half-made in Synapse: the account is created in one write, with its profile and 3PIDs.
    expect(await admin.user(DAVE), 'no account without its profile').to.equal(undefined);
    const listed = await scim.get(`/Users?filter=${encodeURIComponent('userName eq "dave.brown@example.com"')}`);
    expect(listed.body['totalResults']).to.equal(1);
    const pendingId = String((listed.body['Resources'] as Json[])[0]?.['id']);

    proxy.failWhen = undefined;
    const retried = await scim.post('/Users', dave);
    expect(retried.status, retried.text).to.equal(201);
    expect(retried.body['id'], 'the retry resumes the same user').to.equal(pendingId);
    const user = await admin.user(DAVE);
    expect(user?.['displayname']).to.equal('Dave Brown');
    expect(threepids(user)).to.deep.equal([{ medium: 'email', address: 'dave.brown@example.com' }]);
    expect(await scim.count('userName eq "dave.brown@example.com"')).to.equal(1);

    // A third POST of the same body is now a conflict: the IdP was told about the user.
    const again = await scim.post('/Users', dave);
    expect(again.status, again.text).to.equal(409);
    expect(again.body['scimType']).to.equal('uniqueness');
  });

  it('a POST whose answer the IdP never got (it hung up) is resumed by the retry: 201, the same user, one account', async function () {
    const erin = { ...dave, userName: 'erin.lost@example.com', displayName: 'Erin Lost', emails: [{ value: 'erin.lost@example.com', primary: true }] };
    const writeAccount = `/_synapse/admin/v2/users/@erin.lost:${SERVER_NAME}`;
    // The account write is held long enough for the IdP to give up and hang up first.
    proxy.holdWhen = (method, path) => (method === 'PUT' && path === writeAccount ? 1_000 : undefined);
    const abort = new AbortController();
    const lost = scim.post('/Users', erin, { signal: abort.signal }).then(
      () => 'answered',
      () => 'hung up',
    );
    await waitFor(() => (proxy.seen.includes(`PUT ${writeAccount}`) ? true : undefined), 10_000, 'the account write to start');
    abort.abort();
    expect(await lost).to.equal('hung up');
    proxy.holdWhen = undefined;
    // The bridge finished the user after the IdP hung up: it is there, made once.
    await waitFor(async () => ((await admin.user(`@erin.lost:${SERVER_NAME}`))?.['displayname'] === 'Erin Lost' ? true : undefined), 10_000, 'the account');
    const listed = await scim.get(`/Users?filter=${encodeURIComponent('userName eq "erin.lost@example.com"')}`);
    const firstId = String((listed.body['Resources'] as Json[])[0]?.['id']);

    // The IdP never heard of it, so it sends the same POST again: not a 409, the same user.
    const retried = await scim.post('/Users', erin);
    expect(retried.status, retried.text).to.equal(201);
    expect(retried.body['id']).to.equal(firstId);
    expect(await scim.count('userName eq "erin.lost@example.com"')).to.equal(1);
    // Now it has been told: another POST of the same user is a conflict.
    const again = await scim.post('/Users', erin);
    expect(again.status, again.text).to.equal(409);
  });

  it('a PATCH accepted while Synapse is down is completed by a new bridge instance from its journal, without the IdP', async function () {
    expect(carolId, 'needs Carol from the first test').to.not.equal('');
    await stopSynapse();
    const refused = await scim.patch(`/Users/${carolId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'displayName', value: 'Carol White-Black' }],
    });
    expectRetryLater(refused);
    // The bridge kept the change: SCIM reads come from its store.
    const stored = await scim.get(`/Users/${carolId}`);
    expect(stored.body['displayName']).to.equal('Carol White-Black');

    await bridge?.stop();
    bridge = undefined;
    await startSynapse();
    expect((await admin.profile(CAROL))?.['displayname'], 'nobody has told Synapse yet').to.equal('Carol White');

    const restarted = await startBridge(config());
    bridge = restarted;
    await waitFor(
      async () => {
        await restarted.runJournal();
        return (await admin.profile(CAROL))?.['displayname'] === 'Carol White-Black';
      },
      60_000,
      'the journal to bring the display name to Synapse',
    );
    const user = await admin.user(CAROL);
    expect(user?.['displayname']).to.equal('Carol White-Black');
    expect(threepids(user)).to.deep.equal([{ medium: 'email', address: 'carol.white@example.com' }]);
    await waitFor(async () => (await restarted.store.journalFor(carolId)).length === 0, 10_000, 'the journal entry to close');

    // The notice of the failed PATCH could not reach the room while Synapse was down; it was
    // kept in the database, and the new bridge posts it after saying what happened.
    const notices = async () => (await roomNotices(admin, restarted.adminRoomId)).filter((n) => n.sender === restarted.botUserId).map((n) => n.body);
    const outage = await waitFor(async () => (await notices()).find((b) => /could not be posted from .* to /.test(b)), 30_000, 'the outage notice');
    expect(outage).to.match(/unreachable/);
    const held = await waitFor(
      async () => (await notices()).find((b) => b.includes(CAROL) && /will retry/.test(b)),
      30_000,
      'the held notice of the failed PATCH',
    );
    const order = await notices(); // newest first
    expect(order.indexOf(held), 'the held notice comes after the outage notice').to.be.below(order.indexOf(outage));
  });
});
