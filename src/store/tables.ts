import { sql, type ColumnDefinitionBuilder, type Generated, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import type { JournalAction } from './types.ts';

/** The tables of the bridge's database, their migrations, and the journal write every store shares. */
export interface UsersTable {
  id: string;
  user_name: string;
  user_name_lower: string;
  external_id: string | null;
  matrix_id: string;
  display_name: string | null;
  display_name_lower: string | null;
  active: number;
  document: string;
  version: number;
  created: string;
  last_modified: string;
  state: string;
  acknowledged: number;
  applied: string;
  /** The name of the IdP token that created the user (scim.tokens[].scope: own). */
  owner: string | null;
}

export interface JournalTable {
  id: Generated<number>;
  resource_id: string;
  action: string;
  attempts: number;
  not_before: string;
  last_error: string | null;
  created: string;
  /** Bumped each time the entry is opened again, so that a worker finishing older work does not close it. */
  generation: Generated<number>;
  /**
   * The process whose lease holds the entry (a request applying it, or a worker running it):
   * when that process is gone, the entry is taken over at once, lease or not.
   */
  claimed_by: string | null;
}

export interface GroupsTable {
  id: string;
  display_name: string;
  display_name_lower: string;
  external_id: string | null;
  document: string;
  version: number;
  created: string;
  last_modified: string;
  state: string;
  applied: string;
  /** The name of the IdP token that created the group. */
  owner: string | null;
}

export interface GroupMembersTable {
  group_id: string;
  user_id: string;
}

export interface RoomMembersTable {
  group_id: string;
  room_id: string;
  matrix_id: string;
  state: string;
}

/** Admin-room notices the homeserver has not taken yet; id is their place in line. */
export interface NoticeOutboxTable {
  id: Generated<number>;
  text: string;
  html: string;
  /** ISO 8601: when the notice was put here. */
  held_at: string;
  /** The process holding the notice to post it (see ReplicaIdentity); null: any. */
  held_by: string | null;
}

/** Accounts a refused create left on the homeserver (see LeftoverAccounts). */
export interface LeftoverAccountsTable {
  matrix_id: string;
  /** ISO 8601: when the create gave up. */
  left_at: string;
}

export interface Database {
  users: UsersTable;
  journal: JournalTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  room_members: RoomMembersTable;
  notice_outbox: NoticeOutboxTable;
  leftover_accounts: LeftoverAccountsTable;
}

/**
 * The schema, one definition for both engines. Where they differ: on PostgreSQL an
 * auto-numbered id is a serial, and text compares byte by byte (COLLATE "C") as it does in
 * SQLite, so that filters, sort orders and the range scans of `sw` agree on both, and the
 * indexes serve those ranges whatever locale the database was created with.
 */
export function migrations(engine: 'sqlite' | 'postgres'): Record<string, Migration> {
  const pg = engine === 'postgres';
  const text = pg ? sql`text COLLATE "C"` : sql`text`;
  const serialKey = (c: ColumnDefinitionBuilder) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement());
  const serial = pg ? 'serial' : 'integer';
  return {
  '0001_users_and_journal': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('users')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('user_name', text, (c) => c.notNull())
        .addColumn('user_name_lower', text, (c) => c.notNull())
        .addColumn('external_id', text)
        .addColumn('matrix_id', text, (c) => c.notNull().unique())
        .addColumn('display_name', text)
        .addColumn('display_name_lower', text)
        .addColumn('active', 'integer', (c) => c.notNull())
        .addColumn('document', text, (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('created', text, (c) => c.notNull())
        .addColumn('last_modified', text, (c) => c.notNull())
        .addColumn('state', text, (c) => c.notNull())
        .addColumn('acknowledged', 'integer', (c) => c.notNull())
        .addColumn('applied', text, (c) => c.notNull().defaultTo('{}'))
        .execute();
      // userName is unique among the users SCIM can see; deleted users keep their
      // Matrix ID (unique above) so that it is never handed to someone else.
      await sql`CREATE UNIQUE INDEX users_user_name_live ON users (user_name_lower) WHERE state IN ('pending', 'provisioned')`.execute(db);
      await db.schema.createIndex('users_user_name_lower').on('users').column('user_name_lower').execute();
      await db.schema.createIndex('users_external_id').on('users').column('external_id').execute();
      await db.schema.createIndex('users_display_name_lower').on('users').column('display_name_lower').execute();
      // The listing order. Deliberately without state: an index led by the (unselective)
      // state would be preferred over the userName index for filters like userName sw.
      await db.schema.createIndex('users_created').on('users').columns(['created', 'id']).execute();
      await db.schema
        .createTable('journal')
        .addColumn('id', serial, serialKey)
        .addColumn('resource_id', text, (c) => c.notNull())
        .addColumn('action', text, (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('not_before', text, (c) => c.notNull())
        .addColumn('last_error', text)
        .addColumn('created', text, (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
        .addUniqueConstraint('journal_resource_action', ['resource_id', 'action'])
        .execute();
      await db.schema.createIndex('journal_due').on('journal').column('not_before').execute();
    },
  },
  '0002_groups': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('groups')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('display_name', text, (c) => c.notNull())
        .addColumn('display_name_lower', text, (c) => c.notNull())
        .addColumn('external_id', text)
        .addColumn('document', text, (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('created', text, (c) => c.notNull())
        .addColumn('last_modified', text, (c) => c.notNull())
        .addColumn('state', text, (c) => c.notNull())
        .addColumn('applied', text, (c) => c.notNull().defaultTo('{}'))
        .execute();
      // displayName is unique among live groups: IdPs find groups by it.
      await sql`CREATE UNIQUE INDEX groups_display_name_live ON groups (display_name_lower) WHERE state = 'active'`.execute(db);
      await db.schema.createIndex('groups_external_id').on('groups').column('external_id').execute();
      await db.schema.createIndex('groups_created').on('groups').columns(['created', 'id']).execute();
      await db.schema
        .createTable('group_members')
        .addColumn('group_id', text, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('user_id', text, (c) => c.notNull())
        .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
        .execute();
      await db.schema.createIndex('group_members_user').on('group_members').columns(['user_id', 'group_id']).execute();
      // What the bridge did in each room, so that a restart resumes and nothing is done twice.
      await db.schema
        .createTable('room_members')
        .addColumn('group_id', text, (c) => c.notNull())
        .addColumn('room_id', text, (c) => c.notNull())
        .addColumn('matrix_id', text, (c) => c.notNull())
        .addColumn('state', text, (c) => c.notNull())
        .addPrimaryKeyConstraint('room_members_pk', ['group_id', 'room_id', 'matrix_id'])
        .execute();
    },
  },
  '0003_notice_outbox': {
    async up(db: Kysely<unknown>): Promise<void> {
      // AUTOINCREMENT: ids never go back, so a notice added later is never posted earlier.
      await db.schema
        .createTable('notice_outbox')
        .addColumn('id', serial, serialKey)
        .addColumn('text', text, (c) => c.notNull())
        .addColumn('html', text, (c) => c.notNull())
        .addColumn('held_at', text, (c) => c.notNull())
        .execute();
    },
  },
  '0004_owner': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Which IdP token created each user and group, for tokens limited to their own.
      await db.schema.alterTable('users').addColumn('owner', text).execute();
      await db.schema.alterTable('groups').addColumn('owner', text).execute();
      await db.schema.createIndex('users_owner').on('users').columns(['owner', 'created', 'id']).execute();
      await db.schema.createIndex('groups_owner').on('groups').column('owner').execute();
    },
  },
  '0005_room_members_by_member': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Pending room work is counted member by member (metrics, !scim status).
      await db.schema.createIndex('room_members_member').on('room_members').columns(['group_id', 'matrix_id', 'state']).execute();
    },
  },
  '0006_live_list_order': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The listing order of visible users and groups only: the count and a page (deep ones
      // too: OFFSET skips index entries, not table rows) are answered from these. Partial,
      // not led by state, so that the userName and externalId indexes still win for filters.
      await sql`CREATE INDEX users_live_order ON users (created, id) WHERE state IN ('pending', 'provisioned')`.execute(db);
      await sql`CREATE INDEX groups_live_order ON groups (created, id) WHERE state = 'active'`.execute(db);
    },
  },
  '0007_journal_claimed_by': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Which process holds an entry's lease, so that a dead process's work is taken over at once.
      await db.schema.alterTable('journal').addColumn('claimed_by', text).execute();
    },
  },
  '0008_notice_outbox_held_by': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Which process holds each held notice: a starting replica takes over only those of
      // processes that are gone, so that no notice is posted twice.
      await db.schema.alterTable('notice_outbox').addColumn('held_by', text).execute();
    },
  },
  '0009_leftover_accounts': {
    async up(db: Kysely<unknown>): Promise<void> {
      // MAS makes an account before it judges its password and deletes none: the account a
      // refused create leaves is recorded, so that only the IdP's retry reuses it.
      await db.schema
        .createTable('leftover_accounts')
        .addColumn('matrix_id', text, (c) => c.primaryKey())
        .addColumn('left_at', text, (c) => c.notNull())
        .execute();
    },
  },
  };
}

