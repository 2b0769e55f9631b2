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
      reconcile: async (request) => {
        requests.push(request);
        return { users: 3, groups: 1, differences: [], ...result };
      },
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
    expect(replies[0]).to.match(/reconcile \[--repair/);
    expect(replies[1]).to.match(/unknown command "frobnicate"/);
  });
});
