// A throw-away PostgreSQL cluster for the end-to-end tests, the benches and the demo,
// run from the server binaries installed on this machine (no Docker needed).
//
// startPostgres() runs initdb into a fresh directory, starts the server on a free
// loopback port (and a unix socket in that directory) and returns its URLs; stop() shuts
// it down and removes the directory. The cluster is tuned for speed, not safety: fsync
// off, a small shared_buffers, enough connections for several bridge replicas.
//
// Access: the superuser `postgres` with a random password over TCP (scram-sha-256), trust
// over the unix socket (whose directory only the server's OS user can enter). Nothing
// listens beyond 127.0.0.1.
//
// initdb and the server refuse to run as root: as root they run as the OS user
// `postgres` (MSB_PG_USER) through runuser (or su), and the cluster directory is handed
// to that user. MSB_PG_BIN names the directory of initdb and pg_ctl (default
// /usr/lib/postgresql/15/bin).
//
// Nothing outlives the process that started it: a small watchdog shell, holding the read
// end of a pipe from this process, shuts the server down (SIGQUIT, "immediate") and
// removes the directory as soon as the pipe closes, however this process ends.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from './synapse.ts';

type Log = (msg: string) => void;
const quiet: Log = () => {};

export const DEFAULT_PG_BIN = '/usr/lib/postgresql/15/bin';
const SUPERUSER = 'postgres';
const HOST = '127.0.0.1';

export interface PostgresOptions {
  /** The cluster's directory (created, and removed by stop()); default: a new temp directory. */
  dir?: string;
  /** Directory of initdb and pg_ctl; default $MSB_PG_BIN, else /usr/lib/postgresql/15/bin. */
  binDir?: string;
  /** Default 200: room for several bridge processes with their pools, and a Synapse. */
  maxConnections?: number;
  log?: Log;
}

/** What a client needs to reach one database (Synapse's psycopg2 `args` take these). */
export interface PostgresConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface PostgresServer {
  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  url(database: string): string;
  /** The same database as fields (host, port, user, password, database). */
  connection(database: string): PostgresConnection;
  readonly port: number;
  readonly host: string;
  /** The unix socket's directory (socketUrl() connects through it). */
  readonly socketDir: string;
  /** postgres://postgres@/<database>?host=<socketDir>&port=<port>: the unix socket, no password (trust). */
  socketUrl(database: string): string;
  readonly user: string;
  readonly password: string;
  /** The cluster's directory (data, socket, log). */
  readonly dir: string;
  /** The server's log file. */
  readonly logFile: string;
  /** CREATE DATABASE (UTF8, C collation, from template0, as Synapse requires); returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (immediate shutdown) and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

/** Why the harness cannot run here, naming what is missing and the fix. */
export class PostgresHarnessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PostgresHarnessError';
  }
}

/** How to run the server's programs: directly, or as another OS user when we are root. */
interface Runner {
  osUser: string | undefined;
  uid: number | undefined;
  gid: number | undefined;
  command(program: string, args: string[]): [string, string[]];
}

function which(program: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    if (dir && existsSync(join(dir, program))) return join(dir, program);
  }
  return undefined;
}

function shellWord(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function runner(): Runner {
  if (process.getuid?.() !== 0) return { osUser: undefined, uid: undefined, gid: undefined, command: (p, a) => [p, a] };
  const osUser = process.env['MSB_PG_USER'] || 'postgres';
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', osUser], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', osUser], { encoding: 'utf8' }).trim());
  } catch {
    throw new PostgresHarnessError(
      `PostgreSQL refuses to run as root and there is no OS user "${osUser}" to run it as: create one, or name another with MSB_PG_USER`,
    );
  }
  const runuser = which('runuser');
  if (runuser) return { osUser, uid, gid, command: (p, a) => [runuser, ['-u', osUser, '--', p, ...a]] };
  const su = which('su');
  if (!su) throw new PostgresHarnessError('PostgreSQL refuses to run as root, and neither runuser nor su is here to switch to another user');
  return { osUser, uid, gid, command: (p, a) => [su, [osUser, '-s', '/bin/sh', '-c', [p, ...a].map(shellWord).join(' ')]] };
}

function binaries(binDir: string): { initdb: string; pgCtl: string } {
  const initdb = join(binDir, 'initdb');
  const pgCtl = join(binDir, 'pg_ctl');
  const missing = [initdb, pgCtl].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new PostgresHarnessError(
      `PostgreSQL server binaries not found: ${missing.join(', ')} missing. Install the PostgreSQL server ` +
        `(e.g. apt-get install postgresql) or point MSB_PG_BIN at the directory holding initdb and pg_ctl`,
    );
  }
  return { initdb, pgCtl };
}

async function tail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

/** Runs one of the server's programs to completion, its output appended to `logFile`. */
async function run(r: Runner, program: string, args: string[], logFile: string, cwd: string): Promise<void> {
  const [cmd, argv] = r.command(program, args);
  const out = await open(logFile, 'a');
  try {
    // A session of its own: a Ctrl-C in the terminal reaches the caller, which stops the
    // server in order, not the server (pg_ctl's postmaster inherits this session).
    const child = spawn(cmd, argv, { stdio: ['ignore', out.fd, out.fd], cwd, detached: true });
    const code = await new Promise<number | null>((ok, fail) => {
      child.once('error', fail);
      child.once('exit', (c) => ok(c));
    });
    if (code !== 0) throw new PostgresHarnessError(`${program} ${args.join(' ')} exited with ${code}:\n${await tail(logFile)}`);
  } finally {
    await out.close();
  }
}

