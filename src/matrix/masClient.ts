import { HomeserverError } from '../provisioning/ports.ts';
import { logger } from '../log.ts';

const log = logger('MAS');

type Json = Record<string, unknown>;

export interface MasClientOptions {
  /** MAS's public base URL (its issuer), e.g. https://auth.example.org/ */
  baseUrl: string;
  /** A client listed in MAS's policy data admin_clients, with client_secret_basic. */
  clientId: string;
  clientSecret: string;
  requestTimeoutMs?: number;
}

/** A resource as MAS's admin API gives it: `{ type, id, attributes }`. */
export interface MasResource {
  id: string;
  attributes: Json;
}

/** The admin scope MAS grants to the clients its policy lists as admin clients. */
export const MAS_ADMIN_SCOPE = 'urn:mas:admin';

/** A token is renewed this long before MAS says it expires (its tokens live 300 s). */
const RENEW_MARGIN_MS = 30_000;

/**
 * The slice of MAS's admin API (/api/admin/v1) the bridge uses, with its OAuth 2.0
 * client-credentials token: fetched on first use, kept for its lifetime, renewed before it
 * runs out, and dropped on a 401 (MAS restarted, or the client's secret rotated) and asked
 * for once more. Failures are HomeserverErrors, as the provisioning core expects from any
 * backend: transient when MAS cannot be reached or answers 5xx.
 */
export class MasClient {
  readonly #options: MasClientOptions;
  #token: Promise<{ value: string; until: number }> | undefined;

  constructor(options: MasClientOptions) {
    this.#options = options;
  }

  /** A valid admin token (cached). Throws a HomeserverError when MAS refuses the client. */
  async token(): Promise<string> {
    const cached = this.#token;
    if (cached) {
      const token = await cached.catch(() => undefined);
      if (token && token.until > Date.now()) return token.value;
      if (this.#token === cached) this.#token = undefined;
    }
    this.#token ??= this.#fetchToken();
    const fresh = this.#token;
    try {
      return (await fresh).value;
    } catch (error) {
      if (this.#token === fresh) this.#token = undefined;
      throw error;
    }
  }

  async #fetchToken(): Promise<{ value: string; until: number }> {
    const basic = Buffer.from(`${encodeURIComponent(this.#options.clientId)}:${encodeURIComponent(this.#options.clientSecret)}`).toString('base64');
    const { status, body } = await this.#fetch('POST', '/oauth2/token', {
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: MAS_ADMIN_SCOPE }).toString(),
    });
    const value = body['access_token'];
    if (status !== 200 || typeof value !== 'string') {
      const why = typeof body['error_description'] === 'string' ? body['error_description'] : typeof body['error'] === 'string' ? body['error'] : `HTTP ${status}`;
      throw new HomeserverError(`MAS refused the admin client ${this.#options.clientId} a token: ${why}`, status, undefined, status >= 500);
    }
    const scope = typeof body['scope'] === 'string' ? body['scope'].split(' ') : [];
    if (!scope.includes(MAS_ADMIN_SCOPE)) {
      throw new HomeserverError(
        `MAS gave the client ${this.#options.clientId} a token without the ${MAS_ADMIN_SCOPE} scope: list it in the policy data's admin_clients`,
        status,
        undefined,
        false,
      );
    }
    const lifetimeMs = typeof body['expires_in'] === 'number' ? body['expires_in'] * 1000 : 60_000;
    return { value, until: Date.now() + Math.max(1_000, lifetimeMs - RENEW_MARGIN_MS) };
  }

  /**
   * One admin API call. `accept` lists statuses that are answers, not errors (e.g. 404 for a
   * lookup). A 401 drops the token and tries once more with a new one.
   */
  async call(method: string, path: string, options: { body?: unknown; accept?: number[] } = {}): Promise<{ status: number; body: Json }> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.token();
      const result = await this.#fetch(method, `/api/admin/v1${path}`, {
        headers: { authorization: `Bearer ${token}`, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      });
      if (result.status === 401 && attempt === 0) {
        log.info('MAS refused the admin token; asking for a new one');
        this.#token = undefined;
        continue;
      }
      if ((result.status >= 200 && result.status < 300) || options.accept?.includes(result.status)) return result;
      throw new HomeserverError(`MAS: ${method} ${path.split('?')[0]} failed: ${describeErrors(result.body, result.status)}`, result.status, undefined, result.status >= 500 || result.status === 429);
    }
  }

  /** One resource, or undefined when MAS answers 404. */
  async get(path: string): Promise<MasResource | undefined> {
    const { status, body } = await this.call('GET', path, { accept: [404] });
    return status === 404 ? undefined : resource(body['data']);
  }

  /** Every resource of a list (following MAS's cursor pages). */
  async list(path: string): Promise<MasResource[]> {
    const all: MasResource[] = [];
    let after: string | undefined;
    for (;;) {
      const separator = path.includes('?') ? '&' : '?';
      const page = `${path}${separator}page[first]=100${after ? `&page[after]=${encodeURIComponent(after)}` : ''}`;
      const { body } = await this.call('GET', page);
      const data = Array.isArray(body['data']) ? body['data'].map(resource) : [];
      all.push(...data);
      const last = data[data.length - 1];
      if (data.length < 100 || !last) return all;
      after = last.id;
    }
  }

  async #fetch(method: string, path: string, init: { headers: Record<string, string>; body?: string }): Promise<{ status: number; body: Json }> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.#options.baseUrl), {
        method,
        headers: init.headers,
        ...(init.body !== undefined ? { body: init.body } : {}),
        signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new HomeserverError(`MAS is unreachable (${cause})`, 0, undefined, true);
    }
    const text = await response.text();
    let body: Json = {};
    try {
      const value: unknown = text ? JSON.parse(text) : {};
      if (value && typeof value === 'object' && !Array.isArray(value)) body = value as Json;
    } catch {
      body = {};
    }
    return { status: response.status, body };
  }
}

function resource(value: unknown): MasResource {
  const data = (value ?? {}) as Json;
  return { id: String(data['id'] ?? ''), attributes: (data['attributes'] ?? {}) as Json };
}

/** MAS's JSON:API errors as one line: `{ errors: [{ title }] }`. */
function describeErrors(body: Json, status: number): string {
  const errors = Array.isArray(body['errors']) ? (body['errors'] as Json[]) : [];
  const titles = errors.map((e) => String(e['title'] ?? '')).filter((t) => t !== '');
  return titles.length > 0 ? `${status} ${titles.join('; ')}` : `HTTP ${status}`;
}
