import type { BridgeStatus, ConsoleContext, SideBySide } from './matrix/consoleCommands.ts';
import type { GroupProvisioner } from './provisioning/groups.ts';
import type { AccountState } from './provisioning/ports.ts';
import type { Reconciler } from './provisioning/reconciler.ts';
import type { UserProvisioner } from './provisioning/users.ts';
import type { Store, UserRecord } from './store/types.ts';

/** When each IdP token last made a SCIM request (since the bridge started). */
export class LastRequests {
  readonly #at = new Map<string, string>();

  note(source: string): void {
    if (source !== 'none') this.#at.set(source, new Date().toISOString());
  }

  list(): { source: string; at: string }[] {
    return [...this.#at].map(([source, at]) => ({ source, at })).sort((a, b) => a.source.localeCompare(b.source));
  }
}

/** What the console reads and runs, as the composition root wires it. */
export interface ConsoleDeps {
  version: string;
  /** The homeserver's server name: a bare localpart is looked up as @localpart:domain. */
  domain: string;
  store: Store;
  users: UserProvisioner;
  groups: GroupProvisioner;
  reconciler: Reconciler;
  /** The homeserver's version, or a throw when it cannot be reached. */
  homeserverVersion(): Promise<string>;
  lastRequests: LastRequests;
  /** Runs the journal, back-off included. */
  runJournalNow(): Promise<number>;
}

const shown = (value: string | null | undefined): string => (value === null || value === undefined || value === '' ? '(none)' : value);
const list = (values: readonly string[]): string => (values.length === 0 ? '(none)' : values.join(', '));

function disabledState(account: AccountState): string {
  const states = [account.deactivated && 'deactivated', account.locked && 'locked', account.suspended && 'suspended'].filter(
    (s): s is string => typeof s === 'string',
  );
  return states.length === 0 ? 'active' : states.join(' and ');
}

/** A user as the store holds it beside what the homeserver holds. */
async function userView(deps: ConsoleDeps, record: UserRecord): Promise<SideBySide> {
  const { current, differences } = await deps.users.compare(record);
  const synced = record.applied.synced;
  const idp = (field: keyof NonNullable<typeof synced>): string => {
    const value = synced?.[field];
    return Array.isArray(value) ? list(value) : typeof value === 'boolean' ? (value ? 'active' : 'disabled') : shown(value);
  };
  const hs = (read: (a: AccountState) => string): string => (current ? read(current) : '(no account)');
  return {
    title: `${record.matrixId} — userName ${record.userName}, id ${record.id}, ${record.state}, last changed ${record.lastModified}`,
    rows: [
      { label: 'display name', idp: shown(record.displayName), homeserver: hs((a) => shown(a.displayName)) },
      { label: 'account', idp: record.active ? 'active' : 'disabled', homeserver: hs(disabledState) },
      { label: 'emails', idp: idp('emails'), homeserver: hs((a) => list(a.emails)) },
      { label: 'phone numbers', idp: idp('msisdns'), homeserver: hs((a) => list(a.msisdns)) },
      { label: 'external id', idp: shown(record.externalId), homeserver: hs((a) => (a.externalId === undefined ? '(not linked)' : shown(a.externalId))) },
      { label: 'avatar', idp: idp('avatar'), homeserver: hs((a) => shown(a.avatarUrl)) },
      { label: 'server admin', idp: 'no', homeserver: hs((a) => (a.admin ? 'yes' : 'no')) },
    ],
    differences,
  };
}

/** The console's commands on the bridge's own parts. */
export function consoleContext(deps: ConsoleDeps): ConsoleContext {
  const { store } = deps;
  return {
    version: deps.version,
    reconcile: (request) => deps.reconciler.run(request),
    retry: () => deps.runJournalNow(),

    async status(): Promise<BridgeStatus> {
      let homeserver: BridgeStatus['homeserver'];
      try {
        homeserver = { reachable: true, detail: `Synapse ${await deps.homeserverVersion()}` };
      } catch (error) {
        homeserver = { reachable: false, detail: error instanceof Error ? error.message : String(error) };
      }
      const journal = await store.journalStats();
      const pending = Object.values(journal.pendingByAction).reduce((a, b) => a + b, 0);
      return {
        homeserver,
        users: await store.countUsers(),
        groups: (await store.groups.list({ startIndex: 1, count: 0 })).totalResults,
        journal: {
          pending,
          oldestAgeSeconds: journal.oldestCreated ? Math.max(0, (Date.now() - Date.parse(journal.oldestCreated)) / 1000) : null,
        },
        membership: {
          ...(await store.groups.pendingMembership()),
          groups: (journal.pendingByAction['group-sync'] ?? 0) + (journal.pendingByAction['group-delete'] ?? 0),
        },
        lastRequests: deps.lastRequests.list(),
      };
    },

    async user(query) {
      const record = query.startsWith('@')
        ? await store.findByMatrixId(query)
        : ((await store.findByUserName(query)) ??
          (await store.findByMatrixId(`@${query.toLowerCase()}:${deps.domain}`)) ??
          (await store.getUserAnyState(query)));
      return record ? userView(deps, record) : undefined;
    },

    async group(query) {
      const group = (await store.groups.findByDisplayName(query)) ?? (await store.groups.getAnyState(query));
      if (!group) return undefined;
      const members = await store.groups.members(group.id);
      const rows: SideBySide['rows'] = [];
      const differences: string[] = [];
      for (const roomId of group.applied.roomIds ?? []) {
        const applied = await store.groups.roomMembers(group.id, roomId);
        const joinedByBridge = [...applied].filter(([, state]) => state === 'joined').map(([m]) => m);
        const pending = members.filter((m) => applied.get(m.matrixId) !== 'joined').length;
        rows.push({
          label: `room ${roomId}`,
          idp: `${members.length} members${pending > 0 ? ` (${pending} not joined yet)` : ''}`,
          homeserver: `${joinedByBridge.length} joined by the bridge`,
        });
      }
      if (rows.length === 0) rows.push({ label: 'room', idp: `${members.length} members`, homeserver: '(no room yet)' });
      for (const line of group.applied.reportedDrift ? Object.keys(group.applied.reportedDrift) : []) {
        differences.push(`${line.split(' ')[1] ?? line} is a member but was not joined to ${line.split(' ')[0] ?? ''} at the last drift check`);
      }
      return {
        title: `group "${group.displayName}" — id ${group.id}, ${group.state}, last changed ${group.lastModified}`,
        rows,
        differences,
      };
    },
  };
}
