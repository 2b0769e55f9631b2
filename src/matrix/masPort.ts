import type {
  AccountState,
  AccountWrite,
  ApplyOutcome,
  HomeserverPort,
  OwnershipConflict,
} from '../provisioning/ports.ts';
import { HomeserverError } from '../provisioning/ports.ts';
import type { DesiredAccount } from '../provisioning/mapping.ts';
import type { AppliedState, LeftoverAccounts } from '../store/types.ts';
import { logger } from '../log.ts';
import type { AvatarFetchOptions } from './avatarFetch.ts';
import { avatarUrlFor } from './avatarWrite.ts';
import type { HomeserverClient } from './homeserverClient.ts';
import type { MasClient, MasResource } from './masClient.ts';

const log = logger('MasPort');

type Json = Record<string, unknown>;

export interface MasPortOptions {
  /** The homeserver's server name: Matrix IDs are @<MAS username>:<domain>. */
  domain: string;
  /** MAS's id (a ULID) of the upstream OAuth provider externalId links to; none: not linked. */
  upstreamProviderId?: string;
  /** Avatar fetching; undefined: photos given as URLs are ignored. */
  avatars?: AvatarFetchOptions;
  /** Where the users a refused create leaves in MAS are recorded (the store's). */
  leftovers: LeftoverAccounts;
}

/** How long a new MAS user may take to appear in Synapse (MAS provisions it: 0.1-0.5 s seen). */
const PROVISIONED_WITHIN_MS = 10_000;

const enc = encodeURIComponent;

/**
 * The homeserver port for a Synapse that delegates its accounts to the Matrix
 * Authentication Service: accounts, passwords, emails, locks, deactivation and the
 * externalId's upstream link are MAS's (its admin API; Synapse follows within a second),
 * while the display name and avatar stay Synapse's profile (its admin API still writes them
 * for an existing user). MAS keeps no phone numbers: those are not written (a warning says
 * so). Disabling also ends the user's sessions, since a MAS lock alone keeps tokens
 * issued before it working.
 */
export class MasPort implements HomeserverPort {
  readonly #mas: MasClient;
  readonly #synapse: HomeserverClient;
  readonly #options: MasPortOptions;

  constructor(mas: MasClient, synapse: HomeserverClient, options: MasPortOptions) {
    this.#mas = mas;
    this.#synapse = synapse;
    this.#options = options;
  }

