// Microsoft Entra ID's provisioning service, as the design notes on IdP compatibility
// (idp-compat.md) describe it, replayed against the real bridge and Synapse: the test
// connection, the lookup-then-POST/PATCH cycle, its capitalised one-operation-per-attribute
// PATCH, string booleans, unquoted filters, UPN renames, the hard delete; and the path-less
// PATCH of the `aadOptscim062020` compliant mode. After each step the homeserver's own
// view is checked. Okta, Keycloak and authentik are in idp-dialects.test.ts.
//
// The tests of each describe run in order and share the users they create.

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

interface EntraExtra {
  externalId: string;
  title: string;
  department: string;
  manager?: string;
  /** false: the user has no mail in Entra, and `emails` is left out. */
  mail?: false;
  active?: boolean;
}

/** A User body as Entra's default mode POSTs it. */
function entraUser(upn: string, given: string, family: string, extra: EntraExtra): Json {
  return {
    schemas: [CORE_USER, ENTERPRISE],
    externalId: extra.externalId,
    userName: upn,
    active: extra.active ?? true,
    displayName: `${given} ${family}`,
    ...(extra.mail === false ? {} : { emails: [{ primary: true, type: 'work', value: upn.toLowerCase() }] }),
    name: { formatted: `${given} ${family}`, familyName: family, givenName: given },
    title: extra.title,
    [ENTERPRISE]: {
      department: extra.department,
      ...(extra.manager ? { manager: { value: extra.manager } } : {}),
    },
  };
}

function ok(res: HttpResult, status = 200): Json {
  expect(res.status, `HTTP ${res.status}: ${res.text}`).to.equal(status);
  return res.body;
}

function resources(res: HttpResult): Json[] {
  const list = res.body['Resources'];
  return Array.isArray(list) ? (list as Json[]) : [];
}

/** Entra's lookup: `GET /Users?filter=<attr> eq "<value>"`, and the ids it finds. */
async function lookup(scim: ScimClient, filter: string): Promise<{ total: number; ids: string[]; found: Json[] }> {
  const res = await scim.get(usersFilterPath(filter));
  const body = ok(res);
  expect(body['schemas']).to.deep.equal([LIST_RESPONSE]);
  expect(body['totalResults']).to.be.a('number');
  const found = resources(res);
  return { total: Number(body['totalResults']), ids: found.map((r) => String(r['id'])), found };
}

