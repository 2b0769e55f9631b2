// How the fuzzer sends its requests: node:http for what an HTTP client will send, a raw
// socket for the rest (a Content-Length that lies, control characters in headers, invalid
// request targets). Every request has a time limit: a request that declares more body than
// it sends would otherwise wait for ever.

import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { AuthMode, FuzzRequest } from './fuzzGen.ts';

export interface FuzzResponse {
  /** undefined: no answer (see `failure`). */
  status: number | undefined;
  headers: Record<string, string | string[] | undefined>;
  /** The body, cut at MAX_KEPT characters. */
  text: string;
  bytes: number;
  ms: number;
  /** 'timeout', 'reset', or a client error message, when there was no answer. */
  failure?: string;
  /** Which transport sent it. */
  via: 'http' | 'socket';
}

const MAX_KEPT = 2_000_000;

export interface Target {
  host: string;
  port: number;
  /** Path of the SCIM base, e.g. /scim/v2. */
  basePath: string;
  token: string;
}

export function targetOf(scimUrl: string, token: string): Target {
  const url = new URL(scimUrl);
  return { host: url.hostname, port: Number(url.port), basePath: url.pathname.replace(/\/$/, ''), token };
}

function authHeader(auth: AuthMode, token: string): string | undefined {
  if (auth.kind === 'valid') return `Bearer ${token}`;
  if (auth.kind === 'header') return auth.value;
  return undefined;
}

function pathOf(target: Target, req: FuzzRequest): string {
  return req.rooted ? req.target : `${target.basePath}${req.target}`;
}

export class FuzzTransport {
  readonly #target: Target;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #hangTimeoutMs: number;

  constructor(target: Target, options: { timeoutMs: number; hangTimeoutMs: number; sockets: number }) {
    this.#target = target;
    this.#timeoutMs = options.timeoutMs;
    this.#hangTimeoutMs = options.hangTimeoutMs;
    this.#agent = new Agent({ keepAlive: true, maxSockets: options.sockets });
  }

  close(): void {
    this.#agent.destroy();
  }

  async send(req: FuzzRequest): Promise<FuzzResponse> {
    if (req.raw) return this.#socket(req);
    try {
      return await this.#http(req);
    } catch (error) {
      // node:http refuses some hostile headers or targets before sending: send those raw.
      if (error instanceof ClientRefused) return this.#socket(req);
      throw error;
    }
  }

  #headers(req: FuzzRequest): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/scim+json, application/json' };
    const auth = authHeader(req.auth, this.#target.token);
    if (auth !== undefined) headers['authorization'] = auth;
    if (req.body !== undefined) headers['content-type'] = 'application/scim+json';
    Object.assign(headers, req.headers);
    return headers;
  }

