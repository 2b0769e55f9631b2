import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type { AttrPath, CompareOp, Filter } from '../scim/filter/ast.ts';
import { badRequest } from '../scim/errors.ts';

/**
 * Translates a parsed SCIM filter into one SQL condition on the users table, so that
 * filtering happens in the database: indexed columns for the attributes IdPs look users up
 * by, JSON functions over the stored document for the rest. A filter it cannot translate is
 * an `invalidFilter` error, never "every row".
 */
type Sql = RawBuilder<unknown>;

interface Operand {
  expr: Sql;
  /** Compare case-insensitively (the attribute's caseExact is false). */
  foldCase: boolean;
  kind: 'string' | 'boolean' | 'dateTime' | 'number';
}

/** Attributes kept in their own, indexed columns. */
const COLUMNS: Record<string, Operand> = {
  id: { expr: sql.ref('users.id'), foldCase: false, kind: 'string' },
  userName: { expr: sql.ref('users.user_name_lower'), foldCase: true, kind: 'string' },
  externalId: { expr: sql.ref('users.external_id'), foldCase: false, kind: 'string' },
  displayName: { expr: sql.ref('users.display_name_lower'), foldCase: true, kind: 'string' },
  active: { expr: sql.ref('users.active'), foldCase: false, kind: 'boolean' },
  'meta.created': { expr: sql.ref('users.created'), foldCase: false, kind: 'dateTime' },
  'meta.lastModified': { expr: sql.ref('users.last_modified'), foldCase: false, kind: 'dateTime' },
};

/** Sub-attributes and attributes whose values are compared exactly (RFC 7643 caseExact). */
const CASE_EXACT = new Set(['$ref', 'externalId', 'id', 'x509Certificates.value', 'matrixId']);

const MULTI_VALUED = new Set([
  'emails',
  'phoneNumbers',
  'ims',
  'photos',
  'addresses',
  'groups',
  'entitlements',
  'roles',
  'x509Certificates',
]);

function jsonPath(path: AttrPath, withSub = true): string {
  const parts: string[] = [];
  if (path.schema) parts.push(`"${path.schema}"`);
  parts.push(`"${path.attr}"`);
  if (withSub && path.sub) parts.push(`"${path.sub}"`);
  return `$.${parts.join('.')}`;
}

function pathName(path: AttrPath): string {
  return path.sub ? `${path.attr}.${path.sub}` : path.attr;
}

function documentOperand(path: AttrPath): Operand {
  const name = pathName(path);
  return {
    expr: sql`json_extract(users.document, ${jsonPath(path)})`,
    foldCase: !CASE_EXACT.has(name) && !CASE_EXACT.has(path.sub ?? ''),
    kind: 'string',
  };
}

function operandFor(path: AttrPath): Operand {
  if (!path.schema) {
    const column = COLUMNS[pathName(path)];
    if (column) return column;
  }
  return documentOperand(path);
}

function literal(value: string | number | boolean | null, operand: Operand): unknown {
  if (operand.kind === 'boolean') {
    if (typeof value === 'boolean') return value ? 1 : 0;
    throw badRequest('invalidFilter', `a boolean attribute must be compared with true or false, not ${JSON.stringify(value)}`);
  }
  if (typeof value === 'string' && operand.foldCase) return value.toLowerCase();
  return value;
}

function compare(op: CompareOp, operand: Operand, raw: string | number | boolean | null, fold: (e: Sql) => Sql): Sql {
  const left = fold(operand.expr);
  if (raw === null) {
    if (op === 'eq') return sql`${left} IS NULL`;
    if (op === 'ne') return sql`${left} IS NOT NULL`;
    throw badRequest('invalidFilter', `"${op}" cannot compare with null`);
  }
  const value = literal(raw, operand);
  switch (op) {
    case 'eq':
      return sql`${left} = ${value}`;
    case 'ne':
      return sql`(${left} IS NULL OR ${left} <> ${value})`;
    case 'gt':
      return sql`${left} > ${value}`;
    case 'ge':
      return sql`${left} >= ${value}`;
    case 'lt':
      return sql`${left} < ${value}`;
    case 'le':
      return sql`${left} <= ${value}`;
    case 'sw':
    case 'ew':
    case 'co': {
      if (typeof value !== 'string') throw badRequest('invalidFilter', `"${op}" needs a string value`);
      if (op === 'sw') return sql`(${left} >= ${value} AND ${left} < ${value + '\u{10FFFF}'})`;
      if (op === 'ew') return sql`substr(${left}, -length(${value})) = ${value}`;
      return sql`instr(${left}, ${value}) > 0`;
    }
  }
}

