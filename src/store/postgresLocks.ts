import { randomUUID } from 'node:crypto';
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type pg from 'pg';
import { logger } from '../log.ts';
import { KeyedSerializer } from './locks.ts';
import type { KeyedLocks } from './types.ts';

const log = logger('Store');

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

const REPLICA_LOCK = (id: string) => `matrix-scim-bridge:replica:${id}`;

/**
 * This process as a replica: a session lock on its id, held on a connection of its own for
 * as long as the process runs. Another replica tells whether the holder of a journal lease
 * still lives by looking for that lock in pg_locks: the server drops it the moment the
 * process dies (its connections close), so its work is taken over at once, not when the
 * lease runs out. If the connection breaks while the process lives, it is made again and
 * the lock taken again; in between, others may take over this process's leases, and the
 * per-user locks and the journal's generation check keep the work from being done twice.
 */
export class ReplicaLock {
  readonly id = randomUUID();
  readonly #connect: () => pg.Client;
  #client: pg.Client | undefined;
  #closed = false;

  constructor(connect: () => pg.Client) {
    this.#connect = connect;
  }

  async hold(): Promise<void> {
    const client = this.#connect();
    client.on('error', (error) => {
      if (this.#closed) return;
      log.warn(`the replica lock's connection failed (${error.message}); taking it again`);
      setTimeout(() => void this.hold().catch((e: unknown) => log.error('could not take the replica lock again', e)), 1_000).unref();
    });
    await client.connect();
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [REPLICA_LOCK(this.id)]);
    this.#client = client;
  }

  /** True while the replica named by `claimant` (a column or value) holds its lock. */
  alive(claimant: RawBuilder<unknown>): RawBuilder<SqlBool> {
    return sql<SqlBool>`EXISTS (SELECT 1 FROM pg_locks AS l, (SELECT hashtextextended(${'matrix-scim-bridge:replica:'}::text || ${claimant}, 0) AS h) AS k
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = ((k.h >> 32) & 4294967295)::oid AND l.objid = (k.h & 4294967295)::oid)`;
  }

  async release(): Promise<void> {
    this.#closed = true;
    await this.#client?.end().catch(() => undefined);
  }
}
