import { existsSync } from 'node:fs';
import { Kysely, PostgresDialect, SqliteDialect, sql, type RawBuilder } from 'kysely';
import pg from 'pg';
import { describePostgresUrl, openPostgresStore, sslOption, type PostgresOptions } from './postgres.ts';
import { openSqliteStore } from './sqlite.ts';
import { DatabaseInUseError, NodeSqliteDatabase } from './sqliteDriver.ts';
import type { Database } from './tables.ts';

/**
 * Copies a SQLite database into an empty PostgreSQL one, row for row: the bridge's move from
 * one process to replicas (the `migrate-database` command). Every row keeps its ids,
 * versions, states, journal generations and retry times, so the bridge carries on where it
 * stopped. The copy is one PostgreSQL transaction: it lands whole or not at all.
 */

type TableName = keyof Database;
type Row = Record<string, unknown>;

interface TableCopy {
  name: TableName;
  columns: readonly string[];
  /** The primary key, which pages are read in order of. */
  key: readonly string[];
  /** Has a serial id, whose sequence must continue after the copied ids. */
  serial: boolean;
}

/**
 * Each column of the table, named once: a column added to tables.ts and not here fails the
 * typecheck (Record needs every key), so that the copy cannot silently drop one.
 */
function table<Name extends TableName>(
  name: Name,
  columns: Record<keyof Database[Name] & string, true>,
  key: readonly (keyof Database[Name] & string)[],
  serial = false,
): TableCopy {
  return { name, columns: Object.keys(columns), key, serial };
}

/** In an order the foreign keys accept: groups before their members. */
const TABLES: readonly TableCopy[] = [
  table(
    'users',
    {
      id: true,
      user_name: true,
      user_name_lower: true,
      external_id: true,
      matrix_id: true,
      display_name: true,
      display_name_lower: true,
      active: true,
      document: true,
      version: true,
      created: true,
      last_modified: true,
      state: true,
      acknowledged: true,
      applied: true,
      owner: true,
    },
    ['id'],
  ),
  table(
    'groups',
    {
      id: true,
      display_name: true,
      display_name_lower: true,
      external_id: true,
      document: true,
      version: true,
      created: true,
      last_modified: true,
      state: true,
      applied: true,
      owner: true,
    },
    ['id'],
  ),
  table('group_members', { group_id: true, user_id: true }, ['group_id', 'user_id']),
  table('room_members', { group_id: true, room_id: true, matrix_id: true, state: true }, ['group_id', 'room_id', 'matrix_id']),
  table(
    'journal',
    // claimed_by names a process of the old database: none lives on the new one, so
    // whatever it held is taken over at once by the first replica's worker.
    { id: true, resource_id: true, action: true, attempts: true, not_before: true, last_error: true, created: true, generation: true, claimed_by: true },
    ['id'],
    true,
  ),
  // held_by, as claimed_by above: the old processes are gone, the first replica takes them.
  table('notice_outbox', { id: true, text: true, html: true, held_at: true, held_by: true }, ['id'], true),
  table('leftover_accounts', { matrix_id: true, left_at: true }, ['matrix_id'], false),
];

/** Rows read and written per statement: 16 columns × 1,000 stays far below PostgreSQL's 65,535 parameters. */
const BATCH_ROWS = 1_000;

/** How long the copy waits for a table another process is writing before it gives up. */
const LOCK_TIMEOUT = '10s';

/** The copy did not start, for a reason the operator can fix; the message says how. */
export class CopyRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CopyRefusedError';
  }
}

export interface CopyOptions {
  /** The SQLite file to copy from. No bridge may have it open. */
  source: string;
  /** The PostgreSQL database to copy into: its tables are created if need be; it must hold no rows. */
  target: PostgresOptions;
  /** Called as each table is done, with the rows copied. */
  onTable?: (table: TableName, rows: number) => void;
  /** Rows per batch (tests make it small, to cross page boundaries). */
  batchRows?: number;
}

/** The rows of each table, in the order copied; source and target agree on each. */
export type CopyCounts = { table: TableName; rows: number }[];

/**
 * Brings both schemas up to date, then copies every table of `source` into `target` in one
 * transaction and checks the row counts. The source is locked for the whole copy, as a
 * running bridge locks it, so it cannot change underneath; the target's tables are locked
 * against writers. Throws CopyRefusedError when the source is in use or missing, or the
 * target holds rows; on any failure nothing is copied (the transaction is rolled back).
 */
export async function copySqliteToPostgres(options: CopyOptions): Promise<CopyCounts> {
  const { source: file, target } = options;
  const batchRows = options.batchRows ?? BATCH_ROWS;
  if (!existsSync(file)) throw new CopyRefusedError(`${file} does not exist: give the SQLite file the bridge used (its database.path)`);

  // Opening each store brings its schema up to date (the source's may be older than this release).
  await (await inUseRefused(() => openSqliteStore(file), file)).close();
  await (await openPostgresStore(target)).close();

  const source = await openSqlite(file);
  try {
    const db = postgresDatabase(target);
    try {
      return await copyTables(source, db, describePostgresUrl(target.url), batchRows, options.onTable);
    } finally {
      await db.destroy();
    }
  } finally {
    await source.destroy();
  }
}

