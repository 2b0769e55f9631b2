// Self-test of the real-Synapse runner the end-to-end tests and the demo rely on.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Synapse, SYNAPSE_VERSION } from '../../scripts/lib/synapse.ts';

describe(`Synapse runner (Synapse ${SYNAPSE_VERSION})`, function () {
  this.timeout(300_000);
  let dir: string;
  let hs: Synapse;

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'msb-synapse-selftest-'));
    // A server name other than the default shows the shared template suits any name.
    hs = await Synapse.create({ dir, serverName: 'selftest.localhost', log: (m) => console.log(`    ${m}`) });
    await hs.start();
  });

  after(async function () {
    await hs?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the client API on loopback', async function () {
    expect(hs.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${hs.url}/_matrix/client/versions`);
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { versions?: unknown };
    expect(body.versions).to.be.an('array').that.is.not.empty;
  });

  it('reports the pinned Synapse version', async function () {
    const res = await fetch(`${hs.url}/_synapse/admin/v1/server_version`);
    const body = (await res.json()) as { server_version?: unknown };
    console.log(`    server_version: ${String(body.server_version)}`);
    expect(body.server_version).to.equal(SYNAPSE_VERSION);
    expect(hs.version).to.equal(SYNAPSE_VERSION);
  });

  it('registers an admin with the shared secret and the admin API accepts its token', async function () {
    const admin = await hs.registerUser('admin', 'admin-password', true);
    expect(admin.userId).to.equal('@admin:selftest.localhost');
    const res = await fetch(`${hs.url}/_synapse/admin/v2/users/${encodeURIComponent(admin.userId)}`, {
      headers: { authorization: `Bearer ${admin.accessToken}` },
    });
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { admin?: unknown };
    expect(body.admin).to.equal(true);
  });

  it('logs a user in with a password and refuses a wrong one', async function () {
    await hs.registerUser('alice', 'alice-password', false);
    const ok = await hs.login('alice', 'alice-password');
    expect(ok.status).to.equal(200);
    expect(ok.body['user_id']).to.equal('@alice:selftest.localhost');
    expect(ok.body['access_token']).to.be.a('string');
    const bad = await hs.login('alice', 'wrong');
    expect(bad.status).to.equal(403);
    expect(bad.body['errcode']).to.equal('M_FORBIDDEN');
  });

  it('does not rate-limit a burst of logins', async function () {
    // Synapse's defaults allow about 5 (failed) logins per account before a 429.
    for (let i = 0; i < 12; i++) {
      expect((await hs.login('alice', 'wrong')).status).to.equal(403);
    }
    expect((await hs.login('alice', 'alice-password')).status).to.equal(200);
  });

  it('stops the process and can start again on the same data', async function () {
    await hs.stop();
    const down = await fetch(`${hs.url}/_matrix/client/versions`).then(
      () => 'up',
      () => 'down',
    );
    expect(down).to.equal('down');
    await hs.start();
    expect((await hs.login('alice', 'alice-password')).status).to.equal(200);
  });

  it('reports the tail of the log when Synapse fails to start', async function () {
    const badDir = await mkdtemp(join(tmpdir(), 'msb-synapse-bad-'));
    try {
      const bad = await Synapse.create({ dir: badDir, extraConfig: { media_store_path: 42 } });
      let message = '';
      await bad.start().catch((err: unknown) => {
        message = err instanceof Error ? err.message : String(err);
      });
      expect(message).to.contain('Synapse exited during start-up');
      expect(message).to.contain('media_store_path');
    } finally {
      await rm(badDir, { recursive: true, force: true });
    }
  });

  it('writes Synapse logs into its directory', function () {
    expect(existsSync(hs.paths.log)).to.equal(true);
    expect(existsSync(hs.paths.out)).to.equal(true);
  });
});
