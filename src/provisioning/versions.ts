import { preconditionFailed } from '../scim/errors.ts';

/** If-Match (RFC 7232 §3.1) against a resource's version; `*` or no header always passes. */
export function checkVersion(resource: { id: string; version: number }, ifMatch: string | undefined, what = 'user'): void {
  if (ifMatch === undefined || ifMatch.trim() === '*') return;
  const wanted = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
  if (!wanted.includes(String(resource.version))) {
    throw preconditionFailed(`the ${what} ${resource.id} is at version ${resource.version}, not ${ifMatch}`);
  }
}
