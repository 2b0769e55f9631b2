import { expect } from 'chai';
import { AdminConsole } from '../../src/matrix/console.ts';
import type { ReconcileRequest, ReconcileResult } from '../../src/provisioning/reconciler.ts';

const ROOM = '!admin:hs';

function setup(levels: Record<string, number> = {}, result: Partial<ReconcileResult> = {}) {
  const replies: string[] = [];
  const requests: ReconcileRequest[] = [];
  const console = new AdminConsole({
    roomId: ROOM,
    botUserId: '@bot:hs',
    operators: ['@listed:hs'],
    room: {
      powerLevelOf: async (userId) => levels[userId] ?? 0,
      reply: async (text) => void replies.push(text),
    },
    context: {
      version: '9.9.9',
      reconcile: async (request) => {
        requests.push(request);
        return { users: 3, groups: 1, differences: [], ...result };
      },
      status: async () => ({
        homeserver: { reachable: true, detail: 'Synapse 1.163.2' },
        users: 12,
        groups: 2,
        journal: { pending: 3, oldestAgeSeconds: 95 },
        membership: { joins: 40, kicks: 2, groups: 1 },
        lastRequests: [{ source: 'entra', at: '2026-12-01T08:00:00.000Z' }],
      }),
      user: async (query) =>
        query === 'alice'
          ? {
              title: '@alice:hs — userName alice',
              rows: [{ label: 'display name', idp: 'Alice', homeserver: 'Alice (ops)' }],
              differences: ['display name is "Alice (ops)" on the homeserver, "Alice" in the IdP'],
            }
          : undefined,
      group: async () => undefined,
      retry: async () => 4,
    },
  });
  const say = (sender: string, body: string, room = ROOM) =>
    console.handle({ room_id: room, sender, type: 'm.room.message', content: { msgtype: 'm.text', body } });
  return { replies, requests, say };
}

describe('The operator console in the admin room', () => {
  it('answers an operator listed in the config, and one with power level 50', async () => {
    const { replies, say } = setup({ '@mod:hs': 50 });
    await say('@listed:hs', '!scim drift');
    await say('@mod:hs', '!scim drift');
    expect(replies).to.deep.equal([
      'Checked 3 users and 1 groups: no differences',
      'Checked 3 users and 1 groups: no differences',
    ]);
  });

  it('ignores everyone else, other rooms, the bot and messages that are not commands', async () => {
    const { replies, requests, say } = setup({ '@user:hs': 0 });
    await say('@user:hs', '!scim drift');
    await say('@listed:hs', '!scim drift', '!other:hs');
    await say('@bot:hs', '!scim drift');
    await say('@listed:hs', 'hello');
    expect(replies).to.deep.equal([]);
    expect(requests).to.deep.equal([]);
  });

  it('drift changes nothing; reconcile --repair names what to set back', async () => {
    const { requests, say } = setup();
    await say('@listed:hs', '!scim drift');
    await say('@listed:hs', '!scim reconcile --repair displayName,members');
    expect(requests).to.deep.equal([{ repair: [] }, { repair: ['displayName', 'members'] }]);
  });

  it('refuses an unknown repair field, saying which ones exist', async () => {
    const { replies, requests, say } = setup();
    await say('@listed:hs', '!scim reconcile --repair password');
    expect(requests).to.deep.equal([]);
    expect(replies[0]).to.match(/not password/).and.match(/displayName/);
  });

  it('cuts a long answer with a count', async () => {
    const differences = Array.from({ length: 45 }, (_, i) => `@u${i}:hs: display name differs`);
    const { replies, say } = setup({}, { differences });
    await say('@listed:hs', '!scim drift');
    expect(replies[0]?.split('\n')).to.have.length(1 + 30 + 1);
    expect(replies[0]).to.match(/… and 15 more$/);
  });

  it('lists its commands for help or an unknown command', async () => {
    const { replies, say } = setup();
    await say('@listed:hs', '!scim');
    await say('@listed:hs', '!scim frobnicate');
    expect(replies[0]).to.match(/reconcile \[--apply \| --repair/);
    expect(replies[1]).to.match(/unknown command "frobnicate"/);
  });

  it('says the version and the status: homeserver, counts, pending work, last request per IdP', async () => {
    const { replies, say } = setup();
    await say('@listed:hs', '!scim version');
    await say('@listed:hs', '!scim status');
    expect(replies[0]).to.equal('matrix-scim-bridge 9.9.9');
    expect(replies[1]).to.include('homeserver: reachable (Synapse 1.163.2)');
    expect(replies[1]).to.include('users: 12, groups: 2');
    expect(replies[1]).to.include('journal: 3 entries pending, oldest 95 s');
    expect(replies[1]).to.include('room work pending: 40 joins and 2 kicks in 1 groups');
    expect(replies[1]).to.include('entra at 2026-12-01T08:00:00.000Z');
  });

  it('shows a user side by side with the homeserver, or says it found none', async () => {
    const { replies, say } = setup();
    await say('@listed:hs', '!scim user alice');
    await say('@listed:hs', '!scim user nobody');
    expect(replies[0]).to.include('IdP: Alice | homeserver: Alice (ops)');
    expect(replies[0]).to.include('- display name is "Alice (ops)" on the homeserver');
    expect(replies[1]).to.match(/no user "nobody"/);
  });

  it('reconcile --apply repairs every field; retry runs the journal', async () => {
    const { replies, requests, say } = setup();
    await say('@listed:hs', '!scim reconcile --apply');
    await say('@listed:hs', '!scim retry');
    expect(requests[0]?.repair).to.include.members(['displayName', 'active', 'members']);
    expect(replies[1]).to.match(/Ran 4 pending journal entries/);
  });
});
