// `npm run demo`: a real Synapse and the bridge on this machine, in one command.
//
// Everything lives in .demo/ (git-ignored, wiped at each run): the registration,
// Synapse's config, database and logs, the bridge's SQLite database, and demo.json with
// the URLs and credentials printed below. Ctrl-C stops the bridge and Synapse.
//
//   npm run demo -- --postgres               the bridge's store on a throw-away PostgreSQL
//                                            (scripts/lib/postgres.ts, data in .demo/postgres)
//   npm run demo -- --postgres --replicas 3  three bridge processes sharing that database,
//                                            each with its own SCIM and metrics port
//   MAS_HOME=/opt/mas npm run demo -- --mas  Synapse delegating its accounts to the Matrix
//                                            Authentication Service installed there (see
//                                            scripts/lib/mas.ts), on a throw-away PostgreSQL
//                                            (the --postgres one when both are given); the
//                                            bridge runs with homeserver.auth: mas
//
// With replicas, each bridge is its own OS process (bin/matrix-scim-bridge.js with its
// own .demo/bridge-<n>.json and log .demo/bridge-<n>.log). They share one registration,
// and the registration's URL, where Synapse pushes appservice transactions, is replica 1's
// appservice listener: the others serve SCIM only. demo.json lists every SCIM URL and the
// bridges' pids (a test may SIGKILL one and watch the others carry on).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { start, type BridgeHandles } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { writeRegistration } from '../src/config/registration.ts';
import { adminRoomAlias, bootstrapHomeserver, type BootstrappedHomeserver } from './lib/bootstrap.ts';
import { masHome } from './lib/mas.ts';
import { startPostgres, type PostgresServer } from './lib/postgres.ts';
import { freePort } from './lib/synapse.ts';

const DEMO_DIR = resolve(import.meta.dirname, '..', '.demo');
const REPO_DIR = resolve(import.meta.dirname, '..');
const SCIM_PORT = 8090;
const SYNAPSE_PORT = 8008;
const METRICS_PORT = 9741;
const SERVER_NAME = 'localhost';

const USAGE = `usage: npm run demo [-- [--postgres [--replicas N]] [--mas]]
  --postgres      the bridge's store on a throw-away PostgreSQL (data in .demo/postgres)
  --replicas N    N bridge processes sharing that database (default 1; N >= 2 needs --postgres)
  --mas           Synapse delegates its accounts to the MAS installed in $MAS_HOME`;

interface DemoOptions {
  postgres: boolean;
  replicas: number;
  /** The MAS installation (MAS_HOME) when --mas is given. */
  masHome?: string;
}

