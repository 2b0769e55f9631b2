import type {
  AccountState,
  AccountWrite,
  ApplyOutcome,
  HomeserverPort,
  OwnershipConflict,
} from '../provisioning/ports.ts';
import type { DesiredAccount } from '../provisioning/mapping.ts';
import type { AppliedState } from '../store/types.ts';
import type { AvatarFetchOptions } from './avatarFetch.ts';
import { avatarUrlFor } from './avatarWrite.ts';
import type { HomeserverClient } from './homeserverClient.ts';

type Json = Record<string, unknown>;

/** What Synapse holds, with the links to other SSO providers that a write must keep. */
interface SynapseAccountState extends AccountState {
  otherExternalIds: Json[];
}

export interface SynapsePortOptions {
  /** SSO provider the externalId is linked to (e.g. oidc-keycloak); none: not linked. */
  externalIdProvider?: string;
  /** Avatar fetching; undefined: photos given as URLs are ignored. */
  avatars?: AvatarFetchOptions;
}

/** The homeserver port on Synapse: appservice registration plus the Synapse admin API. */
export class SynapsePort implements HomeserverPort {
  readonly #client: HomeserverClient;
  readonly #options: SynapsePortOptions;

  constructor(client: HomeserverClient, options: SynapsePortOptions) {
    this.#client = client;
    this.#options = options;
  }

  async lookup(matrixId: string): Promise<AccountState | undefined> {
    const user = await this.#client.getUser(matrixId);
    if (!user) return undefined;
    const threepids = Array.isArray(user['threepids']) ? (user['threepids'] as Json[]) : [];
    const addresses = (medium: string) =>
      threepids.filter((t) => t['medium'] === medium && typeof t['address'] === 'string').map((t) => String(t['address']));
    const provider = this.#options.externalIdProvider;
    const links = Array.isArray(user['external_ids']) ? (user['external_ids'] as Json[]) : [];
    const link = provider ? links.find((l) => l['auth_provider'] === provider) : undefined;
    const state: SynapseAccountState = {
      admin: user['admin'] === true,
      deactivated: user['deactivated'] === true,
      locked: user['locked'] === true,
      suspended: user['suspended'] === true,
      displayName: typeof user['displayname'] === 'string' ? user['displayname'] : null,
      avatarUrl: typeof user['avatar_url'] === 'string' && user['avatar_url'] !== '' ? user['avatar_url'] : null,
      emails: addresses('email'),
      msisdns: addresses('msisdn'),
      externalId: provider ? (typeof link?.['external_id'] === 'string' ? link['external_id'] : null) : undefined,
      otherExternalIds: links.filter((l) => l !== link),
    };
    return state;
  }

  async ownershipConflicts(account: DesiredAccount): Promise<OwnershipConflict[]> {
    const conflicts: OwnershipConflict[] = [];
    const check = async (what: string, owner: Promise<string | undefined>) => {
      const heldBy = await owner;
      if (heldBy && heldBy !== account.matrixId) conflicts.push({ what, heldBy });
    };
    await Promise.all([
      ...account.emails.map((e) => check(`email ${e}`, this.#client.threepidOwner('email', e))),
      ...account.msisdns.map((m) => check(`phone number ${m}`, this.#client.threepidOwner('msisdn', m))),
      ...(this.#options.externalIdProvider && account.externalId
        ? [
            check(
              `external id ${account.externalId} of ${this.#options.externalIdProvider}`,
              this.#client.externalIdOwner(this.#options.externalIdProvider, account.externalId),
            ),
          ]
        : []),
    ]);
    return conflicts;
  }

  /**
   * A new account is created by the admin API's PUT with everything it needs, so that a
   * value Synapse refuses (checked before it creates anything) leaves no account behind.
   * Synapse takes a lock only on an existing account: that is a second write.
   */
  async apply(write: AccountWrite, current: AccountState | undefined, previous: AppliedState): Promise<ApplyOutcome> {
    const warnings: string[] = [];
    const applied: AppliedState = { ...previous };
    const body: Json = {};
    if (write.displayName !== undefined && write.displayName !== null) body['displayname'] = write.displayName;
    if (write.avatar !== undefined) {
      const avatarUrl = await avatarUrlFor(this.#client, this.#options.avatars, write, previous, applied, warnings);
      if (avatarUrl !== undefined && !(write.create && avatarUrl === '')) body['avatar_url'] = avatarUrl;
    }
    if (write.threepids) {
      body['threepids'] = [
        ...write.threepids.emails.map((address) => ({ medium: 'email', address })),
        ...write.threepids.msisdns.map((address) => ({ medium: 'msisdn', address })),
      ];
    }
    const provider = this.#options.externalIdProvider;
    if (provider && write.externalId !== undefined) {
      // Synapse replaces the whole list: links to other providers (an operator's) are kept.
      const others = (current as SynapseAccountState | undefined)?.otherExternalIds ?? [];
      body['external_ids'] = [...others, ...(write.externalId ? [{ auth_provider: provider, external_id: write.externalId }] : [])];
    }
    if (write.password !== undefined) {
      body['password'] = write.password;
      // The IdP resending the same password on every update must not log people out.
      body['logout_devices'] = false;
    }
    const states: Json = {};
    if (write.disable === 'lock') states['locked'] = true;
    if (write.enable?.includes('locked')) states['locked'] = false;
    if (write.enable?.includes('deactivated')) states['deactivated'] = false;
    if (write.create) {
      await this.#client.putUser(write.matrixId, body);
      if (Object.keys(states).length > 0) await this.#client.putUser(write.matrixId, states);
    } else if (Object.keys(body).length + Object.keys(states).length > 0) {
      await this.#client.putUser(write.matrixId, { ...body, ...states });
    }

    if (write.disable === 'suspend') await this.#client.suspend(write.matrixId, true);
    if (write.enable?.includes('suspended')) await this.#client.suspend(write.matrixId, false);
    if (write.disable === 'deactivate') await this.#client.deactivate(write.matrixId, false);
    return { applied, warnings };
  }

  async remove(matrixId: string, erase: boolean): Promise<void> {
    const user = await this.#client.getUser(matrixId);
    if (!user || user['deactivated'] === true) return;
    await this.#client.deactivate(matrixId, erase);
  }
}
