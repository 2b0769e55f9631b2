/**
 * SCIM /Bulk (RFC 7644 §3.7): runs a BulkRequest's operations against the resource backends
 * and builds the BulkResponse. Pure with respect to HTTP: the router reads (and size-limits) the
 * body, calls runBulk and sends what it returns with status 200; a ScimError thrown here is a
 * failure of the whole request (400 for a malformed request, 413 for too many operations).
 *
 * Choices where the RFC leaves room:
 * - Operations run in request order. An operation that refers to `bulkId:x` whose POST comes
 *   later runs that POST first (§3.7.1); a cycle of such references fails with 409.
 * - `bulkId:x` is resolved in the path and in every string inside `data` that is exactly
 *   `bulkId:x` (e.g. a manager's value); a bulkId no POST in the request declares, or whose
 *   POST failed, fails the operation with 409 naming it.
 * - Operations target /Users and /Groups; any other path, or one that does not fit the
 *   method, is 400 invalidPath.
 * - The response lists the processed operations in request order; with `failOnErrors` the
 *   operations after the stop are left out.
 */
import { ScimError, badRequest } from './errors.ts';
import { normalizeInput } from './patch/apply.ts';
import { GROUP_RESOURCE, USER_RESOURCE, type ResourceSchema } from './schema/attributes.ts';
import { getKey, isRecord } from './patch/values.ts';
import { logger } from '../log.ts';

const log = logger('ScimBulk');

export const BULK_REQUEST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
export const BULK_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';
/** Declared as bulk.maxOperations in ServiceProviderConfig. */
export const BULK_MAX_OPERATIONS = 1000;
/** Declared as bulk.maxPayloadSize; the router rejects bigger bodies with 413 before parsing. */
export const BULK_MAX_PAYLOAD_BYTES = 1048576;

/** What bulk needs from a resource backend (the lead binds the request's source into it). */
export interface BulkTarget {
  create(input: Record<string, unknown>): Promise<{ id: string; version: number }>;
  replace(id: string, input: Record<string, unknown>, ifMatch?: string): Promise<{ id: string; version: number }>;
  patch(id: string, body: unknown, ifMatch?: string): Promise<{ id: string; version: number }>;
  delete(id: string, ifMatch?: string): Promise<void>;
}

export interface BulkTargets {
  Users: BulkTarget;
  Groups: BulkTarget;
}

type Endpoint = keyof BulkTargets;
const RESOURCE_OF: Record<Endpoint, ResourceSchema> = { Users: USER_RESOURCE, Groups: GROUP_RESOURCE };

type Method = 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const METHODS: readonly Method[] = ['POST', 'PUT', 'PATCH', 'DELETE'];
const isMethod = (value: string | undefined): value is Method => METHODS.some((m) => m === value);
const BULK_ID_REF = /^bulkId:(.+)$/;

/** One operation of the request as read, before anything is checked beyond its shape. */
interface RawOperation {
  raw: Record<string, unknown> | undefined;
  /** The method, upper-cased when it is a string; echoed in the response. */
  method: string | undefined;
  /** The bulkId when it is a string; echoed in the response. */
  bulkId: string | undefined;
}

interface Outcome {
  status: number;
  /** Resource id the operation acted on, when known (for `location`). */
  id?: string;
  /** The endpoint it acted on, for `location`. */
  endpoint: Endpoint;
  version?: number;
  error?: ScimError;
}

/** Thrown while resolving a reference when failOnErrors stopped the run: the operation is not reported. */
class Stopped extends Error {}

const internalError = () => new ScimError(500, 'internal error: the bridge logged the details');

function readRequest(body: unknown): { operations: unknown[]; failOnErrors: number } {
  if (!isRecord(body)) throw badRequest('invalidSyntax', 'the request body must be a JSON object');
  const schemas = getKey(body, 'schemas');
  if (!Array.isArray(schemas) || !schemas.includes(BULK_REQUEST_SCHEMA)) {
    throw badRequest('invalidSyntax', `schemas must contain ${BULK_REQUEST_SCHEMA}`);
  }
  const operations = getKey(body, 'Operations');
  if (!Array.isArray(operations)) throw badRequest('invalidSyntax', 'Operations must be an array');
  if (operations.length > BULK_MAX_OPERATIONS) {
    throw new ScimError(
      413,
      `the bulk request has ${operations.length} operations; the maximum (maxOperations) is ${BULK_MAX_OPERATIONS}`,
    );
  }
  const failOnErrors = getKey(body, 'failOnErrors');
  if (failOnErrors === undefined || failOnErrors === null) return { operations, failOnErrors: Infinity };
  if (typeof failOnErrors !== 'number' || !Number.isInteger(failOnErrors) || failOnErrors < 1) {
    throw badRequest('invalidSyntax', 'failOnErrors must be a positive integer');
  }
  return { operations, failOnErrors };
}

function readOperation(value: unknown): RawOperation {
  if (!isRecord(value)) return { raw: undefined, method: undefined, bulkId: undefined };
  const method = getKey(value, 'method');
  const bulkId = getKey(value, 'bulkId');
  return {
    raw: value,
    method: typeof method === 'string' ? method.toUpperCase() : undefined,
    bulkId: typeof bulkId === 'string' ? bulkId : undefined,
  };
}

