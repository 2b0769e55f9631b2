import type { Kysely } from 'kysely';
import type { Database } from './tables.ts';
import type { NoticeOutboxStore, OutboxNotice } from './types.ts';

/** SQLite allows this many bound parameters in one statement, with room to spare. */
const CHUNK = 500;

/** The admin room's undelivered notices, in the database: written only while the homeserver does not take them. */
export class SqlNoticeOutbox implements NoticeOutboxStore {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async add(notices: readonly OutboxNotice[], heldAt: string): Promise<number[]> {
    if (notices.length === 0) return [];
    return this.#db.transaction().execute(async (trx) => {
      const ids: number[] = [];
      for (const notice of notices) {
        const result = await trx
          .insertInto('notice_outbox')
          .values({ text: notice.text, html: notice.html, held_at: heldAt })
          .returning('id')
          .executeTakeFirstOrThrow();
        ids.push(Number(result.id));
      }
      return ids;
    });
  }

  async pending(limit: number): Promise<{ id: number; notice: OutboxNotice; heldAt: string }[]> {
    const rows = await this.#db.selectFrom('notice_outbox').selectAll().orderBy('id').limit(limit).execute();
    return rows.map((row) => ({ id: row.id, notice: { text: row.text, html: row.html }, heldAt: row.held_at }));
  }

  async remove(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) {
      await this.#db.deleteFrom('notice_outbox').where('id', 'in', ids.slice(i, i + CHUNK)).execute();
    }
  }
}
