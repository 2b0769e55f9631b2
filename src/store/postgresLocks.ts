import type pg from 'pg';
import { KeyedSerializer } from './locks.ts';
import type { KeyedLocks } from './types.ts';

/**
 * Locks shared by every replica on one PostgreSQL database: session advisory locks, one
 * connection held per lock. A replica that dies drops its connections, and the server
 * releases their locks at once. Within the process, work on a key is serialised first, so
 * that it waits here in arrival order instead of holding more connections.
 *
 * The connections come from a pool of their own: work done under a lock queries through the
 * store's pool, and if locks could take every connection of that pool, the work inside
 * them would wait for ever.
 */
export class PostgresLocks implements KeyedLocks {
  readonly #pool: pg.Pool;
  readonly #serial = new KeyedSerializer();

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.#serial.run(key, async () => {
      const result = await this.#with(key, 'pg_advisory_lock', work);
      return (result as { value: T }).value;
    });
  }

  runIfFree<T>(key: string, work: () => Promise<T>): Promise<T | undefined> {
    return this.#serial.run(key, async () => (await this.#with(key, 'pg_try_advisory_lock', work))?.value);
  }

  async #with<T>(key: string, take: 'pg_advisory_lock' | 'pg_try_advisory_lock', work: () => Promise<T>): Promise<{ value: T } | undefined> {
    // One 64-bit lock space per database: keys are namespaced so that other software's
    // advisory locks there do not collide with the bridge's.
    const params = [`matrix-scim-bridge:${key}`];
    const client = await this.#pool.connect();
    // A lock or unlock that failed leaves the connection in doubt: it is dropped, not
    // returned to the pool, and the server releases whatever lock it held.
    let broken: Error | undefined;
    try {
      let taken: boolean;
      try {
        const result = await client.query<{ ok: boolean | '' }>(`SELECT ${take}(hashtextextended($1, 0)) AS ok`, params);
        // pg_advisory_lock returns void (''), pg_try_advisory_lock whether it got the lock.
        taken = result.rows[0]?.ok !== false;
      } catch (error) {
        broken = error as Error;
        throw error;
      }
      if (!taken) return undefined;
      try {
        return { value: await work() };
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', params).catch((error: unknown) => {
          broken = error as Error;
        });
      }
    } finally {
      client.release(broken);
    }
  }
}