function foldFor(operand: Operand, isColumn: boolean): (e: Sql) => Sql {
  // Columns named *_lower already hold folded text.
  if (!operand.foldCase || isColumn) return (e) => e;
  return (e) => sql`lower(${e})`;
}

/** A condition on the entries of a multi-valued attribute (`emails[type eq "work"]`). */
function entryCondition(filter: Filter, attr: string): Sql {
  switch (filter.kind) {
    case 'logical': {
      const l = entryCondition(filter.left, attr);
      const r = entryCondition(filter.right, attr);
      return filter.op === 'and' ? sql`(${l} AND ${r})` : sql`(${l} OR ${r})`;
    }
    case 'not':
      return sql`NOT (${entryCondition(filter.filter, attr)})`;
    case 'present': {
      const e = sql`json_extract(entry.value, ${`$."${filter.path.attr}"`})`;
      return sql`(${e} IS NOT NULL AND ${e} <> '')`;
    }
    case 'compare': {
      const sub = filter.path.attr;
      const operand: Operand = {
        expr: sql`json_extract(entry.value, ${`$."${sub}"`})`,
        foldCase: !CASE_EXACT.has(sub) && !CASE_EXACT.has(`${attr}.${sub}`),
        kind: sub === 'primary' ? 'boolean' : 'string',
      };
      if (operand.kind === 'boolean') operand.expr = sql`(CASE ${operand.expr} WHEN 1 THEN 1 ELSE 0 END)`;
      return compare(filter.op, operand, filter.value, foldFor(operand, false));
    }
    case 'valuePath':
      throw badRequest('invalidFilter', 'a value path cannot be nested inside another value path');
  }
}

function multiValued(path: AttrPath, inner: Sql): Sql {
  const container = jsonPath({ ...(path.schema ? { schema: path.schema } : {}), attr: path.attr }, false);
  return sql`EXISTS (SELECT 1 FROM json_each(users.document, ${container}) AS entry WHERE ${inner})`;
}

export function filterToSql(filter: Filter): RawBuilder<SqlBool> {
  return translate(filter) as RawBuilder<SqlBool>;
}

function translate(filter: Filter): Sql {
  switch (filter.kind) {
    case 'logical': {
      const l = translate(filter.left);
      const r = translate(filter.right);
      return filter.op === 'and' ? sql`(${l} AND ${r})` : sql`(${l} OR ${r})`;
    }
    case 'not':
      return sql`NOT (${translate(filter.filter)})`;
    case 'valuePath':
      return multiValued(filter.path, entryCondition(filter.filter, filter.path.attr));
    case 'present': {
      if (!filter.path.schema && MULTI_VALUED.has(filter.path.attr)) {
        const inner = filter.path.sub
          ? entryCondition({ kind: 'present', path: { attr: filter.path.sub } }, filter.path.attr)
          : sql`1`;
        return multiValued(filter.path, inner);
      }
      const operand = operandFor(filter.path);
      return sql`(${operand.expr} IS NOT NULL AND ${operand.expr} <> '')`;
    }
    case 'compare': {
      if (!filter.path.schema && MULTI_VALUED.has(filter.path.attr)) {
        // emails eq "x" means: some entry's value is "x" (RFC 7644 §3.4.2.2).
        const sub = filter.path.sub ?? 'value';
        return multiValued(filter.path, entryCondition({ ...filter, path: { attr: sub } }, filter.path.attr));
      }
      const operand = operandFor(filter.path);
      const isColumn = !filter.path.schema && COLUMNS[pathName(filter.path)] !== undefined;
      return compare(filter.op, operand, filter.value, foldFor(operand, isColumn));
    }
  }
}
