// Self-test of the MAS harness (scripts/lib/mas.ts, and bootstrap.ts with the option
// `mas`): a real Matrix Authentication Service from MAS_HOME, with Synapse delegating to
// it. What the MAS end-to-end tests and the demo's --mas build on. Without MAS_HOME the
// whole file is skipped. It starts its own PostgreSQL, MAS and Synapse (on free ports),
// independent of the shared e2e homeserver.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bootstrapHomeserver, type BootstrappedHomeserver, type MasHomeserver } from '../../scripts/lib/bootstrap.ts';
import { masHome } from '../../scripts/lib/mas.ts';

const SERVER_NAME = 'mas.localhost';

type Json = Record<string, unknown>;

async function request(method: string, url: string, token?: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: typeof parsed === 'object' && parsed !== null ? (parsed as Json) : {} };
}

const data = (body: Json): Json => (body['data'] ?? {}) as Json;
const userPath = (userId: string): string => `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`;

describe('MAS harness (Synapse delegating to a real MAS)', function () {
  this.timeout(300_000);
  let dir: string | undefined;
  let hs: BootstrappedHomeserver | undefined;
  const log = (msg: string): void => console.log(`    ${msg}`);

  before(async function () {
    const home = masHome();
    if (!home) {
      console.log('skipped: no MAS (set MAS_HOME)');
      this.skip();
    }
    dir = await mkdtemp(join(tmpdir(), 'msb-mas-'));
    const started = Date.now();
    hs = await bootstrapHomeserver({ dir, serverName: SERVER_NAME, mas: { home }, log });
    log(`PostgreSQL, MAS and Synapse ready in ${Date.now() - started} ms (files in ${dir})`);
  });

  after(async function () {
    this.timeout(60_000);
    await hs?.stop();
    if (!dir) return;
    if (process.env['MSB_E2E_KEEP']) console.log(`    kept the MAS harness files in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  });

  const synapseUrl = (path: string): string => `${hs!.synapse.url}${path}`;
  const mas = (): MasHomeserver => hs!.mas!;

  it("serves Synapse's client API", async function () {
    const res = await request('GET', synapseUrl('/_matrix/client/versions'));
    expect(res.status).to.equal(200);
    expect(res.body['versions']).to.be.an('array').that.is.not.empty;
  });

  it('makes Synapse advertise MAS as its authorization server', async function () {
    const issuer = `${mas().server.url}/`;
    for (const path of ['/_matrix/client/v1/auth_metadata', '/_matrix/client/unstable/org.matrix.msc2965/auth_metadata']) {
      const res = await request('GET', synapseUrl(path));
      expect(res.status, path).to.equal(200);
      expect(res.body['issuer'], path).to.equal(issuer);
      expect(res.body['token_endpoint'], path).to.equal(mas().server.tokenEndpoint);
    }
  });

  it("has no shared-secret registration on Synapse (404)", async function () {
    const res = await request('GET', synapseUrl('/_synapse/admin/v1/register'));
    expect(res.status).to.equal(404);
  });

  it("gives the bootstrap admin a token Synapse's admin API accepts", async function () {
    const { admin } = hs!;
    const whoami = await request('GET', synapseUrl('/_matrix/client/v3/account/whoami'), admin.accessToken);
    expect(whoami.status).to.equal(200);
    expect(whoami.body['user_id']).to.equal(`@admin:${SERVER_NAME}`);
    const list = await request('GET', synapseUrl('/_synapse/admin/v2/users?guests=false'), admin.accessToken);
    expect(list.status).to.equal(200);
    const names = (list.body['users'] as Json[]).map((u) => u['name']);
    expect(names).to.include(admin.userId);
  });

  it('refuses to create a new user through Synapse\'s admin API (403, "via MAS")', async function () {
    const res = await request('PUT', synapseUrl(userPath(`@new:${SERVER_NAME}`)), hs!.admin.accessToken, { displayname: 'New' });
    expect(res.status).to.equal(403);
    expect(String(res.body['error'])).to.match(/Create the user via MAS/);
  });

  it('shows a user created through MAS in Synapse within a second or so', async function () {
    const created = await mas().server.adminApi('POST', '/users', { username: 'carol' });
    expect(created.status).to.equal(201);
    const started = Date.now();
    let status = 0;
    while (Date.now() - started < 5_000) {
      status = (await request('GET', synapseUrl(userPath(`@carol:${SERVER_NAME}`)), hs!.admin.accessToken)).status;
      if (status === 200) break;
      await new Promise((ok) => setTimeout(ok, 50));
    }
    log(`@carol appeared in Synapse ${Date.now() - started} ms after MAS created her`);
    expect(status).to.equal(200);
    expect(Date.now() - started).to.be.below(2_000);
  });

  it('runs the appservice; the as_token is no Synapse admin under MAS, the bot\'s MAS token is', async function () {
    const { registration, botUserId } = hs!;
    const whoami = await request('GET', synapseUrl('/_matrix/client/v3/account/whoami'), registration.as_token);
    expect(whoami.status).to.equal(200);
    expect(whoami.body['user_id']).to.equal(botUserId);
    // Synapse stores the admin flag, but under MAS only a token's scope makes an admin.
    expect(mas().botPromotionStatus).to.equal(200);
    expect(mas().botAdminApiStatus).to.equal(403);
    const byBot = await request('GET', synapseUrl(userPath(botUserId)), mas().botAdminToken);
    expect(byBot.status).to.equal(200);
    expect(byBot.body['admin']).to.equal(true);
    expect(byBot.body['appservice_id']).to.equal(registration.id);
  });

  it('links a MAS user to the upstream provider, which is never contacted', async function () {
    const { server } = mas();
    const provider = await server.adminApi('GET', `/upstream-oauth-providers/${server.upstreamProviderId}`);
    expect(provider.status).to.equal(200);
    expect((data(provider.body)['attributes'] as Json)['issuer']).to.equal(server.upstreamIssuer);
    const user = await server.adminApi('POST', '/users', { username: 'dave' });
    expect(user.status).to.equal(201);
    const link = await server.adminApi('POST', '/upstream-oauth-links', {
      user_id: data(user.body)['id'],
      provider_id: server.upstreamProviderId,
      subject: 'idp-subject-dave',
    });
    expect(link.status, JSON.stringify(link.body)).to.equal(201);
  });
});

describe('npm run demo -- --mas, without a usable MAS_HOME', () => {
  // Refused before anything starts or .demo/ is wiped, so this runs on every machine.
  const demo = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, ['scripts/demo.ts', '--mas'], { cwd: resolve(import.meta.dirname, '..', '..'), env, encoding: 'utf8', timeout: 60_000 });
  const withoutMas = (): NodeJS.ProcessEnv => {
    const env = { ...process.env };
    delete env['MAS_HOME'];
    return env;
  };

  it('says "skipped: no MAS (set MAS_HOME)" and exits 2 when MAS_HOME is unset', () => {
    const run = demo(withoutMas());
    expect(run.stderr).to.include('skipped: no MAS (set MAS_HOME');
    expect(run.status).to.equal(2);
  });

  it('names what is missing when MAS_HOME is not a MAS installation', () => {
    const run = demo({ ...withoutMas(), MAS_HOME: '/nonexistent/mas' });
    expect(run.stderr).to.include('MAS_HOME=/nonexistent/mas: no such directory');
    expect(run.status).to.equal(2);
  });
});
