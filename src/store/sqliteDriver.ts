import { chmodSync, closeSync, existsSync, openSync, statSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * Lets Kysely's SQLite dialect run on Node's built-in `node:sqlite`, so the bridge needs no
 * native module build (better-sqlite3 would need a compiler and node headers on every
 * install). The two APIs differ only in how parameters are passed and in `reader`.
 */
type SqlValue = null | number | bigint | string | Uint8Array;

function toSqlValue(value: unknown): SqlValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return value;
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value);
}

class NodeSqliteStatement implements SqliteStatement {
  readonly reader: boolean;
  readonly #statement: StatementSync;
  /** Prepares a statement of its own for iterate(), which must not share the cached one. */
  readonly #prepareAnother: () => StatementSync;

  constructor(statement: StatementSync, prepareAnother: () => StatementSync) {
    this.#statement = statement;
    this.#prepareAnother = prepareAnother;
    this.reader = statement.columns().length > 0;
  }

  all(parameters: ReadonlyArray<unknown>): unknown[] {
    return this.#statement.all(...parameters.map(toSqlValue));
  }

  run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint } {
    return this.#statement.run(...parameters.map(toSqlValue));
  }

  /**
   * A stream (Kysely's `.stream()`) stays open across awaits, and running the same
   * statement again would reset it under the reader: it gets a statement nobody else holds.
   */
  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    return this.#prepareAnother().iterate(...parameters.map(toSqlValue));
  }
}

/** Prepared statements kept for reuse, by SQL text: enough for every query the bridge makes. */
const STATEMENT_CACHE_SIZE = 200;
/** Longer SQL (a filter of hundreds of terms) is rarely sent twice: not worth a cache slot. */
const CACHED_SQL_MAX_LENGTH = 16_384;

/**
 * The most recently used prepared statements. Kysely prepares each query it runs; SQLite
 * parsing and planning the same text again cost more than running most of them. A cached
 * statement is safe to reuse: node:sqlite runs it to completion synchronously in all() and
 * run() (iterate() never uses it), and Kysely's driver runs one query at a time.
 */
class StatementCache {
  readonly #statements = new Map<string, NodeSqliteStatement>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get(sql: string, prepare: (sql: string) => NodeSqliteStatement): NodeSqliteStatement {
    let statement = this.#statements.get(sql);
    if (statement) {
      this.#statements.delete(sql);
    } else {
      statement = prepare(sql);
      if (this.#statements.size >= this.#capacity) {
        const oldest = this.#statements.keys().next();
        if (!oldest.done) this.#statements.delete(oldest.value);
      }
    }
    this.#statements.set(sql, statement);
    return statement;
  }

  /** StatementSync has no close(): dropped statements are finalized by the garbage collector or when the database closes. */
  clear(): void {
    this.#statements.clear();
  }
}

/** Files SQLite keeps next to a database in WAL mode. */
const COMPANION_SUFFIXES = ['-wal', '-shm'];

/**
 * Creates the database file 0600 unless it exists. SQLite gives the -wal and -shm files it
 * creates the mode of the database file, so they are 0600 too. This works whatever the
 * process umask, which the bridge leaves alone (it is process-wide). An existing file keeps
 * its mode: the start-up check warns about a loose one.
 */
function createPrivately(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** Makes a companion file this process created 0600 (it copied the mode of a looser database file). */
function restrictCreated(file: string): void {
  if (existsSync(file) && (statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
}

/** Another process (or connection) holds the database's lock: a second bridge on the same file. */
export class DatabaseInUseError extends Error {
  readonly lockFile: string;

  constructor(file: string, lockFile: string) {
    super(`another bridge is using ${file}: it holds the lock ${lockFile}`);
    this.name = 'DatabaseInUseError';
    this.lockFile = lockFile;
  }
}

/**
 * Holds `<file>.lock` for as long as the database is open, so that a second bridge on the
 * same file is refused instead of working beside the first. The lock is SQLite's own
 * exclusive lock (an fcntl lock) on that small, empty lock database, held by a transaction
 * that never ends: the operating system drops it when the process exits, however it
 * exits, so a crash never leaves a stale lock behind. The database itself stays open to
 * readers (a backup with `sqlite3 .backup` still works).
 */
function acquireLock(file: string): DatabaseSync {
  const lockFile = `${file}.lock`;
  createPrivately(lockFile);
  const lock = new DatabaseSync(lockFile, { timeout: 0 });
  try {
    lock.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    lock.close();
    if (/locked|busy/i.test((error as Error).message)) throw new DatabaseInUseError(file, lockFile);
    throw error;
  }
  return lock;
}

export class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #lock: DatabaseSync | undefined;
  readonly #statements = new StatementCache(STATEMENT_CACHE_SIZE);

  /** Opens (creating if needed) `file`; the files it creates are readable by the bridge's user only. */
  constructor(file: string) {
    const onDisk = file !== ':memory:' && file !== '';
    const newCompanions = onDisk ? COMPANION_SUFFIXES.map((suffix) => file + suffix).filter((f) => !existsSync(f)) : [];
    if (onDisk) createPrivately(file);
    this.#lock = onDisk ? acquireLock(file) : undefined;
    try {
      this.#db = new DatabaseSync(file);
    } catch (error) {
      this.#lock?.close();
      throw error;
    }
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = NORMAL');
    this.#db.exec('PRAGMA foreign_keys = ON');
    this.#db.exec('PRAGMA busy_timeout = 5000');
    // What SQLite may keep in the bridge's memory, whatever the defaults it was built with:
    // 2 MiB of page cache (SQLite's usual default; a 100k-user database is ~115 MiB, and a
    // page of 100 reads a few dozen pages through the index), and no memory-mapped file,
    // whose pages would count in the RSS as the database is read.
    this.#db.exec('PRAGMA cache_size = -2000');
    this.#db.exec('PRAGMA mmap_size = 0');
    if (newCompanions.length > 0) {
      // A read opens the WAL, which creates -wal and -shm now rather than at the first write.
      this.#db.prepare('SELECT count(*) FROM sqlite_master').get();
      for (const companion of newCompanions) restrictCreated(companion);
    }
  }

  prepare(sql: string): SqliteStatement {
    const prepare = (text: string) => new NodeSqliteStatement(this.#db.prepare(text), () => this.#db.prepare(text));
    return sql.length > CACHED_SQL_MAX_LENGTH ? prepare(sql) : this.#statements.get(sql, prepare);
  }

  close(): void {
    this.#statements.clear();
    this.#db.close();
    this.#lock?.close();
  }
}
