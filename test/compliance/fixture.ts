// The compliance fixture: ONE real Synapse for the whole compliance run (root hooks,
// registered once however many test files import this module) and the pinned outside
// SCIM test tools (scripts/lib/pythonTools.ts). Each test file starts its own bridge
// in-process with startBridge(), on its own SQLite database. The appservice port is the
// registration's, so only one bridge runs at a time: stop it in the file's `after`.
//
// The bridges log errors only: the tools send photos at unresolvable https://<uuid>.test
// URLs, and the warning for each would bury the checks' summary. MSB_COMPLIANCE_LOG=warn
// (or info, debug) shows more.
//
// MSB_COMPLIANCE_KEEP=1 keeps the working directory (Synapse's files, the bridges'
// databases, the tools' output) for a look after the run.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, type BridgeHandles } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { bootstrapHomeserver, type BootstrappedHomeserver } from '../../scripts/lib/bootstrap.ts';
import { ensureScimTools, type ScimTools } from '../../scripts/lib/pythonTools.ts';

export const SERVER_NAME = 'compliance.localhost';

let current: { hs: BootstrappedHomeserver; tools: ScimTools; dir: string } | undefined;
let workDir: string | undefined;

function fixture(): { hs: BootstrappedHomeserver; tools: ScimTools; dir: string } {
  if (!current) throw new Error('the compliance homeserver is not running: the root before hook failed or has not run');
  return current;
}

before(async function () {
  this.timeout(600_000);
  const log = (msg: string): void => console.log(`  ${msg}`);
  workDir = await mkdtemp(join(tmpdir(), 'msb-compliance-'));
  const [tools, hs] = await Promise.all([ensureScimTools(log), bootstrapHomeserver({ dir: workDir, serverName: SERVER_NAME })]);
  current = { hs, tools, dir: workDir };
  console.log(`  Synapse ${hs.synapse.version} at ${hs.synapse.url} (files in ${workDir}); SCIM tools in ${tools.dir}`);
});

after(async function () {
  this.timeout(60_000);
  await current?.hs.synapse.stop();
  current = undefined;
  if (!workDir) return;
  if (process.env['MSB_COMPLIANCE_KEEP']) console.log(`  kept the compliance files in ${workDir}`);
  else await rm(workDir, { recursive: true, force: true });
});

export interface ComplianceBridge {
  handles: BridgeHandles;
  scimUrl: string;
  token: string;
  tools: ScimTools;
}

/** Starts the bridge in-process against this run's homeserver, on the database `<name>.db`. */
export async function startBridge(name: string): Promise<ComplianceBridge> {
  const { hs, tools, dir } = fixture();
  const handles = await start(parseConfig(hs.bridgeConfig({
    database: { path: join(dir, `${name}.db`) },
    logging: { level: process.env['MSB_COMPLIANCE_LOG'] || 'error' },
  }), hs.dir), hs.registration);
  return { handles, scimUrl: handles.scimUrl, token: hs.scimToken, tools };
}

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the tools to completion (never rejects on a non-zero exit). */
export function runTool(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<ToolRun> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    });
  });
}
