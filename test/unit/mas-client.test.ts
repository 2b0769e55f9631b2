import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MasClient } from '../../src/matrix/masClient.ts';
import { HomeserverError } from '../../src/provisioning/ports.ts';

/**
 * MAS's token endpoint and admin API as the real MAS (v1.22) answered in the e2e runs:
 * client_secret_basic, a 300 s token with the granted scope, JSON:API bodies, and 401 for a
 * token it no longer knows.
 */
class TokenDouble {
  tokensIssued = 0;
  scope = 'urn:mas:admin';
  /** Tokens the admin API accepts; a test empties it to play a MAS that restarted. */
  readonly valid = new Set<string>();
  adminStatus = 200;
  readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => void this.#handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    if (req.url === '/oauth2/token') {
      const basic = Buffer.from('client-1:secret-1').toString('base64');
      if (req.headers.authorization !== `Basic ${basic}` || !body.includes('grant_type=client_credentials')) {
        return send(401, { error: 'invalid_client' });
      }
      const token = `token-${++this.tokensIssued}`;
      this.valid.add(token);
      return send(200, { access_token: token, token_type: 'Bearer', expires_in: 300, scope: this.scope });
    }
    const token = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
    if (!this.valid.has(token)) return send(401, { errors: [{ title: 'Invalid token' }] });
    if (this.adminStatus !== 200) return send(this.adminStatus, { errors: [{ title: 'Something failed' }] });
    if (req.url?.startsWith('/api/admin/v1/users/by-username/nobody')) return send(404, { errors: [{ title: 'User not found' }] });
    return send(200, { data: { type: 'user', id: '01USER', attributes: { username: 'alice' } } });
  }
}

describe('MAS admin client', () => {
  let mas: TokenDouble;
  let client: MasClient;
  beforeEach(async () => {
    mas = new TokenDouble();
    await new Promise<void>((ok) => mas.server.listen(0, '127.0.0.1', ok));
    client = new MasClient({ baseUrl: mas.url, clientId: 'client-1', clientSecret: 'secret-1' });
  });
  afterEach(() => new Promise<void>((ok) => mas.server.close(() => ok())));

  it('asks for one token and keeps it for its lifetime', async () => {
    for (let i = 0; i < 3; i++) expect((await client.get('/users/by-username/alice'))?.id).to.equal('01USER');
    expect(mas.tokensIssued).to.equal(1);
  });

  it('asks once for a new token when MAS refuses the one it has (a restart), and goes on', async () => {
    await client.get('/users/by-username/alice');
    mas.valid.clear();
    expect((await client.get('/users/by-username/alice'))?.id).to.equal('01USER');
    expect(mas.tokensIssued).to.equal(2);
  });

  it('gives up after that one retry', async () => {
    await client.get('/users/by-username/alice');
    const original = mas.valid.add.bind(mas.valid);
    mas.valid.add = () => mas.valid; // MAS issues tokens it then refuses
    mas.valid.clear();
    const error = await client.get('/users/by-username/alice').catch((e: unknown) => e);
    expect(error).to.be.instanceOf(HomeserverError);
    expect((error as HomeserverError).status).to.equal(401);
    mas.valid.add = original;
  });

  it('answers undefined for a 404, and a transient error for a 5xx', async () => {
    expect(await client.get('/users/by-username/nobody')).to.equal(undefined);
    mas.adminStatus = 503;
    const error = (await client.get('/users/by-username/alice').catch((e: unknown) => e)) as HomeserverError;
    expect(error.transient).to.equal(true);
    expect(error.message).to.include('Something failed');
  });

  it('says which client lacks the admin scope, and that admin_clients is where it is given', async () => {
    mas.scope = 'openid';
    const error = (await client.token().catch((e: unknown) => e)) as HomeserverError;
    expect(error.message).to.include('client-1').and.include('admin_clients');
    expect(error.transient).to.equal(false);
  });

  it('names a refused client without printing its secret', async () => {
    const wrong = new MasClient({ baseUrl: mas.url, clientId: 'client-1', clientSecret: 'wrong-secret' });
    const error = (await wrong.token().catch((e: unknown) => e)) as HomeserverError;
    expect(error.message).to.include('client-1').and.include('invalid_client');
    expect(error.message).to.not.include('wrong-secret');
  });

  it('is transient when MAS cannot be reached', async () => {
    const gone = new MasClient({ baseUrl: 'http://127.0.0.1:9/', clientId: 'client-1', clientSecret: 'secret-1' });
    const error = (await gone.token().catch((e: unknown) => e)) as HomeserverError;
    expect(error.transient).to.equal(true);
  });
});
