import { randomUUID } from 'node:crypto';
import { logger } from '../log.ts';
import { HomeserverError } from '../provisioning/ports.ts';
import { excerpt, fallbackNotice, outageNotice, wellFormed, type Notice } from './noticeRender.ts';

const log = logger('AdminRoom');

export interface NoticeSender {
  /** Throws HomeserverError when the homeserver does not take the notice. */
  sendNotice(text: string, html: string): Promise<void>;
}

/** A notice waiting in the outbox, with its place in line and when it was put there. */
export interface HeldNotice {
  id: number;
  notice: Notice;
  /** ISO 8601. */
  heldAt: string;
}

/**
 * Where notices wait while the homeserver does not take them, so that a restart does not lose
 * them. Ids grow in the order notices are added, which is the order they are posted in. The
 * store implements it (src/store/noticeOutbox.ts); MemoryNoticeOutbox serves tests.
 */
export interface NoticeOutbox {
  /** Appends notices at the end of the line; returns their ids, in the same order. */
  add(notices: readonly Notice[], heldAt: string): Promise<number[]>;
  /** The oldest held notices, oldest first, at most limit. */
  pending(limit: number): Promise<HeldNotice[]>;
  remove(ids: readonly number[]): Promise<void>;
}

export class MemoryNoticeOutbox implements NoticeOutbox {
  #rows: HeldNotice[] = [];
  #next = 1;

  async add(notices: readonly Notice[], heldAt: string): Promise<number[]> {
    return notices.map((notice) => {
      const id = this.#next++;
      this.#rows.push({ id, notice: { ...notice }, heldAt });
      return id;
    });
  }

  async pending(limit: number): Promise<HeldNotice[]> {
    return this.#rows.slice(0, limit).map((row) => ({ ...row, notice: { ...row.notice } }));
  }

  async remove(ids: readonly number[]): Promise<void> {
    const gone = new Set(ids);
    this.#rows = this.#rows.filter((row) => !gone.has(row.id));
  }

  get size(): number {
    return this.#rows.length;
  }
}

/** Time as the reporter sees it; tests pass a fake one. */
export interface ReporterClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: ReporterClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Starts a timer that does not keep the process alive on its own. */
export function startTimer(clock: ReporterClock, delayMs: number, callback: () => void): unknown {
  const handle = clock.setTimeout(callback, delayMs);
  if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') handle.unref();
  return handle;
}

/** Notices kept for redelivery while the homeserver is unreachable; older ones are counted, not kept. */
const MAX_UNDELIVERED = 200;

/**
 * How a failed post reads:
 * - refused: the homeserver answered no (4xx but 429); it will not change its mind;
 * - unavailable: the homeserver or the way to it is down or busy (unreachable, 429, 502,
 *   503, 504, or an error that is not the homeserver's): nothing about this notice;
 * - failed: a server error (500 and the like) that may be caused by this very notice.
 */
type Failure = 'refused' | 'unavailable' | 'failed';

function classify(error: unknown): Failure {
  if (!(error instanceof HomeserverError)) return 'unavailable';
  if (!error.transient && error.status !== 429) return 'refused';
  if ([0, 429, 502, 503, 504].includes(error.status)) return 'unavailable';
  return 'failed';
}

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

type Attempt = { ok: true } | { ok: false; error: unknown };
type Outcome = 'sent' | 'dropped' | 'unavailable';

export interface DeliveryOptions {
  retryDelaysMs: number[];
  redeliverAfterMs: number;
}

/**
 * Gets rendered notices into the admin room, in order, without ever wedging on one of them.
 * A notice goes straight to the homeserver, with a few quick retries; the outbox (the
 * database) is written only when that does not work:
 * - a refusal (4xx) will not change: the notice is dropped with a log line;
 * - a 500-like error may be the notice's own fault (a "poison" notice, such as one the
 *   homeserver cannot store) or the homeserver's. A fixed ASCII fallback ("a notice could
 *   not be posted, see the log") is posted in its place to tell which: if the homeserver
 *   takes that, it is up and the notice was the problem, so the notice is dropped (its text
 *   goes to the log) and the line moves on, in order; if it does not take even that, the
 *   homeserver is down. (A 5xx spell that ends between the quick retries and the fallback
 *   costs one notice its place in the room, not in the log.)
 * - down (unreachable, busy, or the fallback failed too): this notice and every later one
 *   are held in the outbox, in order, and tried again every redeliverAfterMs. The first
 *   notice to get through then says since when the homeserver was unreachable, and doubles
 *   as the probe; the held ones follow. Held notices are bounded (MAX_UNDELIVERED, oldest
 *   dropped and counted) and survive a restart: the next run posts them before anything new.
 */
