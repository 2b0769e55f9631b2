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
}

export interface AppliedState {
  /** The photo URL the current avatar was fetched from, and the mxc URI it was uploaded as. */
  avatarSource?: string;
  avatarMxc?: string;
}

export type JournalAction = 'sync' | 'delete';

export interface JournalEntry {
  id: number;
  resourceId: string;
  action: JournalAction;
  attempts: number;
  notBefore: string;
  lastError: string | null;
}

export interface UserListQuery {
  filter?: Filter;
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
  /** Entries that are due, oldest first. */
  dueJournal(now: Date, limit: number): Promise<JournalEntry[]>;
  journalFor(resourceId: string): Promise<JournalEntry[]>;
  completeJournal(resourceId: string, action: JournalAction): Promise<void>;
  deferJournal(id: number, error: string, notBefore: Date): Promise<void>;

  close(): Promise<void>;
}
