// An in-process HTTP double of a Matrix Authentication Service (v1.22) in front of a Synapse
// (1.163) that delegates its accounts to it, for the HTTP tier: the real MasClient,
// HomeserverClient and MasPort talk to it over HTTP, and the tests read its state as the
// homeserver's own view. The real thing runs in the end-to-end tier (test/e2e/mas.test.ts).
//
// Checked against MAS's source at tag v1.22.0 (crates/handlers/src/admin/v1, the storage
// and the tasks crate):
// - POST /users takes username, skip_homeserver_check, displayname and avatar_url (the
//   last two go to Synapse with the provisioning). An existing username is 409 ("User
//   already exists"), checked before the username's validity (400 "Username is not
//   valid": empty, over 255, a leading "_", or a character outside [a-z0-9=_\-./+]).
// - Deactivate sets deactivated_at only (not locked_at). Its job, which MAS runs soon
//   after, finishes the user's sessions, removes its emails and deactivates it in Synapse;
//   the double does all of that at once. Reactivate clears deactivated_at only: it neither
//   unlocks nor brings the emails back. Unlock does not reactivate.
// - A lock finishes no session. MAS's introspection refuses a locked user's token, but the
//   session stays active (it works again after an unlock) and Synapse may still answer
//   from its introspection cache: the double keeps such tokens working while locked, the
//   worst case a bridge must handle by ending the sessions itself.
// - set-password: 204; 400 "Password is too weak" below MAS's zxcvbn score. The double's
//   rule instead: shorter than 8 characters, or listed in `weakPasswords`.
// - user-emails: 409 "User email \"x\" already in use" for an address any user holds,
//   400 for one that does not parse, 404 for an unknown user. upstream-oauth-links: 409
//   when the provider's subject is linked already, 404 for an unknown user or provider.
// - Session finish: 400 when finished already, 404 when unknown. Lists take
//   filter[user] (404 for an unknown user), filter[email], filter[provider],
//   filter[subject], filter[status], page[first] and page[after]; bodies are JSON:API.
// - An unknown admin token is 401 {"errors":[{"title":"Unknown access token"}]}; a missing
//   Authorization header 400.
// Synapse's side, as seen on Synapse 1.163 under MAS (the issue's runs and the e2e tier):
// profile writes to an existing user answer 200, a password in the body 403, an unknown
// user 404; MAS provisions Synapse within 0.1-0.5 s (`provisionDelayMs` plays that).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = Record<string, unknown>;

export interface FakeMasUser {
  id: string;
  username: string;
  createdAt: string;
  lockedAt: string | null;
  deactivatedAt: string | null;
  admin: boolean;
  /** Kept in clear: this is a double. */
  password: string | undefined;
  /** Synapse's side: the profile, and what Synapse alone holds. */
  displayname: string | null;
  avatarUrl: string | null;
  suspended: boolean;
  erased: boolean;
  /** When Synapse shows the user (MAS provisions it). */
  provisionedAt: number;
}

export interface FakeMasEmail {
  id: string;
  userId: string;
  email: string;
  createdAt: string;
}

export interface FakeMasLink {
  id: string;
  userId: string;
  providerId: string;
  subject: string;
  createdAt: string;
}

export type SessionKind = 'compat-sessions' | 'oauth2-sessions';

export interface FakeMasSession {
  id: string;
  kind: SessionKind;
  userId: string;
  accessToken: string;
  createdAt: string;
  finishedAt: string | null;
}

