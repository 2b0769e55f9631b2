import type { AddressInfo } from 'node:net';
import type { ProvisioningEvent } from '../../src/matrix/adminRoom.ts';
import { groupBackend, userBackend, type TokenScope } from '../../src/provisioning/backends.ts';
import { GroupProvisioner, type GroupSettings } from '../../src/provisioning/groups.ts';
import { JournalWorker } from '../../src/provisioning/journal.ts';
import type { HomeserverPort } from '../../src/provisioning/ports.ts';
import { UserProvisioner, type ProvisioningSettings } from '../../src/provisioning/users.ts';
import { createScimServer } from '../../src/scim/listener.ts';
import { createScimApp, type ScimAppOptions } from '../../src/scim/server.ts';
import { openTestStore, type Engine } from '../support/engines.ts';
import { type SqlStore } from '../../src/store/sqlStore.ts';
import { InMemoryHomeserver } from './fakeHomeserver.ts';
import { InMemoryRooms } from './fakeRooms.ts';

/**
 * The HTTP tier's bridge: the real Koa app, provisioning core, journal and SQLite store,
 * with the homeserver in memory so that failures can be placed exactly. What the
 * homeserver really does is covered by the end-to-end tier.
 */
export const TOKEN = 'http-tier-token-0123456789';
/** A second IdP's token (named "other-idp"), for scoping tests. */
export const OTHER_TOKEN = 'http-tier-other-token-987654321';

export interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export interface HttpBridge {
  base: string;
  store: SqlStore;
  /** The in-memory homeserver; made but unused when the caller gave its own (options.homeserver). */
  homeserver: InMemoryHomeserver;
  rooms: InMemoryRooms;
  users: UserProvisioner;
  groups: GroupProvisioner;
  journal: JournalWorker;
  events: ProvisioningEvent[];
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  /** Runs the journal until nothing is due, as if `hours` had passed (skips back-off). */
  drain(hours?: number): Promise<void>;
  close(): Promise<void>;
}

/** The store engine of this run: MSB_TEST_ENGINE=postgres runs the HTTP tier on PostgreSQL (npm run test:postgres). */
export const TEST_ENGINE: Engine = process.env['MSB_TEST_ENGINE'] === 'postgres' ? 'postgres' : 'sqlite';

export async function startHttpBridge(
  groupSettings: Partial<GroupSettings> = {},
  userSettings: Partial<ProvisioningSettings> = {},
  appOptions: Partial<Pick<ScimAppOptions, 'readiness' | 'onRequest'>> = {},
  /** The scope of each token (test-idp, and OTHER_TOKEN's "other-idp"); unlisted: all. */
  scopes: Record<string, TokenScope> = {},
  /** `homeserver`: makes the account backend, over this bridge's store, instead of the in-memory one (e.g. MasPort over an HTTP double). */
  options: { homeserver?: (store: SqlStore) => HomeserverPort } = {},
): Promise<HttpBridge> {
  const store = await openTestStore(TEST_ENGINE);
  const homeserver = new InMemoryHomeserver();
  const rooms = new InMemoryRooms();
  const events: ProvisioningEvent[] = [];
  const sink = { report: (e: ProvisioningEvent) => events.push(e) };
  // The tests drive the journal themselves (drain), so nothing runs behind their back.
  const wake = () => undefined;
  const users = new UserProvisioner(
    store,
    options.homeserver?.(store) ?? homeserver,
    sink,
    {
      domain: 'example.org',
      localpart: { stripEmailDomain: true, replacement: '_', prefix: '' },
      protectedUsers: [/^@admin:example\.org$/],
      adoptExistingUsers: false,
      eraseOnDelete: false,
      disablePolicy: 'lock',
      operatorDisabled: 'keep',
      ...userSettings,
    },
    wake,
  );
  const groups = new GroupProvisioner(
    store,
    rooms,
    sink,
    { roomType: 'room', onDelete: 'keep', links: [], batchSize: 200, inactiveLeaveRooms: false, ...groupSettings },
    wake,
  );
  const journal = new JournalWorker(store, [users, groups]);
  let base = '';
  const app = createScimApp({
    baseUrl: () => base,
    tokens: [
      { name: 'test-idp', token: TOKEN },
      { name: 'other-idp', token: OTHER_TOKEN },
    ],
    users: userBackend(users, store, (source) => scopes[source] ?? 'all'),
    groups: groupBackend(groups, (source) => scopes[source] ?? 'all'),
    readiness: async () => ({ ready: true, checks: {} }),
    ...appOptions,
  });
  const server = createScimServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/scim/v2`;
  return {
    base,
    store,
    homeserver,
    rooms,
    users,
    groups,
    journal,
    events,
    async call(method, path, body, headers = {}) {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/scim+json', ...headers },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
    async drain(hours = 1) {
      const later = new Date(Date.now() + hours * 60 * 60_000);
      for (let round = 0; round < 1000 && (await journal.run(later)) > 0; round++);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}
