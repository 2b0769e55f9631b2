// Self-test of the PostgreSQL harness (scripts/lib/postgres.ts) and of Synapse running
// on PostgreSQL through it: what the PostgreSQL end-to-end tests and the demo's
// --postgres build on.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { bootstrapHomeserver, type BootstrappedHomeserver } from '../../scripts/lib/bootstrap.ts';
import { startPostgres, type PostgresServer } from '../../scripts/lib/postgres.ts';

async function queryOne(connectionString: string, sql: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const result = await client.query<Record<string, unknown>>(sql);
    const row = result.rows[0];
    if (!row) throw new Error(`no row from ${sql}`);
    return row;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL harness', function () {
  this.timeout(300_000);
  let server: PostgresServer | undefined;
  let dir: string | undefined;
  let hs: BootstrappedHomeserver | undefined;
  const log = (msg: string): void => console.log(`    ${msg}`);

  before(async function () {
    const started = Date.now();
    server = await startPostgres({ log });
    log(`PostgreSQL ready in ${Date.now() - started} ms`);
  });

  after(async function () {
    this.timeout(60_000);
    await hs?.synapse.stop();
    const clusterDir = server?.dir;
    await server?.stop();
    if (clusterDir) expect(existsSync(clusterDir), 'stop() removes the cluster directory').to.equal(false);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates a database that answers SELECT 1 over TCP with the password', async function () {
    const url = await server!.createDatabase('harness_tcp');
    expect(url).to.match(/^postgres:\/\/postgres:[0-9a-f]+@127\.0\.0\.1:\d+\/harness_tcp$/);
    const row = await queryOne(url, "SELECT 1 AS one, current_setting('server_encoding') AS enc, current_setting('lc_collate') AS coll");
    expect(row).to.deep.equal({ one: 1, enc: 'UTF8', coll: 'C' });
  });

  it('answers over the unix socket and allows enough connections for several bridges', async function () {
    const row = await queryOne(server!.socketUrl('postgres'), "SELECT current_setting('max_connections') AS max");
    expect(Number(row['max'])).to.be.at.least(200);
  });

  it('refuses a wrong password', async function () {
    const wrong = server!.url('postgres').replace(server!.password, 'not-the-password');
    let error: unknown;
    try {
      await queryOne(wrong, 'SELECT 1');
    } catch (e) {
      error = e;
    }
    expect(String(error)).to.match(/password authentication failed/);
  });

  it('runs Synapse on PostgreSQL: client API up, admin API creates a user', async function () {
    await server!.createDatabase('synapse');
    dir = await mkdtemp(join(tmpdir(), 'msb-pg-synapse-'));
    const started = Date.now();
    hs = await bootstrapHomeserver({
      dir,
      serverName: 'pg.localhost',
      synapsePostgres: server!.connection('synapse'),
      log,
    });
    log(`Synapse on PostgreSQL bootstrapped (first start, schema migrated) in ${Date.now() - started} ms`);

    const versions = await fetch(`${hs.synapse.url}/_matrix/client/versions`);
    expect(versions.status).to.equal(200);
    expect(((await versions.json()) as { versions?: unknown }).versions).to.be.an('array').that.is.not.empty;

    const userId = '@carol:pg.localhost';
    const put = await fetch(`${hs.synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hs.admin.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ displayname: 'Carol', password: 'carol-password' }),
    });
    expect(put.status).to.equal(201);
    const login = await hs.synapse.login('carol', 'carol-password');
    expect(login.status).to.equal(200);

    // The user is in PostgreSQL, not in a SQLite file.
    const row = await queryOne(server!.url('synapse'), `SELECT count(*)::int AS n FROM users WHERE name = '${userId}'`);
    expect(row['n']).to.equal(1);
    expect(existsSync(hs.synapse.paths.db), 'no SQLite database next to Synapse').to.equal(false);
  });
});
