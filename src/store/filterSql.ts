import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { chainOperands, type AttrPath, type CompareOp, type Filter, type FilterValue } from '../scim/filter/ast.ts';
import { badRequest } from '../scim/errors.ts';
import { MATRIX_USER_SCHEMA } from '../scim/schema/urns.ts';
import { resolveAttribute, targetOf, type AttributeDef, type ResourceSchema } from '../scim/schema/attributes.ts';

/**
 * Translates parsed SCIM filters and sortBy paths into SQL on the users table, so that
 * filtering and sorting happen in the database: indexed columns for the attributes IdPs
 * look users up by, JSON functions over the stored document for the rest. Case rules
 * follow each attribute's caseExact. What cannot be translated is an `invalidFilter`
 * error, never "every row".
 */
type Sql = RawBuilder<unknown>;
type Kind = 'string' | 'boolean' | 'dateTime' | 'number';

interface Operand {
  expr: Sql;
  /** Compare case-insensitively: the attribute's caseExact is false. */
  fold: boolean;
  /** The column already holds lower-cased text. */
  folded: boolean;
  kind: Kind;
}

type Column = Omit<Operand, 'fold'>;

/** A multi-valued attribute kept in a table of its own (a group's members). */
interface RelatedEntries {
  /** `FROM … AS entry WHERE …` tying the entries to the row. */
  from: Sql;
  where: Sql;
  /** Sub-attribute → column of `entry`. */
  subs: Record<string, Column>;
}

/**
 * What the two engines write differently: reading the stored JSON documents and a few string
 * and truth-value functions. Everything else in a translated filter is plain SQL.
 */
export interface SqlFlavor {
  readonly engine: 'sqlite' | 'postgres';
  /** The value at `keys` in a JSON document column (text), as `kind` compares. */
  jsonValue(document: Sql, keys: string[], kind: Kind): Sql;
  /** `FROM` item: the entries of the JSON array at `keys`, as rows `entry` (value, key). */
  jsonEntries(document: Sql, keys: string[]): Sql;
  /** A member of one such entry (an object), as `kind` compares. */
  entryValue(sub: string, kind: Kind): Sql;
  endsWith(left: Sql, right: string): Sql;
  contains(left: Sql, right: string): Sql;
  /** A condition that always holds. */
  readonly always: Sql;
  /** `condition`, with NULL (unknown) read as false. */
  definitely(condition: Sql): Sql;
}

/** SQLite's JSON1 functions; booleans in JSON read as 1/0. */
export const SQLITE_FLAVOR: SqlFlavor = {
  engine: 'sqlite',
  jsonValue: (document, keys) => sql`json_extract(${document}, ${jsonPath(...keys)})`,
  jsonEntries: (document, keys) => sql`json_each(${document}, ${jsonPath(...keys)}) AS entry`,
  entryValue: (sub) => sql`json_extract(entry.value, ${jsonPath(sub)})`,
  endsWith: (left, right) => sql`substr(${left}, -length(${right})) = ${right}`,
  contains: (left, right) => sql`instr(${left}, ${right}) > 0`,
  always: sql`1`,
  definitely: (condition) => sql`coalesce(${condition}, 0)`,
};

/** PostgreSQL's value of a jsonb expression, as `kind` compares (mismatched JSON types give NULL). */
function pgTyped(json: Sql, kind: Kind): Sql {
  switch (kind) {
    case 'boolean':
      // 1/0, as the boolean columns and literals are, so that one comparison serves both engines.
      return sql`(CASE jsonb_typeof(${json}) WHEN 'boolean' THEN (${json})::boolean::int END)`;
    case 'number':
      return sql`(CASE jsonb_typeof(${json}) WHEN 'number' THEN (${json} #>> '{}')::numeric END)`;
    default:
      // Byte order, as SQLite compares and as the bridge's text columns are declared.
      return sql`((${json} #>> '{}') COLLATE "C")`;
  }
}

/** PostgreSQL's jsonb operators over the document column, stored as text. */
export const POSTGRES_FLAVOR: SqlFlavor = {
  engine: 'postgres',
  jsonValue: (document, keys, kind) => pgTyped(sql`((${document})::jsonb #> ${keys}::text[])`, kind),
  jsonEntries: (document, keys) => {
    const json = sql`((${document})::jsonb #> ${keys}::text[])`;
    return sql`jsonb_array_elements(CASE jsonb_typeof(${json}) WHEN 'array' THEN ${json} ELSE '[]'::jsonb END)
      WITH ORDINALITY AS entry(value, key)`;
  },
  entryValue: (sub, kind) => pgTyped(sql`(entry.value -> ${sub}::text)`, kind),
  endsWith: (left, right) => sql`right(${left}, length(${right}::text)) = ${right}`,
  contains: (left, right) => sql`strpos(${left}, ${right}::text) > 0`,
  always: sql`true`,
  definitely: (condition) => sql`coalesce(${condition}, false)`,
};

