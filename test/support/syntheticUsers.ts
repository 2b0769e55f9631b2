// Synthetic users with the variety filters care about (case, multi-valued emails,
// extension attributes, missing values), reproducible from a seed. Used by the filter
// tests and the filter benchmark.
import { randomUUID } from 'node:crypto';
import { openTestStore, type Engine } from './engines.ts';
import { type SqlStore } from '../../src/store/sqlStore.ts';
import type { UserRecord } from '../../src/store/types.ts';
import { ENT } from './scim.ts';

const FIRST = ['Alice', 'bob', 'Bonnie', 'carol', 'Dave', 'eve', 'BORIS', 'zoë'];
const DOMAINS = ['example.org', 'Example.ORG', 'corp.example.com', 'other.net'];

export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

export function makeUser(i: number, random: () => number): UserRecord {
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!;
  const first = pick(FIRST);
  const userName = `${first}${i}@${pick(DOMAINS)}`;
  const emails = [
    { value: `${first.toLowerCase()}${i}@${pick(DOMAINS)}`, type: pick(['work', 'home', 'Work']), ...(random() < 0.5 ? { primary: true } : {}) },
    ...(random() < 0.4 ? [{ value: `x${i}@${pick(DOMAINS)}`, type: pick(['work', 'home']) }] : []),
  ];
  const document: Record<string, unknown> = {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName,
    ...(random() < 0.8 ? { displayName: `${first} ${pick(['Smith', 'jones', 'Brown'])}` } : {}),
    ...(random() < 0.7 ? { externalId: `EXT-${i % 50}` } : {}),
    active: random() < 0.8,
    emails,
    ...(random() < 0.5 ? { title: pick(['Engineer', 'manager', 'Intern']) } : {}),
    ...(random() < 0.5 ? { [ENT]: { department: pick(['R&D', 'Sales', 'sales']), employeeNumber: String(i) } } : {}),
    name: { givenName: first, familyName: pick(['Smith', 'jones']) },
  };
  const created = new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString();
  return {
    id: randomUUID(),
    userName,
    externalId: (document['externalId'] as string | undefined) ?? null,
    matrixId: `@u${i}:example.org`,
    displayName: (document['displayName'] as string | undefined) ?? null,
    active: document['active'] as boolean,
    document,
    version: 1,
    created,
    lastModified: created,
    state: 'provisioned',
    acknowledged: true,
    applied: {},
  };
}

export async function seededStore(count: number, engine: Engine = 'sqlite'): Promise<{ store: SqlStore; users: UserRecord[] }> {
  const store = await openTestStore(engine);
  const random = seededRandom(count);
  const users = Array.from({ length: count }, (_, i) => makeUser(i, random));
  for (const user of users) await store.insertUser(user, 'sync');
  return { store, users };
}

