// Users provisioned over SCIM, checked against Synapse's OWN view of them (admin API,
// profile API, password login, media), not only against the bridge's replies.
//
// The tests in this file run in order and share the users they create (an IdP's life
// cycle: create, update, disable, enable, delete); each one says what it relies on.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient, serveFiles, tinyPng, waitFor, type Json } from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const MATRIX_EXT = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';
const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const SSO_PROVIDER = 'oidc-test';

const ALICE = '@alice.smith:' + SERVER_NAME;
const ALICE_PASSWORD = 'Correct-Horse-Battery-1';
const BOB = '@bob.jones:' + SERVER_NAME;

function expectScimError(res: { status: number; headers: Headers; body: Json }, status: number, scimType?: string): void {
  expect(res.status, JSON.stringify(res.body)).to.equal(status);
  expect(res.headers.get('content-type')).to.match(/^application\/scim\+json/);
  expect(res.body['schemas']).to.deep.equal([ERROR_SCHEMA]);
  expect(res.body['status']).to.equal(String(status));
  expect(res.body['detail']).to.be.a('string').that.is.not.empty;
  if (scimType) expect(res.body['scimType']).to.equal(scimType);
}

function threepids(user: Json | undefined): { medium: string; address: string }[] {
  const list = user?.['threepids'];
  return Array.isArray(list) ? (list as Json[]).map((t) => ({ medium: String(t['medium']), address: String(t['address']) })) : [];
}

