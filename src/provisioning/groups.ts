import { randomUUID } from 'node:crypto';
import { badRequest, conflict, notFound, preconditionFailed, ScimError } from '../scim/errors.ts';
import { applyPatch } from '../scim/patch/apply.ts';
import { GROUP_RESOURCE } from '../scim/schema/attributes.ts';
import type { GroupListQuery, GroupMember, GroupRecord, JournalEntry, Store, KeyedLocks } from '../store/types.ts';
import { HomeserverError } from './ports.ts';
import type { RoomPort } from './ports.ts';
import type { EventSink } from './events.ts';
import type { RequestContext } from './users.ts';
import { retryDelayMs } from './journal.ts';
import { checkVersion } from './versions.ts';
import { logger } from '../log.ts';

const log = logger('Groups');

type Doc = Record<string, unknown>;

export interface GroupSettings {
  /** What the bridge creates for a group: a room or a space. */
  roomType: 'room' | 'space';
  /** What becomes of a deleted group's room once its members are removed. */
  onDelete: 'keep' | 'close';
  /** Power level given to members in the group's rooms; undefined leaves levels alone. */
  memberPowerLevel?: number;
  /** Groups linked to existing rooms instead of a room of their own, by displayName. */
  links: { displayName: string; rooms: string[]; powerLevel?: number }[];
  /** Membership changes applied per journal run before other work gets a turn. */
  batchSize: number;
  /** Inactive users are out of rooms (the deactivate policy); lock and suspend keep them in. */
  inactiveLeaveRooms: boolean;
}

/** A group with its members, as the SCIM layer renders it. */
export interface GroupView extends GroupRecord {
  /** Undefined when the client excluded members: they were not loaded. */
  members?: { value: string; display: string }[];
}

function memberIdsOf(doc: Doc): string[] {
  const members = doc['members'];
  if (!Array.isArray(members)) return [];
  const ids: string[] = [];
  for (const [i, member] of members.entries()) {
    const value = member && typeof member === 'object' ? (member as Doc)['value'] : undefined;
    if (typeof value !== 'string' || value === '') throw badRequest('invalidValue', `members[${i}] has no value (the member's id)`);
    ids.push(value);
  }
  return [...new Set(ids)];
}

function withoutMembers(doc: Doc): Doc {
  const { members: _members, ...rest } = doc;
  return rest;
}

/** Joins or kicks in flight at once: Synapse serialises a room's changes, so a few are enough. */
const MEMBERSHIP_CONCURRENCY = 4;

/** Runs `work` on every item, at most `limit` at a time; the first failure is thrown once all settled. */
async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const lane = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++] as T;
      await work(item).catch((error: unknown) => {
        failure ??= error;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure !== undefined) throw failure;
}

/**
 * The provisioning core for groups: SCIM state is written at once (group, members and a
 * journal entry in one transaction) and the IdP is answered; the rooms follow in the
 * background, a batch at a time, each applied change recorded so that a restart resumes
 * where it stopped and nothing is done twice.
 */
/** Room names the closing suffix " (closed)" still fits under: the spec caps a name at 255 bytes. */
const MAX_ROOM_NAME_BYTES = 240;

/**
 * The room name of a group: its displayName, cut (with "…") to what a room name may hold, so
 * that a long group name never makes a room the homeserver refuses to create or rename.
 */
export function roomNameOf(displayName: string): string {
  if (Buffer.byteLength(displayName, 'utf8') <= MAX_ROOM_NAME_BYTES) return displayName;
  let out = '';
  for (const ch of displayName) {
    if (Buffer.byteLength(out + ch, 'utf8') > MAX_ROOM_NAME_BYTES - 3) break;
    out += ch;
  }
  return `${out}…`;
}

export class GroupProvisioner {
  readonly actions = ['group-sync', 'group-delete'] as const;
  readonly #store: Store;
  readonly #rooms: RoomPort;
  readonly #events: EventSink;
  readonly #settings: GroupSettings;
  readonly #wakeJournal: () => void;
  /** Per user (group): shared with every replica on the database, so that their work never interleaves. */
  readonly #serial: KeyedLocks;