/**
 * How long an entry that a request applies itself stays out of the journal worker's reach.
 * The request either closes the entry (success) or defers it with its retry delay (failure),
 * both well within this; only a process that dies mid-request leaves the lease to run out,
 * and the worker then finishes the work. Without the lease the worker would pick up the
 * entry while the request is still applying it, and apply it a second time.
 */
export const REQUEST_LEASE_MS = 60_000;

/**
 * Journal actions the request that opens them applies itself (user writes): leased.
 * Everything else (group rooms) is background work, applied by the worker: due at once.
 */
const REQUEST_APPLIED: ReadonlySet<JournalAction> = new Set<JournalAction>(['sync', 'delete']);

/**
 * Opens (or reopens, bumping the generation) a journal entry. It is due at once unless the
 * action is one a request applies itself, which gets a lease of `leaseMs` first, held by
 * `claimant` (this process: see Store.claimJournal).
 */
export async function openJournalIn(
  db: Kysely<Database>,
  resourceId: string,
  action: JournalAction,
  claimant: string | null = null,
  leaseMs: number = REQUEST_APPLIED.has(action) ? REQUEST_LEASE_MS : 0,
): Promise<void> {
  const now = new Date();
  const created = now.toISOString();
  const notBefore = new Date(now.getTime() + leaseMs).toISOString();
  const claimedBy = leaseMs > 0 ? claimant : null;
  await db
    .insertInto('journal')
    .values({ resource_id: resourceId, action, attempts: 0, not_before: notBefore, last_error: null, created, claimed_by: claimedBy })
    .onConflict((oc) =>
      oc
        .columns(['resource_id', 'action'])
        .doUpdateSet((eb) => ({ not_before: notBefore, claimed_by: claimedBy, generation: eb('journal.generation', '+', 1) })),
    )
    .execute();
}
