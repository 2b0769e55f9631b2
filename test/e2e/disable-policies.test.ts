// provisioning.onDisable: what active:false does on the homeserver, for the two policies
// besides the default lock (tested in users.test.ts): suspend and deactivate.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient } from './helpers.ts';

const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const setActive = (active: boolean) => ({ schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: active }] });

for (const policy of ['suspend', 'deactivate'] as const) {
  describe(`onDisable: ${policy}`, function () {
    let bridge: BridgeHandles;
    let scim: ScimClient;
    let admin: AdminApi;
    const userName = `policy.${policy}@example.com`;
    const matrixId = `@policy.${policy}:${SERVER_NAME}`;
    const password = 'Policy-Password-1';
    let id = '';

    before(async function () {
      const hs = homeserver();
      bridge = await startBridge({ database: { path: workFile(`policy-${policy}.db`) }, provisioning: { onDisable: policy } });
      scim = new ScimClient(bridge.scimUrl, hs.scimToken);
      admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
      const created = await scim.post('/Users', { userName, displayName: `Policy ${policy}`, password });
      expect(created.status, created.text).to.equal(201);
      id = String(created.body['id']);
    });
    after(() => bridge?.stop());

    it(`active:false ${policy === 'suspend' ? 'suspends' : 'deactivates'} the account`, async function () {
      const reply = await scim.patch(`/Users/${id}`, setActive(false));
      expect(reply.status, reply.text).to.equal(200);
      const user = await admin.user(matrixId);
      if (policy === 'suspend') {
        expect(user?.['suspended']).to.equal(true);
        expect(user?.['deactivated']).to.equal(false);
      } else {
        expect(user?.['deactivated']).to.equal(true);
      }
      expect((await scim.get(`/Users/${id}`)).body['active']).to.equal(false);
    });

    it('active:true undoes it', async function () {
      const reply = await scim.patch(`/Users/${id}`, setActive(true));
      expect(reply.status, reply.text).to.equal(200);
      const user = await admin.user(matrixId);
      expect(user?.['suspended']).to.equal(false);
      expect(user?.['deactivated']).to.equal(false);
    });
  });
}
