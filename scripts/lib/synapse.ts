// A real Synapse homeserver for the end-to-end tests and the demo, run from a
// Python virtualenv kept in the user's cache directory (no Docker needed).
//
// Cache layout, keyed by the pinned Synapse version:
//   ${XDG_CACHE_HOME:-~/.cache}/matrix-scim-bridge/synapse-<version>/
//     bin/python ...      the virtualenv (built in a temp dir, renamed into place)
//     template.db         an empty, fully migrated SQLite database (written atomically)
//     psycopg2.ok         psycopg2 is importable (Synapse on PostgreSQL); venvs built
//                         before that was needed get it on first use (ensurePsycopg2)
//
// The template database holds no users, so it suits any server_name: Synapse only
// refuses a database whose existing users belong to another server.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import pg from 'pg';

export const SYNAPSE_VERSION = '1.163.2';
/** Synapse's PostgreSQL driver, as a wheel (no compiler or libpq headers needed). */
export const PSYCOPG2_REQUIREMENT = 'psycopg2-binary==2.9.13';

type Log = (msg: string) => void;
const quiet: Log = () => {};

/** `${XDG_CACHE_HOME:-~/.cache}/matrix-scim-bridge/synapse-<version>` */
export function synapseCacheDir(version: string = SYNAPSE_VERSION): string {
  const cacheHome = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(cacheHome, 'matrix-scim-bridge', `synapse-${version}`);
}

