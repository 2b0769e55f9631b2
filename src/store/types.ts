import type { AttrPath, Filter } from '../scim/filter/ast.ts';

/** A SCIM document as stored: the IdP's attributes (minus secrets), without `id` and `meta`. */
export type StoredDocument = Record<string, unknown>;

/**
 * Where a user stands with the homeserver.
 * - pending: accepted from the IdP, homeserver not yet matched (a journal entry is open);
 * - provisioned: the homeserver matches the stored document;
 * - deleting: the IdP deleted it, deactivation not yet done (invisible to SCIM);
 * - deleted: deactivated on the homeserver; kept so that its Matrix ID is never reused.
 */
export type UserState = 'pending' | 'provisioned' | 'deleting' | 'deleted';

export interface UserRecord {
  id: string;
  userName: string;
  externalId: string | null;
  matrixId: string;
  displayName: string | null;
  active: boolean;
  document: StoredDocument;
  version: number;
  created: string;
  lastModified: string;
  state: UserState;
  /** false until the IdP has been told (201) that this user exists: a retried POST resumes it. */
  acknowledged: boolean;
  /** What was last applied to the homeserver that is costly to redo (e.g. a fetched avatar). */
  applied: AppliedState;
  /** The IdP token that created the user (null: made before owners were recorded). */
  owner?: string | null;
}

export interface AppliedState {
  /** The photo URL the current avatar was fetched from, and the mxc URI it was uploaded as. */
  avatarSource?: string;
  avatarMxc?: string;
  /**
   * The account as the IdP wanted it at the last successful write. The next write touches
   * only what differs from it (what the IdP changed since), never what an operator changed.
   */
  synced?: SyncedAccount;
  /** Differences from the homeserver already reported: field → the homeserver's value then. */
  reportedDrift?: Record<string, string>;
}

/** The mapped account, as plain data (see provisioning/mapping.ts DesiredAccount). */
export interface SyncedAccount {
  displayName: string | null;
  /** The photo as the IdP gave it: an mxc:// URI or a URL. */
  avatar: string | null;
  emails: string[];
  msisdns: string[];
  externalId: string | null;
  active: boolean;
}

/** sync/delete: a user; group-sync/group-delete: a group's rooms and memberships. */
export type JournalAction = 'sync' | 'delete' | 'group-sync' | 'group-delete';

export interface JournalEntry {
  id: number;
  resourceId: string;
  action: JournalAction;
  attempts: number;
  notBefore: string;
  lastError: string | null;
  generation: number;
}

export interface JournalStats {
  pendingByAction: Partial<Record<JournalAction, number>>;
  /** ISO 8601 creation time of the oldest open entry, null when none is open. */
  oldestCreated: string | null;
}

export interface UserListQuery {
  filter?: Filter;
  /** Only users this IdP token created. */
  owner?: string;
  /** Users without a value for the sort attribute come last, whatever the order. */
  sort?: { path: AttrPath; descending: boolean };
  /** 1-based, as SCIM counts. */
  startIndex: number;
  count: number;
}

export interface UserPage {
  totalResults: number;
  users: UserRecord[];
}

/**
 * The bridge's persistent state. SQLite implements it today; PostgreSQL can later, with the
 * same Kysely queries. Every write that needs homeserver work records a journal entry in
 * the same transaction, so a crash can never lose it.
 */
export interface Store {
  /** A user visible to SCIM (pending or provisioned). */
  getUser(id: string): Promise<UserRecord | undefined>;
  /** A user in any state, deleted ones included (the journal works on those too). */
  getUserAnyState(id: string): Promise<UserRecord | undefined>;
  /** Any user (any state) holding this userName, compared case-insensitively. */
  findByUserName(userName: string): Promise<UserRecord | undefined>;
  findByMatrixId(matrixId: string): Promise<UserRecord | undefined>;
  /** Any visible user with this externalId (case-sensitive, per RFC 7643). */
  findByExternalId(externalId: string): Promise<UserRecord | undefined>;
  listUsers(query: UserListQuery): Promise<UserPage>;
  /** Inserts the user and opens a journal entry for it, atomically. */
  insertUser(user: UserRecord, action: JournalAction): Promise<void>;
  /**
   * Replaces the user if its stored version is still `expectedVersion`, opening a journal
   * entry in the same transaction when `action` is given. Returns false on a version clash.
   */
  updateUser(user: UserRecord, expectedVersion: number, action?: JournalAction): Promise<boolean>;
  /** Removes a user row entirely (only for rows the IdP was never told about). */
  removeUser(id: string): Promise<void>;
  /** Users that are not deleted: for health and metrics. */
  countUsers(): Promise<number>;

