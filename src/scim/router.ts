import { Router } from '@koa/router';
import type { Context } from 'koa';
import { badRequest, ScimError } from './errors.ts';
import { bearerAuth, readJsonBody, sendScim, type ScimState } from './http.ts';
import { MATRIX_USER_SCHEMA, resourceTypes, serviceProviderConfig } from './discovery.ts';
import { schemaDocuments, schemasFor } from './schema/attributes.ts';
import { normalizeUserInput } from './patch/apply.ts';
import { project, type ProjectionOptions } from './projection.ts';
import { listResponse, parseSearch, type SearchRequest } from './search.ts';
import { runBulk, type BulkTarget } from './bulk.ts';

/** A user as the SCIM layer needs it; the provisioning core's records fit this shape. */
export interface UserResourceRecord {
  id: string;
  matrixId: string;
  document: Record<string, unknown>;
  version: number;
  created: string;
  lastModified: string;
}

/** The typed interface through which the SCIM API calls the provisioning core. */
export interface UserBackend {
  get(id: string): Promise<UserResourceRecord>;
  list(query: Omit<SearchRequest, 'projection'>): Promise<{ totalResults: number; users: UserResourceRecord[] }>;
  create(input: Record<string, unknown>, ctx: { source: string }): Promise<UserResourceRecord>;
  replace(id: string, input: Record<string, unknown>, ctx: { source: string }, ifMatch?: string): Promise<UserResourceRecord>;
  patch(id: string, body: unknown, ctx: { source: string }, ifMatch?: string): Promise<UserResourceRecord>;
  delete(id: string, ctx: { source: string }, ifMatch?: string): Promise<void>;
}

export interface ScimRouterOptions {
  /** Public base URL of the SCIM API, ending in /scim/v2. */
  baseUrl: () => string;
  tokens: { name: string; token: string }[];
  users: UserBackend;
}

export const SCIM_BASE_PATH = '/scim/v2';

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

/** If-None-Match (RFC 7232 §3.2): true when the client already holds this version. */
function noneMatch(header: string, version: number): boolean {
  if (!header) return false;
  const tags = header.split(',').map((t) => t.trim());
  return tags.includes('*') || tags.some((t) => t.replace(/^W\//, '') === `"${version}"`);
}

function ifMatch(ctx: Context): string | undefined {
  return ctx.get('if-match') || undefined;
}

function asObject(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('invalidSyntax', 'the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
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

  router.use(['/Users', '/Users/:id', '/.search', '/Bulk'], bearerAuth(options.tokens));

  const search = async (ctx: Context, request: SearchRequest) => {
    const { projection: shape, ...query } = request;
    const page = await users.list(query);
    const resources = page.users.map((u) => presentUser(u, base(), shape));
    sendScim(ctx, 200, listResponse(resources, page.totalResults, request.startIndex));
  };
  router.get('/Users', (ctx) => search(ctx, parseSearch(ctx.query, false)));
  router.post('/Users/.search', async (ctx) => search(ctx, parseSearch(asObject(await readJsonBody(ctx)), true)));
  // Searching from the root covers every resource type; Users is the only one so far.
  router.post('/.search', async (ctx) => search(ctx, parseSearch(asObject(await readJsonBody(ctx)), true)));
  router.post('/Users', async (ctx) => {
    const input = normalizeUserInput(asObject(await readJsonBody(ctx)));
    const record = await users.create(input, source(ctx));
    ctx.set('Location', `${base()}/Users/${record.id}`);
    sendUser(ctx, 201, record);
  });
  router.get('/Users/:id', async (ctx) => {
    const record = await users.get(ctx.params['id'] ?? '');
    if (noneMatch(ctx.get('if-none-match'), record.version)) {
      ctx.set('ETag', etag(record.version));
      ctx.status = 304;
      return;
    }
    sendUser(ctx, 200, record);
  });
  router.put('/Users/:id', async (ctx) => {
    const input = normalizeUserInput(asObject(await readJsonBody(ctx)));
    sendUser(ctx, 200, await users.replace(ctx.params['id'] ?? '', input, source(ctx), ifMatch(ctx)));
  });
  router.patch('/Users/:id', async (ctx) => {
    const body = asObject(await readJsonBody(ctx));
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
    sendScim(ctx, 200, await runBulk(await readJsonBody(ctx), { Users: target }, base()));
  });
  return router;
}
