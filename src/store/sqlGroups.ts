import { sql, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { GROUP_RESOURCE } from '../scim/schema/attributes.ts';
import { filterToSql, groupMapping, listOrder, type SqlFlavor, type TableMapping } from './filterSql.ts';
import { openJournalIn, type Database, type GroupsTable } from './tables.ts';
import type {
  GroupApplied,
  GroupListQuery,
  GroupMember,
  GroupRecord,
  GroupState,
  GroupStore,
  RoomMembership,
  UserState,
} from './types.ts';

/**
 * Groups SCIM can see, as an SQL literal: SQLite uses the partial indexes on live groups
 * (groups_display_name_live, groups_live_order) only when a query repeats their WHERE term
 * literally, never with a bound parameter.
 */
const ACTIVE = sql<SqlBool>`groups.state = 'active'`;
/** The same for users (see sqlite.ts). */
const LIVE_USERS = sql<SqlBool>`users.state IN ('pending', 'provisioned')`;
/** SQLite allows this many bound parameters in one statement, with room to spare. */
const CHUNK = 500;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

function toRecord(row: Selectable<GroupsTable>): GroupRecord {
  return {
    id: row.id,
    displayName: row.display_name,
    externalId: row.external_id,
    document: JSON.parse(row.document) as Record<string, unknown>,
    version: row.version,
    created: row.created,
    lastModified: row.last_modified,
    state: row.state as GroupState,
    applied: JSON.parse(row.applied) as GroupApplied,
    owner: row.owner,
  };
}

function toRow(group: GroupRecord): GroupsTable {
  return {
    id: group.id,
    display_name: group.displayName,
    display_name_lower: group.displayName.toLowerCase(),
    external_id: group.externalId,
    document: JSON.stringify(group.document),
    version: group.version,
    created: group.created,
    last_modified: group.lastModified,
    state: group.state,
    applied: JSON.stringify(group.applied),
    owner: group.owner ?? null,
  };
}

/** Groups, their members and the room memberships applied for them, in SQLite. */
export class SqlGroupStore implements GroupStore {
  readonly #db: Kysely<Database>;
  readonly #groups: TableMapping;

  constructor(db: Kysely<Database>, flavor: SqlFlavor) {
    this.#groups = groupMapping(GROUP_RESOURCE, flavor);
    this.#db = db;
  }

  async get(id: string): Promise<GroupRecord | undefined> {
    const row = await this.#db.selectFrom('groups').selectAll().where('id', '=', id).where(ACTIVE).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async getAnyState(id: string): Promise<GroupRecord | undefined> {
    const row = await this.#db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async findByDisplayName(displayName: string): Promise<GroupRecord | undefined> {
    const row = await this.#db
      .selectFrom('groups')
      .selectAll()
      .where('display_name_lower', '=', displayName.toLowerCase())
      .where(ACTIVE)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async list(query: GroupListQuery): Promise<{ totalResults: number; groups: GroupRecord[] }> {
    const { count, page } = groupListQueries(this.#db, this.#groups, query);
    const total = await count.executeTakeFirstOrThrow();
    const rows = query.count > 0 ? await page.execute() : [];
    return { totalResults: Number(total.n), groups: rows.map(toRecord) };
  }

  async members(groupId: string): Promise<GroupMember[]> {
    const rows = await this.#db
      .selectFrom('group_members')
      .innerJoin('users', 'users.id', 'group_members.user_id')
      .select(['users.id', 'users.user_name', 'users.display_name', 'users.matrix_id', 'users.state', 'users.active'])
      .where('group_members.group_id', '=', groupId)
      .orderBy('users.created')
      .orderBy('users.id')
      .execute();
    return rows.map((r) => ({
      userId: r.id,
      userName: r.user_name,
      displayName: r.display_name,
      matrixId: r.matrix_id,
      userState: r.state as UserState,
      active: r.active === 1,
    }));
  }

  async groupsOf(userId: string, owner?: string): Promise<{ id: string; displayName: string }[]> {
    return (await this.groupsOfMany([userId], owner)).get(userId) ?? [];
  }

  async groupsOfMany(userIds: string[], owner?: string): Promise<Map<string, { id: string; displayName: string }[]>> {
    const byUser = new Map<string, { id: string; displayName: string }[]>();
    for (const part of chunks([...new Set(userIds)])) {
      let query = this.#db
        .selectFrom('group_members')
        .innerJoin('groups', 'groups.id', 'group_members.group_id')
        .select(['group_members.user_id', 'groups.id', 'groups.display_name'])
        .where('group_members.user_id', 'in', part)
        .where(ACTIVE);
      if (owner !== undefined) query = query.where('groups.owner', '=', owner);
      const rows = await query.orderBy('group_members.user_id').orderBy('groups.display_name_lower').execute();
      for (const row of rows) {
        const groups = byUser.get(row.user_id) ?? [];
        if (groups.length === 0) byUser.set(row.user_id, groups);
        groups.push({ id: row.id, displayName: row.display_name });
      }
    }
    return byUser;
  }

  async pendingMembership(): Promise<{ joins: number; kicks: number }> {
    const joins = await sql<{ n: number }>`
      SELECT count(*) AS n FROM group_members gm
      JOIN groups g ON g.id = gm.group_id AND g.state = 'active'
      JOIN users u ON u.id = gm.user_id AND u.state = 'provisioned'
      WHERE NOT EXISTS (
        SELECT 1 FROM room_members rm WHERE rm.group_id = gm.group_id AND rm.matrix_id = u.matrix_id AND rm.state = 'joined'
      )`.execute(this.#db);
    const kicks = await sql<{ n: number }>`
      SELECT count(*) AS n FROM room_members rm
      JOIN groups g ON g.id = rm.group_id
      WHERE rm.state = 'joined' AND (g.state <> 'active' OR NOT EXISTS (
        SELECT 1 FROM group_members gm JOIN users u ON u.id = gm.user_id
        WHERE gm.group_id = rm.group_id AND u.matrix_id = rm.matrix_id
      ))`.execute(this.#db);
    return { joins: Number(joins.rows[0]?.n ?? 0), kicks: Number(kicks.rows[0]?.n ?? 0) };
  }

  async existingUsers(userIds: string[], owner?: string): Promise<Set<string>> {
    const found = new Set<string>();
    for (const part of chunks([...new Set(userIds)])) {
      let query = this.#db.selectFrom('users').select('id').where('id', 'in', part).where(LIVE_USERS);
      if (owner !== undefined) query = query.where('owner', '=', owner);
      const rows = await query.execute();
      for (const row of rows) found.add(row.id);
    }
    return found;
  }

  async insert(group: GroupRecord, memberIds: string[]): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.insertInto('groups').values(toRow(group)).execute();
      for (const part of chunks([...new Set(memberIds)])) {
        await trx
          .insertInto('group_members')
          .values(part.map((userId) => ({ group_id: group.id, user_id: userId })))
          .execute();
      }
      await openJournalIn(trx, group.id, 'group-sync');
    });
  }

  async update(group: GroupRecord, expectedVersion: number, change: { add: string[]; remove: string[] }): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('groups')
        .set(toRow(group))
        .where('id', '=', group.id)
        .where('version', '=', expectedVersion)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      for (const part of chunks(change.remove)) {
        await trx.deleteFrom('group_members').where('group_id', '=', group.id).where('user_id', 'in', part).execute();
      }
      for (const part of chunks(change.add)) {
        await trx
          .insertInto('group_members')
          .values(part.map((userId) => ({ group_id: group.id, user_id: userId })))
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
      await openJournalIn(trx, group.id, group.state === 'active' ? 'group-sync' : 'group-delete');
      return true;
    });
  }

  async saveApplied(id: string, applied: GroupApplied, state?: GroupState): Promise<void> {
    await this.#db
      .updateTable('groups')
      .set({ applied: JSON.stringify(applied), ...(state ? { state } : {}) })
      .where('id', '=', id)
      .execute();
  }

  async removeUserEverywhere(userId: string): Promise<string[]> {
    return this.#db.transaction().execute(async (trx) => {
      const rows = await trx.selectFrom('group_members').select('group_id').where('user_id', '=', userId).execute();
      await trx.deleteFrom('group_members').where('user_id', '=', userId).execute();
      for (const row of rows) await openJournalIn(trx, row.group_id, 'group-sync');
      return rows.map((r) => r.group_id);
    });
  }

  async roomMembers(groupId: string, roomId: string): Promise<Map<string, RoomMembership>> {
    const rows = await this.#db
      .selectFrom('room_members')
      .select(['matrix_id', 'state'])
      .where('group_id', '=', groupId)
      .where('room_id', '=', roomId)
      .execute();
    return new Map(rows.map((r) => [r.matrix_id, r.state as RoomMembership]));
  }

  async setRoomMember(groupId: string, roomId: string, matrixId: string, state: RoomMembership): Promise<void> {
    await this.#db
      .insertInto('room_members')
      .values({ group_id: groupId, room_id: roomId, matrix_id: matrixId, state })
      .onConflict((oc) => oc.columns(['group_id', 'room_id', 'matrix_id']).doUpdateSet({ state }))
      .execute();
  }
}

/**
 * The two queries of a group list, the total and the page, on the indexes: the live-state
 * term is literal (see ACTIVE), and in the default order the page walks groups_live_order.
 * Exported for the query-plan test.
 */
export function groupListQueries(db: Kysely<Database>, groups: TableMapping, query: GroupListQuery) {
  let base = db.selectFrom('groups').where(ACTIVE);
  if (query.owner !== undefined) base = base.where('owner', '=', query.owner);
  if (query.filter) base = base.where(filterToSql(groups, query.filter));
  const count = base.select((eb) => eb.fn.countAll<number>().as('n'));
  let page = base.selectAll();
  for (const term of listOrder(groups, query.sort)) page = page.orderBy(term.expr, term.direction);
  return { count, page: page.limit(query.count).offset(Math.max(0, query.startIndex - 1)) };
}
