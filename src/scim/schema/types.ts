/**
 * The vocabulary of SCIM schemas (RFC 7643 §2 and §7): attribute definitions as data, so that
 * parsing, PATCH, projection and the /Schemas endpoint all read the same characteristics.
 */

/** A SCIM resource as JSON: attribute names to values. */
export type ScimDocument = Record<string, unknown>;

export type AttributeType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'binary' | 'reference' | 'complex';
export type Mutability = 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
export type Returned = 'always' | 'never' | 'default' | 'request';
export type Uniqueness = 'none' | 'server' | 'global';

export interface AttributeDef {
  name: string;
  type: AttributeType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: Mutability;
  returned: Returned;
  uniqueness: Uniqueness;
  canonicalValues?: string[];
  referenceTypes?: string[];
  subAttributes?: AttributeDef[];
}

/** A schema (RFC 7643 §7) before it is rendered for /Schemas. */
export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttributeDef[];
}

/** Everything but name, type and description, optional: the defaults are RFC 7643 §2.2's. */
export type AttributeOptions = Partial<Omit<AttributeDef, 'name' | 'type' | 'description'>>;

export function attribute(name: string, type: AttributeType, description: string, options: AttributeOptions = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: false,
    description,
    required: false,
    caseExact: false,
    mutability: 'readWrite',
    returned: 'default',
    uniqueness: 'none',
    ...options,
  };
}

export const str = (name: string, description: string, options: AttributeOptions = {}): AttributeDef =>
  attribute(name, 'string', description, options);

export const complex = (
  name: string,
  description: string,
  subAttributes: AttributeDef[],
  options: AttributeOptions = {},
): AttributeDef => attribute(name, 'complex', description, { ...options, subAttributes });

/** Finds a sub-attribute by name, ignoring case. */
export function findSub(def: AttributeDef, name: string): AttributeDef | undefined {
  const wanted = name.toLowerCase();
  return def.subAttributes?.find((s) => s.name.toLowerCase() === wanted);
}
