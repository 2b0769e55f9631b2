import type { GroupApplied, GroupRecord, Store } from '../store/types.ts';
import type { DriftField } from './accountPlan.ts';
import type { EventSink } from './events.ts';
import { HomeserverError, type RoomPort } from './ports.ts';
import type { UserProvisioner } from './users.ts';
import { logger } from '../log.ts';

const log = logger('Reconciler');

/** What a repair may set back to the IdP's value: account fields, or group room membership. */
export type RepairField = DriftField | 'members';

export interface ReconcileRequest {
  /** Fields to set back to the IdP's values where they drifted; none: report only. */
  repair?: readonly RepairField[];
}

export interface ReconcileResult {
  users: number;
  groups: number;
  /** One line per difference found (after any repair). */
  differences: string[];
  /** Set when the run stopped early (the homeserver went away). */
  incomplete?: string;
}

const PAGE = 200;

/**
 * Compares every user and group of the bridge with the homeserver: profile, lock and
 * deactivation, 3PIDs, external ids, and the members of each group's rooms. Each
 * difference is reported once in the admin room (the reporter digests a burst), and only
 * the fields the operator named are repaired. Runs on an interval and on demand; never two
 * runs at once.
 */
export class Reconciler {
  readonly #store: Store;
  readonly #users: UserProvisioner;
  readonly #rooms: RoomPort;
  readonly #events: EventSink;
  readonly #wakeJournal: () => void;
  readonly #configuredRepair: readonly RepairField[];
  #running: Promise<ReconcileResult> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    store: Store,
    users: UserProvisioner,
    rooms: RoomPort,
    events: EventSink,
    options: { repair: readonly RepairField[]; wakeJournal: () => void },
  ) {
    this.#store = store;
    this.#users = users;
    this.#rooms = rooms;
    this.#events = events;
    this.#configuredRepair = options.repair;
    this.#wakeJournal = options.wakeJournal;
  }

  /** One run, after any run under way (never two at once, and a repair asked for is never skipped). */
  run(request: ReconcileRequest = {}): Promise<ReconcileResult> {
    const repair = request.repair ?? this.#configuredRepair;
    const next = (this.#running ?? Promise.resolve()).catch(() => undefined).then(() => this.#run(repair));
    this.#running = next;
    const clear = () => {
      if (this.#running === next) this.#running = undefined;
    };
    next.then(clear, clear);
    return next;
  }

  /** Runs a minute after start (drift from while the bridge was down), then every intervalMs; 0: only on demand. */
  start(intervalMs: number, firstAfterMs = 60_000): void {
    if (intervalMs <= 0) return;
    const tick = (delay: number) => {
      this.#timer = setTimeout(() => {
        // One replica at a time: the others skip this tick while one is checking.
        void this.#store.locks
          .runIfFree('drift-check', () => this.run())
          .catch((error: unknown) => log.error('drift check failed', error))
          .finally(() => {
            if (this.#timer) tick(intervalMs);
          });
      }, delay);
      this.#timer.unref();
    };
    tick(Math.min(firstAfterMs, intervalMs));
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  async #run(repair: readonly RepairField[]): Promise<ReconcileResult> {
    const result: ReconcileResult = { users: 0, groups: 0, differences: [] };
    const accountRepair = repair.filter((f): f is DriftField => f !== 'members');
    try {
      for (let start = 1; ; start += PAGE) {
        const page = await this.#store.listUsers({ startIndex: start, count: PAGE });
        for (const user of page.users) {
          const found = await this.#users.check(user.id, accountRepair);
          result.users++;
          result.differences.push(...found.map((d) => `${user.matrixId}: ${d}`));
        }
        if (start + PAGE > page.totalResults) break;
      }
      for (let start = 1; ; start += PAGE) {
        const page = await this.#store.groups.list({ startIndex: start, count: PAGE });
        for (const group of page.groups) {
          result.differences.push(...(await this.#checkGroup(group, repair.includes('members'))));
          result.groups++;
        }
        if (start + PAGE > page.totalResults) break;
      }
    } catch (error) {
      if (!(error instanceof HomeserverError)) throw error;
      result.incomplete = error.message;
      log.warn(`drift check stopped after ${result.users} users and ${result.groups} groups: ${error.message}`);
    }
    log.info(`drift check: ${result.users} users, ${result.groups} groups, ${result.differences.length} differences`);
    return result;
  }

  /**
   * Members the bridge joined who are no longer in the room (an operator kicked them, or they
   * left). A repair marks them as not joined and lets the journal join them again.
   */
  async #checkGroup(group: GroupRecord, repair: boolean): Promise<string[]> {
    const reported = group.applied.reportedDrift ?? {};
    const now: Record<string, string> = {};
    const differences: string[] = [];
    let repaired = false;
    for (const roomId of group.applied.roomIds ?? []) {
      const joined = new Set(await this.#rooms.joinedMembers(roomId));
      const applied = await this.#store.groups.roomMembers(group.id, roomId);
      for (const [matrixId, state] of applied) {
        if (state !== 'joined' || joined.has(matrixId)) continue;
        if (repair) {
          await this.#store.groups.setRoomMember(group.id, roomId, matrixId, 'left');
          repaired = true;
          continue;
        }
        const key = `${roomId} ${matrixId}`;
        const line = `${matrixId} is a member of the group but not joined to ${roomId}`;
        now[key] = 'not joined';
        differences.push(`group "${group.displayName}": ${line}`);
        if (reported[key] !== now[key]) {
          this.#events.report({ kind: 'drift', subject: 'group', userName: group.displayName, matrixId: roomId, reason: line });
        }
      }
    }
    for (const key of Object.keys(reported).filter((k) => !(k in now))) {
      const [roomId, matrixId] = key.split(' ');
      this.#events.report({
        kind: 'drift-resolved',
        subject: 'group',
        userName: group.displayName,
        ...(roomId ? { matrixId: roomId } : {}),
        reason: `${matrixId ?? key} is joined again`,
      });
    }
    if (JSON.stringify(now) !== JSON.stringify(reported)) {
      // Read again: the journal may have saved the group's rooms meanwhile.
      const fresh = (await this.#store.groups.getAnyState(group.id))?.applied ?? group.applied;
      const { reportedDrift: _old, ...rest } = fresh;
      const applied: GroupApplied = Object.keys(now).length > 0 ? { ...rest, reportedDrift: now } : rest;
      await this.#store.groups.saveApplied(group.id, applied);
    }
    if (repaired) {
      await this.#store.openJournal(group.id, 'group-sync');
      this.#wakeJournal();
    }
    return differences;
  }
}
