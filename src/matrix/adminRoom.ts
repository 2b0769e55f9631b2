import { logger } from '../log.ts';

const log = logger('AdminRoom');

import type { ProvisioningEvent, ProvisioningEventKind } from '../provisioning/events.ts';

export type { ProvisioningEvent, ProvisioningEventKind };

export interface NoticeSender {
  sendNotice(text: string, html: string): Promise<void>;
}

/** Time as the reporter sees it; tests pass a fake one. */
export interface ReporterClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ReporterOptions {
  /** More events than this within windowMs are posted as one digest. */
  burstThreshold: number;
  windowMs: number;
  /** Lines a digest lists besides its failures (default 20); failures are always listed. */
  maxDigestLines?: number;
  /** Waits between quick retries of one notice (default 250 ms, 1 s, 4 s). */
  retryDelaysMs?: number[];
  /** When the quick retries fail (homeserver down), try again this much later (default 30 s). */
  redeliverAfterMs?: number;
  clock?: ReporterClock;
}

/** Events held in detail before they are only counted. */
const MAX_QUEUE = 10_000;
/** Failures are held beyond MAX_QUEUE, up to this many; past it they go to the log only. */
const MAX_QUEUED_FAILURES = 10_000;
/** Notices kept for redelivery while the homeserver is unreachable; older ones are counted, not kept. */
const MAX_UNDELIVERED = 200;
/** Bytes of text + HTML in one notice: a Matrix event must stay under 64 KiB in all. */
const NOTICE_BUDGET = 24_000;

const KINDS: readonly ProvisioningEventKind[] = [
  'created',
  'adopted',
  'updated',
  'disabled',
  'enabled',
  'deleted',
  'failed',
  'refused',
  'drift',
  'drift-resolved',
];

const ICON: Record<ProvisioningEventKind, string> = {
  created: '✅',
  adopted: '📥',
  updated: '✏️',
  disabled: '🔒',
  enabled: '🔓',
  deleted: '🗑️',
  failed: '⚠️',
  refused: '⛔',
  drift: '🔀',
  'drift-resolved': '🟰',
};

const VERB: Record<ProvisioningEventKind, string> = {
  created: 'Created',
  adopted: 'Adopted',
  updated: 'Updated',
  disabled: 'Disabled',
  enabled: 'Re-enabled',
  deleted: 'Deleted',
  failed: 'Failed to provision',
  refused: 'Refused',
  drift: 'Drift on',
  'drift-resolved': 'Drift resolved on',
};

/** How a kind is counted in a digest's summary line. */
const COUNTED: Record<ProvisioningEventKind, string> = {
  created: 'created',
  adopted: 'adopted',
  updated: 'updated',
  disabled: 'disabled',
  enabled: 're-enabled',
  deleted: 'deleted',
  failed: 'failed',
  refused: 'refused',
  drift: 'drifted',
  'drift-resolved': 'drift resolved',
};

