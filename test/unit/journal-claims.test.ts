import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openPostgresStore } from '../../src/store/postgres.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';
import { freshPostgresDatabase } from '../support/engines.ts';

const LEASE_MS = 5 * 60_000;

/**
 * Journal claims: one worker per entry, across processes on one database, and the work of
 * a process that is gone taken over at once, not when its lease runs out.
 */
describe('Journal claims', () => {
  describe('on PostgreSQL, between two replicas of one database', () => {
    let url: string;
    const open = () => openPostgresStore({ url, ssl: { mode: 'disable' }, poolSize: 4 });
    let a: SqlStore;
    let b: SqlStore;
    beforeEach(async () => {
      url = await freshPostgresDatabase();
      a = await open();
      b = await open();
    });
    afterEach(async () => {
      await a.close().catch(() => undefined);
      await b.close().catch(() => undefined);
    });

    it('gives each due entry to one replica only, even when both claim at once', async () => {
      for (let i = 0; i < 40; i++) await a.openJournal(`group-${i}`, 'group-sync');
      const now = new Date();
      const [fromA, fromB] = await Promise.all([a.claimJournal(now, 30, LEASE_MS), b.claimJournal(now, 30, LEASE_MS)]);
      const ids = [...fromA, ...fromB].map((e) => e.resourceId);
      expect(ids).to.have.length(40);
      expect(new Set(ids).size).to.equal(40);
      expect(await a.claimJournal(now, 50, LEASE_MS)).to.deep.equal([]);
    });

    it("takes over at once the entries of a replica that is gone, but not those of one that lives", async () => {
      await a.openJournal('group-1', 'group-sync');
      const [claimed] = await a.claimJournal(new Date(), 10, LEASE_MS);
      expect(claimed?.resourceId).to.equal('group-1');
      // a lives: its lease holds.
      expect(await b.claimJournal(new Date(), 10, LEASE_MS)).to.deep.equal([]);
      // a's process is gone (its connections close, as when it is killed).
      await a.close();
      const [taken] = await b.claimJournal(new Date(), 10, LEASE_MS);
      expect(taken?.resourceId).to.equal('group-1');
      expect(taken?.generation).to.equal(claimed?.generation);
    });

    it('takes over a user entry a request of a dead replica had leased for itself', async () => {
      await a.openJournal('user-1', 'sync'); // a request's own lease (60 s)
      expect(await b.claimJournal(new Date(), 10, LEASE_MS)).to.deep.equal([]);
      await a.close();
      expect((await b.claimJournal(new Date(), 10, LEASE_MS)).map((e) => e.resourceId)).to.deep.equal(['user-1']);
    });

    it('leaves a deferred entry to its back-off, whoever deferred it', async () => {
      await a.openJournal('group-2', 'group-sync');
      const [claimed] = await a.claimJournal(new Date(), 10, LEASE_MS);
      await a.deferJournal(claimed!.id, 'homeserver down', new Date(Date.now() + 60_000));
      await a.close();
      expect(await b.claimJournal(new Date(), 10, LEASE_MS)).to.deep.equal([]);
      expect((await b.claimJournal(new Date(Date.now() + 61_000), 10, LEASE_MS)).map((e) => e.resourceId)).to.deep.equal(['group-2']);
    });

    it('posts held admin-room notices once: a live replica keeps its own, a dead one\'s are taken over by one replica', async () => {
      await a.notices.add([{ text: 'one', html: 'one' }, { text: 'two', html: 'two' }], new Date().toISOString());
      expect((await a.notices.pending(10)).map((n) => n.notice.text)).to.deep.equal(['one', 'two']);
      expect(await b.notices.pending(10), 'a lives and holds them').to.deep.equal([]);
      await a.close();
      const c = await open();
      try {
        const [fromB, fromC] = await Promise.all([b.notices.pending(10), c.notices.pending(10)]);
        expect([...fromB, ...fromC].map((n) => n.notice.text).sort()).to.deep.equal(['one', 'two']);
        expect(fromB.length === 0 || fromC.length === 0, 'taken over by one replica, not both').to.equal(true);
      } finally {
        await c.close();
      }
    });

    it('lets one replica at a time hold a key, and frees it when the holder is done', async () => {
      let release!: () => void;
      const holding = a.locks.run('user:x', () => new Promise<void>((resolve) => (release = resolve)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await b.locks.runIfFree('user:x', async () => 'ran')).to.equal(undefined);
      release();
      await holding;
      expect(await b.locks.runIfFree('user:x', async () => 'ran')).to.equal('ran');
    });
  });

  describe('on SQLite', () => {
    it('takes over at once what an earlier run of the bridge had leased', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'msb-claims-'));
      try {
        const file = path.join(dir, 'bridge.db');
        let store = await openSqliteStore(file);
        await store.openJournal('user-1', 'sync');
        expect(await store.claimJournal(new Date(), 10, LEASE_MS), 'leased by this run').to.deep.equal([]);
        await store.close();
        store = await openSqliteStore(file);
        expect((await store.claimJournal(new Date(), 10, LEASE_MS)).map((e) => e.resourceId)).to.deep.equal(['user-1']);
        await store.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
