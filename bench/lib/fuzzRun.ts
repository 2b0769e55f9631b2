// Runs the fuzz generator against a bridge: sends the requests (a few at a time at most),
// counts the answers by status, and keeps every 5xx with the request that caused it and the
// bridge's log lines of that moment. Shared by bench/fuzz.ts and test/e2e/fuzz.test.ts.

import { writeFile } from 'node:fs/promises';
import { FuzzGenerator, type FuzzRequest } from './fuzzGen.ts';
import { FuzzTransport, targetOf, type FuzzResponse } from './fuzzHttp.ts';
import type { LogTap } from './logTap.ts';
import type { ConsistencyReport } from './fuzzConsistency.ts';

export interface FuzzRunOptions {
  scimUrl: string;
  token: string;
  seed: number;
  requests: number;
  /** Prefix of the names the run makes (default from the seed). */
  prefix?: string;
  /** Requests in flight at once (default 1: the run is then deterministic per seed). */
  concurrency?: number;
  /** Time limit of one request (default 60 s). */
  timeoutMs?: number;
  /** Time limit of a request that may rightly get no answer (default 1.5 s). */
  hangTimeoutMs?: number;
  /** Captures the bridge's log, to quote it next to each 5xx. */
  tap?: LogTap;
  progress?: (line: string) => void;
  progressEvery?: number;
}

/** A request worth a look, and what came back. */
export interface Incident {
  index: number;
  kind: string;
  method: string;
  target: string;
  headers: Record<string, string>;
  auth: string;
  /** The body, cut to a readable length (`bodyLength` is the whole). */
  body: string | undefined;
  bodyLength: number;
  /** The whole body (up to 2 MB), to replay the request; only in the JSON report. */
  fullBody?: string;
  raw?: FuzzRequest['raw'];
  status: number | undefined;
  failure?: string;
  response: string;
  ms: number;
  /** Bridge log lines written while the request ran (warnings and errors). */
  log: string[];
  /** For a 503: what the same request got when sent again a second later. */
  replay?: { status: number | undefined; response: string };
}

export interface FuzzOutcome {
  seed: number;
  requests: number;
  ms: number;
  /** Status (or "no answer: <why>") → count. */
  statuses: Map<string, number>;
  /** Request kind → status → count. */
  byKind: Map<string, Map<string, number>>;
  /** 500, 502 and any other 5xx but 503 (and 501 for a method HTTP does not know). */
  serverErrors: Incident[];
  /** 501 for a method the server does not implement (TRACE, M-SEARCH, …): what RFC 9110 §15.6.2 asks for. */
  notImplemented: number;
  /**
   * 503s for a transient homeserver failure: the detail names one (unreachable, rate limited)
   * and the same request, sent again a second later, was not refused again.
   */
  genuine503: Incident[];
  /** Other 503s: the detail names no transient failure, or the same request failed again the same way. */
  wrong503: Incident[];
  /** No answer where one was due (a time-out or reset of a well-formed request). */
  noAnswer: Incident[];
  /** No answer where none is due (e.g. a Content-Length larger than the body). */
  expectedNoAnswer: number;
  /**
   * A connection reset while sending a request line and headers larger than Node's limit
   * (16 KiB): Node's server answers 431 and closes at once, often before the client reads it.
   */
  oversizedHead: number;
  /** Properties that appeared on Object.prototype during the run. */
  pollution: string[];
  /** Unhandled promise rejections during the run. */
  unhandled: string[];
  generator: FuzzGenerator;
}

const clip = (text: string | undefined, max: number): string | undefined =>
  text === undefined ? undefined : text.length > max ? `${text.slice(0, max)}… [${text.length} chars]` : text;

function authLabel(req: FuzzRequest): string {
  if (req.auth.kind === 'header') return `header ${JSON.stringify(clip(req.auth.value, 60))}`;
  return req.auth.kind;
}

function statusKey(res: FuzzResponse): string {
  return res.status !== undefined ? String(res.status) : `no answer: ${res.failure ?? '?'}`;
}

function detailOf(res: FuzzResponse): string {
  try {
    const body: unknown = JSON.parse(res.text);
    if (body && typeof body === 'object' && 'detail' in body) return String((body as { detail: unknown }).detail);
  } catch {
    // not JSON
  }
  return res.text;
}

