// The bridge on a homeserver whose accounts live in a real Matrix Authentication Service
// (MAS_HOME, see scripts/lib/mas.ts): accounts, emails, passwords, locks and the externalId
// link are MAS's, the profile is Synapse's. Asserts on MAS's admin API and Synapse's own
// view. Without MAS_HOME the file says so and is skipped.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, type BridgeHandles } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { bootstrapHomeserver, type BootstrappedHomeserver, type MasHomeserver } from '../../scripts/lib/bootstrap.ts';
import { masHome } from '../../scripts/lib/mas.ts';
import { freePort } from '../../scripts/lib/synapse.ts';
import { AdminApi, ScimClient, serveFiles, threepidsOf, tinyPng, waitFor, type Json } from './helpers.ts';

const SERVER_NAME = 'mas-e2e.localhost';
const ALICE = `@alice.smith:${SERVER_NAME}`;
const PASSWORD = 'Correct-Horse-Battery-Staple-42';
const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

describe('On a homeserver whose accounts live in MAS', function () {
  this.timeout(300_000);
  let dir: string | undefined;
  let hs: BootstrappedHomeserver | undefined;
  let bridge: BridgeHandles | undefined;
  let scim: ScimClient;
  let admin: AdminApi;
  let aliceId = '';
  const mas = (): MasHomeserver => hs!.mas!;
  const masUser = async (username: string): Promise<Json | undefined> => {
    const res = await mas().server.adminApi('GET', `/users/by-username/${encodeURIComponent(username)}`);
    return res.status === 200 ? ((res.body['data'] ?? {}) as Json) : undefined;
  };
  const masList = async (path: string): Promise<Json[]> => {
    const res = await mas().server.adminApi('GET', path);
    expect(res.status, path).to.equal(200);
    return (res.body['data'] ?? []) as Json[];
  };
  /** Logs in through MAS's compatibility API, as a Matrix client with a password does. */
  const login = async (username: string, password: string): Promise<{ status: number; token?: string }> => {
    const res = await fetch(`${mas().server.url}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password }),
    });
    const body = (await res.json().catch(() => ({}))) as Json;
    return { status: res.status, ...(typeof body['access_token'] === 'string' ? { token: body['access_token'] } : {}) };
  };
  const whoami = async (token: string): Promise<number> =>
    (await fetch(`${hs!.synapse.url}/_matrix/client/v3/account/whoami`, { headers: { authorization: `Bearer ${token}` } })).status;

  before(async function () {
    const home = masHome();
    if (!home) {
      console.log('skipped: no MAS (set MAS_HOME)');
      this.skip();
    }
    dir = await mkdtemp(join(tmpdir(), 'msb-mas-e2e-'));
    hs = await bootstrapHomeserver({ dir, serverName: SERVER_NAME, mas: { home } });
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    const raw = hs.bridgeConfig({
      homeserver: { auth: 'mas' },
      mas: { url: mas().server.url, clientId: mas().server.adminClientId, clientSecret: mas().server.adminClientSecret, upstreamProviderId: mas().server.upstreamProviderId },
      // Under MAS, Synapse's admin API wants a token with the admin scope: the as_token has none.
      adminApi: { accessToken: mas().botAdminToken },
      appservice: { port: hs.appservicePort },
      scim: { port: await freePort() },
      database: { path: join(dir, 'bridge.db') },
    });
    bridge = await start(parseConfig(raw, dir), hs.registration);
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
  });

  after(async function () {
    this.timeout(60_000);
    await bridge?.stop();
    await hs?.stop();
    if (dir && !process.env['MSB_E2E_KEEP']) await rm(dir, { recursive: true, force: true });
  });

  it('creates the user in MAS with its email, password and upstream link; Synapse shows the profile and the email', async () => {
    const created = await scim.post('/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'Alice.Smith@example.com',
      displayName: 'Alice Smith',
      externalId: 'idp-subject-alice',
      password: PASSWORD,
      emails: [{ value: 'alice.smith@example.com', type: 'work', primary: true }],
    });
    expect(created.status, created.text).to.equal(201);
    aliceId = String(created.body['id']);

    const user = await masUser('alice.smith');
    expect(user, 'MAS holds the user').to.not.equal(undefined);
    const masId = String(user!['id']);
    const emails = await masList(`/user-emails?filter[user]=${masId}`);
    expect(emails.map((e) => (e['attributes'] as Json)['email'])).to.deep.equal(['alice.smith@example.com']);
    const links = await masList(`/upstream-oauth-links?filter[user]=${masId}`);
    expect(links.map((l) => (l['attributes'] as Json)['subject'])).to.deep.equal(['idp-subject-alice']);

    // Synapse follows MAS within a second or so.
    const synapseUser = await waitFor(
      async () => {
        const u = await admin.user(ALICE);
        return u && u['displayname'] === 'Alice Smith' && threepidsOf(u).some((t) => t.address === 'alice.smith@example.com') ? u : undefined;
      },
      20_000,
      'Synapse to show the display name and the email',
    );
    expect(synapseUser['displayname']).to.equal('Alice Smith');

    const session = await login('alice.smith', PASSWORD);
    expect(session.status, 'the password logs in through MAS').to.equal(200);
    expect(await whoami(session.token!)).to.equal(200);
  });

  it('active:false locks the user in MAS and ends the sessions it had; active:true undoes it', async () => {
    const session = await login('alice.smith', PASSWORD);
    expect(await whoami(session.token!)).to.equal(200);
    const disabled = await scim.patch(`/Users/${aliceId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(disabled.status, disabled.text).to.equal(200);
    expect(((await masUser('alice.smith'))!['attributes'] as Json)['locked_at']).to.be.a('string');
    await waitFor(async () => ((await whoami(session.token!)) !== 200 ? true : undefined), 20_000, 'the existing token to stop working');
    expect((await login('alice.smith', PASSWORD)).status, 'no new login while locked').to.not.equal(200);

    const enabled = await scim.patch(`/Users/${aliceId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'active', value: true }] });
    expect(enabled.status, enabled.text).to.equal(200);
    expect(((await masUser('alice.smith'))!['attributes'] as Json)['locked_at']).to.equal(null);
    expect((await login('alice.smith', PASSWORD)).status, 'logs in again').to.equal(200);
  });

  it('a photo URL becomes the avatar in Synapse, fetched once; a new display name reaches Synapse too', async () => {
    const png = tinyPng(3, 5);
    const photos = await serveFiles({ '/carol.png': { type: 'image/png', data: png } });
    try {
      const created = await scim.post('/Users', {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: 'carol.white@example.com',
        displayName: 'Carol White',
        photos: [{ value: `${photos.url}/carol.png`, type: 'photo', primary: true }],
      });
      expect(created.status, created.text).to.equal(201);
      const carol = `@carol.white:${SERVER_NAME}`;
      const avatar = String((await admin.profile(carol))?.['avatar_url']);
      expect(avatar).to.match(new RegExp(`^mxc://${SERVER_NAME.replace(/\./g, '\\.')}/\\S+$`));
      const media = await admin.download(avatar);
      expect(media.data.equals(png), 'the avatar holds the photo the IdP gave').to.equal(true);

      const renamed = await scim.patch(`/Users/${String(created.body['id'])}`, {
        schemas: [PATCH_SCHEMA],
        Operations: [{ op: 'replace', path: 'displayName', value: 'Carol W. White' }],
      });
      expect(renamed.status, renamed.text).to.equal(200);
      const profile = await admin.profile(carol);
      expect(profile?.['displayname']).to.equal('Carol W. White');
      expect(profile?.['avatar_url'], 'the avatar is kept').to.equal(avatar);
      expect(photos.hits).to.deep.equal(['/carol.png']);
    } finally {
      await photos.close();
    }
  });

  it('answers 400 for a password MAS refuses, and leaves no active account and no SCIM user', async () => {
    const refused = await scim.post('/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'weak.password@example.com',
      password: 'a',
    });
    expect(refused.status, refused.text).to.equal(400);
    expect(await scim.count('userName eq "weak.password@example.com"')).to.equal(0);
    const user = await masUser('weak.password');
    if (user) expect((user['attributes'] as Json)['deactivated_at'], 'not left active in MAS').to.be.a('string');
  });

  it('takes the IdP\'s retry with a good password: the MAS user the refused create left is reactivated and used', async () => {
    const left = await masUser('weak.password');
    expect(left, 'the refused create left a MAS user').to.not.equal(undefined);
    const retried = await scim.post('/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'weak.password@example.com',
      displayName: 'Wendy Password',
      password: PASSWORD,
      emails: [{ value: 'wendy@example.com', primary: true }],
    });
    expect(retried.status, retried.text).to.equal(201);
    const user = (await masUser('weak.password'))!;
    expect(user['id'], 'the same MAS user').to.equal(left!['id']);
    expect((user['attributes'] as Json)['deactivated_at']).to.equal(null);
    const emails = await masList(`/user-emails?filter[user]=${String(user['id'])}`);
    expect(emails.map((e) => (e['attributes'] as Json)['email'])).to.deep.equal(['wendy@example.com']);
    await waitFor(
      async () => ((await admin.user(`@weak.password:${SERVER_NAME}`))?.['deactivated'] === false ? true : undefined),
      20_000,
      'Synapse to show the account active again',
    );
    expect((await admin.profile(`@weak.password:${SERVER_NAME}`))?.['displayname']).to.equal('Wendy Password');
    const session = await login('weak.password', PASSWORD);
    expect(session.status, 'the good password logs in through MAS').to.equal(200);
    expect(await whoami(session.token!)).to.equal(200);
  });

  it('refuses to start with homeserver.auth: synapse on this homeserver, naming what to set', async () => {
    // The account check comes before any listener starts, so the ports in use do not matter.
    const raw = hs!.bridgeConfig({
      appservice: { port: hs!.appservicePort },
      scim: { port: await freePort() },
      database: { path: join(dir!, 'wrong-auth.db') },
    });
    const failure = await start(parseConfig(raw, dir!), hs!.registration).then(
      async (started) => {
        await started.stop();
        return 'started';
      },
      (error: unknown) => (error as Error).message,
    );
    expect(failure).to.include('delegates its accounts to the Matrix Authentication Service');
    expect(failure).to.include('homeserver.auth: mas');
  });

  it('with onDisable: deactivate, active:false deactivates in MAS; active:true reactivates and puts the IdP\'s email back', async () => {
    // The same homeserver, the bridge restarted with the other policy.
    await bridge!.stop();
    const raw = hs!.bridgeConfig({
      homeserver: { auth: 'mas' },
      mas: { url: mas().server.url, clientId: mas().server.adminClientId, clientSecret: mas().server.adminClientSecret, upstreamProviderId: mas().server.upstreamProviderId },
      adminApi: { accessToken: mas().botAdminToken },
      appservice: { port: hs!.appservicePort },
      scim: { port: await freePort() },
      database: { path: join(dir!, 'bridge.db') },
      provisioning: { onDisable: 'deactivate' },
    });
    bridge = await start(parseConfig(raw, dir!), hs!.registration);
    scim = new ScimClient(bridge.scimUrl, hs!.scimToken);
    const created = await scim.post('/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'bob.jones@example.com',
      emails: [{ value: 'bob.jones@example.com', primary: true }],
    });
    expect(created.status, created.text).to.equal(201);
    const bobId = String(created.body['id']);
    const masId = String((await masUser('bob.jones'))!['id']);

    const off = await scim.patch(`/Users/${bobId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(off.status, off.text).to.equal(200);
    expect(((await masUser('bob.jones'))!['attributes'] as Json)['deactivated_at']).to.be.a('string');
    expect(await masList(`/user-emails?filter[user]=${masId}`), 'MAS drops the emails of a deactivated user').to.deep.equal([]);

    const on = await scim.patch(`/Users/${bobId}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'active', value: true }] });
    expect(on.status, on.text).to.equal(200);
    expect(((await masUser('bob.jones'))!['attributes'] as Json)['deactivated_at']).to.equal(null);
    const emails = await masList(`/user-emails?filter[user]=${masId}`);
    expect(emails.map((e) => (e['attributes'] as Json)['email'])).to.deep.equal(['bob.jones@example.com']);
    await waitFor(
      async () => (threepidsOf(await admin.user(`@bob.jones:${SERVER_NAME}`)).some((t) => t.address === 'bob.jones@example.com') ? true : undefined),
      20_000,
      "Synapse to show Bob's email again",
    );
  });

  it('DELETE deactivates the user in MAS and in Synapse; GET is 404', async () => {
    const deleted = await scim.delete(`/Users/${aliceId}`);
    expect(deleted.status, deleted.text).to.equal(204);
    expect(((await masUser('alice.smith'))!['attributes'] as Json)['deactivated_at']).to.be.a('string');
    await waitFor(async () => ((await admin.user(ALICE))?.['deactivated'] === true ? true : undefined), 20_000, 'Synapse to show the account deactivated');
    expect((await scim.get(`/Users/${aliceId}`)).status).to.equal(404);
  });

  it('without a scoped admin token, refuses to start and says that MAS decides admin rights by scope', async () => {
    // The admin API is checked once the appservice listener runs: the bridge gives up its port.
    await bridge!.stop();
    bridge = undefined;
    const raw = hs!.bridgeConfig({
      homeserver: { auth: 'mas' },
      mas: { url: mas().server.url, clientId: mas().server.adminClientId, clientSecret: mas().server.adminClientSecret },
      appservice: { port: hs!.appservicePort },
      scim: { port: await freePort() },
      database: { path: join(dir!, 'no-admin-token.db') },
    });
    const failure = await start(parseConfig(raw, dir!), hs!.registration).then(
      async (started) => {
        await started.stop();
        return 'started';
      },
      (error: unknown) => (error as Error).message,
    );
    expect(failure).to.include('urn:synapse:admin:*').and.include('adminApi.accessToken');
  });
});
