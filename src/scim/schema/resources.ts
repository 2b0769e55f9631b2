/**
 * The resource types this server serves (RFC 7643 §6): each is a core schema and its extensions.
 * Every schema-driven function (paths, filters, PATCH, projection, input) takes one of these.
 */
import { CORE_GROUP } from './coreGroup.ts';
import { CORE_USER } from './coreUser.ts';
import { ENTERPRISE_USER, MATRIX_USER } from './extensions.ts';
import type { SchemaDef } from './types.ts';
import { MICROSOFT_GROUP_SCHEMA, ONELOGIN_CORE_SCHEMA } from './urns.ts';

export interface ResourceSchema {
  name: 'User' | 'Group';
  /** The core schema; its attributes sit at the top level of a document, with id, externalId, meta. */
  core: SchemaDef;
  /** The extension schemas, in the order `schemas` lists them; each one's attributes sit under its URN. */
  extensions: SchemaDef[];
}

export const USER_RESOURCE: ResourceSchema = { name: 'User', core: CORE_USER, extensions: [ENTERPRISE_USER, MATRIX_USER] };

export const GROUP_RESOURCE: ResourceSchema = { name: 'Group', core: CORE_GROUP, extensions: [] };

/** Every resource type, in the order /Schemas lists their schemas. */
export const RESOURCES: readonly ResourceSchema[] = [USER_RESOURCE, GROUP_RESOURCE];

/**
 * Spellings of each core URN that clients send, read as the core URN: OneLogin uses the pre-RFC
 * `urn:scim:schemas:core:2.0` (with and without the resource name), Entra may send the Group
 * schema id of Microsoft's old documentation (docs: idp-compat.md, Entra, Groups).
 */
const CORE_ALIASES: Record<ResourceSchema['name'], readonly string[]> = {
  User: [`${ONELOGIN_CORE_SCHEMA}:User`, ONELOGIN_CORE_SCHEMA],
  Group: [`${ONELOGIN_CORE_SCHEMA}:Group`, ONELOGIN_CORE_SCHEMA, MICROSOFT_GROUP_SCHEMA],
};

/** The core URN of the resource and the other spellings read as it. */
export function coreUrnsOf(resource: ResourceSchema): string[] {
  return [resource.core.id, ...CORE_ALIASES[resource.name]];
}
