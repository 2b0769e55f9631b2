// Start-up checks against the real homeserver: each failure stops the bridge with a
// message that says what is wrong and what to do.

import { expect } from 'chai';
import { start, StartupError } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { generateRegistration } from '../../src/config/registration.ts';
import { freePort } from '../../scripts/lib/synapse.ts';
import { homeserver, SERVER_NAME, workFile } from './fixture.ts';

async function startupFailure(run: () => Promise<unknown>): Promise<string> {
  try {
    const handles = (await run()) as { stop(): Promise<void> };
    await handles.stop();
  } catch (error) {
    expect(error).to.be.instanceOf(StartupError);
    return (error as Error).message;
  }
  throw new Error('the bridge started');
}

describe('Start-up checks', () => {
  it('says when the homeserver cannot be reached', async () => {
    const hs = homeserver();
    const port = await freePort();
    const config = parseConfig(hs.bridgeConfig({ homeserver: { url: `http://127.0.0.1:${port}` }, database: { path: workFile('startup-1.db') } }), hs.dir);
    const message = await startupFailure(() => start(config, hs.registration));
    expect(message).to.match(/is not reachable/).and.match(/check homeserver\.url/);
  });

  it('says when the homeserver has not loaded the registration', async () => {
    const hs = homeserver();
    const unknown = generateRegistration({ url: `http://127.0.0.1:${hs.appservicePort}`, domain: SERVER_NAME });
    const config = parseConfig(hs.bridgeConfig({ database: { path: workFile('startup-2.db') } }), hs.dir);
    const message = await startupFailure(() => start(config, unknown));
    expect(message).to.match(/app_service_config_files/);
  });

  it('says how to promote the bot when it is not a server admin', async () => {
    const hs = homeserver();
    const setAdmin = (admin: boolean) =>
      fetch(`${hs.synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(hs.botUserId)}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${hs.admin.accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ admin }),
      });
    expect((await setAdmin(false)).status).to.equal(200);
    try {
      const config = parseConfig(hs.bridgeConfig({ database: { path: workFile('startup-3.db') } }), hs.dir);
      const message = await startupFailure(() => start(config, hs.registration));
      expect(message).to.match(/admin API is not usable/).and.match(/promote the bot/);
    } finally {
      expect((await setAdmin(true)).status).to.equal(200);
    }
  });
});