export interface FakeMasCall {
  method: string;
  /** The path with its query. */
  path: string;
  status: number;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const VALID_USERNAME = /^[a-z0-9=_\-./+]+$/;

/** 26 Crockford base32 characters: a millisecond time, then a counter, so ids sort in creation order. */
function ulid(time: number, counter: number): string {
  let out = '';
  for (let t = time, i = 0; i < 10; i++, t = Math.floor(t / 32)) out = CROCKFORD[t % 32] + out;
  let tail = '';
  for (let c = counter, i = 0; i < 16; i++, c = Math.floor(c / 32)) tail = CROCKFORD[c % 32] + tail;
  return out + tail;
}

/** An answer: its status and JSON body (none for a 204). */
interface Reply {
  status: number;
  body?: unknown;
}

const reply = (status: number, body?: unknown): Reply => (body === undefined ? { status } : { status, body });
const masError = (status: number, title: string) => reply(status, { errors: [{ title }] });
const matrixError = (status: number, errcode: string, error: string) => reply(status, { errcode, error });

export class FakeMas {
  readonly clientId = '01JZ8SCMBR1DGE0ADM1NC11ENT';
  readonly clientSecret = 'fake-mas-client-secret: with a colon';
  readonly upstreamProviderId = '01JZ8SCMBR1DGE0VPSTREAM1DP';
  /** The token HomeserverClient sends to Synapse's admin API (a MAS token with the Synapse admin scope). */
  readonly synapseAdminToken = 'fake-synapse-admin-token';
  readonly domain: string;
  /** How long after MAS creates a user Synapse shows it. */
  provisionDelayMs = 0;
  /** Every MAS request (token endpoint, admin API) answers 503, as a MAS behind a proxy that lost it. */
  down = false;
  /** Answers 503 to the admin calls it returns true for (checked before `down`). */
  failWhen: ((method: string, path: string) => boolean) | undefined;
  /** Passwords set-password refuses besides the short ones. */
  readonly weakPasswords = new Set(['password', '12345678', 'qwertyuiop']);
  tokensIssued = 0;
  readonly calls: FakeMasCall[] = [];

  readonly users = new Map<string, FakeMasUser>();
  readonly emails = new Map<string, FakeMasEmail>();
  readonly links = new Map<string, FakeMasLink>();
  readonly sessions = new Map<string, FakeMasSession>();
  readonly #adminTokens = new Set<string>();
  readonly #server: Server;
  readonly #epoch = Date.now();
  #counter = 0;

  constructor(domain = 'example.org') {
    this.domain = domain;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** MAS's public base URL (the issuer), with Synapse on the same origin. */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/`;
  }

  /** MAS restarted (or its tokens were revoked): every admin token it gave is refused. */
  forgetTokens(): void {
    this.#adminTokens.clear();
  }

  // ---- what the tests read and do ----

  userByName(username: string): FakeMasUser | undefined {
    return [...this.users.values()].find((u) => u.username === username);
  }

  emailsOf(username: string): string[] {
    const user = this.userByName(username);
    return [...this.emails.values()].filter((e) => e.userId === user?.id).map((e) => e.email);
  }

  linksOf(username: string): FakeMasLink[] {
    const user = this.userByName(username);
    return [...this.links.values()].filter((l) => l.userId === user?.id);
  }

  sessionsOf(username: string): FakeMasSession[] {
    const user = this.userByName(username);
    return [...this.sessions.values()].filter((s) => s.userId === user?.id);
  }

  /** A user made outside the bridge (by an operator or by SSO), with its emails. */
  seedUser(username: string, emails: string[] = []): FakeMasUser {
    const user = this.#addUser(username, null, null);
    for (const email of emails) this.#addEmail(user.id, email);
    return user;
  }

  /**
   * Logs a user in, as a Matrix client does through MAS (compat) or OAuth: the session's
   * access token, or undefined when MAS refuses (wrong password, locked, deactivated).
   */
  login(username: string, options: { password?: string; kind?: SessionKind } = {}): string | undefined {
    const user = this.userByName(username);
    if (!user || user.lockedAt !== null || user.deactivatedAt !== null) return undefined;
    if (options.password !== undefined && options.password !== user.password) return undefined;
    const session: FakeMasSession = {
      id: this.#id(),
      kind: options.kind ?? 'compat-sessions',
      userId: user.id,
      accessToken: `mct_${this.#id()}`,
      createdAt: new Date().toISOString(),
      finishedAt: null,
    };
    this.sessions.set(session.id, session);
    return session.accessToken;
  }

  /** Synapse's whoami with a user's token, over HTTP: its status. */
  async whoami(token: string): Promise<number> {
    const response = await fetch(new URL('/_matrix/client/v3/account/whoami', this.url), { headers: { authorization: `Bearer ${token}` } });
    await response.arrayBuffer();
    return response.status;
  }

