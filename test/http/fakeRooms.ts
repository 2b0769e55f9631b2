import type { RoomPort, RoomSpec } from '../../src/provisioning/ports.ts';
import { HomeserverError } from '../../src/provisioning/ports.ts';

/** Rooms in memory, for the HTTP tier only (the end-to-end tier runs a real Synapse). */
export class InMemoryRooms implements RoomPort {
  readonly rooms = new Map<string, { name: string; space: boolean; members: Set<string>; levels: Record<string, number>; closed: boolean }>();
  /** Every membership change, in order, to check nothing is done twice. */
  readonly log: string[] = [];
  /** Fail after this many more membership changes (as if the homeserver went away). */
  failAfter = Infinity;
  #next = 1;

  #change(entry: string): void {
    if (this.failAfter <= 0) throw new HomeserverError('the homeserver is unreachable (ECONNREFUSED)', 0, undefined, true);
    this.failAfter--;
    this.log.push(entry);
  }

  #room(roomId: string) {
    const room = this.rooms.get(roomId);
    if (!room) throw new HomeserverError(`no room ${roomId}`, 404, 'M_NOT_FOUND', false);
    return room;
  }

  async createRoom(spec: RoomSpec): Promise<string> {
    const roomId = `!room${this.#next++}:example.org`;
    this.rooms.set(roomId, { name: spec.name, space: spec.space, members: new Set(), levels: {}, closed: false });
    return roomId;
  }

  async attachRoom(roomIdOrAlias: string): Promise<string> {
    if (!this.rooms.has(roomIdOrAlias)) {
      this.rooms.set(roomIdOrAlias, { name: roomIdOrAlias, space: false, members: new Set(), levels: {}, closed: false });
    }
    return roomIdOrAlias;
  }

  async setName(roomId: string, name: string): Promise<void> {
    this.#room(roomId).name = name;
  }

  async addMember(roomId: string, matrixId: string): Promise<void> {
    this.#change(`join ${roomId} ${matrixId}`);
    this.#room(roomId).members.add(matrixId);
  }

  async removeMember(roomId: string, matrixId: string): Promise<void> {
    this.#change(`kick ${roomId} ${matrixId}`);
    this.#room(roomId).members.delete(matrixId);
  }

  async setPowerLevels(roomId: string, levels: Record<string, number | null>): Promise<void> {
    const room = this.#room(roomId);
    for (const [userId, level] of Object.entries(levels)) {
      if (level === null) delete room.levels[userId];
      else room.levels[userId] = level;
    }
  }

  async joinedMembers(roomId: string): Promise<string[]> {
    return [...this.#room(roomId).members];
  }

  async closeRoom(roomId: string, name: string): Promise<void> {
    const room = this.#room(roomId);
    room.name = `${name} (closed)`;
    room.closed = true;
  }
}
