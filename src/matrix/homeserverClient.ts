import { randomUUID } from 'node:crypto';
import { HomeserverError } from '../provisioning/ports.ts';
import { logger } from '../log.ts';

const log = logger('Homeserver');

export { HomeserverError };

export interface ClientOptions {
  baseUrl: string;
  /** The appservice token: registers users, acts as them, and (if the bot is admin) uses the admin API. */
  asToken: string;
  /** A separate server-admin token; without it the as_token is used for the admin API. */
  adminToken?: string;
  /** Longest rate-limit wait that is taken inline before giving up as transient. */
  maxInlineWaitMs?: number;
  requestTimeoutMs?: number;
  /** Told of every call once it ends (for the metrics): how it ended and how long it took, waits included. */
  onCall?: (call: CallRecord) => void;
}

/** One finished call: answered (`ok`, accepted statuses included), refused, or worth retrying. */
export interface CallRecord {
  method: string;
  path: string;
  outcome: 'ok' | 'error' | 'transient';
  seconds: number;
}

type Json = Record<string, unknown>;

interface RequestOptions {
  body?: unknown;
  raw?: { data: Buffer; contentType: string };
  query?: Record<string, string>;
  /** Whose token to send: the appservice's (default), the admin's, or none. */
  token?: 'as' | 'admin' | 'none';
  /** Status codes that are answers, not errors (the body is returned). */
  accept?: number[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The small slice of the client-server, appservice and Synapse admin APIs the bridge uses. */
export class HomeserverClient {
  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    this.#options = options;
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<{ status: number; body: Json }> {
    const onCall = this.#options.onCall;
    if (!onCall) return this.#request(method, path, options);
    const started = process.hrtime.bigint();
    const record = (outcome: CallRecord['outcome']) =>
      onCall({ method, path, outcome, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    try {
      const result = await this.#request(method, path, options);
      record('ok');
      return result;
    } catch (error) {
      record(error instanceof HomeserverError && error.transient ? 'transient' : 'error');
      throw error;
    }
  }

  async #request(method: string, path: string, options: RequestOptions): Promise<{ status: number; body: Json }> {
    const maxWait = this.#options.maxInlineWaitMs ?? 5000;
    for (let attempt = 0; ; attempt++) {
      const result = await this.#once(method, path, options);
      if (result.status === 429) {
        const retryAfterMs = Number(result.body['retry_after_ms'] ?? 1000);
        if (retryAfterMs <= maxWait && attempt < 5) {
          log.debug(`rate limited on ${method} ${path}, waiting ${retryAfterMs} ms`);
          await sleep(retryAfterMs);
          continue;
        }
        throw new HomeserverError(`the homeserver is rate limiting ${method} ${path}`, 429, 'M_LIMIT_EXCEEDED', true, retryAfterMs);
      }
      if (result.status >= 200 && result.status < 300) return result;
      if (options.accept?.includes(result.status)) return result;
      const errcode = typeof result.body['errcode'] === 'string' ? result.body['errcode'] : undefined;
      const error = typeof result.body['error'] === 'string' ? result.body['error'] : `HTTP ${result.status}`;
      throw new HomeserverError(
        `${method} ${path.split('?')[0]} failed: ${errcode ?? result.status} ${error}`,
        result.status,
        errcode,
        result.status >= 500,
      );
    }
  }

  async #once(method: string, path: string, options: RequestOptions): Promise<{ status: number; body: Json }> {
    const url = new URL(path, this.#options.baseUrl);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    const token = options.token === 'admin' ? (this.#options.adminToken ?? this.#options.asToken) : this.#options.asToken;
    const headers: Record<string, string> = options.token === 'none' ? {} : { authorization: `Bearer ${token}` };
    let body: string | Blob | undefined;
    if (options.raw) {
      headers['content-type'] = options.raw.contentType;
      body = new Blob([new Uint8Array(options.raw.data)], { type: options.raw.contentType });
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new HomeserverError(`the homeserver is unreachable (${cause})`, 0, undefined, true);
    }
    const text = await response.text();
    let parsed: Json = {};
    if (text) {
      try {
        const value: unknown = JSON.parse(text);
        if (value && typeof value === 'object' && !Array.isArray(value)) parsed = value as Json;
      } catch {
        parsed = {};
      }
    }
    return { status: response.status, body: parsed };
  }

  // ---- appservice and client-server API ----

  /** Registers a user in the appservice's namespace; an existing user is not an error. */
  async register(localpart: string): Promise<'created' | 'exists'> {
    const r = await this.request('POST', '/_matrix/client/v3/register', {
      body: { type: 'm.login.application_service', username: localpart, inhibit_login: true },
      accept: [400],
    });
    if (r.status !== 400) return 'created';
    const errcode = String(r.body['errcode']);
    if (errcode === 'M_USER_IN_USE') return 'exists';
    throw new HomeserverError(`cannot register ${localpart}: ${errcode} ${String(r.body['error'])}`, 400, errcode, false);
  }

  async ping(appserviceId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v1/appservice/${encodeURIComponent(appserviceId)}/ping`, {
      body: { transaction_id: `scim-bridge-${randomUUID()}` },
    });
  }

  async whoami(): Promise<string> {
    const { body } = await this.request('GET', '/_matrix/client/v3/account/whoami');
    return String(body['user_id']);
  }

  async uploadMedia(data: Buffer, contentType: string, filename: string): Promise<string> {
    const { body } = await this.request('POST', '/_matrix/media/v3/upload', {
      raw: { data, contentType },
      query: { filename },
    });
    const uri = body['content_uri'];
    if (typeof uri !== 'string') throw new HomeserverError('the media upload returned no content_uri', 200, undefined, false);
    return uri;
  }

  async resolveAlias(alias: string): Promise<string | undefined> {
    const r = await this.request('GET', `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { accept: [404] });
    return r.status === 404 ? undefined : String(r.body['room_id']);
  }

  async createRoom(body: Json): Promise<string> {
    const r = await this.request('POST', '/_matrix/client/v3/createRoom', { body });
    return String(r.body['room_id']);
  }

  async joinRoom(roomIdOrAlias: string): Promise<string> {
    const r = await this.request('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomIdOrAlias)}`, { body: {} });
    return String(r.body['room_id']);
  }

  async joinedMembers(roomId: string): Promise<string[]> {
    const r = await this.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`);
    const joined = r.body['joined'];
    return joined && typeof joined === 'object' ? Object.keys(joined) : [];
  }

  async roomMembership(roomId: string, userId: string): Promise<string | undefined> {
    const r = await this.request(
      'GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`,
      { accept: [404] },
    );
    return r.status === 404 ? undefined : String(r.body['membership']);
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, { body: { user_id: userId } });
  }

  /** Joins a room as one of the appservice's users (it must be invited to a private room). */
  async joinAs(roomId: string, userId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, { body: {}, query: { user_id: userId } });
  }

