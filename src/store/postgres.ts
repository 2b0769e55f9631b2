import { readFileSync } from 'node:fs';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { POSTGRES_FLAVOR } from './filterSql.ts';
import { PostgresLocks, ReplicaLock } from './postgresLocks.ts';
import { SqlStore } from './sqlStore.ts';
import type { Database } from './tables.ts';

export interface PostgresOptions {
  /** postgres://user:password@host:port/database (a secret: never logged). */
  url: string;
  ssl: { mode: 'disable' | 'require' | 'verify-full'; caFile?: string | undefined };
  poolSize: number;
}

/** The connection string without its password, for messages. */
export function describePostgresUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'a PostgreSQL database (the connection string does not parse as a URL)';
  }
}

/** The pg client's TLS settings for database.ssl. */
export function sslOption(ssl: PostgresOptions['ssl']): pg.PoolConfig['ssl'] {
  if (ssl.mode === 'disable') return false;
  if (ssl.mode === 'require') return { rejectUnauthorized: false };
  return { rejectUnauthorized: true, ...(ssl.caFile ? { ca: readFileSync(ssl.caFile, 'utf8') } : {}) };
}

/**
 * Opens the store on a PostgreSQL database shared by any number of bridge replicas, and
 * brings its schema up to date (Kysely's migrator takes an advisory lock, so replicas that
 * start together migrate once). Fails here, not on the first request, when the server
 * cannot be reached.
 */
export async function openPostgresStore(options: PostgresOptions): Promise<SqlStore> {
  const poolOf = (max: number) => {
    const pool = new pg.Pool({
      connectionString: options.url,
      ssl: sslOption(options.ssl),
      max,
      // A replica whose connections all broke (server restart, failover) gets new ones.
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 10_000,
    });
    // An idle connection the server drops must not crash the process: the pool replaces it.
    pool.on('error', () => undefined);
    return pool;
  };
  const pool = poolOf(options.poolSize);
  // Each lock held is a connection held (see PostgresLocks): a pool of their own.
  const lockPool = poolOf(options.poolSize);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await db.destroy();
    await lockPool.end();
    throw new Error(`cannot connect to ${describePostgresUrl(options.url)}: ${(error as Error).message}`);
  }
  const replica = new ReplicaLock(() => new pg.Client({ connectionString: options.url, ssl: sslOption(options.ssl) }));
  try {
    await replica.hold();
  } catch (error) {
    await db.destroy();
    await lockPool.end();
    throw new Error(`cannot take this replica's lock on ${describePostgresUrl(options.url)}: ${(error as Error).message}`);
  }
  return SqlStore.open(db, {
    flavor: POSTGRES_FLAVOR,
    soleWriter: false,
    describe: describePostgresUrl(options.url),
    locks: new PostgresLocks(lockPool),
    replica,
    onClose: async () => {
      await lockPool.end();
      await replica.release();
    },
  });
}
