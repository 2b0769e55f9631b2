/**
 * Evaluates a parsed filter against a document in memory: for PATCH value filters and tests
 * (listing is filtered by the store in SQL). Strings compare by the attribute's caseExact; a
 * value path holds when ONE entry of the multi-valued attribute satisfies all its conditions.
 */
import { attributesOf, findSub, USER_RESOURCE, type AttributeDef, type ResourceSchema, type ScimDocument } from '../schema/attributes.ts';
import { chainOperands, type AttrPath, type CompareOp, type Filter, type FilterValue } from './ast.ts';

/** The values a path selects and the definition they follow. */
interface Selection {
  def: AttributeDef;
  values: unknown[];
}

/** Where a filter's paths are looked up: the whole document, or one entry of a multi-valued attribute. */
interface Scope {
  select(path: AttrPath, forCompare: boolean): Selection | undefined;
  entries(path: AttrPath): { def: AttributeDef; items: unknown[] } | undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a key ignoring case (documents are canonical, but this costs nothing). */
function getKey(container: unknown, name: string): unknown {
  if (!isRecord(container)) return undefined;
  if (name in container) return container[name];
  const wanted = name.toLowerCase();
  const key = Object.keys(container).find((k) => k.toLowerCase() === wanted);
  return key === undefined ? undefined : container[key];
}

function itemsOf(def: AttributeDef, raw: unknown): unknown[] {
  if (raw === undefined || raw === null) return [];
  return def.multiValued && Array.isArray(raw) ? raw : [raw];
}

function selectIn(def: AttributeDef, raw: unknown, sub: string | undefined, forCompare: boolean): Selection {
  const items = itemsOf(def, raw);
  // `emails eq "x"` compares the entries' `value` (RFC 7644 §3.4.2.2).
  const subName = sub ?? (forCompare && def.type === 'complex' ? 'value' : undefined);
  if (subName === undefined) return { def, values: items };
  const subDef = findSub(def, subName) ?? def;
  return { def: subDef, values: items.map((i) => getKey(i, subName)).filter((v) => v !== undefined && v !== null) };
}

function documentScope(doc: ScimDocument, resource: ResourceSchema): Scope {
  const lookup = (path: AttrPath) => {
    const wanted = path.attr.toLowerCase();
    const def = attributesOf(path.schema, resource).find((a) => a.name.toLowerCase() === wanted);
    const container = path.schema ? getKey(doc, path.schema) : doc;
    return def ? { def, raw: getKey(container, def.name) } : undefined;
  };
  return {
    select(path, forCompare) {
      const found = lookup(path);
      return found && selectIn(found.def, found.raw, path.sub, forCompare);
    },
    entries(path) {
      const found = lookup(path);
      return found && { def: found.def, items: itemsOf(found.def, found.raw) };
    },
  };
}

function entryScope(parent: AttributeDef, entry: unknown): Scope {
  return {
    select(path, forCompare) {
      const def = findSub(parent, path.attr);
      return def && selectIn(def, getKey(entry, def.name), undefined, forCompare);
    },
    entries: () => undefined,
  };
}

function isPresent(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return true;
}

function asBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
  return undefined;
}

function order(op: CompareOp, diff: number): boolean {
  switch (op) {
    case 'gt':
      return diff > 0;
    case 'ge':
      return diff >= 0;
    case 'lt':
      return diff < 0;
    case 'le':
      return diff <= 0;
    case 'ne':
      return diff !== 0;
    default:
      return diff === 0;
  }
}

function compareText(op: CompareOp, actual: string, expected: string): boolean {
  if (op === 'co') return actual.includes(expected);
  if (op === 'sw') return actual.startsWith(expected);
  if (op === 'ew') return actual.endsWith(expected);
  return order(op, actual < expected ? -1 : actual > expected ? 1 : 0);
}

/** One stored value against the filter's value, by the attribute's type and caseExact. */
function compareOne(op: CompareOp, actual: unknown, expected: Exclude<FilterValue, null>, def: AttributeDef): boolean {
  if (def.type === 'boolean') {
    const b = asBoolean(actual);
    return b !== undefined && (op === 'ne' ? b !== expected : b === expected);
  }
  if (typeof expected === 'number') {
    return typeof actual === 'number' && order(op, actual - expected);
  }
  if (typeof actual !== 'string' || typeof expected !== 'string') return false;
  if (def.type === 'dateTime' && !['co', 'sw', 'ew'].includes(op)) {
    const a = Date.parse(actual);
    const e = Date.parse(expected);
    return !Number.isNaN(a) && !Number.isNaN(e) && order(op, a - e);
  }
  return def.caseExact ? compareText(op, actual, expected) : compareText(op, actual.toLowerCase(), expected.toLowerCase());
}

function compare(f: Extract<Filter, { kind: 'compare' }>, scope: Scope): boolean {
  const selection = scope.select(f.path, true);
  if (!selection) return false;
  const { values, def } = selection;
  if (f.value === null) return f.op === 'eq' ? values.length === 0 : values.length > 0;
  if (f.op === 'ne' && values.length === 0) return true;
  const expected = f.value;
  return values.some((v) => compareOne(f.op, v, expected, def));
}

function evaluate(f: Filter, scope: Scope): boolean {
  switch (f.kind) {
    case 'logical': {
      const operands = chainOperands(f);
      return f.op === 'and' ? operands.every((o) => evaluate(o, scope)) : operands.some((o) => evaluate(o, scope));
    }
    case 'not':
      return !evaluate(f.filter, scope);
    case 'present':
      return (scope.select(f.path, false)?.values ?? []).some(isPresent);
    case 'compare':
      return compare(f, scope);
    case 'valuePath': {
      const found = scope.entries(f.path);
      return found !== undefined && found.items.some((item) => evaluate(f.filter, entryScope(found.def, item)));
    }
  }
}

/** Whether the document (a User unless told otherwise) satisfies the filter. */
export function matchesFilter(doc: ScimDocument, f: Filter, resource: ResourceSchema = USER_RESOURCE): boolean {
  return evaluate(f, documentScope(doc, resource));
}

/**
 * Whether one entry of a complex attribute satisfies the inner filter of a value path
 * (`type eq "work"` in `emails[type eq "work"]`); `parent` is the complex attribute's definition.
 */
export function matchesEntry(entry: unknown, f: Filter, parent: AttributeDef): boolean {
  return evaluate(f, entryScope(parent, entry));
}
