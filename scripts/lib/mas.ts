// A real Matrix Authentication Service (MAS) for the end-to-end tests and the demo, run
// from an installation the developer already has. The project never builds MAS: MAS_HOME
// names an installation laid out as MAS's release archives are:
//   $MAS_HOME/mas-cli
//   $MAS_HOME/share/{templates/, translations/, policy.wasm, manifest.json, assets/}
//
// startMas() writes a generated config into its directory (fresh secrets from
// `mas-cli config generate`; an admin client allowed the urn:mas:admin scope; an upstream
// OIDC provider that is never contacted, so that upstream links can be made through the
// admin API), checks it, migrates the database and runs `mas-cli server` until stop()
// or this process's exit. MAS needs PostgreSQL (see postgres.ts) and, to create users,
// a Synapse that delegates to it (see bootstrap.ts, option `mas`).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { freePort } from './synapse.ts';

type Log = (msg: string) => void;
const quiet: Log = () => {};

/** The admin client in the generated config (client ids are ULIDs). */
export const MAS_ADMIN_CLIENT_ID = '01JZ8SCMBR1DGE0ADM1NC11ENT';
/** The made-up upstream OIDC provider in the generated config (never contacted). */
export const MAS_UPSTREAM_PROVIDER_ID = '01JZ8SCMBR1DGE0VPSTREAM1DP';
export const MAS_UPSTREAM_ISSUER = 'https://idp.invalid/';
export const MAS_UPSTREAM_CLIENT_ID = 'matrix-scim-bridge-tests';

/** Why MAS cannot run here, naming what is missing and the fix. */
export class MasHarnessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasHarnessError';
  }
}

/** What an installation must hold, relative to MAS_HOME, and whether each is a directory. */
const LAYOUT: ReadonlyArray<[path: string, directory: boolean]> = [
  ['mas-cli', false],
  ['share/templates', true],
  ['share/translations', true],
  ['share/policy.wasm', false],
  ['share/manifest.json', false],
  ['share/assets', true],
];

function layoutProblem(home: string, path: string, directory: boolean): string | undefined {
  const full = join(home, path);
  if (!existsSync(full)) return `${path} is missing`;
  const isDirectory = statSync(full).isDirectory();
  if (directory && !isDirectory) return `${path} is not a directory`;
  if (!directory && isDirectory) return `${path} is a directory, not a file`;
  if (path === 'mas-cli') {
    try {
      accessSync(full, constants.X_OK);
    } catch {
      return 'mas-cli is not executable';
    }
  }
  return undefined;
}

/**
 * The MAS installation named by MAS_HOME, or undefined when MAS_HOME is unset or empty.
 * Throws a MasHarnessError naming every missing piece when MAS_HOME is set but is not
 * an installation.
 */
export function masHome(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env['MAS_HOME'];
  if (!value) return undefined;
  const home = resolve(value);
  if (!existsSync(home) || !statSync(home).isDirectory()) {
    throw new MasHarnessError(`MAS_HOME=${value}: no such directory. Point MAS_HOME at a MAS installation (mas-cli and share/), or unset it`);
  }
  const problems = LAYOUT.map(([path, directory]) => layoutProblem(home, path, directory)).filter((p) => p !== undefined);
  if (problems.length > 0) {
    throw new MasHarnessError(
      `MAS_HOME=${value} is not a MAS installation: ${problems.join('; ')}. It must be laid out as MAS's ` +
        'release archives are: mas-cli, and share/ with templates/, translations/, policy.wasm, manifest.json and assets/',
    );
  }
  return home;
}

export interface MasOptions {
  /** Working directory (created): config.yaml and the logs. */
  dir: string;
  /** The installation (masHome()). */
  home: string;
  /** MAS's database, e.g. startPostgres()'s createDatabase('mas'). */
  postgresUrl: string;
  homeserver: {
    serverName: string;
    /** Synapse's client URL (MAS calls its /_synapse/mas/ API there). */
    url: string;
  };
  /** MAS's HTTP port on 127.0.0.1; default: a free one. */
  port?: number;
  /** How long start-up may take; default 60 s. */
  startTimeoutMs?: number;
  log?: Log;
}

