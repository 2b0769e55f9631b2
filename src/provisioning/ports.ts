import type { AvatarSource, DesiredAccount } from './mapping.ts';
import type { AppliedState } from '../store/types.ts';

/**
 * A failure talking to the homeserver, as every backend reports it. `transient` failures
 * (unreachable, 5xx, rate limited) are worth retrying later; the others are answers that
 * will not change.
 */
export class HomeserverError extends Error {
  readonly status: number;
  readonly errcode: string | undefined;
  readonly transient: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, status: number, errcode: string | undefined, transient: boolean, retryAfterMs?: number) {
    super(message);
    this.name = 'HomeserverError';
    this.status = status;
    this.errcode = errcode;
    this.transient = transient;
    this.retryAfterMs = retryAfterMs;
  }
}

/** What stands in the way of giving an account these identifiers (held by someone else). */
export interface OwnershipConflict {
  what: string; // e.g. 'email alice@example.org'
  heldBy: string; // the Matrix ID holding it
}

export interface ApplyOutcome {
  applied: AppliedState;
  /** Things that did not work but do not fail the request (e.g. an avatar fetch). */
  warnings: string[];
}

export type DisablePolicy = 'lock' | 'suspend' | 'deactivate';

/** The ways an account can be disabled on the homeserver. */
export type DisabledState = 'locked' | 'suspended' | 'deactivated';

/** An account as the homeserver holds it now: the bridge's input, never assumed. */
export interface AccountState {
  admin: boolean;
  deactivated: boolean;
  locked: boolean;
  suspended: boolean;
  displayName: string | null;
  avatarUrl: string | null;
  emails: string[];
  msisdns: string[];
  /** The link to the configured SSO provider; undefined when no provider is configured. */
  externalId: string | null | undefined;
}

/**
 * One write to an account: only the fields present are touched. Lists are the whole new
 * list, computed by the core from what the homeserver holds (so entries an operator added
 * stay).
 */
export interface AccountWrite {
  matrixId: string;
  localpart: string;
  /** The account does not exist yet. */
  create: boolean;
  displayName?: string | null;
  avatar?: AvatarSource | null;
  threepids?: { emails: string[]; msisdns: string[] };
  externalId?: string | null;
  password?: string;
  disable?: DisablePolicy;
  /** Disabled states to undo. */
  enable?: DisabledState[];
}

/**
 * The homeserver as the provisioning core sees it. Every method is idempotent: running it
 * again after a failure half-way converges to the same state, which is what lets the
 * journal retry without creating anything twice. Failures throw HomeserverError.
 */
export interface HomeserverPort {
  /** The account's state on the homeserver, or undefined if no such user exists. */
  lookup(matrixId: string): Promise<AccountState | undefined>;
  ownershipConflicts(account: DesiredAccount): Promise<OwnershipConflict[]>;
  /**
   * Writes exactly what `write` holds (creating the account if asked); `current` is what
   * the homeserver held before, `previous` what the bridge applied last.
   */
  apply(write: AccountWrite, current: AccountState | undefined, previous: AppliedState): Promise<ApplyOutcome>;
  /** Deactivates (and optionally erases) the account; done already counts as success. */
  remove(matrixId: string, erase: boolean): Promise<void>;
}

/** How a group's room is made. */
export interface RoomSpec {
  name: string;
  /** A space (m.space) rather than a room. */
  space: boolean;
}

/**
 * The rooms side of the homeserver, for groups. Every method is idempotent: adding a
 * member who is already joined, or removing one who already left, succeeds.
 */
export interface RoomPort {
  createRoom(spec: RoomSpec): Promise<string>;
  /** A configured room (ID or alias) as a room ID, with the bot in it. */
  attachRoom(roomIdOrAlias: string): Promise<string>;
  setName(roomId: string, name: string): Promise<void>;
  addMember(roomId: string, matrixId: string): Promise<void>;
  removeMember(roomId: string, matrixId: string, reason: string): Promise<void>;
  /** Sets these users' power levels, or back to the room's default for null (others are left alone). */
  setPowerLevels(roomId: string, levels: Record<string, number | null>): Promise<void>;
  /** Who is joined to the room now, the bot left out (the reconciler compares it with the group). */
  joinedMembers(roomId: string): Promise<string[]>;
  /** After a group is deleted: the room is renamed as closed and the bot leaves. */
  closeRoom(roomId: string, name: string): Promise<void>;
}
