import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Kysely, SqliteDialect, sql, type Selectable } from 'kysely';
import { Migrator } from 'kysely/migration';
import { migrations, openJournalIn, type Database, type JournalTable, type UsersTable } from './tables.ts';
import { NodeSqliteDatabase } from './sqliteDriver.ts';
import { filterToSql, listOrder, userMapping } from './filterSql.ts';
import { SqliteGroupStore } from './sqliteGroups.ts';
import { SqliteNoticeOutbox } from './noticeOutbox.ts';
import { USER_RESOURCE } from '../scim/schema/attributes.ts';
import type { AppliedState, JournalAction, JournalEntry, JournalStats, Store, UserListQuery, UserPage, UserRecord, UserState } from './types.ts';

const VISIBLE: UserState[] = ['pending', 'provisioned'];
const USERS = userMapping(USER_RESOURCE);

function toRecord(row: Selectable<UsersTable>): UserRecord {
  return {
    id: row.id,
    userName: row.user_name,
    externalId: row.external_id,
    matrixId: row.matrix_id,
    displayName: row.display_name,
    active: row.active === 1,
    document: JSON.parse(row.document) as Record<string, unknown>,
    version: row.version,
    created: row.created,
    lastModified: row.last_modified,
    state: row.state as UserState,
    acknowledged: row.acknowledged === 1,
    applied: JSON.parse(row.applied) as AppliedState,
    owner: row.owner,
  };
}

function toRow(user: UserRecord): UsersTable {
  return {
    id: user.id,
    user_name: user.userName,
    user_name_lower: user.userName.toLowerCase(),
    external_id: user.externalId,
    matrix_id: user.matrixId,
    display_name: user.displayName,
    display_name_lower: user.displayName?.toLowerCase() ?? null,
    active: user.active ? 1 : 0,
    document: JSON.stringify(user.document),
    version: user.version,
    created: user.created,
    last_modified: user.lastModified,
    state: user.state,
    acknowledged: user.acknowledged ? 1 : 0,
    applied: JSON.stringify(user.applied),
    owner: user.owner ?? null,
  };
}

export class SqliteStore implements Store {
  readonly #db: Kysely<Database>;
  readonly groups: SqliteGroupStore;
  readonly notices: SqliteNoticeOutbox;

  private constructor(db: Kysely<Database>) {
    this.#db = db;
    this.groups = new SqliteGroupStore(db);
    this.notices = new SqliteNoticeOutbox(db);
  }

  /** Opens (creating if needed) the database file and brings its schema up to date. */
  static async open(file: string): Promise<SqliteStore> {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new NodeSqliteDatabase(file) }) });
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    const { error } = await migrator.migrateToLatest();
    if (error) {
      await db.destroy();
      throw new Error(`cannot migrate the database ${file}: ${(error as Error).message}`);
    }
    return new SqliteStore(db);
  }

  async getUser(id: string): Promise<UserRecord | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('id', '=', id).where('state', 'in', VISIBLE).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async getUserAnyState(id: string): Promise<UserRecord | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async findByUserName(userName: string): Promise<UserRecord | undefined> {
    const rows = await this.#db
      .selectFrom('users')
      .selectAll()
      .where('user_name_lower', '=', userName.toLowerCase())
      .orderBy(sql`state IN ('pending', 'provisioned')`, 'desc')
      .orderBy('created', 'desc')
      .limit(1)
      .execute();
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async findByMatrixId(matrixId: string): Promise<UserRecord | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('matrix_id', '=', matrixId).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async findByExternalId(externalId: string): Promise<UserRecord | undefined> {
    const row = await this.#db
      .selectFrom('users')
      .selectAll()
      .where('external_id', '=', externalId)
      .where('state', 'in', VISIBLE)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async listUsers(query: UserListQuery): Promise<UserPage> {
    let base = this.#db.selectFrom('users').where('state', 'in', VISIBLE);
    if (query.owner !== undefined) base = base.where('owner', '=', query.owner);
    if (query.filter) {
      const condition = filterToSql(USERS, query.filter);
      base = base.where(condition);
    }
    const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    let page = base.selectAll();
    for (const term of listOrder(USERS, query.sort)) page = page.orderBy(term.expr, term.direction);
    const rows = query.count > 0 ? await page.limit(query.count).offset(Math.max(0, query.startIndex - 1)).execute() : [];
    return { totalResults: Number(total.n), users: rows.map(toRecord) };
  }

  async insertUser(user: UserRecord, action: JournalAction): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.insertInto('users').values(toRow(user)).execute();
      await openJournalIn(trx, user.id, action);
    });
  }

  async updateUser(user: UserRecord, expectedVersion: number, action?: JournalAction): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('users')
        .set(toRow(user))
        .where('id', '=', user.id)
        .where('version', '=', expectedVersion)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      if (action) await openJournalIn(trx, user.id, action);
      return true;
    });
  }

  async removeUser(id: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.deleteFrom('journal').where('resource_id', '=', id).execute();
      await trx.deleteFrom('users').where('id', '=', id).execute();
    });
  }

  async countUsers(): Promise<number> {
    const row = await this.#db
      .selectFrom('users')
      .where('state', 'in', VISIBLE)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async openJournal(resourceId: string, action: JournalAction): Promise<void> {
    await openJournalIn(this.#db, resourceId, action);
  }

  async dueJournal(now: Date, limit: number): Promise<JournalEntry[]> {
    const rows = await this.#db
      .selectFrom('journal')
      .selectAll()
      .where('not_before', '<=', now.toISOString())
      .orderBy('not_before')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toJournalEntry);
  }

  async journalFor(resourceId: string): Promise<JournalEntry[]> {
    const rows = await this.#db.selectFrom('journal').selectAll().where('resource_id', '=', resourceId).orderBy('id').execute();
    return rows.map(toJournalEntry);
  }

  async completeJournal(resourceId: string, action: JournalAction, generation?: number): Promise<void> {
    let query = this.#db.deleteFrom('journal').where('resource_id', '=', resourceId).where('action', '=', action);
    if (generation !== undefined) query = query.where('generation', '=', generation);
    await query.execute();
  }

  async deferJournal(id: number, error: string, notBefore: Date): Promise<void> {
    await this.#db
      .updateTable('journal')
      .set((eb) => ({ attempts: eb('attempts', '+', 1), last_error: error, not_before: notBefore.toISOString() }))
      .where('id', '=', id)
      .execute();
  }

  async journalStats(): Promise<JournalStats> {
    const rows = await this.#db
      .selectFrom('journal')
      .select((eb) => ['action', eb.fn.countAll<number>().as('n'), eb.fn.min('created').as('oldest')])
      .groupBy('action')
      .execute();
    const pendingByAction: JournalStats['pendingByAction'] = {};
    let oldestCreated: string | null = null;
    for (const row of rows) {
      pendingByAction[row.action as JournalAction] = Number(row.n);
      if (row.oldest !== null && (oldestCreated === null || row.oldest < oldestCreated)) oldestCreated = row.oldest;
    }
    return { pendingByAction, oldestCreated };
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }
}

function toJournalEntry(row: Selectable<JournalTable>): JournalEntry {
  return {
    id: row.id,
    resourceId: row.resource_id,
    action: row.action as JournalAction,
    attempts: row.attempts,
    notBefore: row.not_before,
    lastError: row.last_error,
    generation: row.generation,
  };
}