  openJournal(resourceId: string, action: JournalAction): Promise<void>;
  /** Entries that are due, oldest first, without taking them (tests look with it; workers claim). */
  dueJournal(now: Date, limit: number): Promise<JournalEntry[]>;
  /**
   * Takes up to `limit` due entries, oldest first, for this process to run: each is leased
   * (not due again) until `now + leaseMs`, so that no other worker, here or in another
   * replica, takes it meanwhile; one whose worker died becomes due when the lease runs out.
   * Returns the entries as leased.
   */
  claimJournal(now: Date, limit: number, leaseMs: number): Promise<JournalEntry[]>;
  /** Makes a leased entry due again at `notBefore` without counting an attempt (more work to do). */
  requeueJournal(id: number, notBefore: Date): Promise<void>;
  journalFor(resourceId: string): Promise<JournalEntry[]>;
  /** Closes the entry; with `generation`, only if it was not opened again since that generation. */
  completeJournal(resourceId: string, action: JournalAction, generation?: number): Promise<void>;
  deferJournal(id: number, error: string, notBefore: Date): Promise<void>;
  /** Open entries by action and when the oldest was first opened: for health and metrics. */
  journalStats(): Promise<JournalStats>;

  readonly groups: GroupStore;
  /** Mutual exclusion by key among every process on this database (replicas included). */
  readonly locks: KeyedLocks;
  /** The admin room's undelivered notices. */
  readonly notices: NoticeOutboxStore;
  /** Accounts a refused create left on the homeserver, for the IdP's retry to take. */
  readonly leftovers: LeftoverAccounts;

  close(): Promise<void>;
}

/**
 * Locks by key: work on one user (or group) never interleaves with other work on it, in
 * this process or in another replica on the same database. A lock held by a process that
 * dies is released with it.
 */
export interface KeyedLocks {
  /** Runs `work` holding the lock for `key`, after the holders before it, in arrival order here. */
  run<T>(key: string, work: () => Promise<T>): Promise<T>;
  /** Runs `work` holding the lock for `key` if no one holds it; undefined (nothing run) if someone does. */
  runIfFree<T>(key: string, work: () => Promise<T>): Promise<T | undefined>;
}

// ---- Groups ----

/**
 * - active: visible to SCIM; its rooms are kept in line with its members;
 * - deleting: the IdP deleted it, members not yet removed from its rooms;
 * - deleted: done; kept so that its rooms' history stays explained.
 */
export type GroupState = 'active' | 'deleting' | 'deleted';

export interface GroupRecord {
  id: string;
  displayName: string;
  externalId: string | null;
  /** The SCIM document without members (they live in their own table). */
  document: StoredDocument;
  version: number;
  created: string;
  lastModified: string;
  state: GroupState;
  /** The Matrix side as last applied. */
  applied: GroupApplied;
  /** The IdP token that created the group (null: made before owners were recorded). */
  owner?: string | null;
}

export interface GroupApplied {
  /** The room (or space) the bridge created for the group. */
  roomId?: string;
  /** The room name last set. */
  roomName?: string;
  /** Every room the group's members were joined to (its own, or linked ones), as room IDs. */
  roomIds?: string[];
  /** Membership differences already reported: "<room> <mxid>" → what the room showed then. */
  reportedDrift?: Record<string, string>;
}