export interface MasServer {
  /** http://127.0.0.1:<port> (no trailing slash): OAuth, compat login, the admin API at /api/admin/v1. */
  readonly url: string;
  /** The OAuth 2.0 token endpoint. */
  readonly tokenEndpoint: string;
  readonly adminClientId: string;
  readonly adminClientSecret: string;
  /** The secret Synapse's matrix_authentication_service.secret must hold. */
  readonly sharedSecret: string;
  /** The upstream OIDC provider's id in MAS (for upstream-oauth-links). */
  readonly upstreamProviderId: string;
  readonly upstreamIssuer: string;
  readonly configPath: string;
  /** mas-cli server's stdout and stderr. */
  readonly logFile: string;
  readonly pid: number | undefined;
  /** A client-credentials token with scope urn:mas:admin (cached until shortly before it expires). */
  adminToken(): Promise<string>;
  /**
   * Calls MAS's admin API with adminToken(): `path` is below /api/admin/v1 (e.g. '/users').
   * Returns the status and the parsed JSON body ({} when empty).
   */
  adminApi(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Runs `mas-cli <args> -c config.yaml` to completion and returns its stdout. */
  cli(args: string[]): Promise<string>;
  /** SIGTERM, then SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

/** Runs mas-cli to completion with its output appended to `logFile`; rejects with the log's tail. */
async function runCli(binary: string, args: string[], cwd: string, logFile: string): Promise<void> {
  const out = await open(logFile, 'a');
  try {
    const child = spawn(binary, args, { cwd, stdio: ['ignore', out.fd, out.fd] });
    const code = await new Promise<number | null>((ok, fail) => {
      child.once('error', fail);
      child.once('exit', (c) => ok(c));
    });
    if (code !== 0) throw new MasHarnessError(`mas-cli ${args.join(' ')} exited with ${code}; ${logFile}:\n${await tail(logFile)}`);
  } finally {
    await out.close();
  }
}

/** MAS's config: everything MAS needs to serve the admin API, compat login and OAuth. */
function masConfig(opts: {
  home: string;
  secrets: unknown;
  port: number;
  healthPort: number;
  postgresUrl: string;
  serverName: string;
  synapseUrl: string;
  sharedSecret: string;
  adminClientSecret: string;
  upstreamClientSecret: string;
}): Record<string, unknown> {
  const share = join(opts.home, 'share');
  const publicBase = `http://127.0.0.1:${opts.port}/`;
  return {
    http: {
      listeners: [
        {
          name: 'web',
          resources: [
            { name: 'discovery' },
            { name: 'human' },
            { name: 'oauth' },
            { name: 'compat' },
            { name: 'graphql' },
            { name: 'assets', path: `${join(share, 'assets')}/` },
            { name: 'adminapi' },
          ],
          binds: [{ address: `127.0.0.1:${opts.port}` }],
        },
        { name: 'internal', resources: [{ name: 'health' }], binds: [{ host: '127.0.0.1', port: opts.healthPort }] },
      ],
      public_base: publicBase,
    },
    database: { uri: opts.postgresUrl },
    secrets: opts.secrets,
    templates: {
      path: `${join(share, 'templates')}/`,
      assets_manifest: join(share, 'manifest.json'),
      translations_path: `${join(share, 'translations')}/`,
    },
    matrix: { kind: 'synapse', homeserver: opts.serverName, endpoint: `${opts.synapseUrl.replace(/\/$/, '')}/`, secret: opts.sharedSecret },
    policy: { wasm_module: join(share, 'policy.wasm'), data: { admin_clients: [MAS_ADMIN_CLIENT_ID] } },
    // Every test and demo client logs in from 127.0.0.1: MAS's default (3 logins a minute
    // per address) would answer the fourth 429.
    rate_limiting: { login: { per_ip: { burst: 1000, per_second: 100 } } },
    clients: [{ client_id: MAS_ADMIN_CLIENT_ID, client_auth_method: 'client_secret_basic', client_secret: opts.adminClientSecret }],
    upstream_oauth2: {
      providers: [
        {
          id: MAS_UPSTREAM_PROVIDER_ID,
          human_name: 'Test IdP (never contacted)',
          issuer: MAS_UPSTREAM_ISSUER,
          discovery_mode: 'disabled',
          pkce_method: 'always',
          authorization_endpoint: `${MAS_UPSTREAM_ISSUER}authorize`,
          token_endpoint: `${MAS_UPSTREAM_ISSUER}token`,
          jwks_uri: `${MAS_UPSTREAM_ISSUER}jwks`,
          client_id: MAS_UPSTREAM_CLIENT_ID,
          client_secret: opts.upstreamClientSecret,
          token_endpoint_auth_method: 'client_secret_basic',
          scope: 'openid email profile',
        },
      ],
    },
  };
}

/** Writes the config, checks it, migrates the database and starts `mas-cli server`; see the top of this file. */
export async function startMas(options: MasOptions): Promise<MasServer> {
  const log = options.log ?? quiet;
  const home = resolve(options.home);
  const binary = join(home, 'mas-cli');
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const configPath = join(dir, 'config.yaml');
  const setupLog = join(dir, 'mas-setup.log');
  const logFile = join(dir, 'mas.log');
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;

  const { stdout: generated } = await promisify(execFile)(binary, ['config', 'generate'], { cwd: dir, maxBuffer: 16 << 20 });
  const { secrets } = yaml.load(generated) as { secrets?: unknown };
  if (!secrets) throw new MasHarnessError('mas-cli config generate wrote no secrets section');

  const port = options.port ?? (await freePort());
  const healthPort = await freePort();
  const sharedSecret = randomBytes(24).toString('hex');
  const adminClientSecret = randomBytes(24).toString('hex');
  const config = masConfig({
    home,
    secrets,
    port,
    healthPort,
    postgresUrl: options.postgresUrl,
    serverName: options.homeserver.serverName,
    synapseUrl: options.homeserver.url,
    sharedSecret,
    adminClientSecret,
    upstreamClientSecret: randomBytes(24).toString('hex'),
  });
  await writeFile(configPath, `# Written by scripts/lib/mas.ts\n${yaml.dump(config, { noRefs: true, lineWidth: -1 })}`, { mode: 0o600 });

  const cliArgs = (args: string[]): string[] => [...args, '-c', configPath];
  let started = Date.now();
  await runCli(binary, cliArgs(['config', 'check']), dir, setupLog);
  await runCli(binary, cliArgs(['database', 'migrate']), dir, setupLog);
  log(`MAS: config checked and database migrated in ${Date.now() - started} ms`);

  started = Date.now();
  const out = await open(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(binary, cliArgs(['server']), { cwd: dir, stdio: ['ignore', out.fd, out.fd] });
  } finally {
    await out.close();
  }
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let exitReason: string | undefined;
  const exited = new Promise<void>((ok) => {
    const done = (why: string): void => {
      exitReason = why;
      process.removeListener('exit', killOnExit);
      ok();
    };
    child.once('error', (err) => done(`spawn error: ${err.message}`));
    child.once('exit', (code, signal) => done(signal ? `signal ${signal}` : `code ${code}`));
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitReason !== undefined) return;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((ok) => {
        timer = setTimeout(() => ok(true), 10_000);
      });
      if (await Promise.race([exited.then(() => false), timedOut])) {
        child.kill('SIGKILL');
        await exited;
      }
      clearTimeout(timer);
    })();
    return stopping;
  };

