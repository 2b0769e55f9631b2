import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { Logger } from 'matrix-appservice-bridge';

/**
 * The bridge's logging: one logger per module (`const log = logger('ScimRouter')`),
 * configured once at start-up. Lines carry an ISO-8601 timestamp in UTC
 * (2026-12-01T08:17:35.123Z), as text or as one JSON object per line. Bearer tokens and
 * access_token parameters are redacted from every line, whoever wrote it.
 *
 * matrix-appservice-bridge and the matrix-bot-sdk inside it log through their own winston
 * logger; it is routed through here, with their INFO lines (one per homeserver
 * transaction, among others) demoted to debug.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export interface LoggingOptions {
  level: LogLevel;
  format?: LogFormat;
}

export interface Log {
  debug(message: string, ...data: unknown[]): void;
  info(message: string, ...data: unknown[]): void;
  warn(message: string, ...data: unknown[]): void;
  error(message: string, ...data: unknown[]): void;
}

/** One log line before formatting. */
export interface LogEntry {
  time: Date;
  level: LogLevel;
  module: string;
  message: string;
  data: readonly unknown[];
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Nothing is written until configureLogging() is called (tests that use modules stay quiet). */
let threshold: LogLevel | 'off' = 'off';
let format: LogFormat = 'text';
let output: (line: string) => void = (line) => {
  process.stdout.write(`${line}\n`);
};

/** A word after "Bearer" that looks like a token (long, with a digit or punctuation), not like prose. */
const TOKEN_AFTER_BEARER = /(\bbearer\s+)([A-Za-z0-9._~+/=-]{12,})/gi;

/** Replaces what looks like a credential: `Bearer <token>` and `access_token=<token>`. */
export function redact(text: string): string {
  return text
    .replace(TOKEN_AFTER_BEARER, (whole, prefix: string, token: string) => (/[\d._~+/=-]/.test(token) ? `${prefix}<redacted>` : whole))
    .replace(/(access_token=)[^&\s"',]+/gi, '$1<redacted>');
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  return inspect(value, { depth: 4, breakLength: Infinity });
}

/** The line as written: `<ISO time> <LEVEL> [module] message data…`, or one JSON object. */
export function formatEntry(entry: LogEntry, as: LogFormat): string {
  if (as === 'json') {
    const error = entry.data.find((d): d is Error => d instanceof Error);
    const rest = entry.data.filter((d) => d !== error);
    const line: Record<string, unknown> = {
      time: entry.time.toISOString(),
      level: entry.level,
      module: entry.module,
      message: redact(entry.message),
    };
    if (error) line['error'] = redact(error.stack ?? `${error.name}: ${error.message}`);
    if (rest.length > 0) line['data'] = rest.map((d) => redact(describe(d)));
    return JSON.stringify(line);
  }
  const parts = [entry.message, ...entry.data.map(describe)].join(' ');
  return `${entry.time.toISOString()} ${entry.level.toUpperCase()} [${entry.module}] ${redact(parts)}`;
}

function emit(level: LogLevel, module: string, message: string, data: readonly unknown[]): void {
  if (threshold === 'off' || RANK[level] < RANK[threshold]) return;
  output(formatEntry({ time: new Date(), level, module, message, data }, format));
}

/** One logger per module: `const log = logger('ScimRouter')`. Configured once by start(). */
export function logger(module: string): Log {
  return {
    debug: (message, ...data) => emit('debug', module, message, data),
    info: (message, ...data) => emit('info', module, message, data),
    warn: (message, ...data) => emit('warn', module, message, data),
    error: (message, ...data) => emit('error', module, message, data),
  };
}

/** Levels of the libraries' winston lines (upper-cased by them), as ours; their INFO is noise. */
const LIBRARY_LEVELS: Record<string, LogLevel> = { ERROR: 'error', WARN: 'warn', INFO: 'debug', DEBUG: 'debug', VERBOSE: 'debug' };

/** Turns one JSON line of the libraries' winston logger into a line of ours. */
export function routeLibraryLine(json: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    emit('debug', 'lib/matrix-appservice-bridge', json, []);
    return;
  }
  const entry = (parsed && typeof parsed === 'object' ? parsed : {}) as Record<string, unknown>;
  const level = LIBRARY_LEVELS[String(entry['level']).toUpperCase()] ?? 'debug';
  // Prefixed, so that the library's "bridge" is not taken for the bridge's own "Bridge".
  const module = `lib/${typeof entry['module'] === 'string' ? entry['module'] : 'matrix-appservice-bridge'}`;
  const error = typeof entry['error'] === 'string' ? [entry['error']] : [];
  emit(level, module, String(entry['message'] ?? ''), error);
}

/** Receives the libraries' winston output, one JSON line per write. */
function libraryStream(): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') routeLibraryLine(line);
      callback();
    },
  });
}

let libraryRouted = false;

/** Sets the level and format of every logger (ours and the libraries'). */
export function configureLogging(options: LoggingOptions | LogLevel): void {
  const { level, format: as = 'text' } = typeof options === 'string' ? { level: options } : options;
  threshold = level;
  format = as;
  if (!libraryRouted) {
    // No console transport of its own: everything goes to the stream, filtered by our level.
    Logger.root.configureLogging({ json: true }, libraryStream());
    libraryRouted = true;
  }
}

/**
 * Sends log lines to `write` instead of stdout (tests); returns what undoes it, which also
 * puts back the level and format in force before (configureLogging may be called between).
 */
export function captureLogs(write: (line: string) => void): () => void {
  const previous = { output, threshold, format };
  output = write;
  return () => {
    ({ output, threshold, format } = previous);
  };
}
