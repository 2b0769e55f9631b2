import type { HomeserverClient } from './homeserverClient.ts';
import { logger } from '../log.ts';

const log = logger('AdminRoom');

/**
 * Finds or creates the admin room, makes sure the bot is in it and the operators are
 * invited. Returns the room ID.
 */
export async function ensureAdminRoom(
  client: HomeserverClient,
  options: { room: string; operators: string[]; botUserId: string },
): Promise<string> {
  let roomId: string;
  if (options.room.startsWith('#')) {
    const existing = await client.resolveAlias(options.room);
    if (existing) {
      roomId = await client.joinRoom(existing);
    } else {
      const localAlias = options.room.slice(1, options.room.indexOf(':'));
      try {
        roomId = await client.createRoom({
          name: 'SCIM provisioning',
          topic: 'What matrix-scim-bridge did on behalf of the identity provider',
          room_alias_name: localAlias,
          preset: 'private_chat',
          visibility: 'private',
          invite: options.operators,
        });
      } catch (error) {
        // Another replica starting at the same moment took the alias first: use its room.
        const made = await client.resolveAlias(options.room).catch(() => undefined);
        if (!made) throw error;
        log.info(`the admin room ${options.room} was just created by another bridge process; joining it`);
        return ensureAdminRoom(client, options);
      }
      log.info(`created the admin room ${options.room} (${roomId})`);
    }
  } else {
    roomId = await client.joinRoom(options.room);
  }
  for (const operator of options.operators) {
    const membership = await client.roomMembership(roomId, operator);
    if (membership !== 'join' && membership !== 'invite') {
      await client.invite(roomId, operator).catch((error: unknown) => {
        log.warn(`could not invite ${operator} to the admin room: ${(error as Error).message}`);
      });
    }
  }
  return roomId;
}
