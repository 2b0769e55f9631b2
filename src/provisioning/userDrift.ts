import type { Store, UserRecord } from '../store/types.ts';
import { DRIFT_FIELDS, describeDrift, driftNews, planAccount, syncedOf, type Drift, type DriftField, type OperatorDisablePolicy } from './accountPlan.ts';
import type { EventSink } from './events.ts';
import { desiredAccount } from './mapping.ts';
import type { AccountState, DisablePolicy, HomeserverPort } from './ports.ts';

/** The mxc URI a URL photo was uploaded as, while that photo is the user's current one. */
export function uploadedAvatarOf(record: UserRecord): { uploadedAvatar?: { source: string; mxc: string } } {
  const { avatarSource, avatarMxc } = record.applied;
  return avatarSource && avatarMxc ? { uploadedAvatar: { source: avatarSource, mxc: avatarMxc } } : {};
}

/**
 * One user beside the homeserver: the differences (drift), reported once each and once more
 * when they go away (the ledger in applied.reportedDrift), and repairs an operator asks for.
 * The caller serialises per user.
 */
export class UserDrift {
  readonly #store: Store;
  readonly #homeserver: HomeserverPort;
  readonly #events: EventSink;
  readonly #settings: { disablePolicy: DisablePolicy; operatorDisabled: OperatorDisablePolicy };

  constructor(
    store: Store,
    homeserver: HomeserverPort,
    events: EventSink,
    settings: { disablePolicy: DisablePolicy; operatorDisabled: OperatorDisablePolicy },
  ) {
    this.#store = store;
    this.#homeserver = homeserver;
    this.#events = events;
    this.#settings = settings;
  }

  /** What the homeserver holds and what differs; changes and reports nothing. */
  async compare(record: UserRecord): Promise<{ current: AccountState | undefined; differences: string[] }> {
    const current = await this.#homeserver.lookup(record.matrixId);
    if (record.state !== 'provisioned') return { current, differences: [] };
    if (!current) return { current, differences: [describeDrift(this.#missing(record))] };
    return { current, differences: this.#plan(record, current, []).drift.map(describeDrift) };
  }

  /** Reports what is news, writes the IdP's values for `repair`, returns the differences left. */
  async check(record: UserRecord, repair: readonly DriftField[], source: string): Promise<string[]> {
    const current = await this.#homeserver.lookup(record.matrixId);
    if (!current) {
      const gone = this.#missing(record);
      (await this.save(record, [gone], source)).report();
      return [describeDrift(gone)];
    }
    const plan = this.#plan(record, current, repair);
    let applied = record.applied;
    if (plan.write) {
      applied = (await this.#homeserver.apply(plan.write, current, record.applied)).applied;
      this.#events.report({
        kind: 'updated',
        userName: record.userName,
        matrixId: record.matrixId,
        changed: DRIFT_FIELDS.filter((f) => repair.includes(f)),
        reason: 'set back to the IdP\'s values on an operator\'s request',
        source,
      });
    }
    (await this.save({ ...record, applied }, plan.drift, source)).report();
    return plan.drift.map(describeDrift);
  }

  /**
   * Saves the record with its drift ledger; returns the saved record and a function that
   * reports what is news (called once the rest of the write is reported).
   */
  async save(record: UserRecord, drift: Drift[], source: string, version = record.version): Promise<{ saved: UserRecord; report: () => void }> {
    const news = driftNews(record.applied.reportedDrift ?? {}, drift);
    const { reportedDrift: _before, ...applied } = record.applied;
    const saved: UserRecord = { ...record, applied: Object.keys(news.reported).length > 0 ? { ...applied, reportedDrift: news.reported } : applied };
    await this.#store.updateUser(saved, version);
    const who = { userName: record.userName, matrixId: record.matrixId, source };
    const report = () => {
      for (const d of news.appeared) this.#events.report({ kind: 'drift', ...who, reason: describeDrift(d) });
      for (const field of news.resolved) this.#events.report({ kind: 'drift-resolved', ...who, reason: `${field} matches the IdP again` });
    };
    return { saved, report };
  }

  #missing(record: UserRecord): Drift {
    return { field: 'active', homeserver: 'missing', idp: record.active ? 'active' : 'disabled' };
  }

  /** The plan for a user the IdP did not change since the last write: only a repair writes. */
  #plan(record: UserRecord, current: AccountState, repair: readonly DriftField[]) {
    const desired = desiredAccount(record.document, record.matrixId, record.active);
    return planAccount({
      desired,
      synced: syncedOf(desired),
      current,
      disablePolicy: this.#settings.disablePolicy,
      operatorDisabled: this.#settings.operatorDisabled,
      assertsActive: false,
      repair,
      ...uploadedAvatarOf(record),
    });
  }
}
