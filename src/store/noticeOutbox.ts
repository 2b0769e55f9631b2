import { sql, type Kysely, type SqlBool } from 'kysely';
import type { ReplicaIdentity } from './sqlStore.ts';
import type { Database } from './tables.ts';
import type { NoticeOutboxStore, OutboxNotice } from './types.ts';

/** SQLite allows this many bound parameters in one statement, with room to spare. */
const CHUNK = 500;

/** The admin room's undelivered notices, in the database: written only while the homeserver does not take them. */
export class SqlNoticeOutbox implements NoticeOutboxStore {
  readonly #db: Kysely<Database>;
  readonly #replica: ReplicaIdentity;
  /** PostgreSQL: replicas starting together wait for each other's take-over (SELECT … FOR UPDATE). */
  readonly #lockRows: boolean;

  constructor(db: Kysely<Database>, replica: ReplicaIdentity, lockRows: boolean) {
    this.#db = db;
    this.#replica = replica;
    this.#lockRows = lockRows;
  }

  async add(notices: readonly OutboxNotice[], heldAt: string): Promise<number[]> {
    if (notices.length === 0) return [];
    return this.#db.transaction().execute(async (trx) => {
      const ids: number[] = [];
      for (const notice of notices) {
        const result = await trx
          .insertInto('notice_outbox')
          .values({ text: notice.text, html: notice.html, held_at: heldAt, held_by: this.#replica.id })
          .returning('id')
          .executeTakeFirstOrThrow();
        ids.push(Number(result.id));
      }
      return ids;
    });
  }

  /**
   * The held notices this process is to post, oldest first: its own, and those of processes
   * that are gone (taken over here). Notices another live replica holds stay with it.
   */
  async pending(limit: number): Promise<{ id: number; notice: OutboxNotice; heldAt: string }[]> {
    const me = this.#replica.id;
    const mine = sql<SqlBool>`(notice_outbox.held_by IS NULL OR notice_outbox.held_by = ${me} OR NOT ${this.#replica.alive(sql.ref('notice_outbox.held_by'))})`;
    return this.#db.transaction().execute(async (trx) => {
      let query = trx.selectFrom('notice_outbox').selectAll().where(mine).orderBy('id').limit(limit);
      if (this.#lockRows) query = query.forUpdate();
      const rows = await query.execute();
      const ids = rows.filter((row) => row.held_by !== me).map((row) => row.id);
      for (let i = 0; i < ids.length; i += CHUNK) {
        await trx.updateTable('notice_outbox').set({ held_by: me }).where('id', 'in', ids.slice(i, i + CHUNK)).execute();
      }
      return rows.map((row) => ({ id: row.id, notice: { text: row.text, html: row.html }, heldAt: row.held_at }));
    });
  }

  async remove(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) {
      await this.#db.deleteFrom('notice_outbox').where('id', 'in', ids.slice(i, i + CHUNK)).execute();
    }
  }
}
