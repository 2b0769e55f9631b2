/**
 * Turns a value as an IdP sent it into the canonical form of an attribute: canonical
 * sub-attribute names, booleans from "True"/"False", `manager` strings as `{ value }`, and a
 * 400 `invalidValue` naming the attribute when the value cannot be one: the wrong JSON type
 * (`"userName": 5`), a string that is not well-formed Unicode (a lone UTF-16 surrogate), an
 * integer outside the range JSON numbers hold exactly, an entry of a multi-valued attribute
 * without its `value`. Null and empty values come back as undefined, meaning "no value".
 *
 * Only the attributes the schemas define pass through here: what the input layer drops
 * (unknown attributes and schemas, read-only ones) is never looked at, so a broken string in
 * an attribute the bridge ignores does not fail the request (idp-compat.md, rule 10).
 */
import { badRequest } from '../errors.ts';
import { findSub, type AttributeDef } from '../schema/attributes.ts';

export type Entry = Record<string, unknown>;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a key ignoring case. */
export function getKey(container: unknown, name: string): unknown {
  if (!isRecord(container)) return undefined;
  if (name in container) return container[name];
  const wanted = name.toLowerCase();
  const key = Object.keys(container).find((k) => k.toLowerCase() === wanted);
  return key === undefined ? undefined : container[key];
}

/** true/false, or the strings "true"/"false" in any case (Entra sends "False"). */
export function coerceBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value !== 'string') return undefined;
  const lower = value.trim().toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : undefined;
}

/** What JSON calls the value's type, for messages: "a number", "an object". */
function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  const type = typeof value;
  return type === 'object' ? 'an object' : `a ${type}`;
}

// A high surrogate not followed by a low one, or a low one not preceded by a high one. JSON
// lets "\ud83d" through (RFC 8259 §8.2), but no UTF-8 encoder can write it: the homeserver
// would fail on it, and the store would hold a string no client can read back as text.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The UTF-16 index of the first lone surrogate in the text, or -1 when it is well-formed. */
export function loneSurrogateAt(text: string): number {
  return text.search(LONE_SURROGATE);
}

function checkWellFormed(text: string, where: string): void {
  const at = loneSurrogateAt(text);
  if (at < 0) return;
  const unit = text.charCodeAt(at).toString(16).toUpperCase();
  throw badRequest(
    'invalidValue',
    `${where} holds a lone UTF-16 surrogate (\\u${unit} at index ${at}), half of a character: send whole characters only`,
  );
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0);
}

function normalizeComplex(def: AttributeDef, raw: unknown, where: string): Entry | undefined {
  // Entra sends the enterprise manager as a bare id.
  const value = typeof raw === 'string' && def.name === 'manager' ? { value: raw } : raw;
  if (!isRecord(value)) throw badRequest('invalidValue', `${where} must be an object with sub-attributes`);
  const out: Entry = {};
  for (const [key, inner] of Object.entries(value)) {
    const sub = findSub(def, key);
    // Unknown sub-attributes are ignored; read-only ones (manager.displayName) are the server's to fill.
    if (!sub || sub.mutability === 'readOnly') continue;
    const normalized = normalizeSingle(sub, inner, `${where}.${sub.name}`);
    if (normalized !== undefined) out[sub.name] = normalized;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function normalizeScalar(def: AttributeDef, raw: unknown, where: string): unknown {
  switch (def.type) {
    case 'boolean': {
      const b = coerceBoolean(raw);
      if (b === undefined) throw badRequest('invalidValue', `${where} must be a boolean (true or false)`);
      return b;
    }
    case 'integer':
    case 'decimal': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isFinite(n) || (def.type === 'integer' && !Number.isInteger(n))) {
        throw badRequest('invalidValue', `${where} must be ${def.type === 'integer' ? 'an integer' : 'a number'}`);
      }
      // Beyond 2^53 - 1 a JSON number no longer holds every integer exactly; it is also the
      // range Matrix's canonical JSON allows (CANONICALJSON_MAX_INT in Synapse's
      // synapse/api/constants.py).
      if (def.type === 'integer' && !Number.isSafeInteger(n)) {
        throw badRequest('invalidValue', `${where} must be an integer between -(2^53 - 1) and 2^53 - 1`);
      }
      return n;
    }
    case 'dateTime':
      if (typeof raw !== 'string' || Number.isNaN(Date.parse(raw))) throw badRequest('invalidValue', `${where} must be a date-time`);
      return raw;
    default:
      // string, reference and binary: a JSON string and nothing else (RFC 7643 §2.3.1), so that
      // `"userName": 5` is refused rather than stored as "5".
      if (typeof raw !== 'string') throw badRequest('invalidValue', `${where} must be a string, not ${jsonTypeOf(raw)}`);
      checkWellFormed(raw, where);
      return raw;
  }
}

