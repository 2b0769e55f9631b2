// The measured process of bench/reads.ts: the bridge's SCIM side over one store, alone in a
// process, so that its RSS is what a bridge serving that store holds and nothing of the
// bench (seeding, the other store, the load client, the lists of ids and URLs).
// Started by reads.ts with fork(); answers { port } once listening, then a memory report
// (V8's view, which /proc cannot give) whenever asked.
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import { groupBackend, userBackend } from '../../src/provisioning/backends.ts';
import { GroupProvisioner } from '../../src/provisioning/groups.ts';
import { UserProvisioner } from '../../src/provisioning/users.ts';
import { createScimServer } from '../../src/scim/listener.ts';
import { createScimApp } from '../../src/scim/server.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import { InMemoryHomeserver } from '../../test/http/fakeHomeserver.ts';
import { InMemoryRooms } from '../../test/http/fakeRooms.ts';

export const BENCH_TOKEN = 'bench-reads-token-0123456789';
const MiB = 1024 * 1024;

/** What the parent sends: collect garbage first (idle), or just report. */
export type ServerRequest = { memory: 'after-gc' | 'now' };
export type ServerMessage = { port: number } | { heap: string };

/** V8's share of the RSS, in MiB: the heap by space, and memory held outside it. */
function heapReport(): string {
  const { heapTotal, heapUsed, external } = process.memoryUsage();
  const mib = (bytes: number) => (bytes / MiB).toFixed(0);
  const spaces = getHeapSpaceStatistics()
    .filter((space) => space.space_size >= MiB)
    .map((space) => `${space.space_name.replace(/_space$/, '')} ${mib(space.space_size)}`)
    .join(', ');
  return `V8 heap ${mib(heapUsed)} used of ${mib(heapTotal)} (${spaces}), external ${mib(external)}`;
}

async function serve(file: string, withBridgeModules: boolean): Promise<void> {
  // The bridge itself loads the Matrix side too (matrix-appservice-bridge and its bot SDK):
  // its code and what it allocates at load time are part of what every bridge holds idle.
  if (withBridgeModules) await import('../../src/app.ts');
  const store = await openSqliteStore(file);
  const sink = { report: () => undefined };
  const users = new UserProvisioner(store, new InMemoryHomeserver(), sink, {
    domain: 'example.org',
    localpart: { stripEmailDomain: true, replacement: '_', prefix: '' },
    protectedUsers: [],
    adoptExistingUsers: false,
    eraseOnDelete: false,
    disablePolicy: 'lock',
    operatorDisabled: 'keep',
  });
  const groups = new GroupProvisioner(store, new InMemoryRooms(), sink, {
    roomType: 'room',
    onDelete: 'keep',
    links: [],
    batchSize: 200,
    inactiveLeaveRooms: false,
  }, () => undefined);
  let base = '';
  const app = createScimApp({
    baseUrl: () => base,
    tokens: [{ name: 'bench', token: BENCH_TOKEN }],
    users: userBackend(users, store),
    groups: groupBackend(groups),
    readiness: async () => ({ ready: true, checks: {} }),
  });
  const server = createScimServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}/scim/v2`;
  const collectGarbage = (globalThis as { gc?: () => void }).gc;
  process.on('message', (request: ServerRequest) => {
    if (request.memory === 'after-gc') collectGarbage?.();
    process.send?.({ heap: heapReport() } satisfies ServerMessage);
  });
  process.on('disconnect', () => {
    server.closeAllConnections();
    server.close(() => void store.close().then(() => process.exit(0)));
  });
  process.send?.({ port } satisfies ServerMessage);
}

// Imported by reads.ts for the shared names; serves only when started as the process.
if (process.argv[1] === fileURLToPath(import.meta.url)) await serve(process.argv[2]!, process.argv[3] !== '--scim-only');
