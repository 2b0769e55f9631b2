/**
 * The body of a POST or PUT (a User unless told otherwise), made canonical. Following what IdPs
 * send (docs: idp-compat.md, rule 10), unknown attributes and schemas, nulls, empty values and
 * read-only attributes are dropped, not rejected, and never looked into. What the bridge keeps
 * must be sound, or the request is a 400 `invalidValue` naming the attribute, before anything is
 * stored (values.ts): a value of the wrong type (`"userName": 5`), a string with a lone UTF-16
 * surrogate, an entry of `emails`, `phoneNumbers`, `photos`, ... with a blank or missing
 * `value`, a group member without one. What the homeserver would refuse on top of that (lengths,
 * NUL) is the provisioning core's check (provisioning/mapping.ts, accountProblems).
 */
import { badRequest } from '../errors.ts';
import { logger } from '../../log.ts';
import {
  GROUP_RESOURCE,
  resolveAttribute,
  resolveSchemaUrn,
  targetOf,
  USER_RESOURCE,
  type ResolvedAttribute,
  type ResourceSchema,
  type ScimDocument,
} from '../schema/attributes.ts';
import { displayPath, prune, readAttr, withSchemas, writeAttr } from './document.ts';
import { isRecord, normalizeValue } from './values.ts';

const log = logger('ScimInput');

function setResolved(doc: ScimDocument, r: ResolvedAttribute, value: unknown): void {
  const path = { ...(r.schema ? { schema: r.schema } : {}), attr: r.attr };
  const current = readAttr(doc, path);
  if (r.sub !== undefined) {
    if (r.definition.multiValued) return; // `emails.value` as a body key names no single entry
    writeAttr(doc, path, { ...(isRecord(current) ? current : {}), [r.sub]: value });
  } else if (isRecord(current) && isRecord(value)) {
    writeAttr(doc, path, { ...current, ...value }); // `name` and `name.givenName` both given
  } else {
    writeAttr(doc, path, value);
  }
}

function absorbAttribute(doc: ScimDocument, key: string, value: unknown, resource: ResourceSchema): void {
  const resolved = resolveAttribute(key, resource);
  if (!resolved) {
    log.debug(`ignoring unknown ${resource.name} attribute ${key}`);
    return;
  }
  if (resolved.definition.mutability === 'readOnly' || targetOf(resolved).mutability === 'readOnly') return;
  const path = { ...(resolved.schema ? { schema: resolved.schema } : {}), attr: resolved.attr };
  const normalized = normalizeValue(targetOf(resolved), value, displayPath(path, resolved.sub));
  if (normalized !== undefined) setResolved(doc, resolved, normalized);
}

function absorb(doc: ScimDocument, key: string, value: unknown, resource: ResourceSchema): void {
  if (key.toLowerCase() === 'schemas') return;
  const urn = resolveSchemaUrn(key, resource);
  if (urn === undefined) {
    absorbAttribute(doc, key, value, resource);
    return;
  }
  if (!isRecord(value)) {
    if (value !== null) throw badRequest('invalidValue', `${key} must be an object holding the schema's attributes`);
    return;
  }
  for (const [inner, innerValue] of Object.entries(value)) absorbAttribute(doc, `${urn}:${inner}`, innerValue, resource);
}

function requireText(doc: ScimDocument, name: string): void {
  const value = doc[name];
  if (typeof value !== 'string' || value.trim() === '') throw badRequest('invalidValue', `${name} is required`);
}

/** Checks what every stored User must satisfy; PATCH calls it on its result. */
export function validateUser(doc: ScimDocument): void {
  requireText(doc, 'userName');
}

/** Checks what every stored Group must satisfy: a displayName, and members that each carry an id. */
export function validateGroup(doc: ScimDocument): void {
  requireText(doc, 'displayName');
  const members = doc['members'];
  if (members === undefined) return;
  if (!Array.isArray(members)) throw badRequest('invalidValue', 'members must be a list');
  members.forEach((member, i) => {
    const value = isRecord(member) ? member['value'] : undefined;
    if (typeof value !== 'string' || value === '') {
      throw badRequest('invalidValue', `members[${i}] needs a non-empty "value" (the id of the member)`);
    }
  });
}

const VALIDATORS: Record<ResourceSchema['name'], (doc: ScimDocument) => void> = {
  User: validateUser,
  Group: validateGroup,
};

/** Checks what every stored resource of the type must satisfy; PATCH calls it on its result. */
export function validateResource(doc: ScimDocument, resource: ResourceSchema = USER_RESOURCE): void {
  VALIDATORS[resource.name](doc);
}

/**
 * Canonicalises a POST or PUT body: attribute names by the resource's schemas (ignoring case),
 * extension objects under their canonical URN, aliases of the core URN (OneLogin's
 * `urn:scim:schemas:core:2.0`, Microsoft's Group URN) read as core, booleans from strings,
 * `schemas` listing the core URN and the extensions present. A User's `password` is kept: the
 * caller takes it out before storing. A Group's `members` keep `value` (and `$ref`, `type`);
 * `display` is the server's to fill.
 */
export function normalizeInput(body: unknown, resource: ResourceSchema = USER_RESOURCE): ScimDocument {
  if (!isRecord(body)) throw badRequest('invalidSyntax', `a ${resource.name} must be a JSON object`);
  const doc: ScimDocument = {};
  for (const [key, value] of Object.entries(body)) absorb(doc, key, value, resource);
  prune(doc);
  validateResource(doc, resource);
  return withSchemas(doc, resource);
}

/** A User body of a POST or PUT, made canonical (see normalizeInput). */
export function normalizeUserInput(body: unknown): ScimDocument {
  return normalizeInput(body, USER_RESOURCE);
}

/** A Group body of a POST or PUT, made canonical (see normalizeInput). */
export function normalizeGroupInput(body: unknown): ScimDocument {
  return normalizeInput(body, GROUP_RESOURCE);
}
