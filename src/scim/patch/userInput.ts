/**
 * The User body of a POST or PUT, made canonical. Following what IdPs send (docs: idp-compat.md,
 * rule 10), unknown attributes and schemas, nulls, empty values and read-only attributes are
 * dropped, not rejected; a value of the wrong type is a 400 `invalidValue`.
 */
import { badRequest } from '../errors.ts';
import { logger } from '../../log.ts';
import { resolveAttribute, resolveSchemaUrn, targetOf, type ResolvedAttribute, type ScimDocument } from '../schema/attributes.ts';
import { displayPath, prune, readAttr, withSchemas, writeAttr } from './document.ts';
import { isRecord, normalizeValue } from './values.ts';

const log = logger('ScimUserInput');

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

function absorbAttribute(doc: ScimDocument, key: string, value: unknown): void {
  const resolved = resolveAttribute(key);
  if (!resolved) {
    log.debug(`ignoring unknown attribute ${key}`);
    return;
  }
  if (resolved.definition.mutability === 'readOnly' || targetOf(resolved).mutability === 'readOnly') return;
  const path = { ...(resolved.schema ? { schema: resolved.schema } : {}), attr: resolved.attr };
  const normalized = normalizeValue(targetOf(resolved), value, displayPath(path, resolved.sub));
  if (normalized !== undefined) setResolved(doc, resolved, normalized);
}

function absorb(doc: ScimDocument, key: string, value: unknown): void {
  if (key.toLowerCase() === 'schemas') return;
  const urn = resolveSchemaUrn(key);
  if (urn === undefined) {
    absorbAttribute(doc, key, value);
    return;
  }
  if (!isRecord(value)) {
    if (value !== null) throw badRequest('invalidValue', `${key} must be an object holding the extension's attributes`);
    return;
  }
  for (const [inner, innerValue] of Object.entries(value)) absorbAttribute(doc, `${urn}:${inner}`, innerValue);
}

/** Checks what every stored User must satisfy; PATCH calls it on its result. */
export function validateUser(doc: ScimDocument): void {
  const userName = doc['userName'];
  if (typeof userName !== 'string' || userName.trim() === '') throw badRequest('invalidValue', 'userName is required');
}

/**
 * Canonicalises a POST or PUT body: attribute names by the schema (ignoring case), extension
 * objects under their canonical URN, OneLogin's `urn:scim:schemas:core:2.0` read as core,
 * booleans from strings, `schemas` listing the extensions present. `password` is kept: the
 * caller takes it out before storing.
 */
export function normalizeUserInput(body: unknown): ScimDocument {
  if (!isRecord(body)) throw badRequest('invalidSyntax', 'a User must be a JSON object');
  const doc: ScimDocument = {};
  for (const [key, value] of Object.entries(body)) absorb(doc, key, value);
  prune(doc);
  validateUser(doc);
  return withSchemas(doc);
}
