import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import {
  DummyDriver,
  Kysely,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type Compilable,
} from 'kysely';
import { parseFilter } from '../../src/scim/filter/parse.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import { type SqlStore, userListQueries } from '../../src/store/sqlStore.ts';
import { NodeSqliteDatabase } from '../../src/store/sqliteDriver.ts';
import { groupListQueries } from '../../src/store/sqlGroups.ts';
import { groupMapping, userMapping } from '../../src/store/filterSql.ts';
import { GROUP_RESOURCE, USER_RESOURCE } from '../../src/scim/schema/attributes.ts';

const USERS = userMapping(USER_RESOURCE);
const GROUPS = groupMapping(GROUP_RESOURCE);
import type { Database } from '../../src/store/tables.ts';
import type { GroupRecord } from '../../src/store/types.ts';
import { makeUser, seededRandom } from '../support/syntheticUsers.ts';

/** Builds and compiles queries without a database: the plans are read on the store's own file. */
const compiler = new Kysely<Database>({
  dialect: {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  },
});

function bindable(value: unknown): SQLInputValue {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value;
  throw new Error(`unexpected parameter ${String(value)}`);
}

function group(id: string, displayName: string, owner: string | null): GroupRecord {
  const now = new Date().toISOString();
  return { id, displayName, externalId: null, document: {}, version: 1, created: now, lastModified: now, state: 'active', applied: {}, owner };
}

