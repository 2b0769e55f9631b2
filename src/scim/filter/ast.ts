/**
 * The parsed form of a SCIM filter (RFC 7644 §3.4.2.2). Attribute names are canonical; the
 * store translates this to SQL and the in-memory matcher evaluates it.
 */

/** An attribute path with canonical names; `schema` is absent for core and common attributes. */
export interface AttrPath {
  schema?: string;
  attr: string;
  sub?: string;
}

export type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';

export type FilterValue = string | number | boolean | null;

export type Filter =
  | Logical
  | { kind: 'not'; filter: Filter }
  | { kind: 'present'; path: AttrPath }
  | { kind: 'compare'; op: CompareOp; path: AttrPath; value: FilterValue }
  /** `path` names a complex attribute (no sub); paths inside `filter` are its sub-attributes, as `{ attr: sub }`. */
  | { kind: 'valuePath'; path: AttrPath; filter: Filter };

/** `left and right`, `left or right`. The parser builds chains of one operator left-deep. */
export interface Logical {
  kind: 'logical';
  op: 'and' | 'or';
  left: Filter;
  right: Filter;
}

/**
 * The operands of a chain of one logical operator, left to right: `a or (b or c) or d` gives
 * [a, b, c, d]. It walks the chain with a stack of its own, so that evaluating or translating
 * a 1,000-term `or` costs one call per nesting level rather than one per term.
 */
export function chainOperands(chain: Logical): Filter[] {
  const operands: Filter[] = [];
  const pending: Filter[] = [chain];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next.kind === 'logical' && next.op === chain.op) pending.push(next.right, next.left);
    else operands.push(next);
  }
  return operands;
}

/** A PATCH target (RFC 7644 §3.5.2): `name.familyName`, `emails[type eq "work"].value`, ... */
export interface PatchPath {
  path: AttrPath;
  /** The value filter of a multi-valued attribute (`emails[type eq "work"]`). */
  filter?: Filter;
  /** The sub-attribute after a value filter (`.value` in `emails[type eq "work"].value`). */
  sub?: string;
}

export const COMPARE_OPS: readonly CompareOp[] = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'];
