import { Router } from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { badRequest, ScimError } from './errors.ts';
import { bearerAuth, readJsonBody, sendScim, type ScimState } from './http.ts';
import {
  DEFAULT_PAGE_SIZE,
  LIST_RESPONSE_SCHEMA,
  MATRIX_USER_SCHEMA,
  MAX_PAGE_SIZE,
  resourceTypes,
  serviceProviderConfig,
} from './discovery.ts';
import { schemaDocuments } from './schema/attributes.ts';
import { parseFilter } from './filter/parse.ts';
import type { Filter } from './filter/ast.ts';
import { normalizeUserInput } from './patch/apply.ts';
import { parseAttributeList, project } from './projection.ts';

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
  list(filter: Filter | undefined, startIndex: number, count: number): Promise<{ totalResults: number; users: UserResourceRecord[] }>;
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

const listQuery = z.object({
  filter: z.string().optional(),
  startIndex: z.coerce.number().int('startIndex must be an integer').optional(),
  count: z.coerce.number().int('count must be an integer').optional(),
  attributes: z.string().optional(),
  excludedAttributes: z.string().optional(),
});

function parseQuery<T extends z.ZodType>(schema: T, ctx: Context): z.output<T> {
  const result = schema.safeParse(ctx.query);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw badRequest('invalidValue', `query parameter ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

function projection(ctx: Context): { attributes?: string[]; excludedAttributes?: string[] } {
  const single = (name: string): string | undefined => {
    const value = ctx.query[name];
    return Array.isArray(value) ? value.join(',') : value;
  };
  const attributes = parseAttributeList(single('attributes'));
  const excludedAttributes = parseAttributeList(single('excludedAttributes'));
  return { ...(attributes ? { attributes } : {}), ...(excludedAttributes ? { excludedAttributes } : {}) };
}

export function renderUser(record: UserResourceRecord, baseUrl: string): Record<string, unknown> {
  const { schemas, ...attributes } = record.document;
  const declared = Array.isArray(schemas) ? schemas.filter((s): s is string => typeof s === 'string') : [];
  return {
    schemas: [...new Set([...declared, MATRIX_USER_SCHEMA])],
    id: record.id,
    ...attributes,
    [MATRIX_USER_SCHEMA]: { matrixId: record.matrixId },
    meta: {
      resourceType: 'User',
      created: record.created,
      lastModified: record.lastModified,
      location: `${baseUrl}/Users/${record.id}`,
      version: etag(record.version),
    },
  };
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
    sendScim(ctx, status, project(renderUser(record, base()), projection(ctx)));
  };

  // Discovery needs no authentication (RFC 7644 §4): IdPs read it before they have a token.
  router.get('/ServiceProviderConfig', (ctx) => sendScim(ctx, 200, serviceProviderConfig(base())));
  router.get('/ResourceTypes', (ctx) => sendScim(ctx, 200, listResponse(resourceTypes(base()), 1)));
  router.get('/ResourceTypes/:id', (ctx) => {
    const found = resourceTypes(base()).find((r) => r['id'] === ctx.params['id']);
    if (!found) throw new ScimError(404, `no resource type ${ctx.params['id']}`);
    sendScim(ctx, 200, found);
  });
  router.get('/Schemas', (ctx) => sendScim(ctx, 200, listResponse(schemaDocuments(base()), 1)));
  router.get('/Schemas/:id', (ctx) => {
    const found = schemaDocuments(base()).find((s) => s['id'] === ctx.params['id']);
    if (!found) throw new ScimError(404, `no schema ${ctx.params['id']}`);
    sendScim(ctx, 200, found);
  });

  router.use(['/Users', '/Users/:id'], bearerAuth(options.tokens));

  router.get('/Users', async (ctx) => {
    const query = parseQuery(listQuery, ctx);
    const filter = query.filter !== undefined && query.filter.trim() !== '' ? parseFilter(query.filter) : undefined;
    const startIndex = Math.max(1, query.startIndex ?? 1);
    const count = Math.min(MAX_PAGE_SIZE, Math.max(0, query.count ?? DEFAULT_PAGE_SIZE));
    const page = await users.list(filter, startIndex, count);
    const resources = page.users.map((u) => project(renderUser(u, base()), projection(ctx)));
    sendScim(ctx, 200, { ...listResponse(resources, startIndex), totalResults: page.totalResults });
  });
  router.post('/Users', async (ctx) => {
    const input = normalizeUserInput(asObject(await readJsonBody(ctx)));
    const record = await users.create(input, source(ctx));
    ctx.set('Location', `${base()}/Users/${record.id}`);
    sendUser(ctx, 201, record);
  });
  router.get('/Users/:id', async (ctx) => {
    sendUser(ctx, 200, await users.get(ctx.params['id'] ?? ''));
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
  return router;
}

function listResponse(resources: unknown[], startIndex: number): Record<string, unknown> {
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults: resources.length,
    startIndex,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}
