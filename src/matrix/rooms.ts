import type { RoomPort, RoomSpec } from '../provisioning/ports.ts';
import { HomeserverError, type HomeserverClient } from './homeserverClient.ts';

/** Rooms for groups, through the client-server API as the bot and as the appservice's users. */
export class SynapseRooms implements RoomPort {
  readonly #client: HomeserverClient;
  readonly #botUserId: string;

  constructor(client: HomeserverClient, botUserId: string) {
    this.#client = client;
    this.#botUserId = botUserId;
  }

  createRoom(spec: RoomSpec): Promise<string> {
    return this.#client.createRoom({
      name: spec.name,
      preset: 'private_chat',
      visibility: 'private',
      ...(spec.space ? { creation_content: { type: 'm.space' } } : {}),
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'invite' } }],
    });
  }

  attachRoom(roomIdOrAlias: string): Promise<string> {
    return this.#client.joinRoom(roomIdOrAlias);
  }

  async setName(roomId: string, name: string): Promise<void> {
    const current = await this.#client.getState(roomId, 'm.room.name');
    if (current?.['name'] !== name) await this.#client.putState(roomId, 'm.room.name', '', { name });
  }

  // Both membership changes try the change first and look at the membership only when the
  // homeserver refuses: two requests per join instead of three, for large groups.
  async addMember(roomId: string, matrixId: string): Promise<void> {
    try {
      await this.#client.invite(roomId, matrixId);
    } catch (error) {
      if (!(error instanceof HomeserverError) || error.transient) throw error;
      const membership = await this.#client.roomMembership(roomId, matrixId);
      if (membership === 'join') return;
      if (membership !== 'invite') throw error;
    }
    await this.#client.joinAs(roomId, matrixId);
  }

  async removeMember(roomId: string, matrixId: string, reason: string): Promise<void> {
    try {
      await this.#client.kick(roomId, matrixId, reason);
    } catch (error) {
      // Not in the room (left, never joined, or deactivated): nothing to do.
      if (!(error instanceof HomeserverError) || error.transient) throw error;
      const membership = await this.#client.roomMembership(roomId, matrixId);
      if (membership === 'join' || membership === 'invite') throw error;
    }
  }

  async setPowerLevels(roomId: string, levels: Record<string, number | null>): Promise<void> {
    const current = (await this.#client.getState(roomId, 'm.room.power_levels')) ?? {};
    const users = { ...((current['users'] as Record<string, number> | undefined) ?? {}) };
    let changed = false;
    for (const [userId, level] of Object.entries(levels)) {
      if (userId === this.#botUserId) continue;
      if (level === null) {
        if (userId in users) {
          delete users[userId];
          changed = true;
        }
      } else if (users[userId] !== level) {
        users[userId] = level;
        changed = true;
      }
    }
    if (changed) await this.#client.putState(roomId, 'm.room.power_levels', '', { ...current, users });
  }

  async joinedMembers(roomId: string): Promise<string[]> {
    return (await this.#client.joinedMembers(roomId)).filter((m) => m !== this.#botUserId);
  }

  async closeRoom(roomId: string, name: string): Promise<void> {
    await this.setName(roomId, `${name} (closed)`);
    await this.#client.leave(roomId);
  }
}