/** How one resource type is laid out in its table. */
export interface TableMapping {
  flavor: SqlFlavor;
  resource: ResourceSchema;
  table: 'users' | 'groups';
  /** The table's document column, e.g. users.document. */
  document: Sql;
  /** Attributes kept in their own, indexed columns, keyed by their canonical path. */
  columns: Record<string, Column>;
  related: Record<string, RelatedEntries>;
}

export function userMapping(resource: ResourceSchema, flavor: SqlFlavor = SQLITE_FLAVOR): TableMapping {
  return {
    flavor,
    resource,
    table: 'users',
    document: sql.ref('users.document'),
    columns: {
      id: { expr: sql.ref('users.id'), folded: false, kind: 'string' },
      userName: { expr: sql.ref('users.user_name_lower'), folded: true, kind: 'string' },
      externalId: { expr: sql.ref('users.external_id'), folded: false, kind: 'string' },
      displayName: { expr: sql.ref('users.display_name_lower'), folded: true, kind: 'string' },
      active: { expr: sql.ref('users.active'), folded: false, kind: 'boolean' },
      'meta.created': { expr: sql.ref('users.created'), folded: false, kind: 'dateTime' },
      'meta.lastModified': { expr: sql.ref('users.last_modified'), folded: false, kind: 'dateTime' },
      [`${MATRIX_USER_SCHEMA}:matrixId`]: { expr: sql.ref('users.matrix_id'), folded: false, kind: 'string' },
    },
    related: {},
  };
}

export function groupMapping(resource: ResourceSchema, flavor: SqlFlavor = SQLITE_FLAVOR): TableMapping {
  return {
    flavor,
    resource,
    table: 'groups',
    document: sql.ref('groups.document'),
    columns: {
      id: { expr: sql.ref('groups.id'), folded: false, kind: 'string' },
      displayName: { expr: sql.ref('groups.display_name_lower'), folded: true, kind: 'string' },
      externalId: { expr: sql.ref('groups.external_id'), folded: false, kind: 'string' },
      'meta.created': { expr: sql.ref('groups.created'), folded: false, kind: 'dateTime' },
      'meta.lastModified': { expr: sql.ref('groups.last_modified'), folded: false, kind: 'dateTime' },
    },
    related: {
      members: {
        from: sql`group_members AS entry`,
        where: sql`entry.group_id = groups.id`,
        subs: { value: { expr: sql.ref('entry.user_id'), folded: false, kind: 'string' } },
      },
    },
  };
}

function kindOf(def: AttributeDef): Kind {
  switch (def.type) {
    case 'boolean':
      return 'boolean';
    case 'dateTime':
      return 'dateTime';
    case 'integer':
    case 'decimal':
      return 'number';
    default:
      return 'string';
  }
}

function pathText(path: AttrPath): string {
  return `${path.schema ? `${path.schema}:` : ''}${path.attr}${path.sub ? `.${path.sub}` : ''}`;
}

function resolve(map: TableMapping, path: AttrPath): { def: AttributeDef; target: AttributeDef } {
  const resolved = resolveAttribute(pathText(path), map.resource);
  if (!resolved) throw badRequest('invalidFilter', `unknown attribute ${pathText(path)}`);
  return { def: resolved.definition, target: targetOf(resolved) };
}

/** The keys leading into the stored document: "urn:…", "attr", "sub". */
function keysOf(...keys: (string | undefined)[]): string[] {
  return keys.filter((k): k is string => k !== undefined);
}

/** A JSON path into the stored document for SQLite: $."urn:…"."attr"."sub". */
function jsonPath(...keys: string[]): string {
  return `$${keys.map((k) => `."${k}"`).join('')}`;
}

function operand(map: TableMapping, path: AttrPath): Operand {
  const column = map.columns[pathText(path)];
  const { target } = resolve(map, path);
  if (column) return { ...column, fold: column.kind === 'string' && !target.caseExact };
  if (path.attr === 'meta') throw badRequest('invalidFilter', `filtering on ${pathText(path)} is not supported`);
  return {
    expr: map.flavor.jsonValue(map.document, keysOf(path.schema, path.attr, path.sub), kindOf(target)),
    fold: kindOf(target) === 'string' && !target.caseExact,
    folded: false,
    kind: kindOf(target),
  };
}