describe('Users: SCIM requests become Synapse accounts', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;
  let photos: Awaited<ReturnType<typeof serveFiles>>;
  const png = tinyPng(4, 4);
  let aliceId = '';

  before(async function () {
    const hs = homeserver();
    photos = await serveFiles({ '/bob.png': { type: 'image/png', data: png } });
    bridge = await startBridge({
      database: { path: workFile('users-test.db') },
      provisioning: { externalIdProvider: SSO_PROVIDER },
    });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    // The bootstrap admin is an operator: invited to the admin room at start-up.
    await admin.join(bridge.adminRoomId);
  });

  after(async function () {
    await bridge?.stop();
    await photos?.close();
  });

  describe('discovery', function () {
    for (const path of ['/ServiceProviderConfig', '/ResourceTypes', '/Schemas']) {
      it(`answers ${path} without authentication`, async function () {
        const res = await scim.get(path, { token: null });
        expect(res.status, res.text).to.equal(200);
        expect(res.headers.get('content-type')).to.match(/^application\/scim\+json/);
      });
    }

    it('declares the Matrix extension schema and the User resource type', async function () {
      const schemas = await scim.get('/Schemas', { token: null });
      const ids = (schemas.body['Resources'] as Json[]).map((s) => s['id']);
      expect(ids).to.include.members([CORE_USER, MATRIX_EXT]);
      const types = await scim.get('/ResourceTypes', { token: null });
      const user = (types.body['Resources'] as Json[]).find((r) => r['id'] === 'User');
      expect(user?.['endpoint']).to.equal('/Users');
    });
  });

  describe('create', function () {
    it('answers 201 with Location and meta, and Synapse holds the account with its display name and email', async function () {
      const res = await scim.post('/Users', {
        schemas: [CORE_USER],
        userName: 'Alice.Smith@example.com',
        name: { givenName: 'Alice', familyName: 'Smith' },
        displayName: 'Alice Smith',
        emails: [{ value: 'Alice.Smith@example.com', type: 'work', primary: true }],
        password: ALICE_PASSWORD,
        active: true,
      });
      expect(res.status, res.text).to.equal(201);
      expect(res.headers.get('content-type')).to.match(/^application\/scim\+json/);
      aliceId = String(res.body['id']);
      expect(aliceId).to.not.be.empty;
      expect(aliceId).to.not.contain('alice'); // opaque, not the MXID
      const location = res.headers.get('location');
      expect(location).to.equal(`${bridge.scimUrl}/Users/${aliceId}`);
      const meta = res.body['meta'] as Json;
      expect(meta['resourceType']).to.equal('User');
      expect(meta['location']).to.equal(location);
      expect(Date.parse(String(meta['created']))).to.be.a('number').and.not.NaN;
      expect(Date.parse(String(meta['lastModified']))).to.not.be.NaN;
      expect(meta['version']).to.be.a('string');
      expect(res.headers.get('etag')).to.equal(meta['version']);
      expect(res.body['userName']).to.equal('Alice.Smith@example.com');
      expect(res.body).to.not.have.property('password');
      // The Matrix ID is returned on request (returned: "request").
      const withId = await scim.get(`/Users/${aliceId}?attributes=${MATRIX_EXT}:matrixId`);
      expect(withId.body[MATRIX_EXT]).to.deep.equal({ matrixId: ALICE });

      const user = await admin.user(ALICE);
      expect(user, 'Synapse has no such user').to.not.equal(undefined);
      expect(user?.['displayname']).to.equal('Alice Smith');
      expect(threepids(user)).to.deep.include({ medium: 'email', address: 'alice.smith@example.com' });
      expect(user?.['deactivated']).to.equal(false);
      expect(user?.['locked']).to.equal(false);
      expect(user?.['admin']).to.equal(false);
      const profile = await admin.profile(ALICE);
      expect(profile?.['displayname']).to.equal('Alice Smith');
    });

    it('finds the user with a filter on userName in any case and returns its original case', async function () {
      const res = await scim.get(`/Users?filter=${encodeURIComponent('userName eq "alice.smith@EXAMPLE.com"')}`);
      expect(res.status, res.text).to.equal(200);
      expect(res.body['totalResults']).to.equal(1);
      const found = (res.body['Resources'] as Json[])[0];
      expect(found?.['id']).to.equal(aliceId);
      expect(found?.['userName']).to.equal('Alice.Smith@example.com');
      const byId = await scim.get(`/Users/${aliceId}`);
      expect(byId.status).to.equal(200);
      expect(byId.body['displayName']).to.equal('Alice Smith');
      expect(byId.body).to.not.have.property('password');
    });

    it('fetches an http photo into an mxc:// avatar, adds the phone number as msisdn, and links externalId for SSO', async function () {
      const res = await scim.post('/Users', {
        schemas: [CORE_USER],
        userName: 'bob.jones@example.com',
        displayName: 'Bob Jones',
        externalId: '00u-bob-123',
        emails: [{ value: 'bob.jones@example.com', type: 'work', primary: true }],
        phoneNumbers: [{ value: '+1 555 0100', type: 'work' }],
        photos: [{ value: `${photos.url}/bob.png`, type: 'photo', primary: true }],
      });
      expect(res.status, res.text).to.equal(201);
      expect(res.body['externalId']).to.equal('00u-bob-123');
      expect(photos.hits).to.include('/bob.png');

      const profile = await admin.profile(BOB);
      const avatar = String(profile?.['avatar_url']);
      expect(avatar).to.match(/^mxc:\/\/e2e\.localhost\/\S+$/);
      const media = await admin.download(avatar);
      expect(media.status).to.equal(200);
      expect(media.contentType).to.match(/^image\/png/);
      expect(media.data.equals(png), 'the avatar holds the photo the IdP gave').to.equal(true);

      const user = await admin.user(BOB);
      expect(user?.['avatar_url']).to.equal(avatar);
      expect(threepids(user)).to.deep.include({ medium: 'msisdn', address: '15550100' });
      expect(user?.['external_ids']).to.deep.equal([{ auth_provider: SSO_PROVIDER, external_id: '00u-bob-123' }]);
      expect(await admin.userByExternalId(SSO_PROVIDER, '00u-bob-123')).to.equal(BOB);
    });
  });

  describe('disable and enable (lock policy)', function () {
    it('lets the user log in with the password the IdP set', async function () {
      const login = await homeserver().synapse.login('alice.smith', ALICE_PASSWORD);
      expect(login.status, JSON.stringify(login.body)).to.equal(200);
      expect(login.body['user_id']).to.equal(ALICE);
    });

    it('locks the account on active:false: the password login fails with M_USER_LOCKED', async function () {
      const res = await scim.patch(`/Users/${aliceId}`, { Operations: [{ op: 'replace', value: { active: false } }] });
      expect(res.status, res.text).to.equal(200);
      expect(res.body['active']).to.equal(false);
      const user = await admin.user(ALICE);
      expect(user?.['locked']).to.equal(true);
      expect(user?.['deactivated']).to.equal(false);
      const login = await homeserver().synapse.login('alice.smith', ALICE_PASSWORD);
      expect(login.status).to.equal(401);
      expect(login.body['errcode']).to.equal('M_USER_LOCKED');
    });

    it('unlocks the account on active:true: the same password works again', async function () {
      const res = await scim.patch(`/Users/${aliceId}`, {
        schemas: [PATCH_OP],
        Operations: [{ op: 'replace', path: 'active', value: true }],
      });
      expect(res.status, res.text).to.equal(200);
      expect(res.body['active']).to.equal(true);
      expect((await admin.user(ALICE))?.['locked']).to.equal(false);
      const login = await homeserver().synapse.login('alice.smith', ALICE_PASSWORD);
      expect(login.status, JSON.stringify(login.body)).to.equal(200);
    });
  });

  describe('refused requests change nothing', function () {
    let storeCount: number;
    let synapseCount: number;

    beforeEach(async function () {
      storeCount = await scim.count();
      synapseCount = await admin.userCount();
    });

    async function expectNothingChanged(...absent: string[]): Promise<void> {
      expect(await scim.count(), 'users in the bridge').to.equal(storeCount);
      expect(await admin.userCount(), 'accounts in Synapse').to.equal(synapseCount);
      for (const id of absent) expect(await admin.user(id), `${id} in Synapse`).to.equal(undefined);
    }

    it('answers 401 with a SCIM error and WWW-Authenticate without a bearer token', async function () {
      const res = await scim.post('/Users', { schemas: [CORE_USER], userName: 'mallory@example.com' }, { token: null });
      expectScimError(res, 401);
      expect(res.headers.get('www-authenticate')).to.match(/^Bearer\b/);
      await expectNothingChanged(`@mallory:${SERVER_NAME}`);
    });

    it('answers 401 to a wrong bearer token', async function () {
      const res = await scim.post('/Users', { schemas: [CORE_USER], userName: 'mallory@example.com' }, { token: 'not-the-token-0123456789' });
      expectScimError(res, 401);
      expect(res.headers.get('www-authenticate')).to.match(/^Bearer\b/);
      await expectNothingChanged(`@mallory:${SERVER_NAME}`);
    });

    it('answers 400 invalidSyntax to malformed JSON', async function () {
      const res = await scim.post('/Users', undefined, { rawBody: '{"schemas":["' + CORE_USER + '"],"userName":"eve@example.com",' });
      expectScimError(res, 400, 'invalidSyntax');
      await expectNothingChanged(`@eve:${SERVER_NAME}`);
    });

    it('answers 409 uniqueness to the same userName in another case, and leaves the holder alone', async function () {
      const res = await scim.post('/Users', {
        schemas: [CORE_USER],
        userName: 'ALICE.SMITH@example.com',
        displayName: 'Impostor',
        emails: [{ value: 'impostor@example.com', type: 'work' }],
      });
      expectScimError(res, 409, 'uniqueness');
      await expectNothingChanged();
      const user = await admin.user(ALICE);
      expect(user?.['displayname']).to.equal('Alice Smith');
      expect(threepids(user)).to.deep.equal([{ medium: 'email', address: 'alice.smith@example.com' }]);
      expect(await scim.count('userName eq "alice.smith@example.com"')).to.equal(1);
    });
  });

  describe('concurrent writes', function () {
    it('lets exactly one of two PATCHes with the same If-Match win, and Synapse shows that one', async function () {
      const current = await scim.get(`/Users/${aliceId}`);
      const version = String((current.body['meta'] as Json)['version']);
      const rename = (displayName: string) =>
        scim.patch(
          `/Users/${aliceId}`,
          { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: displayName }] },
          { headers: { 'If-Match': version } },
        );
      const replies = await Promise.all([rename('Alice One'), rename('Alice Two')]);
      expect(replies.map((r) => r.status).sort()).to.deep.equal([200, 412]);
      const winner = String(replies.find((r) => r.status === 200)!.body['displayName']);
      expect((await scim.get(`/Users/${aliceId}`)).body['displayName']).to.equal(winner);
      expect((await admin.user(ALICE))?.['displayname']).to.equal(winner);
    });
  });

  describe('delete', function () {
    it('answers 204, deactivates the account in Synapse, and the user is gone from SCIM', async function () {
      const res = await scim.delete(`/Users/${aliceId}`);
      expect(res.status, res.text).to.equal(204);
      expect(res.text).to.equal('');
      const user = await admin.user(ALICE);
      expect(user?.['deactivated']).to.equal(true);
      expectScimError(await scim.get(`/Users/${aliceId}`), 404);
      expect(await scim.count('userName eq "Alice.Smith@example.com"')).to.equal(0);
      const login = await homeserver().synapse.login('alice.smith', ALICE_PASSWORD);
      expect(login.status).to.not.equal(200);
    });
  });

  describe('admin room', function () {
    it('holds a notice from the bot for each event: created, disabled, enabled, deleted', async function () {
      const hs = homeserver();
      const expected: Record<string, RegExp> = {
        created: /\bcreat/i,
        disabled: /\b(disabl|lock)/i,
        enabled: /\b(re-?)?enabl|unlock/i,
        deleted: /\b(delet|deactivat)/i,
      };
      const aboutAlice = (body: string) => body.includes(ALICE) || body.toLowerCase().includes('alice.smith@example.com');
      const notices = await waitFor(
        async () => {
          const all = (await admin.notices(bridge.adminRoomId)).filter((n) => n.sender === hs.botUserId && aboutAlice(n.body));
          return Object.values(expected).every((re) => all.some((n) => re.test(n.body))) ? all : undefined;
        },
        60_000,
        'notices about Alice for created, disabled, enabled and deleted',
      ).catch(async (error: unknown) => {
        const seen = (await admin.notices(bridge.adminRoomId)).map((n) => `  ${n.sender}: ${n.body}`).join('\n');
        throw new Error(`${(error as Error).message}\nnotices in the admin room:\n${seen}`);
      });
      for (const n of notices) expect(n.html, 'an HTML body too').to.be.a('string').that.is.not.empty;
      expect(notices.some((n) => /\bcreat/i.test(n.body) && n.body.includes('test-idp')), 'names the IdP (token name)').to.equal(true);
    });
  });
});