describe('IdP dialects: Microsoft Entra ID', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({ database: { path: workFile('idp-entra.db') } });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });

  after(async function () {
    await bridge?.stop();
  });

  describe('default mode: test connection, lookup/POST/PATCH cycles, disable, hard delete', function () {
    const UPN = 'Entra.JYoung@contoso.example';
    const USER = mxid('entra.jyoung');
    const EXTERNAL_ID = 'entra-jyoung';
    let userId = '';
    let firstManagerId = '';
    let newManagerId = '';

    it('test connection: a filter on a random GUID answers 200 with an empty ListResponse', async function () {
      const res = await scim.get(usersFilterPath(`userName eq "${randomUUID()}"`));
      const body = ok(res);
      expect(res.headers.get('content-type')).to.match(/^application\/scim\+json/);
      expect(body['schemas']).to.deep.equal([LIST_RESPONSE]);
      expect(body['totalResults']).to.equal(0);
      if ('Resources' in body) expect(body['Resources']).to.deep.equal([]);
    });

    it('first cycle: not found by the filter, then POST; Synapse holds the accounts', async function () {
      // The managers first: Entra provisions them like anyone else. Lee has no mail yet.
      for (const [upn, given, family] of [
        ['Entra.DManager@contoso.example', 'Dana', 'Manager'],
        ['Entra.LLead@contoso.example', 'Lee', 'Lead'],
      ] as const) {
        expect((await lookup(scim, `userName eq "${upn}"`)).total, upn).to.equal(0);
        const extra: EntraExtra = { externalId: upn.split('@')[0] ?? upn, title: 'Manager', department: 'Operations' };
        const created = ok(await scim.post('/Users', entraUser(upn, given, family, given === 'Lee' ? { ...extra, mail: false } : extra)), 201);
        if (given === 'Dana') firstManagerId = String(created['id']);
        else newManagerId = String(created['id']);
      }
      expect(firstManagerId).to.not.equal('');
      expect(newManagerId).to.not.equal('');

      expect((await lookup(scim, `userName eq "${UPN}"`)).total).to.equal(0);
      const res = await scim.post(
        '/Users',
        entraUser(UPN, 'Jordan', 'Young', { externalId: EXTERNAL_ID, title: 'Tour Guide', department: 'Tour Operations', manager: firstManagerId }),
      );
      const body = ok(res, 201);
      userId = String(body['id']);
      expect(userId).to.not.equal('');
      expect(res.headers.get('location')).to.equal(`${bridge.scimUrl}/Users/${userId}`);
      expect(body['userName']).to.equal(UPN);
      expect(body['externalId']).to.equal(EXTERNAL_ID);
      expect(body['active']).to.equal(true);
      expect(body['title']).to.equal('Tour Guide');
      expect(body['name']).to.include({ givenName: 'Jordan', familyName: 'Young' });
      expect(body['schemas']).to.include.members([CORE_USER, ENTERPRISE]);
      expect(body[ENTERPRISE]).to.deep.include({ department: 'Tour Operations' });
      expect((body[ENTERPRISE] as Json)['manager']).to.include({ value: firstManagerId });

      const user = await admin.user(USER);
      expect(user, `Synapse has no ${USER}`).to.not.equal(undefined);
      expect(user?.['displayname']).to.equal('Jordan Young');
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'entra.jyoung@contoso.example' }]);
      expect(user?.['locked']).to.equal(false);
      expect(user?.['deactivated']).to.equal(false);
      expect((await admin.profile(USER))?.['displayname']).to.equal('Jordan Young');
      expect((await admin.user(mxid('entra.dmanager')))?.['displayname']).to.equal('Dana Manager');
    });

    it('next cycle: the filter finds the user under the id Entra kept', async function () {
      const found = await lookup(scim, `userName eq "${UPN}"`);
      expect(found.total).to.equal(1);
      expect(found.ids).to.deep.equal([userId]);
      expect(found.found[0]?.['userName']).to.equal(UPN);
    });

    it('PATCH with capitalised ops, one per attribute: Synapse takes the new display name and email', async function () {
      const res = await scim.patch(`/Users/${userId}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: 'Replace', path: 'displayName', value: 'Jordan Young-Smith' },
          { op: 'Replace', path: 'emails[type eq "work"].value', value: 'Jordan.Young@Contoso-New.example' },
          { op: 'Add', path: 'name.familyName', value: 'Young-Smith' },
          { op: 'Replace', path: `${ENTERPRISE}:department`, value: 'Research' },
          { op: 'Replace', path: `${ENTERPRISE}:employeeNumber`, value: '701984' },
          { op: 'Add', path: `${ENTERPRISE}:manager`, value: newManagerId },
        ],
      });
      const body = ok(res);
      expect(body['displayName']).to.equal('Jordan Young-Smith');
      expect(body['emails']).to.deep.equal([{ primary: true, type: 'work', value: 'Jordan.Young@Contoso-New.example' }]);
      expect(body['name']).to.include({ givenName: 'Jordan', familyName: 'Young-Smith' });
      expect(body['title']).to.equal('Tour Guide');
      const enterprise = body[ENTERPRISE] as Json;
      expect(enterprise).to.deep.include({ department: 'Research', employeeNumber: '701984' });
      expect(enterprise['manager'], 'a bare-string manager is the id of the manager').to.include({ value: newManagerId });

      const user = await admin.user(USER);
      expect(user?.['displayname']).to.equal('Jordan Young-Smith');
      expect(threepidsOf(user), 'the old work email is replaced, not kept').to.deep.equal([
        { medium: 'email', address: 'jordan.young@contoso-new.example' },
      ]);
      expect(user?.['locked']).to.equal(false);
      expect((await admin.profile(USER))?.['displayname']).to.equal('Jordan Young-Smith');

      const again = ok(await scim.get(`/Users/${userId}`));
      expect(again['displayName']).to.equal('Jordan Young-Smith');
      expect((again[ENTERPRISE] as Json)['manager']).to.include({ value: newManagerId });
    });

    it('mail set later: Add emails[type eq "work"].value on a user without emails creates the entry, and Synapse the threepid', async function () {
      const body = ok(
        await scim.patch(`/Users/${newManagerId}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: 'Add', path: 'emails[type eq "work"].value', value: 'Lee.Lead@contoso.example' }],
        }),
      );
      expect(body['emails']).to.deep.equal([{ type: 'work', value: 'Lee.Lead@contoso.example' }]);
      const user = await admin.user(mxid('entra.llead'));
      expect(threepidsOf(user)).to.deep.equal([{ medium: 'email', address: 'lee.lead@contoso.example' }]);
    });

    it('UPN rename: Replace userName keeps the id and the Matrix account; the next cycle finds the new UPN only', async function () {
      const before = await admin.userCount();
      const body = ok(
        await scim.patch(`/Users/${newManagerId}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: 'Replace', path: 'userName', value: 'Entra.Lee.Lead@contoso.example' }],
        }),
      );
      expect(body['id']).to.equal(newManagerId);
      expect(body['userName']).to.equal('Entra.Lee.Lead@contoso.example');
      expect((await lookup(scim, 'userName eq "Entra.Lee.Lead@contoso.example"')).ids).to.deep.equal([newManagerId]);
      expect((await lookup(scim, 'userName eq "Entra.LLead@contoso.example"')).total).to.equal(0);
      expect(await admin.userCount(), 'no new account').to.equal(before);
      expect((await admin.user(mxid('entra.llead')))?.['displayname']).to.equal('Lee Lead');
    });

    it('a manager id that resolves to no user never fails the request', async function () {
      const body = ok(
        await scim.patch(`/Users/${firstManagerId}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: 'Add', path: `${ENTERPRISE}:manager`, value: randomUUID() }],
        }),
      );
      expect(body['id']).to.equal(firstManagerId);
      expect((await admin.user(mxid('entra.dmanager')))?.['displayname']).to.equal('Dana Manager');
    });

    it('disable with "active": "False" (a string) locks the account in Synapse', async function () {
      const body = ok(
        await scim.patch(`/Users/${userId}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
        }),
      );
      expect(body['active']).to.equal(false);
      const user = await admin.user(USER);
      expect(user?.['locked']).to.equal(true);
      expect(user?.['deactivated']).to.equal(false);
      expect(user?.['displayname']).to.equal('Jordan Young-Smith');
    });

    it('the disabled user stays visible to the next cycle: by userName, and by an unquoted externalId filter', async function () {
      const byName = await lookup(scim, `userName eq "${UPN}"`);
      expect(byName.ids).to.deep.equal([userId]);
      expect(byName.found[0]?.['active']).to.equal(false);
      const unquoted = await lookup(scim, `externalId eq ${EXTERNAL_ID}`);
      expect(unquoted.total).to.equal(1);
      expect(unquoted.ids).to.deep.equal([userId]);
      const byActive = await lookup(scim, `userName eq "${UPN}" and active eq "False"`);
      expect(byActive.ids, 'a string boolean in a filter').to.deep.equal([userId]);
    });

    it('enable with "active": "True" unlocks the account', async function () {
      const body = ok(
        await scim.patch(`/Users/${userId}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: 'Replace', path: 'active', value: 'True' }],
        }),
      );
      expect(body['active']).to.equal(true);
      const user = await admin.user(USER);
      expect(user?.['locked']).to.equal(false);
      expect(user?.['deactivated']).to.equal(false);
    });

    it('hard delete: DELETE answers 204 and deactivates the account; the user is gone from SCIM', async function () {
      const res = await scim.delete(`/Users/${userId}`);
      expect(res.status, res.text).to.equal(204);
      const user = await admin.user(USER);
      expect(user?.['deactivated']).to.equal(true);
      expect(scimErrorProblems(await scim.get(`/Users/${userId}`), 404)).to.deep.equal([]);
      expect((await lookup(scim, `userName eq "${UPN}"`)).total).to.equal(0);
      expect((await lookup(scim, `externalId eq ${EXTERNAL_ID}`)).total).to.equal(0);
    });

    it('a user already disabled in Entra is POSTed with active false: Synapse creates the account locked', async function () {
      const upn = 'Entra.DOff@contoso.example';
      expect((await lookup(scim, `userName eq "${upn}"`)).total).to.equal(0);
      const body = ok(
        await scim.post('/Users', entraUser(upn, 'Drew', 'Off', { externalId: 'entra-doff', title: 'Intern', department: 'Sales', active: false })),
        201,
      );
      expect(body['active']).to.equal(false);
      const user = await admin.user(mxid('entra.doff'));
      expect(user, 'Synapse has the account').to.not.equal(undefined);
      expect(user?.['displayname']).to.equal('Drew Off');
      expect(user?.['locked']).to.equal(true);
      expect(user?.['deactivated']).to.equal(false);
    });
  });

  describe('compliant mode (aadOptscim062020): one path-less replace with dotted and URN keys', function () {
    const UPN = 'Entra.CJordan@contoso.example';
    const USER = mxid('entra.cjordan');
    let userId = '';

    it('POST as in default mode', async function () {
      expect((await lookup(scim, `userName eq "${UPN}"`)).total).to.equal(0);
      const body = ok(
        await scim.post('/Users', entraUser(UPN, 'Casey', 'Jordan', { externalId: 'entra-cjordan', title: 'Analyst', department: 'Finance' })),
        201,
      );
      userId = String(body['id']);
      const user = await admin.user(USER);
      expect(user?.['displayname']).to.equal('Casey Jordan');
      expect(user?.['locked']).to.equal(false);
    });

    it('path-less replace {displayName, name.givenName, URN department, active:false}: Synapse shows the name and the lock', async function () {
      const body = ok(
        await scim.patch(`/Users/${userId}`, {
          schemas: [PATCH_OP],
          Operations: [
            {
              op: 'replace',
              value: {
                displayName: 'Casey Jordan-Lee',
                'name.givenName': 'Cassie',
                [`${ENTERPRISE}:department`]: 'Legal',
                active: false,
              },
            },
          ],
        }),
      );
      expect(body['displayName']).to.equal('Casey Jordan-Lee');
      expect(body['name']).to.include({ givenName: 'Cassie', familyName: 'Jordan' });
      expect(body[ENTERPRISE]).to.deep.include({ department: 'Legal' });
      expect(body['active']).to.equal(false);
      expect(body, 'dotted keys are paths, not attribute names').to.not.have.property('name.givenName');
      expect(body, 'URN keys are paths, not attribute names').to.not.have.property(`${ENTERPRISE}:department`);

      const user = await admin.user(USER);
      expect(user?.['displayname']).to.equal('Casey Jordan-Lee');
      expect(user?.['locked']).to.equal(true);
      expect(user?.['deactivated']).to.equal(false);
      expect((await admin.profile(USER))?.['displayname']).to.equal('Casey Jordan-Lee');
    });

    it('path-less replace {active: true} unlocks it again', async function () {
      const body = ok(
        await scim.patch(`/Users/${userId}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: true } }] }),
      );
      expect(body['active']).to.equal(true);
      expect((await admin.user(USER))?.['locked']).to.equal(false);
    });
  });
});