export interface Notice {
  text: string;
  html: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * User-supplied text made safe to show: control characters (which could fake extra lines
 * in a digest) and bidirectional overrides (which could make one name look like another)
 * become U+FFFD, and overlong values are cut.
 */
function clean(text: string, maxChars: number): string {
  const visible = text.replace(/[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, '\ufffd');
  const chars = [...visible];
  return chars.length <= maxChars ? visible : `${chars.slice(0, maxChars - 1).join('')}…`;
}

function changedList(changed: string[]): string {
  const shown = changed.slice(0, 20).map((name) => clean(name, 64));
  return changed.length > shown.length ? `${shown.join(', ')} and ${changed.length - shown.length} more` : shown.join(', ');
}

const count = (n: number): string => n.toLocaleString('en');

/** One line about one event, as plain text and as HTML. */
export function describe(event: ProvisioningEvent): Notice {
  const userName = clean(event.userName, 256);
  const matrixId = event.matrixId === undefined ? undefined : clean(event.matrixId, 256);
  let who: string;
  let whoHtml: string;
  if (event.subject === 'group') {
    who = `group "${userName}"${matrixId ? ` (room ${matrixId})` : ''}`;
    whoHtml = `group <strong>${escapeHtml(userName)}</strong>${matrixId ? ` (room <code>${escapeHtml(matrixId)}</code>)` : ''}`;
  } else {
    who = matrixId ? `${matrixId} (userName ${userName})` : userName;
    whoHtml = matrixId ? `<code>${escapeHtml(matrixId)}</code> (userName ${escapeHtml(userName)})` : escapeHtml(userName);
  }
  let tail = '';
  if (event.kind === 'updated' && event.changed && event.changed.length > 0) tail = `: ${changedList(event.changed)}`;
  if (event.reason) {
    const reason = clean(event.reason, 500);
    tail += event.kind === 'failed' ? `: ${reason}` : ` (${reason})`;
  }
  const by = event.source ? ` (via ${clean(event.source, 64)})` : '';
  return {
    text: `${ICON[event.kind]} ${VERB[event.kind]} ${who}${tail}${by}`,
    html: `${ICON[event.kind]} ${VERB[event.kind]} ${whoHtml}${escapeHtml(tail)}${escapeHtml(by)}`,
  };
}

/** What a digest summarises: exact counts, the events held in detail, and how many were not. */
export interface DigestInput {
  counts: ReadonlyMap<ProvisioningEventKind, number>;
  events: readonly ProvisioningEvent[];
  notShown: number;
  maxLines: number;
}

const size = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * A burst as one digest: counts per kind, then every failure with its reason, then other
 * events up to maxLines, then what was left out. A digest too large for one Matrix event
 * (thousands of failures) continues in further notices rather than dropping failures.
 */
export function renderDigest(input: DigestInput): Notice[] {
  const summary = KINDS.filter((k) => (input.counts.get(k) ?? 0) > 0)
    .map((k) => `${count(input.counts.get(k) ?? 0)} ${COUNTED[k]}`)
    .join(', ');
  const failures = input.events.filter((e) => e.kind === 'failed');
  const others = input.events.filter((e) => e.kind !== 'failed');
  const shownOthers = others.slice(0, Math.max(0, input.maxLines - failures.length));
  const lines = [...failures, ...shownOthers].map(describe);
  const total = [...input.counts.values()].reduce((a, b) => a + b, 0);
  const tail: string[] = [];
  const unlisted = total - lines.length - input.notShown;
  if (unlisted > 0) tail.push(`… and ${count(unlisted)} more`);
  if (input.notShown > 0) tail.push(`${count(input.notShown)} events not shown (too many at once)`);

  const notices: Notice[] = [];
  const wrap = (head: string, items: string): string => (items ? `${head}<ul>${items}</ul>` : head);
  let text = `Provisioning digest: ${summary}`;
  let head = `<p><strong>Provisioning digest</strong>: ${escapeHtml(summary)}</p>`;
  let items = '';
  for (const line of lines) {
    const item = `<li>${line.html}</li>`;
    if (items && size(text) + size(head) + size(items) + size(line.text) + size(item) > NOTICE_BUDGET) {
      notices.push({ text, html: wrap(head, items) });
      text = 'Provisioning digest (continued)';
      head = '<p><strong>Provisioning digest</strong> (continued)</p>';
      items = '';
    }
    text += `\n- ${line.text}`;
    items += item;
  }
  notices.push({
    text: [text, ...tail].join('\n'),
    html: wrap(head, items) + tail.map((t) => `<p>${escapeHtml(t)}</p>`).join(''),
  });
  return notices;
}

const realClock: ReporterClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Posts provisioning events to the admin room. report() only queues: it never waits for
 * the homeserver and never throws, so reporting cannot slow down or fail a SCIM request.
 * More than burstThreshold events within windowMs (an IdP's first sync) go out as one
 * digest per window. Memory stays bounded: past MAX_QUEUE events are only counted.
 */
export class AdminRoomReporter {
  readonly #sender: NoticeSender;
  readonly #options: Required<Omit<ReporterOptions, 'clock'>>;
  readonly #clock: ReporterClock;
  /** Events not yet rendered, in order. */
  #queue: ProvisioningEvent[] = [];
  #queuedFailures = 0;
  /** Every event since the last render, by kind, including those not held in detail. */
  #counts = new Map<ProvisioningEventKind, number>();
  #notShown = 0;
  /** Times of the last burstThreshold + 1 events: enough to tell a burst. */
  #recent: number[] = [];
  /** Rendered notices the homeserver did not take yet, oldest first. */
  #undelivered: Notice[] = [];
  #lostWhileDown = 0;
  #timer: { handle: unknown; burst: boolean } | undefined;
  #sending: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(sender: NoticeSender, options: ReporterOptions) {
    this.#sender = sender;
    this.#clock = options.clock ?? realClock;
    this.#options = {
      burstThreshold: options.burstThreshold,
      windowMs: options.windowMs,
      maxDigestLines: options.maxDigestLines ?? 20,
      retryDelaysMs: options.retryDelaysMs ?? [250, 1000, 4000],
      redeliverAfterMs: options.redeliverAfterMs ?? 30_000,
    };
  }

  report(event: ProvisioningEvent): void {
    try {
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

  /** Sends whatever is pending now; resolves when it is posted (or given up on). */
  flush(): Promise<void> {
    this.#cancelTimer();
    this.#sending = this.#sending
      .then(() => this.#sendPending())
      .catch((error: unknown) => log.error('the admin-room reporter failed', error));
    return this.#sending;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.flush();
    this.#cancelTimer();
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

  #setTimer(delayMs: number, burst: boolean): void {
    const handle = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delayMs);
    // A pending notice alone does not keep the process alive; stop() posts what is left.
    if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') handle.unref();
    this.#timer = { handle, burst };
  }

  #cancelTimer(): void {
    if (this.#timer) this.#clock.clearTimeout(this.#timer.handle);
    this.#timer = undefined;
  }

  async #sendPending(): Promise<void> {
    const notices = [...this.#undelivered, ...this.#render()];
    this.#undelivered = [];
    for (const [i, notice] of notices.entries()) {
      if (!(await this.#send(notice))) {
        this.#keepForLater(notices.slice(i));
        return;
      }
    }
    if (this.#lostWhileDown > 0) {
      const lost = this.#lostWhileDown;
      this.#lostWhileDown = 0;
      const text = `⚠️ ${count(lost)} notices could not be posted while the homeserver was unreachable; see the bridge's log`;
      if (!(await this.#send({ text, html: escapeHtml(text) }))) this.#lostWhileDown += lost;
    }
  }

  /** The pending events as notices: one each, or a digest for a burst. */
  #render(): Notice[] {
    const events = this.#queue;
    const counts = this.#counts;
    const notShown = this.#notShown;
    this.#queue = [];
    this.#queuedFailures = 0;
    this.#counts = new Map();
    this.#notShown = 0;
    if (events.length === 0 && notShown === 0) return [];
    if (events.length <= this.#options.burstThreshold && notShown === 0) return events.map(describe);
    return renderDigest({ counts, events, notShown, maxLines: this.#options.maxDigestLines });
  }

  #keepForLater(notices: Notice[]): void {
    const overflow = Math.max(0, notices.length - MAX_UNDELIVERED);
    for (const lost of notices.slice(0, overflow)) log.warn(`not posted to the admin room: ${lost.text}`);
    this.#lostWhileDown += overflow;
    this.#undelivered = notices.slice(overflow);
    log.warn(`the admin room is unreachable; ${this.#undelivered.length} notices will be posted later`);
    if (!this.#stopped && !this.#timer) this.#setTimer(this.#options.redeliverAfterMs, false);
  }

  /** Posts one notice, retrying briefly; false if the homeserver did not take it. */
  async #send(notice: Notice): Promise<boolean> {
    const delays = this.#options.retryDelaysMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#sender.sendNotice(notice.text, notice.html);
        return true;
      } catch (error) {
        const delay = delays[attempt];
        if (delay === undefined) {
          log.warn(`could not post to the admin room: ${error instanceof Error ? error.message : String(error)}`);
          return false;
        }
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, delay));
      }
    }
  }
}
