// `npm run demo`: a real Synapse and the bridge on this machine, in one command.
//
// Everything lives in .demo/ (git-ignored, wiped at each run): the registration,
// Synapse's config, database and logs, the bridge's SQLite database, and demo.json with
// the URLs and credentials printed below. Ctrl-C stops the bridge and Synapse.

import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { start, type BridgeHandles } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { bootstrapHomeserver, type BootstrappedHomeserver } from './lib/bootstrap.ts';

const DEMO_DIR = resolve(import.meta.dirname, '..', '.demo');
const SCIM_PORT = 8090;
const SYNAPSE_PORT = 8008;
const METRICS_PORT = 9741;
const SERVER_NAME = 'localhost';

function portIsFree(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const server = createServer();
    server.once('error', () => ok(false));
    server.listen(port, '127.0.0.1', () => server.close(() => ok(true)));
  });
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

async function main(): Promise<void> {
  const log = (msg: string) => console.log(`• ${msg}`);
  if (existsSync(DEMO_DIR)) log(`wiping ${DEMO_DIR} from an earlier run`);
  await rm(DEMO_DIR, { recursive: true, force: true });

  let hs: BootstrappedHomeserver | undefined;
  let bridge: BridgeHandles | undefined;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log(`\n• ${why}: stopping the bridge and Synapse`);
    try {
      await bridge?.stop();
    } catch (error) {
      console.error(`error while stopping the bridge: ${(error as Error).message}`);
    }
    await hs?.synapse.stop();
    console.log('• stopped');
    process.exit(0);
  };
  // Installed first, so that Ctrl-C during start-up also stops what has started.
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  log('starting Synapse (the first run installs it into a cached virtualenv, about a minute)');
  const synapsePort = (await portIsFree(SYNAPSE_PORT)) ? SYNAPSE_PORT : undefined;
  hs = await bootstrapHomeserver({
    dir: DEMO_DIR,
    serverName: SERVER_NAME,
    ...(synapsePort ? { synapsePort } : {}),
    log,
  });
  if (stopping) return void (await hs.synapse.stop());

  try {
    const scimPort = (await portIsFree(SCIM_PORT)) ? SCIM_PORT : 0;
    const metricsPort = (await portIsFree(METRICS_PORT)) ? METRICS_PORT : 0;
    const raw = hs.bridgeConfig({
      scim: { port: scimPort },
      database: { engine: 'sqlite', path: join(DEMO_DIR, 'bridge.db') },
      // Drift from what you do in Synapse by hand shows up in the admin room within a minute.
      drift: { checkIntervalMinutes: 1 },
      // Prometheus metrics on loopback (off by default in a real deployment).
      metrics: { enabled: true, port: metricsPort },
    });
    await writeFile(join(DEMO_DIR, 'bridge-config.json'), `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
    bridge = await start(parseConfig(raw, DEMO_DIR), hs.registration);
  } catch (error) {
    await hs.synapse.stop();
    throw error;
  }
  if (stopping) return;

  const demo = {
    scimUrl: bridge.scimUrl,
    scimToken: hs.scimToken,
    metricsUrl: bridge.metricsUrl,
    homeserverUrl: hs.synapse.url,
    serverName: hs.synapse.serverName,
    adminUser: hs.admin.userId,
    adminPassword: hs.admin.password,
    adminToken: hs.admin.accessToken,
    adminRoomId: bridge.adminRoomId,
  };
  await writeFile(join(DEMO_DIR, 'demo.json'), `${JSON.stringify(demo, null, 2)}\n`, { mode: 0o600 });

  const alice = JSON.stringify({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'Alice.Smith@example.com',
    name: { givenName: 'Alice', familyName: 'Smith' },
    displayName: 'Alice Smith',
    emails: [{ value: 'alice.smith@example.com', type: 'work', primary: true }],
    active: true,
  });
  console.log(`
matrix-scim-bridge demo is running (Synapse ${hs.synapse.version}). Ctrl-C stops it.

  SCIM base URL    ${demo.scimUrl}
  Bearer token     ${demo.scimToken}
  Homeserver       ${demo.homeserverUrl}  (server name ${demo.serverName})
  Admin room       ${demo.adminRoomId}
  Metrics          ${demo.metricsUrl}  (Prometheus; health at ${demo.scimUrl.replace(/\/scim\/v2$/, '/health/ready')})

Watch the admin room: log in to ${demo.homeserverUrl} as user "${hs.admin.localpart}"
(${demo.adminUser}) with password ${demo.adminPassword} in any Matrix client that can
reach that URL, and accept the invitation to the room "SCIM provisioning". (The hosted
Element at app.element.io cannot reach a homeserver on 127.0.0.1 over plain http; use a
local client, or read the room with the admin API token in .demo/demo.json.)

Create a user as an IdP would:

  curl -sS -X POST ${shellQuote(`${demo.scimUrl}/Users`)} \\
    -H ${shellQuote(`Authorization: Bearer ${demo.scimToken}`)} \\
    -H 'Content-Type: application/scim+json' \\
    -d ${shellQuote(alice)}

and see what Synapse made of it:

  curl -sS -H ${shellQuote(`Authorization: Bearer ${demo.adminToken}`)} \\
    ${shellQuote(`${demo.homeserverUrl}/_synapse/admin/v2/users/@alice.smith:${demo.serverName}`)}

then watch the counters move:

  curl -sS ${shellQuote(String(demo.metricsUrl))} | grep -E '^matrix_scim_bridge_(scim|homeserver)_requests_total'

All of the above is in .demo/demo.json; Synapse's log is .demo/synapse/homeserver.log.
`);
}

main().catch((error: unknown) => {
  console.error(`demo failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
