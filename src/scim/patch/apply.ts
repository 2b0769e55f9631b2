/**
 * SCIM PATCH (RFC 7644 §3.5.2) on a User or Group document, with the shapes IdPs really send: op
 * names in any case, path-less add/replace with plain, dotted and URN keys, value filters that
 * create the entry they name, remove by value (matching `value` only), members de-duplicated on
 * their id, string booleans. All operations are applied to a copy; the first failure throws and
 * the input is untouched. The engine only computes the new document: whether member ids exist
 * is the provisioning core's question.
 */
import { badRequest, ScimError } from '../errors.ts';
import { parsePatchPath } from '../filter/parse.ts';
import type { AttrPath, PatchPath } from '../filter/ast.ts';
import { attributesOf, resolveSchemaUrn, USER_RESOURCE, type AttributeDef, type ResourceSchema, type ScimDocument } from '../schema/attributes.ts';
import { definitionsOf, displayPath, prune, readAttr, withSchemas, writeAttr } from './document.ts';
import { applyFiltered, applyToAllEntries, removeByValue, type Op } from './multiValued.ts';
import { dedupe, getKey, isRecord, keepPrimary, normalizeSingle, normalizeValue, sameValue } from './values.ts';
import { validateResource } from './input.ts';

export { normalizeGroupInput, normalizeInput, normalizeUserInput, validateGroup, validateResource, validateUser } from './input.ts';

export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

/** Keys of a path-less value that describe the resource rather than change it. */
const IGNORED_KEYS = new Set(['id', 'schemas', 'meta']);

function readOperations(body: unknown): Record<string, unknown>[] {
  if (!isRecord(body)) throw badRequest('invalidSyntax', 'a PATCH body must be a JSON object');
  const schemas = getKey(body, 'schemas');
  if (schemas !== undefined) {
    const listed = Array.isArray(schemas) ? schemas : [schemas];
    if (!listed.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP_SCHEMA.toLowerCase())) {
      throw badRequest('invalidSyntax', `a PATCH body's schemas must be ["${PATCH_OP_SCHEMA}"]`);
    }
  }
  const operations = getKey(body, 'Operations');
  if (!Array.isArray(operations)) throw badRequest('invalidSyntax', 'a PATCH body needs an "Operations" array');
  return operations.map((op, i) => {
    if (!isRecord(op)) throw badRequest('invalidSyntax', `Operations[${i}] must be an object`);
    return op;
  });
}

function readOp(operation: Record<string, unknown>, index: number): Op {
  const op = getKey(operation, 'op');
  const lower = typeof op === 'string' ? op.trim().toLowerCase() : '';
  if (lower === 'add' || lower === 'replace' || lower === 'remove') return lower;
  throw badRequest('invalidSyntax', `Operations[${index}].op must be "add", "replace" or "remove", not ${JSON.stringify(op)}`);
}

function checkWritable(def: AttributeDef, subDef: AttributeDef | undefined, name: string): void {
  if (def.mutability === 'readOnly' || subDef?.mutability === 'readOnly') {
    throw badRequest('mutability', `${name} is read-only and cannot be changed`);
  }
}

/** add/replace/remove on a whole attribute (no filter, no sub-attribute). */
function applyAttribute(doc: ScimDocument, op: Op, path: AttrPath, def: AttributeDef, value: unknown): void {
  const name = displayPath(path);
  const current = readAttr(doc, path);
  if (op === 'remove') {
    const byValue = def.multiValued && value !== undefined && value !== null;
    writeAttr(doc, path, byValue ? removeByValue(current, def, value, name) : undefined);
    return;
  }
  const normalized = normalizeValue(def, value, name);
  if (normalized === undefined) {
    if (op === 'replace') writeAttr(doc, path, undefined); // replace with null or [] clears
    return;
  }
  if (def.multiValued && op === 'add') {
    const added = normalized as unknown[];
    const merged = dedupe([...(Array.isArray(current) ? current : []), ...added], def);
    const primary = added.find((e) => isRecord(e) && e['primary'] === true);
    if (primary !== undefined) keepPrimary(merged, merged.findIndex((e) => sameValue(e, primary)));
    writeAttr(doc, path, merged);
  } else if (!def.multiValued && isRecord(current) && isRecord(normalized)) {
    // A complex target: the sub-attributes given replace, the others stay (RFC 7644 §3.5.2.3).
    writeAttr(doc, path, { ...current, ...normalized });
  } else {
    writeAttr(doc, path, normalized);
  }
}

