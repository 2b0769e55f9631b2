import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HomeserverClient, HomeserverError } from '../../src/matrix/homeserverClient.ts';

/** A loopback server that answers each request with the next canned reply. */
async function cannedServer(replies: { status: number; body: unknown }[]) {
  const seen: { method: string; url: string; auth: string | undefined }[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization });
    const reply = replies.shift() ?? { status: 500, body: { errcode: 'M_UNKNOWN' } };
    res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

async function failure(promise: Promise<unknown>): Promise<HomeserverError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(HomeserverError);
    return error as HomeserverError;
  }
  throw new Error('no error');
}

describe('homeserver client', () => {
  it('waits out a short rate limit and retries, instead of failing', async () => {
    const hs = await cannedServer([
      { status: 429, body: { errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 20 } },
      { status: 200, body: { user_id: '@scim-bridge:example.org' } },
    ]);
    try {
      const client = new HomeserverClient({ baseUrl: hs.url, asToken: 'as-token' });
      expect(await client.whoami()).to.equal('@scim-bridge:example.org');
      expect(hs.seen).to.have.length(2);
    } finally {
      await hs.close();
    }
  });

  it('turns a long rate limit into a transient error carrying the wait', async () => {
    const hs = await cannedServer([{ status: 429, body: { errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 60_000 } }]);
    try {
      const client = new HomeserverClient({ baseUrl: hs.url, asToken: 'as-token', maxInlineWaitMs: 1000 });
      const error = await failure(client.whoami());
      expect(error).to.include({ transient: true, status: 429, retryAfterMs: 60_000 });
    } finally {
      await hs.close();
    }
  });

  it('classifies 5xx and an unreachable server as transient, 4xx as final', async () => {
    const hs = await cannedServer([
      { status: 502, body: {} },
      { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'You are not a server admin' } },
    ]);
    const client = new HomeserverClient({ baseUrl: hs.url, asToken: 'as-token' });
    expect((await failure(client.whoami())).transient).to.equal(true);
    const forbidden = await failure(client.getUser('@a:example.org'));
    expect(forbidden).to.include({ transient: false, errcode: 'M_FORBIDDEN' });
    await hs.close();
    const gone = await failure(client.whoami());
    expect(gone.transient).to.equal(true);
    expect(gone.message).to.match(/unreachable/);
  });

  it('uses the admin token for the admin API and the as_token elsewhere, and never puts tokens in errors', async () => {
    const hs = await cannedServer([
      { status: 404, body: { errcode: 'M_NOT_FOUND' } },
      { status: 400, body: { errcode: 'M_USER_IN_USE' } },
      { status: 400, body: { errcode: 'M_INVALID_USERNAME', error: 'bad' } },
    ]);
    try {
      const client = new HomeserverClient({ baseUrl: hs.url, asToken: 'secret-as-token', adminToken: 'secret-admin-token' });
      expect(await client.getUser('@a:example.org')).to.equal(undefined);
      expect(await client.register('a')).to.equal('exists');
      const error = await failure(client.register('B'));
      expect(error.message).to.not.match(/secret/);
      expect(hs.seen.map((s) => s.auth)).to.deep.equal([
        'Bearer secret-admin-token',
        'Bearer secret-as-token',
        'Bearer secret-as-token',
      ]);
    } finally {
      await hs.close();
    }
  });
});
