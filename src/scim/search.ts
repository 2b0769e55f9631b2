import { z } from 'zod';
import { badRequest } from './errors.ts';
import { DEFAULT_PAGE_SIZE, LIST_RESPONSE_SCHEMA, MAX_PAGE_SIZE } from './discovery.ts';
import type { AttrPath, Filter } from './filter/ast.ts';
import { parseFilter, parsePatchPath } from './filter/parse.ts';
import { parseAttributeList, type ProjectionOptions } from './projection.ts';
import { USER_RESOURCE, type ResourceSchema } from './schema/attributes.ts';

/**
 * A list or search request (RFC 7644 §3.4.2 and §3.4.3): the same parameters arrive as a
 * query string on GET and as a SearchRequest body on POST .search.
 */
export const SEARCH_REQUEST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

export interface SearchRequest {
  filter?: Filter;
  sort?: { path: AttrPath; descending: boolean };
  /** 1-based; values below 1 are taken as 1 (RFC 7644 §3.4.2.4). */
  startIndex: number;
  /** Page size, clamped to 0..MAX_PAGE_SIZE. */
  count: number;
  projection: ProjectionOptions;
}

const integer = (name: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
    z.number({ error: `${name} must be an integer` }).int(`${name} must be an integer`),
  );

const attributeList = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v.join(',') : v));

const parameters = z.object({
  filter: z.string().optional(),
  sortBy: z.string().optional(),
  sortOrder: z.string().optional(),
  startIndex: integer('startIndex').optional(),
  count: integer('count').optional(),
  attributes: attributeList.optional(),
  excludedAttributes: attributeList.optional(),
});

/** Reads the parameters case-insensitively: IdPs send `startindex`, `Count`, `SortBy`. */
function canonicalKeys(raw: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(parameters.shape);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const name = names.find((n) => n.toLowerCase() === key.toLowerCase());
    if (name) out[name] = Array.isArray(value) && name !== 'attributes' && name !== 'excludedAttributes' ? value[0] : value;
  }
  return out;
}

function sortOf(sortBy: string | undefined, sortOrder: string | undefined, resource: ResourceSchema): SearchRequest['sort'] {
  const order = sortOrder?.trim().toLowerCase();
  if (order !== undefined && order !== 'ascending' && order !== 'descending') {
    throw badRequest('invalidValue', `sortOrder must be "ascending" or "descending", not "${sortOrder}"`);
  }
  if (sortBy === undefined || sortBy.trim() === '') return undefined;
  const target = parsePatchPath(sortBy.trim(), resource);
  if (target.filter) throw badRequest('invalidValue', `sortBy cannot hold a filter: "${sortBy}"`);
  return { path: target.sub ? { ...target.path, sub: target.sub } : target.path, descending: order === 'descending' };
}

/** Parses list parameters from a query string or a SearchRequest body. */
export function parseSearch(raw: Record<string, unknown>, fromBody: boolean, resource: ResourceSchema = USER_RESOURCE): SearchRequest {
  if (fromBody) {
    const schemas = raw['schemas'];
    if (schemas !== undefined && !(Array.isArray(schemas) && schemas.includes(SEARCH_REQUEST_SCHEMA))) {
      throw badRequest('invalidSyntax', `a search request's schemas must be ["${SEARCH_REQUEST_SCHEMA}"]`);
    }
  }
  const result = parameters.safeParse(canonicalKeys(raw));
  if (!result.success) {
    const issue = result.error.issues[0];
    throw badRequest('invalidValue', `${issue?.path.join('.') || 'parameter'}: ${issue?.message ?? 'invalid'}`);
  }
  const p = result.data;
  const filter = p.filter !== undefined && p.filter.trim() !== '' ? parseFilter(p.filter, resource) : undefined;
  const sort = sortOf(p.sortBy, p.sortOrder, resource);
  const attributes = parseAttributeList(p.attributes);
  const excludedAttributes = parseAttributeList(p.excludedAttributes);
  return {
    ...(filter ? { filter } : {}),
    ...(sort ? { sort } : {}),
    startIndex: Math.max(1, p.startIndex ?? 1),
    count: Math.min(MAX_PAGE_SIZE, Math.max(0, p.count ?? DEFAULT_PAGE_SIZE)),
    projection: { ...(attributes ? { attributes } : {}), ...(excludedAttributes ? { excludedAttributes } : {}) },
  };
}

export function listResponse(resources: unknown[], totalResults: number, startIndex: number): Record<string, unknown> {
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults,
    startIndex,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}
