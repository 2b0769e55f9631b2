import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Kysely, SqliteDialect, sql, type RawBuilder, type SqlBool } from 'kysely';
import { SQLITE_FLAVOR } from './filterSql.ts';
import { LocalLocks } from './locks.ts';
import { SqlStore } from './sqlStore.ts';
import { NodeSqliteDatabase } from './sqliteDriver.ts';
import type { Database } from './tables.ts';

/**
 * Opens (creating if needed) the SQLite database file and brings its schema up to date. The
 * file is locked for this process (sqliteDriver.ts): SQLite serves one bridge.
 */
export async function openSqliteStore(file: string): Promise<SqlStore> {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new NodeSqliteDatabase(file) }) });
  // The only process on this file: a lease held by anyone else was held by an earlier run.
  const id = randomUUID();
  const replica = { id, alive: (claimant: RawBuilder<unknown>) => sql<SqlBool>`${claimant} = ${id}` };
  return SqlStore.open(db, { flavor: SQLITE_FLAVOR, soleWriter: true, describe: file, locks: new LocalLocks(), replica });
}
