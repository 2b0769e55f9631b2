import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Kysely, SqliteDialect } from 'kysely';
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
  return SqlStore.open(db, { flavor: SQLITE_FLAVOR, soleWriter: true, describe: file, locks: new LocalLocks() });
}