async function openSqlite(file: string): Promise<Kysely<Database>> {
  return inUseRefused(async () => new Kysely<Database>({ dialect: new SqliteDialect({ database: new NodeSqliteDatabase(file) }) }), file);
}

async function inUseRefused<T>(open: () => Promise<T>, file: string): Promise<T> {
  try {
    return await open();
  } catch (error) {
    if (error instanceof DatabaseInUseError) {
      throw new CopyRefusedError(`${file} is in use: a bridge holds its lock ${error.lockFile}. Stop the bridge, then run migrate-database again`);
    }
    throw error;
  }
}

/**
 * The store keeps its Kysely instance to itself, so the copy opens its own: one connection,
 * as it runs in one transaction, with TLS set up as openPostgresStore sets it up.
 */
function postgresDatabase(target: PostgresOptions): Kysely<Database> {
  const ssl = sslOption(target.ssl);
  const pool = new pg.Pool({ connectionString: target.url, ssl, max: 1, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => undefined);
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

async function copyTables(
  source: Kysely<Database>,
  target: Kysely<Database>,
  describe: string,
  batchRows: number,
  onTable: CopyOptions['onTable'],
): Promise<CopyCounts> {
  const expected = await countRows(source);
  return target.transaction().execute(async (trx) => {
    await sql`SET LOCAL lock_timeout = ${sql.lit(LOCK_TIMEOUT)}`.execute(trx);
    // Bridges already started on the target would write beside the copy: they must wait (or it fails).
    await sql`LOCK TABLE ${sql.join(TABLES.map((t) => sql.table(t.name)))} IN EXCLUSIVE MODE`.execute(trx);
    const present = (await countRows(trx)).filter((t) => t.rows > 0);
    if (present.length > 0) {
      const held = present.map((t) => `${t.table}: ${t.rows}`).join(', ');
      throw new CopyRefusedError(
        `the target database ${describe} already holds rows (${held}); migrate-database copies into an empty database only. ` +
          'To start over, drop and create the database again (DROP DATABASE, CREATE DATABASE), or point database.url at a new, empty one',
      );
    }
    for (const spec of TABLES) {
      let copied = 0;
      for await (const rows of pages(source, spec, batchRows)) {
        await insertRows(trx, spec, rows);
        copied += rows.length;
      }
      if (spec.serial) {
        // The next id handed out comes after every copied one (ids never go back: see the outbox).
        await sql`SELECT setval(pg_get_serial_sequence(${spec.name}, 'id'), coalesce(max(id), 0) + 1, false) FROM ${sql.table(spec.name)}`.execute(trx);
      }
      onTable?.(spec.name, copied);
    }
    const copied = await countRows(trx);
    const differing = copied
      .map((t, i) => ({ ...t, expected: expected[i]?.rows }))
      .filter((t) => t.rows !== t.expected)
      .map((t) => `${t.table}: ${t.expected} in the source, ${t.rows} in the target`);
    if (differing.length > 0) throw new Error(`the row counts differ (${differing.join('; ')}); nothing was copied`);
    return copied;
  });
}

async function countRows(db: Kysely<Database>): Promise<CopyCounts> {
  const counts: CopyCounts = [];
  for (const spec of TABLES) {
    const { rows } = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.table(spec.name)}`.execute(db);
    counts.push({ table: spec.name, rows: Number(rows[0]?.n ?? 0) });
  }
  return counts;
}

/** The table in pages of primary-key order, each starting after the last key of the one before: never the whole table in memory. */
async function* pages(db: Kysely<Database>, spec: TableCopy, batchRows: number): AsyncGenerator<Row[]> {
  const columns = sql.join(spec.columns.map((c) => sql.ref(c)));
  const key = sql.join(spec.key.map((c) => sql.ref(c)));
  let after: RawBuilder<unknown> | undefined;
  for (;;) {
    const where = after ? sql`WHERE (${key}) > (${after})` : sql``;
    const { rows } = await sql<Row>`SELECT ${columns} FROM ${sql.table(spec.name)} ${where} ORDER BY ${key} LIMIT ${batchRows}`.execute(db);
    if (rows.length > 0) yield rows;
    const last = rows[rows.length - 1];
    if (!last || rows.length < batchRows) return;
    after = sql.join(spec.key.map((c) => last[c]));
  }
}

async function insertRows(db: Kysely<Database>, spec: TableCopy, rows: readonly Row[]): Promise<void> {
  const columns = sql.join(spec.columns.map((c) => sql.ref(c)));
  const values = sql.join(rows.map((row) => sql`(${sql.join(spec.columns.map((c) => row[c]))})`));
  await sql`INSERT INTO ${sql.table(spec.name)} (${columns}) VALUES ${values}`.execute(db);
}
