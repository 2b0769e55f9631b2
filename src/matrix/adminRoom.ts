import { logger } from '../log.ts';
import type { ProvisioningEvent, ProvisioningEventKind } from '../provisioning/events.ts';
import {
  MemoryNoticeOutbox,
  NoticeDelivery,
  realClock,
  startTimer,
  type NoticeOutbox,
  type NoticeSender,
  type ReporterClock,
} from './adminRoomDelivery.ts';
import { MAX_REFUSALS_LISTED, describe, renderDigest, renderRefusals, type Notice } from './noticeRender.ts';

const log = logger('AdminRoom');

export type { ProvisioningEvent, ProvisioningEventKind, Notice };
export { describe, renderDigest, MemoryNoticeOutbox };
export type { DigestInput } from './noticeRender.ts';
export type { HeldNotice, NoticeOutbox, NoticeSender, ReporterClock } from './adminRoomDelivery.ts';

export interface ReporterOptions {
  /** More events than this within windowMs are posted as one digest. */
  burstThreshold: number;
  /** The burst window; refused requests are also gathered for this long, then posted per IdP. */
  windowMs: number;
  /** Lines a digest lists besides its failures (default 20); failures are always listed. */
  maxDigestLines?: number;
  /** Waits between quick retries of one notice (default 250 ms, 1 s, 4 s). */
  retryDelaysMs?: number[];
  /** When the quick retries fail (homeserver down), try again this much later (default 30 s). */
  redeliverAfterMs?: number;
  /** Where undelivered notices wait across restarts (default: in memory only). */
  outbox?: NoticeOutbox;
  clock?: ReporterClock;
}

/** Events held in detail before they are only counted. */
const MAX_QUEUE = 10_000;
/** Failures are held beyond MAX_QUEUE, up to this many; past it they go to the log only. */
const MAX_QUEUED_FAILURES = 10_000;

/**
 * Posts provisioning events to the admin room. report() only queues: it never waits for
 * the homeserver and never throws, so reporting cannot slow down or fail a SCIM request.
 * More than burstThreshold events within windowMs (an IdP's first sync) go out as one
 * digest per window; refused requests are gathered per window and posted as one line per
 * IdP token. Memory stays bounded: past MAX_QUEUE events are only counted. Getting the
 * notices into the room (retries, notices the homeserver cannot take, outages, the
 * outbox that survives a restart) is NoticeDelivery's part.
 */