/** One value of the attribute (an entry, for multi-valued ones). */
export function normalizeSingle(def: AttributeDef, raw: unknown, where: string): unknown {
  if (isEmpty(raw)) return undefined;
  if (def.type === 'complex') return normalizeComplex(def, raw, where);
  if (Array.isArray(raw) || isRecord(raw)) throw badRequest('invalidValue', `${where} must be a single ${def.type}`);
  return normalizeScalar(def, raw, where);
}

/**
 * One entry of a multi-valued complex attribute, which must hold its required sub-attributes
 * (a group member's `value`): an entry without them is a 400, not silently dropped. An entry of
 * a plural attribute with a `value` (emails, phoneNumbers, photos, ...) that says something
 * (a type, primary) but has no value, or a blank one, is a 400 naming `emails[1].value`: it
 * describes an address without giving it. An entry that says nothing at all (`null`, `{}`,
 * `{"value": ""}`) is dropped like any other null or empty value (idp-compat.md, rule 10).
 */
function normalizeEntry(def: AttributeDef, raw: unknown, where: string): unknown {
  const entry = normalizeSingle(def, raw, where);
  if (def.type !== 'complex' || isEmpty(raw)) return entry;
  const missing = def.subAttributes?.find((s) => s.required && (!isRecord(entry) || entry[s.name] === undefined));
  if (missing) throw badRequest('invalidValue', `${where} needs a non-empty "${missing.name}" (${missing.description.replace(/\.$/, '')})`);
  const valueDef = findSub(def, 'value');
  if (valueDef && isRecord(entry)) {
    const value = entry[valueDef.name];
    if (value === undefined || (typeof value === 'string' && value.trim() === '')) {
      throw badRequest('invalidValue', `${where}.value is ${value === undefined ? 'missing or empty' : 'blank'}: each entry of ${def.name} needs one`);
    }
  }
  return entry;
}

/** The whole value of the attribute: a deduplicated list with at most one primary, for multi-valued ones. */
export function normalizeValue(def: AttributeDef, raw: unknown, where: string): unknown {
  if (!def.multiValued) return normalizeSingle(def, raw, where);
  if (isEmpty(raw)) return undefined;
  const items = Array.isArray(raw) ? raw : [raw];
  const out = items.map((item, i) => normalizeEntry(def, item, `${where}[${i}]`)).filter((v) => v !== undefined);
  const list = dedupe(out, def);
  const first = list.findIndex((e) => isRecord(e) && e['primary'] === true);
  if (first >= 0) keepPrimary(list, first);
  return list.length > 0 ? list : undefined;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The sub-attribute that identifies an entry of a multi-valued attribute, if any: an immutable
 * `value` (a group member's id). Such entries are added and removed, never edited, so two
 * entries with the same value are the same entry.
 */
export function identityOf(def: AttributeDef): AttributeDef | undefined {
  const value = findSub(def, 'value');
  return def.multiValued && value?.mutability === 'immutable' ? value : undefined;
}

/** How an entry's value compares: as it is when the sub-attribute is caseExact, else lower-cased. */
export function valueKey(value: unknown, def: AttributeDef | undefined): string {
  const text = typeof value === 'string' ? value : canonicalJson(value);
  return def?.caseExact === false ? text.toLowerCase() : text;
}

/**
 * Drops entries identical to an earlier one; when `def` says its entries are identified by
 * their value (group members), entries whose value an earlier entry has. The first one stays.
 */
export function dedupe(list: unknown[], def?: AttributeDef): unknown[] {
  const identity = def && identityOf(def);
  const seen = new Set<string>();
  return list.filter((item) => {
    const key = identity && isRecord(item) && item[identity.name] !== undefined ? `=${valueKey(item[identity.name], identity)}` : canonicalJson(item);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function sameValue(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** Leaves `primary: true` only on the entry at `winner` (RFC 7643 §2.4). Mutates the list's entries. */
export function keepPrimary(list: unknown[], winner: number): void {
  list.forEach((entry, i) => {
    if (i !== winner && isRecord(entry) && entry['primary'] === true) entry['primary'] = false;
  });
}
