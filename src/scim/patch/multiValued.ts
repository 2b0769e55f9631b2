/**
 * PATCH operations on the entries of a multi-valued attribute: by value filter
 * (`emails[type eq "work"].value`), by sub-attribute over all entries (`emails.value`), and
 * remove by value (`"value": [{"value": "x"}]`).
 */
import { badRequest } from '../errors.ts';
import { matchesEntry } from '../filter/match.ts';
import type { Filter } from '../filter/ast.ts';
import { findSub, type AttributeDef } from '../schema/attributes.ts';
import { getKey, isRecord, keepPrimary, normalizeSingle, valueKey, type Entry } from './values.ts';

export type Op = 'add' | 'replace' | 'remove';

export function entriesOf(value: unknown): Entry[] {
  return Array.isArray(value) ? value.filter(isRecord).map((e) => ({ ...e })) : [];
}

/** The entry a filter describes, from its `eq` conditions joined by `and`: `{type: "work"}`. */
function seedFrom(filter: Filter): Entry | undefined {
  if (filter.kind === 'compare' && filter.op === 'eq') return { [filter.path.attr]: filter.value };
  if (filter.kind !== 'logical' || filter.op !== 'and') return undefined;
  const left = seedFrom(filter.left);
  const right = seedFrom(filter.right);
  return left || right ? { ...left, ...right } : undefined;
}

function primaryWinner(entries: Entry[], indexes: number[]): void {
  const winner = indexes.find((i) => entries[i]?.['primary'] === true);
  if (winner !== undefined) keepPrimary(entries, winner);
}

/**
 * Applies an operation whose path has a value filter. For add and replace, a filter that
 * matches nothing creates the entry it describes (Entra's `emails[type eq "work"].value`).
 */
export function applyFiltered(
  current: unknown,
  op: Op,
  target: { def: AttributeDef; filter: Filter; sub?: string; name: string },
  value: unknown,
): Entry[] {
  const { def, filter, sub, name } = target;
  const entries = entriesOf(current);
  const matched = entries.flatMap((e, i) => (matchesEntry(e, filter, def) ? [i] : []));
  const subDef = sub === undefined ? undefined : findSub(def, sub);
  const normalized = op === 'remove' ? undefined : normalizeSingle(subDef ?? { ...def, multiValued: false }, value, name);
  if (op === 'remove' || normalized === undefined) {
    // remove, or add/replace with null: take the sub-attribute or the entries away.
    if (sub === undefined) return entries.filter((_, i) => !matched.includes(i));
    for (const i of matched) delete entries[i]?.[sub];
    return entries;
  }
  const patch: Entry = sub === undefined ? (normalized as Entry) : { [sub]: normalized };
  if (matched.length === 0) {
    const seed = seedFrom(filter);
    if (!seed) throw badRequest('noTarget', `no entry of ${name} matches the filter, and the filter does not describe one to create`);
    entries.push({ ...seed, ...patch });
    matched.push(entries.length - 1);
  } else {
    for (const i of matched) entries[i] = { ...entries[i], ...patch };
  }
  primaryWinner(entries, matched);
  return entries;
}

/** `emails.value` without a filter: the sub-attribute of every entry (creating one if there is none). */
export function applyToAllEntries(current: unknown, op: Op, def: AttributeDef, sub: string, value: unknown, name: string): Entry[] {
  const entries = entriesOf(current);
  const subDef = findSub(def, sub);
  const normalized = op === 'remove' || !subDef ? undefined : normalizeSingle(subDef, value, name);
  if (normalized === undefined) {
    for (const e of entries) delete e[sub];
    return entries;
  }
  if (entries.length === 0) return [{ [sub]: normalized }];
  const updated = entries.map((e) => ({ ...e, [sub]: normalized }));
  if (normalized === true && sub === 'primary') keepPrimary(updated, 0);
  return updated;
}

/**
 * Remove by value (Entra's group members): drops the entries whose `value` is among those given.
 * Only `value` is compared (Entra adds `"$ref": null`); every item must have one. An empty list
 * removes nothing.
 */
export function removeByValue(current: unknown, def: AttributeDef, value: unknown, name: string): Entry[] {
  const items = Array.isArray(value) ? value : [value];
  const valueDef = findSub(def, 'value');
  const drop = new Set(
    items.map((item, i) => {
      const wanted = isRecord(item) ? getKey(item, 'value') : item;
      if ((typeof wanted !== 'string' && typeof wanted !== 'number') || wanted === '') {
        throw badRequest('invalidValue', `removing from ${name} by value: ${name}[${i}] needs a non-empty "value"`);
      }
      return valueKey(String(wanted), valueDef);
    }),
  );
  return entriesOf(current).filter((e) => e['value'] === undefined || !drop.has(valueKey(e['value'], valueDef)));
}
