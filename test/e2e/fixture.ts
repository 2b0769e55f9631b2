// The shared end-to-end fixture: ONE real Synapse for the whole run, started by a root
// `before` hook (registered once, however many test files import this module) and
// stopped by a root `after`. Each test file starts its own bridge in-process with
// startBridge(), on its own SQLite database, against that homeserver.
//
// MSB_E2E_KEEP=1 keeps the working directory (Synapse's config, logs and database, the
// bridges' databases) for a look after the run. MSB_E2E_SYNAPSE_DB=postgres runs Synapse
// on a throw-away PostgreSQL, as production homeservers run (npm run test:e2e:synapse-postgres).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, type BridgeHandles } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { bootstrapHomeserver, type BootstrappedHomeserver } from '../../scripts/lib/bootstrap.ts';
import { startPostgres, type PostgresServer } from '../../scripts/lib/postgres.ts';

export const SERVER_NAME = 'e2e.localhost';

let current: BootstrappedHomeserver | undefined;
let workDir: string | undefined;
let synapseDatabase: PostgresServer | undefined;

/** The homeserver of this run (only inside tests and hooks). */
export function homeserver(): BootstrappedHomeserver {
  if (!current) throw new Error('the e2e homeserver is not running: the root before hook failed or has not run');
  return current;
}

before(async function () {
  this.timeout(300_000);
  workDir = await mkdtemp(join(tmpdir(), 'msb-e2e-'));
  if (process.env['MSB_E2E_SYNAPSE_DB'] === 'postgres') {
    synapseDatabase = await startPostgres();
    await synapseDatabase.createDatabase('synapse');
  }
  current = await bootstrapHomeserver({
    dir: workDir,
    serverName: SERVER_NAME,
    ...(synapseDatabase ? { synapsePostgres: synapseDatabase.connection('synapse') } : {}),
  });
  const on = synapseDatabase ? 'PostgreSQL' : 'SQLite';
  console.log(`  Synapse ${current.synapse.version} on ${on} at ${current.synapse.url} (files in ${workDir})`);
});

after(async function () {
  this.timeout(60_000);
  await current?.synapse.stop();
  current = undefined;
  await synapseDatabase?.stop();
  synapseDatabase = undefined;
  if (!workDir) return;
  if (process.env['MSB_E2E_KEEP']) console.log(`  kept the e2e files in ${workDir}`);
  else await rm(workDir, { recursive: true, force: true });
});

/**
 * Starts the bridge in-process against this run's homeserver. `overrides` is merged into
 * the bootstrap config (give each test file its own database.path).
 */
export async function startBridge(overrides: Record<string, unknown> = {}): Promise<BridgeHandles> {
  const hs = homeserver();
  return start(parseConfig(hs.bridgeConfig(overrides), hs.dir), hs.registration);
}

/** A file in this run's working directory. */
export function workFile(name: string): string {
  return join(homeserver().dir, name);
}