  async kick(roomId: string, userId: string, reason: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/kick`, { body: { user_id: userId, reason } });
  }

  async leave(roomId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, { body: {} });
  }

  async getState(roomId: string, type: string, stateKey = ''): Promise<Json | undefined> {
    const r = await this.request(
      'GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`,
      { accept: [404] },
    );
    return r.status === 404 ? undefined : r.body;
  }

  async putState(roomId: string, type: string, stateKey: string, content: Json): Promise<void> {
    await this.request(
      'PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`,
      { body: content },
    );
  }

  async sendNotice(roomId: string, text: string, html: string): Promise<void> {
    await this.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${randomUUID()}`, {
      body: { msgtype: 'm.notice', body: text, format: 'org.matrix.custom.html', formatted_body: html },
    });
  }

  // ---- Synapse admin API ----

  async getUser(userId: string): Promise<Json | undefined> {
    const r = await this.request('GET', `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, { token: 'admin', accept: [404] });
    return r.status === 404 ? undefined : r.body;
  }

  async putUser(userId: string, body: Json): Promise<void> {
    await this.request('PUT', `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, { token: 'admin', body });
  }

  async threepidOwner(medium: 'email' | 'msisdn', address: string): Promise<string | undefined> {
    const r = await this.request(
      'GET',
      `/_synapse/admin/v1/threepid/${medium}/users/${encodeURIComponent(address)}`,
      { token: 'admin', accept: [404] },
    );
    return r.status === 404 ? undefined : String(r.body['user_id']);
  }

  async externalIdOwner(provider: string, externalId: string): Promise<string | undefined> {
    const r = await this.request(
      'GET',
      `/_synapse/admin/v1/auth_providers/${encodeURIComponent(provider)}/users/${encodeURIComponent(externalId)}`,
      { token: 'admin', accept: [404] },
    );
    return r.status === 404 ? undefined : String(r.body['user_id']);
  }

  async deactivate(userId: string, erase: boolean): Promise<void> {
    await this.request('POST', `/_synapse/admin/v1/deactivate/${encodeURIComponent(userId)}`, { token: 'admin', body: { erase } });
  }

  async suspend(userId: string, suspend: boolean): Promise<void> {
    await this.request('PUT', `/_synapse/admin/v1/suspend/${encodeURIComponent(userId)}`, { token: 'admin', body: { suspend } });
  }

  async serverVersion(): Promise<string> {
    const r = await this.request('GET', '/_synapse/admin/v1/server_version', { token: 'admin' });
    return String(r.body['server_version']);
  }
}
