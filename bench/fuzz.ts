// A fuzz run against the real bridge and a real Synapse (started as the e2e tier does):
// N hostile SCIM requests from a seeded PRNG (bodies, filters, PATCH paths, query
// parameters, headers, raw HTTP framing, /Bulk), mixed with valid creates, updates and
// deletes so that state accumulates. Then the journal is drained and the store is compared
// with Synapse's own view. Fails (exit 1) on any 500/502 (any 5xx but a 503 for a genuine
// homeserver failure), a request that hung, a polluted Object.prototype, or a mismatch.
//
// Run: npm run fuzz [-- [requests] [seed]]
//      npm run fuzz -- --requests 500 --seed 7 --concurrency 2 --keep
//  requests     how many requests (default 10000)
//  seed         the PRNG seed (default 1); the same seed makes the same choices
//  concurrency  requests in flight at once (default 1, which keeps a run deterministic)
//  keep         keep Synapse's files (config, log, database) and the bridge's database
//
// The report (every 5xx with its request, every mismatch) and the bridge's log are written
// to a temporary directory, printed at the end.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, type BridgeHandles } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { bootstrapHomeserver, type BootstrappedHomeserver } from '../scripts/lib/bootstrap.ts';
import { AdminApi } from '../test/e2e/helpers.ts';
import { checkConsistency, synapseBaseline, type ConsistencyReport } from './lib/fuzzConsistency.ts';
import { failed, runFuzz, summarize, writeReport, type FuzzOutcome } from './lib/fuzzRun.ts';
import { LogTap } from './lib/logTap.ts';

interface Args {
  requests: number;
  seed: number;
  concurrency: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { requests: 10_000, seed: 1, concurrency: 1, keep: false };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.startsWith('--') ? arg.slice(2).split('=', 2) : [undefined, undefined];
    const value = () => inline ?? argv[++i] ?? '';
    if (flag === undefined) positional.push(arg);
    else if (flag === 'requests' || flag === 'n') args.requests = Number(value());
    else if (flag === 'seed') args.seed = Number(value());
    else if (flag === 'concurrency') args.concurrency = Number(value());
    else if (flag === 'keep') args.keep = true;
    else throw new Error(`unknown option --${flag} (known: --requests, --seed, --concurrency, --keep)`);
  }
  if (positional[0] !== undefined) args.requests = Number(positional[0]);
  if (positional[1] !== undefined) args.seed = Number(positional[1]);
  for (const [name, v] of [['requests', args.requests], ['seed', args.seed], ['concurrency', args.concurrency]] as const) {
    if (!Number.isInteger(v) || v < (name === 'seed' ? 0 : 1)) throw new Error(`${name} must be ${name === 'seed' ? 'a non-negative' : 'a positive'} integer`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const workDir = await mkdtemp(join(tmpdir(), 'msb-fuzz-'));
const reportDir = await mkdtemp(join(tmpdir(), 'msb-fuzz-report-'));
const tap = new LogTap(join(reportDir, 'bridge.log'));
const uncaught: string[] = [];
process.on('uncaughtException', (error) => {
  uncaught.push(error.stack ?? error.message);
  tap.print(`uncaught exception: ${error.stack ?? error.message}`);
});

let hs: BootstrappedHomeserver | undefined;
let bridge: BridgeHandles | undefined;
let exitCode = 1;
try {
  tap.print(`fuzz: ${args.requests} requests, seed ${args.seed}, concurrency ${args.concurrency}; starting Synapse in ${workDir} …`);
  hs = await bootstrapHomeserver({ dir: workDir, serverName: 'fuzz.localhost' });
  const databasePath = join(workDir, 'fuzz.db');
  tap.start();
  bridge = await start(parseConfig(hs.bridgeConfig({ database: { path: databasePath }, logging: { level: 'warn' } }), hs.dir), hs.registration);
  const admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  const baseline = await synapseBaseline(admin);
  tap.print(`Synapse ${hs.synapse.version} at ${hs.synapse.url}; bridge at ${bridge.scimUrl}; bridge log in ${tap.file}`);

  const outcome: FuzzOutcome = await runFuzz({
    scimUrl: bridge.scimUrl,
    token: hs.scimToken,
    seed: args.seed,
    requests: args.requests,
    concurrency: args.concurrency,
    tap,
    progress: (line) => tap.print(line),
    progressEvery: args.requests >= 2000 ? 500 : 100,
  });
  outcome.unhandled.push(...uncaught.map((u) => `uncaught exception: ${u}`));
  tap.print(`sent ${outcome.requests} requests in ${(outcome.ms / 1000).toFixed(1)} s; draining the journal and comparing the store with Synapse …`);
  const consistency: ConsistencyReport = await checkConsistency({ handles: bridge, admin, databasePath, baseline, log: (line) => tap.print(line) });
  tap.stop();

  const reportFile = join(reportDir, 'fuzz-report.json');
  await writeReport(reportFile, outcome, consistency);
  console.log(summarize(outcome, consistency).join('\n'));
  console.log(`\nreport: ${reportFile}\nbridge log: ${tap.file}`);
  if (args.keep) console.log(`kept Synapse's files and the bridge database in ${workDir} (Synapse log: ${hs.synapse.paths.log})`);
  exitCode = failed(outcome, consistency) ? 1 : 0;
} catch (error) {
  tap.stop();
  console.error('fuzz run aborted:', error);
  console.error(`bridge log: ${tap.file}`);
} finally {
  tap.stop();
  await bridge?.stop().catch((e: unknown) => console.error('stopping the bridge:', e));
  await hs?.synapse.stop().catch((e: unknown) => console.error('stopping Synapse:', e));
  if (!args.keep) await rm(workDir, { recursive: true, force: true });
}
process.exit(exitCode);
