// Two bridge processes on one PostgreSQL database against the one real Synapse: any replica
// answers any request, the database decides preconditions, and a replica killed with
// SIGKILL in the middle of a burst loses nothing: the IdP retries on the other one.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { startPostgres, type PostgresServer } from '../../scripts/lib/postgres.ts';
import { freePort } from '../../scripts/lib/synapse.ts';
import { adminRoomAlias } from '../../scripts/lib/bootstrap.ts';
import { homeserver, SERVER_NAME, workFile } from './fixture.ts';
import { AdminApi, ScimClient, membershipCounts, roomMembers, roomNotices, roomsNamed, roomTimeline, threepidsOf, waitFor, type HttpResult } from './helpers.ts';

const BIN = new URL('../../bin/matrix-scim-bridge.js', import.meta.url).pathname;
const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

interface Replica {
  name: string;
  child: ChildProcess;
  scim: ScimClient;
  output: string[];
}

/** Runs `work` for 0..n-1, `concurrency` at a time. */
async function inParallel(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) await work(i);
    }),
  );
}

describe('Two bridge replicas on one PostgreSQL database', function () {
  this.timeout(300_000);
  let postgres: PostgresServer | undefined;
  const replicas: Replica[] = [];
  let admin: AdminApi;

  async function startReplica(name: string, databaseUrlFile: string, appservicePort: number): Promise<Replica> {
    const hs = homeserver();
    const dir = workFile(`replicas-${name}`);
    mkdirSync(dir, { recursive: true });
    const configFile = join(dir, 'config.yaml');
    const raw = hs.bridgeConfig({
      appservice: { port: appservicePort },
      database: { engine: 'postgres', url: { file: databaseUrlFile }, poolSize: 10 },
      logging: { level: 'info' },
    });
    writeFileSync(configFile, yaml.dump(raw), { mode: 0o600 });
    const child = spawn(process.execPath, [BIN, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stdout?.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n')));
    child.stderr?.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n')));
    const listening = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`replica ${name} exited (${child.exitCode}):\n${output.join('\n')}`);
        return output.find((l) => /SCIM API listening at (\S+);/.test(l));
      },
      90_000,
      `replica ${name} to start`,
    );
    const url = /SCIM API listening at (\S+);/.exec(listening)?.[1] ?? '';
    return { name, child, scim: new ScimClient(url, hs.scimToken), output };
  }

  before(async function () {
    const hs = homeserver();
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    postgres = await startPostgres();
    writeFileSync(urlFile(), `${await postgres.createDatabase('bridge')}\n`, { mode: 0o600 });
    // The first replica listens where the registration says (the homeserver pushes there);
    // the second on a port of its own, as a replica on another host behind a balancer would.
    replicas.push(await startReplica('a', urlFile(), hs.appservicePort));
    replicas.push(await startReplica('b', urlFile(), await freePort()));
  });

  after(async function () {
    for (const replica of replicas) {
      if (replica.child.exitCode === null && replica.child.signalCode === null) {
        replica.child.kill('SIGTERM');
        await new Promise((resolve) => replica.child.once('exit', resolve));
      }
    }
    await postgres?.stop();
  });

  const urlFile = () => workFile('replicas-database-url');
  const [a, b] = [() => replicas[0]!, () => replicas[1]!];

  it('answers any request on either replica: a user created on one is read, patched and listed on the other', async () => {
    const created = await a().scim.post('/Users', { schemas: [USER_SCHEMA], userName: 'replica.carol', displayName: 'Carol' });
    expect(created.status, created.text).to.equal(201);
    const id = String(created.body['id']);
    const read = await b().scim.get(`/Users/${id}`);
    expect(read.status, read.text).to.equal(200);
    const patched = await b().scim.patch(`/Users/${id}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'displayName', value: 'Carol B' }] });
    expect(patched.status, patched.text).to.equal(200);
    expect((await a().scim.get(`/Users/${id}`)).body['displayName']).to.equal('Carol B');
    expect((await admin.profile(`@replica.carol:${SERVER_NAME}`))?.['displayname']).to.equal('Carol B');
    // The same userName POSTed to both at once: the database lets exactly one have it.
    const [x, y] = await Promise.all([a(), b()].map((r) => r.scim.post('/Users', { schemas: [USER_SCHEMA], userName: 'replica.dup' })));
    expect([x!.status, y!.status].sort()).to.deep.equal([201, 409]);
  });

  it('lets exactly one of 50 concurrent PATCHes with the same If-Match win, across both replicas', async () => {
    const created = await a().scim.post('/Users', { schemas: [USER_SCHEMA], userName: 'replica.race', displayName: 'Race 0' });
    expect(created.status, created.text).to.equal(201);
    const id = String(created.body['id']);
    const etag = created.headers.get('etag') ?? '';
    expect(etag).to.match(/^W\/"/);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0 ? a() : b()).scim.patch(
          `/Users/${id}`,
          { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'displayName', value: `Race ${i + 1}` }] },
          { headers: { 'if-match': etag } },
        ),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200), statuses.join(',')).to.have.length(1);
    expect(statuses.filter((s) => s === 412), statuses.join(',')).to.have.length(49);
    const winner = results.find((r) => r.status === 200)!;
    const final = await b().scim.get(`/Users/${id}`);
    expect(final.body['displayName']).to.equal(winner.body['displayName']);
    await waitFor(async () => (await admin.profile(`@replica.race:${SERVER_NAME}`))?.['displayname'] === winner.body['displayName'] || undefined, 20_000, 'Synapse to show the winner');
  });

  it('creates exactly 500 complete users when one replica is SIGKILLed half-way and the IdP retries on the other', async () => {
    const total = 500;
    let done = 0;
    let killed = false;
    const retried: number[] = [];
    const body = (i: number) => ({
      schemas: [USER_SCHEMA],
      userName: `burst.${i}`,
      displayName: `Burst ${i}`,
      emails: [{ value: `burst.${i}@example.com`, type: 'work', primary: true }],
    });
    await inParallel(total, 8, async (i) => {
      const first = i % 2 === 0 ? a() : b();
      let res: HttpResult | undefined;
      try {
        res = await first.scim.post('/Users', body(i));
      } catch {
        res = undefined;
      }
      // What an IdP does when a replica goes away under it: the same POST, to the other one.
      if (res === undefined || res.status >= 500) {
        retried.push(i);
        res = await a().scim.post('/Users', body(i));
      }
      expect(res.status, `burst.${i}: ${res.text}`).to.equal(201);
      done++;
      if (!killed && done >= total / 2) {
        killed = true;
        b().child.kill('SIGKILL');
      }
    });
    expect(killed).to.equal(true);
    console.log(`    replica b SIGKILLed after ${total / 2} creates; ${retried.length} POSTs it did not answer were retried on replica a`);
    expect(await a().scim.count('userName sw "burst."')).to.equal(total);

    // Synapse's own view: every account there, with its display name and email.
    const accounts = await Promise.all(Array.from({ length: total }, (_, i) => admin.user(`@burst.${i}:${SERVER_NAME}`)));
    const incomplete = accounts.flatMap((user, i) => {
      const email = threepidsOf(user).some((t) => t.medium === 'email' && t.address === `burst.${i}@example.com`);
      return user && user['displayname'] === `Burst ${i}` && email ? [] : [`burst.${i}`];
    });
    expect(incomplete, `not complete on Synapse (retried: ${retried.join(',')})`).to.deep.equal([]);

    // The admin room names no user twice (digests name some of them, never one twice).
    const roomId = await admin.join(adminRoomAlias(SERVER_NAME));
    await new Promise((resolve) => setTimeout(resolve, 12_000)); // one burst window: the last digest
    const notices = await roomNotices(admin, roomId, 1000);
    const mentions = new Map<string, number>();
    for (const notice of notices) {
      // A notice may name a user by userName and by Matrix ID: once per notice is one report.
      const named = new Set([...notice.body.matchAll(/burst\.(\d+)(?![\d@])/g)].map((m) => `burst.${m[1]}`));
      for (const name of named) mentions.set(name, (mentions.get(name) ?? 0) + 1);
    }
    const twice = [...mentions].filter(([, n]) => n > 1).map(([name, n]) => `${name} ×${n}`);
    expect(twice, notices.map((n) => n.body).join('\n---\n').slice(0, 4000)).to.deep.equal([]);
  });

  it('finishes the rooms of a 200-member group on one replica when the replica applying it is killed', async () => {
    // A new process b (the one before was killed above).
    replicas[1] = await startReplica('b2', urlFile(), await freePort());
    const ids = (await a().scim.get(`/Users?count=200&filter=${encodeURIComponent('userName sw "burst."')}`)).body['Resources'] as { id: string; userName: string }[];
    expect(ids).to.have.length(200);
    const created = await b().scim.post('/Groups', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
      displayName: 'Replica Takeover',
      members: ids.map((u) => ({ value: u.id })),
    });
    expect(created.status, created.text).to.equal(201);
    const roomId = await waitFor(async () => (await roomsNamed(admin, 'Replica Takeover'))[0]?.['room_id'] as string | undefined, 60_000, 'the group room');
    const joined = async () => (await roomMembers(admin, roomId)).filter((m) => m.startsWith('@burst.')).length;
    // Killed while it applies the group: some members joined, not all.
    const before = await waitFor(async () => ((await joined()) >= 20 ? joined() : undefined), 120_000, 'replica b to join some members');
    b().child.kill('SIGKILL');
    expect(before, 'killed mid-way').to.be.lessThan(200);
    // Replica a takes the group over (its worker runs every 5 s; the lease of b does not hold it back).
    await waitFor(async () => ((await joined()) === 200 ? true : undefined), 120_000, 'replica a to join every member');
    const counts = membershipCounts(await roomTimeline(admin, roomId));
    const twice = [...counts].filter(([user, c]) => user.startsWith('@burst.') && (c['join'] ?? 0) !== 1).map(([user, c]) => `${user} ${JSON.stringify(c)}`);
    expect(twice, 'each member joined exactly once').to.deep.equal([]);
    console.log(`    replica b2 SIGKILLed after ${before} of 200 joins; replica a joined the rest`);
  });
});