  /** The user as Synapse's admin API shows it, or undefined before MAS provisioned it. */
  synapseUser(username: string): Json | undefined {
    const user = this.userByName(username);
    if (!user || Date.now() < user.provisionedAt) return undefined;
    return {
      name: `@${user.username}:${this.domain}`,
      displayname: user.displayname,
      avatar_url: user.avatarUrl,
      threepids: this.emailsOf(username).map((address) => ({ medium: 'email', address, added_at: 0, validated_at: 0 })),
      admin: false,
      deactivated: user.deactivatedAt !== null,
      locked: user.lockedAt !== null,
      suspended: user.suspended,
      erased: user.erased,
      shadow_banned: false,
      is_guest: false,
      creation_ts: Date.parse(user.createdAt),
      appservice_id: null,
      user_type: null,
      external_ids: [],
    };
  }

  // ---- the state changes, shared by the API and the helpers ----

  #id(): string {
    return ulid(this.#epoch, ++this.#counter);
  }

  #addUser(username: string, displayname: string | null, avatarUrl: string | null): FakeMasUser {
    const user: FakeMasUser = {
      id: this.#id(),
      username,
      createdAt: new Date().toISOString(),
      lockedAt: null,
      deactivatedAt: null,
      admin: false,
      password: undefined,
      displayname,
      avatarUrl,
      suspended: false,
      erased: false,
      provisionedAt: Date.now() + this.provisionDelayMs,
    };
    this.users.set(user.id, user);
    return user;
  }

  #addEmail(userId: string, email: string): FakeMasEmail {
    const record = { id: this.#id(), userId, email, createdAt: new Date().toISOString() };
    this.emails.set(record.id, record);
    return record;
  }

