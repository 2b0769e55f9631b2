import { sql, type Kysely, type RawBuilder, type Selectable, type SqlBool } from 'kysely';
import { Migrator } from 'kysely/migration';
import { migrations, openJournalIn, type Database, type JournalTable, type UsersTable } from './tables.ts';
import { filterToSql, listOrder, userMapping, type SqlFlavor, type TableMapping } from './filterSql.ts';
import { SqlGroupStore } from './sqlGroups.ts';
import { SqlNoticeOutbox } from './noticeOutbox.ts';
import { USER_RESOURCE } from '../scim/schema/attributes.ts';
import type {
  AppliedState,
  JournalAction,
  KeyedLocks,
  JournalEntry,
  JournalStats,
  LeftoverAccounts,
  Store,
  UserListQuery,
  UserPage,
  UserRecord,
  UserState,
} from './types.ts';

/**
 * The users SCIM can see, written as SQL literals. The partial indexes (users_user_name_live,
 * users_live_order) hold exactly these rows, and SQLite uses a partial index only when the
 * query repeats its WHERE term literally: with `state IN (?, ?)` it scans the table.
 */
const LIVE = sql<SqlBool>`users.state IN ('pending', 'provisioned')`;

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

/** How many distinct list totals and page ends are kept, and for how long at most. */
const LISTS_KEPT = 100;
const KEPT_FOR_MS = 5_000;

/** Where a page in the default order (created, id) ended: the next page starts after it. */
interface PageEnd {
  created: string;
  id: string;
}

/**
 * What recent user lists learnt, while the users table has not changed since: their totals,
 * and where their pages ended. Counting every visible user walks a whole index (3 ms at 100k
 * users), and a deep page skips startIndex rows, once per page, while an IdP pages through
 * the same list. With these, the next page of a list in the default order seeks to the end
 * of the one before instead of skipping (keyset pagination under SCIM's offsets), and the
 * total is counted once.
 *
 * Sound because every write to the users table goes through this store and calls changed()
 * as it starts and once it is over (the bridge is the database's only writer: see the lock
 * in sqliteDriver.ts); what was read while a write was under way is not kept, and a seek
 * that a write overlapped is done again with the offset. The lifetime
 * bounds how long an edit made outside the bridge goes unseen.
 */
class ListMemo {
  readonly #kept = new Map<string, { generation: number; at: number; value: number | PageEnd }>();
  #generation = 0;

  get generation(): number {
    return this.#generation;
  }

  get(key: string): number | PageEnd | undefined {
    const kept = this.#kept.get(key);
    return kept && kept.generation === this.#generation && Date.now() - kept.at < KEPT_FOR_MS ? kept.value : undefined;
  }

  /** Keeps what was read since `generation`, unless users were written in between. */
  keep(key: string, value: number | PageEnd, generation: number): void {
    if (generation !== this.#generation) return;
    this.#kept.delete(key);
    if (this.#kept.size >= LISTS_KEPT) {
      const oldest = this.#kept.keys().next();
      if (!oldest.done) this.#kept.delete(oldest.value);
    }
    this.#kept.set(key, { generation, at: Date.now(), value });
  }

  /** Called as a write to users starts and once it is over: nothing read before then holds. */
  changed(): void {
    this.#generation++;
    this.#kept.clear();
  }
}

/**
 * Who holds a journal lease. `alive` is a condition, true while the process that holds the
 * lease named by the given column still runs: on SQLite (one process) only this process
 * does; on PostgreSQL, a process that holds its replica lock (postgresLocks.ts).
 */
export interface ReplicaIdentity {
  id: string;
  alive(claimant: RawBuilder<unknown>): RawBuilder<SqlBool>;
}

export interface SqlStoreOptions {
  flavor: SqlFlavor;
  /**
   * Whether this process is the database's only writer (SQLite, which the bridge locks): it
   * may then keep what recent lists learnt (see ListMemo). With several replicas on one
   * database a write elsewhere is not seen here, so nothing is kept.
   */
  soleWriter: boolean;
  /** Names the database in errors, without secrets. */
  describe: string;
  locks: KeyedLocks;
  /** This process, as it holds journal leases, and how the database tells whether a holder still lives. */
  replica: ReplicaIdentity;
  /** Called by close() after the database is closed (e.g. to end the locks' connections). */
  onClose?: () => Promise<void>;
}

/**
 * The store over Kysely, for SQLite and PostgreSQL alike: the queries are the same, the few
 * places the engines differ are in the flavor (filters over the JSON documents) and in the
 * migrations. Which engine is opened is decided in sqlite.ts and postgres.ts.
 */
export class SqlStore implements Store {
  readonly #db: Kysely<Database>;
  readonly #lists: ListMemo | undefined;
  readonly #users: TableMapping;
  readonly #onClose: (() => Promise<void>) | undefined;
  readonly #replica: ReplicaIdentity;
  readonly engine: SqlFlavor['engine'];
  readonly locks: KeyedLocks;
  readonly groups: SqlGroupStore;
  readonly notices: SqlNoticeOutbox;
  readonly leftovers: LeftoverAccounts;

