import { Router } from '@koa/router';
import type { Context } from 'koa';
import { ScimError } from './errors.ts';
import { bearerAuth, noneMatch, readJsonBody, readJsonObject, sendScim, type ScimState } from './http.ts';
import { MATRIX_USER_SCHEMA, resourceTypes, serviceProviderConfig } from './discovery.ts';
import { GROUP_RESOURCE, USER_RESOURCE, schemaDocuments, schemasFor, type ResourceSchema } from './schema/attributes.ts';
import { normalizeUserInput } from './patch/apply.ts';
import { project, type ProjectionOptions } from './projection.ts';
import { listResponse, parseSearch, type SearchRequest } from './search.ts';
import { runBulk, type BulkTarget } from './bulk.ts';
import { addGroupRoutes, renderGroup, wantsMembers, type GroupBackend } from './groupRoutes.ts';

/** A user as the SCIM layer needs it; the provisioning core's records fit this shape. */
export interface UserResourceRecord {
  id: string;
  matrixId: string;
  document: Record<string, unknown>;
  version: number;
  created: string;
  lastModified: string;
  /** The groups the user is a member of (read-only `groups`). */
  groups?: { id: string; displayName: string }[];
}

/** The typed interface through which the SCIM API calls the provisioning core. */
export interface UserBackend {
  get(id: string, ctx: { source: string }): Promise<UserResourceRecord>;
  list(query: Omit<SearchRequest, 'projection'>, ctx: { source: string }): Promise<{ totalResults: number; users: UserResourceRecord[] }>;
  /** `answered`: settles when the answer has gone out (true) or the connection closed first (false). */
  create(input: Record<string, unknown>, ctx: { source: string; answered?: Promise<boolean> }): Promise<UserResourceRecord>;
  replace(id: string, input: Record<string, unknown>, ctx: { source: string }, ifMatch?: string): Promise<UserResourceRecord>;
  patch(id: string, body: unknown, ctx: { source: string }, ifMatch?: string): Promise<UserResourceRecord>;
  delete(id: string, ctx: { source: string }, ifMatch?: string): Promise<void>;
}

export interface ScimRouterOptions {
  /** Public base URL of the SCIM API, ending in /scim/v2. */
  baseUrl: () => string;
  tokens: { name: string; token: string }[];
  users: UserBackend;
  groups: GroupBackend;
}

export const SCIM_BASE_PATH = '/scim/v2';

/** Settles when the response has been handed to the connection (true) or the connection closed first (false). */
function answerSent(ctx: Context): Promise<boolean> {
  const res = ctx.res;
  return new Promise((resolve) => {
    res.once('finish', () => resolve(true));
    res.once('close', () => resolve(res.writableFinished));
  });
}

const etag = (version: number) => `W/"${version}"`;

/** attributes/excludedAttributes of the query string, for single-resource answers. */
function projection(ctx: Context): ProjectionOptions {
  return parseSearch({ attributes: ctx.query['attributes'], excludedAttributes: ctx.query['excludedAttributes'] }, false).projection;
}

export function renderUser(record: UserResourceRecord, baseUrl: string): Record<string, unknown> {
  const { schemas: _declared, ...attributes } = record.document;
  const matrix = attributes[MATRIX_USER_SCHEMA];
  return {
    id: record.id,
    ...attributes,
    [MATRIX_USER_SCHEMA]: { ...(matrix && typeof matrix === 'object' ? matrix : {}), matrixId: record.matrixId },
    ...(record.groups && record.groups.length > 0
      ? { groups: record.groups.map((g) => ({ value: g.id, $ref: `${baseUrl}/Groups/${g.id}`, display: g.displayName, type: 'direct' })) }
      : {}),
    meta: {
      resourceType: 'User',
      created: record.created,
      lastModified: record.lastModified,
      location: `${baseUrl}/Users/${record.id}`,
      version: etag(record.version),
    },
  };
}

/** A user as the client asked to see it, `schemas` naming the extensions it holds. */
export function presentUser(record: UserResourceRecord, baseUrl: string, shape: ProjectionOptions): Record<string, unknown> {
  const projected = project(renderUser(record, baseUrl), shape);
  return { schemas: schemasFor(projected), ...projected };
}


function ifMatch(ctx: Context): string | undefined {
  return ctx.get('if-match') || undefined;
}


