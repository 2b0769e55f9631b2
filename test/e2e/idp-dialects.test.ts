// Okta, the Keycloak SCIM plugins and authentik, as the design notes on IdP compatibility
// (idp-compat.md) describe them, replayed against the real bridge and Synapse. After each
// step the homeserver's own view is checked; Microsoft Entra ID is in idp-entra.test.ts.
//
// The tests of each describe run in order and share the user they create.

import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient, scimErrorProblems, threepidsOf, usersFilterPath, type HttpResult, type Json } from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';

const mxid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;

function ok(res: HttpResult, status = 200): Json {
  expect(res.status, `HTTP ${res.status}: ${res.text}`).to.equal(status);
  return res.body;
}

function expectScimError(res: HttpResult, status: number, scimType?: string): void {
  expect(scimErrorProblems(res, status, scimType), `HTTP ${res.status}: ${res.text}`).to.deep.equal([]);
}

describe('IdP dialects: Okta, Keycloak, authentik', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({ database: { path: workFile('idp-dialects.db') } });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });

  after(async function () {
    await bridge?.stop();
  });

  const login = (localpart: string, password: string) => homeserver().synapse.login(localpart, password);

  describe('Okta: lookup with paging, POST with password, GET+PUT updates, path-less deactivation, PUT reactivation', function () {
    const USER_NAME = 'Okta.Pat@okta-tenant.example';
    const LOCALPART = 'okta.pat';
    const USER = mxid(LOCALPART);
    const PASSWORD = 'Okta-Initial-Pass-42';
    const NEW_PASSWORD = 'Okta-Synced-Pass-43';
    let userId = '';

    const oktaUser = (): Json => ({
      schemas: [CORE_USER],
      userName: USER_NAME,
      name: { givenName: 'Pat', familyName: 'Okta' },
      emails: [{ primary: true, value: 'pat.okta@okta-tenant.example', type: 'work' }],
      displayName: 'Pat Okta',
      locale: 'en-US',
      externalId: '00uokta0pat0000001',
      groups: [],
      password: PASSWORD,
      active: true,
    });

    it('lookup: userName eq with startIndex=1&count=100 answers 200 with an empty page', async function () {
      const body = ok(await scim.get(usersFilterPath(`userName eq "${USER_NAME}"`, '&startIndex=1&count=100')));
      expect(body['schemas']).to.deep.equal([LIST_RESPONSE]);
      expect(body['totalResults']).to.equal(0);
      expect(body['startIndex']).to.equal(1);
      if ('Resources' in body) expect(body['Resources']).to.deep.equal([]);
    });

    it('POST with externalId, groups: [] and a password: 201, and the password logs in on Synapse', async function () {
      const res = await scim.post('/Users', oktaUser());
      const body = ok(res, 201);
      userId = String(body['id']);
      expect(body['userName']).to.equal(USER_NAME);
      expect(body['externalId']).to.equal('00uokta0pat0000001');
      expect(body).to.not.have.property('password');
      expect(res.headers.get('location')).to.equal(`${bridge.scimUrl}/Users/${userId}`);

      const user = await admin.user(USER);
      expect(user, `Synapse has no ${USER}`).to.not.equal(undefined);
      expect(user?.['displayname']).to.equal('Pat Okta');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'pat.okta@okta-tenant.example' }]);
      expect(user?.['locked']).to.equal(false);
      const session = await login(LOCALPART, PASSWORD);
      expect(session.status, JSON.stringify(session.body)).to.equal(200);
      expect(session.body['user_id']).to.equal(USER);
    });

    it('the same POST again answers 409 uniqueness and changes nothing', async function () {
      expectScimError(await scim.post('/Users', oktaUser()), 409, 'uniqueness');
      expect((await admin.user(USER))?.['displayname']).to.equal('Pat Okta');
      expect(await scim.count(`userName eq "${USER_NAME}"`)).to.equal(1);
    });

    it('a filter with the upper-cased userName finds the user, whose userName comes back in its original case', async function () {
      const body = ok(await scim.get(usersFilterPath(`userName eq "${USER_NAME.toUpperCase()}"`, '&startIndex=1&count=100')));
      expect(body['totalResults']).to.equal(1);
      const found = (body['Resources'] as Json[])[0];
      expect(found?.['id']).to.equal(userId);
      expect(found?.['userName']).to.equal(USER_NAME);
    });

    it('profile update, GET then PUT of the full body: Synapse takes the new display name and email; the password stays', async function () {
      const current = ok(await scim.get(`/Users/${userId}`));
      const updated: Json = {
        ...current,
        name: { givenName: 'Patricia', familyName: 'Okta' },
        displayName: 'Patricia Okta',
        emails: [{ primary: true, value: 'patricia.okta@okta-tenant.example', type: 'work' }],
      };
      const body = ok(await scim.put(`/Users/${userId}`, updated));
      expect(body['id']).to.equal(userId);
      expect(body['displayName']).to.equal('Patricia Okta');
      expect(body['userName']).to.equal(USER_NAME);

      const user = await admin.user(USER);
      expect(user?.['displayname']).to.equal('Patricia Okta');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'patricia.okta@okta-tenant.example' }]);
      expect((await admin.profile(USER))?.['displayname']).to.equal('Patricia Okta');
      const session = await login(LOCALPART, PASSWORD);
      expect(session.status, `a PUT without password keeps it: ${JSON.stringify(session.body)}`).to.equal(200);
    });

    it('deactivation, a path-less replace {"active": false}: Synapse locks the account; GET still shows it', async function () {
      const body = ok(
        await scim.patch(`/Users/${userId}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] }),
      );
      expect(body['active']).to.equal(false);
      const user = await admin.user(USER);
      expect(user?.['locked']).to.equal(true);
      expect(user?.['deactivated']).to.equal(false);
      const session = await login(LOCALPART, PASSWORD);
      expect(session.status).to.equal(401);
      expect(session.body['errcode']).to.equal('M_USER_LOCKED');
      expect(ok(await scim.get(`/Users/${userId}`))['active']).to.equal(false);
    });

    it('reactivation by PUT with active true: Synapse unlocks the account and the same password works', async function () {
      const current = ok(await scim.get(`/Users/${userId}`));
      const body = ok(await scim.put(`/Users/${userId}`, { ...current, active: true }));
      expect(body['active']).to.equal(true);
      const user = await admin.user(USER);
      expect(user?.['locked']).to.equal(false);
      expect(user?.['displayname']).to.equal('Patricia Okta');
      const session = await login(LOCALPART, PASSWORD);
      expect(session.status, JSON.stringify(session.body)).to.equal(200);
    });

    it('password sync, a PUT carrying the new password: the new one logs in, the old one no longer does', async function () {
      const current = ok(await scim.get(`/Users/${userId}`));
      const body = ok(await scim.put(`/Users/${userId}`, { ...current, password: NEW_PASSWORD }));
      expect(body).to.not.have.property('password');
      const fresh = await login(LOCALPART, NEW_PASSWORD);
      expect(fresh.status, JSON.stringify(fresh.body)).to.equal(200);
      expect((await login(LOCALPART, PASSWORD)).status).to.equal(403);
    });

    it('without a bearer token: 401 with a SCIM error body', async function () {
      expectScimError(await scim.get(usersFilterPath(`userName eq "${USER_NAME}"`, '&startIndex=1&count=100'), { token: null }), 401);
    });
  });

  describe('Keycloak SCIM plugin: POST without lookup (noisy body), PUT, PATCH "active": "true", DELETE', function () {
    const USER_NAME = 'kc.robin';
    const USER = mxid('kc.robin');
    const KEYCLOAK_ID = randomUUID();
    let userId = '';

    /** The plugin's representation: read-only, empty, null and unknown attributes included. */
    const keycloakUser = (displayName: string, email: string, active: boolean): Json => ({
      schemas: [CORE_USER, ENTERPRISE],
      externalId: KEYCLOAK_ID,
      userName: USER_NAME,
      active,
      displayName,
      name: { givenName: displayName.split(' ')[0], familyName: 'Robin', middleName: null, honorificPrefix: '' },
      emails: [{ value: email, primary: true, type: null }],
      phoneNumbers: [],
      addresses: null,
      nickName: null,
      title: '',
      groups: [{ value: 'b4f7a0f2-kc-group', display: 'staff' }],
      roles: [],
      entitlements: [],
      x509Certificates: null,
      keycloakAttributes: { department: ['Engineering'] },
      'urn:keycloak:params:scim:schemas:extension:custom:2.0:User': { realm: 'corp', federationLink: null },
      [ENTERPRISE]: { department: 'Engineering', manager: null },
    });

    it('POST straight away: 201; unknown, read-only, empty and null attributes are ignored', async function () {
      const res = await scim.post('/Users', keycloakUser('Kim Robin', 'kim.robin@keycloak.example', true));
      const body = ok(res, 201);
      userId = String(body['id']);
      expect(body['userName']).to.equal(USER_NAME);
      expect(body['externalId']).to.equal(KEYCLOAK_ID);
      expect(body['displayName']).to.equal('Kim Robin');
      expect(body).to.not.have.property('keycloakAttributes');
      expect(body).to.not.have.property('urn:keycloak:params:scim:schemas:extension:custom:2.0:User');
      const groups = Array.isArray(body['groups']) ? (body['groups'] as Json[]) : [];
      expect(groups.map((g) => g['value']), 'groups is read-only: not taken from the body').to.not.include('b4f7a0f2-kc-group');
      expect(body[ENTERPRISE]).to.deep.equal({ department: 'Engineering' });

      const user = await admin.user(USER);
      expect(user, `Synapse has no ${USER}`).to.not.equal(undefined);
      expect(user?.['displayname']).to.equal('Kim Robin');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'kim.robin@keycloak.example' }]);
      expect(user?.['locked']).to.equal(false);
    });

    it('update with PUT: Synapse takes the new display name and email', async function () {
      const body = ok(await scim.put(`/Users/${userId}`, keycloakUser('Kimberly Robin', 'kimberly.robin@keycloak.example', true)));
      expect(body['displayName']).to.equal('Kimberly Robin');
      const user = await admin.user(USER);
      expect(user?.['displayname']).to.equal('Kimberly Robin');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'kimberly.robin@keycloak.example' }]);
    });

    it('disable with PUT active false, then PATCH "active": "true" (a string): locked, then unlocked', async function () {
      const disabled = ok(await scim.put(`/Users/${userId}`, keycloakUser('Kimberly Robin', 'kimberly.robin@keycloak.example', false)));
      expect(disabled['active']).to.equal(false);
      expect((await admin.user(USER))?.['locked']).to.equal(true);

      const body = ok(
        await scim.patch(`/Users/${userId}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: 'true' } }] }),
      );
      expect(body['active']).to.equal(true);
      const user = await admin.user(USER);
      expect(user?.['locked']).to.equal(false);
      expect(user?.['deactivated']).to.equal(false);
    });

    it('DELETE: 204 and the account is deactivated', async function () {
      const res = await scim.delete(`/Users/${userId}`);
      expect(res.status, res.text).to.equal(204);
      expect((await admin.user(USER))?.['deactivated']).to.equal(true);
      expectScimError(await scim.get(`/Users/${userId}`), 404);
    });
  });

  describe('authentik: ServiceProviderConfig, POST, PUT, 404 on a stale id then re-POST', function () {
    const SAM = mxid('ak.sam');
    const KIM = mxid('ak.kim');
    let samId = '';
    let kimId = '';

    const authentikUser = (userName: string, given: string, family: string, email: string, uid: string): Json => ({
      schemas: [CORE_USER],
      userName,
      name: { formatted: `${given} ${family}`, givenName: given, familyName: family },
      displayName: `${given} ${family}`,
      active: true,
      emails: [{ value: email, type: 'other', primary: true }],
      externalId: uid,
    });

    it('reads /ServiceProviderConfig: bulk.maxOperations is an integer (its PATCH chunk size)', async function () {
      const body = ok(await scim.get('/ServiceProviderConfig'));
      const bulk = body['bulk'] as Json | undefined;
      expect(bulk, 'bulk').to.be.an('object');
      expect(Number.isInteger(bulk?.['maxOperations']), `maxOperations ${JSON.stringify(bulk?.['maxOperations'])}`).to.equal(true);
      expect(Number.isInteger(bulk?.['maxPayloadSize'])).to.equal(true);
      expect((body['patch'] as Json | undefined)?.['supported']).to.equal(true);
      expect((body['filter'] as Json | undefined)?.['supported']).to.equal(true);
    });

    it('POST: 201 and Synapse holds the account', async function () {
      const body = ok(await scim.post('/Users', authentikUser('ak.sam', 'Sam', 'Akers', 'sam.akers@authentik.example', 'ak-uid-sam')), 201);
      samId = String(body['id']);
      const user = await admin.user(SAM);
      expect(user, `Synapse has no ${SAM}`).to.not.equal(undefined);
      expect(user?.['displayname']).to.equal('Sam Akers');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'sam.akers@authentik.example' }]);
    });

    it('PUT update (with the id in the body): Synapse takes the new display name and email', async function () {
      const body = ok(
        await scim.put(`/Users/${samId}`, {
          ...authentikUser('ak.sam', 'Samuel', 'Akers', 'samuel.akers@authentik.example', 'ak-uid-sam'),
          id: samId,
        }),
      );
      expect(body['displayName']).to.equal('Samuel Akers');
      const user = await admin.user(SAM);
      expect(user?.['displayname']).to.equal('Samuel Akers');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'samuel.akers@authentik.example' }]);
    });

    it('PUT to an id the bridge does not know: 404 SCIM error, and nothing is created', async function () {
      const staleId = randomUUID();
      const res = await scim.put(`/Users/${staleId}`, {
        ...authentikUser('ak.kim', 'Kim', 'Akers', 'kim.akers@authentik.example', 'ak-uid-kim'),
        id: staleId,
      });
      expectScimError(res, 404);
      expect(await admin.user(KIM)).to.equal(undefined);
      expect(await scim.count('userName eq "ak.kim"')).to.equal(0);
    });

    it('the re-POST that follows works, and so does the next PUT under the new id', async function () {
      const body = ok(await scim.post('/Users', authentikUser('ak.kim', 'Kim', 'Akers', 'kim.akers@authentik.example', 'ak-uid-kim')), 201);
      kimId = String(body['id']);
      expect((await admin.user(KIM))?.['displayname']).to.equal('Kim Akers');
      const renamed = authentikUser('ak.kim', 'Kim', 'Akers-Ng', 'kim.akers@authentik.example', 'ak-uid-kim');
      ok(await scim.put(`/Users/${kimId}`, { ...renamed, id: kimId }));
      const user = await admin.user(KIM);
      expect(user?.['displayname']).to.equal('Kim Akers-Ng');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'kim.akers@authentik.example' }]);
    });
  });
});
