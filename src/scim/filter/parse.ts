/**
 * A recursive-descent parser for SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2),
 * with the leniencies real IdPs need: case-insensitive operators and names, unquoted values
 * (`externalId eq jyoung`), string booleans, and Entra's `emails[type eq "work"].value eq "x"`.
 *
 * Precedence: `not ( )` binds tightest, then `and`, then `or`; all are left-associative.
 *
 * Two limits keep any filter a client may send within what the parser, the matcher and
 * SQLite can take; going past either is a 400 that names the limit, never a 500.
 */
import { badRequest, type ScimType } from '../errors.ts';
import { findSub, resolveAttribute, USER_RESOURCE, type AttributeDef, type ResolvedAttribute, type ResourceSchema } from '../schema/attributes.ts';
import { COMPARE_OPS, type AttrPath, type CompareOp, type Filter, type FilterValue, type PatchPath } from './ast.ts';

export { matchesEntry, matchesFilter } from './match.ts';

/**
 * The most comparisons (`pr` included) one filter or PATCH path may hold. Chains of
 * `and`/`or` are translated to balanced SQL trees, so 1,000 terms stay far below SQLite's
 * expression depth (1,000) and host parameters (32,766; a term binds at most five).
 */
export const MAX_FILTER_TERMS = 1000;

/**
 * The deepest nesting allowed, parentheses, `not (` and value filters `[…]` counted alike.
 * IdPs send one or two levels; 32 leaves room for any hand-written filter while each level
 * costs a handful of stack frames here, in the matcher and in the SQL translation, and a few
 * levels of SQLite's expression depth (1,000). The parser counts levels as it opens them, so
 * 10,000 parentheses fail here as a 400 and never reach a stack overflow.
 */
export const MAX_FILTER_DEPTH = 32;

const QUOTED_CHARS = 200;
const NAME_CHAR = /[A-Za-z0-9_:$.-]/;
const VALUE_END = /[\s)\]]/;
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
const STRING_TYPES = new Set(['string', 'reference', 'binary']);
const ORDER_OPS = new Set<CompareOp>(['gt', 'ge', 'lt', 'le']);
const TEXT_OPS = new Set<CompareOp>(['co', 'sw', 'ew']);

/** A value as written: `raw` is the source text of an unquoted literal. */
interface Literal {
  value: FilterValue;
  raw?: string;
  at: number;
}

/** A resolved attribute path and the definition a comparison on it applies to. */
interface Target {
  path: AttrPath;
  def: AttributeDef;
  name: string;
}

function pathOf(r: ResolvedAttribute): AttrPath {
  return { ...(r.schema ? { schema: r.schema } : {}), attr: r.attr, ...(r.sub ? { sub: r.sub } : {}) };
}

class Parser {
  readonly text: string;
  readonly scimType: ScimType;
  /** Whose schemas the attribute names are resolved against. */
  readonly resource: ResourceSchema;
  pos = 0;
  /** How many parentheses and brackets are open at `pos`. */
  depth = 0;
  /** Comparisons parsed so far. */
  terms = 0;

  constructor(text: string, scimType: ScimType, resource: ResourceSchema) {
    this.text = text;
    this.scimType = scimType;
    this.resource = resource;
  }

  fail(problem: string, at = this.pos): never {
    const where = at >= this.text.length ? 'at the end' : `at position ${at}`;
    // A filter can be tens of kilobytes; the detail (and the log line) quotes its start only.
    const shown = this.text.length > QUOTED_CHARS ? `${this.text.slice(0, QUOTED_CHARS)}…` : this.text;
    throw badRequest(this.scimType, `${problem} ${where} of "${shown}"`);
  }

  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  expect(char: string): void {
    this.skipSpace();
    if (this.peek() !== char) this.fail(this.pos >= this.text.length ? `missing '${char}'` : `expected '${char}', found '${this.peek()}'`);
    this.pos++;
  }

