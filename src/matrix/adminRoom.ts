import { logger } from '../log.ts';

const log = logger('AdminRoom');

export type ProvisioningEventKind = 'created' | 'updated' | 'disabled' | 'enabled' | 'deleted' | 'failed';

export interface ProvisioningEvent {
  kind: ProvisioningEventKind;
  userName: string;
  matrixId?: string;
  changed?: string[];
  reason?: string;
  source?: string;
}

export interface NoticeSender {
  sendNotice(text: string, html: string): Promise<void>;
}

export interface ReporterOptions {
  burstThreshold: number;
  windowMs: number;
  maxDigestLines?: number;
  /** Waits between quick retries of one notice (default 250 ms, 1 s, 4 s). */
  retryDelaysMs?: number[];
  /** When the quick retries fail (homeserver down), try again this much later (default 30 s). */
  redeliverAfterMs?: number;
}

const MAX_QUEUE = 10_000;
/** Notices kept for redelivery while the homeserver is unreachable; older ones are counted, not kept. */
const MAX_UNDELIVERED = 200;

interface Notice {
  text: string;
  html: string;
}

const ICON: Record<ProvisioningEventKind, string> = {
  created: '✅',
  updated: '✏️',
  disabled: '🔒',
  enabled: '🔓',
  deleted: '🗑️',
  failed: '⚠️',
};

const VERB: Record<ProvisioningEventKind, string> = {
  created: 'Created',
  updated: 'Updated',
  disabled: 'Disabled',
  enabled: 'Re-enabled',
  deleted: 'Deleted',
  failed: 'Failed to provision',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One line about one event, as plain text and as HTML. */
export function describe(event: ProvisioningEvent): { text: string; html: string } {
  const who = event.matrixId ? `${event.matrixId} (userName ${event.userName})` : event.userName;
  const whoHtml = event.matrixId
    ? `<code>${escapeHtml(event.matrixId)}</code> (userName ${escapeHtml(event.userName)})`
    : escapeHtml(event.userName);
  let tail = '';
  let tailHtml = '';
  if (event.kind === 'updated' && event.changed && event.changed.length > 0) {
    tail = `: ${event.changed.join(', ')}`;
    tailHtml = `: ${escapeHtml(event.changed.join(', '))}`;
  }
  if (event.reason) {
    tail += event.kind === 'failed' ? `: ${event.reason}` : ` (${event.reason})`;
    tailHtml += event.kind === 'failed' ? `: ${escapeHtml(event.reason)}` : ` (${escapeHtml(event.reason)})`;
  }
  const by = event.source ? ` [${event.source}]` : '';
  return {
    text: `${ICON[event.kind]} ${VERB[event.kind]} ${who}${tail}${by}`,
    html: `${ICON[event.kind]} ${VERB[event.kind]} ${whoHtml}${tailHtml}${escapeHtml(by)}`,
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Posts provisioning events to the admin room. report() only queues: it never waits for
 * the homeserver and never throws, so reporting cannot slow down or fail a SCIM request.
 * Events that arrive in a burst (an IdP's first sync) are sent as one digest.
 */
export class AdminRoomReporter {
  readonly #sender: NoticeSender;
  readonly #options: Required<ReporterOptions>;
  #queue: ProvisioningEvent[] = [];
  #dropped = 0;
  /** Rendered notices the homeserver did not take yet, oldest first. */
  #undelivered: Notice[] = [];
  #lostWhileDown = 0;
  #recent: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(sender: NoticeSender, options: ReporterOptions) {
    this.#sender = sender;
    this.#options = { maxDigestLines: 20, retryDelaysMs: [250, 1000, 4000], redeliverAfterMs: 30_000, ...options };
  }

  report(event: ProvisioningEvent): void {
    try {
      if (this.#queue.length >= MAX_QUEUE) {
        this.#dropped++;
        return;
      }
      this.#queue.push(event);
      const now = Date.now();
      this.#recent = this.#recent.filter((t) => now - t < this.#options.windowMs);
      this.#recent.push(now);
      if (this.#stopped) return;
      // In a burst, wait for the window to pass so the burst goes out as one digest.
      if (this.#recent.length > this.#options.burstThreshold) this.#schedule(this.#options.windowMs);
      else this.#schedule(0);
    } catch (error) {
      log.warn('could not queue a provisioning event', error);
    }
  }

  #schedule(delayMs: number): void {
    if (this.#timer) {
      if (delayMs === 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delayMs);
  }

  flush(): Promise<void> {
    this.#sending = this.#sending.then(() => this.#sendPending());
    return this.#sending;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
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
      const text = `⚠️ ${lost.toLocaleString('en')} notices could not be posted while the homeserver was unreachable`;
      if (!(await this.#send({ text, html: escapeHtml(text) }))) this.#lostWhileDown += lost;
    }
  }

  /** The queued events as notices: one each, or one digest for a burst. */
  #render(): Notice[] {
    const events = this.#queue;
    const dropped = this.#dropped;
    this.#queue = [];
    this.#dropped = 0;
    if (events.length === 0 && dropped === 0) return [];
    if (events.length <= this.#options.burstThreshold && dropped === 0) return events.map(describe);
    return [this.#digest(events, dropped)];
  }

  #keepForLater(notices: Notice[]): void {
    const overflow = Math.max(0, notices.length - MAX_UNDELIVERED);
    this.#lostWhileDown += overflow;
    this.#undelivered = notices.slice(overflow);
    log.warn(`the admin room is unreachable; ${this.#undelivered.length} notices will be posted later`);
    if (!this.#stopped) this.#schedule(this.#options.redeliverAfterMs);
  }

  #digest(events: ProvisioningEvent[], dropped: number): Notice {
    const counts = new Map<ProvisioningEventKind, number>();
    for (const e of events) counts.set(e.kind, (counts.get(e.kind) ?? 0) + 1);
    const summary = [...counts.entries()].map(([kind, n]) => `${n.toLocaleString('en')} ${kind}`).join(', ');
    const ordered = [...events.filter((e) => e.kind === 'failed'), ...events.filter((e) => e.kind !== 'failed')];
    const shown = ordered.slice(0, Math.max(this.#options.maxDigestLines, counts.get('failed') ?? 0));
    const lines = shown.map(describe);
    const more = events.length - shown.length;
    const tail: string[] = [];
    if (more > 0) tail.push(`… and ${more.toLocaleString('en')} more`);
    if (dropped > 0) tail.push(`${dropped.toLocaleString('en')} events not shown (too many at once)`);
    return {
      text: [`Provisioning digest: ${summary}`, ...lines.map((l) => `- ${l.text}`), ...tail].join('\n'),
      html:
        `<p><strong>Provisioning digest</strong>: ${escapeHtml(summary)}</p><ul>` +
        lines.map((l) => `<li>${l.html}</li>`).join('') +
        `</ul>${tail.map((t) => `<p>${escapeHtml(t)}</p>`).join('')}`,
    };
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
          log.warn(`could not post to the admin room: ${(error as Error).message}`);
          return false;
        }
        await sleep(delay);
      }
    }
  }
}