  #finishSessions(userId: string): void {
    for (const session of this.sessions.values()) {
      if (session.userId === userId && session.finishedAt === null) session.finishedAt = new Date().toISOString();
    }
  }

  // ---- HTTP ----

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const url = new URL(req.url ?? '/', 'http://fake-mas');
    const method = req.method ?? 'GET';
    let answer: Reply;
    try {
      answer = this.#route(method, url, req.headers.authorization, text);
    } catch (error) {
      answer = masError(500, (error as Error).message);
    }
    this.calls.push({ method, path: `${url.pathname}${url.search}`, status: answer.status });
    if (answer.body === undefined) {
      res.writeHead(answer.status);
      res.end();
      return;
    }
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  }

  #route(method: string, url: URL, authorization: string | undefined, text: string): Reply {
    const path = url.pathname;
    if (path.startsWith('/_synapse/') || path.startsWith('/_matrix/')) return this.#synapse(method, path, authorization, text);
    if (this.failWhen?.(method, `${path}${url.search}`) || this.down) return masError(503, 'Service unavailable');
    if (path === '/oauth2/token' && method === 'POST') return this.#token(authorization, text);
    if (!path.startsWith('/api/admin/v1/')) return reply(404, {});
    if (!authorization) return masError(400, 'Missing authorization header');
    const token = /^Bearer (.+)$/.exec(authorization)?.[1];
    if (!token) return masError(400, 'Invalid authorization header');
    if (!this.#adminTokens.has(token)) return masError(401, 'Unknown access token');
    let body: Json = {};
    if (text) {
      try {
        body = JSON.parse(text) as Json;
      } catch {
        return masError(400, 'Failed to parse the request body as JSON');
      }
    }
    return this.#admin(method, path.slice('/api/admin/v1'.length), url.searchParams, body);
  }

  /** client_credentials with client_secret_basic, as MAS's token endpoint takes it. */
  #token(authorization: string | undefined, text: string): Reply {
    const basic = /^Basic (.+)$/.exec(authorization ?? '')?.[1];
    const [id, secret] = Buffer.from(basic ?? '', 'base64').toString().split(':');
    const decode = (value: string | undefined) => {
      try {
        return value === undefined ? undefined : decodeURIComponent(value);
      } catch {
        return undefined;
      }
    };
    if (decode(id) !== this.clientId || decode(secret) !== this.clientSecret) {
      return reply(401, { error: 'invalid_client', error_description: 'Client authentication failed.' });
    }
    const form = new URLSearchParams(text);
    if (form.get('grant_type') !== 'client_credentials') {
      return reply(400, { error: 'unsupported_grant_type', error_description: 'The authorization grant type is not supported.' });
    }
    const scope = form.get('scope') ?? '';
    const token = `mat_${this.#id()}`;
    this.#adminTokens.add(token);
    this.tokensIssued++;
    return reply(200, { access_token: token, token_type: 'Bearer', expires_in: 300, scope });
  }

  // ---- the admin API ----

  #single(type: string, collection: string, id: string, attributes: Json, self?: string): Reply {
    return reply(200, { data: this.#resource(type, collection, id, attributes), links: { self: self ?? `/api/admin/v1/${collection}/${id}` } });
  }

  #resource(type: string, collection: string, id: string, attributes: Json): Json {
    return { type, id, attributes, links: { self: `/api/admin/v1/${collection}/${id}` } };
  }

  /** One page of a list, by id, as MAS's cursor pagination gives it. */
  #list<T extends { id: string }>(collection: string, type: string, items: T[], query: URLSearchParams, attributes: (item: T) => Json): Reply {
    const first = Math.min(Number(query.get('page[first]') ?? 10), 100);
    const after = query.get('page[after]');
    const sorted = [...items].sort((a, b) => (a.id < b.id ? -1 : 1));
    const rest = after ? sorted.filter((item) => item.id > after) : sorted;
    const page = rest.slice(0, first);
    const data = page.map((item) => ({ ...this.#resource(type, collection, item.id, attributes(item)), meta: { page: { cursor: item.id } } }));
    const base = `/api/admin/v1/${collection}`;
    const last = page[page.length - 1];
    return reply(200, {
      meta: { count: items.length },
      data,
      links: {
        self: `${base}?page[first]=${first}${after ? `&page[after]=${after}` : ''}`,
        first: `${base}?page[first]=${first}`,
        last: `${base}?page[last]=${first}`,
        ...(rest.length > page.length && last ? { next: `${base}?page[after]=${last.id}&page[first]=${first}` } : {}),
      },
    });
  }

  #userAttributes(user: FakeMasUser): Json {
    return {
      username: user.username,
      created_at: user.createdAt,
      locked_at: user.lockedAt,
      deactivated_at: user.deactivatedAt,
      admin: user.admin,
      legacy_guest: false,
    };
  }

  #emailAttributes = (e: FakeMasEmail): Json => ({ created_at: e.createdAt, user_id: e.userId, email: e.email });

  #linkAttributes = (l: FakeMasLink): Json => ({
    created_at: l.createdAt,
    provider_id: l.providerId,
    subject: l.subject,
    user_id: l.userId,
    human_account_name: null,
  });

  #sessionAttributes = (s: FakeMasSession): Json => ({
    created_at: s.createdAt,
    finished_at: s.finishedAt,
    user_id: s.userId,
    ...(s.kind === 'compat-sessions' ? { device_id: `DEVICE${s.id.slice(-6)}` } : { scope: 'urn:matrix:client:api:*', client_id: this.clientId }),
  });

  #admin(method: string, path: string, query: URLSearchParams, body: Json): Reply {
    const parts = path.split('/').slice(1).map(decodeURIComponent);
    const [collection, id, action] = parts;
    const key = `${method} ${collection}${id === undefined ? '' : id === 'by-username' ? '/by-username' : '/:id'}${action === undefined || id === 'by-username' ? '' : `/${action}`}`;
    if (id !== undefined && id !== 'by-username' && !ULID.test(id)) return masError(400, `Invalid ULID in path: ${id}`);
    const filterUser = query.get('filter[user]');
    if (filterUser !== null && ![...this.users.keys()].includes(filterUser)) return masError(404, `User ID ${filterUser} not found`);

    switch (key) {
      case 'POST users':
        return this.#createUser(body);
      case 'GET users/:id': {
        const user = this.users.get(id!);
        return user ? this.#single('user', 'users', user.id, this.#userAttributes(user)) : masError(404, `User ID ${id} not found`);
      }
      case 'GET users/by-username': {
        const user = this.userByName(action ?? '');
        return user ? this.#single('user', 'users', user.id, this.#userAttributes(user)) : masError(404, `User with username "${action}" not found`);
      }
      case 'POST users/:id/set-password':
      case 'POST users/:id/lock':
      case 'POST users/:id/unlock':
      case 'POST users/:id/deactivate':
      case 'POST users/:id/reactivate':
        return this.#userAction(id!, action!, body);
      case 'GET user-emails': {
        const email = query.get('filter[email]');
        const items = [...this.emails.values()].filter((e) => (filterUser === null || e.userId === filterUser) && (email === null || e.email === email));
        return this.#list('user-emails', 'user-email', items, query, this.#emailAttributes);
      }
      case 'POST user-emails':
        return this.#createEmail(body);
      case 'DELETE user-emails/:id':
        return this.emails.delete(id!) ? reply(204) : masError(404, `User email ID ${id} not found`);
      case 'GET upstream-oauth-links': {
        const provider = query.get('filter[provider]');
        const subject = query.get('filter[subject]');
        if (provider !== null && provider !== this.upstreamProviderId) return masError(404, `Upstream OAuth 2.0 Provider ID ${provider} not found`);
        const items = [...this.links.values()].filter(
          (l) => (filterUser === null || l.userId === filterUser) && (provider === null || l.providerId === provider) && (subject === null || l.subject === subject),
        );
        return this.#list('upstream-oauth-links', 'upstream-oauth-link', items, query, this.#linkAttributes);
      }
      case 'POST upstream-oauth-links':
        return this.#createLink(body);
      case 'DELETE upstream-oauth-links/:id':
        return this.links.delete(id!) ? reply(204) : masError(404, `Upstream OAuth 2.0 Link ID ${id} not found`);
      case 'GET compat-sessions':
      case 'GET oauth2-sessions': {
        const status = query.get('filter[status]');
        const items = [...this.sessions.values()].filter(
          (s) =>
            s.kind === collection &&
            (filterUser === null || s.userId === filterUser) &&
            (status === null || (status === 'active') === (s.finishedAt === null)),
        );
        const type = collection === 'compat-sessions' ? 'compat-session' : 'oauth2-session';
        return this.#list(collection!, type, items, query, this.#sessionAttributes);
      }
      case 'POST compat-sessions/:id/finish':
      case 'POST oauth2-sessions/:id/finish': {
        const session = this.sessions.get(id!);
        const name = collection === 'compat-sessions' ? 'Compatibility session' : 'OAuth 2.0 session';
        if (!session || session.kind !== collection) return masError(404, `${name} with ID ${id} not found`);
        if (session.finishedAt !== null) return masError(400, `${name} with ID ${id} is already finished`);
        session.finishedAt = new Date().toISOString();
        const type = collection === 'compat-sessions' ? 'compat-session' : 'oauth2-session';
        return this.#single(type, collection, session.id, this.#sessionAttributes(session), `/api/admin/v1/${collection}/${id}/finish`);
      }
      default:
        return masError(404, `No route for ${method} /api/admin/v1${path}`);
    }
  }

  #createUser(body: Json): Reply {
    const username = body['username'];
    if (typeof username !== 'string') return masError(422, 'Failed to deserialize the JSON body: missing field `username`');
    if (this.userByName(username)) return masError(409, 'User already exists');
    if (username === '' || username.length > 255 || username.startsWith('_') || !VALID_USERNAME.test(username)) {
      return masError(400, 'Username is not valid');
    }
    const displayname = typeof body['displayname'] === 'string' ? body['displayname'] : null;
    const avatarUrl = typeof body['avatar_url'] === 'string' ? body['avatar_url'] : null;
    const user = this.#addUser(username, displayname, avatarUrl);
    return reply(201, this.#single('user', 'users', user.id, this.#userAttributes(user)).body);
  }

  #userAction(id: string, action: string, body: Json): Reply {
    const user = this.users.get(id);
    if (!user) return masError(404, `User ID ${id} not found`);
    const now = new Date().toISOString();
    switch (action) {
      case 'set-password': {
        const password = body['password'];
        if (typeof password !== 'string') return masError(422, 'Failed to deserialize the JSON body: missing field `password`');
        if (body['skip_password_check'] !== true && (password.length < 8 || this.weakPasswords.has(password))) {
          return masError(400, 'Password is too weak');
        }
        user.password = password;
        return reply(204);
      }
      case 'lock':
        user.lockedAt ??= now;
        break;
      case 'unlock':
        user.lockedAt = null;
        break;
      case 'deactivate':
        // What MAS's deactivation job does, done at once.
        user.deactivatedAt ??= now;
        this.#finishSessions(user.id);
        for (const email of [...this.emails.values()]) if (email.userId === user.id) this.emails.delete(email.id);
        if (body['skip_erase'] !== true) {
          user.erased = true;
          user.displayname = null;
          user.avatarUrl = null;
        }
        break;
      case 'reactivate':
        user.deactivatedAt = null;
        user.erased = false;
        break;
    }
    return this.#single('user', 'users', user.id, this.#userAttributes(user), `/api/admin/v1/users/${id}/${action}`);
  }

  #createEmail(body: Json): Reply {
    const userId = String(body['user_id'] ?? '');
    const email = String(body['email'] ?? '');
    if (!this.users.has(userId)) return masError(404, `User ID ${userId} not found`);
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) return masError(400, `Email ${JSON.stringify(email)} is not valid`);
    if ([...this.emails.values()].some((e) => e.email === email)) return masError(409, `User email ${JSON.stringify(email)} already in use`);
    const record = this.#addEmail(userId, email);
    return reply(201, { data: this.#resource('user-email', 'user-emails', record.id, this.#emailAttributes(record)), links: { self: `/api/admin/v1/user-emails/${record.id}` } });
  }

  #createLink(body: Json): Reply {
    const userId = String(body['user_id'] ?? '');
    const providerId = String(body['provider_id'] ?? '');
    const subject = String(body['subject'] ?? '');
    if (!this.users.has(userId)) return masError(404, `User ID ${userId} not found`);
    if (providerId !== this.upstreamProviderId) return masError(404, `Upstream OAuth 2.0 Provider ID ${providerId} not found`);
    if ([...this.links.values()].some((l) => l.providerId === providerId && l.subject === subject)) {
      return masError(409, `Upstream Oauth 2.0 Provider ID ${providerId} with subject ${subject} is already linked to a user`);
    }
    const link: FakeMasLink = { id: this.#id(), userId, providerId, subject, createdAt: new Date().toISOString() };
    this.links.set(link.id, link);
    return reply(201, { data: this.#resource('upstream-oauth-link', 'upstream-oauth-links', link.id, this.#linkAttributes(link)), links: { self: `/api/admin/v1/upstream-oauth-links/${link.id}` } });
  }

  // ---- Synapse ----

  #synapse(method: string, path: string, authorization: string | undefined, text: string): Reply {
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    if (path === '/_matrix/client/v3/account/whoami' && method === 'GET') return this.#whoami(token);
    if (!token) return matrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
    if (token !== this.synapseAdminToken) return matrixError(403, 'M_FORBIDDEN', 'You are not a server admin');
    const user = /^\/_synapse\/admin\/v2\/users\/([^/]+)$/.exec(path);
    const suspend = /^\/_synapse\/admin\/v1\/suspend\/([^/]+)$/.exec(path);
    const matrixId = decodeURIComponent((user ?? suspend)?.[1] ?? '');
    const suffix = `:${this.domain}`;
    const username = matrixId.startsWith('@') && matrixId.endsWith(suffix) ? matrixId.slice(1, -suffix.length) : undefined;
    const shown = username === undefined ? undefined : this.synapseUser(username);
    const body = text ? (JSON.parse(text) as Json) : {};
    if (user && method === 'GET') return shown ? reply(200, shown) : matrixError(404, 'M_NOT_FOUND', 'User not found');
    if (user && method === 'PUT') {
      if ('password' in body) return matrixError(403, 'M_FORBIDDEN', 'Password change is not supported when using MAS');
      if (!shown) return matrixError(404, 'M_NOT_FOUND', 'User not found');
      const record = this.userByName(username!)!;
      if (typeof body['displayname'] === 'string') record.displayname = body['displayname'] === '' ? null : body['displayname'];
      if (typeof body['avatar_url'] === 'string') record.avatarUrl = body['avatar_url'] === '' ? null : body['avatar_url'];
      return reply(200, this.synapseUser(username!));
    }
    if (suspend && method === 'PUT') {
      if (!shown) return matrixError(404, 'M_NOT_FOUND', 'User not found');
      this.userByName(username!)!.suspended = body['suspend'] === true;
      return reply(200, { [`user_${matrixId}_suspended`]: body['suspend'] === true });
    }
    return matrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request');
  }

  /** Synapse asks MAS about the token: a finished session or a deactivated user is refused; a lock is not (see the top). */
  #whoami(token: string | undefined): Reply {
    const session = [...this.sessions.values()].find((s) => s.accessToken === token);
    const user = session ? this.users.get(session.userId) : undefined;
    if (!session || !user || session.finishedAt !== null || user.deactivatedAt !== null) {
      return matrixError(401, 'M_UNKNOWN_TOKEN', 'Invalid access token passed.');
    }
    return reply(200, { user_id: `@${user.username}:${this.domain}`, device_id: `DEVICE${session.id.slice(-6)}`, is_guest: false });
  }
}