  const deadline = started + startTimeoutMs;
  for (;;) {
    if (exitReason !== undefined) throw new MasHarnessError(`mas-cli server exited during start-up (${exitReason}); ${logFile}:\n${await tail(logFile)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new MasHarnessError(`MAS did not report healthy within ${startTimeoutMs} ms; ${logFile}:\n${await tail(logFile)}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${healthPort}/health`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const url = `http://127.0.0.1:${port}`;
  log(`MAS up at ${url} in ${Date.now() - started} ms (files in ${dir})`);

  const tokenEndpoint = `${url}/oauth2/token`;
  let cached: { token: string; renewAt: number } | undefined;
  const adminToken = async (): Promise<string> => {
    if (cached && Date.now() < cached.renewAt) return cached.token;
    const res = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${MAS_ADMIN_CLIENT_ID}:${adminClientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'urn:mas:admin' }).toString(),
    });
    const body = (await res.json()) as { access_token?: unknown; expires_in?: unknown };
    if (!res.ok || typeof body.access_token !== 'string') {
      throw new MasHarnessError(`MAS refused the admin client's token request: HTTP ${res.status} ${JSON.stringify(body)}`);
    }
    const lifetimeS = typeof body.expires_in === 'number' ? body.expires_in : 300;
    cached = { token: body.access_token, renewAt: Date.now() + Math.max(0, lifetimeS - 30) * 1000 };
    return body.access_token;
  };

  const adminApi = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${url}/api/admin/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await adminToken()}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { raw: text };
    }
    const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
    return { status: res.status, body: isObject ? (parsed as Record<string, unknown>) : { value: parsed } };
  };

  const cli = async (args: string[]): Promise<string> => {
    const { stdout } = await promisify(execFile)(binary, cliArgs(args), { cwd: dir, maxBuffer: 16 << 20 });
    return stdout;
  };

  return {
    url,
    tokenEndpoint,
    adminClientId: MAS_ADMIN_CLIENT_ID,
    adminClientSecret,
    sharedSecret,
    upstreamProviderId: MAS_UPSTREAM_PROVIDER_ID,
    upstreamIssuer: MAS_UPSTREAM_ISSUER,
    configPath,
    logFile,
    get pid() {
      return exitReason === undefined ? child.pid : undefined;
    },
    adminToken,
    adminApi,
    cli,
    stop,
  };
}
