import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { copySqliteToPostgres, CopyRefusedError } from '../../src/store/copyDatabase.ts';
import { openPostgresStore, type PostgresOptions } from '../../src/store/postgres.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';
import type { GroupRecord, JournalEntry, UserRecord, UserState } from '../../src/store/types.ts';
import { freshPostgresDatabase } from '../support/engines.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

function user(n: number, state: UserState, extra: Partial<UserRecord> = {}): UserRecord {
  const created = new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString();
  return {
    id: `user-${n}`,
    userName: `User${n}@example.org`,
    externalId: n % 2 === 0 ? `ext-${n}` : null,
    matrixId: `@user${n}:example.org`,
    displayName: n % 3 === 0 ? null : `User ${n}`,
    active: n % 4 !== 0,
    document: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: `User${n}@example.org`, emails: [{ value: `u${n}@example.org` }] },
    version: n,
    created,
    lastModified: created,
    state,
    acknowledged: state !== 'pending',
    applied: n % 2 === 0 ? { avatarSource: `https://example.org/${n}.png`, avatarMxc: `mxc://example.org/${n}` } : {},
    owner: n % 2 === 0 ? 'entra' : null,
    ...extra,
  };
}

function group(id: string, displayName: string, state: GroupRecord['state']): GroupRecord {
  const now = '2026-02-01T00:00:00.000Z';
  return {
    id,
    displayName,
    externalId: null,
    document: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName },
    version: 3,
    created: now,
    lastModified: now,
    state,
    applied: { roomId: `!${id}:example.org`, roomName: displayName, roomIds: [`!${id}:example.org`] },
    owner: 'okta',
  };
}

const USERS: UserRecord[] = [
  user(1, 'provisioned'),
  user(2, 'pending'),
  user(3, 'deleting'),
  user(4, 'deleted'),
  user(5, 'deleted', { userName: 'User1@example.org' }),
  user(6, 'provisioned'),
];
const GROUPS = [group('group-a', 'Engineering', 'active'), group('group-b', 'Sales', 'deleted')];
const RESOURCES = [...USERS.map((u) => u.id), ...GROUPS.map((g) => g.id)];

/** A SQLite database with a bit of everything: users in every state, groups, room work, journal entries mid-retry, held notices. */
async function populate(file: string): Promise<void> {
  const store = await openSqliteStore(file);
  try {
    for (const u of USERS) await store.insertUser(u, u.state === 'deleting' ? 'delete' : 'sync');
    await store.groups.insert(GROUPS[0]!, ['user-1', 'user-2', 'user-6']);
    await store.groups.insert(GROUPS[1]!, ['user-1']);
    await store.groups.setRoomMember('group-a', '!group-a:example.org', '@user1:example.org', 'joined');
    await store.groups.setRoomMember('group-a', '!group-a:example.org', '@user6:example.org', 'left');
    await store.groups.setRoomMember('group-b', '!group-b:example.org', '@user1:example.org', 'left');
    // Journal entries done, failing, and reopened (generation 1), with gaps in their ids.
    await store.completeJournal('user-1', 'sync');
    await store.completeJournal('user-4', 'sync');
    const [failing] = await store.journalFor('user-2');
    await store.deferJournal(failing!.id, 'homeserver said 502', new Date('2026-03-01T00:00:00.000Z'));
    await store.openJournal('user-6', 'sync');
    await store.notices.add(
      [
        { text: 'first', html: '<p>first</p>' },
        { text: 'second', html: '<p>second</p>' },
        { text: 'third', html: '<p>third</p>' },
      ],
      '2026-02-02T00:00:00.000Z',
    );
    const [first] = await store.notices.pending(1);
    await store.notices.remove([first!.id]);
    await store.leftovers.add('@weak.password:example.org');
  } finally {
    await store.close();
  }
}

interface Snapshot {
  users: (UserRecord | undefined)[];
  groups: (GroupRecord | undefined)[];
  members: string[][];
  journal: JournalEntry[][];
  rooms: [string, string][][];
  notices: Awaited<ReturnType<SqlStore['notices']['pending']>>;
  leftovers: boolean[];
}

