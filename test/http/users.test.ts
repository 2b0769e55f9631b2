import { expect } from 'chai';
import type { ProvisioningEvent } from '../../src/matrix/adminRoom.ts';
import type { JournalWorker } from '../../src/provisioning/journal.ts';
import { MAX_FILTER_DEPTH, MAX_FILTER_TERMS } from '../../src/scim/filter/parse.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';
import type { InMemoryHomeserver } from './fakeHomeserver.ts';
import { startHttpBridge, type HttpBridge, type Reply } from './harness.ts';

describe('SCIM Users over HTTP (in-memory homeserver)', () => {
  let bridge: HttpBridge;
  let base: string;
  let store: SqlStore;
  let homeserver: InMemoryHomeserver;
  let journal: JournalWorker;
  let events: ProvisioningEvent[];

  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> =>
    bridge.call(method, path, body, headers);

  const alice = (overrides: Record<string, unknown> = {}) => ({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'Alice.Smith@example.com',
    displayName: 'Alice Smith',
    emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
    ...overrides,
  });

  async function storedUsers(): Promise<number> {
    return (await store.listUsers({ startIndex: 1, count: 100 })).totalResults;
  }

  beforeEach(async () => {
    bridge = await startHttpBridge();
    ({ base, store, homeserver, journal, events } = bridge);
  });

  afterEach(() => bridge.close());


  it('creates a user: 201 with Location, meta and ETag, and the homeserver account', async () => {
    const reply = await call('POST', '/Users', alice());
    expect(reply.status).to.equal(201);
    expect(reply.headers.get('location')).to.equal(`${base}/Users/${String(reply.body['id'])}`);
    expect(reply.headers.get('content-type')).to.match(/^application\/scim\+json/);
    expect(reply.headers.get('etag')).to.equal('W/"1"');
    expect(reply.body['meta']).to.include({ resourceType: 'User', version: 'W/"1"' });
    expect(reply.body['userName']).to.equal('Alice.Smith@example.com');
    const account = homeserver.accounts.get('@alice.smith:example.org');
    expect(account?.displayName).to.equal('Alice Smith');
    expect(account?.emails).to.deep.equal(['alice@example.com']);
    expect(events.map((e) => e.kind)).to.deep.equal(['created']);
  });

  it('returns the Matrix ID when asked for it', async () => {
    const created = await call('POST', '/Users', alice());
    const matrix = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';
    expect(created.body).to.not.have.property(matrix);
    const asked = await call('GET', `/Users/${String(created.body['id'])}?attributes=${matrix}:matrixId`);
    expect(asked.body[matrix]).to.deep.equal({ matrixId: '@alice.smith:example.org' });
    expect(asked.body['schemas']).to.include(matrix);
    const found = await call('GET', `/Users?filter=${encodeURIComponent(`${matrix}:matrixId eq "@alice.smith:example.org"`)}`);
    expect(found.body['totalResults']).to.equal(1);
  });

  it('never returns or stores the password', async () => {
    const reply = await call('POST', '/Users', alice({ password: 'correct horse battery staple' }));
    expect(reply.status).to.equal(201);
    expect(JSON.stringify(reply.body)).to.not.include('correct horse');
    const record = await store.getUser(String(reply.body['id']));
    expect(JSON.stringify(record)).to.not.include('correct horse');
    expect(homeserver.accounts.get('@alice.smith:example.org')?.password).to.equal('correct horse battery staple');
  });

  it('answers 401 with a SCIM error and WWW-Authenticate without a valid token', async () => {
    for (const authorization of ['', 'Bearer wrong-token-wrong-token']) {
      const reply = await call('POST', '/Users', alice(), { authorization });
      expect(reply.status).to.equal(401);
      expect(reply.headers.get('www-authenticate')).to.match(/^Bearer/);
      expect(reply.body).to.include({ status: '401' });
      expect(reply.body['schemas']).to.deep.equal(['urn:ietf:params:scim:api:messages:2.0:Error']);
    }
    expect(await storedUsers()).to.equal(0);
    expect(homeserver.accounts.size).to.equal(0);
  });

  it('serves discovery without a token', async () => {
    for (const path of ['/ServiceProviderConfig', '/ResourceTypes', '/Schemas', '/ResourceTypes/User']) {
      const reply = await call('GET', path, undefined, { authorization: '' });
      expect(reply.status, path).to.equal(200);
    }
  });

  it('answers malformed JSON with 400 invalidSyntax and writes nothing', async () => {
    const reply = await call('POST', '/Users', '{"userName": "bob",');
    expect(reply.status).to.equal(400);
    expect(reply.body['scimType']).to.equal('invalidSyntax');
    expect(reply.body['detail']).to.match(/not valid JSON/);
    expect(await storedUsers()).to.equal(0);
    expect(homeserver.applyCalls).to.equal(0);
  });

  it('refuses the same userName in another case with 409 uniqueness, changing nothing', async () => {
    await call('POST', '/Users', alice());
    const before = JSON.stringify([...homeserver.accounts.entries()]);
    const reply = await call('POST', '/Users', alice({ userName: 'ALICE.SMITH@EXAMPLE.COM', displayName: 'Impostor' }));
    expect(reply.status).to.equal(409);
    expect(reply.body['scimType']).to.equal('uniqueness');
    expect(await storedUsers()).to.equal(1);
    expect(JSON.stringify([...homeserver.accounts.entries()])).to.equal(before);
  });

  it('refuses an email another account holds with 409, writing nothing', async () => {
    await call('POST', '/Users', alice());
    const reply = await call('POST', '/Users', alice({ userName: 'bob', displayName: 'Bob' }));
    expect(reply.status).to.equal(409);
    expect(reply.body['detail']).to.match(/email alice@example\.com is already held by @alice\.smith:example\.org/);
    expect(await storedUsers()).to.equal(1);
    expect(homeserver.accounts.has('@bob:example.org')).to.equal(false);
  });

  it('refuses an invalid email with 400 invalidValue naming it', async () => {
    const reply = await call('POST', '/Users', alice({ emails: [{ value: 'not-an-address' }] }));
    expect(reply.status).to.equal(400);
    expect(reply.body).to.include({ scimType: 'invalidValue' });
    expect(reply.body['detail']).to.match(/not-an-address/);
    expect(await storedUsers()).to.equal(0);
  });

  it('refuses an account that exists on the homeserver but is not ours, saying how to adopt it', async () => {
    homeserver.foreign.add('@alice.smith:example.org');
    const reply = await call('POST', '/Users', alice());
    expect(reply.status).to.equal(409);
    expect(reply.body['detail']).to.match(/adoptExistingUsers/);
    expect(await storedUsers()).to.equal(0);
  });

  it('never touches protected users', async () => {
    const reply = await call('POST', '/Users', alice({ userName: 'admin', emails: [] }));
    expect(reply.status).to.equal(403);
    expect(reply.body['detail']).to.match(/protected/);
    expect(await storedUsers()).to.equal(0);
  });

  it('answers 503 with Retry-After when the homeserver is down before anything is written', async () => {
    homeserver.down = true;
    const reply = await call('POST', '/Users', alice());
    expect(reply.status).to.equal(503);
    expect(Number(reply.headers.get('retry-after'))).to.be.greaterThan(0);
    expect(reply.body['detail']).to.match(/nothing was changed/);
    expect(await storedUsers()).to.equal(0);
  });

  it('keeps a half-done creation in the journal, and the retried POST converges to one user', async () => {
    homeserver.failApplies = 1;
    const first = await call('POST', '/Users', alice());
    expect(first.status).to.equal(503);
    expect(first.headers.get('retry-after')).to.not.equal(null);
    const pending = await store.findByUserName('alice.smith@example.com');
    expect(pending?.state).to.equal('pending');
    expect(await store.journalFor(pending!.id)).to.have.length(1);

    const retry = await call('POST', '/Users', alice());
    expect(retry.status).to.equal(201);
    expect(retry.body['id']).to.equal(pending!.id);
    expect(await storedUsers()).to.equal(1);
    expect(homeserver.accounts.size).to.equal(1);
    expect(await store.journalFor(pending!.id)).to.have.length(0);
    expect(events.map((e) => e.kind)).to.deep.equal(['failed', 'created']);
  });

  it('completes journalled work on its own, without the IdP retrying', async () => {
    homeserver.failApplies = 1;
    await call('POST', '/Users', alice({ password: 'kept-in-memory-only' }));
    const later = new Date(Date.now() + 60 * 60_000);
    expect(await journal.run(later)).to.equal(1);
    const account = homeserver.accounts.get('@alice.smith:example.org');
    expect(account?.displayName).to.equal('Alice Smith');
    expect(account?.password).to.equal('kept-in-memory-only');
    expect((await store.findByUserName('alice.smith@example.com'))?.state).to.equal('provisioned');
    // The IdP's own retry then finds it done and gets the same resource.
    const retry = await call('POST', '/Users', alice());
    expect(retry.status).to.equal(201);
    expect(await storedUsers()).to.equal(1);
  });

  it('reports a failure that keeps coming back less and less often, then the success', async () => {
    homeserver.failApplies = 8;
    await call('POST', '/Users', alice());
    for (let hour = 1; hour <= 8; hour++) await journal.run(new Date(Date.now() + hour * 60 * 60_000));
    const kinds = events.map((e) => e.kind);
    // 8 failed attempts are reported on the 1st, 2nd, 3rd and 5th; the 9th succeeds.
    expect(kinds).to.deep.equal(['failed', 'failed', 'failed', 'failed', 'created']);
    expect(homeserver.accounts.size).to.equal(1);
  });

  it('finds users by userName case-insensitively and by externalId exactly', async () => {
    await call('POST', '/Users', alice({ externalId: 'EXT-1' }));
    const byName = await call('GET', `/Users?filter=${encodeURIComponent('userName eq "alice.smith@EXAMPLE.com"')}`);
    expect(byName.body['totalResults']).to.equal(1);
    const byExternal = await call('GET', `/Users?filter=${encodeURIComponent('externalId eq "ext-1"')}`);
    expect(byExternal.body['totalResults']).to.equal(0);
    const entra = await call('GET', `/Users?filter=${encodeURIComponent('externalId eq EXT-1')}`);
    expect(entra.body['totalResults']).to.equal(1);
    const none = await call('GET', `/Users?filter=${encodeURIComponent('userName eq "6f2b1c7e-0000-4000-8000-000000000000"')}`);
    expect(none.status).to.equal(200);
    expect(none.body).to.include({ totalResults: 0 });
    const bad = await call('GET', `/Users?filter=${encodeURIComponent('favouriteColour eq "x"')}`);
    expect(bad.status).to.equal(400);
    expect(bad.body['scimType']).to.equal('invalidFilter');
  });

  it('pages with startIndex and count', async () => {
    for (const name of ['a1', 'a2', 'a3']) await call('POST', '/Users', { userName: name });
    const page = await call('GET', '/Users?startIndex=2&count=1');
    expect(page.body).to.include({ totalResults: 3, startIndex: 2, itemsPerPage: 1 });
    expect((page.body['Resources'] as { userName: string }[])[0]?.userName).to.equal('a2');
  });

  it('sorts by any attribute, case-insensitively where the attribute is, missing values last', async () => {
    await call('POST', '/Users', { userName: 'u1', displayName: 'bravo' });
    await call('POST', '/Users', { userName: 'u2', displayName: 'Alpha' });
    await call('POST', '/Users', { userName: 'u3' });
    await call('POST', '/Users', { userName: 'u4', displayName: 'charlie' });
    const names = async (query: string) =>
      ((await call('GET', `/Users?${query}`)).body['Resources'] as { userName: string }[]).map((u) => u.userName);
    expect(await names('sortBy=displayName')).to.deep.equal(['u2', 'u1', 'u4', 'u3']);
    expect(await names('sortBy=DisplayName&sortOrder=descending')).to.deep.equal(['u4', 'u1', 'u2', 'u3']);
    expect(await names('sortBy=userName&sortOrder=descending&count=2&startIndex=2')).to.deep.equal(['u3', 'u2']);
    const bad = await call('GET', '/Users?sortOrder=sideways');
    expect(bad.status).to.equal(400);
    expect(bad.body['detail']).to.match(/sortOrder/);
  });

  it('declares its page sizes in ServiceProviderConfig', async () => {
    const config = await call('GET', '/ServiceProviderConfig');
    expect(config.body['pagination']).to.include({ index: true, cursor: false, defaultPageSize: 100, maxPageSize: 1000 });
    expect(config.body['filter']).to.include({ supported: true, maxResults: 1000 });
  });

  it('clamps startIndex and count as RFC 7644 says', async () => {
    for (const name of ['c1', 'c2']) await call('POST', '/Users', { userName: name });
    const below = await call('GET', '/Users?startIndex=-4&count=1');
    expect(below.body).to.include({ startIndex: 1, itemsPerPage: 1, totalResults: 2 });
    const none = await call('GET', '/Users?count=-1');
    expect(none.body).to.include({ itemsPerPage: 0, totalResults: 2 });
    expect(none.body['Resources']).to.deep.equal([]);
    const huge = await call('GET', '/Users?count=100000');
    expect(huge.body).to.include({ itemsPerPage: 2 });
    const beyond = await call('GET', '/Users?startIndex=9');
    expect(beyond.body).to.include({ totalResults: 2, itemsPerPage: 0 });
    expect((await call('GET', '/Users?count=many')).status).to.equal(400);
  });

  it('searches with POST /Users/.search and POST /.search, projecting attributes', async () => {
    await call('POST', '/Users', alice({ title: 'Engineer' }));
    await call('POST', '/Users', { userName: 'bob', displayName: 'Bob' });
    const body = {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: 'title eq "engineer"',
      attributes: ['userName'],
      startIndex: 1,
      count: 10,
    };
    for (const path of ['/Users/.search', '/.search']) {
      const reply = await call('POST', path, body);
      expect(reply.status, path).to.equal(200);
      expect(reply.body['totalResults']).to.equal(1);
      const [user] = reply.body['Resources'] as Record<string, unknown>[];
      expect(Object.keys(user!).sort()).to.deep.equal(['id', 'schemas', 'userName']);
    }
    expect((await call('POST', '/.search', body, { authorization: '' })).status).to.equal(401);
  });

  it('answers 304 to If-None-Match with the current version', async () => {
    const created = await call('POST', '/Users', alice());
    const id = String(created.body['id']);
    const cached = await call('GET', `/Users/${id}`, undefined, { 'if-none-match': 'W/"1"' });
    expect(cached.status).to.equal(304);
    await call('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'title', value: 'x' }] });
    const changed = await call('GET', `/Users/${id}`, undefined, { 'if-none-match': 'W/"1"' });
    expect(changed.status).to.equal(200);
    expect(changed.headers.get('etag')).to.equal('W/"2"');
  });

  it('lets exactly one of two concurrent PATCHes with the same If-Match win', async () => {
    const created = await call('POST', '/Users', alice());
    const id = String(created.body['id']);
    const patchTitle = (title: string) =>
      call('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'title', value: title }] }, { 'if-match': 'W/"1"' });
    const replies = await Promise.all([patchTitle('first'), patchTitle('second')]);
    expect(replies.map((r) => r.status).sort()).to.deep.equal([200, 412]);
    const winner = replies.find((r) => r.status === 200)!;
    const stored = await call('GET', `/Users/${id}`);
    expect(stored.body['title']).to.equal(winner.body['title']);
    expect(stored.body['meta']).to.include({ version: 'W/"2"' });
  });

  it('disables with a PATCH active "False" and re-enables with a PUT', async () => {
    const created = await call('POST', '/Users', alice());
    const id = String(created.body['id']);
    const disabled = await call('PATCH', `/Users/${id}`, { Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
    expect(disabled.status).to.equal(200);
    expect(disabled.body['active']).to.equal(false);
    expect(homeserver.accounts.get('@alice.smith:example.org')?.active).to.equal(false);
    const enabled = await call('PUT', `/Users/${id}`, alice({ active: true }));
    expect(enabled.status).to.equal(200);
    expect(homeserver.accounts.get('@alice.smith:example.org')?.active).to.equal(true);
    expect(events.map((e) => e.kind)).to.deep.equal(['created', 'disabled', 'enabled']);
  });

  it('answers 412 when If-Match names another version', async () => {
    const created = await call('POST', '/Users', alice());
    const id = String(created.body['id']);
    const stale = await call('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'title', value: 'x' }] }, { 'if-match': 'W/"7"' });
    expect(stale.status).to.equal(412);
    const fresh = await call('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'title', value: 'x' }] }, { 'if-match': 'W/"1"' });
    expect(fresh.status).to.equal(200);
    expect(fresh.headers.get('etag')).to.equal('W/"2"');
  });

  it('keeps a PATCH that fails half-way out of the homeserver only, and completes it from the journal', async () => {
    const created = await call('POST', '/Users', alice());
    const id = String(created.body['id']);
    homeserver.down = true;
    const reply = await call('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'displayName', value: 'Alice S.' }] });
    expect(reply.status).to.equal(503);
    homeserver.down = false;
    await journal.run(new Date(Date.now() + 60 * 60_000));
    expect(homeserver.accounts.get('@alice.smith:example.org')?.displayName).to.equal('Alice S.');
  });

  it('deletes: 204, then 404, and the Matrix ID is never given out again', async () => {
    const created = await call('POST', '/Users', alice());
    const id = String(created.body['id']);
    expect((await call('DELETE', `/Users/${id}`)).status).to.equal(204);
    expect(homeserver.accounts.get('@alice.smith:example.org')?.deactivated).to.equal(true);
    const gone = await call('GET', `/Users/${id}`);
    expect(gone.status).to.equal(404);
    expect(gone.body['detail']).to.match(new RegExp(id));
    const again = await call('POST', '/Users', alice());
    expect(again.status).to.equal(409);
    expect(again.body['detail']).to.match(/never reused/);
  });

  it('answers unknown endpoints and methods with SCIM errors', async () => {
    expect((await call('GET', '/Nope')).body).to.include({ status: '404' });
    const created = await call('POST', '/Users', alice());
    const reply = await call('POST', `/Users/${String(created.body['id'])}`, alice());
    expect(reply.status).to.equal(405);
    expect(reply.body).to.include({ status: '405' });
  });
});

describe('SCIM Users over HTTP: filters at and past their limits', () => {
  let bridge: HttpBridge;
  beforeEach(async () => {
    bridge = await startHttpBridge();
  });
  afterEach(() => bridge.close());

  /** `count` comparisons joined by `or`, the i-th written by `term(i)`. */
  const orChain = (count: number, term: (i: number) => string): string => Array.from({ length: count }, (_, i) => term(i)).join(' or ');

  async function twoUsers(): Promise<{ ids: string[]; userNames: string[] }> {
    const userNames = ['first@example.com', 'last@example.com'];
    const ids: string[] = [];
    for (const userName of userNames) ids.push(String((await bridge.call('POST', '/Users', { userName })).body['id']));
    return { ids, userNames };
  }

  const foundIds = (reply: Reply): string[] => (reply.body['Resources'] as { id: string }[]).map((r) => r.id).sort();

  function expectInvalidFilter(reply: Reply, limit: number): void {
    expect(reply.status).to.equal(400);
    expect(reply.body).to.include({ status: '400', scimType: 'invalidFilter' });
    expect(reply.body['detail']).to.include(`${limit}`);
  }

  it(`answers a ${MAX_FILTER_TERMS.toLocaleString('en')}-term or with 200 and the users it names, on GET and POST .search`, async () => {
    const { ids, userNames } = await twoUsers();
    // Node refuses request heads over 16 KiB (431), so the GET uses short terms; the POST, full ones.
    const short = orChain(MAX_FILTER_TERMS, (i) => (i === 0 ? `id eq ${ids[0]}` : i === MAX_FILTER_TERMS - 1 ? `id eq ${ids[1]}` : 'id eq 0'));
    const got = await bridge.call('GET', `/Users?${new URLSearchParams({ filter: short, count: '10' })}`);
    expect(got.status).to.equal(200);
    expect(foundIds(got)).to.deep.equal([...ids].sort());
    const full = orChain(MAX_FILTER_TERMS, (i) => `userName eq "${i % 500 === 0 ? userNames[i / 500] : `nobody${i}@example.com`}"`);
    const searched = await bridge.call('POST', '/Users/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: full });
    expect(searched.status).to.equal(200);
    expect(foundIds(searched)).to.deep.equal([...ids].sort());
  });

  it(`takes a ${MAX_FILTER_TERMS.toLocaleString('en')}-term filter of full userNames in a GET URL (no 431)`, async () => {
    const { ids, userNames } = await twoUsers();
    const full = orChain(MAX_FILTER_TERMS, (i) => `userName eq "${i % 500 === 0 ? userNames[i / 500] : `nobody${i}@example.com`}"`);
    const got = await bridge.call('GET', `/Users?${new URLSearchParams({ filter: full, count: '10' })}`);
    expect(got.status).to.equal(200);
    expect(foundIds(got)).to.deep.equal([...ids].sort());
  });

  it(`answers ${(MAX_FILTER_TERMS + 1).toLocaleString('en')} terms with 400 invalidFilter`, async () => {
    const filter = orChain(MAX_FILTER_TERMS + 1, () => 'id eq 0');
    expectInvalidFilter(await bridge.call('GET', `/Users?${new URLSearchParams({ filter })}`), MAX_FILTER_TERMS);
  });

  it('answers 10,000 nested parentheses with 400 invalidFilter, never 500', async () => {
    const deep = (levels: number) => `${'('.repeat(levels)}userName eq "x"${')'.repeat(levels)}`;
    // Parentheses need no escaping in a URL; 5,000 fit in Node's 16 KiB request head and overflowed the old parser.
    expectInvalidFilter(await bridge.call('GET', `/Users?filter=${deep(5000)}`), MAX_FILTER_DEPTH);
    const search = { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: deep(10_000) };
    expectInvalidFilter(await bridge.call('POST', '/Users/.search', search), MAX_FILTER_DEPTH);
    expectInvalidFilter(await bridge.call('POST', '/.search', { ...search, filter: `${'not ('.repeat(3000)}userName eq "x"${')'.repeat(3000)}` }), MAX_FILTER_DEPTH);
  });
});

describe('SCIM Users over HTTP: input refused before anything is stored', () => {
  let bridge: HttpBridge;
  beforeEach(async () => {
    bridge = await startHttpBridge();
  });
  afterEach(() => bridge.close());

  const user = (overrides: Record<string, unknown> = {}) => ({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'bob@example.com',
    displayName: 'Bob',
    emails: [{ value: 'bob@example.com', type: 'work', primary: true }],
    ...overrides,
  });

  /** POSTs the body and checks it is a 400 of that scimType whose detail starts as given, and that nothing was kept. */
  async function expectRefused(body: Record<string, unknown>, detail: RegExp, scimType = 'invalidValue'): Promise<Reply> {
    const reply = await bridge.call('POST', '/Users', body);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(400);
    expect(reply.body).to.include({ status: '400', scimType });
    expect(reply.body['detail']).to.match(detail);
    const userName = typeof body['userName'] === 'string' ? body['userName'] : String(body['userName']);
    const found = await bridge.call('GET', `/Users?filter=${encodeURIComponent(`userName eq ${JSON.stringify(userName)}`)}`);
    expect(found.status).to.equal(200);
    expect(found.body).to.include({ totalResults: 0 });
    expect((await bridge.store.listUsers({ startIndex: 1, count: 10 })).totalResults).to.equal(0);
    expect(bridge.homeserver.applyCalls).to.equal(0);
    expect(bridge.homeserver.writes).to.deep.equal([]);
    expect(bridge.homeserver.accounts.size).to.equal(0);
    return reply;
  }

  it('refuses a 600-character password without echoing it', async () => {
    const password = 'p'.repeat(600);
    const reply = await expectRefused(user({ password }), /^password is 600 characters long; .* at most 512/);
    expect(JSON.stringify(reply.body)).to.not.include('ppppp');
  });

  it('refuses a 100,000-character displayName', async () => {
    await expectRefused(user({ displayName: 'D'.repeat(100_000) }), /^displayName would make a Matrix display name of 100,000 characters/);
  });

  it('refuses a lone surrogate in displayName and in password', async () => {
    await expectRefused(user({ displayName: 'Bob \ud83d' }), /^displayName holds a lone UTF-16 surrogate/);
    await expectRefused(user({ password: 'pass\udc00word' }), /^password holds a lone UTF-16 surrogate/);
  });

  it('refuses "userName": 5 instead of storing "5"', async () => {
    await expectRefused(user({ userName: 5 }), /^userName must be a string, not a number/);
  });

  it('refuses a 5,000-character userName, whose Matrix ID would be too long', async () => {
    await expectRefused(user({ userName: 'u'.repeat(5000) }), /^userName gives the Matrix ID /);
  });

  it('refuses blank email values, naming the entry', async () => {
    const emails = [{ value: 'bob@example.com', primary: true }, { value: '  ', type: 'home' }];
    await expectRefused(user({ emails }), /^emails\[1\]\.value is blank/);
    await expectRefused(user({ emails: [{ type: 'work' }] }), /^emails\[0\]\.value is missing/);
  });

  it('still ignores a lone surrogate in an attribute it drops anyway', async () => {
    const reply = await bridge.call('POST', '/Users', user({ favouriteColour: 'blue\ud800' }));
    expect(reply.status).to.equal(201);
    expect(reply.body).to.not.have.property('favouriteColour');
  });

  it('gives the homeserver the phone number without its extension, and the IdP its value as sent', async () => {
    const phoneNumbers = [{ value: '+1 425-555-0100 x123', type: 'work' }, { value: 'tel:+1-201-555-0123;ext=1234', type: 'mobile' }];
    const reply = await bridge.call('POST', '/Users', user({ phoneNumbers }));
    expect(reply.status).to.equal(201);
    expect(reply.body['phoneNumbers']).to.deep.equal(phoneNumbers);
    expect(bridge.homeserver.accounts.get('@bob:example.org')?.msisdns).to.deep.equal(['14255550100', '12015550123']);
  });

  it('says in /Schemas that an email address or phone number belongs to one user', async () => {
    const schema = await bridge.call('GET', '/Schemas/urn:ietf:params:scim:schemas:core:2.0:User');
    const attributes = schema.body['attributes'] as { name: string; uniqueness: string; subAttributes?: { name: string; uniqueness: string }[] }[];
    for (const name of ['emails', 'phoneNumbers']) {
      const attr = attributes.find((a) => a.name === name);
      expect(attr?.subAttributes?.find((s) => s.name === 'value')?.uniqueness, name).to.equal('server');
    }
    expect(attributes.find((a) => a.name === 'ims')?.subAttributes?.find((s) => s.name === 'value')?.uniqueness).to.equal('none');
  });
});
