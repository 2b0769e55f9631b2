import { ScimError, badRequest, conflict, unavailable } from '../scim/errors.ts';
import type { Store, UserRecord } from '../store/types.ts';
import { accountProblems, desiredAccount, matrixIdProblem } from './mapping.ts';
import { HomeserverError, type AccountState, type HomeserverPort } from './ports.ts';

type Doc = Record<string, unknown>;

/** How long the IdP is asked to wait before retrying after a transient homeserver failure. */
export const DEFAULT_RETRY_AFTER_S = 30;

export interface CheckSettings {
  protectedUsers: RegExp[];
  adoptExistingUsers: boolean;
}

/**
 * What is checked before a user write touches anything: the input against the homeserver's
 * limits, protected users, uniqueness in the store, and (one cheap read each) what the
 * homeserver holds: an existing account, identifiers held by someone else.
 */
export class UserChecks {
  readonly #store: Store;
  readonly #homeserver: HomeserverPort;
  readonly #settings: CheckSettings;

  constructor(store: Store, homeserver: HomeserverPort, settings: CheckSettings) {
    this.#store = store;
    this.#homeserver = homeserver;
    this.#settings = settings;
  }

  /** A pending user from an earlier POST whose answer the IdP never got, which this POST resumes. */
  async resumableCreate(userName: string, matrixId: string, doc: Doc): Promise<UserRecord | undefined> {
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
    await this.checkExternalId(doc, undefined);
    return undefined;
  }

  /**
   * The account this POST would create, as the homeserver holds it. An existing account is
   * adopted only when the operator allows it, and never a server admin's (nor a protected
   * user's or the bot's, refused before this).
   */
  async checkHomeserverForCreate(
    matrixId: string,
    doc: Doc,
    resuming: boolean,
  ): Promise<{ looked: boolean; state: AccountState | undefined }> {
    // Two independent reads, one each, sent together: the account (unless resuming, when
    // this bridge made it) and the owners of the identifiers. Their verdicts are still
    // given in order, so the answer does not depend on which read returns first.
    const [looked, owned] = await Promise.allSettled([
      resuming ? Promise.resolve(undefined) : this.#homeserver.lookup(matrixId),
      this.checkOwnership(matrixId, doc),
    ]);
    try {
      if (looked.status === 'rejected') throw looked.reason;
      const state: AccountState | undefined = looked.value;
      if (!resuming) {
        if (state?.deactivated) throw conflict(`${matrixId} exists on the homeserver and is deactivated`);
        if (state && !this.#settings.adoptExistingUsers) {
          throw conflict(
            `${matrixId} already exists on the homeserver and was not provisioned by this bridge ` +
              '(turn on provisioning.adoptExistingUsers to take such accounts over)',
          );
        }
        if (state?.admin) {
          throw conflict(`${matrixId} already exists on the homeserver and is a server admin: the bridge never adopts a server admin`);
        }
      }
      if (owned.status === 'rejected') throw owned.reason;
      return { looked: !resuming, state };
    } catch (error) {
      throw this.unreachable(error);
    }
  }

  /**
   * Refuses identifiers (emails, phone numbers, external id) that another account holds.
   * Only identifiers new to this user are looked up, so an update that adds none needs no
   * homeserver round trip (and is kept in the journal if the homeserver is down).
   */
  async checkOwnership(matrixId: string, doc: Doc, previous?: Doc): Promise<void> {
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
      throw this.unreachable(error);
    }
  }

  unreachable(error: unknown): unknown {
    if (error instanceof HomeserverError) {
      return error.transient
        ? unavailable(`the homeserver cannot be reached to check this request (${error.message}); nothing was changed`, DEFAULT_RETRY_AFTER_S)
        : new ScimError(502, `the homeserver refused a check: ${error.message}; nothing was changed`);
    }
    return error;
  }

  async checkExternalId(doc: Doc, selfId: string | undefined): Promise<void> {
    const externalId = doc['externalId'];
    if (typeof externalId !== 'string') return;
    const other = await this.#store.findByExternalId(externalId);
    if (other && other.id !== selfId) throw conflict(`externalId ${externalId} is already used by user ${other.id}`);
  }

  checkProblems(doc: Doc): void {
    const problems = accountProblems(doc);
    if (problems.length > 0) throw badRequest('invalidValue', problems.join('; '));
  }

  /** Synapse refuses user IDs longer than its maximum (see mapping.ts HOMESERVER_LIMITS). */
  checkMatrixId(matrixId: string): void {
    const tooLong = matrixIdProblem(matrixId);
    if (tooLong) throw badRequest('invalidValue', tooLong);
  }

  checkProtected(matrixId: string): void {
    if (this.#settings.protectedUsers.some((re) => re.test(matrixId))) {
      throw new ScimError(403, `${matrixId} is protected: the bridge never touches it (provisioning.protectedUsers)`);
    }
  }
}
