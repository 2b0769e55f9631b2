// Two IdPs on one bridge (issue 8): a token with scope "own" cannot touch the accounts the
// other IdP made, as Synapse's own view shows.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient } from './helpers.ts';

const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

describe('Per-IdP scoping: a contractors\' IdP cannot touch staff accounts', function () {
  let bridge: BridgeHandles;
  let staff: ScimClient;
  let contractors: ScimClient;
  let admin: AdminApi;
  const STAFF_TOKEN = 'staff-idp-token-0123456789abcdef';
  const CONTRACTORS_TOKEN = 'contractors-idp-token-0123456789';

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({
      database: { path: workFile('scoping.db') },
      scim: {
        tokens: [
          { name: 'staff', token: STAFF_TOKEN },
          { name: 'contractors', token: CONTRACTORS_TOKEN, scope: 'own' },
        ],
      },
    });
    staff = new ScimClient(bridge.scimUrl, STAFF_TOKEN);
    contractors = new ScimClient(bridge.scimUrl, CONTRACTORS_TOKEN);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });
  after(() => bridge?.stop());

  it('the staff account stays untouched on Synapse whatever the contractors\' token sends', async function () {
    const created = await staff.post('/Users', { userName: 'scoped.staff@example.com', displayName: 'Scoped Staff' });
    expect(created.status, created.text).to.equal(201);
    const id = String(created.body['id']);
    const mxid = `@scoped.staff:${SERVER_NAME}`;

    expect((await contractors.get(`/Users/${id}`)).status).to.equal(404);
    const disable = await contractors.patch(`/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(disable.status, disable.text).to.equal(404);
    expect((await contractors.delete(`/Users/${id}`)).status).to.equal(404);
    expect(await contractors.count('userName eq "scoped.staff@example.com"')).to.equal(0);

    const user = await admin.user(mxid);
    expect(user?.['locked']).to.equal(false);
    expect(user?.['deactivated']).to.equal(false);
    expect((await admin.profile(mxid))?.['displayname']).to.equal('Scoped Staff');

    // Its own users it manages as usual.
    const own = await contractors.post('/Users', { userName: 'scoped.contractor@example.com' });
    expect(own.status, own.text).to.equal(201);
    expect(await staff.count('userName eq "scoped.contractor@example.com"')).to.equal(1);
  });
});