/** The command line; a mistake is a message and the usage, not a stack. */
function demoOptions(argv: string[]): DemoOptions {
  let values: { postgres?: boolean; replicas?: string; mas?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { postgres: { type: 'boolean' }, replicas: { type: 'string' }, mas: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    return refuse((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const replicas = values.replicas === undefined ? 1 : Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) return refuse(`--replicas ${values.replicas}: give a whole number from 1 to 16`);
  if (replicas > 1 && !values.postgres) {
    return refuse(`--replicas ${replicas} needs --postgres: a SQLite store belongs to one bridge process, so replicas must share a PostgreSQL database`);
  }
  let home: string | undefined;
  if (values.mas) {
    try {
      home = masHome();
    } catch (error) {
      return refuse(`--mas: ${(error as Error).message}`);
    }
    if (!home) {
      // The project never builds MAS: it runs one the developer has (docs/mas.md).
      console.error('demo --mas: skipped: no MAS (set MAS_HOME to a MAS installation laid out as its release archives are; see docs/mas.md)');
      process.exit(2);
    }
  }
  return { postgres: values.postgres === true, replicas, ...(home ? { masHome: home } : {}) };
}

function refuse(message: string): never {
  console.error(`demo: ${message}\n${USAGE}`);
  process.exit(2);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const server = createServer();
    server.once('error', () => ok(false));
    server.listen(port, '127.0.0.1', () => server.close(() => ok(true)));
  });
}

/** `preferred` when free, else any free port (never one already handed out in `taken`). */
async function pickPort(preferred: number, taken: Set<number>): Promise<number> {
  let port = !taken.has(preferred) && (await portIsFree(preferred)) ? preferred : 0;
  while (port === 0 || taken.has(port)) port = await freePort();
  taken.add(port);
  return port;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

async function tail(file: string, lines = 25): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

/** One bridge process of a replicated demo. */
interface Replica {
  n: number;
  child: ChildProcess;
  exited: Promise<string>;
  scimUrl: string;
  metricsUrl: string;
  logFile: string;
}

/**
 * Spawns bridge replica `n` (bin/matrix-scim-bridge.js --config .demo/bridge-<n>.json),
 * its output in .demo/bridge-<n>.log.
 */
async function spawnReplica(n: number, hs: BootstrappedHomeserver, urlFile: string, taken: Set<number>, extra: Record<string, unknown>): Promise<Replica> {
  const scimPort = await pickPort(SCIM_PORT + n - 1, taken);
  const metricsPort = await pickPort(METRICS_PORT + n - 1, taken);
  // Replica 1 binds the port of the registration Synapse loaded. The others share its
  // tokens and id but, on one machine, need a port of their own: each gets a copy of the
  // registration whose url names that port (the bridge checks the two agree); Synapse
  // never reads these copies, so it keeps sending transactions to replica 1 only.
  let registrationPath = hs.registrationPath;
  let appservicePort = hs.appservicePort;
  if (n > 1) {
    appservicePort = await pickPort(0, taken);
    registrationPath = join(DEMO_DIR, `registration-${n}.yaml`);
    writeRegistration(registrationPath, { ...hs.registration, url: `http://127.0.0.1:${appservicePort}` });
  }
  const raw = hs.bridgeConfig({
    ...extra,
    appservice: { port: appservicePort, registration: registrationPath },
    scim: { port: scimPort },
    database: { engine: 'postgres', url: { file: urlFile } },
    drift: { checkIntervalMinutes: 1 },
    metrics: { enabled: true, port: metricsPort },
    logging: { level: 'info' },
  });
  const configFile = join(DEMO_DIR, `bridge-${n}.json`);
  await writeFile(configFile, `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
  const logFile = join(DEMO_DIR, `bridge-${n}.log`);
  const out = await open(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    // with-node.sh execs node: the child's pid is the bridge's own.
    child = spawn('sh', ['scripts/with-node.sh', 'bin/matrix-scim-bridge.js', '--config', configFile], {
      cwd: REPO_DIR,
      stdio: ['ignore', out.fd, out.fd],
    });
  } finally {
    await out.close();
  }
  const exited = new Promise<string>((ok) => {
    child.once('error', (error) => ok(`could not be spawned: ${error.message}`));
    child.once('exit', (code, signal) => ok(signal ? `was killed by ${signal}` : `exited with code ${code}`));
  });
  return { n, child, exited, scimUrl: `http://127.0.0.1:${scimPort}/scim/v2`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, logFile };
}

/** Waits until the replica's /health/live answers; rejects, with its log's tail, if it exits first. */
async function replicaUp(replica: Replica, timeoutMs = 120_000): Promise<void> {
  const live = replica.scimUrl.replace(/\/scim\/v2$/, '/health/live');
  let exit: string | undefined;
  void replica.exited.then((why) => (exit = why));
  const deadline = Date.now() + timeoutMs;
  while (exit === undefined) {
    if (Date.now() > deadline) throw new Error(`bridge ${replica.n} (pid ${replica.child.pid}) did not answer ${live} within ${timeoutMs / 1000} s; ${replica.logFile}:\n${await tail(replica.logFile)}`);
    try {
      const res = await fetch(live, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  throw new Error(`bridge ${replica.n} (pid ${replica.child.pid}) ${exit} during start-up; ${replica.logFile}:\n${await tail(replica.logFile)}`);
}

/** SIGTERM, then SIGKILL after `timeoutMs`. */
async function stopReplica(replica: Replica, timeoutMs = 10_000): Promise<void> {
  const { child } = replica;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((ok) => (timer = setTimeout(() => ok(true), timeoutMs)));
  if (await Promise.race([replica.exited.then(() => false), late])) {
    child.kill('SIGKILL');
    await replica.exited;
  }
  clearTimeout(timer);
}

/** The admin room's id, resolved from its alias (a replicated demo has no in-process handles). */
async function roomIdOf(hs: BootstrappedHomeserver, alias: string): Promise<string> {
  const res = await fetch(`${hs.synapse.url}/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, {
    headers: { authorization: `Bearer ${hs.admin.accessToken}` },
  });
  const body = (await res.json()) as { room_id?: unknown };
  return typeof body.room_id === 'string' ? body.room_id : `(${alias} not found: HTTP ${res.status})`;
}

/**
 * The bridge's config for a homeserver whose accounts live in MAS: the admin client's
 * secret and the bot's admin-scoped token go into files (mode 0600) that the config names,
 * as an operator would keep them.
 */
async function masBridgeConfig(hs: BootstrappedHomeserver): Promise<Record<string, unknown>> {
  const mas = hs.mas!;
  const secretFile = join(DEMO_DIR, 'mas-client-secret');
  const tokenFile = join(DEMO_DIR, 'synapse-admin-token');
  await writeFile(secretFile, `${mas.server.adminClientSecret}\n`, { mode: 0o600 });
  await writeFile(tokenFile, `${mas.botAdminToken}\n`, { mode: 0o600 });
  return {
    homeserver: { auth: 'mas' },
    mas: { url: mas.server.url, clientId: mas.server.adminClientId, clientSecret: { file: secretFile }, upstreamProviderId: mas.server.upstreamProviderId },
    // Under MAS, Synapse's admin API wants a token with the urn:synapse:admin:* scope.
    adminApi: { accessToken: { file: tokenFile } },
  };
}

async function main(): Promise<void> {
  const options = demoOptions(process.argv.slice(2));
  const log = (msg: string) => console.log(`• ${msg}`);
  if (existsSync(DEMO_DIR)) log(`wiping ${DEMO_DIR} from an earlier run`);
  await rm(DEMO_DIR, { recursive: true, force: true });

  let hs: BootstrappedHomeserver | undefined;
  let bridge: BridgeHandles | undefined;
  let postgres: PostgresServer | undefined;
  const replicas: Replica[] = [];
  let stopping = false;
  const stop = async (why: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const parts = [replicas.length > 1 ? 'the bridges' : 'the bridge', 'Synapse', ...(options.masHome ? ['MAS'] : []), ...(postgres || options.masHome ? ['PostgreSQL'] : [])];
    console.log(`\n• ${why}: stopping ${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`);
    try {
      await bridge?.stop();
    } catch (error) {
      console.error(`error while stopping the bridge: ${(error as Error).message}`);
    }
    await Promise.all(replicas.map((r) => stopReplica(r)));
    // Synapse, and MAS with the cluster bootstrap started for it (not the --postgres one).
    await hs?.stop();
    await postgres?.stop();
    console.log('• stopped');
    process.exit(code);
  };
  // Installed first, so that Ctrl-C during start-up also stops what has started.
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // However this process ends, no bridge process outlives it.
  process.on('exit', () => {
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  });

  let urlFile: string | undefined;
  if (options.postgres) {
    log('starting PostgreSQL (data in .demo/postgres)');
    postgres = await startPostgres({ dir: join(DEMO_DIR, 'postgres'), log });
    if (stopping) return void (await postgres.stop());
    const url = await postgres.createDatabase('scim_bridge');
    urlFile = join(DEMO_DIR, 'bridge-database-url');
    await writeFile(urlFile, `${url}\n`, { mode: 0o600 });
    log(`bridge database ${postgres.url('scim_bridge').replace(postgres.password, '****')} (the URL is in ${urlFile})`);
  }

  log('starting Synapse (the first run installs it into a cached virtualenv, about a minute)');
  if (options.masHome) log(`with MAS from ${options.masHome} (MAS_HOME), its database on ${postgres ? 'the same' : 'a throw-away'} PostgreSQL`);
  const synapsePort = (await portIsFree(SYNAPSE_PORT)) ? SYNAPSE_PORT : undefined;
  try {
    hs = await bootstrapHomeserver({
      dir: DEMO_DIR,
      serverName: SERVER_NAME,
      ...(synapsePort ? { synapsePort } : {}),
      ...(options.masHome ? { mas: { home: options.masHome, ...(postgres ? { postgres } : {}) } } : {}),
      log,
    });
  } catch (error) {
    await postgres?.stop();
    throw error;
  }
  if (stopping) {
    await hs.stop();
    return void (await postgres?.stop());
  }

  let scimUrls: string[];
  let metricsUrl: string | undefined;
  let adminRoomId: string;
  try {
    const accountBackend = hs.mas ? await masBridgeConfig(hs) : {};
    if (options.replicas === 1) {
      const scimPort = (await portIsFree(SCIM_PORT)) ? SCIM_PORT : 0;
      const metricsPort = (await portIsFree(METRICS_PORT)) ? METRICS_PORT : 0;
      const raw = hs.bridgeConfig({
        ...accountBackend,
        scim: { port: scimPort },
        database: urlFile ? { engine: 'postgres', url: { file: urlFile } } : { engine: 'sqlite', path: join(DEMO_DIR, 'bridge.db') },
        // Drift from what you do in Synapse by hand shows up in the admin room within a minute.
        drift: { checkIntervalMinutes: 1 },
        // Prometheus metrics on loopback (off by default in a real deployment).
        metrics: { enabled: true, port: metricsPort },
      });
      await writeFile(join(DEMO_DIR, 'bridge-config.json'), `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
      bridge = await start(parseConfig(raw, DEMO_DIR), hs.registration);
      scimUrls = [bridge.scimUrl];
      metricsUrl = bridge.metricsUrl;
      adminRoomId = bridge.adminRoomId;
    } else {
      if (!urlFile) throw new Error('replicas need the PostgreSQL database');
      const taken = new Set<number>([hs.appservicePort]);
      // Replica 1 first: it creates the schema, registers the bot's room and joins it; the
      // others then start together.
      log(`starting bridge 1 of ${options.replicas} (its appservice listener is the registration's URL)`);
      replicas.push(await spawnReplica(1, hs, urlFile, taken, accountBackend));
      await replicaUp(replicas[0]!);
      log(`starting bridges 2 to ${options.replicas} (SCIM only: Synapse sends its transactions to bridge 1)`);
      for (let n = 2; n <= options.replicas; n++) replicas.push(await spawnReplica(n, hs, urlFile, taken, accountBackend));
      await Promise.all(replicas.slice(1).map((r) => replicaUp(r)));
      for (const r of replicas) {
        void r.exited.then((why) => {
          if (!stopping) console.log(`• bridge ${r.n} (pid ${r.child.pid}) ${why}; the others carry on. Its log: ${r.logFile}`);
        });
      }
      scimUrls = replicas.map((r) => r.scimUrl);
      metricsUrl = replicas[0]!.metricsUrl;
      adminRoomId = await roomIdOf(hs, adminRoomAlias(SERVER_NAME));
    }
  } catch (error) {
    console.error(`demo failed: ${(error as Error).message}`);
    await stop('start-up failed', 1);
    return;
  }
  if (stopping) return;

  const demo = {
    scimUrl: scimUrls[0]!,
    scimUrls,
    scimToken: hs.scimToken,
    metricsUrl,
    ...(replicas.length > 0 ? { metricsUrls: replicas.map((r) => r.metricsUrl) } : {}),
    homeserverUrl: hs.synapse.url,
    serverName: hs.synapse.serverName,
    adminUser: hs.admin.userId,
    adminPassword: hs.admin.password,
    adminToken: hs.admin.accessToken,
    adminRoomId,
    store: options.postgres ? 'postgres' : 'sqlite',
    ...(hs.mas
      ? {
          // Under MAS: accounts, passwords and emails are MAS's (its admin API at masUrl/api/admin/v1,
          // a client-credentials token from masUrl/oauth2/token); users log in at masUrl.
          masUrl: hs.mas.server.url,
          masClientId: hs.mas.server.adminClientId,
          masClientSecret: hs.mas.server.adminClientSecret,
          masUpstreamProviderId: hs.mas.server.upstreamProviderId,
        }
      : {}),
    // The OS processes serving SCIM: the demo's own pid when the bridge runs in-process.
    bridgePids: replicas.length > 0 ? replicas.map((r) => r.child.pid) : [process.pid],
    appserviceUrl: hs.registration.url,
  };
  await writeFile(join(DEMO_DIR, 'demo.json'), `${JSON.stringify(demo, null, 2)}\n`, { mode: 0o600 });

  if (replicas.length > 0) {
    console.log(`
${replicas.length} bridge processes share the PostgreSQL database:
${replicas.map((r) => `  bridge ${r.n}  pid ${r.child.pid}  ${r.scimUrl}  metrics ${r.metricsUrl}  log .demo/bridge-${r.n}.log${r.n === 1 ? `\n            receives Synapse's appservice transactions (${hs!.registration.url}); the others serve SCIM only` : ''}`).join('\n')}
Any of them serves SCIM; the commands below use bridge 1.`);
  }
  const alicePassword = 'Correct-Horse-Battery-Staple-42';
  const alice = JSON.stringify({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'Alice.Smith@example.com',
    name: { givenName: 'Alice', familyName: 'Smith' },
    displayName: 'Alice Smith',
    emails: [{ value: 'alice.smith@example.com', type: 'work', primary: true }],
    active: true,
    // Under MAS, the password is MAS's and the externalId becomes Alice's upstream link.
    ...(hs.mas ? { password: alicePassword, externalId: 'idp-subject-alice' } : {}),
  });
  const masServer = hs.mas?.server;
  const masLines = masServer
    ? `
  MAS              ${masServer.url}  (accounts, passwords, emails; admin client ${masServer.adminClientId},
                   its secret in .demo/demo.json; users log in here, not at Synapse)`
    : '';
  const masSteps = masServer
    ? `
and what MAS holds (a client-credentials token, then MAS's admin API):

  MAS_TOKEN=$(curl -sS -u ${shellQuote(`${masServer.adminClientId}:${masServer.adminClientSecret}`)} \\
    -d 'grant_type=client_credentials&scope=urn:mas:admin' ${shellQuote(masServer.tokenEndpoint)} \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -sS -H "Authorization: Bearer $MAS_TOKEN" ${shellQuote(`${masServer.url}/api/admin/v1/users/by-username/alice.smith`)}
  curl -sS -g -H "Authorization: Bearer $MAS_TOKEN" ${shellQuote(`${masServer.url}/api/admin/v1/upstream-oauth-links?filter[provider]=${masServer.upstreamProviderId}`)}

Alice's password logs in through MAS:

  curl -sS -X POST ${shellQuote(`${masServer.url}/_matrix/client/v3/login`)} -H 'Content-Type: application/json' \\
    -d ${shellQuote(JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice.smith' }, password: alicePassword }))}
`
    : '';
  console.log(`
matrix-scim-bridge demo is running (Synapse ${hs.synapse.version}). Ctrl-C stops it.

  SCIM base URL    ${demo.scimUrl}
  Bearer token     ${demo.scimToken}
  Homeserver       ${demo.homeserverUrl}  (server name ${demo.serverName})
  Admin room       ${demo.adminRoomId}
  Metrics          ${demo.metricsUrl}  (Prometheus; health at ${demo.scimUrl.replace(/\/scim\/v2$/, '/health/ready')})${masLines}

Watch the admin room: log in to ${masServer ? `${masServer.url} (MAS)` : demo.homeserverUrl} as user "${hs.admin.localpart}"
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
${masSteps}
then watch the counters move:

  curl -sS ${shellQuote(String(demo.metricsUrl))} | grep -E '^matrix_scim_bridge_(scim|homeserver)_requests_total'

All of the above is in .demo/demo.json; Synapse's log is .demo/synapse/homeserver.log${masServer ? `, MAS's ${masServer.logFile}` : ''}.
`);
}

main().catch((error: unknown) => {
  console.error(`demo failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
