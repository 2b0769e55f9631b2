import type { ApplyOutcome, DisablePolicy, HomeserverPort, OwnershipConflict } from '../provisioning/ports.ts';
import type { DesiredAccount } from '../provisioning/mapping.ts';
import type { AppliedState } from '../store/types.ts';
import { fetchAvatar, type AvatarFetchOptions } from './avatarFetch.ts';
import type { HomeserverClient } from './homeserverClient.ts';
import { logger } from '../log.ts';

const log = logger('SynapsePort');

export interface SynapsePortOptions {
  disablePolicy: DisablePolicy;
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

  async lookup(matrixId: string): Promise<{ deactivated: boolean } | undefined> {
    const user = await this.#client.getUser(matrixId);
    return user ? { deactivated: user['deactivated'] === true } : undefined;
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

  async apply(account: DesiredAccount, previous: AppliedState, password: string | undefined): Promise<ApplyOutcome> {
    await this.#client.register(account.localpart);
    const warnings: string[] = [];
    const applied: AppliedState = {};
    const avatarUrl = await this.#avatar(account, previous, applied, warnings);

    const current = await this.#client.getUser(account.matrixId);
    const body: Record<string, unknown> = {
      threepids: [
        ...account.emails.map((address) => ({ medium: 'email', address })),
        ...account.msisdns.map((address) => ({ medium: 'msisdn', address })),
      ],
      // The IdP resending the same password on every update must not log people out.
      logout_devices: false,
    };
    if (account.displayName !== null) body['displayname'] = account.displayName;
    if (avatarUrl !== undefined) body['avatar_url'] = avatarUrl;
    if (password !== undefined) body['password'] = password;
    if (this.#options.externalIdProvider) {
      body['external_ids'] = account.externalId
        ? [{ auth_provider: this.#options.externalIdProvider, external_id: account.externalId }]
        : [];
    }
    const policy = this.#options.disablePolicy;
    if (policy === 'lock') body['locked'] = !account.active;
    if (current?.['deactivated'] === true && account.active) body['deactivated'] = false;
    await this.#client.putUser(account.matrixId, body);

    if (policy === 'suspend') await this.#client.suspend(account.matrixId, !account.active);
    if (policy === 'deactivate' && !account.active && current?.['deactivated'] !== true) {
      await this.#client.deactivate(account.matrixId, false);
    }
    return { applied, warnings };
  }

  /** The avatar_url to set: undefined leaves the current one alone. */
  async #avatar(
    account: DesiredAccount,
    previous: AppliedState,
    applied: AppliedState,
    warnings: string[],
  ): Promise<string | undefined> {
    const source = account.avatar;
    if (source === null) return previous.avatarSource || previous.avatarMxc ? '' : undefined;
    if (source.kind === 'mxc') {
      applied.avatarMxc = source.uri;
      return source.uri;
    }
    if (previous.avatarSource === source.url && previous.avatarMxc) {
      applied.avatarSource = previous.avatarSource;
      applied.avatarMxc = previous.avatarMxc;
      return previous.avatarMxc;
    }
    if (!this.#options.avatars) {
      warnings.push(`photo ${source.url} not fetched: avatar fetching is turned off`);
      return undefined;
    }
    try {
      const image = await fetchAvatar(source.url, this.#options.avatars);
      const mxc = await this.#client.uploadMedia(image.data, image.contentType, `avatar-${account.localpart}`);
      applied.avatarSource = source.url;
      applied.avatarMxc = mxc;
      return mxc;
    } catch (error) {
      if ((error as { transient?: boolean }).transient) throw error;
      log.warn(`avatar for ${account.matrixId} not set: ${(error as Error).message}`);
      warnings.push(`avatar not set: ${(error as Error).message}`);
      return undefined;
    }
  }

  async remove(matrixId: string, erase: boolean): Promise<void> {
    const user = await this.#client.getUser(matrixId);
    if (!user || user['deactivated'] === true) return;
    await this.#client.deactivate(matrixId, erase);
  }
}
