import { expect } from 'chai';
import {
  BULK_MAX_OPERATIONS,
  BULK_REQUEST_SCHEMA,
  BULK_RESPONSE_SCHEMA,
  runBulk,
  type BulkTarget,
} from '../../src/scim/bulk.ts';
import { ScimError, conflict, notFound, preconditionFailed } from '../../src/scim/errors.ts';
import { ENT } from '../support/scim.ts';

const BASE = 'https://bridge.example/scim/v2';

interface Stored {
  doc: Record<string, unknown>;
  version: number;
}

/** Users in a Map, with the checks the real backend makes that bulk must pass on. */
class MemoryUsers implements BulkTarget {
  readonly users = new Map<string, Stored>();
  /** The attribute a create needs and keeps unique (userName; displayName for groups). */
  readonly #key: string;
  readonly #prefix: string;

  constructor(key = 'userName', prefix = 'u') {
    this.#key = key;
    this.#prefix = prefix;
  }
  readonly calls: { op: string; id?: string; ifMatch?: string | undefined; body?: unknown }[] = [];
  /** When set, the next call throws this plain Error (a bug, not a SCIM error). */
  crash: Error | undefined;
  #next = 1;

  #check(id: string, ifMatch: string | undefined): Stored {
    if (this.crash) throw this.crash;
    const stored = this.users.get(id);
    if (!stored) throw notFound(`no user ${id}`);
    if (ifMatch !== undefined && ifMatch !== `W/"${stored.version}"`) throw preconditionFailed(`version mismatch for ${id}`);
    return stored;
  }

  async create(input: Record<string, unknown>): Promise<{ id: string; version: number }> {
    this.calls.push({ op: 'create', body: input });
    if (this.crash) throw this.crash;
    if (typeof input[this.#key] !== 'string') throw new ScimError(400, `${this.#key} is required`, 'invalidValue');
    for (const stored of this.users.values()) {
      if (stored.doc[this.#key] === input[this.#key]) throw conflict(`${this.#key} ${String(input[this.#key])} is taken`);
    }
    const id = `${this.#prefix}-${this.#next++}`;
    this.users.set(id, { doc: input, version: 1 });
    return { id, version: 1 };
  }

  async replace(id: string, input: Record<string, unknown>, ifMatch?: string): Promise<{ id: string; version: number }> {
    this.calls.push({ op: 'replace', id, ifMatch, body: input });
    const stored = this.#check(id, ifMatch);
    stored.doc = input;
    stored.version++;
    return { id, version: stored.version };
  }

  async patch(id: string, body: unknown, ifMatch?: string): Promise<{ id: string; version: number }> {
    this.calls.push({ op: 'patch', id, ifMatch, body });
    const stored = this.#check(id, ifMatch);
    stored.version++;
    return { id, version: stored.version };
  }

  async delete(id: string, ifMatch?: string): Promise<void> {
    this.calls.push({ op: 'delete', id, ifMatch });
    this.#check(id, ifMatch);
    this.users.delete(id);
  }
}

const bulk = (Operations: unknown[], extra: Record<string, unknown> = {}) => ({ schemas: [BULK_REQUEST_SCHEMA], Operations, ...extra });
const post = (bulkId: string, data: Record<string, unknown>) => ({ method: 'POST', path: '/Users', bulkId, data });
const deactivate = { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] };

type Op = Record<string, unknown> & { response?: Record<string, unknown> };

async function run(
  body: unknown,
  users = new MemoryUsers(),
  groups = new MemoryUsers('displayName', 'g'),
): Promise<{ ops: Op[]; users: MemoryUsers; groups: MemoryUsers; response: Record<string, unknown> }> {
  const response = await runBulk(body, { Users: users, Groups: groups }, BASE);
  return { ops: response['Operations'] as Op[], users, groups, response };
}

async function rejection(body: unknown, users = new MemoryUsers()): Promise<ScimError> {
  try {
    await runBulk(body, { Users: users, Groups: new MemoryUsers('displayName', 'g') }, BASE);
  } catch (error) {
    expect(error).to.be.instanceOf(ScimError);
    return error as ScimError;
  }
  throw new Error('expected runBulk to reject');
}

describe('SCIM bulk requests', () => {
  describe('the request as a whole', () => {
    it('answers with a BulkResponse listing one result per operation', async () => {
      const { response, ops } = await run(bulk([post('a', { userName: 'alice' })]));
      expect(response['schemas']).to.deep.equal([BULK_RESPONSE_SCHEMA]);
      expect(ops).to.have.length(1);
    });

    it('rejects a body without the BulkRequest schema with 400 invalidSyntax', async () => {
      const error = await rejection({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [] });
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidSyntax');
      expect((await rejection({ Operations: [] })).status).to.equal(400);
      expect((await rejection('not json')).scimType).to.equal('invalidSyntax');
    });

    it('rejects a body whose Operations is not an array with 400 invalidSyntax', async () => {
      const error = await rejection({ schemas: [BULK_REQUEST_SCHEMA], Operations: { method: 'POST' } });
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidSyntax');
    });

    it('rejects more than maxOperations operations with 413 before running any', async () => {
      const users = new MemoryUsers();
      const ops = Array.from({ length: BULK_MAX_OPERATIONS + 1 }, (_, i) => post(`b${i}`, { userName: `user${i}` }));
      const error = await rejection(bulk(ops), users);
      expect(error.status).to.equal(413);
      expect(error.detail).to.contain(String(BULK_MAX_OPERATIONS));
      expect(users.calls).to.be.empty;
    });

    it('accepts exactly maxOperations operations', async () => {
      const ops = Array.from({ length: BULK_MAX_OPERATIONS }, (_, i) => post(`b${i}`, { userName: `user${i}` }));
      const { ops: results } = await run(bulk(ops));
      expect(results).to.have.length(BULK_MAX_OPERATIONS);
      expect(results.every((r) => r['status'] === '201')).to.equal(true);
    });

    it('rejects a failOnErrors that is not a positive integer', async () => {
      expect((await rejection(bulk([], { failOnErrors: 0 }))).status).to.equal(400);
      expect((await rejection(bulk([], { failOnErrors: '1' }))).status).to.equal(400);
    });

    it('reads attribute names and methods in any case', async () => {
      const { ops } = await run({ schemas: [BULK_REQUEST_SCHEMA], operations: [{ Method: 'post', Path: '/Users', BulkId: 'a', Data: { userName: 'alice' } }] });
      expect(ops[0]).to.include({ method: 'POST', bulkId: 'a', status: '201' });
    });
  });

  describe('operations', () => {
    it('creates with POST: 201, location and version, the data normalised first', async () => {
      const { ops, users } = await run(bulk([post('qwerty', { USERNAME: 'alice', displayName: 'Alice' })]));
      expect(ops[0]).to.deep.equal({ method: 'POST', bulkId: 'qwerty', version: 'W/"1"', location: `${BASE}/Users/u-1`, status: '201' });
      expect(users.users.get('u-1')?.doc['userName']).to.equal('alice');
    });

    it('replaces with PUT: 200 and the new version, the data normalised first', async () => {
      const users = new MemoryUsers();
      await users.create({ userName: 'bob' });
      const { ops } = await run(bulk([{ method: 'PUT', path: '/Users/u-1', data: { USERNAME: 'bob', displayName: 'Bob' } }]), users);
      expect(ops[0]).to.deep.equal({ method: 'PUT', version: 'W/"2"', location: `${BASE}/Users/u-1`, status: '200' });
      expect(users.users.get('u-1')?.doc).to.include({ userName: 'bob', displayName: 'Bob' });
    });

    it('deletes with DELETE: 204 and a location, no version', async () => {
      const users = new MemoryUsers();
      await users.create({ userName: 'bob' });
      const { ops } = await run(bulk([{ method: 'DELETE', path: '/Users/u-1' }]), users);
      expect(ops[0]).to.deep.equal({ method: 'DELETE', location: `${BASE}/Users/u-1`, status: '204' });
      expect(users.users.has('u-1')).to.equal(false);
    });

    it('passes version on as If-Match, and a mismatch fails that operation with 412', async () => {
      const users = new MemoryUsers();
      await users.create({ userName: 'bob' });
      const { ops } = await run(
        bulk([
          { method: 'PATCH', path: '/Users/u-1', version: 'W/"1"', data: deactivate },
          { method: 'PUT', path: '/Users/u-1', version: 'W/"1"', data: { userName: 'bob' } },
          { method: 'DELETE', path: '/Users/u-1', version: 'W/"2"' },
        ]),
        users,
      );
      expect(users.calls.slice(1).map((c) => c.ifMatch)).to.deep.equal(['W/"1"', 'W/"1"', 'W/"2"']);
      expect(ops.map((o) => o['status'])).to.deep.equal(['200', '412', '204']);
      expect(ops[1]?.location).to.equal(`${BASE}/Users/u-1`);
      expect(ops[1]?.response).to.include({ status: '412' });
    });

    it('passes no If-Match when the operation has no version', async () => {
      const users = new MemoryUsers();
      await users.create({ userName: 'bob' });
      await run(bulk([{ method: 'PATCH', path: '/Users/u-1', data: deactivate }]), users);
      expect(users.calls[1]).to.include({ op: 'patch', id: 'u-1', ifMatch: undefined });
    });

    it('reports every status as a string', async () => {
      const users = new MemoryUsers();
      await users.create({ userName: 'bob' });
      const { ops } = await run(
        bulk([post('a', { userName: 'alice' }), { method: 'PATCH', path: '/Users/u-1', data: deactivate }, { method: 'DELETE', path: '/Users/u-1' }, { method: 'DELETE', path: '/Users/u-1' }]),
        users,
      );
      expect(ops.map((o) => o['status'])).to.deep.equal(['201', '200', '204', '404']);
      expect(ops[3]?.response?.['status']).to.equal('404');
    });

    it('turns a ScimError from the backend into that operation failing, and goes on', async () => {
      const { ops } = await run(bulk([post('a', { userName: 'alice' }), post('b', { userName: 'alice' }), post('c', { userName: 'carol' })]));
      expect(ops.map((o) => o['status'])).to.deep.equal(['201', '409', '201']);
      expect(ops[1]).to.deep.equal({
        method: 'POST',
        bulkId: 'b',
        status: '409',
        response: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '409', scimType: 'uniqueness', detail: 'userName alice is taken' },
      });
    });

    it('turns any other backend error into a 500 with a generic detail', async () => {
      const users = new MemoryUsers();
      users.crash = new Error('database is locked at /var/lib/secret.db');
      const { ops } = await run(bulk([post('a', { userName: 'alice' })]), users);
      expect(ops[0]?.['status']).to.equal('500');
      expect(String(ops[0]?.response?.['detail'])).to.not.contain('secret');
    });

    it('fails an operation with an unknown path with 400 invalidPath', async () => {
      const { ops } = await run(
        bulk([
          { method: 'POST', path: '/Robots', bulkId: 'a', data: { userName: 'a' } },
          { method: 'POST', path: '/Users/u-1', bulkId: 'b', data: { userName: 'b' } },
          { method: 'PATCH', path: '/Users', data: deactivate },
          { method: 'DELETE', path: '/Users/u-1/extra' },
          { method: 'DELETE' },
          // Found by the fuzzer: a lone surrogate in the id was a 500 (URIError in the Location).
          { method: 'PATCH', path: '/Users/\ud800', data: deactivate },
          { method: 'DELETE', path: '/Users/%ED%A0%80' },
        ]),
      );
      for (const op of ops) {
        expect(op['status']).to.equal('400');
        expect(op.response?.['scimType']).to.equal('invalidPath');
      }
      expect(ops).to.have.length(7);
    });

    it('refuses data nested deeper than any SCIM document, before it can exhaust the stack', async () => {
      let deep: unknown = 'x';
      for (let i = 0; i < 10_000; i++) deep = [deep];
      const { ops } = await run(bulk([{ method: 'POST', path: '/Users', bulkId: 'a', data: { userName: 'a', nickName: deep } }]));
      expect(ops[0]?.['status']).to.equal('400');
      expect(ops[0]?.response?.['scimType']).to.equal('invalidSyntax');
    });

    it('creates a group whose member is a user created in the same request', async () => {
      const { ops, groups } = await run(
        bulk([
          { method: 'POST', path: '/Groups', bulkId: 'g', data: { displayName: 'Admins', members: [{ value: 'bulkId:u' }] } },
          post('u', { userName: 'ann' }),
        ]),
      );
      expect(ops[0]).to.include({ method: 'POST', bulkId: 'g', status: '201', location: `${BASE}/Groups/g-1` });
      expect(ops[1]).to.include({ status: '201', location: `${BASE}/Users/u-1` });
      expect(groups.users.get('g-1')?.doc['members']).to.deep.equal([{ value: 'u-1' }]);
    });

    it('fails a POST without bulkId, an unknown method and a missing data with 400 invalidSyntax', async () => {
      const { ops } = await run(
        bulk([
          { method: 'POST', path: '/Users', data: { userName: 'a' } },
          { method: 'GET', path: '/Users/u-1' },
          { method: 'PATCH', path: '/Users/u-1' },
          'not an operation',
        ]),
      );
      expect(ops.map((o) => [o['status'], o.response?.['scimType']])).to.deep.equal([
        ['400', 'invalidSyntax'],
        ['400', 'invalidSyntax'],
        ['400', 'invalidSyntax'],
        ['400', 'invalidSyntax'],
      ]);
    });
  });

  describe('bulkId references', () => {
    it('resolves bulkId:x in a later path to the id the POST created (RFC 7644 §3.7 example)', async () => {
      const { ops, users } = await run(
        bulk([post('qwerty', { userName: 'alice' }), { method: 'PATCH', path: '/Users/bulkId:qwerty', data: deactivate }]),
      );
      expect(ops[1]).to.deep.equal({ method: 'PATCH', version: 'W/"2"', location: `${BASE}/Users/u-1`, status: '200' });
      expect(users.calls[1]).to.include({ op: 'patch', id: 'u-1' });
    });

    it('resolves bulkId:x inside data, such as a manager value', async () => {
      const { ops, users } = await run(
        bulk([post('boss', { userName: 'boss' }), post('worker', { userName: 'worker', [ENT]: { manager: { value: 'bulkId:boss' } } })]),
      );
      expect(ops.map((o) => o['status'])).to.deep.equal(['201', '201']);
      expect(users.users.get('u-2')?.doc[ENT]).to.deep.equal({ manager: { value: 'u-1' } });
    });

    it('runs a POST referenced before it first, and still reports in request order', async () => {
      const { ops, users } = await run(
        bulk([{ method: 'PATCH', path: '/Users/bulkId:later', data: deactivate }, post('later', { userName: 'later' })]),
      );
      expect(users.calls.map((c) => c.op)).to.deep.equal(['create', 'patch']);
      expect(ops.map((o) => [o['method'], o['status']])).to.deep.equal([
        ['PATCH', '200'],
        ['POST', '201'],
      ]);
    });

    it('fails an operation referring to a failed POST with 409 naming the bulkId', async () => {
      const { ops, users } = await run(
        bulk([post('broken', { displayName: 'no userName' }), { method: 'PATCH', path: '/Users/bulkId:broken', data: deactivate }]),
      );
      expect(ops.map((o) => o['status'])).to.deep.equal(['400', '409']);
      expect(ops[1]?.response?.['detail']).to.contain('bulkId:broken');
      expect(users.calls.filter((c) => c.op === 'patch')).to.be.empty;
    });

    it('fails an operation referring to a bulkId no POST declares with 409', async () => {
      const { ops } = await run(bulk([{ method: 'DELETE', path: '/Users/bulkId:nowhere' }]));
      expect(ops[0]?.['status']).to.equal('409');
      expect(ops[0]?.response?.['detail']).to.contain('bulkId:nowhere');
    });

    it('fails circular references with 409 instead of looping', async () => {
      const { ops, users } = await run(
        bulk([
          post('a', { userName: 'a', [ENT]: { manager: { value: 'bulkId:b' } } }),
          post('b', { userName: 'b', [ENT]: { manager: { value: 'bulkId:a' } } }),
        ]),
      );
      expect(ops.map((o) => o['status'])).to.deep.equal(['409', '409']);
      expect(ops[1]?.response?.['detail']).to.contain('circular');
      expect(users.calls).to.be.empty;
    });

    it('fails a second POST declaring the same bulkId, and references use the first', async () => {
      const { ops, users } = await run(
        bulk([post('x', { userName: 'one' }), post('x', { userName: 'two' }), { method: 'PATCH', path: '/Users/bulkId:x', data: deactivate }]),
      );
      expect(ops.map((o) => o['status'])).to.deep.equal(['201', '400', '200']);
      expect(users.calls[1]).to.include({ op: 'patch', id: 'u-1' });
    });
  });

  describe('failOnErrors', () => {
    it('stops after the first error when failOnErrors is 1, listing only what ran', async () => {
      const { ops, users } = await run(
        bulk([post('a', { userName: 'alice' }), post('b', { displayName: 'no userName' }), post('c', { userName: 'carol' })], { failOnErrors: 1 }),
      );
      expect(ops.map((o) => [o['bulkId'], o['status']])).to.deep.equal([
        ['a', '201'],
        ['b', '400'],
      ]);
      expect(users.users.size).to.equal(1);
    });

    it('goes on until that many errors when failOnErrors is larger', async () => {
      const { ops } = await run(
        bulk([post('a', { displayName: 'x' }), post('b', { userName: 'bob' }), post('c', { displayName: 'y' }), post('d', { userName: 'dan' })], {
          failOnErrors: 2,
        }),
      );
      expect(ops.map((o) => o['status'])).to.deep.equal(['400', '201', '400']);
    });

    it('does not report an operation whose forward reference failed the run', async () => {
      const { ops } = await run(
        bulk([{ method: 'PATCH', path: '/Users/bulkId:later', data: deactivate }, post('later', { displayName: 'no userName' })], { failOnErrors: 1 }),
      );
      expect(ops.map((o) => [o['method'], o['status']])).to.deep.equal([['POST', '400']]);
    });

    it('runs every operation when failOnErrors is absent', async () => {
      const { ops } = await run(bulk([post('a', { displayName: 'x' }), post('b', { displayName: 'y' }), post('c', { userName: 'c' })]));
      expect(ops.map((o) => o['status'])).to.deep.equal(['400', '400', '201']);
    });
  });
});
