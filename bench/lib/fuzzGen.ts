// The fuzzer's request generator: hostile SCIM requests from a seeded PRNG, mixed with valid
// creates, updates and deletes so that state accumulates (users, groups, emails to clash
// with). The same seed gives the same sequence of choices; the ids in later requests are the
// ones the bridge handed out, which observe() learns from the responses.
//
// Pure with respect to I/O: next() builds a request, observe() takes its response. The
// runner (fuzzRun.ts) sends them.

import { Prng } from './prng.ts';

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const MATRIX_EXT = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const SEARCH_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

/** How the request authenticates. */
export type AuthMode = { kind: 'valid' } | { kind: 'none' } | { kind: 'header'; value: string };

/** A request sent byte by byte over a socket, for what an HTTP client refuses to send. */
export interface RawShape {
  /** The Content-Length header's value as written; undefined: the body's true length. */
  contentLength?: string;
  /** Extra header lines, written as given (may be malformed). */
  extraLines?: string[];
  /** Send the body with Transfer-Encoding: chunked, these exact bytes. */
  chunkedBody?: string;
  /** The request line's HTTP version (default HTTP/1.1). */
  version?: string;
  /** No answer is a correct outcome (e.g. a Content-Length larger than the body: the server waits for the rest). */
  mayHang?: boolean;
  /** Closing without an answer is a correct outcome (CONNECT: Node's server drops it unless it handles tunnels). */
  mayDrop?: boolean;
}

export interface FuzzRequest {
  index: number;
  /** What the request exercises, e.g. "user.create.hostile" (for the per-kind table). */
  kind: string;
  method: string;
  /** Under the SCIM base (…/scim/v2), or from the server root when `rooted`. */
  target: string;
  rooted?: boolean;
  /** Lower-case names; content-type defaults to application/scim+json when there is a body. */
  headers: Record<string, string>;
  auth: AuthMode;
  body?: string;
  raw?: RawShape;
  /** What observe() should learn from a success. */
  track?: Track;
}

type Track =
  | { op: 'createUser'; userName: string; emails: string[] }
  | { op: 'updateUser'; id: string }
  | { op: 'deleteUser'; id: string }
  | { op: 'createGroup'; displayName: string }
  | { op: 'updateGroup'; id: string }
  | { op: 'deleteGroup'; id: string }
  | { op: 'bulk' };

export interface FuzzResponseView {
  status: number | undefined;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

interface KnownUser {
  id: string;
  userName: string;
  emails: string[];
  etag: string | undefined;
}

interface KnownGroup {
  id: string;
  displayName: string;
  etag: string | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * encodeURIComponent that does not throw on lone surrogates: they are written as the bytes a
 * lenient UTF-8 encoder would produce (WTF-8, e.g. %ED%A0%80), which is invalid UTF-8 on the
 * wire — exactly the kind of input a fuzzer should send.
 */
export function enc(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (code >= 0xd800 && code <= 0xdfff) {
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    } else out += encodeURIComponent(ch);
  }
  return out;
}

/** Sets `key` as an own, enumerable property, even `__proto__` (which plain assignment would treat as the prototype). */
function setOwn(target: JsonObject, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const PROTO_BAIT = '{"__proto__":{"admin":true,"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}}';

/** Characters that make strings interesting for JSON, SQLite, Python and Synapse alike. */
const NASTY_CHARS = [
  '\u0000', '\u0001', '\u0007', '\u001b', '\u001f', '\u007f', '\u0085', '\u00a0', '\u2028', '\u2029',
  '\ud800', '\udbff', '\udc00', '\udfff', '\ufeff', '\ufffe', '\uffff', '\u202e', '\u200b', '\u200d',
  '😀', '𝔘', 'İ', 'ı', 'ß', 'ﬀ', 'ǅ', 'Ω', 'ё', '中', 'ﷺ', 'e\u0301', '\u0300', '%', '_', '\\', '"', "'", '\n', '\r', '\t',
] as const;

/**
 * Local parts that different case rules (JavaScript's, Python's casefold, Synapse's
 * canonicalise_email) may or may not see as one address: the first user to claim one holds it,
 * and a later claim must be a 409, never a silent move of the address on the homeserver.
 */
const COLLIDING_LOCALS = [
  'ss', 'SS', 'ß', 'ẞ', 'ſſ', 'ꭰbc', 'Ꭰbc', 'ᏸa', 'Ᏸa', 'σx', 'ςx', 'Σx', 'k', 'K', '\u212a', 'ﬃ', 'ffi', 'FFI', 'ǆ', 'ǅ', 'Ǆ', 'i\u0307', 'İ', 'ı',
] as const;

const TRICKY_STRINGS = [
  '', ' ', '   \t  ', '\u0000', 'a\u0000b', '\ud800', 'x\udbffy', '\udc00\ud800', 'end\ud83d', '\u0001\u0002\u001f\u007f',
  '\r\n\r\n', '\u2028\u2029', '\u202eevil', '\u200b', '\ufeffbom', 'İstanbul', 'STRASSE ß', 'ﬀ ligature', 'e\u0301\u0301\u0301',
  '😀😀', "' OR '1'='1", '%', '_', '%_\\', '\\', '"', "'", '`', '../../etc/passwd', '<script>alert(1)</script>',
  '{"a":1}', 'null', 'true', 'false', '[]', '1e309', 'NaN', '-0', '__proto__', 'constructor', 'prototype', 'toString',
  'hasOwnProperty', 'valueOf', 'mxc://', 'mxc://evil/../x', 'http://127.0.0.1:1/x.png', 'javascript:alert(1)',
  'bulkId:nothing', 'W/"1"', '*', 'urn:ietf:params:scim:schemas:core:2.0:User:userName', '@admin:e2e.localhost',
] as const;

export interface GeneratorOptions {
  seed: number;
  /** Prefix of the names this run makes, so that runs on one homeserver do not collide. */
  prefix?: string;
}

export class FuzzGenerator {
  readonly #rng: Prng;
  readonly prefix: string;
  #index = 0;
  #n = 0;
  readonly #users: KnownUser[] = [];
  readonly #deadUsers: string[] = [];
  readonly #deadUserNames: string[] = [];
  readonly #groups: KnownGroup[] = [];
  readonly #deadGroups: string[] = [];
  readonly #emails: string[] = [];
  readonly #deep = new Map<string, string>();

  constructor(options: GeneratorOptions) {
    this.#rng = new Prng(options.seed);
    this.prefix = options.prefix ?? `fz${(options.seed >>> 0).toString(36)}`;
  }

  get liveUsers(): number {
    return this.#users.length;
  }

  get liveGroups(): number {
    return this.#groups.length;
  }

  /** The next request. */
  next(): FuzzRequest {
    const r = this.#rng;
    const index = this.#index++;
    // Early on, mostly valid creates, so that the hostile requests have targets.
    const warmup = this.#users.length < 5;
    const kind = warmup && r.chance(0.7)
      ? 'user.create.valid'
      : r.weighted<string>([
          [14, 'user.create.valid'],
          [13, 'user.create.hostile'],
          [7, 'user.put'],
          [15, 'user.patch'],
          [3, 'user.delete'],
          [3, 'user.get'],
          [9, 'filter'],
          [4, 'query'],
          [3, 'group.create'],
          [5, 'group.patch'],
          [1, 'group.put'],
          [1, 'group.delete'],
          [6, 'headers'],
          [3, 'raw'],
          [5, 'bulk'],
          [4, 'json'],
          [2, 'misc'],
        ]);
    const req = this.#build(kind);
    return { ...req, index };
  }

  #build(kind: string): Omit<FuzzRequest, 'index'> {
    switch (kind) {
      case 'user.create.valid':
        return this.#createUser(false);
      case 'user.create.hostile':
        return this.#createUser(true);
      case 'user.put':
        return this.#putUser();
      case 'user.patch':
        return this.#patchUser();
      case 'user.delete':
        return this.#deleteUser();
      case 'user.get':
        return this.#getUser();
      case 'filter':
        return this.#filterRequest();
      case 'query':
        return this.#queryRequest();
      case 'group.create':
        return this.#createGroup();
      case 'group.patch':
        return this.#patchGroup();
      case 'group.put':
        return this.#putGroup();
      case 'group.delete':
        return this.#deleteGroup();
      case 'headers':
        return this.#headerRequest();
      case 'raw':
        return this.#rawRequest();
      case 'bulk':
        return this.#bulkRequest();
      case 'json':
        return this.#jsonRequest();
      default:
        return this.#miscRequest();
    }
  }

  /** Learns ids, ETags and deletions from a response. */
  observe(req: FuzzRequest, res: FuzzResponseView): void {
    const track = req.track;
    if (!track || res.status === undefined) return;
    const etag = typeof res.headers['etag'] === 'string' ? res.headers['etag'] : undefined;
    const body = parseObject(res.text);
    switch (track.op) {
      case 'createUser':
        if (res.status === 201 && body && typeof body['id'] === 'string') {
          this.#users.push({ id: body['id'], userName: track.userName, emails: track.emails, etag });
          this.#emails.push(...track.emails);
        }
        break;
      case 'updateUser': {
        const user = this.#users.find((u) => u.id === track.id);
        if (user && res.status === 200) user.etag = etag;
        if (res.status === 404) this.#forgetUser(track.id);
        break;
      }
      case 'deleteUser':
        if (res.status === 204 || res.status === 404) this.#forgetUser(track.id);
        break;
      case 'createGroup':
        if (res.status === 201 && body && typeof body['id'] === 'string') {
          this.#groups.push({ id: body['id'], displayName: track.displayName, etag });
        }
        break;
      case 'updateGroup': {
        const group = this.#groups.find((g) => g.id === track.id);
        if (group && (res.status === 200 || res.status === 204)) group.etag = etag;
        if (res.status === 404) this.#forgetGroup(track.id);
        break;
      }
      case 'deleteGroup':
        if (res.status === 204 || res.status === 404) this.#forgetGroup(track.id);
        break;
      case 'bulk':
        if (res.status === 200 && body && Array.isArray(body['Operations'])) {
          for (const op of body['Operations']) {
            if (!isObject(op) || op['status'] !== '201' || typeof op['location'] !== 'string') continue;
            const m = /\/(Users|Groups)\/([^/]+)$/.exec(op['location']);
            if (!m || !m[2]) continue;
            if (m[1] === 'Users') this.#users.push({ id: m[2], userName: '(bulk)', emails: [], etag: undefined });
            else this.#groups.push({ id: m[2], displayName: '(bulk)', etag: undefined });
          }
        }
        break;
    }
  }

  #forgetUser(id: string): void {
    const i = this.#users.findIndex((u) => u.id === id);
    const user = this.#users[i];
    if (user) {
      this.#users.splice(i, 1);
      this.#deadUsers.push(id);
      this.#deadUserNames.push(user.userName);
    }
  }