export class NoticeDelivery {
  readonly #sender: NoticeSender;
  readonly #outbox: NoticeOutbox;
  readonly #clock: ReporterClock;
  readonly #options: DeliveryOptions;
  /** Called when it is time to try again; the owner then calls deliver() with force. */
  readonly #retry: () => void;
  /** Notices waiting in the outbox, oldest first (a copy, so the outbox is never read back). */
  #held: { id: number | undefined; notice: Notice; heldAt: string }[] = [];
  #outboxLoaded = false;
  /** Held notices dropped to keep the bound since the room was last told. */
  #dropped = 0;
  /** Since when notices could not be posted, and whether that began before a restart. */
  #outage: { since: number; restarted: boolean } | undefined;
  #retryTimer: unknown;
  #stopped = false;

  constructor(sender: NoticeSender, outbox: NoticeOutbox, clock: ReporterClock, options: DeliveryOptions, retry: () => void) {
    this.#sender = sender;
    this.#outbox = outbox;
    this.#clock = clock;
    this.#options = options;
    this.#retry = retry;
  }

  /**
   * Posts the fresh notices after any held ones. `force` tries the homeserver even while it
   * is down; without it (new events during an outage), the notices only join the held line
   * and the redelivery timer does the trying. Calls must not overlap.
   */
  async deliver(fresh: Notice[], force: boolean): Promise<void> {
    // Notices an earlier run left in the outbox are tried at once, before anything new.
    if (await this.#loadOutbox()) force = true;
    if (this.#outage === undefined && this.#held.length === 0) {
      // The usual case: straight to the homeserver, no outbox write.
      for (const [i, notice] of fresh.entries()) {
        const started = this.#clock.now();
        if ((await this.#post(notice)) === 'unavailable') {
          this.#beginOutage(started);
          await this.#keep(fresh.slice(i));
          return;
        }
      }
      return;
    }
    // Older notices are waiting: the new ones join the line behind them.
    const delayed = this.#held.length;
    await this.#keep(fresh);
    if (!force) return;
    if (this.#outage && !(await this.#announceRecovery(delayed))) return;
    await this.#deliverHeld();
  }

  /** Notices waiting in the held line (an outage, or an earlier run's outbox once read). */
  get heldCount(): number {
    return this.#held.length;
  }

  stop(): void {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  /** Reads what an earlier run left in the outbox, once; true if it found notices. */
  async #loadOutbox(): Promise<boolean> {
    if (this.#outboxLoaded) return false;
    this.#outboxLoaded = true;
    let rows: HeldNotice[];
    try {
      rows = await this.#outbox.pending(MAX_UNDELIVERED);
    } catch (error) {
      log.error('could not read the admin-room outbox', error);
      return false;
    }
    const [oldest] = rows;
    if (!oldest) return false;
    this.#held.push(...rows);
    const since = Date.parse(oldest.heldAt);
    this.#outage = { since: Number.isNaN(since) ? this.#clock.now() : since, restarted: true };
    log.info(`${rows.length} admin-room notices held from before the restart will be posted`);
    return true;
  }

  #beginOutage(started: number): void {
    if (!this.#outage) {
      this.#outage = { since: started, restarted: false };
      log.warn(`notices are held until the admin room can be reached; next try in ${this.#options.redeliverAfterMs} ms`);
    }
    if (this.#stopped || this.#retryTimer !== undefined) return;
    this.#retryTimer = startTimer(this.#clock, this.#options.redeliverAfterMs, () => {
      this.#retryTimer = undefined;
      this.#retry();
    });
  }

  /**
   * Puts notices at the end of the held line, in the outbox first. Past MAX_UNDELIVERED the
   * oldest are dropped (to the log) and counted. If the outbox cannot be written, the notices
   * are still held in memory: a restart would lose them, but the room does not wedge.
   */
  async #keep(notices: Notice[]): Promise<void> {
    if (notices.length === 0) return;
    const overflow = Math.max(0, this.#held.length + notices.length - MAX_UNDELIVERED);
    const droppedHeld = this.#held.splice(0, Math.min(overflow, this.#held.length));
    const droppedNew = notices.slice(0, overflow - droppedHeld.length);
    const kept = notices.slice(droppedNew.length);
    for (const lost of [...droppedHeld.map((h) => h.notice), ...droppedNew]) {
      log.warn(`not posted to the admin room (too many held): ${excerpt(lost.text)}`);
    }
    this.#dropped += overflow;
    await this.#forget(droppedHeld);
    const heldAt = new Date(this.#clock.now()).toISOString();
    let ids: (number | undefined)[] = [];
    try {
      ids = await this.#outbox.add(kept, heldAt);
    } catch (error) {
      log.error('could not write the admin-room outbox; held notices are in memory only', error);
    }
    kept.forEach((notice, i) => this.#held.push({ id: ids[i], notice, heldAt }));
    log.debug(`${this.#held.length} admin-room notices are held for later`);
  }

  async #forget(items: readonly { id: number | undefined }[]): Promise<void> {
    const ids = items.flatMap((item) => (item.id === undefined ? [] : [item.id]));
    if (ids.length === 0) return;
    try {
      await this.#outbox.remove(ids);
    } catch (error) {
      // They would be posted again after a restart: a duplicate, not a loss.
      log.error('could not remove posted notices from the admin-room outbox', error);
    }
  }

  /**
   * Tells the room since when notices could not be posted and how many were delayed (held
   * before this call), before the held ones follow. This notice is also the probe: if the
   * homeserver does not take it, it is still down.
   */
  async #announceRecovery(delayed: number): Promise<boolean> {
    const outage = this.#outage;
    if (!outage) return true;
    const notice = outageNotice({ ...outage, until: this.#clock.now(), delayed, dropped: this.#dropped });
    const attempt = await this.#attempt(notice);
    if (!attempt.ok && classify(attempt.error) !== 'refused') {
      log.warn(`the admin room still cannot be reached: ${reasonOf(attempt.error)}`);
      this.#beginOutage(outage.since);
      return false;
    }
    // A refusal is an answer too: the homeserver is back, even if it would not take this one.
    if (!attempt.ok) log.warn(`the homeserver refused the notice about its outage (${reasonOf(attempt.error)}): ${notice.text}`);
    log.info(`the admin room can be reached again; posting ${this.#held.length} held notices`);
    this.#outage = undefined;
    this.#dropped = 0;
    return true;
  }

  /** Posts the held notices in order, each removed from the outbox once posted (or dropped). */
  async #deliverHeld(): Promise<void> {
    for (let item = this.#held[0]; item; item = this.#held[0]) {
      const started = this.#clock.now();
      if ((await this.#post(item.notice)) === 'unavailable') {
        this.#beginOutage(started);
        return;
      }
      this.#held.shift();
      await this.#forget([item]);
    }
  }

  /** Posts one notice, telling a notice the homeserver cannot take from a homeserver that is down. */
  async #post(notice: Notice): Promise<Outcome> {
    const attempt = await this.#attempt(notice);
    if (attempt.ok) return 'sent';
    const { error } = attempt;
    const failure = classify(error);
    if (failure === 'unavailable') {
      log.warn(`could not post to the admin room: ${reasonOf(error)}`);
      return 'unavailable';
    }
    if (failure === 'refused') {
      log.warn(`the homeserver refused a notice (${reasonOf(error)}); dropped: ${excerpt(notice.text)}`);
      return 'dropped';
    }
    const status = error instanceof HomeserverError ? error.status : 500;
    const errcode = error instanceof HomeserverError ? error.errcode : undefined;
    const ref = randomUUID().slice(0, 8);
    const fallback = await this.#attempt(fallbackNotice(status, errcode, ref));
    if (!fallback.ok && classify(fallback.error) !== 'refused') {
      log.warn(`could not post to the admin room, not even a plain notice: ${reasonOf(fallback.error)}`);
      return 'unavailable';
    }
    // The fallback points here: this line is the only place the notice's text is kept.
    log.warn(`the homeserver failed on one notice but takes others (${reasonOf(error)}); dropped, ref ${ref}: ${excerpt(notice.text, 2000)}`);
    return 'dropped';
  }

  /** Posts one notice, with quick retries unless the homeserver refused it outright. */
  async #attempt(notice: Notice): Promise<Attempt> {
    const delays = this.#options.retryDelaysMs;
    for (let attempt = 0; ; attempt++) {
      try {
        // Belt and braces: clean() already made user text well-formed.
        await this.#sender.sendNotice(wellFormed(notice.text), wellFormed(notice.html));
        return { ok: true };
      } catch (error) {
        const delay = delays[attempt];
        if (delay === undefined || classify(error) === 'refused') return { ok: false, error };
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, delay));
      }
    }
  }
}
