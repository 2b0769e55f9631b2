/**
 * Reading what a SCIM write asks of a user: the password apart from the document, the
 * attributes that changed, whether the request itself says `active: true`.
 */
type Doc = Record<string, unknown>;

export function withoutPassword(doc: Doc): { doc: Doc; password: string | undefined } {
  const { password, ...rest } = doc;
  return { doc: rest, password: typeof password === 'string' && password !== '' ? password : undefined };
}

export function changedFields(before: Doc, after: Doc): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => k !== 'schemas' && JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

export const isTrue = (value: unknown): boolean => value === true || (typeof value === 'string' && value.trim().toLowerCase() === 'true');

/** Whether a PATCH body itself sets `active` to true (a path-less value or an `active` path). */
export function patchAssertsActive(body: unknown): boolean {
  const operations = body && typeof body === 'object' ? Object.entries(body).find(([k]) => k.toLowerCase() === 'operations')?.[1] : undefined;
  if (!Array.isArray(operations)) return false;
  return operations.some((operation: unknown) => {
    if (!operation || typeof operation !== 'object') return false;
    const op = Object.fromEntries(Object.entries(operation).map(([k, v]) => [k.toLowerCase(), v]));
    if (String(op['op']).toLowerCase() === 'remove') return false;
    const path = typeof op['path'] === 'string' ? op['path'].trim().toLowerCase() : '';
    if (path === 'active' || path.endsWith(':active')) return isTrue(op['value']);
    const value = op['value'];
    if (path !== '' || !value || typeof value !== 'object') return false;
    return Object.entries(value).some(([k, v]) => (k.toLowerCase() === 'active' || k.toLowerCase().endsWith(':active')) && isTrue(v));
  });
}