  constructor(store: Store, rooms: RoomPort, events: EventSink, settings: GroupSettings, wakeJournal: () => void) {
    this.#store = store;
    this.#serial = store.locks;
    this.#rooms = rooms;
    this.#events = events;
    this.#settings = settings;
    this.#wakeJournal = wakeJournal;
  }

  async get(id: string, withMembers: boolean): Promise<GroupView> {
    const group = await this.#store.groups.get(id);
    if (!group) throw notFound(`no group with id ${id}`);
    return withMembers ? { ...group, members: this.#render(await this.#store.groups.members(id)) } : group;
  }

  async list(query: GroupListQuery, withMembers: boolean): Promise<{ totalResults: number; groups: GroupView[] }> {
    const page = await this.#store.groups.list(query);
    if (!withMembers) return page;
    const groups: GroupView[] = [];
    for (const group of page.groups) groups.push({ ...group, members: this.#render(await this.#store.groups.members(group.id)) });
    return { totalResults: page.totalResults, groups };
  }

  async create(input: Doc, ctx: RequestContext): Promise<GroupView> {
    const displayName = String(input['displayName']);
    const memberIds = memberIdsOf(input);
    return this.#serial.run(`name:${displayName.toLowerCase()}`, async () => {
      await this.#checkName(displayName, undefined);
      await this.#checkMembers(memberIds, ctx);
      const now = new Date().toISOString();
      const group: GroupRecord = {
        id: randomUUID(),
        displayName,
        externalId: typeof input['externalId'] === 'string' ? input['externalId'] : null,
        document: withoutMembers(input),
        version: 1,
        created: now,
        lastModified: now,
        state: 'active',
        applied: {},
        owner: ctx.source,
      };
      try {
        await this.#store.groups.insert(group, memberIds);
      } catch (error) {
        if (/UNIQUE/i.test((error as Error).message)) throw conflict(`a group named "${displayName}" already exists`);
        throw error;
      }
      this.#events.report({ kind: 'created', subject: 'group', userName: displayName, source: ctx.source, reason: `${memberIds.length} members` });
      this.#wakeJournal();
      return this.get(group.id, true);
    });
  }

  async replace(id: string, input: Doc, ctx: RequestContext, ifMatch?: string): Promise<GroupView> {
    return this.#serial.run(id, () => this.#update(id, () => input, ctx, ifMatch));
  }

  async patch(id: string, body: unknown, ctx: RequestContext, ifMatch?: string): Promise<GroupView> {
    return this.#serial.run(id, () =>
      this.#update(
        id,
        (current, members) => applyPatch({ ...current.document, members: members.map((m) => ({ value: m.userId })) }, body, GROUP_RESOURCE),
        ctx,
        ifMatch,
      ),
    );
  }

  async delete(id: string, ctx: RequestContext, ifMatch?: string): Promise<void> {
    await this.#serial.run(id, async () => {
      const group = await this.#store.groups.get(id);
      if (!group) throw notFound(`no group with id ${id}`);
      checkVersion(group, ifMatch, 'group');
      const members = await this.#store.groups.members(id);
      const deleting: GroupRecord = { ...group, state: 'deleting', lastModified: new Date().toISOString() };
      await this.#store.groups.update(deleting, group.version, { add: [], remove: members.map((m) => m.userId) });
      this.#events.report({ kind: 'deleted', subject: 'group', userName: group.displayName, source: ctx.source, ...this.#room(group) });
      this.#wakeJournal();
    });
  }

  async #update(
    id: string,
    change: (current: GroupRecord, members: GroupMember[]) => Doc,
    ctx: RequestContext,
    ifMatch: string | undefined,
  ): Promise<GroupView> {
    const current = await this.#store.groups.get(id);
    if (!current) throw notFound(`no group with id ${id}`);
    checkVersion(current, ifMatch, 'group');
    const members = await this.#store.groups.members(id);
    const next = change(current, members);
    const displayName = String(next['displayName']);
    const wanted = memberIdsOf(next);
    const had = new Set(members.map((m) => m.userId));
    const want = new Set(wanted);
    const add = wanted.filter((m) => !had.has(m));
    const remove = [...had].filter((m) => !want.has(m));
    await this.#checkName(displayName, id);
    await this.#checkMembers(add, ctx);
    const updated: GroupRecord = {
      ...current,
      displayName,
      externalId: typeof next['externalId'] === 'string' ? next['externalId'] : null,
      document: withoutMembers(next),
      version: current.version + 1,
      lastModified: new Date().toISOString(),
    };
    try {
      if (!(await this.#store.groups.update(updated, current.version, { add, remove }))) {
        throw preconditionFailed(`the group ${id} changed while this request was handled; read it again`);
      }
    } catch (error) {
      if (/UNIQUE/i.test((error as Error).message)) throw conflict(`a group named "${displayName}" already exists`);
      throw error;
    }
    const changed: string[] = [];
    if (displayName !== current.displayName) changed.push(`renamed from "${current.displayName}"`);
    if (add.length > 0) changed.push(`${add.length} members added`);
    if (remove.length > 0) changed.push(`${remove.length} members removed`);
    if (changed.length > 0) {
      this.#events.report({ kind: 'updated', subject: 'group', userName: displayName, changed, source: ctx.source, ...this.#room(current) });
    }
    this.#wakeJournal();
    return { ...updated, members: this.#render(await this.#store.groups.members(id)) };
  }

  /** Brings a group's rooms in line with it, a batch at a time (the JournalWorker calls this). */
  async runEntry(entry: JournalEntry): Promise<void> {
    const group = await this.#store.groups.getAnyState(entry.resourceId);
    if (!group) {
      await this.#store.completeJournal(entry.resourceId, entry.action);
      return;
    }
    try {
      const done = await this.#reconcile(group);
      // More batches to go: due again at once (the worker keeps going while work is due).
      if (done) await this.#finish(group, entry);
      else await this.#store.requeueJournal(entry.id, new Date(0));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const retryMs = error instanceof HomeserverError && error.retryAfterMs ? error.retryAfterMs : retryDelayMs(entry.attempts);
      await this.#store.deferJournal(entry.id, reason, new Date(Date.now() + retryMs));
      log.warn(`group "${group.displayName}": ${reason}; retrying in ${Math.round(retryMs / 1000)} s`);
      if ((entry.attempts & (entry.attempts - 1)) === 0) {
        this.#events.report({ kind: 'failed', subject: 'group', userName: group.displayName, reason, ...this.#room(group) });
      }
    }
  }

  async #finish(group: GroupRecord, entry: JournalEntry): Promise<void> {
    if (entry.action === 'group-delete' || group.state === 'deleting') {
      if (this.#settings.onDelete === 'close' && group.applied.roomId) await this.#rooms.closeRoom(group.applied.roomId, roomNameOf(group.displayName));
      await this.#store.groups.saveApplied(group.id, group.applied, 'deleted');
    }
    await this.#store.completeJournal(entry.resourceId, entry.action, entry.generation);
  }

  /** One batch of work; true when the rooms match the group. */
  async #reconcile(group: GroupRecord): Promise<boolean> {
    const active = group.state === 'active';
    // A deleted group empties every room it was applied to, linked ones included.
    const rooms = active ? await this.#roomsFor(group) : group.applied.roomIds ?? (group.applied.roomId ? [group.applied.roomId] : []);
    const members = active ? await this.#store.groups.members(group.id) : [];
    const desired = new Set(
      members
        .filter((m) => m.userState === 'provisioned' && (m.active || !this.#settings.inactiveLeaveRooms))
        .map((m) => m.matrixId),
    );
    let budget = this.#settings.batchSize;
    for (const roomId of rooms) {
      const applied = await this.#store.groups.roomMembers(group.id, roomId);
      const toAdd = [...desired].filter((m) => applied.get(m) !== 'joined');
      const toRemove = [...applied].filter(([m, state]) => state === 'joined' && !desired.has(m)).map(([m]) => m);
      const added = toAdd.slice(0, budget);
      await inParallel(added, MEMBERSHIP_CONCURRENCY, async (matrixId) => {
        await this.#rooms.addMember(roomId, matrixId);
        await this.#store.groups.setRoomMember(group.id, roomId, matrixId, 'joined');
      });
      budget -= added.length;
      const removable = toRemove.slice(0, Math.max(0, budget));
      const reason = `removed from the group "${roomNameOf(group.displayName)}" in the identity provider`;
      await inParallel(removable, MEMBERSHIP_CONCURRENCY, async (matrixId) => {
        await this.#rooms.removeMember(roomId, matrixId, reason);
        await this.#store.groups.setRoomMember(group.id, roomId, matrixId, 'left');
      });
      budget -= removable.length;
      // Members get the configured level; people who left the group lose it again.
      const level = this.#powerLevel(group);
      if (level !== undefined && added.length + removable.length > 0) {
        await this.#rooms.setPowerLevels(roomId, {
          ...Object.fromEntries(added.map((m) => [m, level])),
          ...Object.fromEntries(removable.map((m) => [m, null])),
        });
      }
      if (budget <= 0) return false;
    }
    return true;
  }

  /**
   * The group's rooms, creating or renaming the bridge's own room as needed. Each change is
   * saved as soon as it is made, so that a crash never leads to a second room. Every room ID
   * is remembered, so that deleting the group can empty them all (linked ones included).
   */
  async #roomsFor(group: GroupRecord): Promise<string[]> {
    const linked = this.#linked(group);
    let applied = group.applied;
    let ids: string[];
    if (linked.length > 0) {
      ids = [];
      for (const room of linked) ids.push(await this.#rooms.attachRoom(room));
    } else if (!applied.roomId) {
      const roomId = await this.#rooms.createRoom({ name: roomNameOf(group.displayName), space: this.#settings.roomType === 'space' });
      log.info(`created ${roomId} for group "${group.displayName}"`);
      this.#events.report({ kind: 'updated', subject: 'group', userName: group.displayName, matrixId: roomId, reason: 'its room was created' });
      applied = { ...applied, roomId, roomName: roomNameOf(group.displayName) };
      ids = [roomId];
    } else {
      const roomId = applied.roomId;
      const name = roomNameOf(group.displayName);
      if (applied.roomName !== name) {
        await this.#rooms.setName(roomId, name);
        applied = { ...applied, roomName: name };
      }
      ids = [roomId];
    }
    applied = { ...applied, roomIds: [...new Set([...(applied.roomIds ?? []), ...ids])] };
    if (JSON.stringify(applied) !== JSON.stringify(group.applied)) {
      await this.#store.groups.saveApplied(group.id, applied);
      group.applied = applied;
    }
    return ids;
  }

  #linked(group: GroupRecord): string[] {
    const name = group.displayName.toLowerCase();
    return this.#settings.links.find((l) => l.displayName.toLowerCase() === name)?.rooms ?? [];
  }

  #powerLevel(group: GroupRecord): number | undefined {
    const name = group.displayName.toLowerCase();
    return this.#settings.links.find((l) => l.displayName.toLowerCase() === name)?.powerLevel ?? this.#settings.memberPowerLevel;
  }

  #room(group: GroupRecord): { matrixId?: string } {
    return group.applied.roomId ? { matrixId: group.applied.roomId } : {};
  }

  #render(members: GroupMember[]): { value: string; display: string }[] {
    return members.map((m) => ({ value: m.userId, display: m.displayName ?? m.userName }));
  }

  async #checkName(displayName: string, selfId: string | undefined): Promise<void> {
    const other = await this.#store.groups.findByDisplayName(displayName);
    if (other && other.id !== selfId) throw conflict(`a group named "${displayName}" already exists (id ${other.id})`);
  }

  /**
   * Every new member must be a user SCIM knows (one this IdP created, for a token limited to
   * its own); otherwise nothing of the request is applied.
   */
  async #checkMembers(ids: string[], ctx: RequestContext): Promise<void> {
    if (ids.length === 0) return;
    const known = await this.#store.groups.existingUsers(ids, ctx.ownOnly ? ctx.source : undefined);
    const unknown = ids.filter((id) => !known.has(id));
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 10).join(', ');
      throw new ScimError(
        400,
        `unknown members (no such user): ${shown}${unknown.length > 10 ? ` and ${unknown.length - 10} more` : ''}; nothing was changed`,
        'invalidValue',
      );
    }
  }
}