/** The operations of a BulkResponse that got a 5xx other than a 503. */
function bulkServerErrors(text: string): { index: number; text: string }[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [];
  }
  const ops = body && typeof body === 'object' && 'Operations' in body ? (body as { Operations: unknown }).Operations : undefined;
  if (!Array.isArray(ops)) return [];
  const out: { index: number; text: string }[] = [];
  ops.forEach((op: unknown, index) => {
    const status = op && typeof op === 'object' && 'status' in op ? Number((op as { status: unknown }).status) : NaN;
    if (status >= 500 && status !== 503) out.push({ index, text: JSON.stringify(op) });
  });
  return out;
}

/** Node's default limit (--max-http-header-size) on the request line and headers together. */
const HEADER_LIMIT = 16 * 1024;

/** About how many bytes the request line and headers of `req` take. */
function headSize(req: FuzzRequest): number {
  const headers = Object.entries(req.headers).reduce((sum, [k, v]) => sum + k.length + v.length + 4, 0);
  const auth = req.auth.kind === 'header' ? req.auth.value.length : 64;
  return req.target.length + headers + auth + 200;
}

/** Methods the SCIM API serves somewhere; a 501 for one of these is a failure. */
const STANDARD_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** A 503 is genuine when the homeserver itself was unreachable or rate limiting. */
export function isGenuine503(detail: string): boolean {
  return /unreachable|rate limit|M_LIMIT_EXCEEDED|ECONNREFUSED|ECONNRESET|ETIMEDOUT|UND_ERR|TimeoutError|timed out/i.test(detail);
}

export async function runFuzz(options: FuzzRunOptions): Promise<FuzzOutcome> {
  const generator = new FuzzGenerator({ seed: options.seed, ...(options.prefix ? { prefix: options.prefix } : {}) });
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const transport = new FuzzTransport(targetOf(options.scimUrl, options.token), {
    timeoutMs: options.timeoutMs ?? 60_000,
    hangTimeoutMs: options.hangTimeoutMs ?? 1_500,
    sockets: concurrency,
  });
  const outcome: FuzzOutcome = {
    seed: options.seed,
    requests: 0,
    ms: 0,
    statuses: new Map(),
    byKind: new Map(),
    serverErrors: [],
    genuine503: [],
    wrong503: [],
    noAnswer: [],
    expectedNoAnswer: 0,
    oversizedHead: 0,
    notImplemented: 0,
    pollution: [],
    unhandled: [],
    generator,
  };
  const protoBefore = new Set(Object.getOwnPropertyNames(Object.prototype));
  const onUnhandled = (reason: unknown) => outcome.unhandled.push(reason instanceof Error ? (reason.stack ?? reason.message) : String(reason));
  process.on('unhandledRejection', onUnhandled);
  const started = Date.now();
  let issued = 0;
  const every = options.progressEvery ?? 500;

  const incident = (req: FuzzRequest, res: FuzzResponse, log: string[]): Incident => ({
    index: req.index,
    kind: req.kind,
    method: req.method,
    target: clip(req.target, 500) ?? '',
    headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, clip(v, 200) ?? ''])),
    auth: authLabel(req),
    body: clip(req.body, 1500),
    bodyLength: req.body?.length ?? 0,
    ...(req.body !== undefined && req.body.length > 1500 && req.body.length <= 2_000_000 ? { fullBody: req.body } : {}),
    ...(req.raw ? { raw: { ...req.raw, ...(req.raw.chunkedBody ? { chunkedBody: clip(req.raw.chunkedBody, 300) ?? '' } : {}) } } : {}),
    status: res.status,
    ...(res.failure ? { failure: res.failure } : {}),
    response: clip(res.text, 1500) ?? '',
    ms: res.ms,
    log: log.filter((line) => /warn|error|fail|exception|at /i.test(line)).slice(0, 60).map((line) => clip(line, 600) ?? ''),
  });

  const worker = async (): Promise<void> => {
    while (issued < options.requests) {
      issued++;
      const req = generator.next();
      const mark = options.tap?.mark() ?? 0;
      const res = await transport.send(req);
      const log = options.tap?.since(mark) ?? [];
      generator.observe(req, res);
      outcome.requests++;
      const key = statusKey(res);
      outcome.statuses.set(key, (outcome.statuses.get(key) ?? 0) + 1);
      const perKind = outcome.byKind.get(req.kind) ?? new Map<string, number>();
      perKind.set(key, (perKind.get(key) ?? 0) + 1);
      outcome.byKind.set(req.kind, perKind);
      if (res.status === undefined) {
        if ((req.raw?.mayHang && res.failure === 'timeout') || (req.raw?.mayDrop && res.failure !== 'timeout')) outcome.expectedNoAnswer++;
        else if (headSize(req) > HEADER_LIMIT && /ECONNRESET|EPIPE|reset/.test(res.failure ?? '')) outcome.oversizedHead++;
        else outcome.noAnswer.push(incident(req, res, log));
      } else if (res.status === 503) {
        // A transient failure goes away; one this request causes comes back when it is sent again.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const again = await transport.send(req);
        generator.observe(req, again);
        const record: Incident = { ...incident(req, res, log), replay: { status: again.status, response: clip(again.text, 600) ?? '' } };
        (isGenuine503(detailOf(res)) && again.status !== 503 ? outcome.genuine503 : outcome.wrong503).push(record);
      } else if (res.status === 501 && !STANDARD_METHODS.has(req.method)) {
        outcome.notImplemented++;
      } else if (res.status >= 500) {
        outcome.serverErrors.push(incident(req, res, log));
      } else if (res.status === 200 && req.target.startsWith('/Bulk')) {
        // A bulk answer is 200 whatever its operations got: look inside.
        for (const op of bulkServerErrors(res.text)) {
          outcome.serverErrors.push({ ...incident(req, res, log), kind: `${req.kind}.operation`, response: `Operations[${op.index}]: ${clip(op.text, 1200) ?? ''}` });
        }
      }
      if (outcome.requests % every === 0) {
        const secs = (Date.now() - started) / 1000;
        options.progress?.(
          `  ${outcome.requests}/${options.requests} requests in ${secs.toFixed(0)} s (${(outcome.requests / secs).toFixed(1)}/s); ` +
            `5xx: ${outcome.serverErrors.length}, 503: ${outcome.genuine503.length + outcome.wrong503.length}, no answer: ${outcome.noAnswer.length}; ` +
            `${generator.liveUsers} live users, ${generator.liveGroups} groups`,
        );
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
  } finally {
    transport.close();
    process.off('unhandledRejection', onUnhandled);
  }
  outcome.ms = Date.now() - started;
  outcome.pollution = Object.getOwnPropertyNames(Object.prototype).filter((name) => !protoBefore.has(name));
  return outcome;
}

/**
 * Whether the run failed: a 500/502 (any 5xx but a genuine 503, in a bulk operation too), a
 * hang, pollution, a mismatch, or journal work that draining could not finish.
 */
export function failed(outcome: FuzzOutcome, consistency?: ConsistencyReport): boolean {
  return (
    outcome.serverErrors.length > 0 ||
    outcome.wrong503.length > 0 ||
    outcome.noAnswer.length > 0 ||
    outcome.pollution.length > 0 ||
    outcome.unhandled.length > 0 ||
    (consistency?.mismatches.length ?? 0) > 0 ||
    (consistency?.openJournal.length ?? 0) > 0
  );
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, col) => (col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0))).join('  '));
}

