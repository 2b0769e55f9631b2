import type { JournalAction, JournalEntry, Store } from '../store/types.ts';
import { logger } from '../log.ts';

const log = logger('Journal');

/** How long a failed entry waits before its next try: 5 s, doubling, at most 10 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(10 * 60_000, 5_000 * 2 ** Math.min(attempts, 10));
}

/**
 * How long a worker holds the entries it took: none of them is taken by another worker (or
 * replica) meanwhile. Each run finishes, defers or requeues what it took long before this;
 * only a process that died leaves its entries to become due again when the lease runs out.
 */
export const CLAIM_LEASE_MS = 5 * 60_000;

/** Something that finishes journalled work of some actions. */
export interface JournalHandler {
  readonly actions: readonly JournalAction[];
  /** Does (part of) the work; throws or defers the entry itself when it cannot finish. */
  runEntry(entry: JournalEntry): Promise<void>;
}

/**
 * Works off the journal: every `intervalMs`, and at once when woken (a request left work
 * for the background). While due work remains it keeps going, so a large membership
 * change does not wait for the next tick between batches.
 */
export class JournalWorker {
  readonly #store: Store;
  readonly #handlers = new Map<JournalAction, JournalHandler>();
  #running: Promise<number> = Promise.resolve(0);
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #looping = false;
  #again = false;

  constructor(store: Store, handlers: JournalHandler[]) {
    this.#store = store;
    for (const handler of handlers) for (const action of handler.actions) this.#handlers.set(action, handler);
  }

  /** Runs the entries due at `now` once (tests pass a later `now` to skip back-off). */
  run(now = new Date(), limit = 50): Promise<number> {
    this.#running = this.#running.then(
      () => this.#runOnce(now, limit),
      () => this.#runOnce(now, limit),
    );
    return this.#running;
  }

  async #runOnce(now: Date, limit: number): Promise<number> {
    const due = await this.#store.claimJournal(now, limit, CLAIM_LEASE_MS);
    for (const entry of due) {
      const handler = this.#handlers.get(entry.action);
      if (!handler) {
        // Deferred, not left due: a due entry nobody handles would keep the worker spinning.
        log.error(`no handler for journal action ${entry.action}; entry ${entry.id} set aside for a day`);
        await this.#store.deferJournal(entry.id, `no handler for ${entry.action}`, new Date(now.getTime() + 86_400_000));
        continue;
      }
      await handler.runEntry(entry).catch((error: unknown) => log.error(`journal entry ${entry.id} failed unexpectedly`, error));
    }
    return due.length;
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => this.wake(), intervalMs);
    this.wake();
  }

  /** Runs now, and again while work is due. Never throws; wakes while running coalesce. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#looping) {
      this.#again = true;
      return;
    }
    this.#looping = true;
    void this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      for (;;) {
        this.#again = false;
        const handled = await this.run().catch((error: unknown) => {
          log.error('journal worker failed', error);
          return 0;
        });
        if (this.#stopped || (handled === 0 && !this.#again)) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.#looping = false;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running.catch(() => 0);
  }
}
