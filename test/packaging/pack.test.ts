// The package as an operator gets it: `npm pack` (which builds dist/), the tarball installed
// into an empty folder from the registry, and its `matrix-scim-bridge` command run on the
// pinned Node and, when the machine has one, on a Node too old for it; then the installed
// bridge started against a real Synapse (the e2e fixture's) and used.

import { expect } from 'chai';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { homeserver, SERVER_NAME } from '../e2e/fixture.ts';
import { AdminApi, ScimClient, waitFor } from '../e2e/helpers.ts';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { version: VERSION } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: SpawnSyncOptions = {}): Run {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 150_000, ...options });
  if (result.error) throw result.error;
  return { status: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

function mustSucceed(what: string, result: Run): Run {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
  return result;
}

/**
 * The environment for a child npm: this run's own npm variables (set by `npm run`) would
 * point it back at this project, so they are left out; registry and cache settings stay.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^npm_(config_(local_|global_)?prefix|package_|lifecycle_|command$)/i.test(key)) delete env[key];
  }
  return env;
}

/** The first `node` on PATH older than 22, e.g. a distribution's Node 20, if there is one. */
function oldNode(): string | undefined {
  const seen = new Set<string>();
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']) {
    const candidate = join(dir, 'node');
    if (!dir || seen.has(candidate)) continue;
    seen.add(candidate);
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const found = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    const major = Number(/^v(\d+)\./.exec(String(found.stdout))?.[1]);
    if (major > 0 && major < 22) return candidate;
  }
  return undefined;
}

describe('The npm package', () => {
  let work: string;
  let tarball: string;
  let app: string;
  let bin: string;
  // npm pack builds dist/ in the checkout; a checkout without one runs src/ (see the
  // launcher), so it is left as it was found.
  const dist = join(ROOT, 'dist');
  const hadDist = existsSync(dist);

  before(function () {
    this.timeout(300_000);
    work = mkdtempSync(join(tmpdir(), 'msb-pack-'));
    const packDir = join(work, 'pack');
    mkdirSync(packDir);
    mustSucceed('npm pack', run('npm', ['pack', '--pack-destination', packDir], { cwd: ROOT, env: npmEnv() }));
    const file = readdirSync(packDir).find((name) => name.endsWith('.tgz'));
    if (!file) throw new Error(`npm pack left no tarball in ${packDir}`);
    tarball = join(packDir, file);

    // What docs/deploy.md tells operators to run, in an empty folder.
    app = join(work, 'app');
    mkdirSync(app);
    mustSucceed(
      'npm install',
      run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball], { cwd: app, env: npmEnv() }),
    );
    bin = join(app, 'node_modules', '.bin', 'matrix-scim-bridge');
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
    if (!hadDist) rmSync(dist, { recursive: true, force: true });
  });

  it('carries the built bridge, the launcher and the crypto stub, and no tests', () => {
    const files = mustSucceed('tar', run('tar', ['-tzf', tarball])).stdout.split('\n');
    expect(files).to.include.members([
      'package/bin/matrix-scim-bridge.js',
      'package/dist/cli.js',
      'package/dist/app.js',
      'package/packages/no-e2ee-crypto/index.js',
      'package/config/config.sample.yaml',
      'package/contrib/systemd/matrix-scim-bridge.service',
      'package/docs/deploy.md',
    ]);
    expect(files.filter((name) => name.startsWith('package/test/') || name.startsWith('package/.demo/'))).to.deep.equal([]);
  });

  it('prints its version with npx on the pinned Node, without deprecation noise', () => {
    const result = run('npx', ['--no-install', 'matrix-scim-bridge', '--version'], { cwd: app, env: npmEnv() });
    expect(result.stderr).to.equal('');
    expect(result.stdout).to.equal(`matrix-scim-bridge ${VERSION}\n`);
    expect(result.status).to.equal(0);
    expect(run(process.execPath, [bin, '-V'], { cwd: app }).stdout).to.equal(`matrix-scim-bridge ${VERSION}\n`);
  });

  it('loads its dependencies with the crypto stub in place of the native module', () => {
    // --ignore-scripts left the real package without its native library: loading the
    // bridge only works because the launcher puts the shipped stub in its place.
    const result = run(process.execPath, [bin, '--help'], { cwd: app });
    expect(result.stderr).to.equal('');
    expect(result.stdout).to.match(/generate-registration/);
    expect(result.status).to.equal(0);
  });

  it('starts from the installed package against a real Synapse, provisions a user and stops on SIGTERM', async function () {
    this.timeout(120_000);
    const hs = homeserver();
    const configFile = join(work, 'config.yaml');
    writeFileSync(configFile, yaml.dump(hs.bridgeConfig({ database: { path: join(work, 'bridge.db') }, logging: { level: 'info' } })), {
      mode: 0o600,
    });
    const child = spawn(process.execPath, [bin, '--config', configFile], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const scimUrl = await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`the installed bridge exited (${child.exitCode}): ${err}${out}`);
          return /SCIM API listening at (\S+);/.exec(out)?.[1];
        },
        60_000,
        'the installed bridge to start',
      );
      const ready = await fetch(new URL('/health/ready', scimUrl));
      expect(ready.status).to.equal(200);
      const created = await new ScimClient(scimUrl, hs.scimToken).post('/Users', { userName: 'packaged.person', displayName: 'Packaged Person' });
      expect(created.status, created.text).to.equal(201);
      const admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
      expect((await admin.profile(`@packaged.person:${SERVER_NAME}`))?.['displayname']).to.equal('Packaged Person');
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
      expect(err).to.not.match(/DEP0060|Error/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('drops only DEP0060: other warnings are still printed', () => {
    const launcher = join(app, 'node_modules', 'matrix-scim-bridge', 'bin', 'matrix-scim-bridge.js');
    const script = [
      `process.argv = [process.execPath, ${JSON.stringify(launcher)}, '--version'];`,
      `await import(${JSON.stringify(pathToFileURL(launcher).href)});`,
      `process.emitWarning('a stand-in for util._extend', 'DeprecationWarning', 'DEP0060');`,
      `process.emitWarning('a warning that must be shown', { code: 'MSB_TEST' });`,
    ].join('\n');
    const result = run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    expect(result.stderr).to.match(/\[MSB_TEST\] Warning: a warning that must be shown/);
    expect(result.stderr).not.to.match(/DEP0060/);
  });

  it('tells a too old Node which version it needs, in one line', function () {
    const node = oldNode();
    if (!node) this.skip();
    // As on a stock machine: the command's `#!/usr/bin/env node` finds the old Node first.
    const env = { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}` };
    const result = run(bin, ['--version'], { cwd: app, env });
    expect(result.status).to.equal(1);
    expect(result.stdout).to.equal('');
    expect(result.stderr).to.match(/^matrix-scim-bridge needs Node\.js 22\.13 or newer; found Node\.js \d+\.\d+\.\d+ \(.+\)\n$/);
    expect(result.stderr.split('\n')).to.have.length(2);
  });
});
