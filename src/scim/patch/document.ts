/**
 * Reading and writing attributes of a document by canonical path: core attributes at the top
 * level, extension attributes inside the object keyed by the extension's URN.
 */
import { badRequest } from '../errors.ts';
import { attributesOf, findSub, schemasFor, type AttributeDef, type ResourceSchema, type ScimDocument } from '../schema/attributes.ts';
import type { AttrPath } from '../filter/ast.ts';
import { isRecord } from './values.ts';

/** How an attribute path is written in messages: `urn:…:User:manager.value`, `name.givenName`. */
export function displayPath(path: AttrPath, sub?: string): string {
  const leaf = path.sub ?? sub;
  return `${path.schema ? `${path.schema}:` : ''}${path.attr}${leaf ? `.${leaf}` : ''}`;
}

/** The definitions of a canonical path; a path the parser produced always has them. */
export function definitionsOf(path: AttrPath, sub: string | undefined, resource: ResourceSchema): { def: AttributeDef; subDef?: AttributeDef } {
  const def = attributesOf(path.schema, resource).find((a) => a.name === path.attr);
  const leaf = path.sub ?? sub;
  const subDef = def && leaf !== undefined ? findSub(def, leaf) : undefined;
  if (!def || (leaf !== undefined && !subDef)) throw badRequest('invalidPath', `unknown attribute ${displayPath(path, sub)}`);
  return subDef ? { def, subDef } : { def };
}

function container(doc: ScimDocument, schema: string | undefined, create: boolean): Record<string, unknown> | undefined {
  if (schema === undefined) return doc;
  const existing = doc[schema];
  if (isRecord(existing)) return existing;
  if (!create) return undefined;
  const made: Record<string, unknown> = {};
  doc[schema] = made;
  return made;
}

export function readAttr(doc: ScimDocument, path: AttrPath): unknown {
  return container(doc, path.schema, false)?.[path.attr];
}

/** Sets the attribute, or deletes it when the value is undefined. */
export function writeAttr(doc: ScimDocument, path: AttrPath, value: unknown): void {
  if (value === undefined) {
    const holder = container(doc, path.schema, false);
    if (holder) delete holder[path.attr];
    return;
  }
  const holder = container(doc, path.schema, true);
  if (holder) holder[path.attr] = value;
}

function isEmptyValue(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  return isRecord(value) && Object.keys(value).length === 0;
}

function pruneObject(obj: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(obj)) {
    if (Array.isArray(value)) obj[key] = value.filter((e) => !isEmptyValue(e));
    if (isEmptyValue(obj[key])) delete obj[key];
  }
}

/** Removes empty values and empty extension objects left behind by removals. */
export function prune(doc: ScimDocument): void {
  for (const value of Object.values(doc)) if (isRecord(value)) pruneObject(value);
  pruneObject(doc);
}

/** The document with `schemas` first: the core URN plus the extensions it holds. */
export function withSchemas(doc: ScimDocument, resource: ResourceSchema): ScimDocument {
  const { schemas: _ignored, ...rest } = doc;
  return { schemas: schemasFor(rest, resource), ...rest };
}