/** `name.familyName`, `manager.value`: one sub-attribute of a single complex attribute. */
function applySub(doc: ScimDocument, op: Op, path: AttrPath, def: AttributeDef, subDef: AttributeDef, value: unknown): void {
  const base = { ...(path.schema ? { schema: path.schema } : {}), attr: path.attr };
  const current = readAttr(doc, base);
  const name = displayPath(path);
  if (def.multiValued) {
    writeAttr(doc, base, applyToAllEntries(current, op, def, subDef.name, value, name));
    return;
  }
  const updated: Record<string, unknown> = { ...(isRecord(current) ? current : {}) };
  const normalized = op === 'remove' ? undefined : normalizeSingle(subDef, value, name);
  if (normalized === undefined) delete updated[subDef.name];
  else updated[subDef.name] = normalized;
  writeAttr(doc, base, Object.keys(updated).length > 0 ? updated : undefined);
}

function applyAtPath(doc: ScimDocument, op: Op, target: PatchPath, value: unknown, resource: ResourceSchema): void {
  const { path, filter, sub } = target;
  const { def, subDef } = definitionsOf(path, sub, resource);
  const name = displayPath(path, sub);
  checkWritable(def, subDef, name);
  if (filter) {
    if (!def.multiValued) throw badRequest('invalidPath', `${displayPath(path)} is not multi-valued and cannot take a value filter`);
    const updated = applyFiltered(readAttr(doc, path), op, { def, filter, ...(sub ? { sub } : {}), name }, value);
    writeAttr(doc, path, updated);
  } else if (subDef) {
    applySub(doc, op, path, def, subDef, value);
  } else {
    applyAttribute(doc, op, path, def, value);
  }
}

/** A path-less add/replace (or one whose path is a schema URN): each key of the value is a path. */
function applyObject(doc: ScimDocument, op: Op, value: unknown, schema: string | undefined, resource: ResourceSchema): void {
  if (!isRecord(value)) {
    throw badRequest('invalidValue', `${op} ${schema ? `to ${schema} ` : 'without a path '}needs an object value`);
  }
  for (const [key, inner] of Object.entries(value)) {
    const inCore = schema === undefined || schema === resource.core.id;
    if (inCore && IGNORED_KEYS.has(key.toLowerCase())) continue;
    const urn = schema === undefined ? resolveSchemaUrn(key, resource) : undefined;
    if (urn !== undefined) {
      applyObject(doc, op, inner, urn, resource);
      continue;
    }
    const keyPath = schema ? `${schema}:${key}` : key;
    // Like POST and PUT bodies: keys the server does not know, or cannot change (clients
    // often send back what they read, groups and matrixId included), are ignored here;
    // an explicit path naming them is still an error.
    let target: PatchPath;
    try {
      target = parsePatchPath(keyPath, resource);
    } catch (error) {
      if (error instanceof ScimError && error.scimType === 'invalidPath') continue;
      throw error;
    }
    const { def, subDef } = definitionsOf(target.path, target.sub, resource);
    if (def.mutability === 'readOnly' || subDef?.mutability === 'readOnly') continue;
    applyAtPath(doc, op, target, inner, resource);
  }
}

function applyOperation(doc: ScimDocument, operation: Record<string, unknown>, index: number, resource: ResourceSchema): void {
  const op = readOp(operation, index);
  const rawPath = getKey(operation, 'path');
  const value = getKey(operation, 'value');
  if (rawPath !== undefined && rawPath !== null && typeof rawPath !== 'string') {
    throw badRequest('invalidPath', `Operations[${index}].path must be a string`);
  }
  const path = typeof rawPath === 'string' ? rawPath.trim() : '';
  if (path === '') {
    if (op === 'remove') throw badRequest('noTarget', `Operations[${index}]: remove needs a path`);
    applyObject(doc, op, value, undefined, resource);
    return;
  }
  const urn = resolveSchemaUrn(path, resource);
  if (urn === undefined) applyAtPath(doc, op, parsePatchPath(path, resource), value, resource);
  else if (op !== 'remove') applyObject(doc, op, value, urn, resource);
  else if (urn === resource.core.id) throw badRequest('invalidPath', 'the core schema cannot be removed');
  else if (attributesOf(urn, resource).every((a) => a.mutability === 'readOnly')) {
    // Like a path naming one of its attributes: the server owns them, a client cannot remove them.
    throw badRequest('mutability', `${urn} holds only read-only attributes and cannot be removed`);
  } else delete doc[urn];
}

/**
 * Applies a PatchOp body to a document of the resource type (a User unless told otherwise) and
 * returns the new document, checked like a POST body; the input is never changed.
 */
export function applyPatch(doc: ScimDocument, body: unknown, resource: ResourceSchema = USER_RESOURCE): ScimDocument {
  const operations = readOperations(body);
  const working = structuredClone(doc);
  operations.forEach((operation, index) => applyOperation(working, operation, index, resource));
  prune(working);
  const result = withSchemas(working, resource);
  validateResource(result, resource);
  return result;
}
