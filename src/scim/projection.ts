/**
 * Attribute projection (RFC 7644 §3.4.2.5 and §3.9): `attributes` and `excludedAttributes`,
 * honouring each attribute's `returned` characteristic. Names are matched ignoring case and may
 * be sub-attributes (`name.givenName`), URN-qualified, or a whole extension's URN.
 */
import {
  attributesOf,
  findSub,
  resolveAttribute,
  resolveSchemaUrn,
  USER_RESOURCE,
  type AttributeDef,
  type ResourceSchema,
  type ScimDocument,
} from './schema/attributes.ts';

export interface ProjectionOptions {
  attributes?: string[];
  excludedAttributes?: string[];
}

/** The parsed attribute names: whole schemas, whole attributes, and sub-attributes per attribute. */
interface Selection {
  schemas: Set<string>;
  whole: Set<string>;
  subs: Map<string, Set<string>>;
}

const attrKey = (schema: string | undefined, attr: string): string => `${schema ?? ''}|${attr}`;

function selection(names: string[], resource: ResourceSchema): Selection {
  const result: Selection = { schemas: new Set(), whole: new Set(), subs: new Map() };
  for (const name of names) {
    const urn = resolveSchemaUrn(name, resource);
    if (urn !== undefined) {
      result.schemas.add(urn === resource.core.id ? '' : urn);
      continue;
    }
    const r = resolveAttribute(name, resource);
    if (!r) continue; // RFC 7644 does not make an unknown name an error; it selects nothing.
    const key = attrKey(r.schema, r.attr);
    if (r.sub === undefined) result.whole.add(key);
    else result.subs.set(key, new Set([...(result.subs.get(key) ?? []), r.sub]));
  }
  return result;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Keeps or drops sub-attributes of a complex value (one object or a list of them). */
function filterSubs(value: unknown, keep: (sub: string) => boolean): unknown {
  const pick = (entry: unknown): unknown =>
    isRecord(entry) ? Object.fromEntries(Object.entries(entry).filter(([k]) => keep(k))) : entry;
  const picked = Array.isArray(value) ? value.map(pick) : pick(value);
  if (Array.isArray(picked)) {
    const nonEmpty = picked.filter((e) => !isRecord(e) || Object.keys(e).length > 0);
    return nonEmpty.length > 0 ? nonEmpty : undefined;
  }
  return isRecord(picked) && Object.keys(picked).length === 0 ? undefined : picked;
}

function subReturned(def: AttributeDef, sub: string): string {
  return findSub(def, sub)?.returned ?? 'default';
}

function projectAttribute(
  def: AttributeDef | undefined,
  key: string,
  value: unknown,
  include: Selection | undefined,
  exclude: Selection,
  schemaKey: string,
): unknown {
  if (def?.returned === 'never') return undefined;
  if (def?.returned === 'always') return value;
  const wanted = include?.subs.get(key);
  const wholeIncluded = include === undefined ? def?.returned !== 'request' : include.whole.has(key) || include.schemas.has(schemaKey);
  if (!wholeIncluded && !wanted) return undefined;
  if (exclude.whole.has(key) || exclude.schemas.has(schemaKey)) return undefined;
  if (!def || def.type !== 'complex') return value;
  const excludedSubs = exclude.subs.get(key);
  const keep = (sub: string): boolean => {
    const canonical = findSub(def, sub)?.name ?? sub;
    const returned = subReturned(def, sub);
    if (returned === 'never') return false;
    if (returned === 'always') return true;
    if (returned === 'request') return wanted?.has(canonical) ?? false;
    if (excludedSubs?.has(canonical)) return false;
    return wholeIncluded || (wanted?.has(canonical) ?? false);
  };
  return filterSubs(value, keep);
}

function projectContainer(
  container: Record<string, unknown>,
  schema: string | undefined,
  include: Selection | undefined,
  exclude: Selection,
  resource: ResourceSchema,
): Record<string, unknown> {
  const defs = attributesOf(schema, resource);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(container)) {
    const def = defs.find((d) => d.name.toLowerCase() === key.toLowerCase());
    const projected = projectAttribute(def, attrKey(schema, def?.name ?? key), value, include, exclude, schema ?? '');
    if (projected !== undefined) out[key] = projected;
  }
  return out;
}

/**
 * The document (a User unless told otherwise) as the client asked to see it; `schemas` and
 * `returned: always` attributes always stay. For a Group, `excludedAttributes=members` drops
 * the members.
 */
export function project(doc: ScimDocument, opts: ProjectionOptions, resource: ResourceSchema = USER_RESOURCE): ScimDocument {
  const include = opts.attributes && opts.attributes.length > 0 ? selection(opts.attributes, resource) : undefined;
  const exclude = selection(opts.excludedAttributes ?? [], resource);
  const out: ScimDocument = {};
  for (const [key, value] of Object.entries(doc)) {
    const urn = key.toLowerCase() === 'schemas' ? undefined : resolveSchemaUrn(key, resource);
    if (key.toLowerCase() === 'schemas') {
      out[key] = value;
    } else if (urn !== undefined && isRecord(value)) {
      const projected = projectContainer(value, urn === resource.core.id ? undefined : urn, include, exclude, resource);
      if (Object.keys(projected).length > 0) out[key] = projected;
    } else {
      Object.assign(out, projectContainer({ [key]: value }, undefined, include, exclude, resource));
    }
  }
  return out;
}

/** Splits an `attributes` or `excludedAttributes` query parameter; undefined when it names nothing. */
export function parseAttributeList(text?: string): string[] | undefined {
  if (text === undefined) return undefined;
  const names = text
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  return names.length > 0 ? names : undefined;
}