  private constructor(db: Kysely<Database>, options: SqlStoreOptions) {
    this.#db = db;
    this.#lists = options.soleWriter ? new ListMemo() : undefined;
    this.#users = userMapping(USER_RESOURCE, options.flavor);
    this.engine = options.flavor.engine;
    this.locks = options.locks;
    this.#replica = options.replica;
    this.#onClose = options.onClose;
    this.groups = new SqlGroupStore(db, options.flavor);
    this.notices = new SqlNoticeOutbox(db, options.replica, options.flavor.engine === 'postgres');
    this.leftovers = {
      add: async (matrixId) => {
        await db
          .insertInto('leftover_accounts')
          .values({ matrix_id: matrixId, left_at: new Date().toISOString() })
          .onConflict((c) => c.column('matrix_id').doNothing())
          .execute();
      },
      has: async (matrixId) =>
        (await db.selectFrom('leftover_accounts').select('matrix_id').where('matrix_id', '=', matrixId).executeTakeFirst()) !== undefined,
      remove: async (matrixId) => {
        await db.deleteFrom('leftover_accounts').where('matrix_id', '=', matrixId).execute();
      },
    };
  }

  /** Brings the schema up to date (several replicas starting at once take turns) and opens the store. */
  static async open(db: Kysely<Database>, options: SqlStoreOptions): Promise<SqlStore> {
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(options.flavor.engine) } });
    const { error } = await migrator.migrateToLatest();
    if (error) {
      await db.destroy();
      await options.onClose?.();
      throw new Error(`cannot migrate the database ${options.describe}: ${(error as Error).message}`);
    }
    return new SqlStore(db, options);
  }

  async getUser(id: string): Promise<UserRecord | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('id', '=', id).where(LIVE).executeTakeFirst();
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
      .where(LIVE)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async listUsers(query: UserListQuery): Promise<UserPage> {
    const lists = this.#lists;
    if (!lists) {
      const { count, page } = userListQueries(this.#db, this.#users, query);
      const [total, rows] = await Promise.all([count.executeTakeFirstOrThrow(), query.count > 0 ? page.execute() : []]);
      return { totalResults: Number(total.n), users: rows.map(toRecord) };
    }
    const generation = lists.generation;
    const list = userListQueries(this.#db, this.#users, query).count.compile();
    const key = `${list.sql}\u0000${JSON.stringify(list.parameters)}`;
    const seekable = query.sort === undefined && query.count > 0;
    const kept = lists.get(`${key}\u0000${query.startIndex}`);
    const after = seekable && typeof kept === 'object' ? kept : undefined;
    const { count, page } = userListQueries(this.#db, this.#users, query, after);

    let totalResults = lists.get(key);
    if (typeof totalResults !== 'number') {
      totalResults = Number((await count.executeTakeFirstOrThrow()).n);
      lists.keep(key, totalResults, generation);
    }
    let rows = query.count > 0 ? await page.execute() : [];
    // A write overlapped the seek: answer as the offset says, on the data as it is now.
    if (after && generation !== lists.generation) rows = await userListQueries(this.#db, this.#users, query).page.execute();
    const last = rows[rows.length - 1];
    if (seekable && last && rows.length === query.count) {
      lists.keep(`${key}\u0000${query.startIndex + rows.length}`, { created: last.created, id: last.id }, generation);
    }
    return { totalResults, users: rows.map(toRecord) };
  }

  async insertUser(user: UserRecord, action: JournalAction): Promise<void> {
    this.#lists?.changed();
    try {
      await this.#db.transaction().execute(async (trx) => {
        await trx.insertInto('users').values(toRow(user)).execute();
        await openJournalIn(trx, user.id, action, this.#replica.id);
      });
    } finally {
      this.#lists?.changed();
    }
  }

  async updateUser(user: UserRecord, expectedVersion: number, action?: JournalAction): Promise<boolean> {
    this.#lists?.changed();
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('users')
          .set(toRow(user))
          .where('id', '=', user.id)
          .where('version', '=', expectedVersion)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        if (action) await openJournalIn(trx, user.id, action, this.#replica.id);
        return true;
      });
    } finally {
      this.#lists?.changed();
    }
  }

  async removeUser(id: string): Promise<void> {
    this.#lists?.changed();
    try {
      await this.#db.transaction().execute(async (trx) => {
        await trx.deleteFrom('journal').where('resource_id', '=', id).execute();
        await trx.deleteFrom('users').where('id', '=', id).execute();
      });
    } finally {
      this.#lists?.changed();
    }
  }

  async countUsers(): Promise<number> {
    const row = await this.#db
      .selectFrom('users')
      .where(LIVE)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async openJournal(resourceId: string, action: JournalAction): Promise<void> {
    await openJournalIn(this.#db, resourceId, action, this.#replica.id);
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

  async claimJournal(now: Date, limit: number, leaseMs: number): Promise<JournalEntry[]> {
    const leasedUntil = new Date(now.getTime() + leaseMs).toISOString();
    const me = this.#replica.id;
    // Due, or leased by a process that is gone (it died mid-entry): taken over at once.
    const orphaned = sql<SqlBool>`(journal.claimed_by IS NOT NULL AND journal.claimed_by <> ${me} AND NOT ${this.#replica.alive(sql.ref('journal.claimed_by'))})`;
    let due = this.#db
      .selectFrom('journal')
      .select('id')
      .where((eb) => eb.or([eb('not_before', '<=', now.toISOString()), orphaned]))
      .orderBy('not_before')
      .orderBy('id')
      .limit(limit);
    // Replicas claiming at once pass over each other's rows instead of waiting for them.
    if (this.engine === 'postgres') due = due.forUpdate().skipLocked();
    const rows = await this.#db
      .updateTable('journal')
      .set({ not_before: leasedUntil, claimed_by: me })
      .where('id', 'in', due)
      .returningAll()
      .execute();
    return rows.map(toJournalEntry).sort((a, b) => a.id - b.id);
  }

  async requeueJournal(id: number, notBefore: Date): Promise<void> {
    await this.#db.updateTable('journal').set({ not_before: notBefore.toISOString(), claimed_by: null }).where('id', '=', id).execute();
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
      .set((eb) => ({ attempts: eb('attempts', '+', 1), last_error: error, not_before: notBefore.toISOString(), claimed_by: null }))
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
    await this.#onClose?.();
  }
}

/**
 * The two queries of a user list: the total, and the page. Both keep to the indexes: the
 * live-state term is literal (see LIVE), and in the default order (created, id) the page
 * walks users_live_order, a partial index that holds only visible users. SCIM's startIndex
 * is an offset; a deep page skips its rows in the index and reads a table row only for the
 * rows it returns. With `after` (the end of the page before, in the default order) the
 * page seeks there instead of skipping. Exported for the query-plan test.
 */
export function userListQueries(db: Kysely<Database>, users: TableMapping, query: UserListQuery, after?: PageEnd) {
  let base = db.selectFrom('users').where(LIVE);
  if (query.owner !== undefined) base = base.where('owner', '=', query.owner);
  if (query.filter) base = base.where(filterToSql(users, query.filter));
  const count = base.select((eb) => eb.fn.countAll<number>().as('n'));
  let page = base.selectAll();
  for (const term of listOrder(users, query.sort)) page = page.orderBy(term.expr, term.direction);
  if (after && query.sort === undefined) {
    return { count, page: page.where(sql<SqlBool>`(users.created, users.id) > (${after.created}, ${after.id})`).limit(query.count) };
  }
  return { count, page: page.limit(query.count).offset(Math.max(0, query.startIndex - 1)) };
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
