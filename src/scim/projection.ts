/**
 * Attribute projection (RFC 7644 §3.4.2.5 and §3.9): `attributes` and `excludedAttributes`,
 * honouring each attribute's `returned` characteristic. Names are matched ignoring case and may
 * be sub-attributes (`name.givenName`), URN-qualified, or a whole extension's URN.
 */
import {
  attributesOf,
  CORE_USER_SCHEMA,
  findSub,
  resolveAttribute,
  resolveSchemaUrn,
  type AttributeDef,
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

function selection(names: string[]): Selection {
  const result: Selection = { schemas: new Set(), whole: new Set(), subs: new Map() };
  for (const name of names) {
    const urn = resolveSchemaUrn(name);
    if (urn !== undefined) {
      result.schemas.add(urn === CORE_USER_SCHEMA ? '' : urn);
      continue;
    }
    const r = resolveAttribute(name);
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
): Record<string, unknown> {
  const defs = attributesOf(schema);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(container)) {
    const def = defs.find((d) => d.name.toLowerCase() === key.toLowerCase());
    const projected = projectAttribute(def, attrKey(schema, def?.name ?? key), value, include, exclude, schema ?? '');
    if (projected !== undefined) out[key] = projected;
  }
  return out;
}

/** The document as the client asked to see it; `schemas` and `returned: always` attributes always stay. */
export function project(doc: ScimDocument, opts: ProjectionOptions): ScimDocument {
  const include = opts.attributes && opts.attributes.length > 0 ? selection(opts.attributes) : undefined;
  const exclude = selection(opts.excludedAttributes ?? []);
  const out: ScimDocument = {};
  for (const [key, value] of Object.entries(doc)) {
    const urn = key.toLowerCase() === 'schemas' ? undefined : resolveSchemaUrn(key);
    if (key.toLowerCase() === 'schemas') {
      out[key] = value;
    } else if (urn !== undefined && isRecord(value)) {
      const projected = projectContainer(value, urn === CORE_USER_SCHEMA ? undefined : urn, include, exclude);
      if (Object.keys(projected).length > 0) out[key] = projected;
    } else {
      Object.assign(out, projectContainer({ [key]: value }, undefined, include, exclude));
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
