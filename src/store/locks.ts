import type { KeyedLocks } from './types.ts';

/**
 * Runs work for one key at a time, in arrival order: two requests (or a request and the
 * journal worker) never interleave their steps on the same user.
 */
export class KeyedSerializer {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

/**
 * Locks for a database only this process uses (SQLite, which the bridge locks for itself):
 * in-process serialisation is mutual exclusion for everyone.
 */
export class LocalLocks implements KeyedLocks {
  readonly #serial = new KeyedSerializer();
  readonly #held = new Map<string, number>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.#serial.run(key, () => this.#holding(key, work));
  }

  async runIfFree<T>(key: string, work: () => Promise<T>): Promise<T | undefined> {
    if (this.#held.has(key)) return undefined;
    return this.run(key, work);
  }

  async #holding<T>(key: string, work: () => Promise<T>): Promise<T> {
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    try {
      return await work();
    } finally {
      const left = (this.#held.get(key) ?? 1) - 1;
      if (left === 0) this.#held.delete(key);
      else this.#held.set(key, left);
    }
  }
}