  #username(matrixId: string): string {
    return matrixId.slice(1, matrixId.indexOf(':'));
  }

  async #user(matrixId: string): Promise<MasResource | undefined> {
    return this.#mas.get(`/users/by-username/${enc(this.#username(matrixId))}`);
  }

  async #emails(userId: string): Promise<MasResource[]> {
    return this.#mas.list(`/user-emails?filter[user]=${enc(userId)}`);
  }

  async #link(userId: string): Promise<MasResource | undefined> {
    const provider = this.#options.upstreamProviderId;
    if (!provider) return undefined;
    const [link] = await this.#mas.list(`/upstream-oauth-links?filter[user]=${enc(userId)}&filter[provider]=${enc(provider)}`);
    return link;
  }

  async lookup(matrixId: string): Promise<AccountState | undefined> {
    const user = await this.#user(matrixId);
    if (!user) return undefined;
    // What a refused create of ours left is free for the IdP's retry (apply reuses it).
    if (isDeactivated(user) && (await this.#options.leftovers.has(matrixId))) return undefined;
    const [emails, link, profile] = await Promise.all([this.#emails(user.id), this.#link(user.id), this.#synapse.getUser(matrixId)]);
    return {
      admin: user.attributes['admin'] === true || profile?.['admin'] === true,
      deactivated: isDeactivated(user),
      locked: typeof user.attributes['locked_at'] === 'string',
      suspended: profile?.['suspended'] === true,
      displayName: typeof profile?.['displayname'] === 'string' ? profile['displayname'] : null,
      avatarUrl: typeof profile?.['avatar_url'] === 'string' && profile['avatar_url'] !== '' ? profile['avatar_url'] : null,
      emails: emails.map((e) => String(e.attributes['email'])),
      msisdns: [],
      externalId: this.#options.upstreamProviderId ? (link ? String(link.attributes['subject']) : null) : undefined,
    };
  }

  async ownershipConflicts(account: DesiredAccount): Promise<OwnershipConflict[]> {
    const conflicts: OwnershipConflict[] = [];
    const owner = async (userId: unknown): Promise<string | undefined> => {
      if (typeof userId !== 'string') return undefined;
      const user = await this.#mas.get(`/users/${enc(userId)}`);
      return user ? `@${String(user.attributes['username'])}:${this.#options.domain}` : undefined;
    };
    const check = async (what: string, held: Promise<string | undefined>) => {
      const heldBy = await held;
      if (heldBy && heldBy !== account.matrixId) conflicts.push({ what, heldBy });
    };
    const provider = this.#options.upstreamProviderId;
    await Promise.all([
      ...account.emails.map((email) =>
        check(`email ${email}`, this.#mas.list(`/user-emails?filter[email]=${enc(email)}`).then(([e]) => owner(e?.attributes['user_id']))),
      ),
      ...(provider && account.externalId
        ? [
            check(
              `external id ${account.externalId} of the upstream provider ${provider}`,
              this.#mas
                .list(`/upstream-oauth-links?filter[provider]=${enc(provider)}&filter[subject]=${enc(account.externalId)}`)
                .then(([link]) => owner(link?.attributes['user_id'])),
            ),
          ]
        : []),
    ]);
    return conflicts;
  }

  async apply(write: AccountWrite, _current: AccountState | undefined, previous: AppliedState): Promise<ApplyOutcome> {
    const made = write.create ? await this.#create(write) : undefined;
    const user = made?.user ?? (await this.#user(write.matrixId));
    if (!user) throw new HomeserverError(`MAS has no user ${this.#username(write.matrixId)}`, 404, undefined, false);
    try {
      const outcome = await this.#write(write, user.id, made?.fresh === true, previous);
      if (made && !made.fresh) await this.#options.leftovers.remove(write.matrixId);
      return outcome;
    } catch (error) {
      // MAS made the account before judging the rest (a password, an email) and deletes
      // none: one the IdP is told nothing of is disabled and recorded for its retry.
      if (made && error instanceof HomeserverError && !error.transient) await this.#leave(write.matrixId, user.id);
      throw error;
    }
  }

  /** The write to an account MAS holds; `fresh`: MAS made it just now, with the profile. */
  async #write(write: AccountWrite, userId: string, fresh: boolean, previous: AppliedState): Promise<ApplyOutcome> {
    const warnings: string[] = [];
    const applied: AppliedState = { ...previous };
    // First after a create: a refused password leaves the least behind (no email, no link).
    if (write.create && write.password !== undefined) await this.#setPassword(userId, write.password);

    if (write.enable?.includes('deactivated')) {
      await this.#mas.call('POST', `/users/${enc(userId)}/reactivate`);
      // MAS keeps the profile but not the emails: the IdP's come back (below, or here).
      if (!write.threepids) await this.#setEmails(userId, previous.synced?.emails ?? []);
    }
    if (write.enable?.includes('locked')) await this.#mas.call('POST', `/users/${enc(userId)}/unlock`);
    if (write.enable?.includes('suspended')) await this.#synapse.suspend(write.matrixId, false);

    if (write.threepids) {
      await this.#setEmails(userId, write.threepids.emails);
      if (write.threepids.msisdns.length > 0) warnings.push('phone numbers not set: MAS keeps none');
    }
    if (write.externalId !== undefined && this.#options.upstreamProviderId) await this.#setLink(userId, write.externalId);
    if (!write.create && write.password !== undefined) await this.#setPassword(userId, write.password);

    // A new user got its display name and mxc avatar from MAS's create (MAS provisions Synapse).
    const profile: Json = {};
    if (!fresh && write.displayName !== undefined && write.displayName !== null) profile['displayname'] = write.displayName;
    if (write.avatar !== undefined) {
      // A photo URL is uploaded to Synapse's media repository with the appservice's token,
      // which Synapse still honours under MAS.
      const avatarUrl = await avatarUrlFor(this.#synapse, this.#options.avatars, write, previous, applied, warnings);
      const setByCreate = fresh && (avatarUrl === '' || write.avatar?.kind === 'mxc');
      if (avatarUrl !== undefined && !setByCreate) profile['avatar_url'] = avatarUrl;
    }
    if (Object.keys(profile).length > 0) {
      await this.#provisioned(write.matrixId);
      await this.#synapse.putUser(write.matrixId, profile);
    }

    if (write.disable === 'lock') {
      await this.#mas.call('POST', `/users/${enc(userId)}/lock`);
      await this.#endSessions(userId);
    } else if (write.disable === 'suspend') {
      await this.#synapse.suspend(write.matrixId, true);
      await this.#endSessions(userId);
    } else if (write.disable === 'deactivate') {
      await this.#deactivate(userId, false);
    }
    return { applied, warnings };
  }

  async remove(matrixId: string, erase: boolean): Promise<void> {
    const user = await this.#user(matrixId);
    if (!user || isDeactivated(user)) return;
    await this.#deactivate(user.id, erase);
  }

  /**
   * A new MAS user (`fresh`), or the one an earlier refused create of this account left,
   * reactivated: the only deactivated user the bridge ever takes.
   */
  async #create(write: AccountWrite): Promise<{ user: MasResource; fresh: boolean }> {
    if (await this.#options.leftovers.has(write.matrixId)) {
      const left = await this.#user(write.matrixId);
      if (left && isDeactivated(left)) {
        await this.#mas.call('POST', `/users/${enc(left.id)}/reactivate`);
        if (typeof left.attributes['locked_at'] === 'string') await this.#mas.call('POST', `/users/${enc(left.id)}/unlock`);
        log.info(`reusing ${write.matrixId}, which a refused create left in MAS`);
        return { user: left, fresh: false };
      }
      // Reactivated (or gone) since: no longer ours to take.
      await this.#options.leftovers.remove(write.matrixId);
    }
    return { user: await this.#createUser(write), fresh: true };
  }

  async #createUser(write: AccountWrite): Promise<MasResource> {
    const body: Json = { username: write.localpart };
    if (write.displayName) body['displayname'] = write.displayName;
    if (write.avatar?.kind === 'mxc') body['avatar_url'] = write.avatar.uri;
    const { body: created } = await this.#mas.call('POST', '/users', { body });
    const data = (created['data'] ?? {}) as Json;
    return { id: String(data['id']), attributes: (data['attributes'] ?? {}) as Json };
  }

  async #setPassword(userId: string, password: string): Promise<void> {
    await this.#mas.call('POST', `/users/${enc(userId)}/set-password`, { body: { password } });
  }

  /** The user's emails become exactly `wanted` (the core merged in those an operator added). */
  async #setEmails(userId: string, wanted: readonly string[]): Promise<void> {
    const held = await this.#emails(userId);
    const have = new Set(held.map((e) => String(e.attributes['email'])));
    for (const email of held) {
      if (!wanted.includes(String(email.attributes['email']))) await this.#mas.call('DELETE', `/user-emails/${enc(email.id)}`);
    }
    for (const email of wanted) {
      if (!have.has(email)) await this.#mas.call('POST', '/user-emails', { body: { user_id: userId, email } });
    }
  }

  async #setLink(userId: string, subject: string | null): Promise<void> {
    const provider = this.#options.upstreamProviderId;
    if (!provider) return;
    const link = await this.#link(userId);
    if (link && String(link.attributes['subject']) === subject) return;
    if (link) await this.#mas.call('DELETE', `/upstream-oauth-links/${enc(link.id)}`);
    if (subject !== null) await this.#mas.call('POST', '/upstream-oauth-links', { body: { user_id: userId, provider_id: provider, subject } });
  }

  /** Disables what a refused create made, and records it for the IdP's retry. */
  async #leave(matrixId: string, userId: string): Promise<void> {
    await this.#options.leftovers.add(matrixId);
    // Not erased: the retry reuses the account, and it held nothing yet.
    await this.#deactivate(userId, false).catch((error: unknown) => {
      log.warn(`${matrixId}, made in MAS by a refused create, could not be deactivated: ${(error as Error).message}`);
    });
  }

  async #deactivate(userId: string, erase: boolean): Promise<void> {
    await this.#mas.call('POST', `/users/${enc(userId)}/deactivate`, { body: { skip_erase: !erase } });
    await this.#endSessions(userId);
  }

  /** Ends every session the user has: a lock alone leaves earlier tokens working. */
  async #endSessions(userId: string): Promise<void> {
    for (const kind of ['oauth2-sessions', 'compat-sessions'] as const) {
      const sessions = await this.#mas.list(`/${kind}?filter[user]=${enc(userId)}&filter[status]=active`);
      for (const session of sessions) {
        await this.#mas.call('POST', `/${kind}/${enc(session.id)}/finish`, { accept: [400, 404] });
      }
    }
  }

  /** Waits until Synapse has the account MAS provisions (a profile write needs it there). */
  async #provisioned(matrixId: string): Promise<void> {
    const deadline = Date.now() + PROVISIONED_WITHIN_MS;
    for (let wait = 50; ; wait = Math.min(wait * 2, 1_000)) {
      if (await this.#synapse.getUser(matrixId)) return;
      if (Date.now() > deadline) {
        throw new HomeserverError(`MAS has the user, but Synapse does not show ${matrixId} yet`, 503, undefined, true);
      }
      log.debug(`waiting for Synapse to show ${matrixId}`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function isDeactivated(user: MasResource): boolean {
  return typeof user.attributes['deactivated_at'] === 'string';
}
