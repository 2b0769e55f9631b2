// The operator console in the admin room (issue 8), driven by a real Matrix client: the
// server admin (an operator) sends commands and reads the bot's answers.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, SERVER_NAME, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient, roomNotices, waitFor } from './helpers.ts';

describe('The console: status, user, group, retry', function () {
  let bridge: BridgeHandles;
  let scim: ScimClient;
  let admin: AdminApi;
  let txn = 0;

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({ database: { path: workFile('console.db') } });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    await admin.join(bridge.adminRoomId);
  });
  after(() => bridge?.stop());

  /** Sends a command as the admin and returns the bot's first answer posted after it. */
  async function ask(command: string, answer: RegExp): Promise<string> {
    const room = encodeURIComponent(bridge.adminRoomId);
    const sent = await admin.request('PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/console-e2e-${Date.now()}-${txn++}`, {
      msgtype: 'm.text',
      body: command,
    });
    expect(sent.status, sent.text).to.equal(200);
    return waitFor(
      async () => (await roomNotices(admin, bridge.adminRoomId)).find((n) => n.sender === bridge.botUserId && answer.test(n.body))?.body,
      30_000,
      `the answer to ${command}`,
    );
  }

  it('announces its version when it starts', async function () {
    const hello = await waitFor(
      async () => (await roomNotices(admin, bridge.adminRoomId)).find((n) => n.sender === bridge.botUserId && /started/.test(n.body))?.body,
      30_000,
      'the start notice',
    );
    expect(hello).to.match(/matrix-scim-bridge \d+\.\d+\.\d+ started/);
  });

  it('"!scim status" names the homeserver, the counts and the last request of the IdP', async function () {
    const created = await scim.post('/Users', { userName: 'Console.Person@example.com', displayName: 'Console Person' });
    expect(created.status, created.text).to.equal(201);
    const status = await ask('!scim status', /^matrix-scim-bridge .*\n- homeserver:/);
    expect(status).to.match(/homeserver: reachable \(Synapse 1\.\d+/);
    expect(status).to.match(/users: 1, groups: 0/);
    expect(status).to.match(/last SCIM request: test-idp at 20\d\d-/);
  });

  it('"!scim user <localpart>" shows the IdP\'s values beside Synapse\'s, with the drift', async function () {
    const mxid = `@console.person:${SERVER_NAME}`;
    const put = await admin.request('PUT', `/_synapse/admin/v2/users/${encodeURIComponent(mxid)}`, { displayname: 'Renamed in Synapse' });
    expect(put.status, put.text).to.equal(200);
    const view = await ask('!scim user console.person', new RegExp(`^${mxid.replace(/[.]/g, '\\.')} — userName`));
    expect(view).to.include('IdP: Console Person | homeserver: Renamed in Synapse');
    expect(view).to.include('display name is "Renamed in Synapse" on the homeserver, "Console Person" in the IdP');
  });

  it('"!scim group" and "!scim retry" answer', async function () {
    const group = await scim.post('/Groups', { displayName: 'Console Group' });
    expect(group.status, group.text).to.equal(201);
    await bridge.runJournal();
    const view = await ask('!scim group Console Group', /^group "Console Group"/);
    expect(view).to.match(/room !/);
    await ask('!scim retry', /^(Nothing was pending|Ran \d+ pending)/);
  });
});
