import type { AccountWrite } from '../provisioning/ports.ts';
import type { AppliedState } from '../store/types.ts';
import { logger } from '../log.ts';
import { fetchAvatar, type AvatarFetchOptions } from './avatarFetch.ts';
import type { HomeserverClient } from './homeserverClient.ts';

const log = logger('Avatar');

/**
 * The avatar_url a write sets on Synapse's profile, whichever backend holds the account:
 * an mxc:// photo as given, a photo URL fetched once and uploaded to the media repository
 * (again only when the IdP's URL changes), '' to clear one the bridge set, or undefined to
 * leave the profile's avatar alone. Records in `applied` what was set, so that the next
 * write knows. A photo that cannot be fetched is a warning, not a failed write; a
 * homeserver that cannot be reached is (the journal retries the write).
 */
export async function avatarUrlFor(
  client: HomeserverClient,
  fetching: AvatarFetchOptions | undefined,
  write: AccountWrite,
  previous: AppliedState,
  applied: AppliedState,
  warnings: string[],
): Promise<string | undefined> {
  const source = write.avatar ?? null;
  if (source === null) {
    delete applied.avatarSource;
    delete applied.avatarMxc;
    return previous.avatarSource || previous.avatarMxc ? '' : undefined;
  }
  if (source.kind === 'mxc') {
    delete applied.avatarSource;
    applied.avatarMxc = source.uri;
    return source.uri;
  }
  if (previous.avatarSource === source.url && previous.avatarMxc) {
    applied.avatarSource = previous.avatarSource;
    applied.avatarMxc = previous.avatarMxc;
    return previous.avatarMxc;
  }
  if (!fetching) {
    warnings.push(`photo ${source.url} not fetched: avatar fetching is turned off`);
    return undefined;
  }
  try {
    const image = await fetchAvatar(source.url, fetching);
    const mxc = await client.uploadMedia(image.data, image.contentType, `avatar-${write.localpart}`);
    applied.avatarSource = source.url;
    applied.avatarMxc = mxc;
    return mxc;
  } catch (error) {
    if ((error as { transient?: boolean }).transient) throw error;
    log.warn(`avatar for ${write.matrixId} not set: ${(error as Error).message}`);
    warnings.push(`avatar not set: ${(error as Error).message}`);
    return undefined;
  }
}
