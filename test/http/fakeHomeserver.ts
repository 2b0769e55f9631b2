import type { DesiredAccount } from '../../src/provisioning/mapping.ts';
import type { ApplyOutcome, HomeserverPort, OwnershipConflict } from '../../src/provisioning/ports.ts';
import type { AppliedState } from '../../src/store/types.ts';
import { HomeserverError } from '../../src/matrix/homeserverClient.ts';

/**
 * The homeserver port in memory, for the HTTP tier only (the end-to-end tier runs a real
 * Synapse). It lets a test make the homeserver fail at a chosen step.
 */
export class InMemoryHomeserver implements HomeserverPort {
  readonly accounts = new Map<string, DesiredAccount & { deactivated: boolean; password?: string }>();
  /** Accounts that exist without the bridge having made them (e.g. made by SSO). */
  readonly foreign = new Set<string>();
  down = false;
  /** Fail the next N apply() calls as if the homeserver went away half-way. */
  failApplies = 0;
  applyCalls = 0;

  #unreachable(): HomeserverError {
    return new HomeserverError('the homeserver is unreachable (ECONNREFUSED)', 0, undefined, true);
  }

  async lookup(matrixId: string): Promise<{ deactivated: boolean } | undefined> {
    if (this.down) throw this.#unreachable();
    if (this.foreign.has(matrixId)) return { deactivated: false };
    const account = this.accounts.get(matrixId);
    return account ? { deactivated: account.deactivated } : undefined;
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

  async apply(account: DesiredAccount, _previous: AppliedState, password: string | undefined): Promise<ApplyOutcome> {
    this.applyCalls++;
    if (this.down) throw this.#unreachable();
    if (this.failApplies > 0) {
      this.failApplies--;
      throw this.#unreachable();
    }
    const existing = this.accounts.get(account.matrixId);
    this.accounts.set(account.matrixId, {
      ...account,
      deactivated: false,
      ...(password !== undefined ? { password } : existing?.password !== undefined ? { password: existing.password } : {}),
    });
    return { applied: {}, warnings: [] };
  }

  async remove(matrixId: string): Promise<void> {
    if (this.down) throw this.#unreachable();
    const account = this.accounts.get(matrixId);
    if (account) account.deactivated = true;
  }
}
