/**
 * The schemas as data, their /Schemas rendering (RFC 7643 §7), and the one place that turns an
 * attribute path as a client spells it into canonical names and definitions, for each resource
 * type (User by default, Group).
 */
import { CORE_GROUP_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, MATRIX_USER_SCHEMA } from './urns.ts';
import { COMMON_ATTRIBUTES } from './coreUser.ts';
import { coreUrnsOf, RESOURCES, USER_RESOURCE, type ResourceSchema } from './resources.ts';
import { findSub, type AttributeDef, type SchemaDef, type ScimDocument } from './types.ts';

export type { AttributeDef, AttributeType, Mutability, Returned, SchemaDef, ScimDocument, Uniqueness } from './types.ts';
export type { ResourceSchema } from './resources.ts';
export { findSub } from './types.ts';
export { GROUP_RESOURCE, RESOURCES, USER_RESOURCE } from './resources.ts';
export { CORE_GROUP_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, MATRIX_USER_SCHEMA };

export const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

/** The schemas of the User resource: the core schema first, then its extensions. */
export const USER_SCHEMAS: readonly SchemaDef[] = [USER_RESOURCE.core, ...USER_RESOURCE.extensions];

/** The User extension schemas, in the order `schemas` lists them. */
export const USER_EXTENSIONS: readonly SchemaDef[] = USER_RESOURCE.extensions;

interface UrnPrefix {
  urn: string;
  schema: string;
}

const prefixCache = new WeakMap<ResourceSchema, UrnPrefix[]>();

/** Every URN a path of the resource may start with, longest first so that a longer URN wins over its prefix. */
function urnPrefixes(resource: ResourceSchema): UrnPrefix[] {
  const cached = prefixCache.get(resource);
  if (cached) return cached;
  const prefixes = [
    ...coreUrnsOf(resource).map((urn) => ({ urn, schema: resource.core.id })),
    ...resource.extensions.map((s) => ({ urn: s.id, schema: s.id })),
  ].sort((a, b) => b.urn.length - a.urn.length);
  prefixCache.set(resource, prefixes);
  return prefixes;
}

export interface ResolvedAttribute {
  /** The extension's URN; absent for core and common attributes. */
  schema?: string;
  /** The attribute's canonical name. */
  attr: string;
  /** The sub-attribute's canonical name, when the path names one. */
  sub?: string;
  /** The definition of the attribute. */
  definition: AttributeDef;
  /** The definition of the sub-attribute, when the path names one. */
  subDefinition?: AttributeDef;
}

/** The canonical URN of one of the resource's schemas (core, its aliases, or an extension), ignoring case. */
export function resolveSchemaUrn(text: string, resource: ResourceSchema = USER_RESOURCE): string | undefined {
  const wanted = text.trim().toLowerCase();
  return urnPrefixes(resource).find((p) => p.urn.toLowerCase() === wanted)?.schema;
}

/** The attributes a schema of the resource defines; for the core schema (or none), the common attributes too. */
export function attributesOf(schema: string | undefined, resource: ResourceSchema = USER_RESOURCE): AttributeDef[] {
  if (schema === undefined || schema === resource.core.id) return [...COMMON_ATTRIBUTES, ...resource.core.attributes];
  return resource.extensions.find((s) => s.id === schema)?.attributes ?? [];
}

function findAttribute(schema: string | undefined, name: string, resource: ResourceSchema): AttributeDef | undefined {
  const wanted = name.toLowerCase();
  return attributesOf(schema, resource).find((a) => a.name.toLowerCase() === wanted);
}

function splitUrn(path: string, resource: ResourceSchema): { schema: string | undefined; rest: string } | undefined {
  const lower = path.toLowerCase();
  const prefix = urnPrefixes(resource).find((p) => lower.startsWith(`${p.urn.toLowerCase()}:`));
  if (prefix) return { schema: prefix.schema, rest: path.slice(prefix.urn.length + 1) };
  return lower.startsWith('urn:') ? undefined : { schema: undefined, rest: path };
}

/**
 * Resolves `userName`, `name.givenName`, `emails.value`, `urn:…:enterprise:2.0:User:manager.value`,
 * `members.value` and the like, ignoring case, against the resource's schemas. Undefined when the
 * path names nothing this server knows.
 */
export function resolveAttribute(path: string, resource: ResourceSchema = USER_RESOURCE): ResolvedAttribute | undefined {
  const split = splitUrn(path.trim(), resource);
  if (!split) return undefined;
  const parts = split.rest.split('.');
  if (parts.length > 2 || parts.some((p) => p === '')) return undefined;
  const [attrName = '', subName] = parts;
  const definition = findAttribute(split.schema, attrName, resource);
  if (!definition) return undefined;
  const schema = split.schema === resource.core.id ? undefined : split.schema;
  const base = { ...(schema ? { schema } : {}), attr: definition.name, definition };
  if (subName === undefined) return base;
  const subDefinition = findSub(definition, subName);
  if (!subDefinition) return undefined;
  return { ...base, sub: subDefinition.name, subDefinition };
}

/** The definition a resolved path points at: the sub-attribute's if there is one. */
export function targetOf(resolved: ResolvedAttribute): AttributeDef {
  return resolved.subDefinition ?? resolved.definition;
}

/** `schemas` for a document: the core URN plus the extensions that hold a value. */
export function schemasFor(doc: ScimDocument, resource: ResourceSchema = USER_RESOURCE): string[] {
  const present = resource.extensions.filter((s) => {
    const value = doc[s.id];
    return typeof value === 'object' && value !== null && Object.keys(value).length > 0;
  });
  return [resource.core.id, ...present.map((s) => s.id)];
}

function renderAttribute(def: AttributeDef): Record<string, unknown> {
  return {
    name: def.name,
    type: def.type,
    ...(def.subAttributes ? { subAttributes: def.subAttributes.map(renderAttribute) } : {}),
    multiValued: def.multiValued,
    description: def.description,
    required: def.required,
    ...(def.canonicalValues ? { canonicalValues: def.canonicalValues } : {}),
    caseExact: def.caseExact,
    mutability: def.mutability,
    returned: def.returned,
    uniqueness: def.uniqueness,
    ...(def.referenceTypes ? { referenceTypes: def.referenceTypes } : {}),
  };
}

/** The Schema resources served at /Schemas (RFC 7643 §7): every schema of every resource type. */
export function schemaDocuments(baseUrl: string): ScimDocument[] {
  return RESOURCES.flatMap((r) => [r.core, ...r.extensions]).map((schema) => ({
    schemas: [SCHEMA_SCHEMA],
    id: schema.id,
    name: schema.name,
    description: schema.description,
    attributes: schema.attributes.map(renderAttribute),
    meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${schema.id}` },
  }));
}
