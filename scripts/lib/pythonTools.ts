// The outside SCIM test suites of the compliance tier (scim2-tester and its command
// line, scim2-cli), run from a Python virtualenv kept in the user's cache directory,
// like the Synapse one (scripts/lib/synapse.ts).
//
// Cache layout, keyed by a hash of the pinned requirements:
//   ${XDG_CACHE_HOME:-~/.cache}/matrix-scim-bridge/scim-tools-<hash>/
//     bin/python, bin/scim ...   the virtualenv (built in a temp dir, renamed into place)
//
// scim2-tester speaks HTTP through scim2-client's httpx2 engine, which only its
// `httpx2` extra installs. The scim2-* libraries it builds on are pinned too: they
// decide what a check sends and how a response is judged, so a new release of one of
// them must not change the verdicts under us.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const SCIM_TOOLS_REQUIREMENTS: readonly string[] = [
  'scim2-tester[httpx2]==0.5.2',
  'scim2-cli==0.6.0',
  'scim2-client[httpx2]==0.13.2',
  'scim2-models==0.12.3',
];

type Log = (msg: string) => void;
const quiet: Log = () => {};

export interface ScimTools {
  /** The virtualenv's python: `import scim2_tester` works with it. */
  python: string;
  /** scim2-cli's command (`scim --url … test`). */
  scimCli: string;
  /** The virtualenv's directory. */
  dir: string;
}

/** `${XDG_CACHE_HOME:-~/.cache}/matrix-scim-bridge/scim-tools-<hash of the pins>` */
export function scimToolsCacheDir(requirements: readonly string[] = SCIM_TOOLS_REQUIREMENTS): string {
  const cacheHome = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  const hash = createHash('sha256').update(requirements.join('\n')).digest('hex').slice(0, 12);
  return join(cacheHome, 'matrix-scim-bridge', `scim-tools-${hash}`);
}

function toolsIn(dir: string): ScimTools {
  return { dir, python: join(dir, 'bin', 'python'), scimCli: join(dir, 'bin', 'scim') };
}

async function run(cmd: string, args: string[], logFile: string): Promise<void> {
  const out = await open(logFile, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', out.fd, out.fd] });
    const code = await new Promise<number | null>((ok, fail) => {
      child.once('error', fail);
      child.once('exit', (c) => ok(c));
    });
    if (code !== 0) {
      const log = (await readFile(logFile, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-40).join('\n');
      throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${log}`);
    }
  } finally {
    await out.close();
  }
}

/**
 * Makes sure the cached virtualenv with the pinned SCIM test tools exists and returns
 * their paths. A missing cache is built in a temporary sibling directory and renamed
 * into place, so an interrupted install never leaves a half-built cache.
 */
export async function ensureScimTools(log: Log = quiet): Promise<ScimTools> {
  const dir = scimToolsCacheDir();
  const tools = toolsIn(dir);
  if (existsSync(tools.python) && existsSync(tools.scimCli)) return tools;

  await mkdir(join(dir, '..'), { recursive: true });
  const tmp = await mkdtemp(`${dir}.building-`);
  const logFile = `${tmp}.log`;
  const started = Date.now();
  try {
    log(`installing ${SCIM_TOOLS_REQUIREMENTS.join(', ')} into ${dir}`);
    await run(process.env['MSB_PYTHON'] || 'python3', ['-m', 'venv', tmp], logFile);
    await run(
      join(tmp, 'bin', 'python'),
      ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', ...SCIM_TOOLS_REQUIREMENTS],
      logFile,
    );
    // pip writes the venv's absolute path into console scripts' shebangs: point `scim`
    // at the python it will have once the directory is renamed into place.
    const script = join(tmp, 'bin', 'scim');
    const lines = (await readFile(script, 'utf8')).split('\n');
    if (!lines[0]?.startsWith('#!')) throw new Error(`${script} has no shebang line`);
    await writeFile(script, [`#!${tools.python}`, ...lines.slice(1)].join('\n'));
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process finished first: use its venv and drop ours.
      if (!existsSync(tools.python)) throw err;
    }
    log(`SCIM test tools ready in ${Math.round((Date.now() - started) / 1000)} s`);
    return tools;
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await rm(logFile, { force: true });
  }
}
