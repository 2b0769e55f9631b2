import type { DesiredAccount } from '../../src/provisioning/mapping.ts';
import type { AccountState, AccountWrite, ApplyOutcome, HomeserverPort, OwnershipConflict } from '../../src/provisioning/ports.ts';
import type { AppliedState } from '../../src/store/types.ts';
import { HomeserverError } from '../../src/provisioning/ports.ts';

/** An account as the in-memory homeserver holds it; `active` is derived after each write. */
export interface FakeAccount extends AccountState {
  matrixId: string;
  active: boolean;
  password?: string;
}

/**
 * The homeserver port in memory, for the HTTP tier only (the end-to-end tier runs a real
 * Synapse). It applies writes field by field, as Synapse does, and lets a test make the
 * homeserver fail at a chosen step or act as an operator on an account.
 */
export class InMemoryHomeserver implements HomeserverPort {
  readonly accounts = new Map<string, FakeAccount>();
  /** Accounts that exist without the bridge having made them (e.g. made by SSO). */
  readonly foreign = new Set<string>();
  down = false;
  /** Fail the next N apply() calls as if the homeserver went away half-way. */
  failApplies = 0;
  /** Refuse the next apply() for good, as Synapse refuses a value (400 M_INVALID_PARAM). */
  refuseNext = false;
  applyCalls = 0;
  /** The writes applied, in order. */
  readonly writes: AccountWrite[] = [];

  #unreachable(): HomeserverError {
    return new HomeserverError('the homeserver is unreachable (ECONNREFUSED)', 0, undefined, true);
  }

  /** An account as an operator or SSO would make it, outside the bridge. */
  #blank(matrixId: string): FakeAccount {
    return {
      matrixId,
      admin: false,
      deactivated: false,
      locked: false,
      suspended: false,
      displayName: null,
      avatarUrl: null,
      emails: [],
      msisdns: [],
      externalId: undefined,
      active: true,
    };
  }

  async lookup(matrixId: string): Promise<AccountState | undefined> {
    if (this.down) throw this.#unreachable();
    if (this.foreign.has(matrixId) && !this.accounts.has(matrixId)) return this.#blank(matrixId);
    const account = this.accounts.get(matrixId);
    return account ? { ...account, emails: [...account.emails], msisdns: [...account.msisdns] } : undefined;
  }

  async ownershipConflicts(account: DesiredAccount): Promise<OwnershipConflict[]> {
    if (this.down) throw this.#unreachable();
    const conflicts: OwnershipConflict[] = [];
    for (const other of this.accounts.values()) {
      if (other.matrixId === account.matrixId) continue;
      for (const email of account.emails) {
        if (other.emails.includes(email)) conflicts.push({ what: `email ${email}`, heldBy: other.matrixId });
      }
    }
    return conflicts;
  }

  async apply(write: AccountWrite, _current: AccountState | undefined, previous: AppliedState): Promise<ApplyOutcome> {
    this.applyCalls++;
    if (this.down) throw this.#unreachable();
    if (this.failApplies > 0) {
      this.failApplies--;
      throw this.#unreachable();
    }
    if (this.refuseNext) {
      this.refuseNext = false;
      throw new HomeserverError('PUT /_synapse/admin/v2/users failed: M_INVALID_PARAM refused', 400, 'M_INVALID_PARAM', false);
    }
    this.writes.push(write);
    const account = this.accounts.get(write.matrixId) ?? this.#blank(write.matrixId);
    if (write.displayName !== undefined) account.displayName = write.displayName;
    if (write.avatar !== undefined) account.avatarUrl = write.avatar === null ? null : write.avatar.kind === 'mxc' ? write.avatar.uri : write.avatar.url;
    if (write.threepids) {
      account.emails = [...write.threepids.emails];
      account.msisdns = [...write.threepids.msisdns];
    }
    if (write.externalId !== undefined) account.externalId = write.externalId;
    if (write.password !== undefined) account.password = write.password;
    if (write.disable === 'lock') account.locked = true;
    if (write.disable === 'suspend') account.suspended = true;
    if (write.disable === 'deactivate') account.deactivated = true;
    for (const state of write.enable ?? []) account[state] = false;
    account.active = !account.locked && !account.suspended && !account.deactivated;
    this.accounts.set(write.matrixId, account);
    return { applied: { ...previous }, warnings: [] };
  }

  async remove(matrixId: string): Promise<void> {
    if (this.down) throw this.#unreachable();
    const account = this.accounts.get(matrixId);
    if (account) {
      account.deactivated = true;
      account.active = false;
    }
  }

  /** What an operator does in the homeserver's own admin tools. */
  operator(matrixId: string, change: Partial<Pick<FakeAccount, 'locked' | 'deactivated' | 'suspended' | 'displayName' | 'admin'>>): void {
    const account = this.accounts.get(matrixId) ?? this.#blank(matrixId);
    Object.assign(account, change);
    account.active = !account.locked && !account.suspended && !account.deactivated;
    this.accounts.set(matrixId, account);
  }
}