function describeIncident(i: Incident): string[] {
  const lines = [
    `  #${i.index} [${i.kind}] ${i.method} ${i.target} → ${i.status ?? `no answer (${i.failure})`} in ${i.ms} ms`,
    `    auth: ${i.auth}${Object.keys(i.headers).length > 0 ? `; headers: ${JSON.stringify(i.headers)}` : ''}${i.raw ? `; raw: ${JSON.stringify(i.raw)}` : ''}`,
  ];
  if (i.body !== undefined) lines.push(`    body (${i.bodyLength} chars): ${clip(i.body, 600)}`);
  if (i.response) lines.push(`    response: ${clip(i.response, 400)}`);
  if (i.replay) lines.push(`    sent again 1 s later → ${i.replay.status ?? 'no answer'}: ${clip(i.replay.response, 200)}`);
  for (const line of i.log.slice(0, 12)) lines.push(`    log: ${clip(line, 300)}`);
  return lines;
}

/** A readable summary of the run (and of the consistency check, when given). */
export function summarize(outcome: FuzzOutcome, consistency?: ConsistencyReport, firstN = 10): string[] {
  const out: string[] = [];
  out.push(`fuzz: ${outcome.requests} requests, seed ${outcome.seed}, in ${(outcome.ms / 1000).toFixed(1)} s`);
  const statuses = [...outcome.statuses.entries()].sort(([a], [b]) => a.localeCompare(b));
  out.push('', 'responses by status:');
  out.push(...table([['status', 'count'], ...statuses.map(([s, n]) => [s, String(n)])]).map((l) => `  ${l}`));

  const allStatuses = statuses.map(([s]) => s);
  const kinds = [...outcome.byKind.keys()].sort();
  out.push('', 'by request kind:');
  out.push(
    ...table([
      ['kind', ...allStatuses.map((s) => s.replace(/^no answer: (.*)$/, (_, why: string) => `none:${why.split(' ')[0]}`))],
      ...kinds.map((k) => [k, ...allStatuses.map((s) => String(outcome.byKind.get(k)?.get(s) ?? '·'))]),
    ]).map((l) => `  ${l}`),
  );

  const section = (title: string, list: Incident[]) => {
    out.push('', `${title}: ${list.length}`);
    for (const i of list.slice(0, firstN)) out.push(...describeIncident(i));
    if (list.length > firstN) out.push(`  … and ${list.length - firstN} more (see the JSON file)`);
  };
  section('5xx answers other than 503 (500, 502, …)', outcome.serverErrors);
  section('503 answers not caused by a transient homeserver failure', outcome.wrong503);
  section('503 answers for a transient homeserver failure (allowed)', outcome.genuine503);
  section('requests that got no answer although one was due', outcome.noAnswer);
  out.push(`requests that rightly got no answer (a body shorter than its Content-Length): ${outcome.expectedNoAnswer}`);
  out.push(`resets while sending more than 16 KiB of request line and headers (Node answers 431 and closes; allowed): ${outcome.oversizedHead}`);
  out.push(`501 for methods HTTP servers need not implement (TRACE, M-SEARCH, …; allowed): ${outcome.notImplemented}`);
  if (outcome.pollution.length > 0) out.push('', `Object.prototype was polluted with: ${outcome.pollution.join(', ')}`);
  if (outcome.unhandled.length > 0) {
    out.push('', `unhandled promise rejections: ${outcome.unhandled.length}`);
    for (const u of outcome.unhandled.slice(0, firstN)) out.push(`  ${clip(u.replace(/\n/g, '\n    '), 1500)}`);
  }

  if (consistency) {
    const states = Object.entries(consistency.byState).map(([s, n]) => `${n} ${s}`).join(', ');
    out.push(
      '',
      `consistency: ${consistency.storeUsers} users in the store (${states || 'none'}), ${consistency.synapseUsers} Synapse accounts; ` +
        `journal drained in ${consistency.journalRounds} rounds, ${consistency.openJournal.length} entries still open; checked in ${(consistency.ms / 1000).toFixed(1)} s`,
    );
    for (const e of consistency.openJournal.slice(0, firstN)) {
      out.push(`  open journal entry: ${e.action} ${e.resourceId} ×${e.attempts}: ${clip(e.lastError ?? '(no error)', 300)}`);
    }
    out.push(`mismatches: ${consistency.mismatches.length}`);
    for (const m of consistency.mismatches.slice(0, Math.max(firstN, 25))) {
      out.push(`  ${m.matrixId}${m.userId ? ` (user ${m.userId}, ${m.state}, userName ${JSON.stringify(m.userName)})` : ''}: ${m.problem}`);
    }
    if (consistency.mismatches.length > Math.max(firstN, 25)) out.push(`  … and ${consistency.mismatches.length - Math.max(firstN, 25)} more (see the JSON file)`);
  }
  out.push('', failed(outcome, consistency) ? 'RESULT: FAILED' : 'RESULT: ok');
  return out;
}

/** Writes every incident and mismatch as JSON. */
export async function writeReport(file: string, outcome: FuzzOutcome, consistency?: ConsistencyReport): Promise<void> {
  const report = {
    seed: outcome.seed,
    requests: outcome.requests,
    ms: outcome.ms,
    statuses: Object.fromEntries(outcome.statuses),
    byKind: Object.fromEntries([...outcome.byKind].map(([k, m]) => [k, Object.fromEntries(m)])),
    serverErrors: outcome.serverErrors,
    wrong503: outcome.wrong503,
    genuine503: outcome.genuine503,
    noAnswer: outcome.noAnswer,
    expectedNoAnswer: outcome.expectedNoAnswer,
    oversizedHead: outcome.oversizedHead,
    notImplemented: outcome.notImplemented,
    pollution: outcome.pollution,
    unhandled: outcome.unhandled,
    ...(consistency ? { consistency } : {}),
  };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
}