describe('user and group lists are answered from indexes', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqlStore;
  let explainer: DatabaseSync;

  /** The query plan SQLite chooses, one line per step (e.g. "SEARCH users USING INDEX …"). */
  function plan(query: Compilable): string[] {
    const { sql, parameters } = query.compile();
    return explainer
      .prepare(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...parameters.map(bindable))
      .map((row) => String((row as { detail: unknown }).detail));
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'msb-plans-'));
    const file = path.join(dir, 'bridge.db');
    store = await openSqliteStore(file);
    const random = seededRandom(3);
    for (let i = 0; i < 50; i++) await store.insertUser(makeUser(i, random), 'sync');
    explainer = new DatabaseSync(file, { readOnly: true });
  });

  after(async () => {
    explainer.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const userCases: { name: string; filter?: string; index: RegExp }[] = [
    { name: 'no filter', index: /USING INDEX users_(live_order|user_name_live)\b/ },
    { name: 'userName eq', filter: 'userName eq "Alice1@example.org"', index: /SEARCH users USING INDEX users_user_name_live \(user_name_lower=\?\)/ },
    { name: 'userName sw', filter: 'userName sw "bo"', index: /SEARCH users USING INDEX users_user_name_live \(user_name_lower>\? AND user_name_lower<\?\)/ },
    { name: 'externalId eq', filter: 'externalId eq "EXT-7"', index: /SEARCH users USING INDEX users_external_id \(external_id=\?\)/ },
  ];
  for (const { name, filter, index } of userCases) {
    it(`counts and pages users with ${name} through an index, never a full scan`, () => {
      const queries = userListQueries(compiler, USERS, { startIndex: 1, count: 100, ...(filter ? { filter: parseFilter(filter) } : {}) });
      for (const query of [queries.count, queries.page]) {
        const steps = plan(query);
        expect(steps, steps.join(' | ')).to.not.include('SCAN users');
        expect(steps.some((step) => index.test(step)), steps.join(' | ')).to.equal(true);
      }
    });
  }

  it('walks the live listing index in the default order, deep pages included, without sorting', () => {
    for (const startIndex of [1, 90_001]) {
      const steps = plan(userListQueries(compiler, USERS, { startIndex, count: 100 }).page);
      expect(steps, steps.join(' | ')).to.deep.equal(['SCAN users USING INDEX users_live_order']);
    }
  });

  it('seeks to the end of the page before instead of skipping rows, when it knows where that was', () => {
    const steps = plan(userListQueries(compiler, USERS, { startIndex: 90_001, count: 100 }, { created: '2026-03-01T00:00:00.000Z', id: 'x' }).page);
    expect(steps).to.deep.equal(['SEARCH users USING INDEX users_live_order ((created,id)>(?,?))']);
  });

  it('pages through users in order, as OFFSET would, even when users are added and hidden between pages', async () => {
    const everyone = async () => (await store.listUsers({ startIndex: 1, count: 1_000 })).users.map((u) => u.id);
    const paged: string[] = [];
    const expected: string[] = [];
    const random = seededRandom(7);
    for (let startIndex = 1; ; startIndex += 7) {
      const page = await store.listUsers({ startIndex, count: 7 });
      const all = await everyone();
      expect(page.users.map((u) => u.id)).to.deep.equal(all.slice(startIndex - 1, startIndex + 6));
      expect(page.totalResults).to.equal(all.length);
      paged.push(...page.users.map((u) => u.id));
      expected.push(...all.slice(startIndex - 1, startIndex + 6));
      if (page.users.length < 7) break;
      if (startIndex === 15) {
        // Before the pages read so far: the next page starts one later than it would have.
        await store.insertUser({ ...makeUser(5_000, random), id: 'paging-early', created: '2000-01-01T00:00:00.000Z' }, 'sync');
      }
      if (startIndex === 29) {
        const first = (await store.listUsers({ startIndex: 2, count: 1 })).users[0]!;
        expect(await store.updateUser({ ...first, state: 'deleting', version: first.version + 1 }, first.version)).to.equal(true);
      }
    }
    expect(paged).to.deep.equal(expected);
  });

  it('counts and pages groups through an index, never a full scan', () => {
    for (const filter of [undefined, 'displayName eq "Sales"']) {
      const queries = groupListQueries(compiler, GROUPS, { startIndex: 1, count: 100, ...(filter ? { filter: parseFilter(filter) } : {}) });
      for (const query of [queries.count, queries.page]) {
        const steps = plan(query);
        expect(steps, steps.join(' | ')).to.not.include('SCAN groups');
        expect(steps.some((step) => /USING (COVERING )?INDEX groups_(live_order|display_name_live)\b/.test(step)), steps.join(' | ')).to.equal(true);
      }
    }
  });

  it('keeps list totals exact across inserts, updates that hide a user, and removals', async () => {
    const before = (await store.listUsers({ startIndex: 1, count: 1 })).totalResults;
    const random = seededRandom(99);
    const added = { ...makeUser(1_000, random), id: 'totals-new' };
    await store.insertUser(added, 'sync');
    expect((await store.listUsers({ startIndex: 1, count: 1 })).totalResults).to.equal(before + 1);
    expect(await store.updateUser({ ...added, state: 'deleting', version: 2 }, 1)).to.equal(true);
    expect((await store.listUsers({ startIndex: 1, count: 1 })).totalResults).to.equal(before);
    await store.removeUser(added.id);
    expect((await store.listUsers({ startIndex: 1, count: 0 })).totalResults).to.equal(before);
  });

  it('finds the groups of a whole page of users in one call, scoped to an owner when asked', async () => {
    const { users } = await store.listUsers({ startIndex: 1, count: 3 });
    const [a, b, c] = users.map((user) => user.id);
    if (!a || !b || !c) throw new Error('expected three users');
    await store.groups.insert(group('g-zeta', 'Zeta', 'idp-1'), [a, b]);
    await store.groups.insert(group('g-alpha', 'alpha', 'idp-2'), [a]);
    const all = await store.groups.groupsOfMany([a, b, c]);
    expect(all.get(a)).to.deep.equal([
      { id: 'g-alpha', displayName: 'alpha' },
      { id: 'g-zeta', displayName: 'Zeta' },
    ]);
    expect(all.get(b)).to.deep.equal([{ id: 'g-zeta', displayName: 'Zeta' }]);
    expect(all.has(c)).to.equal(false);
    const own = await store.groups.groupsOfMany([a, b, c], 'idp-2');
    expect([...own.entries()]).to.deep.equal([[a, [{ id: 'g-alpha', displayName: 'alpha' }]]]);
    expect(await store.groups.groupsOf(a, 'idp-1')).to.deep.equal([{ id: 'g-zeta', displayName: 'Zeta' }]);
  });
});

describe('prepared statements are reused', () => {
  it('hands back the prepared statement for SQL it has seen, and forgets the least recently used past its bound', () => {
    const db = new NodeSqliteDatabase(':memory:');
    try {
      const first = db.prepare('SELECT 1');
      expect(db.prepare('SELECT 1')).to.equal(first);
      for (let i = 0; i < 250; i++) db.prepare(`SELECT ${i + 2}`);
      expect(db.prepare('SELECT 1')).to.not.equal(first);
    } finally {
      db.close();
    }
  });

  it('keeps a running iteration intact while the same SQL runs again', () => {
    const db = new NodeSqliteDatabase(':memory:');
    try {
      db.prepare('CREATE TABLE t (n INTEGER)').run([]);
      for (let n = 1; n <= 3; n++) db.prepare('INSERT INTO t (n) VALUES (?)').run([n]);
      const query = 'SELECT n FROM t ORDER BY n';
      const iterator = db.prepare(query).iterate([]);
      const seen = [iterator.next().value];
      expect(db.prepare(query).all([])).to.have.length(3);
      for (let step = iterator.next(); !step.done; step = iterator.next()) seen.push(step.value);
      expect(seen).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }]);
    } finally {
      db.close();
    }
  });
});
