import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../../scripts/lib/postgres.ts';
import { openPostgresStore } from '../../src/store/postgres.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';

/**
 * The store engines every store test runs on. PostgreSQL is a real server: one throw-away
 * cluster per test process, started on first use (a second or two) from the machine's
 * PostgreSQL binaries, with a new database per store. MSB_TEST_PG_URL points the tests at
 * an existing server instead (a superuser's URL; databases are created in it).
 */
export type Engine = 'sqlite' | 'postgres';
export const ENGINES: readonly Engine[] = ['sqlite', 'postgres'];

let cluster: Promise<{ url(database: string): string; server?: PostgresServer }> | undefined;

function sharedCluster() {
  cluster ??= (async () => {
    const given = process.env['MSB_TEST_PG_URL'];
    if (given) {
      return {
        url: (database: string) => {
          const url = new URL(given);
          url.pathname = `/${database}`;
          return url.toString();
        },
      };
    }
    const server = await startPostgres();
    return { url: (database: string) => server.url(database), server };
  })();
  return cluster;
}

/**
 * A new, empty PostgreSQL database, its default collation ICU English (not byte order), so
 * that the store's own COLLATE "C" is what makes it agree with SQLite. Returns its URL.
 */
export async function freshPostgresDatabase(): Promise<string> {
  const { url } = await sharedCluster();
  const name = `msb_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url('postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'`);
  } finally {
    await admin.end();
  }
  return url(name);
}

/** A new, empty store on `engine`. */
export async function openTestStore(engine: Engine, poolSize = 10): Promise<SqlStore> {
  if (engine === 'sqlite') return openSqliteStore(':memory:');
  return openPostgresStore({ url: await freshPostgresDatabase(), ssl: { mode: 'disable' }, poolSize });
}

/** Starts the shared server now (a root hook does, so that no test's timeout pays for it). */
export async function startTestPostgres(): Promise<void> {
  await sharedCluster();
}

/** Stops the cluster this process started (a mocha root hook calls it; the harness's watchdog covers a crash). */
export async function stopTestPostgres(): Promise<void> {
  const started = await cluster;
  cluster = undefined;
  await started?.server?.stop();
}