export function scimRouter(options: ScimRouterOptions): Router {
  const router = new Router({ prefix: SCIM_BASE_PATH });
  const base = options.baseUrl;
  const { users } = options;
  const source = (ctx: Context) => ({ source: (ctx.state as ScimState).source });
  const sendUser = (ctx: Context, status: number, record: UserResourceRecord) => {
    ctx.set('ETag', etag(record.version));
    sendScim(ctx, status, presentUser(record, base(), projection(ctx)));
  };

  // Discovery needs no authentication (RFC 7644 §4): IdPs read it before they have a token.
  router.get('/ServiceProviderConfig', (ctx) => sendScim(ctx, 200, serviceProviderConfig(base())));
  router.get('/ResourceTypes', (ctx) => {
    const all = resourceTypes(base());
    sendScim(ctx, 200, listResponse(all, all.length, 1));
  });
  router.get('/ResourceTypes/:id', (ctx) => {
    const found = resourceTypes(base()).find((r) => r['id'] === ctx.params['id']);
    if (!found) throw new ScimError(404, `no resource type ${ctx.params['id']}`);
    sendScim(ctx, 200, found);
  });
  router.get('/Schemas', (ctx) => {
    const all = schemaDocuments(base());
    sendScim(ctx, 200, listResponse(all, all.length, 1));
  });
  router.get('/Schemas/:id', (ctx) => {
    const found = schemaDocuments(base()).find((s) => s['id'] === ctx.params['id']);
    if (!found) throw new ScimError(404, `no schema ${ctx.params['id']}`);
    sendScim(ctx, 200, found);
  });

  router.use(['/Users', '/Users/:id', '/Groups', '/Groups/:id', '/.search', '/Bulk'], bearerAuth(options.tokens));

  /**
   * POST /.search (RFC 7644 §3.4.3) over every resource type, users first. A resource type
   * whose schema the filter does not fit (`title` on groups) has no results; a filter that
   * fits none is a 400.
   */
  const rootSearch = async (ctx: Context, body: Record<string, unknown>) => {
    const attempt = (resource: ResourceSchema): SearchRequest | ScimError => {
      try {
        return parseSearch(body, true, resource);
      } catch (error) {
        if (error instanceof ScimError && error.scimType === 'invalidFilter') return error;
        throw error;
      }
    };
    const userRequest = attempt(USER_RESOURCE);
    const groupRequest = attempt(GROUP_RESOURCE);
    if (userRequest instanceof ScimError && groupRequest instanceof ScimError) throw userRequest;
    const request = userRequest instanceof ScimError ? (groupRequest as SearchRequest) : userRequest;
    const window = { startIndex: 1, count: request.startIndex - 1 + request.count };
    const found: Record<string, unknown>[] = [];
    let total = 0;
    if (!(userRequest instanceof ScimError)) {
      const { projection: shape, ...query } = userRequest;
      const page = await users.list({ ...query, ...window }, source(ctx));
      total += page.totalResults;
      found.push(...page.users.map((u) => presentUser(u, base(), shape)));
    }
    if (!(groupRequest instanceof ScimError)) {
      const { projection: shape, ...query } = groupRequest;
      const page = await options.groups.list({ ...query, ...window }, wantsMembers(shape), source(ctx));
      total += page.totalResults;
      found.push(...page.groups.map((g) => renderGroup(g, base(), shape)));
    }
    const page = found.slice(request.startIndex - 1, request.startIndex - 1 + request.count);
    sendScim(ctx, 200, listResponse(page, total, request.startIndex));
  };

  const search = async (ctx: Context, request: SearchRequest) => {
    const { projection: shape, ...query } = request;
    const page = await users.list(query, source(ctx));
    const resources = page.users.map((u) => presentUser(u, base(), shape));
    sendScim(ctx, 200, listResponse(resources, page.totalResults, request.startIndex));
  };
  router.get('/Users', (ctx) => search(ctx, parseSearch(ctx.query, false)));
  router.post('/Users/.search', async (ctx) => search(ctx, parseSearch(await readJsonObject(ctx), true)));
  // Searching from the root covers every resource type; Users is the only one so far.
  router.post('/.search', async (ctx) => rootSearch(ctx, await readJsonObject(ctx)));
  addGroupRoutes(router, options.groups, base);
  router.post('/Users', async (ctx) => {
    const input = normalizeUserInput(await readJsonObject(ctx));
    // The user becomes the IdP's once the 201 is out; a POST retried after a lost answer resumes it.
    const record = await users.create(input, { ...source(ctx), answered: answerSent(ctx) });
    ctx.set('Location', `${base()}/Users/${record.id}`);
    sendUser(ctx, 201, record);
  });
  router.get('/Users/:id', async (ctx) => {
    const record = await users.get(ctx.params['id'] ?? '', source(ctx));
    if (noneMatch(ctx.get('if-none-match'), record.version)) {
      ctx.set('ETag', etag(record.version));
      ctx.status = 304;
      return;
    }
    sendUser(ctx, 200, record);
  });
  router.put('/Users/:id', async (ctx) => {
    const input = normalizeUserInput(await readJsonObject(ctx));
    sendUser(ctx, 200, await users.replace(ctx.params['id'] ?? '', input, source(ctx), ifMatch(ctx)));
  });
  router.patch('/Users/:id', async (ctx) => {
    const body = await readJsonObject(ctx);
    sendUser(ctx, 200, await users.patch(ctx.params['id'] ?? '', body, source(ctx), ifMatch(ctx)));
  });
  router.delete('/Users/:id', async (ctx) => {
    await users.delete(ctx.params['id'] ?? '', source(ctx), ifMatch(ctx));
    ctx.status = 204;
  });
  router.post('/Bulk', async (ctx) => {
    const ctxSource = source(ctx);
    const target: BulkTarget = {
      create: (input) => users.create(input, ctxSource),
      replace: (id, input, version) => users.replace(id, input, ctxSource, version),
      patch: (id, body, version) => users.patch(id, body, ctxSource, version),
      delete: (id, version) => users.delete(id, ctxSource, version),
    };
    const groups = options.groups;
    const groupTarget: BulkTarget = {
      create: (input) => groups.create(input, ctxSource),
      replace: (id, input, version) => groups.replace(id, input, ctxSource, version),
      patch: (id, body, version) => groups.patch(id, body, ctxSource, version),
      delete: (id, version) => groups.delete(id, ctxSource, version),
    };
    sendScim(ctx, 200, await runBulk(await readJsonBody(ctx), { Users: target, Groups: groupTarget }, base()));
  });
  return router;
}