/** Everything the store shows of the data above, through its own API. */
async function snapshot(store: SqlStore): Promise<Snapshot> {
  const rooms: [string, string][][] = [];
  for (const g of GROUPS) rooms.push([...(await store.groups.roomMembers(g.id, `!${g.id}:example.org`))].sort());
  return {
    users: await Promise.all(USERS.map((u) => store.getUserAnyState(u.id))),
    groups: await Promise.all(GROUPS.map((g) => store.groups.getAnyState(g.id))),
    members: await Promise.all(GROUPS.map(async (g) => (await store.groups.members(g.id)).map((m) => m.userId).sort())),
    journal: await Promise.all(RESOURCES.map((id) => store.journalFor(id))),
    rooms,
    notices: await store.notices.pending(100),
    leftovers: await Promise.all(['@weak.password:example.org', '@nobody:example.org'].map((id) => store.leftovers.has(id))),
  };
}

function maxJournalId(s: Snapshot): number {
  return Math.max(...s.journal.flat().map((e) => e.id));
}

/** A bridge config with this database section. */
function configWith(database: Record<string, unknown>): Record<string, unknown> {
  return {
    homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' },
    appservice: { registration: 'registration.yaml', port: 9000 },
    scim: { port: 8080, tokens: [{ name: 'entra', token: 'a-token-of-enough-length' }] },
    database,
  };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

describe('migrate-database: copying a SQLite database into PostgreSQL', function () {
  this.timeout(120_000);
  let dir: string;
  let source: string;
  let original: Snapshot;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'msb-migrate-'));
    source = path.join(dir, 'old.db');
    await populate(source);
    const store = await openSqliteStore(source);
    try {
      original = await snapshot(store);
    } finally {
      await store.close();
    }
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('through the module', () => {
    let target: PostgresOptions;
    let copiedCounts: Awaited<ReturnType<typeof copySqliteToPostgres>>;

    before(async () => {
      target = { url: await freshPostgresDatabase(), ssl: { mode: 'disable' }, poolSize: 2 };
      // Two rows a batch: every table crosses page boundaries, composite keys included.
      copiedCounts = await copySqliteToPostgres({ source, target, batchRows: 2 });
    });

    it('counts the rows of every table', () => {
      expect(copiedCounts).to.deep.equal([
        { table: 'users', rows: 6 },
        { table: 'groups', rows: 2 },
        { table: 'group_members', rows: 4 },
        { table: 'room_members', rows: 3 },
        { table: 'journal', rows: 6 },
        { table: 'notice_outbox', rows: 2 },
        { table: 'leftover_accounts', rows: 1 },
      ]);
    });

    it('shows users, groups, members, room work, journal and notices on PostgreSQL exactly as on SQLite', async () => {
      expect(original.users.map((u) => u?.state)).to.deep.equal(['provisioned', 'pending', 'deleting', 'deleted', 'deleted', 'provisioned']);
      expect(original.journal.flat().some((e) => e.attempts === 1 && e.lastError === 'homeserver said 502')).to.equal(true);
      expect(original.journal.flat().some((e) => e.generation === 1)).to.equal(true);
      const store = await openPostgresStore(target);
      try {
        expect(await snapshot(store)).to.deep.equal(original);
      } finally {
        await store.close();
      }
    });

    it('hands out journal and notice ids after the copied ones', async () => {
      const store = await openPostgresStore(target);
      try {
        await store.openJournal('user-new', 'sync');
        const [entry] = await store.journalFor('user-new');
        expect(entry!.id).to.be.greaterThan(maxJournalId(original));
        await store.notices.add([{ text: 'later', html: '<p>later</p>' }], '2026-02-03T00:00:00.000Z');
        const held = await store.notices.pending(100);
        expect(held.map((n) => n.notice.text)).to.deep.equal(['second', 'third', 'later']);
        expect(held[2]!.id).to.be.greaterThan(Math.max(...original.notices.map((n) => n.id)));
      } finally {
        await store.close();
      }
    });

    it('refuses a target that already holds rows, and leaves it as it was', async () => {
      let refused: unknown;
      try {
        await copySqliteToPostgres({ source, target });
      } catch (error) {
        refused = error;
      }
      expect(refused).to.be.instanceOf(CopyRefusedError);
      expect((refused as Error).message).to.match(/already holds rows \(users: 6, groups: 2,.*\).*DROP DATABASE/);
      const store = await openPostgresStore(target);
      try {
        expect(await store.countUsers()).to.equal(3);
      } finally {
        await store.close();
      }
    });

    it('refuses a source that a running bridge holds, and says to stop it', async () => {
      const running = await openSqliteStore(source);
      try {
        const empty = { url: await freshPostgresDatabase(), ssl: { mode: 'disable' as const }, poolSize: 2 };
        let refused: unknown;
        try {
          await copySqliteToPostgres({ source, target: empty });
        } catch (error) {
          refused = error;
        }
        expect(refused).to.be.instanceOf(CopyRefusedError);
        expect((refused as Error).message).to.match(/is in use.*Stop the bridge/);
      } finally {
        await running.close();
      }
    });

    it('leaves the target without rows when a row fails to copy', async () => {
      // PostgreSQL text cannot hold a NUL character, SQLite's can: the last table fails.
      const broken = path.join(dir, 'broken.db');
      copyFileSync(source, broken);
      const raw = new DatabaseSync(broken);
      raw.prepare('INSERT INTO notice_outbox (text, html, held_at) VALUES (?, ?, ?)').run('nul \u0000 here', '', '2026-02-04T00:00:00.000Z');
      raw.close();
      const empty = { url: await freshPostgresDatabase(), ssl: { mode: 'disable' as const }, poolSize: 2 };
      const done: string[] = [];
      let failure: unknown;
      try {
        await copySqliteToPostgres({ source: broken, target: empty, onTable: (table) => done.push(table) });
      } catch (error) {
        failure = error;
      }
      expect(failure).to.be.instanceOf(Error).and.not.instanceOf(CopyRefusedError);
      expect(done).to.deep.equal(['users', 'groups', 'group_members', 'room_members', 'journal']);
      const store = await openPostgresStore(empty);
      try {
        expect(await snapshot(store)).to.deep.equal({ users: USERS.map(() => undefined), groups: [undefined, undefined], members: [[], []], journal: RESOURCES.map(() => []), rooms: [[], []], notices: [], leftovers: [false, false] });
      } finally {
        await store.close();
      }
    });

    it('refuses a source file that does not exist instead of creating it', async () => {
      const missing = path.join(dir, 'missing.db');
      let refused: unknown;
      try {
        await copySqliteToPostgres({ source: missing, target });
      } catch (error) {
        refused = error;
      }
      expect(refused).to.be.instanceOf(CopyRefusedError);
      expect((refused as Error).message).to.match(/does not exist/);
    });
  });

  describe('as the command', () => {
    let configFile: string;
    let url: string;

    before(async () => {
      url = await freshPostgresDatabase();
      const urlFile = path.join(dir, 'database-url');
      writeFileSync(urlFile, `${url}\n`, { mode: 0o600 });
      configFile = path.join(dir, 'config.yaml');
      writeFileSync(configFile, yaml.dump(configWith({ engine: 'postgres', url: { file: 'database-url' }, ssl: { mode: 'disable' } })), { mode: 0o600 });
    });

    it('copies, prints the count of each table without the password, and exits 0', async () => {
      const run = await runCli(['--config', configFile, 'migrate-database', '--from', source]);
      expect(run.stderr).to.not.include('matrix-scim-bridge:');
      expect(run.code).to.equal(0);
      expect(run.stdout).to.match(/users +6 rows/);
      expect(run.stdout).to.match(/notice_outbox +2 rows/);
      expect(run.stdout).to.match(/done: 24 rows/);
      const password = new URL(url).password;
      expect(password).to.not.equal('');
      expect(run.stdout).to.not.include(password);
      const store = await openPostgresStore({ url, ssl: { mode: 'disable' }, poolSize: 2 });
      try {
        expect(await snapshot(store)).to.deep.equal(original);
      } finally {
        await store.close();
      }
    });

    it('exits non-zero, saying how to start over, when run a second time', async () => {
      const run = await runCli(['--config', configFile, 'migrate-database', '--from', source]);
      expect(run.code).to.equal(1);
      expect(run.stderr).to.match(/already holds rows.*DROP DATABASE/);
      expect(run.stderr).to.not.include(new URL(url).password);
    });

    it('refuses a config whose engine is not postgres', async () => {
      const sqliteConfig = path.join(dir, 'sqlite.yaml');
      writeFileSync(sqliteConfig, yaml.dump(configWith({ engine: 'sqlite', path: 'other.db' })), { mode: 0o600 });
      const run = await runCli(['--config', sqliteConfig, 'migrate-database', '--from', source]);
      expect(run.code).to.equal(1);
      expect(run.stderr).to.match(/copies into PostgreSQL: set database\.engine: postgres/);
    });
  });
});