  word(): string {
    const start = this.pos;
    while (this.pos < this.text.length && NAME_CHAR.test(this.text[this.pos] ?? '')) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** Consumes the keyword if it comes next (after spaces); otherwise leaves the position alone. */
  keyword(name: string): boolean {
    const saved = this.pos;
    this.skipSpace();
    if (this.word().toLowerCase() === name) return true;
    this.pos = saved;
    return false;
  }

  /** The input must be used up, and (counted over all of it) hold no more comparisons than allowed. */
  end(): void {
    this.skipSpace();
    if (this.pos < this.text.length) this.fail(`unexpected '${this.text.slice(this.pos, this.pos + 20)}'`);
    if (this.terms > MAX_FILTER_TERMS) {
      throw badRequest(this.scimType, `the filter has ${this.terms} comparisons; the limit is ${MAX_FILTER_TERMS}, so split it into several requests`);
    }
  }

  /** Steps over the '(' or '[' at `pos`, refusing to nest deeper than the limit before any recursion. */
  open(): void {
    this.depth++;
    if (this.depth > MAX_FILTER_DEPTH) {
      throw badRequest(
        this.scimType,
        `the filter nests deeper than the limit of ${MAX_FILTER_DEPTH} levels: level ${this.depth} opens at position ${this.pos} (parentheses, 'not (' and '[' count alike)`,
      );
    }
    this.pos++;
  }

  close(char: ')' | ']'): void {
    this.expect(char);
    this.depth--;
  }

  parseOr(scope: ResolvedAttribute | undefined): Filter {
    let left = this.parseAnd(scope);
    while (this.keyword('or')) left = { kind: 'logical', op: 'or', left, right: this.parseAnd(scope) };
    return left;
  }

  parseAnd(scope: ResolvedAttribute | undefined): Filter {
    let left = this.parseUnary(scope);
    while (this.keyword('and')) left = { kind: 'logical', op: 'and', left, right: this.parseUnary(scope) };
    return left;
  }

  parseUnary(scope: ResolvedAttribute | undefined): Filter {
    this.skipSpace();
    if (this.peek() === '(') return this.parseGroup(scope);
    const start = this.pos;
    const name = this.word();
    if (name === '') this.fail(this.pos >= this.text.length ? 'unexpected end, expected an expression' : `unexpected '${this.peek()}'`);
    if (name.toLowerCase() === 'not') {
      this.skipSpace();
      if (this.peek() !== '(') this.fail("expected '(' after 'not'");
      return { kind: 'not', filter: this.parseGroup(scope) };
    }
    return this.parseAttributeExpression(name, start, scope);
  }

  parseGroup(scope: ResolvedAttribute | undefined): Filter {
    this.open();
    const inner = this.parseOr(scope);
    this.close(')');
    return inner;
  }

  parseAttributeExpression(name: string, start: number, scope: ResolvedAttribute | undefined): Filter {
    if (this.peek() === '[') {
      if (scope) this.fail('a value filter cannot be nested in another', start);
      return this.parseValuePath(this.complexAttribute(name, start));
    }
    return this.parseOperation(scope ? this.subTarget(scope, name, start) : this.target(name, start));
  }

  /** `emails[type eq "work"]`, optionally followed by `.value op x` (Entra), folded into one filter. */
  parseValuePath(parent: ResolvedAttribute): Filter {
    this.open();
    const inner = this.parseOr(parent);
    this.close(']');
    const path = pathOf(parent);
    if (this.peek() !== '.') return { kind: 'valuePath', path, filter: inner };
    this.pos++;
    const subStart = this.pos;
    const condition = this.parseOperation(this.subTarget(parent, this.word(), subStart));
    return { kind: 'valuePath', path, filter: { kind: 'logical', op: 'and', left: inner, right: condition } };
  }

  complexAttribute(name: string, start: number): ResolvedAttribute {
    const resolved = resolveAttribute(name, this.resource);
    if (!resolved) this.fail(`unknown attribute '${name}'`, start);
    if (resolved.sub !== undefined || resolved.definition.type !== 'complex') {
      this.fail(`'${name}' is not a complex attribute and cannot take a value filter`, start);
    }
    return resolved;
  }

  target(name: string, start: number): Target {
    const resolved = resolveAttribute(name, this.resource);
    if (!resolved) this.fail(`unknown attribute '${name}'`, start);
    return { path: pathOf(resolved), def: resolved.subDefinition ?? resolved.definition, name };
  }

  subTarget(parent: ResolvedAttribute, name: string, start: number): Target {
    const def = name.includes('.') ? undefined : findSub(parent.definition, name);
    if (!def) this.fail(`'${parent.attr}' has no sub-attribute '${name}'`, start);
    return { path: { attr: def.name }, def, name: `${parent.attr}.${def.name}` };
  }

  parseOperation(target: Target): Filter {
    this.skipSpace();
    const opStart = this.pos;
    const op = this.word().toLowerCase();
    if (op === '') this.fail(`expected an operator after '${target.name}'`);
    this.terms++;
    if (op === 'pr') return { kind: 'present', path: target.path };
    if (!(COMPARE_OPS as readonly string[]).includes(op)) this.fail(`unknown operator '${op}'`, opStart);
    const compareOp = op as CompareOp;
    this.skipSpace();
    const literal = this.parseLiteral();
    return { kind: 'compare', op: compareOp, path: target.path, value: this.coerce(compareOp, literal, target) };
  }

  parseLiteral(): Literal {
    const at = this.pos;
    if (this.peek() === '"') return { value: this.parseString(), at };
    while (this.pos < this.text.length && !VALUE_END.test(this.text[this.pos] ?? '')) this.pos++;
    const raw = this.text.slice(at, this.pos);
    if (raw === '') this.fail('expected a value', at);
    const lower = raw.toLowerCase();
    if (lower === 'true' || lower === 'false') return { value: lower === 'true', raw, at };
    if (lower === 'null') return { value: null, raw, at };
    if (JSON_NUMBER.test(raw)) return { value: Number(raw), raw, at };
    return { value: raw, raw, at };
  }

  parseString(): string {
    const start = this.pos;
    let i = start + 1;
    while (i < this.text.length && this.text[i] !== '"') i += this.text[i] === '\\' ? 2 : 1;
    if (i >= this.text.length) this.fail('unterminated string', start);
    this.pos = i + 1;
    try {
      return JSON.parse(this.text.slice(start, i + 1)) as string;
    } catch {
      return this.fail('invalid escape in string', start);
    }
  }

  /** Checks the operator against the attribute's type and turns the literal into that type. */
  coerce(op: CompareOp, literal: Literal, target: Target): FilterValue {
    let def = target.def;
    if (def.type === 'complex') {
      const value = def.multiValued ? findSub(def, 'value') : undefined;
      if (!value) this.fail(`'${target.name}' is complex; compare one of its sub-attributes`, literal.at);
      def = value;
    }
    const { value } = literal;
    if (value === null) {
      if (op !== 'eq' && op !== 'ne') this.fail(`'${op}' cannot compare with null`, literal.at);
      return null;
    }
    if (def.type === 'boolean') return this.booleanValue(op, value, target, literal.at);
    if (STRING_TYPES.has(def.type) || def.type === 'dateTime') {
      const text = literal.raw ?? (typeof value === 'string' ? value : String(value));
      if (def.type === 'dateTime' && Number.isNaN(Date.parse(text))) {
        this.fail(`'${target.name}' is a date-time; '${text}' is not one`, literal.at);
      }
      if (def.type === 'binary' && ORDER_OPS.has(op)) this.fail(`'${op}' cannot compare binary '${target.name}'`, literal.at);
      return text;
    }
    if (typeof value !== 'number') this.fail(`'${target.name}' is a number; '${String(value)}' is not one`, literal.at);
    if (TEXT_OPS.has(op)) this.fail(`'${op}' needs a string attribute, '${target.name}' is a number`, literal.at);
    return value;
  }

  booleanValue(op: CompareOp, value: string | number | boolean, target: Target, at: number): boolean {
    if (op !== 'eq' && op !== 'ne') this.fail(`'${op}' cannot compare boolean '${target.name}'`, at);
    if (typeof value === 'boolean') return value;
    const lower = String(value).trim().toLowerCase();
    if (lower === 'true' || lower === 'false') return lower === 'true';
    return this.fail(`'${target.name}' is boolean; compare it with true or false, not '${String(value)}'`, at);
  }

  parsePatchPath(): PatchPath {
    this.skipSpace();
    const start = this.pos;
    const name = this.word();
    if (name === '') this.fail('expected an attribute path');
    if (this.peek() !== '[') {
      const target = this.target(name, start);
      this.end();
      return { path: target.path };
    }
    const parent = this.complexAttribute(name, start);
    this.open();
    const filter = this.parseOr(parent);
    this.close(']');
    let sub: string | undefined;
    if (this.peek() === '.') {
      this.pos++;
      const subStart = this.pos;
      sub = this.subTarget(parent, this.word(), subStart).path.attr;
    }
    this.end();
    return { path: pathOf(parent), filter, ...(sub ? { sub } : {}) };
  }
}

/**
 * Parses a filter on the resource's attributes (User unless told otherwise); any problem, an
 * unknown attribute included, is a 400 `invalidFilter` naming it and its position.
 */
export function parseFilter(text: string, resource: ResourceSchema = USER_RESOURCE): Filter {
  const parser = new Parser(text, 'invalidFilter', resource);
  parser.skipSpace();
  if (parser.pos >= text.length) parser.fail('the filter is empty');
  const filter = parser.parseOr(undefined);
  parser.end();
  return filter;
}

/** Parses a PATCH `path` on the resource's attributes (User unless told otherwise); any problem is a 400 `invalidPath`. */
export function parsePatchPath(text: string, resource: ResourceSchema = USER_RESOURCE): PatchPath {
  return new Parser(text, 'invalidPath', resource).parsePatchPath();
}