  #forgetGroup(id: string): void {
    const i = this.#groups.findIndex((g) => g.id === id);
    if (i >= 0) {
      this.#groups.splice(i, 1);
      this.#deadGroups.push(id);
    }
  }

  // ---- values ----

  /**
   * `[[[…]]]` or `{"a":{"a":…}}` `depth` levels deep. Deeper than JSON.stringify can take, so it
   * is a placeholder that #json() replaces with the nested text.
   */
  #deepNest(depth: number, arrays: boolean): Json {
    const token = `\u0000deep${this.#deep.size}:${this.#index}\u0000`;
    this.#deep.set(token, `${(arrays ? '[' : '{"a":').repeat(depth)}"bottom"${(arrays ? ']' : '}').repeat(depth)}`);
    return token;
  }

  /** JSON.stringify, with the deep-nesting placeholders replaced by their text. */
  #json(value: Json): string {
    let text = JSON.stringify(value);
    for (const [token, raw] of this.#deep) text = text.split(JSON.stringify(token)).join(raw);
    this.#deep.clear();
    return text;
  }

  #uuid(): string {
    const r = this.#rng;
    const hex = (n: number) => Array.from({ length: n }, () => r.int(0, 15).toString(16)).join('');
    return `${hex(8)}-${hex(4)}-4${hex(3)}-${r.pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`;
  }

  #hugeString(min = 10_000, max = 100_000): string {
    const r = this.#rng;
    const length = r.int(min, max);
    const style = r.int(0, 3);
    if (style === 0) return 'a'.repeat(length);
    if (style === 1) return r.pick(NASTY_CHARS).repeat(Math.ceil(length / 2)).slice(0, length);
    if (style === 2) {
      const unit = Array.from({ length: 16 }, () => r.pick(NASTY_CHARS)).join('');
      return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
    }
    return 'é😀'.repeat(Math.ceil(length / 3));
  }

  /** A string meant to hurt: control characters, lone surrogates, huge, blank, look-alikes. */
  #hostileString(): string {
    const r = this.#rng;
    return r.weighted<() => string>([
      [6, () => r.pick(TRICKY_STRINGS)],
      [4, () => Array.from({ length: r.int(1, 12) }, () => r.pick(NASTY_CHARS)).join('')],
      [3, () => `fuzz${r.pick(NASTY_CHARS)}${r.int(0, 999)}${r.pick(NASTY_CHARS)}`],
      [1, () => this.#hugeString()],
    ])();
  }

  /** A value of the wrong JSON type, or a hostile string. */
  #hostileValue(depth = 0): Json {
    const r = this.#rng;
    return r.weighted<() => Json>([
      [5, () => this.#hostileString()],
      [2, () => r.pick([0, -1, 1.5, 1e308, -1e-308, 9007199254740993, 2147483648, -0])],
      [2, () => r.pick([true, false])],
      [3, () => null],
      [2, () => r.pick<Json>([[], [null], {}, [''], [1, 'a', null], { value: null }, { value: 'x' }])],
      [1, () => (depth < 2 ? { value: this.#hostileValue(depth + 1), display: this.#hostileValue(depth + 1) } : 'x')],
      [1, () => (depth < 2 ? Array.from({ length: r.int(1, 5) }, () => this.#hostileValue(depth + 1)) : 'y')],
      [1, () => this.#deepNest(r.int(50, 2000), r.chance(0.5))],
      [1, () => JSON.parse(PROTO_BAIT) as Json],
    ])();
  }

  #email(n: number, k: number): string {
    return `${this.prefix}.u${n}.${k}@example.com`;
  }

  #phone(n: number, k: number): string {
    return `+49 30 ${String(n * 10 + k).padStart(7, '0')}`;
  }

  #knownUser(): KnownUser | undefined {
    return this.#users.length > 0 ? this.#rng.pick(this.#users) : undefined;
  }

  #knownGroup(): KnownGroup | undefined {
    return this.#groups.length > 0 ? this.#rng.pick(this.#groups) : undefined;
  }

  /** An id for a request to act on: mostly a live user, sometimes a deleted, unknown or odd one. */
  #userId(): string {
    const r = this.#rng;
    const live = this.#knownUser();
    return r.weighted<() => string>([
      [80, () => live?.id ?? this.#uuid()],
      [6, () => (this.#deadUsers.length > 0 ? r.pick(this.#deadUsers) : this.#uuid())],
      [6, () => this.#uuid()],
      [8, () => r.pick(['', ' ', '..', '%', '\u0000', '\ud800', 'null', 'undefined', '__proto__', 'a'.repeat(5000), '*', "1' OR '1'='1", 'Users', '🙂'])],
    ])();
  }

  #groupId(): string {
    const r = this.#rng;
    const live = this.#knownGroup();
    return r.weighted<() => string>([
      [80, () => live?.id ?? this.#uuid()],
      [6, () => (this.#deadGroups.length > 0 ? r.pick(this.#deadGroups) : this.#uuid())],
      [8, () => this.#uuid()],
      [6, () => r.pick(['', '..', '%', '\u0000', '\ud800', '__proto__', 'x'.repeat(3000)])],
    ])();
  }

  // ---- users ----

  /** A valid user document, with a fresh userName and fresh identifiers. */
  #validUser(): { doc: JsonObject; userName: string; emails: string[] } {
    const r = this.#rng;
    const n = this.#n++;
    const userName = r.weighted<string>([
      [6, `${this.prefix}.u${n}@example.com`],
      [1, `${this.prefix.toUpperCase()}.U${n}@Example.COM`],
      [1, `${this.prefix}.u${n}`],
      [1, `${this.prefix}.José-Ñúñez.${n}@example.com`],
      [1, `${this.prefix} u${n} with spaces@example.com`],
    ]);
    const schemas: string[] = [CORE_USER];
    const doc: JsonObject = { schemas, userName };
    if (r.chance(0.8)) doc['displayName'] = r.pick([`Fuzz User ${n}`, `Zoë Ångström ${n}`, `李小龍 ${n}`, `O'Brien, Seán ${n}`, ` padded ${n} `]);
    if (r.chance(0.5)) doc['name'] = { givenName: `Given${n}`, familyName: `Family${n}`, ...(r.chance(0.3) ? { formatted: `Given${n} Family${n}` } : {}) };
    const emails: string[] = [];
    const emailCount = r.weighted<number>([[2, 0], [6, 1], [2, 2], [1, 3]]);
    if (emailCount > 0) {
      const list: Json[] = [];
      for (let k = 0; k < emailCount; k++) {
        const value = this.#email(n, k);
        emails.push(value);
        list.push({ value: k === 0 && r.chance(0.2) ? value.toUpperCase() : value, type: r.pick(['work', 'home', 'other']), primary: k === 0 });
      }
      doc['emails'] = list;
    }
    if (r.chance(0.3)) doc['phoneNumbers'] = [{ value: this.#phone(n, 0), type: 'mobile' }];
    if (r.chance(0.15)) doc['active'] = false;
    else if (r.chance(0.5)) doc['active'] = true;
    if (r.chance(0.5)) doc['password'] = `Fz-${n}-${r.u32().toString(36)}`;
    if (r.chance(0.4)) doc['externalId'] = `ext-${this.prefix}-${n}`;
    if (r.chance(0.3)) doc['title'] = r.pick(['Engineer', 'Chef de cuisine', '']);
    if (r.chance(0.2)) doc['photos'] = [{ value: `mxc://example.org/${this.prefix}avatar${n}`, type: 'photo', primary: true }];
    if (r.chance(0.03)) doc['photos'] = [{ value: 'http://127.0.0.1:9/nothing.png', type: 'photo' }];
    if (r.chance(0.25)) {
      schemas.push(ENTERPRISE);
      const manager = this.#knownUser();
      doc[ENTERPRISE] = { department: `Dept ${n % 7}`, ...(manager && r.chance(0.5) ? { manager: { value: manager.id } } : {}) };
    }
    if (r.chance(0.15)) {
      schemas.push(MATRIX_EXT);
      doc[MATRIX_EXT] = { displayName: `Matrix Name ${n}` };
    }
    return { doc, userName, emails };
  }

  /** Mutates a user document in a hostile way; returns what it did. */
  #mutateUser(doc: JsonObject): string {
    const r = this.#rng;
    const existing = this.#knownUser();
    const mutation = r.weighted<string>([
      [6, 'wrongType'],
      [4, 'huge'],
      [5, 'multiValued'],
      [3, 'schemas'],
      [3, 'dupUserName'],
      [3, 'dupEmail'],
      [5, 'userName'],
      [2, 'active'],
      [1, 'dropRequired'],
      [2, 'caseKeys'],
      [1, 'deep'],
      [1, 'proto'],
      [2, 'readOnly'],
      [2, 'externalId'],
      [2, 'password'],
      [3, 'controlChars'],
      [2, 'extension'],
      [1, 'photos'],
    ]);
    switch (mutation) {
      case 'wrongType': {
        const attr = r.pick(['userName', 'displayName', 'nickName', 'title', 'name', 'emails', 'phoneNumbers', 'active', 'password', 'externalId',
          'locale', 'timezone', 'profileUrl', 'preferredLanguage', 'userType', 'photos', 'addresses', 'ims', 'roles', 'entitlements', 'x509Certificates']);
        doc[attr] = this.#hostileValue();
        return `wrongType:${attr}`;
      }
      case 'huge': {
        const target = r.pick(['userName', 'displayName', 'password', 'email', 'givenName', 'title', 'externalId', 'phone', 'matrixDisplayName']);
        const huge = this.#hugeString();
        if (target === 'email') doc['emails'] = [{ value: `${huge.replace(/[\s@]/g, 'x')}@example.com`, primary: true }];
        else if (target === 'givenName') doc['name'] = { givenName: huge };
        else if (target === 'phone') doc['phoneNumbers'] = [{ value: `+1${'5'.repeat(huge.length)}` }];
        else if (target === 'matrixDisplayName') doc[MATRIX_EXT] = { displayName: huge };
        else doc[target] = huge;
        return `huge:${target}`;
      }
      case 'multiValued': {
        const attr = r.pick(['emails', 'phoneNumbers', 'photos', 'addresses', 'ims', 'roles', 'entitlements', 'x509Certificates']);
        doc[attr] = this.#badMultiValued();
        return `multiValued:${attr}`;
      }
      case 'schemas':
        doc['schemas'] = r.pick<Json>([
          [], ['urn:foo:bar'], CORE_USER, [null], [1], [CORE_USER, 'urn:ietf:params:scim:schemas:extension:unknown:2.0:User'],
          [CORE_GROUP], [CORE_USER.toUpperCase()], [`${CORE_USER}\u0000`], {}, null, [CORE_USER, CORE_USER], ['\ud800'],
        ]);
        if (r.chance(0.3)) doc['urn:ietf:params:scim:schemas:extension:unknown:2.0:User'] = { foo: this.#hostileValue() };
        return 'schemas';
      case 'dupUserName':
        if (this.#deadUserNames.length > 0 && r.chance(0.3)) doc['userName'] = r.pick(this.#deadUserNames);
        else if (existing) {
          doc['userName'] = r.pick([existing.userName, existing.userName.toUpperCase(), ` ${existing.userName} `, existing.userName.replace('@example.com', '@other.org')]);
        }
        return 'dupUserName';
      case 'dupEmail': {
        const email = this.#emails.length > 0 ? r.pick(this.#emails) : 'someone@example.com';
        doc['emails'] = [{ value: r.chance(0.5) ? email.toUpperCase() : email, primary: true }];
        return 'dupEmail';
      }
      case 'userName':
        doc['userName'] = r.pick<Json>([
          '', ' ', '@example.com', '...', '___', '@', '-', '=', 'a'.repeat(300), `${this.prefix}${'b'.repeat(250)}`,
          'admin', 'ADMIN@example.com', 'scim-bridge', 'scim-bridge@example.com', `José.${this.#n}`, `İ${this.#n}.${this.prefix}`,
          `ß${this.#n}.${this.prefix}`, `ﬀ${this.#n}.${this.prefix}`, `${this.prefix}.u${this.#n}\u0000`, `\ud800${this.prefix}${this.#n}`,
          `${this.prefix}\u202e${this.#n}`, `${this.prefix}😀${this.#n}`, `${this.prefix}:${this.#n}`, `@${this.prefix}${this.#n}:e2e.localhost`,
          `${this.prefix}/${this.#n}`, `${this.prefix}\n${this.#n}`, 123, null, true, {}, [], ['a'], this.#hostileString(),
        ]);
        this.#n++;
        return 'userName';
      case 'active':
        doc['active'] = r.pick<Json>(['false', 'False', 'TRUE', 'yes', '', 0, 1, null, [], {}, 'true ']);
        return 'active';
      case 'dropRequired':
        if (r.chance(0.5)) delete doc['userName'];
        else delete doc['schemas'];
        return 'dropRequired';
      case 'caseKeys': {
        const userName = doc['userName'] ?? null;
        delete doc['userName'];
        doc[r.pick(['USERNAME', 'username', 'UserName', 'userName ', 'user_name'])] = userName;
        if (r.chance(0.5)) doc['DisplayName'] = this.#hostileString();
        if (r.chance(0.5)) doc['EMAILS'] = [{ VALUE: this.#email(this.#n, 9), Primary: 'true' }];
        return 'caseKeys';
      }
      case 'deep':
        doc[r.pick(['nickName', 'name', 'addresses', 'urn:x:y', ENTERPRISE])] = this.#deepNest(r.int(100, 5000), r.chance(0.5));
        return 'deep';
      case 'proto':
        for (const [key, value] of Object.entries(JSON.parse(PROTO_BAIT) as JsonObject)) setOwn(doc, key, value);
        if (r.chance(0.5)) doc['hasOwnProperty'] = 'x';
        return 'proto';
      case 'readOnly':
        doc[r.pick(['id', 'meta', 'groups'])] = r.pick<Json>([
          'client-chosen-id', { version: 'W/"99"', created: 'yesterday', resourceType: 'Group' }, [{ value: this.#knownGroup()?.id ?? 'g' }],
        ]);
        if (r.chance(0.3)) doc[MATRIX_EXT] = { matrixId: '@admin:e2e.localhost', displayName: 'Hijack' };
        return 'readOnly';
      case 'externalId':
        doc['externalId'] = r.pick<Json>([`ext-${this.prefix}-${r.int(0, Math.max(0, this.#n - 1))}`, '', ' ', this.#hostileString(), 5, null]);
        return 'externalId';
      case 'password':
        doc['password'] = r.pick<Json>(['', ' ', '\u0000', 'a', this.#hugeString(), 12345678, null, ['x'], { value: 'y' }, '\ud800pass', 'pässwörd😀']);
        return 'password';
      case 'controlChars': {
        const attr = r.pick(['displayName', 'nickName', 'title', 'userName']);
        const base = typeof doc[attr] === 'string' ? (doc[attr] as string) : `${this.prefix}c${this.#n++}`;
        doc[attr] = `${base}${Array.from({ length: r.int(1, 4) }, () => r.pick(NASTY_CHARS)).join('')}`;
        return `controlChars:${attr}`;
      }
      case 'extension':
        doc[r.pick([ENTERPRISE, MATRIX_EXT])] = r.pick<Json>([
          'string', [1, 2], null, { displayName: this.#hostileValue() }, { manager: 'not-an-object' }, { manager: { value: this.#hostileValue() } },
          { department: { nested: true } }, { employeeNumber: 42 }, {},
        ]);
        return 'extension';
      default:
        doc['photos'] = r.pick<Json>([
          [{ value: `mxc://${this.#hugeString(2000, 5000)}` }], [{ value: 'ftp://example.org/x.png' }], [{ value: 'file:///etc/passwd' }],
          [{ value: 'mxc://' }], [{ value: 'http://169.254.169.254/latest/meta-data' }], [{ value: 'mxc://a/b\u0000' }], [{ value: 'mxc://e\ud800/x' }],
        ]);
        return 'photos';
    }
  }

  #badMultiValued(): Json {
    const r = this.#rng;
    const n = this.#n++;
    return r.pick<() => Json>([
      () => 'a-plain-string@example.com',
      () => ({}),
      () => [],
      () => [null],
      () => [''],
      () => [{}],
      () => [{ value: '' }],
      () => [{ value: ' ' }],
      () => [{ value: null }],
      () => [{ value: 123 }],
      () => [{ type: 'work' }],
      () => [{ value: this.#email(n, 0), primary: 'yes' }],
      () => [{ value: this.#email(n, 0), primary: true }, { value: this.#email(n, 1), primary: true }],
      () => Array.from({ length: r.int(100, 400) }, (_, k) => ({ value: this.#email(n, k) })),
      () => [{ value: this.#hostileString() }],
      () => [['nested']],
      () => [{ value: 'not-an-email' }],
      () => [{ value: `A.${this.#email(n, 0).toUpperCase()}` }, { value: `a.${this.#email(n, 0)}` }],
      () => [{ value: `${this.prefix}.ß${n}@example.com` }],
      () => [{ value: `${this.prefix}.İ${n}@example.com` }],
      () => [{ value: `${this.prefix}.${n}@exämple.com` }],
      () => [{ value: `${this.prefix}.\u212a${n}@example.com` }],
      () => [{ value: `${this.prefix}.\u017f${n}@example.com` }],
      () => [{ value: `${this.prefix}.\ufb03${n}@EXAMPLE.com` }],
      () => [{ value: `${this.prefix}.\u01c5${n}@example.com` }],
      () => [{ value: ` ${this.prefix}.padded${n}@example.com ` }],
      () => [{ value: `${this.prefix}.${r.pick(COLLIDING_LOCALS)}@${r.pick(['example.com', 'EXAMPLE.com'])}` }],
      () => [{ value: `${this.prefix}.${r.pick(COLLIDING_LOCALS)}@example.com` }, { value: `${this.prefix}.${r.pick(COLLIDING_LOCALS)}@example.com` }],
      () => [{ value: `${this.prefix}.${n}@Example.COM` }, { value: `${this.prefix}.${n}@example.com` }],
      () => [{ value: `tel:+1-555-${String(n).padStart(4, '0')}` }],
      () => [{ value: '12' }],
      () => [{ value: `${this.prefix}${n}@example.com\u0000` }],
      () => [{ value: `\ud800${n}@example.com` }],
      () => [{ value: `${n}@example.com`, display: this.#hostileValue(), type: this.#hostileValue() }],
    ])();
  }

  #createUser(hostile: boolean): Omit<FuzzRequest, 'index'> {
    const { doc, userName, emails } = this.#validUser();
    let kind = 'user.create.valid';
    if (hostile) {
      for (let i = this.#rng.int(1, 3); i > 0; i--) this.#mutateUser(doc);
      kind = 'user.create.hostile';
    }
    const finalUserName = typeof doc['userName'] === 'string' ? doc['userName'] : userName;
    const finalEmails = Array.isArray(doc['emails'])
      ? doc['emails'].flatMap((e) => (isObject(e) && typeof e['value'] === 'string' ? [e['value'].toLowerCase()] : []))
      : emails;
    return {
      kind,
      method: 'POST',
      target: '/Users',
      headers: {},
      auth: { kind: 'valid' },
      body: this.#json(doc),
      track: { op: 'createUser', userName: finalUserName, emails: finalEmails },
    };
  }

  #putUser(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const target = this.#knownUser();
    const id = r.chance(0.85) && target ? target.id : this.#userId();
    const { doc } = this.#validUser();
    if (target && id === target.id && r.chance(0.7)) {
      doc['userName'] = r.chance(0.9) ? target.userName : `${target.userName}.renamed`;
      if (target.emails.length > 0 && r.chance(0.5)) doc['emails'] = target.emails.map((value, k) => ({ value, primary: k === 0 }));
    }
    if (r.chance(0.6)) for (let i = r.int(1, 3); i > 0; i--) this.#mutateUser(doc);
    const headers: Record<string, string> = {};
    if (target?.etag && r.chance(0.2)) headers['if-match'] = target.etag;
    return {
      kind: 'user.put',
      method: 'PUT',
      target: `/Users/${enc(id)}`,
      headers,
      auth: { kind: 'valid' },
      body: this.#json(doc),
      track: { op: 'updateUser', id },
    };
  }

  // ---- PATCH ----

  #validUserOp(): JsonObject {
    const r = this.#rng;
    const n = this.#n++;
    const user = this.#knownUser();
    return r.pick<() => JsonObject>([
      () => ({ op: 'replace', path: 'displayName', value: `Patched ${n}` }),
      () => ({ op: 'Replace', path: 'active', value: r.pick<Json>([true, false, 'False', 'True']) }),
      () => ({ op: 'add', path: 'emails', value: [{ value: this.#email(n, 0), type: 'work' }] }),
      () => ({ op: 'remove', path: `emails[value eq "${user?.emails[0] ?? this.#email(n, 0)}"]` }),
      () => ({ op: 'replace', path: 'emails[type eq "work"].value', value: this.#email(n, 1) }),
      () => ({ op: 'replace', path: 'name.givenName', value: `G${n}` }),
      () => ({ op: 'replace', value: { displayName: `NoPath ${n}`, active: r.chance(0.5), 'name.familyName': `F${n}`, [`${ENTERPRISE}:department`]: `D${n}` } }),
      () => ({ op: 'add', path: 'phoneNumbers', value: [{ value: this.#phone(n, 1), type: 'work' }] }),
      () => ({ op: 'add', path: 'emails', value: [{ value: `${this.prefix}.${r.pick(COLLIDING_LOCALS)}@example.com` }] }),
      () => ({ op: 'replace', path: 'userName', value: `${this.prefix}.renamed${n}@example.com` }),
      () => ({ op: 'remove', path: 'displayName' }),
      () => ({ op: 'add', path: `${ENTERPRISE}:manager`, value: { value: this.#knownUser()?.id ?? 'nobody' } }),
      () => ({ op: 'replace', path: `${MATRIX_EXT}:displayName`, value: `MX ${n}` }),
      () => ({ op: 'replace', path: 'password', value: `New-Pass-${n}` }),
      () => ({ op: 'replace', path: 'emails', value: [{ value: this.#email(n, 2), primary: true }] }),
      () => ({ op: 'remove', path: 'emails' }),
      () => ({ op: 'add', path: 'photos', value: [{ value: `mxc://example.org/p${n}`, primary: true }] }),
      () => ({ op: 'replace', path: `${CORE_USER}:displayName`, value: `Urn ${n}` }),
    ])();
  }

  #oddPath(): Json {
    const r = this.#rng;
    return r.pick<() => Json>([
      () => 'members[value eq "x"]',
      () => 'members',
      () => 'emails[type eq "work" and value co "@"].value',
      () => 'emails[not (type eq "work")].value',
      () => 'emails[value eq "unterminated]',
      () => 'emails[]',
      () => 'emails[',
      () => 'emails]',
      () => 'emails[type eq "work"].display.x',
      () => 'emails[type eq "work"][primary eq true]',
      () => 'name.givenName.x',
      () => 'name..givenName',
      () => 'a.b.c.d.e.f',
      () => `${CORE_USER}:emails[type eq "work"].value`,
      () => `${ENTERPRISE}:manager.value`,
      () => `${ENTERPRISE}:manager.displayName`,
      () => `${MATRIX_EXT}:matrixId`,
      () => 'urn:unknown:attr',
      () => 'urn:',
      () => ':',
      () => '.',
      () => '',
      () => ' ',
      () => 'emails.value',
      () => 'emails[primary eq true].primary',
      () => 'x509Certificates',
      () => 'groups',
      () => 'id',
      () => 'meta.lastModified',
      () => 'meta',
      () => 'schemas',
      () => '__proto__',
      () => '__proto__.polluted',
      () => 'constructor.prototype.polluted',
      () => 'name.__proto__',
      () => `emails[${filterChain(r, r.int(2, 60), 'or')}].value`,
      () => `emails[${'('.repeat(r.int(5, 60))}type eq "work"${')'.repeat(r.int(0, 60))}]`,
      () => `emails[${'not ('.repeat(r.int(2, 40))}type eq "x"${')'.repeat(r.int(0, 40))}]`,
      () => 'a'.repeat(r.int(1000, 20000)),
      () => `emails[value eq "${this.#hostileString()}"]`,
      () => `phoneNumbers[type eq "mobile"].value`,
      () => 'addresses[type eq "work"].streetAddress',
      () => 'userName[value eq "x"]',
      () => 'displayName.value',
      () => 'active.x',
      () => r.pick<Json>([null, 5, true, ['displayName'], { path: 'x' }]),
    ])();
  }

  #oddOp(): JsonObject {
    const r = this.#rng;
    const op: JsonObject = {};
    op[r.chance(0.9) ? 'op' : r.pick(['OP', 'Op', 'operation'])] = r.weighted<Json>([
      [6, r.pick(['add', 'replace', 'remove'])],
      [3, r.pick(['Add', 'REPLACE', 'Remove', ' add ', 'delete', 'copy', 'move', 'test', '', 'merge', 'ad\u0000d', '\ud800'])],
      [1, r.pick<Json>([null, 5, true, ['add'], { op: 'add' }])],
    ]);
    if (r.chance(0.85)) op['path'] = r.chance(0.6) ? this.#oddPath() : r.pick(['displayName', 'emails', 'active', 'name', 'userName', 'phoneNumbers', 'title', 'photos']);
    if (r.chance(0.8)) {
      op['value'] = r.weighted<Json>([
        [4, this.#hostileValue()],
        [2, this.#badMultiValued()],
        [1, { displayName: this.#hostileValue(), emails: this.#badMultiValued(), active: this.#hostileValue() }],
        [1, { [`${ENTERPRISE}:manager`]: this.#hostileValue(), 'name.givenName': this.#hostileValue(), 'unknown.attr': 1 }],
        [1, JSON.parse('{"__proto__":{"polluted":"yes"},"displayName":"proto"}') as Json],
      ]);
    }
    return op;
  }

  #patchBody(validOp: () => JsonObject, oddOp: () => JsonObject): string {
    const r = this.#rng;
    const ops: Json[] = [];
    const hostile = r.chance(0.65);
    for (let i = r.int(1, 4); i > 0; i--) ops.push(hostile && r.chance(0.7) ? oddOp() : validOp());
    const body: JsonObject = { schemas: [PATCH_OP], Operations: ops };
    if (hostile && r.chance(0.2)) {
      r.pick<() => void>([
        () => delete body['schemas'],
        () => (body['schemas'] = r.pick<Json>([[], ['urn:wrong'], PATCH_OP, [PATCH_OP.toLowerCase()], null, 5])),
        () => {
          body['operations'] = body['Operations'] ?? null;
          delete body['Operations'];
        },
        () => (body['Operations'] = r.pick<Json>([null, {}, 'add', [], [null], [[]], [1, 2], Array.from({ length: 500 }, () => validOp())])),
        () => delete body['Operations'],
      ])();
    }
    return this.#json(body);
  }

  #patchUser(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const id = this.#userId();
    const user = this.#users.find((u) => u.id === id);
    const headers: Record<string, string> = {};
    if (user?.etag && r.chance(0.15)) headers['if-match'] = r.chance(0.7) ? user.etag : 'W/"1"';
    const query = r.chance(0.1) ? `?attributes=${enc(r.pick(['userName', 'emails.value', 'bogus', `${MATRIX_EXT}:matrixId`, '']))}` : '';
    return {
      kind: 'user.patch',
      method: 'PATCH',
      target: `/Users/${enc(id)}${query}`,
      headers,
      auth: { kind: 'valid' },
      body: this.#patchBody(() => this.#validUserOp(), () => this.#oddOp()),
      track: { op: 'updateUser', id },
    };
  }

  #deleteUser(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const id = this.#userId();
    const user = this.#users.find((u) => u.id === id);
    const headers: Record<string, string> = {};
    if (r.chance(0.15)) headers['if-match'] = r.pick([user?.etag ?? 'W/"1"', 'W/"999"', 'garbage', '*', '""']);
    return { kind: 'user.delete', method: 'DELETE', target: `/Users/${enc(id)}`, headers, auth: { kind: 'valid' }, track: { op: 'deleteUser', id } };
  }

  #getUser(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const id = this.#userId();
    const headers: Record<string, string> = {};
    if (r.chance(0.2)) headers['if-none-match'] = r.pick(['W/"1"', '*', 'garbage', 'W/"1", W/"2"', '"1"', 'W/', `${'W/"1",'.repeat(500)}`]);
    const query = r.chance(0.4) ? `?${projectionQuery(r)}` : '';
    return { kind: 'user.get', method: 'GET', target: `/Users/${enc(id)}${query}`, headers, auth: { kind: 'valid' } };
  }

  // ---- filters and queries ----

  #filter(): string {
    const r = this.#rng;
    return r.weighted<() => string>([
      [5, () => filterAtom(r, this.#hostileString.bind(this))],
      [3, () => filterChain(r, r.int(2, 20), r.pick(['and', 'or', 'AND', 'Or']))],
      [2, () => filterChain(r, r.int(200, 1200), r.pick(['and', 'or']))],
      [2, () => `${'('.repeat(r.int(1, 50))}${filterAtom(r, this.#hostileString.bind(this))}${')'.repeat(r.int(0, 50))}`],
      [1, () => `${'('.repeat(r.int(1000, 20000))}userName eq "x"${')'.repeat(r.int(1000, 20000))}`],
      [2, () => `${'not ('.repeat(r.int(1, 50))}userName pr${')'.repeat(r.int(0, 50))}`],
      [1, () => `${'not ('.repeat(r.int(500, 5000))}userName pr`],
      [2, () => r.pick([
        '', ' ', 'userName', 'userName eq', 'eq "x"', 'userName eq "unterminated', 'userName eq "esc\\"', 'userName eq "bad\\escape"',
        'userName eq "\\u0000"', 'userName eq "\\ud800"', 'userName eq "x" and', 'or userName pr', 'userName pr pr', '()', '(', ')',
        'userName eq "a" and (displayName co "b" or', 'userName eq x y z', 'emails[type eq "work"', 'emails[type eq "work"]]',
        'emails[type eq "work"].value eq "a@b.c"', 'emails[value co "@"]', 'members[value eq "x"]', 'members.value eq "x"',
        'userName eq "x" and not (active eq true)', 'meta.created gt "2020-01-01T00:00:00Z"', 'meta.lastModified ge "not-a-date"',
        'meta.created gt 5', 'active eq "maybe"', 'active gt true', 'userName gt 5', 'emails co true', 'name eq "x"', 'emails eq "x"',
        'userName eq null', 'userName ne null', 'displayName eq ""', 'userName sw "%"', 'userName co "_"', 'userName ew "\\\\"',
        'id eq "x" or id eq "y"', `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Dept 1"`,
        `${MATRIX_EXT}:matrixId sw "@"`, `${CORE_USER}:userName pr`, 'urn:unknown:schema:attr eq 1', 'groups.value eq "x"',
        'x509Certificates.value pr', 'userName eq 1e999', 'userName eq -0', 'userName eq 01', 'userName eq .5', 'userName eq true',
        'userName EQ "X"', 'USERNAME eq "x"', 'userName == "x"', 'userName like "x"', 'userName eq "x"\u0000', '\ud800',
        'emails[type eq "work" and value co "@"].value sw "a"', 'emails[not (type eq "work")]', 'emails.value[type eq "work"]',
        'userName eq "x" ) or ( userName eq "y"', 'userName eq "x" or'.repeat(3), 'name.givenName.x eq "y"', 'name[givenName eq "x"]',
      ])],
      [1, () => `userName eq "${this.#hugeString(1000, 50000).replace(/"/g, '')}"`],
    ])();
  }

  #filterRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const filter = this.#filter();
    const via = r.weighted<string>([[4, 'get'], [3, 'search'], [1, 'root'], [2, 'groups'], [1, 'groupSearch']]);
    const extra = r.chance(0.3) ? `&${projectionQuery(r)}` : '';
    const searchBody = (): string => {
      const body: JsonObject = { schemas: [SEARCH_REQUEST], filter };
      if (r.chance(0.3)) body['startIndex'] = r.pick<Json>([1, 0, -5, '2', 1e308, null, 'x', 1.5]);
      if (r.chance(0.3)) body['count'] = r.pick<Json>([10, 0, -1, '5', 1e9, null, [], 1.5]);
      if (r.chance(0.2)) body['sortBy'] = r.pick<Json>(['userName', 'emails.value', 'meta.created', 'bogus', 5, '', 'emails[type eq "work"].value']);
      if (r.chance(0.2)) body['attributes'] = r.pick<Json>([['userName'], 'userName', [5], ['emails.value', 'bogus'], null]);
      if (r.chance(0.1)) body['filter'] = r.pick<Json>([5, null, [], { f: 1 }, true]);
      if (r.chance(0.05)) delete body['schemas'];
      return this.#json(body);
    };
    switch (via) {
      case 'get':
        return { kind: 'filter', method: 'GET', target: `/Users?filter=${enc(filter)}${extra}`, headers: {}, auth: { kind: 'valid' } };
      case 'groups':
        return { kind: 'filter', method: 'GET', target: `/Groups?filter=${enc(filter.replace(/userName/g, 'displayName'))}${extra}`, headers: {}, auth: { kind: 'valid' } };
      case 'search':
        return { kind: 'filter', method: 'POST', target: '/Users/.search', headers: {}, auth: { kind: 'valid' }, body: searchBody() };
      case 'groupSearch':
        return { kind: 'filter', method: 'POST', target: '/Groups/.search', headers: {}, auth: { kind: 'valid' }, body: searchBody() };
      default:
        return { kind: 'filter', method: 'POST', target: '/.search', headers: {}, auth: { kind: 'valid' }, body: searchBody() };
    }
  }

  #queryRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const params: string[] = [];
    const odd = ['-1', '0', '1', 'abc', '1e3', '99999999999999999999', '1.5', '', '%00', ' 5', '0x10', '-0', 'Infinity', 'NaN', '2147483648', '1000', '1001'];
    if (r.chance(0.7)) params.push(`${r.pick(['startIndex', 'startindex', 'STARTINDEX'])}=${enc(r.pick(odd))}`);
    if (r.chance(0.7)) params.push(`${r.pick(['count', 'Count'])}=${enc(r.pick(odd))}`);
    if (r.chance(0.2)) params.push(`count=${r.int(0, 5)}&count=${r.int(0, 5)}`);
    if (r.chance(0.4)) params.push(`sortBy=${enc(r.pick(['userName', 'displayName', 'emails.value', 'meta.created', 'meta.lastModified', 'name.givenName', 'bogus', '', 'emails', 'emails[type eq "work"].value', 'id', 'active', `${ENTERPRISE}:department`, 'members.value', '\ud800']))}`);
    if (r.chance(0.3)) params.push(`sortOrder=${enc(r.pick(['ascending', 'descending', 'DESC', 'x', '']))}`);
    if (r.chance(0.4)) params.push(projectionQuery(r));
    if (r.chance(0.1)) params.push(r.pick(['filter', 'filter=', 'sortBy=userName&sortBy=displayName', 'attributes=userName&attributes=emails', '%ZZ=1', 'a=%E0%A4%A', 'filter=%ZZ']));
    return {
      kind: 'query',
      method: 'GET',
      target: `${r.pick(['/Users', '/Users', '/Groups'])}?${params.join('&')}`,
      headers: {},
      auth: { kind: 'valid' },
    };
  }

  // ---- groups ----

  #memberList(): Json {
    const r = this.#rng;
    const live = Array.from({ length: r.int(0, Math.min(8, this.#users.length)) }, () => this.#knownUser()?.id).filter((id): id is string => !!id);
    return r.weighted<() => Json>([
      [8, () => live.map((value) => ({ value }))],
      [1, () => [...live.map((value) => ({ value })), { value: this.#uuid() }]],
      [1, () => (this.#deadUsers.length > 0 ? [{ value: r.pick(this.#deadUsers) }] : [])],
      [1, () => [{ display: 'no value' }]],
      [1, () => [{ value: '' }, { value: null }]],
      [1, () => [...live, ...live].map((value) => ({ value: r.chance(0.5) ? value.toUpperCase() : value }))],
      [1, () => [{ value: this.#knownGroup()?.id ?? 'g', type: 'Group' }]],
      [1, () => Array.from({ length: r.int(100, 600) }, () => ({ value: this.#uuid() }))],
      [1, () => this.#hostileValue()],
      [1, () => [{ value: 'bulkId:b1' }]],
    ])();
  }

  #createGroup(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const n = this.#n++;
    const displayName = `${this.prefix} Group ${n}`;
    const doc: JsonObject = { schemas: [CORE_GROUP], displayName, members: this.#memberList() };
    if (r.chance(0.3)) doc['externalId'] = `gext-${this.prefix}-${n}`;
    if (r.chance(0.4)) {
      r.pick<() => void>([
        () => (doc['displayName'] = this.#hostileValue()),
        () => (doc['displayName'] = this.#knownGroup()?.displayName ?? displayName),
        () => delete doc['displayName'],
        () => (doc['displayName'] = this.#hugeString(300, 70_000)),
        () => (doc['schemas'] = r.pick<Json>([[CORE_USER], [], 'x', null])),
        () => (doc['members'] = r.pick<Json>(['x', {}, null, [[]], 5])),
        () => setOwn(doc, '__proto__', { polluted: 'yes' }),
        () => (doc['displayName'] = `${displayName}${r.pick(NASTY_CHARS)}`),
      ])();
    }
    return {
      kind: 'group.create',
      method: 'POST',
      target: '/Groups',
      headers: {},
      auth: { kind: 'valid' },
      body: this.#json(doc),
      track: { op: 'createGroup', displayName: typeof doc['displayName'] === 'string' ? doc['displayName'] : displayName },
    };
  }

  #validGroupOp(): JsonObject {
    const r = this.#rng;
    const user = this.#knownUser();
    return r.pick<() => JsonObject>([
      () => ({ op: 'add', path: 'members', value: this.#memberList() }),
      () => ({ op: 'remove', path: `members[value eq "${user?.id ?? 'x'}"]` }),
      () => ({ op: 'remove', path: 'members' }),
      () => ({ op: 'replace', path: 'members', value: this.#memberList() }),
      () => ({ op: 'replace', path: 'displayName', value: `${this.prefix} Renamed ${this.#n++}` }),
      () => ({ op: 'replace', value: { displayName: `${this.prefix} NoPath ${this.#n++}`, members: this.#memberList() } }),
      () => ({ op: 'Add', value: { members: this.#memberList() } }),
      () => ({ op: 'remove', path: 'members', value: this.#memberList() }),
    ])();
  }

  #oddGroupOp(): JsonObject {
    const r = this.#rng;
    const op = this.#oddOp();
    if (r.chance(0.6)) {
      op['path'] = r.pick<Json>([
        'members[value eq "x"].display', 'members[display eq "x"]', 'members.value', `members[value eq "a" or value eq "b"]`,
        `members[value eq "${this.#hostileString()}"]`, 'members[value eq ', 'members[value pr]', 'members[type eq "User"]',
        'displayName', 'externalId', 'id', 'members[]', `members[${filterChain(r, r.int(5, 200), 'or').replace(/userName/g, 'value')}]`,
        'urn:ietf:params:scim:schemas:core:2.0:Group:members', 'urn:ietf:params:scim:schemas:core:2.0:Group:displayName', 'userName',
      ]);
    }
    return op;
  }

  #patchGroup(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const id = this.#groupId();
    const group = this.#groups.find((g) => g.id === id);
    const headers: Record<string, string> = {};
    if (group?.etag && r.chance(0.15)) headers['if-match'] = r.chance(0.7) ? group.etag : 'W/"0"';
    const query = r.chance(0.2) ? `?attributes=${enc(r.pick(['members', 'displayName', 'members.value', 'bogus']))}` : '';
    return {
      kind: 'group.patch',
      method: 'PATCH',
      target: `/Groups/${enc(id)}${query}`,
      headers,
      auth: { kind: 'valid' },
      body: this.#patchBody(() => this.#validGroupOp(), () => this.#oddGroupOp()),
      track: { op: 'updateGroup', id },
    };
  }

  #putGroup(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const id = this.#groupId();
    const group = this.#groups.find((g) => g.id === id);
    const doc: JsonObject = { schemas: [CORE_GROUP], displayName: group?.displayName ?? `${this.prefix} Put ${this.#n++}`, members: this.#memberList() };
    if (r.chance(0.4)) doc[r.pick(['displayName', 'members', 'externalId', 'schemas'])] = this.#hostileValue();
    return { kind: 'group.put', method: 'PUT', target: `/Groups/${enc(id)}`, headers: {}, auth: { kind: 'valid' }, body: this.#json(doc), track: { op: 'updateGroup', id } };
  }

  #deleteGroup(): Omit<FuzzRequest, 'index'> {
    const id = this.#groupId();
    return { kind: 'group.delete', method: 'DELETE', target: `/Groups/${enc(id)}`, headers: {}, auth: { kind: 'valid' }, track: { op: 'deleteGroup', id } };
  }

  // ---- headers, raw HTTP, JSON syntax ----

  #headerRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const base = r.pick<() => Omit<FuzzRequest, 'index'>>([
      () => this.#createUser(r.chance(0.3)),
      () => this.#patchUser(),
      () => this.#getUser(),
      () => this.#putUser(),
      () => this.#deleteUser(),
      () => ({ kind: '', method: 'GET', target: '/Users?count=2', headers: {}, auth: { kind: 'valid' } }),
      () => this.#patchGroup(),
    ])();
    const headers = { ...base.headers };
    let auth: AuthMode = base.auth;
    const tweak = r.weighted<string>([[3, 'contentType'], [3, 'ifMatch'], [4, 'auth'], [1, 'accept'], [1, 'encoding'], [1, 'odd']]);
    switch (tweak) {
      case 'contentType':
        headers['content-type'] = r.pick([
          'text/plain', 'application/json; charset=latin1', 'application/scim+json; charset=utf-16', 'multipart/form-data; boundary=x',
          'application/x-www-form-urlencoded', 'application/xml', '', ';', 'application/json; charset=', 'application/scim+json;;;',
          'a'.repeat(4000), 'application/json, text/plain',
        ]);
        break;
      case 'ifMatch':
        headers['if-match'] = r.pick(['garbage', '*', 'W/"1"', '"999"', 'W/', 'W/""', 'W/"1", W/"2"', `W/"${'9'.repeat(400)}"`, 'W/"-1"', 'W/"1.5"', 'W/"0x1"', '""', ',', 'W/"1"'.repeat(1000)]);
        break;
      case 'auth':
        auth = r.pick<AuthMode>([
          { kind: 'none' },
          { kind: 'header', value: 'Bearer' },
          { kind: 'header', value: 'Bearer ' },
          { kind: 'header', value: 'Basic dXNlcjpwYXNz' },
          { kind: 'header', value: 'Bearer wrong-token' },
          { kind: 'header', value: `Bearer ${'x'.repeat(6000)}` },
          { kind: 'header', value: 'Bearer a b' },
          { kind: 'header', value: 'Bearer\ttab' },
          { kind: 'header', value: 'bearer' },
          { kind: 'header', value: 'Negotiate abc' },
          { kind: 'header', value: 'Bearer é' },
        ]);
        break;
      case 'accept':
        headers['accept'] = r.pick(['text/html', '*/*', 'application/xml', '', 'application/scim+json;q=0', 'x'.repeat(3000)]);
        break;
      case 'encoding':
        headers['content-encoding'] = r.pick(['gzip', 'deflate', 'br', 'identity', 'bogus']);
        break;
      default:
        headers[r.pick(['x-http-method-override', 'x-forwarded-for', 'x-forwarded-proto', 'host', 'expect', 'range'])] = r.pick([
          'DELETE', '127.0.0.1, evil', 'gopher', 'evil.example', '100-continue', 'bytes=0-1',
        ]);
    }
    return { ...base, kind: `headers.${tweak}`, headers, auth };
  }

  #rawRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const { doc } = this.#validUser();
    const body = this.#json(doc);
    const len = Buffer.byteLength(body);
    const shape = r.weighted<() => { method?: string; target?: string; raw: RawShape; body?: string; rawKind: string }>([
      [3, () => ({ raw: { contentLength: String(len + r.int(1, 100)), mayHang: true }, rawKind: 'clLarger' })],
      [3, () => ({ raw: { contentLength: String(r.int(0, Math.max(0, len - 1))) }, rawKind: 'clSmaller' })],
      [2, () => ({ raw: { contentLength: r.pick(['abc', '-1', '1e3', ' 10', '0x10', '99999999999999999999', '', '+5']) }, rawKind: 'clInvalid' })],
      [1, () => ({ raw: { contentLength: String(len), extraLines: [`Content-Length: ${len + 1}`] }, rawKind: 'clDuplicate' })],
      [1, () => ({ raw: { chunkedBody: `${len.toString(16)}\r\n${body}\r\n0\r\n\r\n`, extraLines: [`Content-Length: ${len}`] }, rawKind: 'clAndChunked' })],
      [2, () => ({ raw: { chunkedBody: r.pick([`zz\r\n${body}\r\n0\r\n\r\n`, `${(len + 50).toString(16)}\r\n${body}\r\n0\r\n\r\n`, `${len.toString(16)}\r\n${body}`, `-1\r\n\r\n`]), mayHang: true }, rawKind: 'badChunks' })],
      [2, () => ({ raw: { extraLines: [r.pick(['X-Evil: a\u0000b', 'X-Evil: \u0001', 'Bad Header: x', ': empty-name', 'X-Fold: a\r\n  folded', 'X-Long: ' + 'a'.repeat(20_000), 'NoColon'])] }, rawKind: 'badHeader' })],
      [1, () => ({ raw: { version: r.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 extra']) }, rawKind: 'version' })],
      [2, () => ({
        method: 'GET',
        target: r.pick(['/Users/%', '/Users/%E0%A4%A', '/Users/%ED%A0%80', '/Users/%C0%AF', '/Users/..%2f..%2fetc', '//Users', '/Users?filter=%ZZ', '/Users?filter=userName%20eq%20%22%ED%A0%80%22', '/Users/a%00b', '/Groups/%FF']),
        raw: {},
        rawKind: 'badTarget',
      })],
      [1, () => {
        const method = r.pick(['FOO', 'get', 'CONNECT', 'TRACE', 'M-SEARCH']);
        return { method, target: '/Users', raw: method === 'CONNECT' ? { mayDrop: true } : {}, rawKind: 'badMethod' };
      }],
      [1, () => ({ body: body.replace('"userName"', '"user\\ud800Name"').slice(0, -1), raw: {}, rawKind: 'truncatedJson' })],
      [1, () => ({ body: Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xed, 0xa0, 0x80]).toString('latin1'), raw: {}, rawKind: 'invalidUtf8' })],
    ])();
    const sent = shape.body ?? body;
    return {
      kind: `raw.${shape.rawKind}`,
      method: shape.method ?? 'POST',
      target: shape.target ?? '/Users',
      headers: {},
      auth: { kind: 'valid' },
      body: sent,
      raw: shape.raw,
      track: { op: 'createUser', userName: String(doc['userName']), emails: [] },
    };
  }

  #jsonRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const n = this.#n++;
    const userName = `${this.prefix}.j${n}@example.com`;
    const body = r.pick<() => string>([
      () => '',
      () => ' ',
      () => 'null',
      () => '[]',
      () => '"string"',
      () => '42',
      () => '{',
      () => '{"userName":',
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}",}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","userName":"${userName}.dup"}`,
      () => `\ufeff{"schemas":["${CORE_USER}"],"userName":"${userName}"}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","displayName":"\\ud800\\udc00\\udc00"}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","displayName":"bad \\x escape"}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","active":tru}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","n":1e999}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","__proto__":{"polluted":"yes","admin":true}}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","constructor":{"prototype":{"polluted":"yes"}}}`,
      () => `${'['.repeat(r.int(1000, 200_000))}${']'.repeat(r.int(0, 10))}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","nickName":${'['.repeat(r.int(1000, 100_000))}${']'.repeat(r.int(0, 10))}}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","nickName":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","x":"${'a'.repeat(1_100_000)}"}`,
      () => JSON.stringify({ schemas: [CORE_USER], userName, displayName: 'x' }).replace(/"/g, "'"),
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}"}garbage`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}"}{"second":1}`,
      () => `{"schemas":["${CORE_USER}"],"userName":"${userName}","emails":[{"value":"${userName}","value":5}]}`,
    ])();
    const target = r.pick(['/Users', '/Users', '/Groups', '/Bulk', '/Users/.search']);
    const method = target === '/Users' && r.chance(0.3) ? 'PATCH' : 'POST';
    const id = method === 'PATCH' ? `/${enc(this.#userId())}` : '';
    return {
      kind: 'json',
      method,
      target: `${target}${id}`,
      headers: {},
      auth: { kind: 'valid' },
      body,
      ...(target === '/Users' && method === 'POST' ? { track: { op: 'createUser' as const, userName, emails: [] } } : {}),
    };
  }

  // ---- bulk ----

  #bulkRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const ops: Json[] = [];
    const count = r.weighted<number>([[6, r.int(1, 6)], [2, r.int(7, 30)], [1, 0], [1, r.int(990, 1005)]]);
    const bulkIds: string[] = [];
    for (let i = 0; i < count; i++) {
      const bulkId = `b${i}`;
      const kind = count > 100 ? 'cheap' : r.weighted<string>([[4, 'postUser'], [2, 'patchRef'], [1, 'deleteRef'], [2, 'postGroup'], [1, 'putUser'], [2, 'odd'], [1, 'cycle']]);
      switch (kind) {
        case 'postUser': {
          const { doc } = this.#validUser();
          if (r.chance(0.3)) this.#mutateUser(doc);
          if (r.chance(0.2) && bulkIds.length > 0) doc[ENTERPRISE] = { manager: { value: `bulkId:${r.pick(bulkIds)}` } };
          ops.push({ method: 'POST', path: '/Users', bulkId, data: doc });
          bulkIds.push(bulkId);
          break;
        }
        case 'patchRef':
          ops.push({
            method: 'PATCH',
            path: bulkIds.length > 0 && r.chance(0.7) ? `/Users/bulkId:${r.pick(bulkIds)}` : `/Users/${this.#userId()}`,
            data: { schemas: [PATCH_OP], Operations: [r.chance(0.6) ? this.#validUserOp() : this.#oddOp()] },
            ...(r.chance(0.2) ? { version: r.pick<Json>(['W/"1"', 'garbage', 5]) } : {}),
          });
          break;
        case 'deleteRef':
          ops.push({ method: 'DELETE', path: bulkIds.length > 0 && r.chance(0.6) ? `/Users/bulkId:${r.pick(bulkIds)}` : `/Users/${this.#userId()}` });
          break;
        case 'postGroup':
          ops.push({
            method: 'POST',
            path: '/Groups',
            bulkId,
            data: {
              schemas: [CORE_GROUP],
              displayName: `${this.prefix} BulkGroup ${this.#n++}`,
              members: [...bulkIds.slice(-3).map((b) => ({ value: `bulkId:${b}` })), ...(r.chance(0.5) ? [{ value: this.#knownUser()?.id ?? 'x' }] : [])],
            },
          });
          break;
        case 'putUser': {
          const user = this.#knownUser();
          const { doc } = this.#validUser();
          if (user) doc['userName'] = user.userName;
          ops.push({ method: 'PUT', path: `/Users/${user?.id ?? this.#uuid()}`, data: doc });
          break;
        }
        case 'cycle': {
          const a = `c${i}a`;
          const b = `c${i}b`;
          const ua = this.#validUser().doc;
          const ub = this.#validUser().doc;
          ua[ENTERPRISE] = { manager: { value: `bulkId:${b}` } };
          ub[ENTERPRISE] = { manager: { value: `bulkId:${a}` } };
          ops.push({ method: 'POST', path: '/Users', bulkId: a, data: ua }, { method: 'POST', path: '/Users', bulkId: b, data: ub });
          break;
        }
        case 'cheap':
          ops.push({ method: 'DELETE', path: `/Users/${this.#uuid()}` });
          break;
        default:
          ops.push(r.pick<() => Json>([
            () => ({ method: 'GET', path: '/Users' }),
            () => ({ method: 'POST', path: '/Foo', data: {} }),
            () => ({ method: 'POST', path: '/Users/123', data: {} }),
            () => ({ method: 'DELETE', path: '/Users' }),
            () => ({ method: 'PATCH', path: '/Users/bulkId:missing', data: { Operations: [] } }),
            () => ({ method: null, path: null }),
            () => ({ method: 'POST', path: '/Users', bulkId, data: 'not an object' }),
            () => ({ method: 'POST', path: '/Users', bulkId: r.pick<Json>([5, null, '', 'b0']), data: this.#validUser().doc }),
            () => ({ method: 'post', path: '/users', data: this.#validUser().doc }),
            () => null,
            () => 'op',
            () => [],
            () => ({ method: 'DELETE', path: '/Users/%E0%A4%A' }),
            () => ({ method: 'DELETE', path: `/Users/${this.#userId()}/extra` }),
            () => ({ method: 'PATCH', path: `/Groups/${this.#groupId()}`, data: { schemas: [PATCH_OP], Operations: [this.#validGroupOp()] } }),
            () => ({ method: 'POST', path: '/Users', bulkId, data: this.#validUser().doc, version: 'W/"1"' }),
            () => ({ method: 'DELETE', path: '/Users/bulkId:' }),
            () => ({ method: 'DELETE', path: '/Users/bulkId:__proto__' }),
          ])());
      }
    }
    const body: JsonObject = { schemas: [BULK_REQUEST], Operations: ops };
    if (r.chance(0.3)) body['failOnErrors'] = r.pick<Json>([1, 2, 0, -1, 1.5, '1', null, 1e308]);
    if (r.chance(0.1)) body['schemas'] = r.pick<Json>([[], ['urn:wrong'], null, BULK_REQUEST]);
    if (r.chance(0.05)) body['Operations'] = r.pick<Json>([null, {}, 'x', 5]);
    return { kind: 'bulk', method: 'POST', target: '/Bulk', headers: {}, auth: { kind: 'valid' }, body: this.#json(body), track: { op: 'bulk' } };
  }

  // ---- everything else ----

  #miscRequest(): Omit<FuzzRequest, 'index'> {
    const r = this.#rng;
    const choice = r.pick<() => Omit<FuzzRequest, 'index'>>([
      () => ({ kind: 'misc', method: 'GET', target: `/Schemas/${enc(r.pick([CORE_USER, MATRIX_EXT, 'urn:x', '', '%', '__proto__', 'constructor']))}`, headers: {}, auth: { kind: 'none' } }),
      () => ({ kind: 'misc', method: 'GET', target: `/ResourceTypes/${enc(r.pick(['User', 'Group', 'user', 'x', '__proto__', 'toString']))}`, headers: {}, auth: { kind: 'none' } }),
      () => ({ kind: 'misc', method: 'GET', target: r.pick(['/ServiceProviderConfig', '/ServiceProviderConfigs', '/Schemas', '/ResourceTypes', '/', '', '/Me']), headers: {}, auth: { kind: 'valid' } }),
      () => ({ kind: 'misc', method: 'GET', target: r.pick(['/health/live', '/health/ready', '/metrics', '/', '/scim/v2', '/scim/v2/', '/scim', '/scim/v2/Users/', '/scim/v2//Users', '/SCIM/V2/Users', '/scim/v2/users']), rooted: true, headers: {}, auth: { kind: 'valid' } }),
      () => ({ kind: 'misc', method: r.pick(['OPTIONS', 'HEAD', 'PUT', 'DELETE', 'PATCH']), target: r.pick(['/Users', '/Groups', '/Bulk', '/.search', '/Schemas']), headers: {}, auth: { kind: 'valid' }, body: '{}' }),
      () => ({ kind: 'misc', method: r.pick(['POST', 'GET']), target: `/Users/${enc(this.#userId())}${r.pick(['/x', '/.search', '/..', '?attributes=', '#frag'])}`, headers: {}, auth: { kind: 'valid' }, body: '{}' }),
      () => ({ kind: 'misc', method: 'GET', target: `/Users/${this.#userId()}`, headers: {}, auth: { kind: 'valid' } }),
      () => ({ kind: 'misc', method: 'POST', target: '/Bulk', headers: {}, auth: { kind: 'none' }, body: '{}' }),
    ]);
    return choice();
  }
}

// ---- helpers (pure) ----

function parseObject(text: string): Record<string, unknown> | undefined {
  if (!text || text.length > 5_000_000) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}


const FILTER_ATTRS = [
  'userName', 'displayName', 'emails.value', 'emails[type eq "work"].value', 'name.givenName', 'active', 'meta.created', 'meta.lastModified',
  'id', 'externalId', 'title', 'emails', 'name', 'phoneNumbers.value', 'emails.primary', `${ENTERPRISE}:department`, `${ENTERPRISE}:manager.value`,
  `${MATRIX_EXT}:matrixId`, `${MATRIX_EXT}:displayName`, 'members.value', 'members', 'unknownAttr', 'x.y.z', 'groups.value', 'groups',
  'password', 'meta.version', 'meta.resourceType', 'schemas', 'emails[value co "@"]', 'USERNAME', 'urn:bogus:attr',
];
const FILTER_OPS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr', 'EQ', 'Co', 'xx', '==', 'like', ''];

function filterAtom(r: Prng, hostile: () => string): string {
  const attr = r.pick(FILTER_ATTRS);
  const op = r.pick(FILTER_OPS);
  if (op === 'pr') return `${attr} pr`;
  const value = r.pick<() => string>([
    () => '"abc"',
    () => '"%"',
    () => '"_"',
    () => '"\\""',
    () => 'true',
    () => 'false',
    () => 'null',
    () => '42',
    () => '-1.5e10',
    () => '"2020-01-01T00:00:00Z"',
    () => '"not-a-date"',
    () => 'abc',
    () => '"unterminated',
    () => '"\\ud800"',
    () => '"\\u0000"',
    () => JSON.stringify(hostile()),
    () => `"${'z'.repeat(r.int(300, 5000))}"`,
  ])();
  return `${attr} ${op} ${value}`;
}

/** `a op b op c …` with `terms` comparisons (values simple, so that the length is in the chain). */
function filterChain(r: Prng, terms: number, joiner: string): string {
  const parts: string[] = [];
  for (let i = 0; i < terms; i++) {
    const attr = r.pick(['userName', 'displayName', 'emails.value', 'title', 'active', 'externalId']);
    parts.push(attr === 'active' ? `active eq ${r.chance(0.5)}` : `${attr} ${r.pick(['eq', 'co', 'sw', 'ne'])} "v${i}"`);
  }
  return parts.join(` ${joiner} `);
}

function projectionQuery(r: Prng): string {
  const name = r.pick(['attributes', 'excludedAttributes', 'Attributes']);
  const value = r.pick([
    'userName', 'emails.value,userName', `${MATRIX_EXT}:matrixId`, 'bogus', '', ',', 'emails[type eq "work"].value', 'name.givenName.x',
    'members', 'members.value', 'groups', 'password', 'id', 'meta', `${ENTERPRISE}:manager`, 'a'.repeat(3000), '\u0000', '%',
    Array.from({ length: 300 }, (_, i) => `attr${i}`).join(','), 'urn:', `${CORE_USER}:userName`,
  ]);
  return `${name}=${enc(value)}`;
}
