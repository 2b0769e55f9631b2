import type { Router } from '@koa/router';
import type { Context } from 'koa';
import { noneMatch, readJsonObject, sendScim, type ScimState } from './http.ts';
import { normalizeGroupInput } from './patch/apply.ts';
import { project, type ProjectionOptions } from './projection.ts';
import { GROUP_RESOURCE, schemasFor } from './schema/attributes.ts';
import { listResponse, parseSearch, type SearchRequest } from './search.ts';

/** A group as the SCIM layer needs it; members absent when they were not loaded. */
export interface GroupResourceRecord {
  id: string;
  document: Record<string, unknown>;
  members?: { value: string; display: string }[];
  version: number;
  created: string;
  lastModified: string;
}

/** The typed interface through which the SCIM API calls the group provisioning core. */
export interface GroupBackend {
  get(id: string, withMembers: boolean, ctx: { source: string }): Promise<GroupResourceRecord>;
  list(
    query: Omit<SearchRequest, 'projection'>,
    withMembers: boolean,
    ctx: { source: string },
  ): Promise<{ totalResults: number; groups: GroupResourceRecord[] }>;
  create(input: Record<string, unknown>, ctx: { source: string }): Promise<GroupResourceRecord>;
  replace(id: string, input: Record<string, unknown>, ctx: { source: string }, ifMatch?: string): Promise<GroupResourceRecord>;
  patch(id: string, body: unknown, ctx: { source: string }, ifMatch?: string): Promise<GroupResourceRecord>;
  delete(id: string, ctx: { source: string }, ifMatch?: string): Promise<void>;
}

const etag = (version: number) => `W/"${version}"`;

/** Members are loaded only when the answer will show them (excludedAttributes=members is common). */
export function wantsMembers(shape: ProjectionOptions): boolean {
  const named = (list: string[] | undefined) =>
    list?.some((a) => /^(urn:ietf:params:scim:schemas:core:2\.0:group:)?members(\..*)?$/i.test(a.trim())) ?? false;
  if (named(shape.excludedAttributes) && !shape.attributes?.length) return false;
  if (shape.attributes && shape.attributes.length > 0) return named(shape.attributes);
  return true;
}

export function renderGroup(record: GroupResourceRecord, baseUrl: string, shape: ProjectionOptions): Record<string, unknown> {
  const { schemas: _declared, members: _stored, ...attributes } = record.document;
  const full: Record<string, unknown> = {
    id: record.id,
    ...attributes,
    ...(record.members
      ? { members: record.members.map((m) => ({ value: m.value, $ref: `${baseUrl}/Users/${m.value}`, display: m.display, type: 'User' })) }
      : {}),
    meta: {
      resourceType: 'Group',
      created: record.created,
      lastModified: record.lastModified,
      location: `${baseUrl}/Groups/${record.id}`,
      version: etag(record.version),
    },
  };
  const projected = project(full, shape, GROUP_RESOURCE);
  return { schemas: schemasFor(projected, GROUP_RESOURCE), ...projected };
}


function shapeOf(ctx: Context): ProjectionOptions {
  return parseSearch({ attributes: ctx.query['attributes'], excludedAttributes: ctx.query['excludedAttributes'] }, false, GROUP_RESOURCE).projection;
}

/** /Groups: the same list, search, projection, ETag and error rules as /Users. */
export function addGroupRoutes(router: Router, groups: GroupBackend, baseUrl: () => string): void {
  const source = (ctx: Context) => ({ source: (ctx.state as ScimState).source });
  const sendGroup = (ctx: Context, status: number, record: GroupResourceRecord) => {
    ctx.set('ETag', etag(record.version));
    sendScim(ctx, status, renderGroup(record, baseUrl(), shapeOf(ctx)));
  };
  const search = async (ctx: Context, request: SearchRequest) => {
    const { projection: shape, ...query } = request;
    const page = await groups.list(query, wantsMembers(shape), source(ctx));
    const resources = page.groups.map((g) => renderGroup(g, baseUrl(), shape));
    sendScim(ctx, 200, listResponse(resources, page.totalResults, request.startIndex));
  };

  router.get('/Groups', (ctx) => search(ctx, parseSearch(ctx.query, false, GROUP_RESOURCE)));
  router.post('/Groups/.search', async (ctx) => search(ctx, parseSearch(await readJsonObject(ctx), true, GROUP_RESOURCE)));
  router.post('/Groups', async (ctx) => {
    const record = await groups.create(normalizeGroupInput(await readJsonObject(ctx)), source(ctx));
    ctx.set('Location', `${baseUrl()}/Groups/${record.id}`);
    sendGroup(ctx, 201, record);
  });
  router.get('/Groups/:id', async (ctx) => {
    const record = await groups.get(ctx.params['id'] ?? '', wantsMembers(shapeOf(ctx)), source(ctx));
    if (noneMatch(ctx.get('if-none-match'), record.version)) {
      ctx.set('ETag', etag(record.version));
      ctx.status = 304;
      return;
    }
    sendGroup(ctx, 200, record);
  });
  router.put('/Groups/:id', async (ctx) => {
    const input = normalizeGroupInput(await readJsonObject(ctx));
    sendGroup(ctx, 200, await groups.replace(ctx.params['id'] ?? '', input, source(ctx), ctx.get('if-match') || undefined));
  });
  router.patch('/Groups/:id', async (ctx) => {
    const body = await readJsonObject(ctx);
    const record = await groups.patch(ctx.params['id'] ?? '', body, source(ctx), ctx.get('if-match') || undefined);
    // RFC 7644 §3.5.2: without `attributes`, 204 is allowed, and it spares sending back
    // thousands of members (Entra expects it).
    if (!ctx.query['attributes']) {
      ctx.set('ETag', etag(record.version));
      ctx.status = 204;
      return;
    }
    sendGroup(ctx, 200, record);
  });
  router.delete('/Groups/:id', async (ctx) => {
    await groups.delete(ctx.params['id'] ?? '', source(ctx), ctx.get('if-match') || undefined);
    ctx.status = 204;
  });
}
