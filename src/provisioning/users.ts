import { randomUUID } from 'node:crypto';
import { ScimError, badRequest, conflict, notFound, preconditionFailed, unavailable } from '../scim/errors.ts';
import { applyPatch } from '../scim/patch/apply.ts';
import type { JournalEntry, Store, UserListQuery, UserPage, UserRecord } from '../store/types.ts';
import type { EventSink, ProvisioningEvent } from './events.ts';
import { accountProblems, desiredAccount, displayNameOf, localpartFor, type LocalpartPolicy } from './mapping.ts';
import type { HomeserverPort } from './ports.ts';
import { KeyedSerializer } from './serial.ts';
import { checkVersion } from './versions.ts';
import { HomeserverError } from './ports.ts';
import { logger } from '../log.ts';

const log = logger('Provisioning');

type Doc = Record<string, unknown>;

export interface ProvisioningSettings {
  domain: string;
  localpart: LocalpartPolicy;
  protectedUsers: RegExp[];
  adoptExistingUsers: boolean;
  eraseOnDelete: boolean;
}

/** Who asked: the name of the IdP's bearer token. */
export interface RequestContext {
  source: string;
}

/** How long the IdP is asked to wait before retrying after a transient homeserver failure. */
const DEFAULT_RETRY_AFTER_S = 30;

function retryDelayMs(attempts: number): number {
  return Math.min(10 * 60_000, 5_000 * 2 ** Math.min(attempts, 10));
}

function withoutPassword(doc: Doc): { doc: Doc; password: string | undefined } {
  const { password, ...rest } = doc;
  return { doc: rest, password: typeof password === 'string' && password !== '' ? password : undefined };
}

function changedFields(before: Doc, after: Doc): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => k !== 'schemas' && JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}


/**
 * The provisioning core for users: turns SCIM writes into store records and homeserver
 * state. The store is written first, with a journal entry, so that a failure half-way is
 * finished later by the journal worker (or by the IdP's retry) instead of being lost.
 */
