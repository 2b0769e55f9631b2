import { logger, type Log } from '../log.ts';
import type { EventSink, ProvisioningEvent } from './events.ts';

/**
 * The audit trail in the log: one line per provisioning event, written before the event
 * goes on to the admin room. It names who (the IdP token's name), what (the action, the
 * userName or group, the Matrix ID or room) and the outcome, and nothing else: never an
 * attribute's value, let alone a password or token.
 */

/** What became of the action the event describes. */
function outcome(event: ProvisioningEvent): string {
  switch (event.kind) {
    case 'failed':
      return event.willRetry ? 'failed, will retry' : 'failed';
    case 'refused':
      return 'refused';
    case 'drift':
      return 'drift found';
    case 'drift-resolved':
      return 'drift gone';
    default:
      return 'ok';
  }
}

/** A value for `key="value"`, quoted so that a space or quote in a userName cannot forge a field. */
function quoted(value: string): string {
  return JSON.stringify(value);
}

/** The audit line of one event, `key=value` pairs after "audit:". */
export function auditLine(event: ProvisioningEvent): string {
  const fields = [
    `by=${quoted(event.source ?? (event.kind.startsWith('drift') ? 'reconciler' : 'bridge'))}`,
    `action=${event.kind}`,
    `${event.subject ?? 'user'}=${quoted(event.userName)}`,
  ];
  if (event.matrixId) fields.push(`${event.subject === 'group' ? 'room' : 'mxid'}=${event.matrixId}`);
  if (event.how) fields.push(`how=${quoted(event.how)}`);
  if (event.changed && event.changed.length > 0) fields.push(`changed=${event.changed.join(',')}`);
  fields.push(`outcome=${quoted(outcome(event))}`);
  if (event.reason) fields.push(`reason=${quoted(event.reason)}`);
  return `audit: ${fields.join(' ')}`;
}

/** Logs every event (info; a failure at warn), then hands it to `next`. */
export class AuditLog implements EventSink {
  readonly #next: EventSink;
  readonly #log: Log;

  constructor(next: EventSink, log: Log = logger('Audit')) {
    this.#next = next;
    this.#log = log;
  }

  report(event: ProvisioningEvent): void {
    try {
      const line = auditLine(event);
      if (event.kind === 'failed') this.#log.warn(line);
      else this.#log.info(line);
    } catch {
      // The log must never stop the event from reaching the admin room.
    }
    this.#next.report(event);
  }
}