export class AdminRoomReporter {
  readonly #options: Required<Omit<ReporterOptions, 'clock' | 'outbox' | 'retryDelaysMs' | 'redeliverAfterMs'>>;
  readonly #clock: ReporterClock;
  readonly #delivery: NoticeDelivery;
  /** Events not yet rendered, in order. */
  #queue: ProvisioningEvent[] = [];
  #queuedFailures = 0;
  /** Every event since the last render, by kind, including those not held in detail. */
  #counts = new Map<ProvisioningEventKind, number>();
  #notShown = 0;
  /** Times of the last burstThreshold + 1 events: enough to tell a burst. */
  #recent: number[] = [];
  /** Refused requests of the current window per IdP token: the first few in detail, all counted. */
  #refusals = new Map<string, { events: ProvisioningEvent[]; total: number }>();
  /** Rendered refusal lines waiting for the next flush. */
  #ready: Notice[] = [];
  #timer: { handle: unknown; burst: boolean } | undefined;
  #refusalTimer: unknown;
  #sending: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(sender: NoticeSender, options: ReporterOptions) {
    this.#clock = options.clock ?? realClock;
    this.#options = {
      burstThreshold: options.burstThreshold,
      windowMs: options.windowMs,
      maxDigestLines: options.maxDigestLines ?? 20,
    };
    this.#delivery = new NoticeDelivery(
      sender,
      options.outbox ?? new MemoryNoticeOutbox(),
      this.#clock,
      { retryDelaysMs: options.retryDelaysMs ?? [250, 1000, 4000], redeliverAfterMs: options.redeliverAfterMs ?? 30_000 },
      () => void this.#flushWith(true),
    );
    // The first flush reads the outbox and posts what an earlier run left there.
    this.#setTimer(0, false);
  }

  report(event: ProvisioningEvent): void {
    try {
      if (event.kind === 'refused') {
        this.#noteRefusal(event);
        return;
      }
      this.#counts.set(event.kind, (this.#counts.get(event.kind) ?? 0) + 1);
      this.#hold(event);
      const burst = this.#isBurst(this.#clock.now());
      if (this.#stopped) return;
      if (burst) this.#scheduleDigest();
      else if (!this.#timer) this.#setTimer(0, false);
    } catch (error) {
      log.warn('could not queue a provisioning event', error);
    }
  }

  /**
   * What is waiting to reach the room (for the metrics): events not yet rendered, refusal
   * lines of the current window, and notices held while the homeserver is unreachable.
   */
  get pendingCount(): number {
    return this.#queue.length + this.#refusals.size + this.#ready.length + this.#delivery.heldCount;
  }

  /** Sends whatever is pending now, this window's refusals included; resolves when posted (or held). */
  flush(): Promise<void> {
    this.#cancelTimer();
    return this.#flushWith(true);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.flush();
    this.#cancelTimer();
    this.#clock.clearTimeout(this.#refusalTimer);
    this.#refusalTimer = undefined;
    this.#delivery.stop();
  }

  /**
   * Renders and delivers behind the flush already running. `force` tries the homeserver even
   * during an outage; timers for new events do not (see NoticeDelivery.deliver).
   */
  #flushWith(force: boolean): Promise<void> {
    this.#sending = this.#sending
      .then(() => this.#delivery.deliver(this.#render(force), force))
      .catch((error: unknown) => log.error('the admin-room reporter failed', error));
    return this.#sending;
  }

  #hold(event: ProvisioningEvent): void {
    const failed = event.kind === 'failed';
    if (this.#queue.length < MAX_QUEUE || (failed && this.#queuedFailures < MAX_QUEUED_FAILURES)) {
      this.#queue.push(event);
      if (failed) this.#queuedFailures++;
      return;
    }
    this.#notShown++;
    // The admin room cannot take it; the log keeps every failure.
    if (failed) log.warn(`not shown in the admin room: ${describe(event).text}`);
  }

  #noteRefusal(event: ProvisioningEvent): void {
    const key = event.source ?? '';
    const entry = this.#refusals.get(key) ?? { events: [], total: 0 };
    this.#refusals.set(key, entry);
    entry.total++;
    if (entry.events.length < MAX_REFUSALS_LISTED) entry.events.push(event);
    else log.info(`not listed in the admin room: ${describe(event).text}`);
    if (this.#refusalTimer !== undefined || this.#stopped) return;
    this.#refusalTimer = startTimer(this.#clock, this.#options.windowMs, () => {
      this.#refusalTimer = undefined;
      this.#takeRefusals();
      void this.#flushWith(false);
    });
  }

  /** Renders the refusals gathered so far, one line per IdP token, for the next flush. */
  #takeRefusals(): void {
    this.#clock.clearTimeout(this.#refusalTimer);
    this.#refusalTimer = undefined;
    for (const [source, entry] of this.#refusals) this.#ready.push(renderRefusals(source || undefined, entry.events, entry.total));
    this.#refusals.clear();
  }

  #isBurst(now: number): boolean {
    this.#recent.push(now);
    if (this.#recent.length > this.#options.burstThreshold + 1) this.#recent.shift();
    const oldest = this.#recent[0] ?? now;
    return this.#recent.length > this.#options.burstThreshold && now - oldest < this.#options.windowMs;
  }

  /** In a burst, post at most one digest per window: an existing digest timer is kept, not pushed back. */
  #scheduleDigest(): void {
    if (this.#timer?.burst) return;
    this.#cancelTimer();
    this.#setTimer(this.#options.windowMs, true);
  }

  /** A pending notice alone does not keep the process alive; stop() posts what is left. */
  #setTimer(delayMs: number, burst: boolean): void {
    const handle = startTimer(this.#clock, delayMs, () => {
      this.#timer = undefined;
      void this.#flushWith(false);
    });
    this.#timer = { handle, burst };
  }

  #cancelTimer(): void {
    if (this.#timer) this.#clock.clearTimeout(this.#timer.handle);
    this.#timer = undefined;
  }

  /** The pending events as notices: one each, or a digest for a burst; refusal lines first. */
  #render(withRefusals: boolean): Notice[] {
    if (withRefusals) this.#takeRefusals();
    const ready = this.#ready;
    const events = this.#queue;
    const counts = this.#counts;
    const notShown = this.#notShown;
    this.#ready = [];
    this.#queue = [];
    this.#queuedFailures = 0;
    this.#counts = new Map();
    this.#notShown = 0;
    if (events.length === 0 && notShown === 0) return ready;
    if (events.length <= this.#options.burstThreshold && notShown === 0) return [...ready, ...events.map(describe)];
    return [...ready, ...renderDigest({ counts, events, notShown, maxLines: this.#options.maxDigestLines })];
  }
}
