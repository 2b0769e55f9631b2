// The homeserver is shared with its operators (issue 7): what an operator does in Synapse is
// not undone by an unrelated SCIM write, the drift is reported in the admin room, values
// Synapse refuses for good leave nothing behind, and the admin room keeps working.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient, roomMembers, roomNotices, waitFor } from './helpers.ts';

const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const replace = (path: string, value: unknown) => ({ schemas: [PATCH_OP], Operations: [{ op: 'replace', path, value }] });

describe('Operators and the bridge on one homeserver', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;
  const mxid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({
      database: { path: workFile('operator-trust.db') },
      provisioning: { adoptExistingUsers: true },
      adminRoom: { burstThreshold: 50 },
    });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });
  after(() => bridge?.stop());

  async function create(localpart: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await scim.post('/Users', { userName: `${localpart}@example.com`, displayName: `Trust ${localpart}`, ...extra });
    expect(res.status, res.text).to.equal(201);
    return String(res.body['id']);
  }

  async function operatorPut(localpart: string, body: Record<string, unknown>): Promise<void> {
    const res = await admin.request('PUT', `/_synapse/admin/v2/users/${encodeURIComponent(mxid(localpart))}`, body);
    expect(res.status, res.text).to.equal(200);
  }

  const noticesAbout = async (text: string) =>
    (await roomNotices(admin, bridge.adminRoomId)).filter((n) => n.sender === bridge.botUserId && n.body.includes(text)).map((n) => n.body);

  it('an operator\'s lock survives a PATCH of title, and the admin room shows the drift', async function () {
    const id = await create('trust.lock');
    await operatorPut('trust.lock', { locked: true });
    const res = await scim.patch(`/Users/${id}`, replace('title', 'Boss'));
    expect(res.status, res.text).to.equal(200);
    expect((await admin.user(mxid('trust.lock')))?.['locked']).to.equal(true);
    const drift = await waitFor(async () => (await noticesAbout(mxid('trust.lock'))).find((b) => /locked on the homeserver/.test(b)), 30_000, 'a drift notice for the lock');
    expect(drift).to.match(/Drift/);
  });

  it('an operator\'s deactivation survives a PATCH of displayName and the IdP\'s active:true (policy keep)', async function () {
    const id = await create('trust.deact');
    const res0 = await admin.request('POST', `/_synapse/admin/v1/deactivate/${encodeURIComponent(mxid('trust.deact'))}`, { erase: false });
    expect(res0.status, res0.text).to.equal(200);
    const renamed = await scim.patch(`/Users/${id}`, replace('displayName', 'Renamed by IdP'));
    expect(renamed.status, renamed.text).to.equal(200);
    expect((await admin.user(mxid('trust.deact')))?.['deactivated']).to.equal(true);
    const asked = await scim.patch(`/Users/${id}`, replace('active', true));
    expect(asked.status, asked.text).to.equal(200);
    expect(asked.body['active']).to.equal(true);
    expect((await admin.user(mxid('trust.deact')))?.['deactivated']).to.equal(true);
    await waitFor(async () => (await noticesAbout(mxid('trust.deact'))).find((b) => /deactivated on the homeserver/.test(b)), 30_000, 'a drift notice for the deactivation');
  });

  it('a display name an operator set survives an unrelated PUT', async function () {
    const id = await create('trust.name');
    await operatorPut('trust.name', { displayname: 'Set by ops' });
    const res = await scim.put(`/Users/${id}`, { userName: 'trust.name@example.com', displayName: 'Trust trust.name', title: 'New title' });
    expect(res.status, res.text).to.equal(200);
    expect((await admin.profile(mxid('trust.name')))?.['displayname']).to.equal('Set by ops');
  });

  it('never adopts a server admin, even with adoptExistingUsers, and its password stays', async function () {
    const hs = homeserver();
    await hs.synapse.registerUser('trust.root', 'Original-Password-1', true);
    const res = await scim.post('/Users', { userName: 'trust.root', password: 'IdP-Password-2' });
    expect(res.status, res.text).to.equal(409);
    expect(String(res.body['detail'])).to.match(/server admin/);
    expect((await hs.synapse.login('trust.root', 'Original-Password-1')).status).to.equal(200);
    expect((await hs.synapse.login('trust.root', 'IdP-Password-2')).status).to.equal(403);
    expect(await scim.count('userName eq "trust.root"')).to.equal(0);
  });

  it('adopts an ordinary existing account and says "Adopted"', async function () {
    const hs = homeserver();
    await hs.synapse.registerUser('trust.sso', 'Sso-Password-1', false);
    await create('trust.sso', { displayName: 'Adopted Person' });
    expect((await admin.profile(mxid('trust.sso')))?.['displayname']).to.equal('Adopted Person');
    await waitFor(async () => (await noticesAbout(mxid('trust.sso'))).find((b) => /Adopted/.test(b)), 30_000, 'an Adopted notice');
  });

  for (const [what, body] of [
    ['a 600-character password', { userName: 'trust.pw@example.com', password: 'p'.repeat(600) }],
    ['a 100,000-character displayName', { userName: 'trust.long@example.com', displayName: 'd'.repeat(100_000) }],
  ] as const) {
    it(`${what} is a 400 with nothing in the store or on Synapse`, async function () {
      const res = await scim.post('/Users', body);
      expect(res.status, res.text.slice(0, 300)).to.equal(400);
      expect(res.body['scimType']).to.be.a('string');
      expect(await scim.count(`userName eq "${body.userName}"`)).to.equal(0);
      expect(await admin.user(mxid(body.userName.split('@')[0] ?? ''))).to.equal(undefined);
    });
  }

  it('a 1,000-term or filter and 10,000 nested parentheses are answered 200 or 400, never 500', async function () {
    const chain = Array.from({ length: 1000 }, (_, i) => `userName eq "nobody${i}"`).join(' or ');
    // POST /.search: a URL this long passes Node's header limit (16 KiB) and gets a 431.
    const search = (filter: string) => scim.post('/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter });
    const long = await search(chain);
    expect([200, 400], long.text.slice(0, 300)).to.include(long.status);
    const deep = await search(`${'('.repeat(10_000)}userName eq "x"${')'.repeat(10_000)}`);
    expect(deep.status, deep.text.slice(0, 300)).to.equal(400);
    expect(deep.body['scimType']).to.equal('invalidFilter');
  });

  it('after a group named with a lone surrogate, the admin room still gets every later notice', async function () {
    const group = await scim.post('/Groups', { displayName: 'G \ud800 x' });
    expect([201, 400]).to.include(group.status);
    for (let i = 0; i < 10; i++) await create(`trust.after${i}`);
    for (let i = 0; i < 10; i++) {
      await waitFor(async () => (await noticesAbout(mxid(`trust.after${i}`))).find((b) => /Created/.test(b)), 30_000, `the Created notice of trust.after${i}`);
    }
  });

  it('the console: an operator\'s "!scim drift" lists a change made in Synapse, "reconcile --repair" sets it back; a non-operator gets nothing', async function () {
    const hs = homeserver();
    const room = encodeURIComponent(bridge.adminRoomId);
    await create('trust.console');
    await operatorPut('trust.console', { displayname: 'Changed in Synapse' });
    await admin.join(bridge.adminRoomId);
    const nobody = await hs.synapse.registerUser('trust.nonop', 'Nonop-Password-1', false);
    expect((await admin.request('POST', `/_matrix/client/v3/rooms/${room}/invite`, { user_id: nobody.userId })).status).to.equal(200);
    const stranger = new AdminApi(hs.synapse.url, nobody.accessToken);
    await stranger.join(bridge.adminRoomId);
    let txn = 0;
    const say = async (who: AdminApi, body: string) => {
      const res = await who.request('PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/console-${Date.now()}-${txn++}`, { msgtype: 'm.text', body });
      expect(res.status, res.text).to.equal(200);
    };
    const answers = async () => (await roomNotices(admin, bridge.adminRoomId)).filter((n) => n.sender === bridge.botUserId && n.body.startsWith('Checked '));

    await say(stranger, '!scim drift');
    await say(admin, '!scim drift');
    const listed = await waitFor(async () => (await answers()).find((n) => n.body.includes('Changed in Synapse')), 30_000, 'the answer to !scim drift');
    expect(listed.body).to.include(mxid('trust.console'));
    expect(await answers(), 'the stranger got no answer').to.have.length(1);

    await say(admin, '!scim reconcile --repair displayName');
    await waitFor(async () => (await admin.profile(mxid('trust.console')))?.['displayname'] === 'Trust trust.console', 30_000, 'the repaired display name');
    // The lock an operator set in the first test is reported, never repaired: only displayName was asked for.
    expect((await admin.user(mxid('trust.lock')))?.['locked']).to.equal(true);
  });

  it('a member who left a group\'s room is found by the drift check and joined again only when asked', async function () {
    const hs = homeserver();
    const id = await create('trust.member');
    const group = await scim.post('/Groups', { displayName: 'Trust members', members: [{ value: id }] });
    expect(group.status, group.text).to.equal(201);
    await bridge.runJournal();
    const roomId = String((await bridge.store.groups.get(String(group.body['id'])))?.applied.roomId);
    await waitFor(async () => (await roomMembers(admin, roomId)).includes(mxid('trust.member')), 30_000, 'the member joined');
    // The member leaves (as a person can, or an operator makes them): not the bridge's doing.
    const asUser = new AdminApi(hs.synapse.url, hs.registration.as_token);
    const left = await asUser.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave?user_id=${encodeURIComponent(mxid('trust.member'))}`, {});
    expect(left.status, left.text).to.equal(200);

    const found = await bridge.reconcile();
    expect(found.differences).to.include(`group "Trust members": ${mxid('trust.member')} is a member of the group but not joined to ${roomId}`);
    expect(await roomMembers(admin, roomId)).to.not.include(mxid('trust.member'));
    await bridge.reconcile({ repair: ['members'] });
    await bridge.runJournal();
    await waitFor(async () => (await roomMembers(admin, roomId)).includes(mxid('trust.member')), 30_000, 'the member joined again');
    expect((await bridge.reconcile()).differences.filter((d) => d.includes('Trust members'))).to.deep.equal([]);
  });
});
