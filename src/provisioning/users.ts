import { randomUUID } from 'node:crypto';
import { ScimError, badRequest, conflict, notFound, preconditionFailed, unavailable } from '../scim/errors.ts';
import { applyPatch } from '../scim/patch/apply.ts';
import type { JournalEntry, Store, UserListQuery, UserPage, UserRecord, KeyedLocks } from '../store/types.ts';
import type { EventSink, ProvisioningEvent } from './events.ts';
import { desiredAccount, displayNameOf, localpartFor, type LocalpartPolicy } from './mapping.ts';
import { HomeserverError, type AccountState, type DisablePolicy, type HomeserverPort } from './ports.ts';
import {
  planAccount,
  policyState,
  syncedOf,
  type DriftField,
  type OperatorDisablePolicy,
} from './accountPlan.ts';
import { retryDelayMs } from './journal.ts';
import { DEFAULT_RETRY_AFTER_S, UserChecks } from './userChecks.ts';
import { UserDrift, uploadedAvatarOf } from './userDrift.ts';
import { changedFields, isTrue, patchAssertsActive, withoutPassword } from './userInput.ts';
import { checkVersion } from './versions.ts';
import { logger } from '../log.ts';

const log = logger('Provisioning');

type Doc = Record<string, unknown>;

export interface ProvisioningSettings {
  domain: string;
  localpart: LocalpartPolicy;
  protectedUsers: RegExp[];
  adoptExistingUsers: boolean;
  eraseOnDelete: boolean;
  disablePolicy: DisablePolicy;
  /** When the IdP asks for an account an operator disabled outside the bridge. */
  operatorDisabled: OperatorDisablePolicy;
}

/** Who asked: the name of the IdP's bearer token. */
export interface RequestContext {
  source: string;
  /** The token sees only the users and groups it created (scim.tokens[].scope: own). */
  ownOnly?: boolean;
  /**
   * Settles once the answer to this request has been handed to its connection (true), or
   * the connection closed before it (false). Absent: there is no answer to wait for.
   */
  answered?: Promise<boolean>;
}

/** How long a create keeps its user's lock waiting for its answer to go out (the request timeout). */
const ANSWER_WAIT_MS = 30_000;

/** How a sync is asked for: what the request changed, and what is known already. */
interface SyncOptions {
  changed?: string[];
  /** The request says `active: true` itself. */
  assertsActive?: boolean;
  /** The record before this request changed it. */
  before?: UserRecord;
  /** The homeserver's state, when this request read it already. */
  known?: { current: AccountState | undefined };
  /** Undoes this request's store write, when the homeserver refuses its values for good. */
  undo?: () => Promise<void>;
}


/**
 * The provisioning core for users: turns SCIM writes into store records and homeserver
 * state. The store is written first, with a journal entry, so that a failure half-way is
 * finished later by the journal worker (or by the IdP's retry) instead of being lost. The
 * homeserver's state is read before each write, and only what the IdP changed is written
 * (accountPlan.ts): an operator's lock, deactivation or name is never undone as a side
 * effect, and differences are reported as drift.
 */
export class UserProvisioner {
  readonly #store: Store;
  readonly #homeserver: HomeserverPort;
  readonly #events: EventSink;
  readonly #settings: ProvisioningSettings;
  /** Per user (group): shared with every replica on the database, so that their work never interleaves. */
  readonly #serial: KeyedLocks;
  readonly #checks: UserChecks;
  readonly #drift: UserDrift;
  /** Passwords of writes still waiting for the homeserver: kept in memory only, never stored. */
  readonly #pendingPasswords = new Map<string, string>();
  readonly #wakeJournal: () => void;

  constructor(
    store: Store,
    homeserver: HomeserverPort,
    events: EventSink,
    settings: ProvisioningSettings,
    wakeJournal: () => void = () => undefined,
  ) {
    this.#store = store;
    this.#serial = store.locks;
    this.#homeserver = homeserver;
    this.#events = events;
    this.#settings = settings;
    this.#wakeJournal = wakeJournal;
    this.#checks = new UserChecks(store, homeserver, settings);
    this.#drift = new UserDrift(store, homeserver, events, settings);
  }