/** Deepest nesting of an operation's data: a PATCH of a complex multi-valued attribute needs about 6. */
const MAX_DATA_DEPTH = 32;

/** Parses `path` for the method: `/Users` or `/Groups` for POST, with `/{id}` otherwise. */
function parsePath(method: Method, path: unknown): { resource: Endpoint; id: string | undefined } {
  if (typeof path !== 'string') throw badRequest('invalidPath', 'path is required: /Users, /Groups, /Users/{id} or /Groups/{id}');
  const match = /^\/([^/?#]+)(?:\/([^/?#]+))?$/.exec(path);
  const endpoint = match?.[1]?.toLowerCase();
  const resource: Endpoint | undefined = endpoint === 'users' ? 'Users' : endpoint === 'groups' ? 'Groups' : undefined;
  if (!match || !resource) throw badRequest('invalidPath', `${path}: bulk operations must target /Users or /Groups`);
  const rawId = match[2];
  if (method === 'POST') {
    if (rawId !== undefined) throw badRequest('invalidPath', `${path}: POST must target /${resource}, without an id`);
    return { resource, id: undefined };
  }
  if (rawId === undefined) throw badRequest('invalidPath', `${path}: ${method} must target /${resource}/{id}`);
  let id: string;
  try {
    id = decodeURIComponent(rawId);
  } catch {
    throw badRequest('invalidPath', `${path.toWellFormed()}: the id is not validly percent-encoded`);
  }
  // A lone surrogate can be no resource's id (and could not be put in a Location).
  if (!id.isWellFormed()) throw badRequest('invalidPath', `${path.toWellFormed()}: the id holds a lone UTF-16 surrogate`);
  return { resource, id };
}

function requireData(method: Method, raw: Record<string, unknown>): Record<string, unknown> {
  const data = getKey(raw, 'data');
  if (!isRecord(data)) throw badRequest('invalidSyntax', `${method} needs data: a JSON object`);
  return data;
}

function readVersion(raw: Record<string, unknown>): string | undefined {
  const version = getKey(raw, 'version');
  if (version === undefined || version === null) return undefined;
  if (typeof version !== 'string') throw badRequest('invalidSyntax', 'version must be a string (an ETag such as W/"3")');
  return version;
}

class BulkRun {
  readonly #ops: RawOperation[];
  readonly #targets: BulkTargets;
  readonly #baseUrl: string;
  readonly #failOnErrors: number;
  readonly #state: ('pending' | 'running' | 'done')[];
  readonly #results: (Record<string, unknown> | undefined)[];
  /** bulkId → index of the first POST declaring it. */
  readonly #declared = new Map<string, number>();
  /** bulkId → id of the resource its POST created. */
  readonly #created = new Map<string, string>();
  #errors = 0;
  #stopped = false;

  constructor(operations: unknown[], targets: BulkTargets, baseUrl: string, failOnErrors: number) {
    this.#ops = operations.map(readOperation);
    this.#targets = targets;
    this.#baseUrl = baseUrl;
    this.#failOnErrors = failOnErrors;
    this.#state = this.#ops.map(() => 'pending');
    this.#results = this.#ops.map(() => undefined);
    this.#ops.forEach((op, index) => {
      if (op.method === 'POST' && op.bulkId !== undefined && !this.#declared.has(op.bulkId)) {
        this.#declared.set(op.bulkId, index);
      }
    });
  }

  async runAll(): Promise<Record<string, unknown>[]> {
    try {
      for (let index = 0; index < this.#ops.length && !this.#stopped; index++) await this.#run(index);
    } catch (error) {
      if (!(error instanceof Stopped)) throw error;
    }
    return this.#results.filter((r): r is Record<string, unknown> => r !== undefined);
  }

  async #run(index: number): Promise<void> {
    if (this.#state[index] !== 'pending') return;
    this.#state[index] = 'running';
    let outcome: Outcome;
    try {
      outcome = await this.#execute(index);
    } catch (error) {
      this.#state[index] = 'pending'; // only Stopped gets here: the operation did not run
      throw error;
    }
    this.#state[index] = 'done';
    const op = this.#ops[index] ?? { raw: undefined, method: undefined, bulkId: undefined };
    this.#results[index] = this.#render(op, outcome);
    if (outcome.error) {
      if (outcome.status < 500) log.info(`bulk operation ${index} (${op.method ?? '?'}) → ${outcome.status}: ${outcome.error.message}`);
      this.#errors++;
      if (this.#errors >= this.#failOnErrors) this.#stopped = true;
    } else if (op.method === 'POST' && op.bulkId !== undefined && outcome.id !== undefined) {
      this.#created.set(op.bulkId, outcome.id);
    }
  }

  /** Runs one operation; every failure comes back as an Outcome, only Stopped escapes. */
  async #execute(index: number): Promise<Outcome> {
    const op = this.#ops[index];
    let id: string | undefined;
    let endpoint: Endpoint = 'Users';
    try {
      if (!op?.raw) throw badRequest('invalidSyntax', 'each operation must be a JSON object');
      const { raw, method } = op;
      if (!isMethod(method)) throw badRequest('invalidSyntax', `method must be one of ${METHODS.join(', ')}`);
      const m = method;
      if (getKey(raw, 'bulkId') !== undefined && op.bulkId === undefined) throw badRequest('invalidSyntax', 'bulkId must be a string');
      const target = parsePath(m, getKey(raw, 'path'));
      const backend = this.#targets[target.resource];
      endpoint = target.resource;
      const normalize = (data: Record<string, unknown>) => normalizeInput(data, RESOURCE_OF[endpoint]);
      if (m === 'POST') {
        if (op.bulkId === undefined) throw badRequest('invalidSyntax', 'POST operations need a bulkId');
        if (this.#declared.get(op.bulkId) !== index) throw badRequest('invalidSyntax', `bulkId ${op.bulkId} is declared by more than one POST`);
        const data = (await this.#resolveDeep(requireData(m, raw))) as Record<string, unknown>;
        const created = await backend.create(normalize(data));
        return { status: 201, id: created.id, endpoint, version: created.version };
      }
      id = await this.#resolveId(target.id ?? '');
      const ifMatch = readVersion(raw);
      if (m === 'DELETE') {
        await backend.delete(id, ifMatch);
        return { status: 204, id, endpoint };
      }
      const data = (await this.#resolveDeep(requireData(m, raw))) as Record<string, unknown>;
      const done =
        m === 'PUT'
          ? await backend.replace(id, normalize(data), ifMatch)
          : await backend.patch(id, data, ifMatch);
      return { status: 200, id: done.id, endpoint, version: done.version };
    } catch (error) {
      if (error instanceof Stopped) throw error;
      if (error instanceof ScimError) return { status: error.status, error, endpoint, ...(id !== undefined ? { id } : {}) };
      log.error(`bulk operation ${index} (${op?.method ?? '?'}) failed`, error);
      return { status: 500, error: internalError(), endpoint, ...(id !== undefined ? { id } : {}) };
    }
  }

  async #resolveId(id: string): Promise<string> {
    const match = BULK_ID_REF.exec(id);
    return match?.[1] === undefined ? id : this.#resolveBulkId(match[1]);
  }

  /** The id the POST with this bulkId created, running that POST first if it comes later. */
  async #resolveBulkId(bulkId: string): Promise<string> {
    const known = this.#created.get(bulkId);
    if (known !== undefined) return known;
    const index = this.#declared.get(bulkId);
    if (index === undefined) throw new ScimError(409, `bulkId:${bulkId} is not declared by any POST in this request`);
    if (this.#state[index] === 'running') {
      throw new ScimError(409, `bulkId:${bulkId} is part of a circular reference between operations; it cannot be resolved`);
    }
    if (this.#state[index] === 'pending') {
      await this.#run(index);
      if (this.#stopped) throw new Stopped();
    }
    const created = this.#created.get(bulkId);
    if (created !== undefined) return created;
    throw new ScimError(409, `bulkId:${bulkId} cannot be resolved: the POST that declares it failed`);
  }

  /**
   * Copies value with every string that is exactly `bulkId:x` replaced by the id x was
   * created with. No SCIM document nests deeper than MAX_DATA_DEPTH; deeper data is refused
   * before it can exhaust the stack.
   */
  async #resolveDeep(value: unknown, depth = 0): Promise<unknown> {
    if (depth > MAX_DATA_DEPTH) throw badRequest('invalidSyntax', `data nests deeper than ${MAX_DATA_DEPTH} levels`);
    if (typeof value === 'string') return this.#resolveId(value);
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      for (const item of value) out.push(await this.#resolveDeep(item, depth + 1));
      return out;
    }
    if (isRecord(value)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = await this.#resolveDeep(item, depth + 1);
      return out;
    }
    return value;
  }

  #render(op: RawOperation, outcome: Outcome): Record<string, unknown> {
    return {
      ...(op.method !== undefined ? { method: op.method } : {}),
      ...(op.bulkId !== undefined ? { bulkId: op.bulkId } : {}),
      ...(outcome.version !== undefined && !outcome.error ? { version: `W/"${outcome.version}"` } : {}),
      ...(outcome.id !== undefined ? { location: `${this.#baseUrl}/${outcome.endpoint}/${encodeURIComponent(outcome.id)}` } : {}),
      status: String(outcome.status),
      ...(outcome.error ? { response: outcome.error.toJSON() } : {}),
    };
  }
}

/**
 * Runs a BulkRequest and returns the BulkResponse body (sent with HTTP 200). Throws a ScimError
 * for a request that cannot be run at all: 400 invalidSyntax for a malformed one, 413 for more
 * than BULK_MAX_OPERATIONS operations (checked before any operation runs).
 */
export async function runBulk(body: unknown, targets: BulkTargets, baseUrl: string): Promise<Record<string, unknown>> {
  const { operations, failOnErrors } = readRequest(body);
  const results = await new BulkRun(operations, targets, baseUrl, failOnErrors).runAll();
  return { schemas: [BULK_RESPONSE_SCHEMA], Operations: results };
}
