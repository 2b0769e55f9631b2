import type { ProvisioningEvent, ProvisioningEventKind } from '../provisioning/events.ts';

/**
 * How the admin room reads: one line per provisioning event, a digest for a burst, one line
 * per IdP for its refused requests, and the reporter's own notices about delivery. Pure
 * functions; every piece of user-supplied text passes through clean() on its way in.
 */

export interface Notice {
  text: string;
  html: string;
}

/** Bytes of text + HTML in one notice: a Matrix event must stay under 64 KiB in all. */
const NOTICE_BUDGET = 24_000;
/** Refused requests named in one IdP's line; the rest are counted. */
export const MAX_REFUSALS_LISTED = 10;

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
  adopted: 'Adopted existing account',
  updated: 'Updated',
  disabled: 'Disabled',
  enabled: 'Re-enabled',
  deleted: 'Deleted',
  failed: 'Failed to provision',
  refused: 'Refused a request for',
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
  drift: 'drifted from the IdP',
  'drift-resolved': 'back in line with the IdP',
};

/**
 * Kinds whose reason is the point of the line (what went wrong, why it was refused, what
 * differs), shown after a colon; for the other kinds the reason is a detail in parentheses.
 */
const REASON_AFTER_COLON: ReadonlySet<ProvisioningEventKind> = new Set(['failed', 'refused', 'drift', 'drift-resolved']);

/**
 * The text with each lone UTF-16 surrogate replaced by U+FFFD. A homeserver refuses an
 * event whose JSON holds a lone surrogate.
 */
export function wellFormed(text: string): string {
  return text.toWellFormed();
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * User-supplied text made safe to show: lone surrogates (which the homeserver refuses),
 * control characters (which could fake extra lines in a digest) and bidirectional overrides
 * (which could make one name look like another) become U+FFFD, and overlong values are cut.
 */
export function clean(text: string, maxChars: number): string {
  const visible = wellFormed(text).replace(/[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, '\ufffd');
  const chars = [...visible];
  return chars.length <= maxChars ? visible : `${chars.slice(0, maxChars - 1).join('')}…`;
}

/** A notice's text for a log line: one line, cut short. */
export function excerpt(text: string, maxChars = 200): string {
  return clean(text.replace(/\n/g, ' ⏎ '), maxChars);
}

function changedList(changed: string[]): string {
  const shown = changed.slice(0, 20).map((name) => clean(name, 64));
  return changed.length > shown.length ? `${shown.join(', ')} and ${changed.length - shown.length} more` : shown.join(', ');
}

export const count = (n: number): string => n.toLocaleString('en');

/** Who an event is about, as plain text and HTML. */
function subjectOf(event: ProvisioningEvent): Notice {
  const userName = clean(event.userName, 256);
  const matrixId = event.matrixId === undefined ? undefined : clean(event.matrixId, 256);
  if (event.subject === 'group') {
    return {
      text: `group "${userName}"${matrixId ? ` (room ${matrixId})` : ''}`,
      html: `group <strong>${escapeHtml(userName)}</strong>${matrixId ? ` (room <code>${escapeHtml(matrixId)}</code>)` : ''}`,
    };
  }
  return matrixId
    ? { text: `${matrixId} (userName ${userName})`, html: `<code>${escapeHtml(matrixId)}</code> (userName ${escapeHtml(userName)})` }
    : { text: userName, html: escapeHtml(userName) };
}

/**
 * One line about one event, as plain text and as HTML:
 * icon, verb, (how), who, then what changed or why, whether the bridge retries, and the IdP.
 */
export function describe(event: ProvisioningEvent): Notice {
  const who = subjectOf(event);
  const how = event.how ? ` (${clean(event.how, 64)})` : '';
  let tail = '';
  if (event.kind === 'updated' && event.changed && event.changed.length > 0) tail = `: ${changedList(event.changed)}`;
  if (event.reason) {
    const reason = clean(event.reason, 500);
    tail += REASON_AFTER_COLON.has(event.kind) ? `: ${reason}` : ` (${reason})`;
  }
  if (event.kind === 'failed' && event.willRetry) tail += tail ? '; will retry' : ' (will retry)';
  const by = event.source ? ` (via ${clean(event.source, 64)})` : '';
  const head = `${ICON[event.kind]} ${VERB[event.kind]}${how}`;
  return {
    text: `${head} ${who.text}${tail}${by}`,
    html: `${escapeHtml(head)} ${who.html}${escapeHtml(tail)}${escapeHtml(by)}`,
  };
}

/**
 * The requests one IdP token had refused within a window, as one line: a single refusal reads
 * like any event; several are listed (up to MAX_REFUSALS_LISTED) and the rest counted.
 * `total` counts every refusal, listed or not.
 */
export function renderRefusals(source: string | undefined, events: readonly ProvisioningEvent[], total: number): Notice {
  const [only] = events;
  if (only && total === 1) return describe(only);
  const from = source ? ` from ${clean(source, 64)}` : '';
  const items = events.slice(0, MAX_REFUSALS_LISTED).map((event) => {
    const name = event.subject === 'group' ? `group "${clean(event.userName, 256)}"` : clean(event.userName, 256);
    return event.reason ? `${name} (${clean(event.reason, 300)})` : name;
  });
  const more = total - items.length;
  const list = items.join('; ') + (more > 0 ? ` and ${count(more)} more` : '');
  const head = `${ICON.refused} Refused ${count(total)} requests${from}`;
  return { text: `${head}: ${list}`, html: `${escapeHtml(head)}: ${escapeHtml(list)}` };
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

// ---- The reporter's own notices about delivery ----

const plain = (text: string): Notice => ({ text, html: escapeHtml(text) });
const isoSeconds = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** What the room is told once notices can be posted again after they could not be. */
export interface OutageReport {
  /** When posting first failed (or, after a restart, when the oldest held notice was held). */
  since: number;
  until: number;
  /** The held notices that follow this one. */
  delayed: number;
  /** Older held notices dropped to keep the outbox bounded (they are in the log). */
  dropped: number;
  /** The notices were held before the bridge restarted. */
  restarted: boolean;
}

export function outageNotice(report: OutageReport): Notice {
  const notices = (n: number): string => `${count(n)} ${n === 1 ? 'notice' : 'notices'}`;
  const dropped = report.dropped > 0 ? `; ${notices(report.dropped)} could not be kept and are only in the bridge's log` : '';
  const follow = report.delayed > 0 ? `; ${notices(report.delayed)} were delayed and follow` : '';
  const span = `from ${isoSeconds(report.since)} to ${isoSeconds(report.until)}`;
  const what = report.restarted
    ? `Notices could not be posted ${span} (the homeserver was unreachable, then the bridge restarted)`
    : `The homeserver was unreachable ${span}`;
  return plain(`⚠️ ${what}${follow}${dropped}`);
}

/**
 * Posted instead of a notice the homeserver failed on while it takes other text. Only ASCII
 * and nothing taken from the notice, so that whatever made the homeserver fail is not in it.
 */
export function fallbackNotice(status: number, errcode: string | undefined, ref: string): Notice {
  const code = errcode !== undefined && /^[A-Za-z0-9_.]{1,64}$/.test(errcode) ? ` ${errcode}` : '';
  return plain(
    `A notice could not be posted here: the homeserver failed on it (HTTP ${status}${code}). ` +
      `Its text is in the bridge's log under ref ${ref}.`,
  );
}
