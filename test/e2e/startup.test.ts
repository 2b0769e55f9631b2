// Start-up checks against the real homeserver: each failure stops the bridge with a
// message that says what is wrong and what to do.

import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
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

  it('says when homeserver.auth is mas but the homeserver keeps its own accounts', async () => {
    const hs = homeserver();
    const config = parseConfig(
      hs.bridgeConfig({
        homeserver: { auth: 'mas' },
        mas: { url: 'http://127.0.0.1:9/', clientId: '01JZ8SCMBR1DGE0ADM1NC11ENT', clientSecret: 'not-used-here' },
        database: { path: workFile('startup-mas.db') },
      }),
      hs.dir,
    );
    const message = await startupFailure(() => start(config, hs.registration));
    expect(message).to.match(/does not delegate its accounts to MAS/).and.match(/homeserver\.auth: synapse/);
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

  it('names homeserver.domain when it is not the homeserver\'s server name (the sample\'s example.org)', async () => {
    const hs = homeserver();
    const config = parseConfig(
      hs.bridgeConfig({ homeserver: { domain: 'example.org' }, database: { path: workFile('startup-domain.db') } }),
      hs.dir,
    );
    const message = await startupFailure(() => start(config, hs.registration));
    expect(message).to.match(new RegExp(`^homeserver\\.domain is example\\.org but the homeserver at \\S+ is ${SERVER_NAME.replace('.', '\\.')}`));
    expect(message).to.match(/set homeserver\.domain: e2e\.localhost/).and.not.match(/adminApi/);
  });

  it('says whose adminApi.accessToken it is and how to promote them when they are no server admin', async () => {
    const hs = homeserver();
    const plain = await hs.synapse.registerUser('not-an-admin', 'a-password-for-this-test', false);
    const config = parseConfig(
      hs.bridgeConfig({ adminApi: { accessToken: plain.accessToken }, database: { path: workFile('startup-admin-token.db') } }),
      hs.dir,
    );
    const message = await startupFailure(() => start(config, hs.registration));
    expect(message).to.match(/admin API is not usable/);
    expect(message).to.include(`adminApi.accessToken belongs to ${plain.userId}, who is not a server admin`);
    expect(message).to.include(`PUT /_synapse/admin/v2/users/${plain.userId} {"admin": true}`);
    expect(message).to.not.include(plain.accessToken);
  });

  it('finds an appservice.port that is not the registration url\'s before any network call', async () => {
    const hs = homeserver();
    const deadHomeserver = `http://127.0.0.1:${await freePort()}`;
    const config = parseConfig(
      hs.bridgeConfig({
        homeserver: { url: deadHomeserver },
        appservice: { port: hs.appservicePort + 1 },
        database: { path: workFile('startup-port.db') },
      }),
      hs.dir,
    );
    const message = await startupFailure(() => start(config, hs.registration));
    expect(message).to.include(`is port ${hs.appservicePort} but appservice.port is ${hs.appservicePort + 1}`);
    expect(message).to.not.match(/not reachable/);
  });

  it('says at once that the homeserver sends another hs_token than the registration\'s', async () => {
    const hs = homeserver();
    const config = parseConfig(hs.bridgeConfig({ database: { path: workFile('startup-hs-token.db') } }), hs.dir);
    const edited = { ...hs.registration, hs_token: `${hs.registration.hs_token}-edited` };
    const began = Date.now();
    const message = await startupFailure(() => start(config, edited));
    expect(message).to.match(/appservice ping failed/).and.match(/hs_token/).and.match(/restart the homeserver/);
    expect(message).to.not.include(hs.registration.hs_token);
    // Before, the refused ping was retried as transient for 5-6 s; it is final now.
    expect(Date.now() - began).to.be.below(4_000);
  });

  it('names scim.port when the SCIM port is taken', async () => {
    const hs = homeserver();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
    try {
      const busy = (squatter.address() as AddressInfo).port;
      const config = parseConfig(hs.bridgeConfig({ scim: { port: busy }, database: { path: workFile('startup-scim-port.db') } }), hs.dir);
      const message = await startupFailure(() => start(config, hs.registration));
      expect(message).to.include(`the SCIM listener cannot start on 127.0.0.1:${busy}`);
      expect(message).to.match(/EADDRINUSE/).and.match(/choose a free scim\.port/).and.not.match(/\n\s+at /);
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });

  it('refuses a second bridge on the same database, and lets one start once the first stopped', async () => {
    const hs = homeserver();
    const config = parseConfig(hs.bridgeConfig({ database: { path: workFile('startup-shared.db') } }), hs.dir);
    const first = await start(config, hs.registration);
    try {
      const second = parseConfig(hs.bridgeConfig({ scim: { port: 0 }, database: { path: workFile('startup-shared.db') } }), hs.dir);
      const message = await startupFailure(() => start(second, hs.registration));
      expect(message).to.match(/another bridge is using \S+startup-shared\.db: it holds the lock \S+startup-shared\.db\.lock/).and.match(/database\.path/);
    } finally {
      await first.stop();
    }
    const again = await start(config, hs.registration);
    await again.stop();
  });
});