/** An operand on one entry of a multi-valued attribute, inside json_each(...) AS entry. */
function entryOperand(map: TableMapping, parent: AttributeDef, sub: string): Operand {
  const def = parent.subAttributes?.find((s) => s.name === sub);
  if (!def) throw badRequest('invalidFilter', `unknown sub-attribute ${parent.name}.${sub}`);
  const related = map.related[parent.name];
  if (related) {
    const column = related.subs[def.name];
    if (!column) throw badRequest('invalidFilter', `filtering on ${parent.name}.${def.name} is not supported`);
    return { ...column, fold: column.kind === 'string' && !def.caseExact };
  }
  const kind = kindOf(def);
  const raw = map.flavor.entryValue(def.name, kind);
  // JSON true/false arrive as 1/0; a missing "primary" counts as false.
  const expr = kind === 'boolean' ? sql`coalesce(${raw}, 0)` : raw;
  return { expr, fold: kind === 'string' && !def.caseExact, folded: false, kind };
}

function literal(value: FilterValue, target: Operand, op: CompareOp): unknown {
  if (target.kind === 'boolean') {
    if (typeof value !== 'boolean') throw badRequest('invalidFilter', `a boolean attribute is compared with true or false, not ${JSON.stringify(value)}`);
    if (op !== 'eq' && op !== 'ne') throw badRequest('invalidFilter', `"${op}" cannot compare booleans`);
    return value ? 1 : 0;
  }
  if (target.kind === 'dateTime' && typeof value === 'string') {
    const time = Date.parse(value);
    if (Number.isNaN(time)) throw badRequest('invalidFilter', `"${value}" is not a dateTime`);
    return new Date(time).toISOString();
  }
  if (target.kind === 'number' && typeof value !== 'number') {
    throw badRequest('invalidFilter', `a number attribute is compared with a number, not ${JSON.stringify(value)}`);
  }
  return typeof value === 'string' && target.fold ? value.toLowerCase() : value;
}

function compare(flavor: SqlFlavor, op: CompareOp, target: Operand, value: FilterValue): Sql {
  const left = target.fold && !target.folded ? sql`lower(${target.expr})` : target.expr;
  if (value === null) {
    if (op === 'eq') return sql`${target.expr} IS NULL`;
    if (op === 'ne') return sql`${target.expr} IS NOT NULL`;
    throw badRequest('invalidFilter', `"${op}" cannot compare with null`);
  }
  const right = literal(value, target, op);
  switch (op) {
    case 'eq':
      return sql`${left} = ${right}`;
    case 'ne':
      return sql`(${left} IS NULL OR ${left} <> ${right})`;
    case 'gt':
      return sql`${left} > ${right}`;
    case 'ge':
      return sql`${left} >= ${right}`;
    case 'lt':
      return sql`${left} < ${right}`;
    case 'le':
      return sql`${left} <= ${right}`;
    case 'sw':
    case 'ew':
    case 'co': {
      if (typeof right !== 'string' || target.kind !== 'string') throw badRequest('invalidFilter', `"${op}" applies to strings only`);
      // sw as a range, so that an index on the column serves it.
      if (op === 'sw') return sql`(${left} >= ${right} AND ${left} < ${`${right}\u{10FFFF}`})`;
      if (op === 'ew') return flavor.endsWith(left, right);
      return flavor.contains(left, right);
    }
  }
}

function present(target: Operand): Sql {
  return target.kind === 'string'
    ? sql`(${target.expr} IS NOT NULL AND ${target.expr} <> '')`
    : sql`${target.expr} IS NOT NULL`;
}

/**
 * Joins the operands of one `and`/`or` chain as a balanced tree. SQLite parses even a flat
 * `a OR b OR c …` into a left-deep tree and refuses one deeper than 1,000 ("Expression tree
 * is too large"); balanced, 1,000 operands take ten levels. Parentheses cost no depth.
 */
function balanced(op: 'and' | 'or', operands: readonly Sql[]): Sql {
  if (operands.length > 1) {
    const half = Math.ceil(operands.length / 2);
    const left = balanced(op, operands.slice(0, half));
    const right = balanced(op, operands.slice(half));
    return op === 'and' ? sql`(${left} AND ${right})` : sql`(${left} OR ${right})`;
  }
  const [only] = operands;
  if (only === undefined) throw new Error(`an '${op}' chain without operands`);
  return only;
}

/**
 * `not (…)`. A comparison with a missing attribute is NULL in SQL, and NOT NULL is NULL again,
 * which would drop the row; in SCIM that comparison is false, so its negation holds.
 */
function negate(flavor: SqlFlavor, inner: Sql): Sql {
  return sql`NOT ${flavor.definitely(inner)}`;
}