export class UserProvisioner {
  readonly #store: Store;
  readonly #homeserver: HomeserverPort;
  readonly #events: EventSink;
  readonly #settings: ProvisioningSettings;
  readonly #serial = new KeyedSerializer();
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
    this.#homeserver = homeserver;
    this.#events = events;
    this.#settings = settings;
    this.#wakeJournal = wakeJournal;
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
    const { doc, password } = withoutPassword(input);
    const userName = String(doc['userName']);
    this.#checkProblems(doc);
    let localpart: string;
    try {
      localpart = localpartFor(userName, this.#settings.localpart);
    } catch (error) {
      throw badRequest('invalidValue', (error as Error).message);
    }
    const matrixId = `@${localpart}:${this.#settings.domain}`;
    this.#checkProtected(matrixId);
    return this.#serial.run(matrixId, async () => {
      const resumable = await this.#resumableCreate(userName, matrixId, doc);
      await this.#checkHomeserverForCreate(matrixId, doc, resumable !== undefined);
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
      const done = await this.#sync(record, password, ctx, 'created');
      return this.#acknowledge(done);
    });
  }

  async replace(id: string, input: Doc, ctx: RequestContext, ifMatch?: string): Promise<UserRecord> {
    const current = await this.get(id);
    return this.#serial.run(current.matrixId, () => this.#update(id, () => input, ctx, ifMatch));
  }

  async patch(id: string, body: unknown, ctx: RequestContext, ifMatch?: string): Promise<UserRecord> {
    const current = await this.get(id);
    return this.#serial.run(current.matrixId, () =>
      this.#update(id, (record) => applyPatch(record.document, body), ctx, ifMatch),
    );
  }

  async delete(id: string, ctx: RequestContext, ifMatch?: string): Promise<void> {
    const current = await this.get(id);
    await this.#serial.run(current.matrixId, async () => {
      const record = await this.get(id);
      this.#checkProtected(record.matrixId);
      checkVersion(record, ifMatch);
      const deleting: UserRecord = { ...record, state: 'deleting', lastModified: new Date().toISOString() };
      await this.#store.updateUser(deleting, record.version, 'delete');
      await this.#store.completeJournal(id, 'sync');
      // A deleted user is no member of anything any more (RFC 7644 §3.6).
      if ((await this.#store.groups.removeUserEverywhere(id)).length > 0) this.#wakeJournal();
      this.#pendingPasswords.delete(id);
      await this.#remove(deleting, ctx.source);
    });
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

  /** A user's room memberships may have to change: its groups' rooms are brought in line. */
  async #groupsNeedSync(userId: string): Promise<void> {
    const groups = await this.#store.groups.groupsOf(userId);
    for (const group of groups) await this.#store.openJournal(group.id, 'group-sync');
    if (groups.length > 0) this.#wakeJournal();
  }

  async #update(id: string, change: (record: UserRecord) => Doc, ctx: RequestContext, ifMatch: string | undefined): Promise<UserRecord> {
    const record = await this.get(id);
    this.#checkProtected(record.matrixId);
    checkVersion(record, ifMatch);
    const { doc, password } = withoutPassword(change(record));
    this.#checkProblems(doc);
    const userName = String(doc['userName']);
    if (userName.toLowerCase() !== record.userName.toLowerCase()) {
      const other = await this.#store.findByUserName(userName);
      if (other && other.id !== id && (other.state === 'pending' || other.state === 'provisioned')) {
        throw conflict(`userName ${userName} is already in use by another user`);
      }
    }
    await this.#checkExternalId(doc, id);
    await this.#checkOwnership(record.matrixId, doc, record.document);
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
    return this.#sync(updated, password, ctx, kind, changed);
  }

  /** Brings the homeserver to the record's state; on success closes its journal entry. */
  async #sync(
    record: UserRecord,
    password: string | undefined,
    ctx: RequestContext,
    kind: ProvisioningEvent['kind'],
    changed?: string[],
  ): Promise<UserRecord> {
    const account = desiredAccount(record.document, record.matrixId, record.active);
    try {
      const outcome = await this.#homeserver.apply(account, record.applied, password);
      const done: UserRecord = { ...record, state: 'provisioned', applied: outcome.applied };
      await this.#store.updateUser(done, record.version);
      await this.#store.completeJournal(record.id, 'sync');
      this.#pendingPasswords.delete(record.id);
      if (kind !== 'updated') await this.#groupsNeedSync(record.id);
      this.#events.report({
        kind,
        userName: record.userName,
        matrixId: record.matrixId,
        source: ctx.source,
        ...(changed ? { changed } : {}),
        ...(outcome.warnings.length > 0 ? { reason: outcome.warnings.join('; ') } : {}),
      });
      return done;
    } catch (error) {
      throw await this.#failed(record, password, ctx, error);
    }
  }

  async #remove(record: UserRecord, source: string): Promise<void> {
    try {
      await this.#homeserver.remove(record.matrixId, this.#settings.eraseOnDelete);
      await this.#store.updateUser({ ...record, state: 'deleted' }, record.version);
      await this.#store.completeJournal(record.id, 'delete');
      this.#events.report({ kind: 'deleted', userName: record.userName, matrixId: record.matrixId, source });
    } catch (error) {
      throw await this.#failed(record, undefined, { source }, error);
    }
  }

  /** Records a failed homeserver step and turns it into the error the IdP should see. */
  async #failed(record: UserRecord, password: string | undefined, ctx: RequestContext, error: unknown): Promise<Error> {
    const entries = await this.#store.journalFor(record.id);
    const attempts = Math.max(0, ...entries.map((e) => e.attempts));
    const reason = error instanceof Error ? error.message : String(error);
    const retryMs = error instanceof HomeserverError && error.retryAfterMs ? error.retryAfterMs : retryDelayMs(attempts);
    for (const entry of entries) await this.#store.deferJournal(entry.id, reason, new Date(Date.now() + retryMs));
    if (password !== undefined) this.#pendingPasswords.set(record.id, password);
    // A failure that keeps coming back is reported on attempts 1, 2, 3, 5, 9, 17, …: always
    // visible, never a notice every retry.
    if ((attempts & (attempts - 1)) === 0) {
      this.#events.report({ kind: 'failed', userName: record.userName, matrixId: record.matrixId, source: ctx.source, reason });
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

  async #acknowledge(record: UserRecord): Promise<UserRecord> {
    if (record.acknowledged) return record;
    const acknowledged = { ...record, acknowledged: true };
    await this.#store.updateUser(acknowledged, record.version);
    return acknowledged;
  }

  /** A pending user from an earlier POST whose answer the IdP never got, which this POST resumes. */
  async #resumableCreate(userName: string, matrixId: string, doc: Doc): Promise<UserRecord | undefined> {
    const sameName = await this.#store.findByUserName(userName);
    if (sameName && (sameName.state === 'pending' || sameName.state === 'provisioned')) {
      if (!sameName.acknowledged && sameName.matrixId === matrixId) return sameName;
      throw conflict(`userName ${userName} is already in use (user ${sameName.id})`);
    }
    const sameMatrixId = await this.#store.findByMatrixId(matrixId);
    if (sameMatrixId) {
      throw conflict(
        sameMatrixId.state === 'deleted' || sameMatrixId.state === 'deleting'
          ? `userName ${userName} maps to ${matrixId}, which belonged to a deleted user: Matrix IDs are never reused`
          : `userName ${userName} maps to ${matrixId}, already held by user ${sameMatrixId.id} (userName ${sameMatrixId.userName})`,
      );
    }
    await this.#checkExternalId(doc, undefined);
    return undefined;
  }

  async #checkHomeserverForCreate(matrixId: string, doc: Doc, resuming: boolean): Promise<void> {
    try {
      if (!resuming) {
        const existing = await this.#homeserver.lookup(matrixId);
        if (existing?.deactivated) throw conflict(`${matrixId} exists on the homeserver and is deactivated`);
        if (existing && !this.#settings.adoptExistingUsers) {
          throw conflict(
            `${matrixId} already exists on the homeserver and was not provisioned by this bridge ` +
              '(turn on provisioning.adoptExistingUsers to take such accounts over)',
          );
        }
      }
      await this.#checkOwnership(matrixId, doc);
    } catch (error) {
      throw this.#unreachable(error);
    }
  }

  /**
   * Refuses identifiers (emails, phone numbers, external id) that another account holds.
   * Only identifiers new to this user are looked up, so an update that adds none needs no
   * homeserver round trip (and is kept in the journal if the homeserver is down).
   */
  async #checkOwnership(matrixId: string, doc: Doc, previous?: Doc): Promise<void> {
    const wanted = desiredAccount(doc, matrixId, true);
    if (previous) {
      const had = desiredAccount(previous, matrixId, true);
      wanted.emails = wanted.emails.filter((e) => !had.emails.includes(e));
      wanted.msisdns = wanted.msisdns.filter((m) => !had.msisdns.includes(m));
      if (wanted.externalId === had.externalId) wanted.externalId = null;
    }
    if (wanted.emails.length === 0 && wanted.msisdns.length === 0 && wanted.externalId === null) return;
    try {
      const conflicts = await this.#homeserver.ownershipConflicts(wanted);
      if (conflicts.length > 0) {
        throw conflict(conflicts.map((c) => `${c.what} is already held by ${c.heldBy}`).join('; '));
      }
    } catch (error) {
      throw this.#unreachable(error);
    }
  }

  #unreachable(error: unknown): unknown {
    if (error instanceof HomeserverError) {
      return error.transient
        ? unavailable(`the homeserver cannot be reached to check this request (${error.message}); nothing was changed`, DEFAULT_RETRY_AFTER_S)
        : new ScimError(502, `the homeserver refused a check: ${error.message}; nothing was changed`);
    }
    return error;
  }

  async #checkExternalId(doc: Doc, selfId: string | undefined): Promise<void> {
    const externalId = doc['externalId'];
    if (typeof externalId !== 'string') return;
    const other = await this.#store.findByExternalId(externalId);
    if (other && other.id !== selfId) throw conflict(`externalId ${externalId} is already used by user ${other.id}`);
  }

  #checkProblems(doc: Doc): void {
    const problems = accountProblems(doc);
    if (problems.length > 0) throw badRequest('invalidValue', problems.join('; '));
  }

  #checkProtected(matrixId: string): void {
    if (this.#settings.protectedUsers.some((re) => re.test(matrixId))) {
      throw new ScimError(403, `${matrixId} is protected: the bridge never touches it (provisioning.protectedUsers)`);
    }
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
