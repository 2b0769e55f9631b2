import { expect } from 'chai';
import { HomeserverClient } from '../../src/matrix/homeserverClient.ts';
import { MasClient } from '../../src/matrix/masClient.ts';
import { MasPort } from '../../src/matrix/masPort.ts';
import type { ProvisioningSettings } from '../../src/provisioning/users.ts';
import { FakeMas } from './fakeMas.ts';
import { startHttpBridge, type HttpBridge, type Reply } from './harness.ts';

const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const PASSWORD = 'Correct-Horse-Battery-Staple-42';

describe('SCIM over a MAS account backend (HTTP double of MAS v1.22)', () => {
  let fake: FakeMas;
  let bridge: HttpBridge;

  async function startBridge(userSettings: Partial<ProvisioningSettings> = {}): Promise<void> {
    const mas = new MasClient({ baseUrl: fake.url, clientId: fake.clientId, clientSecret: fake.clientSecret });
    const synapse = new HomeserverClient({ baseUrl: fake.url, asToken: 'as-token-unused-under-mas', adminToken: fake.synapseAdminToken });
    bridge = await startHttpBridge({}, userSettings, {}, {}, {
      homeserver: (store) => new MasPort(mas, synapse, { domain: 'example.org', upstreamProviderId: fake.upstreamProviderId, leftovers: store.leftovers }),
    });
  }

  beforeEach(async () => {
    fake = await new FakeMas('example.org').start();
    await startBridge();
  });

  afterEach(async () => {
    await bridge.close();
    await fake.stop();
  });

  const alice = (overrides: Record<string, unknown> = {}) => ({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'Alice.Smith@example.com',
    displayName: 'Alice Smith',
    externalId: 'idp-subject-alice',
    password: PASSWORD,
    emails: [{ value: 'alice.smith@example.com', type: 'work', primary: true }],
    ...overrides,
  });

  const patch = (id: string, operations: unknown[]): Promise<Reply> => bridge.call('PATCH', `/Users/${id}`, { schemas: [PATCH_SCHEMA], Operations: operations });
  const setActive = (id: string, value: boolean) => patch(id, [{ op: 'replace', path: 'active', value }]);
  const found = async (userName: string): Promise<number> =>
    Number((await bridge.call('GET', `/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`)).body['totalResults']);

  async function createAlice(overrides: Record<string, unknown> = {}): Promise<string> {
    const created = await bridge.call('POST', '/Users', alice(overrides));
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    return String(created.body['id']);
  }

  it('creates the user in MAS with its password, email and upstream link; Synapse shows the profile and the email', async () => {
    await createAlice();
    const user = fake.userByName('alice.smith');
    expect(user, 'MAS holds the user').to.not.equal(undefined);
    expect(user!.password).to.equal(PASSWORD);
    expect(user!.lockedAt).to.equal(null);
    expect(fake.emailsOf('alice.smith')).to.deep.equal(['alice.smith@example.com']);
    expect(fake.linksOf('alice.smith').map((l) => [l.providerId, l.subject])).to.deep.equal([[fake.upstreamProviderId, 'idp-subject-alice']]);
    const synapse = fake.synapseUser('alice.smith');
    expect(synapse?.['displayname']).to.equal('Alice Smith');
    expect(synapse?.['threepids']).to.deep.include({ medium: 'email', address: 'alice.smith@example.com', added_at: 0, validated_at: 0 });
    const token = fake.login('alice.smith', { password: PASSWORD });
    expect(token, 'the password logs in').to.be.a('string');
    expect(await fake.whoami(token!)).to.equal(200);
  });

  it('sets the display name once Synapse shows a user MAS provisions late', async () => {
    fake.provisionDelayMs = 300;
    const id = await createAlice();
    const renamed = await patch(id, [{ op: 'replace', path: 'displayName', value: 'Alice S.' }]);
    expect(renamed.status, JSON.stringify(renamed.body)).to.equal(200);
    expect(fake.synapseUser('alice.smith')?.['displayname']).to.equal('Alice S.');
  });

  it('answers 400 naming the problem for a password MAS finds too weak, and leaves no active account and no SCIM user', async () => {
    const refused = await bridge.call('POST', '/Users', alice({ userName: 'weak.password@example.com', emails: [], externalId: undefined, password: 'a' }));
    expect(refused.status, JSON.stringify(refused.body)).to.equal(400);
    expect(refused.body).to.include({ status: '400' });
    expect(refused.body['detail']).to.match(/Password is too weak/);
    expect(await found('weak.password@example.com')).to.equal(0);
    // MAS made the user before it refused the password: the bridge deactivated it.
    expect(fake.userByName('weak.password')?.deactivatedAt, 'not left active in MAS').to.be.a('string');
    expect(fake.login('weak.password')).to.equal(undefined);
  });

  it('takes the IdP\'s retry with a better password: the MAS user the refused one left is reused, once', async () => {
    const refused = await bridge.call('POST', '/Users', alice({ password: 'a' }));
    expect(refused.status, JSON.stringify(refused.body)).to.equal(400);
    const left = fake.userByName('alice.smith')!;
    expect(left.deactivatedAt).to.be.a('string');

    const retried = await bridge.call('POST', '/Users', alice());
    expect(retried.status, JSON.stringify(retried.body)).to.equal(201);
    const user = fake.userByName('alice.smith')!;
    expect(user.id, 'the same MAS user, reactivated').to.equal(left.id);
    expect(user.deactivatedAt).to.equal(null);
    expect(user.lockedAt).to.equal(null);
    expect(user.password).to.equal(PASSWORD);
    expect(fake.emailsOf('alice.smith')).to.deep.equal(['alice.smith@example.com']);
    expect(fake.linksOf('alice.smith').map((l) => l.subject)).to.deep.equal(['idp-subject-alice']);
    expect(fake.synapseUser('alice.smith')?.['displayname']).to.equal('Alice Smith');
    expect(fake.login('alice.smith', { password: PASSWORD }), 'logs in').to.be.a('string');

    // Once it is the IdP's user again, it is no leftover: deleted and created anew, the
    // deactivated account is someone's past, not the bridge's to take.
    expect((await bridge.call('DELETE', `/Users/${String(retried.body['id'])}`)).status).to.equal(204);
    const again = await bridge.call('POST', '/Users', alice());
    expect(again.status, JSON.stringify(again.body)).to.equal(409);
  });

  it('never takes a deactivated MAS user it did not leave behind itself', async () => {
    const other = fake.seedUser('alice.smith');
    other.deactivatedAt = new Date().toISOString();
    const created = await bridge.call('POST', '/Users', alice());
    expect(created.status, JSON.stringify(created.body)).to.equal(409);
    expect(fake.userByName('alice.smith')!.deactivatedAt, 'left as the operator left it').to.be.a('string');
  });

  it('active:false locks the user in MAS and ends the sessions it had; active:true unlocks it', async () => {
    const id = await createAlice();
    const before = fake.login('alice.smith', { password: PASSWORD })!;
    const viaOAuth = fake.login('alice.smith', { kind: 'oauth2-sessions' })!;
    expect(await fake.whoami(before)).to.equal(200);

    const disabled = await setActive(id, false);
    expect(disabled.status, JSON.stringify(disabled.body)).to.equal(200);
    expect(disabled.body['active']).to.equal(false);
    expect(fake.userByName('alice.smith')!.lockedAt).to.be.a('string');
    expect(fake.userByName('alice.smith')!.deactivatedAt).to.equal(null);
    expect(fake.sessionsOf('alice.smith').map((s) => s.finishedAt)).to.satisfy((all: unknown[]) => all.every((f) => typeof f === 'string'));
    expect(await fake.whoami(before), 'a token from before the lock').to.equal(401);
    expect(await fake.whoami(viaOAuth), 'an OAuth token from before the lock').to.equal(401);
    expect(fake.login('alice.smith', { password: PASSWORD }), 'no new login while locked').to.equal(undefined);

    const enabled = await setActive(id, true);
    expect(enabled.status, JSON.stringify(enabled.body)).to.equal(200);
    expect(fake.userByName('alice.smith')!.lockedAt).to.equal(null);
    expect(await fake.whoami(before), 'the old session stays ended').to.equal(401);
    const after = fake.login('alice.smith', { password: PASSWORD });
    expect(after, 'logs in again').to.be.a('string');
    expect(await fake.whoami(after!)).to.equal(200);
  });

  it("with disablePolicy deactivate, active:false deactivates in MAS; active:true reactivates and puts the IdP's email back", async () => {
    await bridge.close();
    await startBridge({ disablePolicy: 'deactivate' });
    const id = await createAlice();
    const token = fake.login('alice.smith')!;

    const off = await setActive(id, false);
    expect(off.status, JSON.stringify(off.body)).to.equal(200);
    expect(fake.userByName('alice.smith')!.deactivatedAt).to.be.a('string');
    expect(fake.emailsOf('alice.smith'), 'MAS drops the emails of a deactivated user').to.deep.equal([]);
    expect(fake.synapseUser('alice.smith')?.['deactivated']).to.equal(true);
    expect(await fake.whoami(token)).to.equal(401);

    const on = await setActive(id, true);
    expect(on.status, JSON.stringify(on.body)).to.equal(200);
    expect(fake.userByName('alice.smith')!.deactivatedAt).to.equal(null);
    expect(fake.emailsOf('alice.smith')).to.deep.equal(['alice.smith@example.com']);
    expect(fake.synapseUser('alice.smith')?.['displayname'], 'the profile is kept').to.equal('Alice Smith');
    expect(fake.login('alice.smith', { password: PASSWORD })).to.be.a('string');
  });

  it('DELETE deactivates the user in MAS and Synapse; GET is 404', async () => {
    const id = await createAlice();
    const token = fake.login('alice.smith')!;
    expect((await bridge.call('DELETE', `/Users/${id}`)).status).to.equal(204);
    expect(fake.userByName('alice.smith')!.deactivatedAt).to.be.a('string');
    expect(fake.synapseUser('alice.smith')?.['deactivated']).to.equal(true);
    expect(await fake.whoami(token)).to.equal(401);
    expect((await bridge.call('GET', `/Users/${id}`)).status).to.equal(404);
  });

  it('swaps the email and replaces the upstream link when the IdP changes them', async () => {
    const id = await createAlice();
    const changed = await patch(id, [
      { op: 'replace', path: 'emails', value: [{ value: 'alice@new.example.com', type: 'work', primary: true }] },
      { op: 'replace', path: 'externalId', value: 'idp-subject-alice-2' },
    ]);
    expect(changed.status, JSON.stringify(changed.body)).to.equal(200);
    expect(fake.emailsOf('alice.smith')).to.deep.equal(['alice@new.example.com']);
    expect(fake.linksOf('alice.smith').map((l) => l.subject)).to.deep.equal(['idp-subject-alice-2']);
    expect(fake.links.size, 'the old link is gone, not just unlinked').to.equal(1);
    expect((fake.synapseUser('alice.smith')?.['threepids'] as { address: string }[]).map((t) => t.address)).to.deep.equal(['alice@new.example.com']);
  });

  it('fetches the admin token once across many calls, and renews it exactly once after MAS forgets it', async () => {
    const id = await createAlice();
    await patch(id, [{ op: 'replace', path: 'displayName', value: 'Alice S.' }]);
    await setActive(id, false);
    await setActive(id, true);
    expect(fake.calls.filter((c) => c.path.startsWith('/api/admin/v1/')).length).to.be.greaterThan(10);
    expect(fake.tokensIssued).to.equal(1);

    fake.forgetTokens();
    const renamed = await patch(id, [{ op: 'replace', path: 'displayName', value: 'Alice Smith' }]);
    expect(renamed.status, JSON.stringify(renamed.body)).to.equal(200);
    expect(fake.tokensIssued).to.equal(2);
    expect(fake.calls.filter((c) => c.status === 401)).to.have.length(1);
    expect(fake.synapseUser('alice.smith')?.['displayname']).to.equal('Alice Smith');
  });

  it('answers 503 with Retry-After when MAS is down before anything is written, and keeps a PATCH for the journal', async () => {
    fake.down = true;
    const refused = await bridge.call('POST', '/Users', alice());
    expect(refused.status, JSON.stringify(refused.body)).to.equal(503);
    expect(Number(refused.headers.get('retry-after'))).to.be.greaterThan(0);
    expect(await found('alice.smith@example.com')).to.equal(0);
    expect(fake.users.size).to.equal(0);

    fake.down = false;
    const id = await createAlice();
    fake.down = true;
    const kept = await patch(id, [{ op: 'replace', path: 'displayName', value: 'Alice S.' }]);
    expect(kept.status, JSON.stringify(kept.body)).to.equal(503);
    expect(kept.headers.get('retry-after')).to.not.equal(null);
    fake.down = false;
    await bridge.drain();
    expect(fake.synapseUser('alice.smith')?.['displayname']).to.equal('Alice S.');
    expect(await bridge.store.journalFor(id)).to.have.length(0);
  });

  it('completes a creation MAS dropped half-way from the journal, with the password, and the IdP retry gets the same user', async () => {
    let failures = 1;
    fake.failWhen = (method, path) => method === 'POST' && path.endsWith('/set-password') && failures-- > 0;
    const first = await bridge.call('POST', '/Users', alice());
    expect(first.status, JSON.stringify(first.body)).to.equal(503);
    expect(fake.userByName('alice.smith')?.password, 'MAS has the user, not yet its password').to.equal(undefined);
    const pending = await bridge.store.findByUserName('alice.smith@example.com');
    expect(pending?.state).to.equal('pending');

    await bridge.drain();
    const user = fake.userByName('alice.smith')!;
    expect(user.password).to.equal(PASSWORD);
    expect(user.deactivatedAt).to.equal(null);
    expect(fake.emailsOf('alice.smith')).to.deep.equal(['alice.smith@example.com']);
    expect(fake.linksOf('alice.smith').map((l) => l.subject)).to.deep.equal(['idp-subject-alice']);
    expect(fake.users.size).to.equal(1);

    const retry = await bridge.call('POST', '/Users', alice());
    expect(retry.status, JSON.stringify(retry.body)).to.equal(201);
    expect(retry.body['id']).to.equal(pending!.id);
    expect(await found('alice.smith@example.com')).to.equal(1);
  });

  it('refuses an email another MAS user holds with 409 uniqueness naming the holder, writing nothing', async () => {
    fake.seedUser('bob', ['alice.smith@example.com']);
    const reply = await bridge.call('POST', '/Users', alice());
    expect(reply.status, JSON.stringify(reply.body)).to.equal(409);
    expect(reply.body['scimType']).to.equal('uniqueness');
    expect(reply.body['detail']).to.match(/email alice\.smith@example\.com is already held by @bob:example\.org/);
    expect(fake.userByName('alice.smith')).to.equal(undefined);
    expect(fake.emailsOf('bob')).to.deep.equal(['alice.smith@example.com']);
    expect(fake.calls.filter((c) => c.method !== 'GET' && c.path.startsWith('/api/admin/v1/'))).to.deep.equal([]);
    expect(await found('alice.smith@example.com')).to.equal(0);
  });

  it('refuses an external id already linked to another MAS user with 409, writing nothing', async () => {
    const bob = fake.seedUser('bob');
    fake.links.set('01JZ8SCMBR1DGE0L1NK0000001', { id: '01JZ8SCMBR1DGE0L1NK0000001', userId: bob.id, providerId: fake.upstreamProviderId, subject: 'idp-subject-alice', createdAt: new Date().toISOString() });
    const reply = await bridge.call('POST', '/Users', alice());
    expect(reply.status, JSON.stringify(reply.body)).to.equal(409);
    expect(reply.body['detail']).to.match(/idp-subject-alice/).and.match(/@bob:example\.org/);
    expect(fake.userByName('alice.smith')).to.equal(undefined);
  });
});