/** Some entry of a multi-valued attribute satisfies `inner` (conditions on entry.value). */
function someEntry(map: TableMapping, path: AttrPath, inner: Sql): Sql {
  const related = path.schema ? undefined : map.related[path.attr];
  if (related) return sql`EXISTS (SELECT 1 FROM ${related.from} WHERE ${related.where} AND ${inner})`;
  return sql`EXISTS (SELECT 1 FROM ${map.flavor.jsonEntries(map.document, keysOf(path.schema, path.attr))} WHERE ${inner})`;
}

/** A filter on the entries of a multi-valued attribute (the inside of `emails[...]`). */
function entryFilter(map: TableMapping, filter: Filter, parent: AttributeDef): Sql {
  switch (filter.kind) {
    case 'logical':
      return balanced(filter.op, chainOperands(filter).map((operand) => entryFilter(map, operand, parent)));
    case 'not':
      return negate(map.flavor, entryFilter(map, filter.filter, parent));
    case 'present':
      return present(entryOperand(map, parent, filter.path.attr));
    case 'compare':
      return compare(map.flavor, filter.op, entryOperand(map, parent, filter.path.attr), filter.value);
    case 'valuePath':
      throw badRequest('invalidFilter', 'a value path cannot be nested inside another value path');
  }
}

function translate(map: TableMapping, filter: Filter): Sql {
  switch (filter.kind) {
    case 'logical':
      return balanced(filter.op, chainOperands(filter).map((operand) => translate(map, operand)));
    case 'not':
      return negate(map.flavor, translate(map, filter.filter));
    case 'valuePath': {
      const { def } = resolve(map, filter.path);
      if (!def.multiValued) throw badRequest('invalidFilter', `${pathText(filter.path)} is not multi-valued`);
      return someEntry(map, filter.path, entryFilter(map, filter.filter, def));
    }
    case 'present':
    case 'compare': {
      const { def } = resolve(map, filter.path);
      if (def.multiValued) {
        // `emails eq "x"` and `emails.type eq "work"`: some entry matches (RFC 7644 §3.4.2.2).
        const sub = filter.path.sub ?? 'value';
        const entry = entryOperand(map, def, sub);
        const inner =
          filter.kind === 'present' ? (filter.path.sub ? present(entry) : map.flavor.always) : compare(map.flavor, filter.op, entry, filter.value);
        return someEntry(map, filter.path, inner);
      }
      const target = operand(map, filter.path);
      return filter.kind === 'present' ? present(target) : compare(map.flavor, filter.op, target, filter.value);
    }
  }
}

export function filterToSql(map: TableMapping, filter: Filter): RawBuilder<SqlBool> {
  return translate(map, filter) as RawBuilder<SqlBool>;
}

/**
 * The expression to sort by (RFC 7644 §3.4.2.3): a multi-valued attribute sorts by its
 * primary entry's value, else the first entry's; strings that are not caseExact sort
 * without regard to case.
 */
export function sortExpression(map: TableMapping, path: AttrPath): RawBuilder<unknown> {
  const { def } = resolve(map, path);
  if (def.multiValued) {
    if (map.related[def.name]) throw badRequest('invalidValue', `sorting by ${def.name} is not supported`);
    const entry = entryOperand(map, def, path.sub ?? 'value');
    const value = entry.fold ? sql`lower(${entry.expr})` : entry.expr;
    const primary = map.flavor.entryValue('primary', 'boolean');
    return sql`(SELECT ${value} FROM ${map.flavor.jsonEntries(map.document, keysOf(path.schema, path.attr))}
      ORDER BY coalesce(${primary}, 0) DESC, entry.key LIMIT 1)`;
  }
  const target = operand(map, path);
  return target.fold && !target.folded ? sql`lower(${target.expr})` : target.expr;
}

/**
 * The ORDER BY of a list: the requested sort (missing values last), then creation order and
 * id, which keep index pagination stable.
 */
export function listOrder(
  map: TableMapping,
  sort: { path: AttrPath; descending: boolean } | undefined,
): { expr: RawBuilder<unknown>; direction: 'asc' | 'desc' }[] {
  const terms: { expr: RawBuilder<unknown>; direction: 'asc' | 'desc' }[] = [];
  if (sort) {
    const key = sortExpression(map, sort.path);
    terms.push({ expr: sql`${key} IS NULL`, direction: 'asc' }, { expr: key, direction: sort.descending ? 'desc' : 'asc' });
  }
  terms.push({ expr: sql.ref(`${map.table}.created`), direction: 'asc' }, { expr: sql.ref(`${map.table}.id`), direction: 'asc' });
  return terms;
}