  async get(id: string): Promise<UserRecord> {
    const record = await this.#store.getUser(id);
    if (!record) throw notFound(`no user with id ${id}`);
    return record;
  }

  list(query: UserListQuery): Promise<UserPage> {
    return this.#store.listUsers(query);
  }

  async create(input: Doc, ctx: RequestContext): Promise<UserRecord> {
    const userName = String(input['userName']);
    return this.#reportRefusal(ctx, userName, undefined, async () => {
      this.#checks.checkProblems(input);
      const { doc, password } = withoutPassword(input);
      let localpart: string;
      try {
        localpart = localpartFor(userName, this.#settings.localpart);
      } catch (error) {
        throw badRequest('invalidValue', (error as Error).message);
      }
      const matrixId = `@${localpart}:${this.#settings.domain}`;
      this.#checks.checkMatrixId(matrixId);
      this.#checks.checkProtected(matrixId);
      return this.#runAnswered(matrixId, ctx, (done) => this.#acknowledge(done), async () => {
        const resumable = await this.#checks.resumableCreate(userName, matrixId, doc);
        const current = await this.#checks.checkHomeserverForCreate(matrixId, doc, resumable !== undefined);
        const now = new Date().toISOString();
        const record: UserRecord = resumable
          ? { ...resumable, ...this.#columns(doc), document: doc, version: resumable.version + 1, lastModified: now }
          : {
              id: randomUUID(),
              ...this.#columns(doc),
              matrixId,
              document: doc,
              version: 1,
              created: now,
              lastModified: now,
              state: 'pending',
              acknowledged: false,
              applied: {},
              owner: ctx.source,
            };
        if (resumable) {
          await this.#store.updateUser(record, resumable.version, 'sync');
        } else {
          try {
            await this.#store.insertUser(record, 'sync');
          } catch (error) {
            if (/UNIQUE/i.test((error as Error).message)) throw conflict(`userName ${userName} is already in use`);
            throw error;
          }
        }
        const adopting = resumable === undefined && current.looked && current.state !== undefined;
        const done = await this.#sync(record, password, ctx, adopting ? 'adopted' : 'created', {
          ...(current.looked ? { known: { current: current.state } } : {}),
          // The IdP never heard of this user: a value the homeserver refuses leaves no trace.
          ...(resumable ? {} : { undo: () => this.#store.removeUser(record.id) }),
        });
        return done;
      });
    });
  }

  async replace(id: string, input: Doc, ctx: RequestContext, ifMatch?: string): Promise<UserRecord> {
    const current = await this.get(id);
    return this.#reportRefusal(ctx, current.userName, current.matrixId, () =>
      this.#serial.run(current.matrixId, () => this.#update(id, () => input, ctx, ifMatch, isTrue(input['active']))),
    );
  }

  async patch(id: string, body: unknown, ctx: RequestContext, ifMatch?: string): Promise<UserRecord> {
    const current = await this.get(id);
    return this.#reportRefusal(ctx, current.userName, current.matrixId, () =>
      this.#serial.run(current.matrixId, () =>
        this.#update(id, (record) => applyPatch(record.document, body), ctx, ifMatch, patchAssertsActive(body)),
      ),
    );
  }

  async delete(id: string, ctx: RequestContext, ifMatch?: string): Promise<void> {
    const current = await this.get(id);
    await this.#reportRefusal(ctx, current.userName, current.matrixId, () =>
      this.#serial.run(current.matrixId, async () => {
        const record = await this.get(id);
        this.#checks.checkProtected(record.matrixId);
        checkVersion(record, ifMatch);
        const deleting: UserRecord = { ...record, state: 'deleting', lastModified: new Date().toISOString() };
        await this.#store.updateUser(deleting, record.version, 'delete');
        await this.#store.completeJournal(id, 'sync');
        // A deleted user is no member of anything any more (RFC 7644 §3.6).
        if ((await this.#store.groups.removeUserEverywhere(id)).length > 0) this.#wakeJournal();
        this.#pendingPasswords.delete(id);
        await this.#remove(deleting, ctx.source);
      }),
    );
  }

  readonly actions = ['sync', 'delete'] as const;

  /** Finishes a journalled user write (the JournalWorker calls this). */
  async runEntry(entry: JournalEntry): Promise<void> {
    const record = await this.#store.getUserAnyState(entry.resourceId);
    if (!record) {
      await this.#store.completeJournal(entry.resourceId, entry.action);
      return;
    }
    await this.#serial.run(record.matrixId, async () => {
      // The entry as picked may be stale by now: a request may have closed it (work done),
      // deferred it (it failed, and retries later) or reopened it (it holds a lease). Only
      // the entry exactly as picked is this worker's to apply, so work is never repeated.
      const still = (await this.#store.journalFor(entry.resourceId)).find((e) => e.action === entry.action);
      if (!still || still.generation !== entry.generation || still.notBefore !== entry.notBefore || still.attempts !== entry.attempts) {
        return;
      }
      const fresh = await this.#store.getUserAnyState(entry.resourceId);
      if (!fresh) return;
      try {
        if (entry.action === 'delete') await this.#remove(fresh, 'journal');
        else if (fresh.state === 'pending' || fresh.state === 'provisioned') {
          await this.#sync(fresh, this.#pendingPasswords.get(fresh.id), { source: 'journal' }, fresh.state === 'pending' ? 'created' : 'updated');
        } else await this.#store.completeJournal(entry.resourceId, entry.action);
      } catch (error) {
        log.info(`journal: ${record.matrixId} still waiting: ${(error as Error).message}`);
      }
    });
  }

  /**
   * What the homeserver holds for a user beside what the IdP wants, and the differences;
   * changes nothing and reports nothing (the console's `user` command).
   */
  compare(record: UserRecord): Promise<{ current: AccountState | undefined; differences: string[] }> {
    return this.#drift.compare(record);
  }

  /**
   * Compares one user with the homeserver, reports drift not reported yet (and drift that
   * went away), and writes the IdP's values for the fields in `repair` only. Returns the
   * differences found (after any repair).
   */
  async check(id: string, repair: readonly DriftField[] = [], source = 'reconciler'): Promise<string[]> {
    const record = await this.#store.getUser(id);
    if (!record || record.state !== 'provisioned') return [];
    return this.#serial.run(record.matrixId, async () => {
      const fresh = await this.#store.getUser(id);
      return fresh && fresh.state === 'provisioned' ? this.#drift.check(fresh, repair, source) : [];
    });
  }

  /** A user's room memberships may have to change: its groups' rooms are brought in line. */
  async #groupsNeedSync(userId: string): Promise<void> {
    const groups = await this.#store.groups.groupsOf(userId);
    for (const group of groups) await this.#store.openJournal(group.id, 'group-sync');
    if (groups.length > 0) this.#wakeJournal();
  }

  async #update(
    id: string,
    change: (record: UserRecord) => Doc,
    ctx: RequestContext,
    ifMatch: string | undefined,
    assertsActive: boolean,
  ): Promise<UserRecord> {
    const record = await this.get(id);
    this.#checks.checkProtected(record.matrixId);
    checkVersion(record, ifMatch);
    const input = change(record);
    this.#checks.checkProblems(input);
    const { doc, password } = withoutPassword(input);
    const userName = String(doc['userName']);
    if (userName.toLowerCase() !== record.userName.toLowerCase()) {
      const other = await this.#store.findByUserName(userName);
      if (other && other.id !== id && (other.state === 'pending' || other.state === 'provisioned')) {
        throw conflict(`userName ${userName} is already in use by another user`);
      }
    }
    await this.#checks.checkExternalId(doc, id);
    await this.#checks.checkOwnership(record.matrixId, doc, record.document);
    const changed = changedFields(record.document, doc);
    if (password !== undefined) changed.push('password');
    const updated: UserRecord = {
      ...record,
      ...this.#columns(doc),
      document: doc,
      version: record.version + 1,
      lastModified: new Date().toISOString(),
      acknowledged: true,
    };
    if (!(await this.#store.updateUser(updated, record.version, 'sync'))) {
      throw preconditionFailed(`the user ${id} changed while this request was handled; read it again`);
    }
    const kind = record.active && !updated.active ? 'disabled' : !record.active && updated.active ? 'enabled' : 'updated';
    return this.#sync(updated, password, ctx, kind, {
      changed,
      assertsActive,
      before: record,
      undo: async () => {
        await this.#store.updateUser(record, updated.version);
        // Close the journal entry only if this request opened it; older pending work stays.
        const entry = (await this.#store.journalFor(id)).find((e) => e.action === 'sync');
        if (entry && entry.attempts === 0 && entry.generation === 0) await this.#store.completeJournal(id, 'sync', 0);
      },
    });
  }

  /** Brings the homeserver in line with what the IdP changed; on success closes the journal entry. */
  async #sync(
    record: UserRecord,
    password: string | undefined,
    ctx: RequestContext,
    kind: ProvisioningEvent['kind'],
    options: SyncOptions = {},
  ): Promise<UserRecord> {
    const desired = desiredAccount(record.document, record.matrixId, record.active);
    // The entry this write closes: a reopen after this point (a newer generation) stays open.
    const generation = (await this.#store.journalFor(record.id)).find((e) => e.action === 'sync')?.generation;
    try {
      const current = options.known ? options.known.current : await this.#homeserver.lookup(record.matrixId);
      const before = options.before;
      const synced =
        record.applied.synced ??
        (before?.state === 'provisioned' ? syncedOf(desiredAccount(before.document, before.matrixId, before.active)) : undefined);
      const plan = planAccount({
        desired,
        synced,
        current,
        ...(before ? { previousActive: before.active } : {}),
        ...(password !== undefined ? { password } : {}),
        disablePolicy: this.#settings.disablePolicy,
        operatorDisabled: this.#settings.operatorDisabled,
        assertsActive: options.assertsActive ?? false,
        ...uploadedAvatarOf(record),
      });
      const outcome = plan.write
        ? await this.#homeserver.apply(plan.write, current, record.applied)
        : { applied: record.applied, warnings: [] };
      const done: UserRecord = { ...record, state: 'provisioned', applied: { ...outcome.applied, synced: syncedOf(desired) } };
      const { saved, report: reportDrift } = await this.#drift.save(done, plan.drift, ctx.source, record.version);
      await this.#store.completeJournal(record.id, 'sync', generation);
      this.#pendingPasswords.delete(record.id);
      if (kind !== 'updated') await this.#groupsNeedSync(record.id);
      const notes = [...outcome.warnings];
      // Said where the IdP asked for the account (the drift notice says it in any case).
      if (plan.keptDisabled.length > 0 && (kind === 'enabled' || options.assertsActive)) {
        notes.push(`the account stays ${plan.keptDisabled.join(' and ')} on the homeserver, as an operator left it`);
      }
      this.#events.report({
        kind,
        userName: record.userName,
        matrixId: record.matrixId,
        source: ctx.source,
        ...(kind === 'disabled' && plan.write?.disable ? { how: policyState(plan.write.disable) } : {}),
        ...(options.changed ? { changed: options.changed } : {}),
        ...(notes.length > 0 ? { reason: notes.join('; ') } : {}),
      });
      reportDrift();
      return saved;
    } catch (error) {
      throw await this.#failed(record, password, ctx, error, options.undo);
    }
  }

  async #remove(record: UserRecord, source: string): Promise<void> {
    try {
      await this.#homeserver.remove(record.matrixId, this.#settings.eraseOnDelete);
      await this.#store.updateUser({ ...record, state: 'deleted' }, record.version);
      await this.#store.completeJournal(record.id, 'delete');
      this.#events.report({
        kind: 'deleted',
        userName: record.userName,
        matrixId: record.matrixId,
        how: this.#settings.eraseOnDelete ? 'deactivated and erased' : 'deactivated, not erased',
        source,
      });
    } catch (error) {
      throw await this.#failed(record, undefined, { source }, error);
    }
  }

  /**
   * Records a failed homeserver step and turns it into the error the IdP should see. A
   * value the homeserver refuses for good undoes the request (when it can be undone) and is
   * a 400; a transient failure keeps the change in the journal and is a 503.
   */
  async #failed(
    record: UserRecord,
    password: string | undefined,
    ctx: RequestContext,
    error: unknown,
    undo?: () => Promise<void>,
  ): Promise<Error> {
    const reason = error instanceof Error ? error.message : String(error);
    if (undo && error instanceof HomeserverError && (error.status === 400 || error.status === 413)) {
      await undo();
      this.#events.report({
        kind: 'failed',
        userName: record.userName,
        matrixId: record.matrixId,
        source: ctx.source,
        reason: `the homeserver refused a value (${reason}); nothing was changed`,
      });
      return badRequest('invalidValue', `the homeserver refused a value of this request (${reason}); nothing was changed`);
    }
    const entries = await this.#store.journalFor(record.id);
    const attempts = Math.max(0, ...entries.map((e) => e.attempts));
    const retryMs = error instanceof HomeserverError && error.retryAfterMs ? error.retryAfterMs : retryDelayMs(attempts);
    for (const entry of entries) await this.#store.deferJournal(entry.id, reason, new Date(Date.now() + retryMs));
    if (password !== undefined) this.#pendingPasswords.set(record.id, password);
    // A failure that keeps coming back is reported on attempts 1, 2, 3, 5, 9, 17, …: always
    // visible, never a notice every retry.
    if ((attempts & (attempts - 1)) === 0) {
      this.#events.report({
        kind: 'failed',
        userName: record.userName,
        matrixId: record.matrixId,
        source: ctx.source,
        reason,
        willRetry: true,
      });
    }
    if (error instanceof HomeserverError) {
      log.warn(`${record.matrixId}: homeserver step failed, will retry in ${Math.round(retryMs / 1000)} s: ${reason}`);
      if (error.transient) {
        return unavailable(
          `the homeserver could not be updated (${reason}); the change is kept and will be completed, retry later`,
          error.retryAfterMs ? error.retryAfterMs / 1000 : DEFAULT_RETRY_AFTER_S,
        );
      }
      return new ScimError(502, `the homeserver refused the change: ${reason}`);
    }
    return error instanceof Error ? error : new Error(reason);
  }

  /** A 409 or 403 the IdP gets is reported too (digested per IdP), so operators see refusals. */
  async #reportRefusal<T>(ctx: RequestContext, userName: string, matrixId: string | undefined, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ScimError && (error.status === 409 || error.status === 403)) {
        this.#events.report({
          kind: 'refused',
          userName,
          ...(matrixId ? { matrixId } : {}),
          reason: error.message,
          source: ctx.source,
        });
      }
      throw error;
    }
  }

  /**
   * Runs `work` holding the user's lock, then `told` once the IdP has its answer. With an
   * HTTP answer to wait for, work's result is given back at once (to be answered), and the
   * lock is kept until the answer has gone out or the connection closed: a POST retried
   * after a lost answer waits here, then finds the user not yet told, and resumes it.
   */
  #runAnswered<T>(key: string, ctx: RequestContext, told: (result: T) => Promise<unknown>, work: () => Promise<T>): Promise<T> {
    const answered = ctx.answered;
    if (!answered) {
      return this.#serial.run(key, async () => {
        const result = await work();
        await told(result);
        return result;
      });
    }
    let deliver!: (result: T) => void;
    let given = false;
    const delivered = new Promise<T>((resolve) => (deliver = resolve));
    const held = this.#serial.run(key, async () => {
      const result = await work();
      given = true;
      deliver(result);
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ANSWER_WAIT_MS)));
      try {
        if (await Promise.race([answered, gaveUp])) await told(result);
      } finally {
        clearTimeout(timer);
      }
      return result;
    });
    // Past delivery, a failure to record it is logged: the answer has gone out already.
    held.catch((error: unknown) => {
      if (given) log.warn(`could not record that the IdP was answered about ${key}: ${(error as Error).message}`);
    });
    return Promise.race([delivered, held]);
  }

  async #acknowledge(record: UserRecord): Promise<UserRecord> {
    if (record.acknowledged) return record;
    const acknowledged = { ...record, acknowledged: true };
    await this.#store.updateUser(acknowledged, record.version);
    return acknowledged;
  }

  #columns(doc: Doc): Pick<UserRecord, 'userName' | 'externalId' | 'displayName' | 'active'> {
    return {
      userName: String(doc['userName']),
      externalId: typeof doc['externalId'] === 'string' ? doc['externalId'] : null,
      displayName: displayNameOf(doc),
      active: doc['active'] !== false,
    };
  }
}