/** A member as SCIM shows it: the user's id, with what is needed to render and join it. */
export interface GroupMember {
  userId: string;
  userName: string;
  displayName: string | null;
  matrixId: string;
  /** The user's state, to decide whether it can be joined now. */
  userState: UserState;
  active: boolean;
}

export interface GroupListQuery {
  filter?: Filter;
  /** Only groups this IdP token created. */
  owner?: string;
  sort?: { path: AttrPath; descending: boolean };
  startIndex: number;
  count: number;
}

export type RoomMembership = 'joined' | 'left';

export interface GroupStore {
  get(id: string): Promise<GroupRecord | undefined>;
  getAnyState(id: string): Promise<GroupRecord | undefined>;
  findByDisplayName(displayName: string): Promise<GroupRecord | undefined>;
  list(query: GroupListQuery): Promise<{ totalResults: number; groups: GroupRecord[] }>;
  members(groupId: string): Promise<GroupMember[]>;
  /** The visible groups a user is a member of (only those `owner` created, when given). */
  groupsOf(userId: string, owner?: string): Promise<{ id: string; displayName: string }[]>;
  /** groupsOf for a whole page of users in one query: user id → its groups (absent: none). */
  groupsOfMany(userIds: string[], owner?: string): Promise<Map<string, { id: string; displayName: string }[]>>;
  /** Which of these user ids are visible users (pending or provisioned; created by `owner`, when given). */
  existingUsers(userIds: string[], owner?: string): Promise<Set<string>>;
  insert(group: GroupRecord, memberIds: string[]): Promise<void>;
  /** Replaces the group (version-checked) and applies a member diff, with a journal entry, atomically. */
  update(group: GroupRecord, expectedVersion: number, change: { add: string[]; remove: string[] }): Promise<boolean>;
  /** Saves what was applied on the homeserver; the SCIM version does not change. */
  saveApplied(id: string, applied: GroupApplied, state?: GroupState): Promise<void>;
  /** Drops a user from every group (the user was deleted); returns the groups it was in. */
  removeUserEverywhere(userId: string): Promise<string[]>;

  /**
   * Room work not done yet, member by member: provisioned members of active groups not
   * joined to any of the group's rooms, and members joined by the bridge who are no longer
   * in their group (or whose group was deleted).
   */
  pendingMembership(): Promise<{ joins: number; kicks: number }>;

  /** Membership the bridge applied in a room: Matrix ID → joined or left. */
  roomMembers(groupId: string, roomId: string): Promise<Map<string, RoomMembership>>;
  setRoomMember(groupId: string, roomId: string, matrixId: string, state: RoomMembership): Promise<void>;
}

// ---- Accounts left by refused creates ----

/**
 * Matrix IDs of accounts a create made on the homeserver and then gave up (the homeserver
 * refused a later step, e.g. MAS a password, and can delete no account), left disabled. The
 * IdP was told nothing was made, so its retry may take such an account; no other account is
 * ever taken that way. A backend port that can leave accounts behind uses it.
 */
export interface LeftoverAccounts {
  add(matrixId: string): Promise<void>;
  has(matrixId: string): Promise<boolean>;
  /** The account is the IdP's again (or gone). */
  remove(matrixId: string): Promise<void>;
}

// ---- Admin-room outbox ----

/** A rendered admin-room notice. */
export interface OutboxNotice {
  text: string;
  html: string;
}

/**
 * Admin-room notices the homeserver has not taken yet, so that a restart does not lose them.
 * It is the reporter's NoticeOutbox port (src/matrix/adminRoomDelivery.ts), declared here
 * too so that the store does not import Matrix code. Ids grow in the order notices are added.
 */
export interface NoticeOutboxStore {
  /** Appends notices; returns their ids in the same order. */
  add(notices: readonly OutboxNotice[], heldAt: string): Promise<number[]>;
  /** The oldest held notices, oldest first. */
  pending(limit: number): Promise<{ id: number; notice: OutboxNotice; heldAt: string }[]>;
  remove(ids: readonly number[]): Promise<void>;
}