  #http(req: FuzzRequest): Promise<FuzzResponse> {
    const started = Date.now();
    const headers = this.#headers(req);
    const body = req.body !== undefined ? Buffer.from(req.body, 'utf8') : undefined;
    if (body !== undefined) headers['content-length'] = String(body.length);
    return new Promise<FuzzResponse>((resolve, reject) => {
      let settled = false;
      const done = (res: FuzzResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(res);
      };
      let client: ReturnType<typeof httpRequest>;
      try {
        client = httpRequest({
          host: this.#target.host,
          port: this.#target.port,
          method: req.method,
          path: pathOf(this.#target, req),
          headers,
          agent: this.#agent,
        });
      } catch (error) {
        reject(new ClientRefused((error as Error).message));
        return;
      }
      const timer = setTimeout(() => {
        client.destroy();
        done({ status: undefined, headers: {}, text: '', bytes: 0, ms: Date.now() - started, failure: 'timeout', via: 'http' });
      }, this.#timeoutMs);
      client.on('error', (error: NodeJS.ErrnoException) => {
        done({ status: undefined, headers: {}, text: '', bytes: 0, ms: Date.now() - started, failure: error.code ?? error.message, via: 'http' });
      });
      client.on('response', (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes <= MAX_KEPT) chunks.push(chunk);
        });
        res.on('end', () => {
          done({
            status: res.statusCode,
            headers: flatten(res.headers),
            text: Buffer.concat(chunks).toString('utf8').slice(0, MAX_KEPT),
            bytes,
            ms: Date.now() - started,
            via: 'http',
          });
        });
        res.on('error', (error: NodeJS.ErrnoException) => {
          done({ status: res.statusCode, headers: flatten(res.headers), text: '', bytes, ms: Date.now() - started, failure: `body: ${error.code ?? error.message}`, via: 'http' });
        });
      });
      try {
        if (body !== undefined) client.end(body);
        else client.end();
      } catch (error) {
        clearTimeout(timer);
        client.destroy();
        if (!settled) {
          settled = true;
          reject(new ClientRefused((error as Error).message));
        }
      }
    });
  }

  /** Writes the request byte by byte as built here, and reads one response. */
  #socket(req: FuzzRequest): Promise<FuzzResponse> {
    const started = Date.now();
    const raw = req.raw ?? {};
    const headers = this.#headers(req);
    const lines: string[] = [`${req.method} ${pathOf(this.#target, req)} ${raw.version ?? 'HTTP/1.1'}`, `Host: ${this.#target.host}:${this.#target.port}`, 'Connection: close'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    const body = req.body !== undefined ? Buffer.from(req.body, 'utf8') : Buffer.alloc(0);
    let payload: Buffer = body;
    if (raw.chunkedBody !== undefined) {
      lines.push('Transfer-Encoding: chunked');
      payload = Buffer.from(raw.chunkedBody, 'utf8');
    } else if (raw.contentLength !== undefined) lines.push(`Content-Length: ${raw.contentLength}`);
    else if (req.body !== undefined) lines.push(`Content-Length: ${body.length}`);
    lines.push(...(raw.extraLines ?? []));
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
    const timeoutMs = raw.mayHang ? this.#hangTimeoutMs : this.#timeoutMs;

    return new Promise<FuzzResponse>((resolve) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const socket = connect(this.#target.port, this.#target.host);
      const finish = (failure?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const parsed = parseResponse(Buffer.concat(chunks));
        resolve({
          status: parsed?.status,
          headers: parsed?.headers ?? {},
          text: parsed?.body ?? '',
          bytes: parsed?.body.length ?? 0,
          ms: Date.now() - started,
          ...(parsed ? {} : { failure: failure ?? 'closed without a response' }),
          via: 'socket',
        });
      };
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      socket.on('connect', () => {
        socket.write(Buffer.concat([head, payload]));
      });
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (complete(Buffer.concat(chunks))) finish();
      });
      socket.on('end', () => finish());
      socket.on('close', () => finish());
      socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNRESET' ? 'reset' : (error.code ?? error.message)));
    });
  }
}

/** node:http refused to send the request (an invalid header value or path). */
class ClientRefused extends Error {}

function flatten(headers: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  return { ...headers };
}

interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function splitHead(data: Buffer): { head: string; rest: Buffer } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  return { head: data.subarray(0, end).toString('latin1'), rest: data.subarray(end + 4) };
}

function parseHead(head: string): { status: number; headers: Record<string, string> } | undefined {
  const [statusLine, ...headerLines] = head.split('\r\n');
  const match = /^HTTP\/\d\.\d (\d{3})/.exec(statusLine ?? '');
  if (!match) return undefined;
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(match[1]), headers };
}

/** Whether `data` holds a whole response (by Content-Length or the last chunk). */
function complete(data: Buffer): boolean {
  const split = splitHead(data);
  if (!split) return false;
  const parsed = parseHead(split.head);
  if (!parsed) return false;
  if (parsed.status === 100) return false;
  const length = parsed.headers['content-length'];
  if (length !== undefined) return split.rest.length >= Number(length);
  if (/chunked/i.test(parsed.headers['transfer-encoding'] ?? '')) return split.rest.includes('\r\n0\r\n\r\n') || split.rest.subarray(0, 5).toString() === '0\r\n\r\n';
  return parsed.status === 204 || parsed.status === 304;
}

function parseResponse(data: Buffer): ParsedResponse | undefined {
  let split = splitHead(data);
  let parsed = split ? parseHead(split.head) : undefined;
  // Skip an interim 100 Continue.
  while (split && parsed?.status === 100) {
    split = splitHead(split.rest);
    parsed = split ? parseHead(split.head) : undefined;
  }
  if (!split || !parsed) return undefined;
  let body = split.rest;
  const length = parsed.headers['content-length'];
  if (length !== undefined) body = body.subarray(0, Number(length));
  else if (/chunked/i.test(parsed.headers['transfer-encoding'] ?? '')) body = dechunk(body);
  return { status: parsed.status, headers: parsed.headers, body: body.toString('utf8').slice(0, MAX_KEPT) };
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    const eol = data.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(data.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size <= 0) break;
    out.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}