/** The postmaster's pid, from the first line of postmaster.pid, if it runs. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The watchdog: waits for its stdin (a pipe from this process) to close, then shuts the
 * server down and removes the cluster directory. Detached, so that it outlives us.
 */
function startWatchdog(dataDir: string, dir: string): ChildProcess {
  const script = [
    'read _ignored',
    'pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)',
    'if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then',
    // The server removes postmaster.pid as it exits (kill -0 would wait on a zombie).
    '  i=0; while [ -f "$1/postmaster.pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
    'fi',
    'rm -rf "$2"',
  ].join('\n');
  const child = spawn('/bin/sh', ['-c', script, 'msb-postgres-watchdog', dataDir, dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return child;
}

function checkDatabaseName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new PostgresHarnessError(`database name ${JSON.stringify(name)}: use lower-case letters, digits and _`);
  }
}

/** initdb, configure and start a cluster; see the top of this file. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const log = options.log ?? quiet;
  const binDir = options.binDir ?? (process.env['MSB_PG_BIN'] || DEFAULT_PG_BIN);
  const { initdb, pgCtl } = binaries(binDir);
  const r = runner();

  const dir = options.dir ? resolve(options.dir) : await mkdtemp(join(tmpdir(), 'msb-pg-'));
  await mkdir(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  // Unix socket paths are limited to 107 bytes: fall back to a short temp directory.
  const socketDir = join(dir, 'socket').length + 20 < 100 ? join(dir, 'socket') : await mkdtemp(join(tmpdir(), 'msb-pgs-'));
  await mkdir(socketDir, { recursive: true, mode: 0o700 });
  const logFile = join(dir, 'postgres.log');
  const password = randomBytes(18).toString('hex');
  const pwFile = join(dir, 'pwfile');
  await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
  await writeFile(logFile, '');
  if (r.uid !== undefined && r.gid !== undefined) {
    for (const path of [dir, socketDir, pwFile, logFile]) await chown(path, r.uid, r.gid);
    await chmod(dir, 0o700);
  }

  const watchdog = startWatchdog(dataDir, dir);
  const killOnExit = (): void => {
    const pid = postmasterPid(dataDir);
    if (pid) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killOnExit);

  let port = 0;
  try {
    let started = Date.now();
    await run(
      r,
      initdb,
      ['-D', dataDir, '-E', 'UTF8', '--locale=C', '-U', SUPERUSER, `--pwfile=${pwFile}`,
        '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '--no-instructions'],
      logFile,
      dir,
    );
    await rm(pwFile, { force: true });
    log(`PostgreSQL: initdb in ${Date.now() - started} ms (${dataDir})`);

    const maxConnections = options.maxConnections ?? 200;
    const settings = {
      listen_addresses: `'${HOST}'`,
      unix_socket_directories: `'${socketDir}'`,
      max_connections: String(maxConnections),
      shared_buffers: "'32MB'",
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      // Shared memory segments as files in the data directory: a container's small /dev/shm is no limit.
      dynamic_shared_memory_type: 'mmap',
      logging_collector: 'off',
      log_min_messages: 'warning',
    };
    const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n');
    await appendFile(join(dataDir, 'postgresql.conf'), `\n# scripts/lib/postgres.ts\n${conf}\n`);

    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      started = Date.now();
      try {
        await run(r, pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-s', '-o', `-p ${port}`], logFile, dir);
        log(`PostgreSQL: server up on ${HOST}:${port} in ${Date.now() - started} ms`);
        break;
      } catch (error) {
        // Someone may have taken the port between freePort() and the server's bind.
        if (attempt >= 3) throw error;
      }
    }
  } catch (error) {
    process.removeListener('exit', killOnExit);
    watchdog.stdin?.end();
    throw error;
  }

  const url = (database: string): string =>
    `postgres://${SUPERUSER}:${password}@${HOST}:${port}/${encodeURIComponent(database)}`;
  let stopped: Promise<void> | undefined;

  return {
    url,
    socketUrl: (database) =>
      `postgres://${SUPERUSER}@/${encodeURIComponent(database)}?host=${encodeURIComponent(socketDir)}&port=${port}`,
    connection: (database) => ({ host: HOST, port, user: SUPERUSER, password, database }),
    port,
    host: HOST,
    socketDir,
    user: SUPERUSER,
    password,
    dir,
    logFile,
    async createDatabase(name: string): Promise<string> {
      checkDatabaseName(name);
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        process.removeListener('exit', killOnExit);
        watchdog.kill('SIGKILL');
        if (postmasterPid(dataDir) !== undefined) {
          try {
            await run(r, pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30', '-s'], logFile, dir);
          } catch (error) {
            // Already gone (say, killed with its session): only a server still running is a failure.
            if (postmasterPid(dataDir) !== undefined) killOnExit();
            log(`PostgreSQL: pg_ctl stop: ${(error as Error).message.split('\n')[0]}`);
          }
        }
        await rm(dir, { recursive: true, force: true });
        if (!socketDir.startsWith(dir)) await rm(socketDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
