import { expect } from 'chai';
import { OTHER_TOKEN, startHttpBridge, type HttpBridge, type Reply } from './harness.ts';

/** Two IdPs on one bridge: a token with scope "own" sees only what it created. */
describe('Tokens limited to their own users and groups (scope: own)', () => {
  let bridge: HttpBridge;
  const staff = (method: string, path: string, body?: unknown): Promise<Reply> => bridge.call(method, path, body);
  const contractors = (method: string, path: string, body?: unknown): Promise<Reply> =>
    bridge.call(method, path, body, { authorization: `Bearer ${OTHER_TOKEN}` });

  let staffUser = '';
  let contractorUser = '';
  let staffGroup = '';

  beforeEach(async () => {
    bridge = await startHttpBridge({}, {}, {}, { 'other-idp': 'own' });
    staffUser = String((await staff('POST', '/Users', { userName: 'sam.staff' })).body['id']);
    contractorUser = String((await contractors('POST', '/Users', { userName: 'cora.contractor' })).body['id']);
    staffGroup = String((await staff('POST', '/Groups', { displayName: 'Staff', members: [{ value: staffUser }] })).body['id']);
  });
  afterEach(() => bridge.close());

  it('cannot read, change or delete what another IdP created: 404, as if it did not exist', async () => {
    expect((await contractors('GET', `/Users/${staffUser}`)).status).to.equal(404);
    expect((await contractors('PATCH', `/Users/${staffUser}`, { Operations: [{ op: 'replace', path: 'active', value: false }] })).status).to.equal(404);
    expect((await contractors('PUT', `/Users/${staffUser}`, { userName: 'sam.staff', displayName: 'Hijacked' })).status).to.equal(404);
    expect((await contractors('DELETE', `/Users/${staffUser}`)).status).to.equal(404);
    expect((await contractors('GET', `/Groups/${staffGroup}`)).status).to.equal(404);
    expect((await contractors('DELETE', `/Groups/${staffGroup}`)).status).to.equal(404);
    // Nothing happened to the staff user or group.
    const sam = (await staff('GET', `/Users/${staffUser}`)).body;
    expect(sam['active']).to.not.equal(false);
    expect(sam['displayName']).to.not.equal('Hijacked');
    expect(bridge.homeserver.accounts.get('@sam.staff:example.org')?.active).to.equal(true);
    expect((await staff('GET', `/Groups/${staffGroup}`)).status).to.equal(200);
  });

  it('lists and filters only its own', async () => {
    const listed = await contractors('GET', '/Users');
    expect(listed.body['totalResults']).to.equal(1);
    expect((listed.body['Resources'] as { id: string }[])[0]?.id).to.equal(contractorUser);
    expect((await contractors('GET', `/Users?filter=${encodeURIComponent('userName eq "sam.staff"')}`)).body['totalResults']).to.equal(0);
    expect((await contractors('GET', '/Groups')).body['totalResults']).to.equal(0);
    const searched = await contractors('POST', '/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'] });
    expect(searched.body['totalResults']).to.equal(1);
  });

  it('cannot put another IdP\'s user into its group', async () => {
    const group = await contractors('POST', '/Groups', { displayName: 'Contractors', members: [{ value: staffUser }] });
    expect(group.status).to.equal(400);
    expect(String(group.body['detail'])).to.match(/unknown members/);
    const own = await contractors('POST', '/Groups', { displayName: 'Contractors', members: [{ value: contractorUser }] });
    expect(own.status).to.equal(201);
  });

  it('a token with scope all (the default) still sees everything, and the users\' groups stay visible to it', async () => {
    expect((await staff('GET', '/Users')).body['totalResults']).to.equal(2);
    expect((await staff('GET', `/Users/${contractorUser}`)).status).to.equal(200);
    const sam = await staff('GET', `/Users/${staffUser}`);
    expect((sam.body['groups'] as { display: string }[]).map((g) => g.display)).to.deep.equal(['Staff']);
  });

  it('/Bulk keeps the same limits', async () => {
    const reply = await contractors('POST', '/Bulk', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
      Operations: [{ method: 'DELETE', path: `/Users/${staffUser}` }],
    });
    expect((reply.body['Operations'] as { status: string }[])[0]?.status).to.equal('404');
    expect((await staff('GET', `/Users/${staffUser}`)).status).to.equal(200);
  });
});