/** Runs a command to completion with its output in `logFile`; rejects with the log's tail. */
async function run(cmd: string, args: string[], logFile: string, cwd?: string): Promise<void> {
  const out = await open(logFile, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', out.fd, out.fd], cwd });
    const code = await new Promise<number | null>((ok, fail) => {
      child.once('error', fail);
      child.once('exit', (c) => ok(c));
    });
    if (code !== 0) {
      throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${await tail(logFile)}`);
    }
  } finally {
    await out.close();
  }
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

/**
 * Makes sure the cached virtualenv with matrix-synapse==SYNAPSE_VERSION exists and
 * returns its python. A missing cache is built in a temporary sibling directory and
 * renamed into place, so an interrupted install never leaves a half-built cache.
 */
export async function ensureSynapseVenv(log: Log = quiet): Promise<string> {
  const dir = synapseCacheDir();
  const python = join(dir, 'bin', 'python');
  if (existsSync(python)) return python;

  await mkdir(join(dir, '..'), { recursive: true });
  const tmp = await mkdtemp(`${dir}.building-`);
  const logFile = `${tmp}.log`;
  const started = Date.now();
  try {
    log(`creating a Python virtualenv for Synapse ${SYNAPSE_VERSION} in ${dir} (about a minute)`);
    await run(process.env['MSB_PYTHON'] || 'python3', ['-m', 'venv', tmp], logFile);
    await run(
      join(tmp, 'bin', 'python'),
      ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', `matrix-synapse==${SYNAPSE_VERSION}`, PSYCOPG2_REQUIREMENT],
      logFile,
    );
    await writeFile(join(tmp, 'psycopg2.ok'), `${PSYCOPG2_REQUIREMENT}\n`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process finished first: use its venv and drop ours.
      if (!existsSync(python)) throw err;
    }
    log(`Synapse virtualenv ready in ${Math.round((Date.now() - started) / 1000)} s`);
    return python;
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await rm(logFile, { force: true });
  }
}

/**
 * Makes sure the cached virtualenv can drive PostgreSQL (psycopg2) and returns its python.
 * A venv built before PostgreSQL was supported gets psycopg2-binary installed into it once;
 * the marker file psycopg2.ok records that it imports.
 */
export async function ensurePsycopg2(log: Log = quiet): Promise<string> {
  const python = await ensureSynapseVenv(log);
  const marker = join(synapseCacheDir(), 'psycopg2.ok');
  if (existsSync(marker)) return python;
  const importable = await promisify(execFile)(python, ['-c', 'import psycopg2']).then(() => true, () => false);
  if (!importable) {
    const logFile = join(synapseCacheDir(), `psycopg2-install-${randomBytes(4).toString('hex')}.log`);
    const started = Date.now();
    log(`installing ${PSYCOPG2_REQUIREMENT} into the Synapse virtualenv (Synapse on PostgreSQL)`);
    try {
      await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', PSYCOPG2_REQUIREMENT], logFile);
    } finally {
      await rm(logFile, { force: true });
    }
    log(`psycopg2 installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  await writeFile(marker, `${PSYCOPG2_REQUIREMENT}\n`);
  return python;
}

/** The version of matrix-synapse importable by `python` (as installed, not as pinned). */
export async function installedSynapseVersion(python: string): Promise<string> {
  const { stdout } = await promisify(execFile)(python, ['-c', 'import synapse; print(synapse.__version__)']);
  return stdout.trim();
}

/**
 * Makes sure `template.db`, an empty SQLite database with Synapse's schema migrated
 * and every background update already run, exists in the cache, and returns its path.
 * Built once with Synapse's own `update_synapse_database` script (no server start);
 * the snapshot is taken with VACUUM INTO and renamed into place.
 */
export async function ensureSynapseTemplateDb(log: Log = quiet): Promise<string> {
  const python = await ensureSynapseVenv(log);
  const template = join(synapseCacheDir(), 'template.db');
  if (existsSync(template)) return template;

  const work = await mkdtemp(join(synapseCacheDir(), 'template-build-'));
  const snapshot = `${template}.tmp-${randomBytes(4).toString('hex')}`;
  const started = Date.now();
  try {
    log(`migrating an empty Synapse ${SYNAPSE_VERSION} database for the template`);
    const hs = await Synapse.create({ dir: work, useTemplate: false });
    const logFile = join(work, 'template-build.log');
    await run(
      python,
      ['-m', 'synapse._scripts.update_synapse_database', '--database-config', hs.paths.config, '--run-background-updates'],
      logFile,
      work,
    );
    const script = 'import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute("VACUUM INTO ?",(sys.argv[2],))\nc.close()';
    await run(python, ['-c', script, hs.paths.db, snapshot], logFile);
    await rename(snapshot, template);
    log(`Synapse template database ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return template;
  } finally {
    await rm(snapshot, { force: true });
    await rm(work, { recursive: true, force: true });
  }
}

/** A PostgreSQL database for Synapse (created with UTF8 encoding and C collation, from template0). */
export interface SynapsePostgres {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  /** Connection pool bounds (psycopg2 cp_min / cp_max); default 1 and 5. */
  poolMin?: number;
  poolMax?: number;
}

export interface SynapseOptions {
  /** Working directory for config, database, media and logs (created). */
  dir: string;
  /** Default 'localhost'. */
  serverName?: string;
  /** Client listener port on 127.0.0.1; default: a free port. */
  port?: number;
  appserviceRegistrationFiles?: string[];
  /** Top-level homeserver.yaml keys, merged over the defaults. */
  extraConfig?: Record<string, unknown>;
  /**
   * Synapse's own database on PostgreSQL instead of SQLite in `dir`. The first start
   * migrates the empty database (no template: `useTemplate` does not apply).
   */
  postgres?: SynapsePostgres;
  /** Start from the cached migrated SQLite database (default true); ignored if `dir` already has one. */
  useTemplate?: boolean;
  /** How long start() waits for the client API (default 120 s; 300 s on PostgreSQL, which migrates on first start). */
  startTimeoutMs?: number;
  log?: Log;
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => (port ? ok(port) : fail(new Error('no free port'))));
    });
  });
}

/** A fresh ed25519 signing key in Synapse's one-line format: `ed25519 <version> <unpadded base64 seed>`. */
function newSigningKey(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const d = privateKey.export({ format: 'jwk' }).d;
  if (!d) throw new Error('could not export an ed25519 seed');
  const seed = Buffer.from(d, 'base64url').toString('base64').replace(/=+$/, '');
  return `ed25519 a_${randomBytes(3).toString('hex')} ${seed}\n`;
}

/** Rate limits high enough that tests never meet them (as Complement does). */
function relaxedRateLimits(): Record<string, unknown> {
  const lax = { per_second: 9999, burst_count: 9999 };
  const keys = [
    'rc_message', 'rc_registration', 'rc_registration_token_validity', 'rc_admin_redaction',
    'rc_joins_per_room', 'rc_3pid_validation', 'rc_third_party_invite', 'rc_media_create',
    'rc_delayed_event_mgmt', 'rc_room_creation', 'rc_reports', 'rc_user_directory',
    'rc_profile', 'rc_key_requests',
  ];
  return {
    ...Object.fromEntries(keys.map((k) => [k, lax])),
    rc_login: { address: lax, account: lax, failed_attempts: lax },
    rc_joins: { local: lax, remote: lax },
    rc_invites: { per_room: lax, per_user: lax, per_issuer: lax },
    rc_presence: { per_user: lax },
  };
}

function logConfig(file: string): string {
  return yaml.dump({
    version: 1,
    formatters: {
      precise: { format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s' },
    },
    handlers: {
      file: { class: 'logging.FileHandler', formatter: 'precise', filename: file, encoding: 'utf8' },
      // WARNING and up also go to stderr, which lands in synapse.out.log.
      console: { class: 'logging.StreamHandler', formatter: 'precise', level: 'WARNING' },
    },
    loggers: {
      'synapse.storage.SQL': { level: 'WARNING' },
      'synapse.access': { level: 'WARNING' },
    },
    root: { level: 'INFO', handlers: ['file', 'console'] },
    disable_existing_loggers: false,
  });
}

interface Paths {
  config: string;
  db: string;
  signingKey: string;
  /** The process's stdout and stderr. */
  out: string;
  /** Synapse's own log (INFO). */
  log: string;
}

/** Synapse's `database` section: SQLite in `dir`, or PostgreSQL through psycopg2. */
function databaseConfig(paths: Paths, postgres: SynapsePostgres | undefined): Record<string, unknown> {
  if (!postgres) return { name: 'sqlite3', args: { database: paths.db } };
  return {
    name: 'psycopg2',
    args: {
      user: postgres.user,
      ...(postgres.password !== undefined ? { password: postgres.password } : {}),
      dbname: postgres.database,
      host: postgres.host,
      port: postgres.port,
      cp_min: postgres.poolMin ?? 1,
      cp_max: postgres.poolMax ?? 5,
    },
  };
}

export class Synapse {
  readonly url: string;
  readonly serverName: string;
  readonly paths: Paths;
  readonly #python: string;
  readonly #sharedSecret: string;
  readonly #startTimeoutMs: number;
  readonly #postgres: SynapsePostgres | undefined;
  readonly #log: Log;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #reportedVersion: string | undefined;
  readonly #killOnExit = (): void => {
    this.#child?.kill('SIGKILL');
  };

  private constructor(python: string, url: string, serverName: string, paths: Paths, secret: string, opts: SynapseOptions) {
    this.#python = python;
    this.url = url;
    this.serverName = serverName;
    this.paths = paths;
    this.#sharedSecret = secret;
    this.#startTimeoutMs = opts.startTimeoutMs ?? (opts.postgres ? 300_000 : 120_000);
    this.#postgres = opts.postgres;
    this.#log = opts.log ?? quiet;
  }

  /** The version the running server reports, or the pinned one before start(). */
  get version(): string {
    return this.#reportedVersion ?? SYNAPSE_VERSION;
  }

  /** The homeserver's process id while it runs (benchmarks read its CPU time from /proc). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Writes the config (and copies the template database); does not start. */
  static async create(opts: SynapseOptions): Promise<Synapse> {
    const log = opts.log ?? quiet;
    const python = opts.postgres ? await ensurePsycopg2(log) : await ensureSynapseVenv(log);
    const dir = resolve(opts.dir);
    await mkdir(join(dir, 'media_store'), { recursive: true });
    const serverName = opts.serverName ?? 'localhost';
    const port = opts.port ?? (await freePort());
    const url = `http://127.0.0.1:${port}`;
    const paths: Paths = {
      config: join(dir, 'homeserver.yaml'),
      db: join(dir, 'homeserver.db'),
      signingKey: join(dir, 'signing.key'),
      out: join(dir, 'synapse.out.log'),
      log: join(dir, 'homeserver.log'),
    };

    if (!existsSync(paths.signingKey)) await writeFile(paths.signingKey, newSigningKey(), { mode: 0o600 });
    if (!opts.postgres && !existsSync(paths.db) && opts.useTemplate !== false) {
      await copyFile(await ensureSynapseTemplateDb(log), paths.db);
    }
    const logConfigPath = join(dir, 'log.config.yaml');
    await writeFile(logConfigPath, logConfig(paths.log));

    const secret = randomBytes(24).toString('hex');
    const config: Record<string, unknown> = {
      server_name: serverName,
      pid_file: join(dir, 'homeserver.pid'),
      public_baseurl: `${url}/`,
      report_stats: false,
      listeners: [
        {
          port,
          bind_addresses: ['127.0.0.1'],
          type: 'http',
          tls: false,
          x_forwarded: false,
          resources: [{ names: ['client'], compress: false }],
        },
      ],
      database: databaseConfig(paths, opts.postgres),
      // A new PostgreSQL database's background updates run flat out (start() waits for them).
      ...(opts.postgres ? { background_updates: { sleep_enabled: false } } : {}),
      log_config: logConfigPath,
      media_store_path: join(dir, 'media_store'),
      signing_key_path: paths.signingKey,
      trusted_key_servers: [],
      suppress_key_server_warning: true,
      enable_registration: false,
      registration_shared_secret: secret,
      macaroon_secret_key: randomBytes(24).toString('hex'),
      form_secret: randomBytes(24).toString('hex'),
      bcrypt_rounds: 4,
      app_service_config_files: (opts.appserviceRegistrationFiles ?? []).map((f) => resolve(f)),
      enable_media_repo: true,
      url_preview_enabled: false,
      enable_metrics: false,
      ...relaxedRateLimits(),
      ...opts.extraConfig,
    };
    await writeFile(paths.config, `# Written by scripts/lib/synapse.ts\n${yaml.dump(config, { noRefs: true })}`);
    return new Synapse(python, url, serverName, paths, secret, opts);
  }

  /** Spawns the homeserver and waits until the client API answers. */
  async start(): Promise<void> {
    if (this.#child) throw new Error('Synapse already started');
    const out = await open(this.paths.out, 'a');
    const started = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(this.#python, ['-m', 'synapse.app.homeserver', '-c', this.paths.config], {
        cwd: resolve(this.paths.config, '..'),
        stdio: ['ignore', out.fd, out.fd],
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
      });
    } finally {
      await out.close();
    }
    this.#child = child;
    process.once('exit', this.#killOnExit);
    let exitCode: string | undefined;
    this.#exited = new Promise((ok) => {
      const done = (why: string): void => {
        exitCode = why;
        process.removeListener('exit', this.#killOnExit);
        ok();
      };
      child.once('error', (err) => done(`spawn error: ${err.message}`));
      child.once('exit', (code, signal) => done(signal ? `signal ${signal}` : `code ${code}`));
    });

    const deadline = started + this.#startTimeoutMs;
    while (exitCode === undefined) {
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`Synapse did not answer at ${this.url} within ${this.#startTimeoutMs} ms; ${this.paths.out}:\n${await tail(this.paths.out)}`);
      }
      try {
        const res = await fetch(`${this.url}/_matrix/client/versions`, { signal: AbortSignal.timeout(2_000) });
        if (res.ok) break;
      } catch {
        // not listening yet
      }
      await new Promise((ok) => setTimeout(ok, 200));
    }
    if (exitCode !== undefined) {
      this.#child = undefined;
      throw new Error(`Synapse exited during start-up (${exitCode}); ${this.paths.out}:\n${await tail(this.paths.out)}`);
    }
    const res = await fetch(`${this.url}/_synapse/admin/v1/server_version`);
    const body = (await res.json()) as { server_version?: unknown };
    if (typeof body.server_version === 'string') this.#reportedVersion = body.server_version;
    if (this.#postgres) await this.#backgroundUpdatesDone(this.#postgres, deadline);
    this.#log(`Synapse ${this.version} up at ${this.url} in ${Date.now() - started} ms`);
  }

  /**
   * A new PostgreSQL database gets part of its schema from background updates that run
   * after Synapse answers (on SQLite the template database has them done): some unique
   * indexes among them, without which some writes fail (reactivating an account upserts
   * into profiles ON CONFLICT (full_user_id): a 500 until its index exists). Waits for the
   * background_updates table to empty, as a long-running homeserver's would be.
   */
  async #backgroundUpdatesDone(postgres: SynapsePostgres, deadline: number): Promise<void> {
    const client = new pg.Client({
      host: postgres.host,
      port: postgres.port,
      user: postgres.user,
      ...(postgres.password !== undefined ? { password: postgres.password } : {}),
      database: postgres.database,
    });
    await client.connect();
    try {
      for (;;) {
        const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM background_updates');
        if (Number(rows[0]?.n) === 0) return;
        if (Date.now() > deadline) throw new Error(`Synapse's background updates were not done within ${this.#startTimeoutMs} ms (${rows[0]?.n} left)`);
        await new Promise((ok) => setTimeout(ok, 200));
      }
    } finally {
      await client.end();
    }
  }

  /** SIGTERM, then SIGKILL if the process has not exited after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((ok) => {
        timer = setTimeout(() => ok(true), timeoutMs);
      });
      if (await Promise.race([exited.then(() => false), timedOut])) {
        child.kill('SIGKILL');
        await exited;
      }
      clearTimeout(timer);
    }
    this.#child = undefined;
    this.#exited = undefined;
  }

  /** Creates a user with shared-secret registration (`/_synapse/admin/v1/register`). */
  async registerUser(localpart: string, password: string, admin: boolean): Promise<{ userId: string; accessToken: string }> {
    const endpoint = `${this.url}/_synapse/admin/v1/register`;
    const nonceRes = await fetch(endpoint);
    const { nonce } = (await nonceRes.json()) as { nonce?: unknown };
    if (typeof nonce !== 'string') throw new Error(`no registration nonce from Synapse (HTTP ${nonceRes.status})`);
    const mac = createHmac('sha1', this.#sharedSecret)
      .update(`${nonce}\0${localpart}\0${password}\0${admin ? 'admin' : 'notadmin'}`)
      .digest('hex');
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ nonce, username: localpart, password, admin, mac }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    if (!res.ok || typeof body['user_id'] !== 'string' || typeof body['access_token'] !== 'string') {
      throw new Error(`shared-secret registration of ${localpart} failed: HTTP ${res.status} ${JSON.stringify(body)}`);
    }
    return { userId: body['user_id'], accessToken: body['access_token'] };
  }

  /** Password login; returns the raw outcome so tests can assert on errors such as M_USER_LOCKED. */
  async login(localpart: string, password: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.url}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: localpart },
        password,
      }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
}
