/**
 * The User schemas as data, their /Schemas rendering (RFC 7643 §7), and the one place that turns
 * an attribute path as a client spells it into canonical names and definitions.
 */
import { CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, MATRIX_USER_SCHEMA } from './urns.ts';
import { COMMON_ATTRIBUTES, CORE_USER } from './coreUser.ts';
import { ENTERPRISE_USER, MATRIX_USER } from './extensions.ts';
import { findSub, type AttributeDef, type SchemaDef, type ScimDocument } from './types.ts';

export type { AttributeDef, AttributeType, Mutability, Returned, SchemaDef, ScimDocument, Uniqueness } from './types.ts';
export { findSub } from './types.ts';
export { CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, MATRIX_USER_SCHEMA };

export const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

/** The schemas of the User resource: the core schema first, then its extensions. */
export const USER_SCHEMAS: readonly SchemaDef[] = [CORE_USER, ENTERPRISE_USER, MATRIX_USER];

/** The extension schemas, in the order `schemas` lists them. */
export const USER_EXTENSIONS: readonly SchemaDef[] = [ENTERPRISE_USER, MATRIX_USER];

/** Spellings of the core URN that clients send; OneLogin uses the pre-RFC `urn:scim:schemas:core:2.0`. */
const CORE_ALIASES = [CORE_USER_SCHEMA, 'urn:scim:schemas:core:2.0:User', 'urn:scim:schemas:core:2.0'];

/** Every URN a path may start with, longest first so that a longer URN wins over its prefix. */
const URN_PREFIXES: { urn: string; schema: string }[] = [
  ...CORE_ALIASES.map((urn) => ({ urn, schema: CORE_USER_SCHEMA })),
  ...USER_EXTENSIONS.map((s) => ({ urn: s.id, schema: s.id })),
].sort((a, b) => b.urn.length - a.urn.length);

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

/** The canonical URN of a User schema (core, its aliases, or an extension), ignoring case. */
export function resolveSchemaUrn(text: string): string | undefined {
  const wanted = text.trim().toLowerCase();
  return URN_PREFIXES.find((p) => p.urn.toLowerCase() === wanted)?.schema;
}

/** The attributes a schema defines; for the core schema, the common attributes too. */
export function attributesOf(schema: string | undefined): AttributeDef[] {
  if (schema === undefined || schema === CORE_USER_SCHEMA) return [...COMMON_ATTRIBUTES, ...CORE_USER.attributes];
  return USER_EXTENSIONS.find((s) => s.id === schema)?.attributes ?? [];
}

function findAttribute(schema: string | undefined, name: string): AttributeDef | undefined {
  const wanted = name.toLowerCase();
  return attributesOf(schema).find((a) => a.name.toLowerCase() === wanted);
}

function splitUrn(path: string): { schema: string | undefined; rest: string } | undefined {
  const lower = path.toLowerCase();
  const prefix = URN_PREFIXES.find((p) => lower.startsWith(`${p.urn.toLowerCase()}:`));
  if (prefix) return { schema: prefix.schema, rest: path.slice(prefix.urn.length + 1) };
  return lower.startsWith('urn:') ? undefined : { schema: undefined, rest: path };
}

/**
 * Resolves `userName`, `name.givenName`, `emails.value`, `urn:…:enterprise:2.0:User:manager.value`
 * and the like, ignoring case. Undefined when the path names nothing this server knows.
 */
export function resolveAttribute(path: string): ResolvedAttribute | undefined {
  const split = splitUrn(path.trim());
  if (!split) return undefined;
  const parts = split.rest.split('.');
  if (parts.length > 2 || parts.some((p) => p === '')) return undefined;
  const [attrName = '', subName] = parts;
  const definition = findAttribute(split.schema, attrName);
  if (!definition) return undefined;
  const schema = split.schema === CORE_USER_SCHEMA ? undefined : split.schema;
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
export function schemasFor(doc: ScimDocument): string[] {
  const present = USER_EXTENSIONS.filter((s) => {
    const value = doc[s.id];
    return typeof value === 'object' && value !== null && Object.keys(value).length > 0;
  });
  return [CORE_USER_SCHEMA, ...present.map((s) => s.id)];
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

/** The Schema resources served at /Schemas (RFC 7643 §7). */
export function schemaDocuments(baseUrl: string): ScimDocument[] {
  return USER_SCHEMAS.map((schema) => ({
    schemas: [SCHEMA_SCHEMA],
    id: schema.id,
    name: schema.name,
    description: schema.description,
    attributes: schema.attributes.map(renderAttribute),
    meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${schema.id}` },
  }));
}
