// Makes sure the cached Synapse virtualenv (with its PostgreSQL driver) and migrated template database exist, and
// the SCIM test tools of the compliance tier, then prints the Synapse version. Used by
// .ci/run before the end-to-end tests.
//   node scripts/ensure-synapse.ts
import { ensureScimTools, scimToolsCacheDir } from './lib/pythonTools.ts';
import { ensurePsycopg2, ensureSynapseTemplateDb, ensureSynapseVenv, installedSynapseVersion, synapseCacheDir } from './lib/synapse.ts';

const log = (msg: string): void => {
  process.stderr.write(`ensure-synapse: ${msg}\n`);
};

try {
  const python = await ensureSynapseVenv(log);
  await ensureSynapseTemplateDb(log);
  // Synapse's PostgreSQL driver, for the tier that runs Synapse on PostgreSQL.
  await ensurePsycopg2(log);
  log(`cache: ${synapseCacheDir()}`);
  await ensureScimTools(log);
  log(`SCIM test tools: ${scimToolsCacheDir()}`);
  process.stdout.write(`${await installedSynapseVersion(python)}\n`);
} catch (err) {
  process.stderr.write(`ensure-synapse: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
