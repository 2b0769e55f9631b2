// Small clients the end-to-end tests use: the IdP's side (ScimClient) and the
// homeserver's own view (AdminApi), plus a bounded wait for eventual state.

import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export { serveFiles, tinyPng } from '../support/files.ts';

export type Json = Record<string, unknown>;

export interface HttpResult {
  status: number;
  headers: Headers;
  /** The parsed JSON body, or {} when there was none (or it was not JSON: see `text`). */
  body: Json;
  text: string;
}

export interface RequestOptions {
  /** Bearer token; `null` sends no Authorization header. Default: the client's token. */
  token?: string | null;
  headers?: Record<string, string>;
  /** Sent as is instead of JSON.stringify(body) (e.g. malformed JSON). */
  rawBody?: string;
  /** Aborting it hangs up, as an IdP that gives up on a request does. */
  signal?: AbortSignal;
}

async function send(method: string, url: string, body: unknown, token: string | null, options: RequestOptions): Promise<HttpResult> {
  const headers: Record<string, string> = { accept: 'application/scim+json, application/json' };
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  let payload: string | undefined;
  if (options.rawBody !== undefined) payload = options.rawBody;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/scim+json';
  Object.assign(headers, options.headers);
  const res = await fetch(url, {
    method,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await res.text();
  let parsed: Json = {};
  if (text) {
    try {
      const value: unknown = JSON.parse(text);
      if (value && typeof value === 'object' && !Array.isArray(value)) parsed = value as Json;
    } catch {
      // not JSON: the caller can look at `text`
    }
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** The IdP's side: SCIM requests against `<baseUrl><path>` with a bearer token. */
export class ScimClient {
  readonly baseUrl: string;
  readonly token: string;

  constructor(baseUrl: string, token: string) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.token = token;
  }

  request(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<HttpResult> {
    const token = options.token === undefined ? this.token : options.token;
    return send(method, `${this.baseUrl}${path}`, body, token, options);
  }

  get(path: string, options?: RequestOptions): Promise<HttpResult> {
    return this.request('GET', path, undefined, options);
  }
  post(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResult> {
    return this.request('POST', path, body, options);
  }
  put(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResult> {
    return this.request('PUT', path, body, options);
  }
  patch(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResult> {
    return this.request('PATCH', path, body, options);
  }
  delete(path: string, options?: RequestOptions): Promise<HttpResult> {
    return this.request('DELETE', path, undefined, options);
  }

  /** totalResults of `GET /Users?filter=...` (all users without a filter). */
  async count(filter?: string): Promise<number> {
    const query = filter === undefined ? '?count=0' : `?count=0&filter=${encodeURIComponent(filter)}`;
    const res = await this.get(`/Users${query}`);
    if (res.status !== 200) throw new Error(`GET /Users${query}: HTTP ${res.status} ${res.text}`);
    return Number(res.body['totalResults']);
  }
}

const enc = encodeURIComponent;

/** Synapse's own view, through its admin and client APIs with a server admin's token. */
export class AdminApi {
  readonly homeserverUrl: string;
  readonly token: string;

  constructor(homeserverUrl: string, token: string) {
    this.homeserverUrl = homeserverUrl.replace(/\/$/, '');
    this.token = token;
  }

  request(method: string, path: string, body?: unknown): Promise<HttpResult> {
    return send(method, `${this.homeserverUrl}${path}`, body, this.token, {
      ...(body !== undefined ? { headers: { 'content-type': 'application/json' } } : {}),
    });
  }

  /** `GET /_synapse/admin/v2/users/<id>`: the body, or undefined on 404. */
  async user(userId: string): Promise<Json | undefined> {
    const res = await this.request('GET', `/_synapse/admin/v2/users/${enc(userId)}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`GET admin user ${userId}: HTTP ${res.status} ${res.text}`);
    return res.body;
  }

  /** How many accounts Synapse holds, deactivated ones included. */
  async userCount(): Promise<number> {
    const res = await this.request('GET', '/_synapse/admin/v2/users?limit=1&guests=true&deactivated=true');
    if (res.status !== 200) throw new Error(`GET admin users: HTTP ${res.status} ${res.text}`);
    return Number(res.body['total']);
  }

  /** `GET /_matrix/client/v3/profile/<id>`: displayname and avatar_url, or undefined on 404. */
  async profile(userId: string): Promise<Json | undefined> {
    const res = await this.request('GET', `/_matrix/client/v3/profile/${enc(userId)}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`GET profile ${userId}: HTTP ${res.status} ${res.text}`);
    return res.body;
  }

  /** The Matrix ID Synapse links to this SSO identity, or undefined. */
  async userByExternalId(provider: string, externalId: string): Promise<string | undefined> {
    const res = await this.request('GET', `/_synapse/admin/v1/auth_providers/${enc(provider)}/users/${enc(externalId)}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`GET auth_providers ${provider}/${externalId}: HTTP ${res.status} ${res.text}`);
    return String(res.body['user_id']);
  }

  /** Downloads media (authenticated media API) and returns its bytes and content type. */
  async download(mxc: string): Promise<{ status: number; contentType: string | null; data: Buffer }> {
    const match = /^mxc:\/\/([^/]+)\/(.+)$/.exec(mxc);
    if (!match) throw new Error(`not an mxc URI: ${mxc}`);
    const res = await fetch(`${this.homeserverUrl}/_matrix/client/v1/media/download/${match[1]}/${match[2]}`, {
      headers: { authorization: `Bearer ${this.token}` },
    });
    return { status: res.status, contentType: res.headers.get('content-type'), data: Buffer.from(await res.arrayBuffer()) };
  }

  async join(roomIdOrAlias: string): Promise<string> {
    const res = await this.request('POST', `/_matrix/client/v3/join/${enc(roomIdOrAlias)}`, {});
    if (res.status !== 200) throw new Error(`join ${roomIdOrAlias}: HTTP ${res.status} ${res.text}`);
    return String(res.body['room_id']);
  }

  /** The latest (up to 50) events of a room, newest first. */
  async messages(roomId: string): Promise<Json[]> {
    const res = await this.request('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    if (res.status !== 200) throw new Error(`messages of ${roomId}: HTTP ${res.status} ${res.text}`);
    const chunk = res.body['chunk'];
    return Array.isArray(chunk) ? (chunk as Json[]) : [];
  }

  /** Plain-text bodies of the m.notice messages in a room, newest first. */
  async notices(roomId: string): Promise<{ sender: string; body: string; html: string | undefined }[]> {
    return (await this.messages(roomId))
      .filter((e) => e['type'] === 'm.room.message')
      .map((e) => ({ sender: String(e['sender']), content: (e['content'] ?? {}) as Json }))
      .filter((e) => e.content['msgtype'] === 'm.notice')
      .map((e) => ({
        sender: e.sender,
        body: String(e.content['body'] ?? ''),
        html: typeof e.content['formatted_body'] === 'string' ? e.content['formatted_body'] : undefined,
      }));
  }
}

/**
 * Polls `probe` until it returns something other than undefined/false, and returns that.
 * A bounded wait for state that arrives asynchronously, not a timing assertion: the
 * timeout is only how long to give up after, with the last value in the message.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  what = 'condition',
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError ? `; last error: ${(lastError as Error).message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((ok) => setTimeout(ok, intervalMs));
  }
}

/**
 * An HTTP proxy in front of the homeserver, for failures at a chosen point of a request:
 * while `failWhen` matches a request, the proxy drops the connection as a homeserver
 * that went away would. Everything else is forwarded as is (and so is a dead upstream:
 * the connection is dropped).
 */
export class CuttingProxy {
  readonly #server: Server;
  /** Requests that reached the proxy, as "METHOD /path" (no query). */
  readonly seen: string[] = [];
  /** Requests that were cut. */
  readonly cut: string[] = [];
  failWhen: ((method: string, path: string) => boolean) | undefined;
  /** Milliseconds to hold a matching request before forwarding it (0 or undefined: none). */
  holdWhen: ((method: string, path: string) => number | undefined) | undefined;

  private constructor(server: Server) {
    this.#server = server;
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  static async start(target: string): Promise<CuttingProxy> {
    const targetUrl = new URL(target);
    const server = createServer();
    const proxy = new CuttingProxy(server);
    server.on('request', (req, res) => {
      const method = req.method ?? 'GET';
      const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
      proxy.seen.push(`${method} ${path}`);
      if (proxy.failWhen?.(method, path)) {
        proxy.cut.push(`${method} ${path}`);
        req.resume();
        res.socket?.destroy();
        return;
      }
      const forward = () => {
        const upstream = httpRequest(
          {
            host: targetUrl.hostname,
            port: targetUrl.port,
            method,
            path: req.url,
            headers: { ...req.headers, host: targetUrl.host },
          },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
          },
        );
        upstream.on('error', () => res.socket?.destroy());
        req.pipe(upstream);
      };
      const hold = proxy.holdWhen?.(method, path) ?? 0;
      if (hold > 0) setTimeout(forward, hold);
      else forward();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    return proxy;
  }

  close(): Promise<void> {
    return new Promise<void>((ok) => {
      this.#server.closeAllConnections();
      this.#server.close(() => ok());
    });
  }
}

// --- Shared by the IdP-dialect suites (idp-*.test.ts) ---

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/**
 * What is wrong with `res` as a SCIM error response of `status` (and `scimType`, when
 * given): an empty list when it is one. Chai-free so that any suite can use it.
 */
export function scimErrorProblems(res: HttpResult, status: number, scimType?: string): string[] {
  const problems: string[] = [];
  if (res.status !== status) problems.push(`status ${res.status}, not ${status}`);
  if (!/^application\/scim\+json/.test(res.headers.get('content-type') ?? '')) {
    problems.push(`content-type ${String(res.headers.get('content-type'))}, not application/scim+json`);
  }
  const schemas = res.body['schemas'];
  if (!Array.isArray(schemas) || schemas.length !== 1 || schemas[0] !== SCIM_ERROR_SCHEMA) problems.push(`schemas ${JSON.stringify(schemas)}`);
  if (res.body['status'] !== String(status)) problems.push(`body status ${JSON.stringify(res.body['status'])}, not "${status}"`);
  if (typeof res.body['detail'] !== 'string' || res.body['detail'] === '') problems.push('no detail');
  if (scimType !== undefined && res.body['scimType'] !== scimType) problems.push(`scimType ${JSON.stringify(res.body['scimType'])}, not ${scimType}`);
  return problems;
}

/** The threepids of an admin-API user as `{medium, address}` pairs (empty when there are none). */
export function threepidsOf(user: Json | undefined): { medium: string; address: string }[] {
  const list = user?.['threepids'];
  return Array.isArray(list) ? (list as Json[]).map((t) => ({ medium: String(t['medium']), address: String(t['address']) })) : [];
}

/** `/Users?filter=<encoded filter>` plus any extra query, as an IdP builds it. */
export function usersFilterPath(filter: string, extra = ''): string {
  return `/Users?filter=${encodeURIComponent(filter)}${extra}`;
}

// --- Rooms, as Synapse's admin API shows them (used by the group suites) ---

/** `GET /_synapse/admin/v1/rooms/<room>`: the room's details, or undefined on 404. */
export async function roomDetails(admin: AdminApi, roomId: string): Promise<Json | undefined> {
  const res = await admin.request('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}`);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET admin room ${roomId}: HTTP ${res.status} ${res.text}`);
  return res.body;
}

/** The Matrix IDs joined to a room (`GET /_synapse/admin/v1/rooms/<room>/members`), sorted. */
export async function roomMembers(admin: AdminApi, roomId: string): Promise<string[]> {
  const res = await admin.request('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/members`);
  if (res.status !== 200) throw new Error(`GET admin room members of ${roomId}: HTTP ${res.status} ${res.text}`);
  const members = res.body['members'];
  return Array.isArray(members) ? members.map(String).sort() : [];
}

/** The current state events of a room (`GET /_synapse/admin/v1/rooms/<room>/state`). */
export async function roomState(admin: AdminApi, roomId: string): Promise<Json[]> {
  const res = await admin.request('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/state`);
  if (res.status !== 200) throw new Error(`GET admin room state of ${roomId}: HTTP ${res.status} ${res.text}`);
  const state = res.body['state'];
  return Array.isArray(state) ? (state as Json[]) : [];
}

/** One state event of `type` (and `stateKey`) out of roomState(), or undefined. */
export function stateEvent(state: Json[], type: string, stateKey = ''): Json | undefined {
  return state.find((e) => e['type'] === type && (e['state_key'] ?? '') === stateKey);
}

/** Rooms whose name matches `term` (`GET /_synapse/admin/v1/rooms?search_term=`). */
export async function roomsNamed(admin: AdminApi, term: string): Promise<Json[]> {
  const res = await admin.request('GET', `/_synapse/admin/v1/rooms?search_term=${enc(term)}&limit=100`);
  if (res.status !== 200) throw new Error(`GET admin rooms ${term}: HTTP ${res.status} ${res.text}`);
  const rooms = res.body['rooms'];
  return Array.isArray(rooms) ? (rooms as Json[]) : [];
}

/**
 * Every event of a room's timeline, newest first, through the admin API (the caller need
 * not be in the room): `GET /_synapse/admin/v1/rooms/<room>/messages?dir=b`, all pages.
 */
export async function roomTimeline(admin: AdminApi, roomId: string, pageSize = 1000): Promise<Json[]> {
  const events: Json[] = [];
  let from: string | undefined;
  for (let page = 0; page < 100; page++) {
    const query = `dir=b&limit=${pageSize}${from ? `&from=${enc(from)}` : ''}`;
    const res = await admin.request('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/messages?${query}`);
    if (res.status !== 200) throw new Error(`GET admin room messages of ${roomId}: HTTP ${res.status} ${res.text}`);
    const chunk = Array.isArray(res.body['chunk']) ? (res.body['chunk'] as Json[]) : [];
    events.push(...chunk);
    const end = typeof res.body['end'] === 'string' ? res.body['end'] : undefined;
    if (chunk.length === 0 || !end || end === from) break;
    from = end;
  }
  return events;
}

/** How many m.room.member events with each membership each user has in `events`. */
export function membershipCounts(events: Json[]): Map<string, Record<string, number>> {
  const counts = new Map<string, Record<string, number>>();
  for (const e of events) {
    if (e['type'] !== 'm.room.member') continue;
    const user = String(e['state_key']);
    const membership = String(((e['content'] ?? {}) as Json)['membership']);
    const perUser = counts.get(user) ?? {};
    perUser[membership] = (perUser[membership] ?? 0) + 1;
    counts.set(user, perUser);
  }
  return counts;
}

/** Plain-text notice bodies in a room (admin API, no need to be joined), newest first. */
export async function roomNotices(admin: AdminApi, roomId: string, pageSize = 500): Promise<{ sender: string; body: string }[]> {
  const res = await admin.request('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/messages?dir=b&limit=${pageSize}`);
  if (res.status !== 200) throw new Error(`GET admin room messages of ${roomId}: HTTP ${res.status} ${res.text}`);
  const chunk = Array.isArray(res.body['chunk']) ? (res.body['chunk'] as Json[]) : [];
  return chunk
    .filter((e) => e['type'] === 'm.room.message' && ((e['content'] ?? {}) as Json)['msgtype'] === 'm.notice')
    .map((e) => ({ sender: String(e['sender']), body: String(((e['content'] ?? {}) as Json)['body'] ?? '') }));
}
